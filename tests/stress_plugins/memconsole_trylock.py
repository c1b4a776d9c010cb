"""memconsole whose record_msg() follows the console-driver rule of 8250 (S6).

record_msg() is memconsole's with one change, the lock taken as serial8250_console_write()
takes its port lock: while an oops is in progress, spin_trylock_irqsave() and write anyway if
that fails (the CPU that oopsed may hold the lock); otherwise spin_lock_irqsave().
"""

from ksim import Console, memcpy_to, oops_in_progress, spin_lock_irqsave, \
    spin_trylock_irqsave, spin_unlock_irqrestore
from ksim_memconsole import Memconsole


class MemconsoleTrylock(Memconsole):
    name = "memconsole_trylock"

    async def record_msg(self, con: Console, msg: bytes) -> None:
        length = len(msg)
        pos = 0
        if oops_in_progress():
            locked, flags = spin_trylock_irqsave(self.buf_lock)
        else:
            flags = await spin_lock_irqsave(self.buf_lock)
            locked = True
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
        if locked:
            spin_unlock_irqrestore(self.buf_lock, flags)
