"""memconsole taking its lock with plain spin_lock where spin_lock_irqsave is needed (L2).

record_msg() and proc_read() are memconsole's, with spin_lock_irqsave()/
spin_unlock_irqrestore() replaced by spin_lock()/spin_unlock() and nothing else changed.
"""

from ksim import Console, memcpy_from, memcpy_to, spin_lock, spin_unlock
from ksim_memconsole import Memconsole


class MemconsoleSpinLock(Memconsole):
    name = "memconsole_spinlock"

    async def record_msg(self, con: Console, msg: bytes) -> None:
        length = len(msg)
        pos = 0
        await spin_lock(self.buf_lock)
        while length != 0:
            n = min(self.buf + self.buf_size - self._hdr_ptr(), length)
            await memcpy_to(self._hdr_ptr(), msg[pos:pos + n])
            pos += n
            length -= n
            self._set_hdr_ptr(self._hdr_ptr() + n)
            if self._hdr_ptr() == self.buf + self.buf_size:
                self._set_hdr_ptr(self.buf)
            if self._hdr_len() < self.buf_size:
                self._set_hdr_len(min(self.buf_size, self._hdr_len() + n))
        spin_unlock(self.buf_lock)

    async def proc_read(self, file: object, count: int, off: int) -> bytes:
        await spin_lock(self.buf_lock)
        if self._hdr_len() < self.buf_size:
            segments = [(self.buf, self._hdr_len())]
        else:
            segments = [(self._hdr_ptr(), self.buf + self.buf_size - self._hdr_ptr()),
                        (self.buf, self._hdr_ptr() - self.buf)]
        page = bytearray()
        for start, size in segments:
            if count <= 0:
                break
            if off >= size:
                off -= size
                continue
            n = min(size - off, count)
            page += await memcpy_from(start + off, n)
            count -= n
            off = 0
        spin_unlock(self.buf_lock)
        return bytes(page)
