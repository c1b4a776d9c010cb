"""memconsole taking its lock with plain spin_lock where spin_lock_irqsave is needed (L2)."""

from ksim import Console, spin_lock, spin_unlock
from ksim_memconsole import Memconsole


class MemconsoleSpinLock(Memconsole):
    name = "memconsole_spinlock"

    async def record_msg(self, con: Console, msg: bytes) -> None:
        await spin_lock(self.buf_lock)
        await self.copy_in(msg)
        spin_unlock(self.buf_lock)

    async def proc_read(self, file: object, count: int, off: int) -> bytes:
        await spin_lock(self.buf_lock)
        data = await self.copy_out(count, off)
        spin_unlock(self.buf_lock)
        return data
