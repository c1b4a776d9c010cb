"""memconsole relying on the console lock alone: no buf_lock anywhere.

record_msg() is memconsole's with its lock calls deleted: it only ever runs as the console's
write(), from the holder of console_sem, so the console lock already serializes it.
proc_read() takes the console lock (console_lock()/console_unlock()) instead of buf_lock, as
drivers that share state with their console write may: a read never overlaps a write.
Nothing else is changed.
"""

from ksim import Console, console_lock, console_unlock, memcpy_from, memcpy_to
from ksim_memconsole import Memconsole


class MemconsoleConLock(Memconsole):
    name = "memconsole_conlock"

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
        await console_lock()
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
        await console_unlock()
        return bytes(page)
