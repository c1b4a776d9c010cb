"""memconsole with its spinlock removed: the ring is written and read with no lock at all.

record_msg() and proc_read() are memconsole's, with the spin_lock_irqsave() and
spin_unlock_irqrestore() lines deleted and nothing else changed.
"""

from ksim import Console, memcpy_from, memcpy_to
from ksim_memconsole import Memconsole


class MemconsoleNoLock(Memconsole):
    name = "memconsole_nolock"

    async def record_msg(self, con: Console, msg: bytes) -> None:
        length = len(msg)
        pos = 0
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

    async def proc_read(self, file: object, count: int, off: int) -> bytes:
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
        return bytes(page)
