"""panic() and the oops path (kernel/panic.c, arch/x86/kernel/dumpstack.c).

``panic`` follows the modern order (K2): the ``Kernel panic - not syncing`` line, a stack dump,
the panic notifier chain (N14), a console flush, then reboot after ``panic=`` seconds of
*virtual* time, at once for a negative timeout, or halt with the ``---[ end Kernel panic``
trailer.  It never returns: it ends the kernel by raising a :class:`~ksim.reboot.MachineStop`.

``die`` renders an x86-64 Oops (K5, K6, K8), calls the die chain (N16) and then, as Linux
does, panics (in interrupt, or with ``panic_on_oops``) or kills the current task.

kernel/panic.c's state (:class:`PanicState`: ``panic_timeout``, ``panic_on_oops``, the
taint mask, the oops counter) and its knobs live here too: ``panic=`` and ``pause_on_oops=``
(core parameters), ``oops=panic``, and ``/proc/sys/kernel/{panic,panic_on_oops,tainted}``.
"""

from __future__ import annotations

import random
import traceback
from typing import TYPE_CHECKING

import attrs
import trio

from ksim.bug import TAINT_DIE, TAINT_ORDER, Report, add_taint, cpu_pid_line, is_runtime_file, \
    short_path
from ksim.current import KernelGlobal, current, current_kernel, smp_processor_id
from ksim.errno import EINVAL
from ksim.fs import ProcOps, text_reader
from ksim.init import core_param, early_param, kernel_file
from ksim.memory import PageFault, PhysAddrError
from ksim.notifier import DIE_OOPS, NOTIFY_STOP, AtomicNotifierHead, atomic_notifier_call_chain
from ksim.preempt import in_interrupt, local_irq_disable, preempt_disable
from ksim.printk import KERN_ALERT, KERN_CRIT, KERN_DEFAULT, KERN_EMERG, KERN_INFO, KERN_WARNING, \
    KMSG_DUMP_OOPS, KMSG_DUMP_PANIC, console_flush_on_panic, kmsg_dump, printk
from ksim.reboot import MachineHalt, apply_panic_reboot_mode, emergency_restart
from ksim.smp import crash_smp_send_stop, panic_smp_self_stop, smp_send_stop
from ksim.sysctl import proc_dointvec

if TYPE_CHECKING:
    from ksim.kernel import Kernel

PANIC_BUF = 1024
_ULONG_MASK = (1 << 64) - 1


@attrs.define
class PanicState:
    """kernel/panic.c's variables for one boot (K1, K2, K4, K5, K7)."""

    panic_timeout: int = 0  # panic= (CONFIG_PANIC_TIMEOUT=0: halt)
    panic_on_oops: bool = False  # oops=panic, kernel.panic_on_oops
    panic_on_warn: int = 0  # panic_on_warn=, kernel.panic_on_warn (see docs/deviations.md)
    pause_on_oops: int = 0
    panic_message: str | None = None  # the first panic's message
    panic_depth: int = 0  # nested panic() calls on the panic CPU
    oops_count: int = 0  # die_counter
    oops_in_progress: int = 0  # bust_spinlocks() (K1)
    panic_cpu: int = -1  # the CPU that won the panic (PANIC_CPU_INVALID: none)
    crash_kexec_post_notifiers: bool = False
    taints: str = ""  # tainted_mask, as the flag letters set (K7)
    # __die_header() saves the registers of the boot's first oops for the summary lines.
    oops_exec_summary: list[str] | None = None


core_param("panic", "int", 0o644, "panic.panic_timeout")
core_param("panic_on_warn", "int", 0o644, "panic.panic_on_warn")
core_param("pause_on_oops", "int", 0o644, "panic.pause_on_oops")
core_param("crash_kexec_post_notifiers", "bool", 0o644, "panic.crash_kexec_post_notifiers")


@early_param("oops")
async def oops_setup(val: str | None) -> int:
    if val is None:
        return -EINVAL
    if val == "panic":
        current_kernel().panic.panic_on_oops = True
    return 0


@kernel_file("/proc/sys/kernel/panic", 0o644)
def _panic_sysctl(k: Kernel) -> ProcOps:
    def set_(value: int) -> None:
        k.panic.panic_timeout = value
    return proc_dointvec(lambda: k.panic.panic_timeout, set_)


@kernel_file("/proc/sys/kernel/panic_on_oops", 0o644)
def _panic_on_oops_sysctl(k: Kernel) -> ProcOps:
    def set_(value: int) -> None:
        k.panic.panic_on_oops = bool(value)
    return proc_dointvec(lambda: int(k.panic.panic_on_oops), set_)


@kernel_file("/proc/sys/kernel/panic_on_warn", 0o644)
def _panic_on_warn_sysctl(k: Kernel) -> ProcOps:
    def set_(value: int) -> None:
        k.panic.panic_on_warn = value
    return proc_dointvec(lambda: k.panic.panic_on_warn, set_)


@kernel_file("/proc/sys/kernel/tainted", 0o444)
def _tainted(k: Kernel) -> ProcOps:
    return text_reader(lambda: "%d\n" % sum(1 << i for i, flag in enumerate(TAINT_ORDER)
                                            if flag in k.panic.taints))

# The chains of kernel/panic.c and kernel/notifier.c, resolved per running kernel.
panic_notifier_list: KernelGlobal[AtomicNotifierHead] = KernelGlobal(
    "panic_notifier_list", "chains.panic_notifier_list")
die_chain: KernelGlobal[AtomicNotifierHead] = KernelGlobal("die_chain", "chains.die_chain")
SIGSEGV = 11
HARDWARE_NAME = "ksim virtual machine, BIOS ksim 06/13/2009"


class TaskKilled(Exception):
    """The current task died (an oops without panic_on_oops kills it, K5)."""

    def __init__(self, signal: int, task_comm: str) -> None:
        super().__init__(f"{task_comm} killed by signal {signal}")
        self.signal = signal


def oops_in_progress() -> int:
    """The C global ``oops_in_progress`` (K1), read as a call: non-zero while an oops or a
    panic is being printed, when console drivers must trylock their locks (S6)."""
    return current_kernel().panic.oops_in_progress


def bust_spinlocks(yes: bool) -> None:
    """K1: while an oops is in progress console code must not wait for locks."""
    current_kernel().panic.oops_in_progress += 1 if yes else -1


async def dump_stack(frames: list[str]) -> None:
    await printk(KERN_DEFAULT + "%s\n", cpu_pid_line())
    await printk(KERN_DEFAULT + "Hardware name: %s\n", HARDWARE_NAME)
    await printk(KERN_DEFAULT + "Call Trace:\n")
    await printk(KERN_DEFAULT + " <TASK>\n")
    for frame in frames:
        await printk(KERN_DEFAULT + " %s\n", frame)
    await printk(KERN_DEFAULT + " </TASK>\n")


async def panic(fmt: str, *args: object) -> None:
    """Stop the kernel with a message, in 6.1's order (K2).  Never returns.

    One CPU wins ``panic_cpu``; a second CPU that panics stops itself, and a nested panic on
    the winner carries on.  The other CPUs are stopped (smp_send_stop), the panic notifiers
    run (N14), then kmsg_dump(PANIC), then every pending record is flushed to the consoles
    whoever holds the console lock, and the machine waits ``panic=`` seconds of virtual time
    and restarts, restarts at once (negative), or halts with the trailer (0).
    """
    kernel = current_kernel()
    state = kernel.panic
    local_irq_disable()
    preempt_disable()
    this_cpu = smp_processor_id()
    if state.panic_cpu == -1:
        state.panic_cpu = this_cpu
    elif state.panic_cpu != this_cpu:
        await panic_smp_self_stop()
    await _panic_on_this_cpu(kernel, fmt, args)


async def nmi_panic(msg: str) -> None:
    """``nmi_panic()``: panic from NMI context, unless another CPU panics already (then this
    one stops, as nmi_panic_self_stop does)."""
    state = current_kernel().panic
    if state.panic_cpu == -1:
        await panic("%s", msg)
    elif state.panic_cpu != smp_processor_id():
        await panic_smp_self_stop()


async def _panic_on_this_cpu(kernel: Kernel, fmt: str, args: tuple[object, ...]) -> None:
    state = kernel.panic
    state.panic_depth += 1
    text = kernel.vsprintf.format(fmt, args) if args else fmt
    text = text[:PANIC_BUF - 1]
    if text.endswith("\n"):
        text = text[:-1]
    if state.panic_message is None:
        state.panic_message = text
    kernel.printk.console_verbose()
    bust_spinlocks(True)
    await printk(KERN_EMERG + "Kernel panic - not syncing: %s\n", text)
    if state.panic_depth > 2:
        # Linux would recurse until its stack overflowed; ksim stops the second nesting here.
        raise MachineHalt(text)
    if TAINT_DIE not in state.taints and state.oops_in_progress <= 1:
        await dump_stack(["dump_stack_lvl+0x49/0x63", "panic+0x11c/0x2f0"])
    # Without a crash kernel loaded __crash_kexec() returns at once (before the notifiers,
    # or after kmsg_dump with crash_kexec_post_notifiers); only how the CPUs stop differs.
    if state.crash_kexec_post_notifiers:
        await crash_smp_send_stop()
    else:
        await smp_send_stop()
    if state.panic_depth == 1:
        await atomic_notifier_call_chain(kernel.chains.panic_notifier_list, 0, text)
    await kmsg_dump(KMSG_DUMP_PANIC)
    await console_unblank(kernel)
    debug_locks_off(kernel)
    await console_flush_on_panic(kernel.printk)
    timeout = state.panic_timeout
    if timeout > 0:
        await printk(KERN_EMERG + "Rebooting in %d seconds..\n", timeout)
        await kernel.sched.spin_delay(timeout)  # mdelay() in 100 ms steps
    if timeout != 0:
        apply_panic_reboot_mode()
        await emergency_restart()
    await printk(KERN_EMERG + "---[ end Kernel panic - not syncing: %s ]---\n", text)
    kernel.printk.suppress_printk = True
    raise MachineHalt(text)


async def console_unblank(kernel: Kernel) -> None:
    """``console_unblank()``: every registered console that can unblank does (K2 step 12)."""
    for con in list(kernel.printk.console_drivers):
        if con.unblank is not None:
            await con.unblank(con)


def debug_locks_off(kernel: Kernel) -> None:
    """lockdep switches itself off for the rest of the boot (L8)."""
    for obs in kernel.locking.observers:
        off = getattr(obs, "debug_locks_off", None)
        if off is not None:
            off()


def _registers(rng: random.Random) -> list[str]:
    def reg() -> str:
        return "%016x" % rng.choice((0, rng.getrandbits(64) | 0xFFFF800000000000,
                                     rng.getrandbits(16)))
    names = ["RAX", "RBX", "RCX", "RDX", "RSI", "RDI", "RBP", "R08", "R09", "R10", "R11",
             "R12", "R13", "R14", "R15"]
    lines = []
    for i in range(0, len(names), 3):
        lines.append(" ".join("%s: %s" % (n, reg()) for n in names[i:i + 3]))
    return lines


async def die(message: str, err: int = 0x0002, *, function: str = "sysrq_handle_crash",
              trap: str | None = None, call_trace: list[str] | None = None, cr2: int = 0,
              walk: str = "PGD 0 P4D 0 ") -> None:
    """Render an Oops for ``message`` (the fault headline) and handle it as Linux does (K5).

    The order is x86-64 6.1's page_fault_oops(): the ``BUG:``/``#PF:`` lines (KERN_ALERT),
    the page-table walk (KERN_INFO, ``pr_cont`` leaves its trailing space), then __die(): the
    ``Oops:`` header, registers and stack, ``Modules linked in:`` (newest module first, as
    print_modules() walks the list), the die chain (N16), then ``CR2:``; oops_end() adds
    taint D, ``---[ end trace ... ]---`` (pr_warn), kmsg_dump and the executive summary
    (the registers of the boot's first oops again, in case it scrolled away).

    ``trap`` names a trap other than a page fault (``"invalid opcode"``: no ``#PF`` lines, no
    page-table walk) and ``call_trace`` replaces the sysrq write path's frames; ``cr2`` is the
    faulting address and ``walk`` dump_pagetable()'s line for it.

    Returns normally only if a die notifier returned NOTIFY_STOP; otherwise it panics or
    raises :class:`TaskKilled` for the current task.
    """
    kernel = current_kernel()
    state = kernel.panic
    task = current()
    state.oops_count += 1
    kernel.printk.console_verbose()
    bust_spinlocks(True)
    rng = random.Random(kernel.seed * 7919 + state.oops_count)
    rsp = 0xFFFFA3C1C0000000 | rng.getrandbits(24) & ~0xF
    alert = [message,
             "#PF: supervisor %s access in kernel mode" % ("write" if err & 2 else "read"),
             "#PF: error_code(0x%04x) - %s" % (err, "protection violation" if err & 1
                                                else "not-present page")]
    pgd = walk
    if trap is not None:
        alert = [message]
    header = ["%s: %04x [#%d] PREEMPT SMP NOPTI" % (trap or "Oops", err & 0xFFFF,
                                                      state.oops_count),
              cpu_pid_line(),
              "Hardware name: %s" % HARDWARE_NAME]
    regs = ["RIP: 0010:%s+0x16/0x20" % function,
            "Code: " + " ".join("%02x" % rng.getrandbits(8) for _ in range(20)) + " <c6> 04 25",
            "RSP: 0018:%016x EFLAGS: 00010246" % rsp]
    regs += _registers(rng)
    regs += ["FS:  0000000000000000(0000) GS:ffff88803ec00000(0000) knlGS:0000000000000000",
             "CS:  0010 DS: 0000 ES: 0000 CR0: 0000000080050033",
             "CR2: %016x CR3: 0000000002e0a000 CR4: 00000000000006f0" % cr2]
    frames = call_trace if call_trace is not None else [
        "__handle_sysrq+0x8d/0x150", "write_sysrq_trigger+0x24/0x40", "proc_reg_write+0x51/0x90",
        "vfs_write+0xc3/0x3a0", "ksys_write+0x5f/0xe0", "do_syscall_64+0x3b/0x90",
        "entry_SYSCALL_64_after_hwframe+0x63/0xcd"]
    trace = ["Call Trace:", " <TASK>", *(" " + f for f in frames), " </TASK>",
             "Modules linked in:" + "".join(" " + name
                                            for name in reversed(kernel.module.names()))]
    for line in alert:
        await printk(KERN_ALERT + "%s\n", line)
    if trap is None:
        await printk(KERN_INFO + "%s\n", pgd)
    for line in header + regs + trace:
        await printk(KERN_DEFAULT + "%s\n", line)
    ret = await atomic_notifier_call_chain(kernel.chains.die_chain, DIE_OOPS, message)
    await printk(KERN_DEFAULT + "CR2: %016x\n", cr2)
    bust_spinlocks(False)
    add_taint(TAINT_DIE)
    lines = alert + ([pgd] if trap is None else []) + header + regs + trace \
        + ["CR2: %016x" % cr2]
    kernel.reports.append(Report("oops", message, "\n".join(lines)))
    await printk(KERN_WARNING + "---[ end trace 0000000000000000 ]---\n")
    await kmsg_dump(KMSG_DUMP_OOPS)
    # __die_header() saves the registers of the *first* oops only: later summaries repeat them.
    if state.oops_exec_summary is None:
        state.oops_exec_summary = regs
    for line in state.oops_exec_summary:
        await printk(KERN_DEFAULT + "%s\n", line)
    if ret == NOTIFY_STOP:
        return
    if in_interrupt():
        await panic("Fatal exception in interrupt")
    # An oops inside panic() (a panic notifier's bug) would kill the panicking task in Linux
    # and leave the machine stopped mid-panic; ksim panics again, which carries on (deviation)
    if state.panic_on_oops or state.panic_cpu != -1:
        await panic("Fatal exception")
    if task.pid == 0:  # make_task_dead(): an oops in the boot CPU's idle task (early boot)
        await panic("Attempted to kill the idle task!")
    if task.pid == 1:
        await panic("Attempted to kill init! exitcode=0x%08x", SIGSEGV)
    raise TaskKilled(SIGSEGV, task.comm)


def _driver_frames(exc: BaseException) -> list[tuple[str, str]]:
    """``(function, file:line)`` of the driver's (non-ksim, non-runtime) Python frames,
    innermost first, as a kernel call trace lists them."""
    out = []
    for fs in reversed(traceback.extract_tb(exc.__traceback__)):
        if is_runtime_file(fs.filename) or short_path(fs.filename).startswith("ksim/"):
            continue
        out.append((fs.name, "%s:%d" % (short_path(fs.filename), fs.lineno or 0)))
    return out


# The MMU and RAM themselves, and the accessors that only stand for a C load or store: not
# frames of the faulting kernel code.
_ACCESS_FILES = ("ksim/memory.py", "ksim/mm.py")


def _fault_frames(exc: BaseException) -> list[str]:
    """The kernel's frames (ksim's functions are named after the kernel's) and the driver's
    (with their file:line, as driver_bug lists them) down to the faulting access, innermost
    first."""
    out = []
    for fs in reversed(traceback.extract_tb(exc.__traceback__)):
        path = short_path(fs.filename)
        if is_runtime_file(fs.filename) or path in _ACCESS_FILES:
            continue
        if path.startswith("ksim/"):
            out.append("%s+0x0/0x0" % fs.name)
        else:
            out.append("%s+0x0/0x0 [%s:%d]" % (fs.name, path, fs.lineno or 0))
    return out


async def page_fault_oops(exc: PhysAddrError | PageFault) -> None:
    """A kernel access the MMU could not complete (D11): page_fault_oops()'s Oops in the current
    context, handled as any oops (an Oops of the idle task early in boot: ``Attempted to kill
    the idle task!``; of init: ``Attempted to kill init!``; panic_on_oops).

    A :class:`PageFault` is a not-present part of the direct map (its table has no RAM behind
    it), as on the oracle; a :class:`PhysAddrError` is an access to a physical address with no
    RAM, which ksim faults at once where QEMU would drop the store or read junk (see
    docs/deviations.md).  The address is the direct-map address of the access.  Returns only if
    a die notifier stopped the oops, as :func:`die` does."""
    kernel = current_kernel()
    if isinstance(exc, PageFault):
        address, write, walk = exc.address, exc.write, exc.walk
    else:
        base = kernel.layout.page_offset if kernel.layout is not None \
            else kernel.kaslr.direct_map_base()
        address, write, walk = (exc.addr + base) & _ULONG_MASK, exc.write, "PGD 0 P4D 0 "
    frames = _fault_frames(exc)
    await die("BUG: unable to handle page fault for address: %016x" % address,
              0x0002 if write else 0x0000, function=frames[0].split("+")[0] if frames else "?",
              call_trace=frames[1:], cr2=address, walk=walk)


async def driver_bug(exc: BaseException, where: str) -> None:
    """A Python exception escaped driver code (``where``: the callback, e.g.
    ``buggy.init``): report it as x86 reports ``BUG()`` in a driver -- ``kernel BUG at
    file:line!``, an ``invalid opcode`` Oops whose call trace is the driver's Python frames --
    and handle it as any oops (panic_on_oops, the task killed, init or the idle task killed
    → panic).  Returns only if a die notifier stopped the oops; the caller then goes on as
    if the callback had returned nothing.  A fault of the driver's memory access is a page
    fault's Oops instead (:func:`page_fault_oops`)."""
    if isinstance(exc, (PhysAddrError, PageFault)):
        await page_fault_oops(exc)
        return
    frames = _driver_frames(exc)
    location = frames[0][1] if frames else where
    await printk(KERN_CRIT + "------------[ cut here ]------------\n")
    trace = ["%s+0x0/0x0 [%s]" % (name, loc) for name, loc in frames] or [where]
    # the Python exception stands where C's BUG_ON condition would be read from the source
    await die("kernel BUG at %s! (%s: %s)" % (location, type(exc).__name__, str(exc)[:200]), 0, function=frames[0][0] if frames else where,
              trap="invalid opcode", call_trace=trace)
