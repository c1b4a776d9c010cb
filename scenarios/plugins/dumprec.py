"""dumprec: a kmsg dumper that keeps what it was given, for scenarios to look at.

Registered at init with ``max_reason`` KMSG_DUMP_MAX (every reason, like a dumper that
wants the emergency-restart dump too), it keeps, for each dump, the reason and the tail of
the log the dump iterator gives it (up to 4K, in syslog format as ramoops asks for it).
``/proc/dumprec`` shows them: one ``--- dump N reason R ---`` line, then the text.  What it
keeps is in the kernel's memory, not in RAM a reboot preserves: read it from the boot that
dumped (a scenario's expectations of that boot read the stopped kernel's files).
"""

from ksim import (
    KMSG_DUMP_MAX, KernelModule, KmsgDumper, KmsgDumpIter, ProcOps, kmsg_dump_get_buffer,
    kmsg_dump_register, kmsg_dump_rewind, kmsg_dump_unregister, proc_create,
    remove_proc_entry,
)

REASONS = {0: "UNDEF", 1: "PANIC", 2: "OOPS", 3: "EMERG", 4: "SHUTDOWN"}


class DumpRec(KernelModule):
    name = "dumprec"
    description = "a kmsg dumper that keeps what it was given (/proc/dumprec)"
    license = "GPL"

    def __init__(self, kernel, builtin: bool) -> None:
        super().__init__(kernel, builtin)
        self.dumps: list[bytes] = []
        self.dumper = KmsgDumper(dump=self.dump, max_reason=KMSG_DUMP_MAX)

    async def dump(self, dumper: KmsgDumper, reason: int) -> None:
        it = KmsgDumpIter()
        kmsg_dump_rewind(it)
        text = kmsg_dump_get_buffer(it, True, 4096) or b""
        self.dumps.append(b"--- dump %d reason %s ---\n" % (
            len(self.dumps) + 1, REASONS.get(reason, str(reason)).encode()) + text)

    async def proc_read(self, file: object, count: int, off: int) -> bytes:
        return b"".join(self.dumps)[off:off + count]

    async def init(self) -> int:
        proc_create("dumprec", 0o444, None, ProcOps(proc_read=self.proc_read))
        return kmsg_dump_register(self.dumper)

    async def exit(self) -> None:
        kmsg_dump_unregister(self.dumper)
        remove_proc_entry("dumprec", None)
