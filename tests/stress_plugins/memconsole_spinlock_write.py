"""memconsole with plain spin_lock in record_msg() only (proc_read() keeps irqsave).

record_msg() is memconsole's with spin_lock_irqsave()/spin_unlock_irqrestore() replaced by
spin_lock()/spin_unlock() and nothing else changed.  It is only ever called as a console's
write(), which Linux runs with local interrupts off, so the plain lock is as good as irqsave
there: lockdep never sees buf_lock taken with interrupts on.
"""

from ksim import Console, memcpy_to, spin_lock, spin_unlock
from ksim_memconsole import Memconsole


class MemconsoleSpinLockWrite(Memconsole):
    name = "memconsole_spinlock_write"

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
