"""The boot sequence (init/main.c): ``start_kernel`` to init.

``start_kernel`` runs the steps of a modern x86-64 boot that matter to consoles, printk,
parameters and boot memory, in Linux's order (P1): the banner; ``setup_arch``
(:mod:`ksim.setup`: the memory map, the early parameters, memblock); the ``Kernel command
line`` line; the "Booting kernel" parse with ``__setup`` handlers and unknown options passed
to init (P5..P10); the console; the initcalls; and init itself, whose argv and envp become
``/proc/1/cmdline`` and ``/proc/1/environ``.

Every other subsystem declares its own boot options, parameters and files where its state
lives (:mod:`ksim.init`); this module walks the tables and owns only init/main.c's state
(:class:`InitState`) and options (``init=``, ``rdinit=``, ``initcall_debug``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
import trio

from ksim.cmdline import Token, repair_env_string, split_args
from ksim.console import Console
from ksim.current import current_kernel, set_current
from ksim.errno import ENOENT, ENOMEM
from ksim.fs import ProcOps, text_reader
from ksim.init import KERNEL_FILES, SETUP_TABLE, SYSTEM_SCHEDULING, ObsKernelParam, core_param, \
    kernel_file, obsolete_checksetup, setup
from ksim.module import INITCALL_LEVELS
from ksim.module_loader import add_param_files, do_one_initcall, instantiate, param_file_ops
from ksim.memory import PageFault, PhysAddrError
from ksim.panic import page_fault_oops, panic
from ksim.params import param_sysfs_builtin, parse_args
from ksim.printk import KERN_INFO, KERN_NOTICE, LOGLEVEL_INFO, LOGLEVEL_NOTICE, printk, \
    register_console
from ksim.reboot import SYSTEM_BOOTING, SYSTEM_RUNNING
from ksim.bug import Report, taint_string
from ksim.early_printk import early_printk
from ksim.initramfs import RDINIT_DEFAULT, populate_rootfs
from ksim.kern_levels import KERN_CRIT, KERN_DEFAULT, KERN_EMERG, KERN_ERR
from ksim.notifier import NotifierBlock, atomic_notifier_chain_register
from ksim.page_alloc import alloc_large_system_hash, build_all_zonelists, mem_init_print_info
from ksim.percpu import setup_per_cpu_areas
from ksim.printk import setup_log_buf
from ksim.reboot import MachineHalt, MachineHang
from ksim.setup import EarlyPanic, dump_kernel_offset, setup_arch
from ksim.smp import smp_init
from ksim.swiotlb import swiotlb_init, swiotlb_print_info

# The core's other object files that declare boot options, parameters or files (ksim.init):
# importing them links their entries into the tables, as the linker does for vmlinux.
# (setup, early_printk and reboot are imported above for what this module calls.)
from ksim import console, crash_core, e820, kaslr, memtest, nmi, vsprintf, \
    watchdog  # noqa: E402,F401  isort: skip
from ksim.locking import lockdep_proc  # noqa: E402,F401  isort: skip

if TYPE_CHECKING:
    from ksim.kernel import Kernel

__all__ = ["BANNER", "COMMAND_LINE_SIZE", "InitState", "start_kernel"]

MAX_INIT_ARGS = 32  # CONFIG_INIT_ENV_ARG_LIMIT (P8)
MAX_INIT_ENVS = 32
COMMAND_LINE_SIZE = 2048  # x86 (P1)
# Where fortify_panic()'s ud2 sits in the running kernel text without KASLR (ksim's choice).
FORTIFY_PANIC_UD2 = 0xFFFFFFFF81E1E1DB
INIT_PROGRAMS = ("/sbin/init", "/etc/init", "/bin/init", "/bin/sh")
BANNER = ("Linux version %s (ksim@ksim) (gcc (Debian 12.2.0-14) 12.2.0, GNU ld 2.40) "
          "#1 SMP PREEMPT_DYNAMIC Sat Jun 13 00:00:00 UTC 2009")


@attrs.define
class InitState:
    """init/main.c's variables for one boot (P1, P4..P10)."""

    boot_command_line: str
    # copy_bootdata() copied COMMAND_LINE_SIZE bytes and found no NUL in them (P1)
    cmdline_overflow: bool = False
    setup_table: list[ObsKernelParam] = attrs.Factory(list)  # core entries, then plugins'
    # argv_init/envp_init: fixed-size slot arrays, None-terminated, as in C (P8).
    argv_init: list[str | None] = attrs.Factory(
        lambda: ["init"] + [None] * (MAX_INIT_ARGS + 1))
    envp_init: list[str | None] = attrs.Factory(
        lambda: ["HOME=/", "TERM=linux"] + [None] * MAX_INIT_ENVS)
    execute_command: str | None = None  # init=
    ramdisk_execute_command: str | None = None  # rdinit=
    panic_later: str | None = None  # "init" or "env" once a vector overflowed (P8)
    panic_param: str | None = None
    initcall_debug: bool = False
    system_state: str = SYSTEM_BOOTING
    # what init was finally given (/proc/1/cmdline, /proc/1/environ)
    init_argv: list[str] = attrs.Factory(list)
    init_envp: list[str] = attrs.Factory(list)

    @classmethod
    def from_command_line(cls, raw: bytes | str, size: int) -> InitState:
        """``copy_bootdata()``: the first *size* bytes at the loader's command line pointer.
        Without a NUL in them ``boot_command_line`` is not terminated (P1)."""
        if isinstance(raw, str):
            raw = raw.encode("latin-1", errors="replace") + b"\0"
        raw = raw[:size]
        nul = raw.find(b"\0")
        if nul < 0:
            return cls(raw.decode("latin-1"), cmdline_overflow=True)
        return cls(raw[:nul].decode("latin-1"))


core_param("initcall_debug", "bool", 0o644, "init.initcall_debug")


@setup("init=")
async def init_setup(val: str) -> int:
    state = current_kernel().init
    state.execute_command = val
    for i in range(1, MAX_INIT_ARGS):  # P9: options before init= are discarded
        state.argv_init[i] = None
    return 1


@setup("rdinit=")
async def rdinit_setup(val: str) -> int:
    state = current_kernel().init
    state.ramdisk_execute_command = val
    for i in range(1, MAX_INIT_ARGS):
        state.argv_init[i] = None
    return 1


@kernel_file("/proc/cmdline", 0o444)
def _proc_cmdline(k: Kernel) -> ProcOps:
    return text_reader(lambda: k.init.boot_command_line + "\n")


@kernel_file("/proc/version", 0o444)
def _proc_version(k: Kernel) -> ProcOps:
    return text_reader(lambda: BANNER % k.release + "\n")


# -- the "Booting kernel" pass ---------------------------------------------------------------

def _register_modules(k: Kernel) -> None:
    """Every plugin present gets an instance; built-in ones join the boot-line tables."""
    for name, cls in k.module.classes.items():
        builtin = name in k.module.builtin
        mod = instantiate(k, cls, builtin)
        for handler in cls.boot_handlers():
            if builtin or handler.core:
                k.init.setup_table.append(ObsKernelParam(
                    handler.name, getattr(mod, handler.method), handler.early, name))
        if builtin:
            k.params += list(mod.kparams.values())


def _append_init_arg(k: Kernel, param: str) -> None:
    state = k.init
    i = 0
    while state.argv_init[i] is not None:
        if i == MAX_INIT_ARGS:
            state.panic_later, state.panic_param = "init", param
        i += 1
    state.argv_init[i] = param


async def unknown_bootoption(k: Kernel, tok: Token) -> None:
    """P6: __setup, then early params, then module-looking names, then init's env or argv."""
    state = k.init
    param = repair_env_string(tok)
    if await obsolete_checksetup(k, param):
        return
    if "." in tok.name:
        return  # an unused module parameter; modprobe re-reads /proc/cmdline (P6 step 4)
    if state.panic_later:
        return
    if tok.value is not None:
        prefix_len = len(tok.name) + 1
        envp = state.envp_init
        i = 0
        while envp[i] is not None:
            if i == MAX_INIT_ENVS:
                state.panic_later, state.panic_param = "env", param
            if param[:prefix_len] == envp[i][:prefix_len]:  # type: ignore[index]  # P7
                break
            i += 1
        envp[i] = param
    else:
        _append_init_arg(k, param)


def _init_vector(slots: list[str | None], start: int) -> list[str]:
    out = []
    for value in slots[start:]:
        if value is None:
            break
        out.append(value)
    return out


async def parse_boot_args(k: Kernel) -> None:
    """The "Booting kernel" pass (P5), the unknown summary (P10) and ``--`` init args (P4)."""
    state = k.init
    tokens = split_args(state.boot_command_line)
    rest: list[Token] | None = None
    err = 0
    for index, tok in enumerate(tokens):
        if tok.name == "--" and tok.value is None:
            # parse_args() returns ``err ?: args``: after a bad value anywhere before the
            # ``--``, start_kernel() gets an error pointer and init never sees the rest (P4).
            rest = None if err else tokens[index + 1:]
            break
        unknown: list[Token] = []

        def pass_on(t: Token, doing: str) -> int:
            unknown.append(t)  # the handlers are async: run them after the sync parse
            return 0

        result = parse_args("Booting kernel", [tok], k.params, -1, -1, pass_on,
                            k.printk.log_line)
        err = result.err or err
        for utok in unknown:
            await unknown_bootoption(k, utok)
    if not state.panic_later:
        extra = _init_vector(state.argv_init, 1) + _init_vector(state.envp_init, 2)
        if extra:
            await printk(KERN_NOTICE + "Unknown kernel command line parameters \"%s\", "
                         "will be passed to user space.\n", " ".join(extra))
    if rest:
        for tok in rest:
            if tok.name == "--" and tok.value is None:
                break  # parse_args("Setting init args") stops at a second --
            if state.panic_later:
                break
            _append_init_arg(k, repair_env_string(tok))


def _create_kernel_files(k: Kernel) -> None:
    """The core's files (declared with ksim.init.kernel_file) and its parameters' sysfs
    files (``/sys/module/kernel``, ``/sys/module/printk``...)."""
    for decl in KERNEL_FILES:
        k.vfs.create(decl.path, decl.mode, decl.make(k))
    core = [p for p in k.params if p.name.split(".", 1)[0] not in k.module.classes]
    for path, kp in param_sysfs_builtin(core).items():
        k.vfs.create(path, kp.perm, param_file_ops(k, kp), owner="kernel")


# -- start_kernel ------------------------------------------------------------------------------

async def start_kernel(k: Kernel) -> None:
    """Boot to the point where init runs (or panic trying).  A core access the MMU could not
    complete is a page fault Oops of the current task (D11): the idle task (``Attempted to kill
    the idle task!``) until rest_init, then init."""
    try:
        k.init.setup_table = list(SETUP_TABLE)
        _register_modules(k)
        log = k.printk.log_line
        log(LOGLEVEL_NOTICE, BANNER % k.release)
        try:
            zones = await setup_arch(k)
        except EarlyPanic as exc:
            await panic("%s", str(exc))
        await setup_command_line(k)
        try:
            setup_per_cpu_areas(k)
        except MemoryError:
            await panic("cannot initialize percpu area (err=%d)", -ENOMEM)
        build_all_zonelists(k, zones)
        await printk(KERN_NOTICE + "Kernel command line: %s\n", k.init.boot_command_line)
        await parse_boot_args(k)
        setup_log_buf(k, early=False)
        # vfs_caches_init_early(): the dentry and inode hash tables, from memblock
        try:
            alloc_large_system_hash(k, "Dentry cache", 8, 13, zones)
            alloc_large_system_hash(k, "Inode-cache", 8, 14, zones)
        except MemoryError as exc:
            await panic("%s", str(exc))
        _create_kernel_files(k)
        for name, mod in k.module.instances.items():
            if mod.builtin:
                add_param_files(k, name, list(mod.kparams.values()))
        # mm_init(): mem_init() allocates the bounce buffer, then memblock_free_all()
        k.setup.swiotlb = swiotlb_init(k, k.layout.max_pfn if k.layout else 0)
        await mem_init_print_info(k, zones)
        k.idle_task.comm = "swapper/0"  # sched_init(): init_idle() names the boot CPU's idle task
        await register_console(k.serial.console())
        if k.init.panic_later:  # start_kernel(), right after console_init() (P8)
            await panic("Too many boot %s vars at `%s'", k.init.panic_later, k.init.panic_param)
        await smp_init(k)
        await rest_init(k)
    except (PhysAddrError, PageFault) as exc:
        await page_fault_oops(exc)
        # A die notifier stopped the oops: the faulting instruction runs again, and faults
        # again, forever.
        detail = "ksim: boot hung at a page fault a die notifier keeps stopping (%s)" % exc
        k.reports.append(Report("hang", detail, detail))
        raise MachineHang(detail) from None


async def setup_command_line(k: Kernel) -> None:
    """setup_command_line(): two copies of the command line from memblock.  A command line of
    COMMAND_LINE_SIZE bytes without a NUL traps in the fortified strlen() (P1): a BUG this
    early is an early exception, and the CPU halts; only a boot console shows it."""
    assert k.memblock is not None
    if k.init.cmdline_overflow:
        bug = "kernel BUG at lib/string_helpers.c:1027!"
        await printk(KERN_EMERG + "detected buffer overflow in __fortify_strlen\n")
        await printk(KERN_DEFAULT + "------------[ cut here ]------------\n")
        await printk(KERN_CRIT + "%s\n", bug)
        early_printk(k, "PANIC: early exception 0x06 IP 10:%x error 0 cr2 0x%x\n" % (
            FORTIFY_PANIC_UD2 + k.kaslr.kaslr_offset(),
            k.layout.page_offset if k.layout is not None else 0))
        regs = ["CPU: 0 PID: 0 Comm: swapper %s %s #1" % (taint_string(k.panic.taints),
                                                          k.release),
                "RIP: 0010:fortify_panic+0xf/0x11", "Call Trace:", " <TASK>",
                " start_kernel+0x136/0x70f", " secondary_startup_64_no_verify+0xe5/0xeb",
                " </TASK>"]
        for line in regs:
            await printk(KERN_DEFAULT + "%s\n", line)
        k.reports.append(Report("bug", bug, "\n".join([bug] + regs)))
        raise MachineHalt("detected buffer overflow in __fortify_strlen")
    length = len(k.init.boot_command_line) + 1
    k.memblock.memblock_alloc(length, 64, contents="saved_command_line")
    k.memblock.memblock_alloc(length, 64, contents="static_command_line")


async def rest_init(k: Kernel) -> None:
    """pid 1 runs the initcalls (kernel_init_freeable), then becomes init."""
    state = k.init
    k.init_task = k.new_task("swapper/0")
    set_current(k.init_task)
    # rest_init(): the scheduler can schedule from here on; the initcalls run in this state
    # (blocking chains take their lock, might_sleep() reports)
    state.system_state = SYSTEM_SCHEDULING
    for level in INITCALL_LEVELS:
        if level == "early" and not k.setup.trampoline:
            await panic("Real mode trampoline was not allocated")  # do_init_real_mode()
        if level == "device":
            # rootfs_initcall(pci_iommu_init), rootfs_initcall(populate_rootfs)
            if k.setup.swiotlb:
                swiotlb_print_info(k, k.setup.swiotlb)
            populate_rootfs(k)
            # arch/x86/kernel/setup.c's __initcall(register_kernel_offset_dumper): linked
            # before any driver
            atomic_notifier_chain_register(k.chains.panic_notifier_list,
                                           NotifierBlock(dump_kernel_offset))
        for mod in list(k.module.instances.values()):
            if mod.builtin and mod.initcall == level:
                await do_one_initcall(k, mod)
        await trio.sleep(0.001)  # each initcall level costs a little virtual time
    # console_on_rootfs(): /dev/console needs a console with a tty behind it
    if not any(con.device is not None for con in k.printk.console_drivers):
        await printk(KERN_ERR + "Warning: unable to open an initial console.\n")
    # printk_late_init() (modern) only drops boot consoles living in init memory, which no
    # ksim console does: a leftover boot console stays until a real preferred one registers
    # (C4h).
    await printk(KERN_INFO + "Freeing unused kernel image (initmem) memory: %uK\n",
                 k.image.init_k)
    state.system_state = SYSTEM_RUNNING
    await run_init_process(k)


async def run_init_process(k: Kernel) -> None:
    """Pick init (P9) and give it argv/envp; ``Run %s as init process`` (pr_info + pr_debug)."""
    # With an initramfs, its /init runs unless rdinit= names another program, which the
    # initramfs lacks (P9); without one, rdinit= only has its effect on argv.
    # run_init_process() logs before kernel_execve(), so a missing init= program is still
    # announced (with its argv/envp) before the panic.
    state = k.init
    command = state.execute_command
    if k.boot_params.ramdisk_size and state.ramdisk_execute_command in (None, RDINIT_DEFAULT):
        command = RDINIT_DEFAULT
    elif command is None:
        command = INIT_PROGRAMS[0]
    state.argv_init[0] = command
    argv = _init_vector(state.argv_init, 0)
    envp = _init_vector(state.envp_init, 0)
    await printk(KERN_INFO + "Run %s as init process\n", command)
    await printk("\x017  with arguments:\n")
    for arg in argv:
        await printk("\x017    %s\n", arg)
    await printk("\x017  with environment:\n")
    for env in envp:
        await printk("\x017    %s\n", env)
    if command not in INIT_PROGRAMS and not (command == RDINIT_DEFAULT
                                             and k.boot_params.ramdisk_size):
        await panic("Requested init %s failed (error %d).", command, -ENOENT)
    k.init_task.comm = command.rsplit("/", 1)[-1][:15]
    state.init_argv = argv
    state.init_envp = envp
    k.vfs.create("/proc/1/cmdline", 0o444, text_reader(
        lambda: "".join(a + "\0" for a in state.init_argv)))
    k.vfs.create("/proc/1/environ", 0o400, text_reader(
        lambda: "".join(e + "\0" for e in state.init_envp)))
    k.vfs.create("/proc/1/comm", 0o644, text_reader(
        lambda: state.init_argv[0].rsplit("/", 1)[-1][:15] + "\n"))
