"""memconsole with plain spin_lock in proc_read() only (record_msg() keeps irqsave).

proc_read() is memconsole's with spin_lock_irqsave()/spin_unlock_irqrestore() replaced by
spin_lock()/spin_unlock() and nothing else changed.  A reader runs in process context with
interrupts on, so an interrupt on the reader's CPU whose printk reaches record_msg() spins
on the lock the reader holds: the deadlock lockdep reports as {HARDIRQ-ON-W} ->
{IN-HARDIRQ-W}.
"""

from ksim import memcpy_from, spin_lock, spin_unlock
from ksim_memconsole import Memconsole


class MemconsoleSpinLockRead(Memconsole):
    name = "memconsole_spinlock_read"

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
