"""The boot sequence (init/main.c, arch/x86/kernel/setup.c, kernel/printk's early params).

``start_kernel`` runs the steps of a modern x86-64 boot that matter to consoles, printk,
parameters and boot memory, in Linux's order (P1): the banner; ``setup_arch`` (early
parameters, the memory map, memblock, memtest); the ``Kernel command line`` line; the
"Booting kernel" parse with ``__setup`` handlers and unknown options passed to init (P5..P10);
the console; the initcalls; and init itself, whose argv and envp become ``/proc/1/cmdline``
and ``/proc/1/environ``.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable

import trio

from ksim.cmdline import Token, get_option, kstrtouint, memparse, parameq, parameqn, \
    repair_env_string, split_args
from ksim.console import register_console
from ksim.current import set_current
from ksim.errno import EINVAL, ENOENT
from ksim.fs import ProcOps, text_reader
from ksim.locking import render_lock_stat
from ksim.kernel import KERNEL_IMAGE_SIZE, KERNEL_IMAGE_START, Kernel
from ksim.memblock import Memblock
from ksim.memory import PAGE_OFFSET_DEFAULT, PAGE_SIZE, MemoryLayout
from ksim.module import INITCALL_LEVELS
from ksim.notifier import NotifierBlock, atomic_notifier_chain_register
from ksim.module_loader import add_param_files, do_one_initcall, instantiate, param_file_ops
from ksim.panic import panic
from ksim.params import KernelParam, param_ops_bool, param_ops_int, param_sysfs_builtin, \
    parse_args
from ksim.printk import CONSOLE_LOGLEVEL_DEBUG, CONSOLE_LOGLEVEL_QUIET, KERN_EMERG, KERN_INFO, \
    KERN_NOTICE, LOG_BUF_LEN_DEFAULT, LOGLEVEL_INFO, LOGLEVEL_NOTICE, LOGLEVEL_WARNING, \
    LOGLEVEL_ERR, printk, record_kmsg_text
from ksim.reboot import SYSTEM_RUNNING

MAX_INIT_ARGS = 32  # CONFIG_INIT_ENV_ARG_LIMIT (P8)
MAX_INIT_ENVS = 32
LOG_BUF_LEN_MAX = 1 << 31
MEMTEST_PATTERNS = (0, 0xFFFFFFFFFFFFFFFF, 0x5555555555555555, 0xAAAAAAAAAAAAAAAA,
                    0x1111111111111111, 0x2222222222222222, 0x4444444444444444,
                    0x8888888888888888, 0x3333333333333333, 0x6666666666666666,
                    0x9999999999999999, 0xCCCCCCCCCCCCCCCC, 0x7777777777777777,
                    0xBBBBBBBBBBBBBBBB, 0xDDDDDDDDDDDDDDDD, 0xEEEEEEEEEEEEEEEE,
                    0x7A6C7258554E494C)  # mm/memtest.c: the last pass writes 0
KERNEL_IMAGE_SECTIONS_K = (512, 192, 256, 2048, 64)  # code, rwdata, rodata, init, bss: 3 MiB
INIT_PROGRAMS = ("/sbin/init", "/etc/init", "/bin/init", "/bin/sh")
BANNER = ("Linux version %s (ksim@ksim) (gcc (Debian 12.2.0-14) 12.2.0, GNU ld 2.40) "
          "#1 SMP PREEMPT_DYNAMIC Sat Jun 13 00:00:00 UTC 2009")


# -- the kernel's own early params and __setup handlers -------------------------------------

def _register_core(k: Kernel) -> None:
    pk = k.printk

    def loglevel(val: str | None) -> int:
        rc, value, _ = get_option(val or "")
        if rc:
            pk.console_loglevel = value
            return 0
        return -EINVAL

    def quiet(val: str | None) -> int:
        pk.console_loglevel = CONSOLE_LOGLEVEL_QUIET
        return 0

    def debug(val: str | None) -> int:
        pk.console_loglevel = CONSOLE_LOGLEVEL_DEBUG
        return 0

    def ignore_loglevel(val: str | None) -> int:
        k.param("printk.ignore_loglevel").value = True
        k.log(LOGLEVEL_INFO, "printk: debug: ignoring loglevel setting.")  # pr_fmt (C10)
        return 0

    def log_buf_len(val: str | None) -> int:
        if val is None:
            return -EINVAL
        size, _ = memparse(val)
        if size > LOG_BUF_LEN_MAX:
            size = LOG_BUF_LEN_MAX
            k.log(LOGLEVEL_ERR, "printk: log_buf over 2G is not supported.")
        if size:
            size = 1 << (size - 1).bit_length()
        if size > pk.log.size:
            k.new_log_buf_len = size
        return 0

    def mem(val: str | None) -> int:
        if val is None:
            return -EINVAL
        size, _ = memparse(val)
        if size == 0:
            return -EINVAL
        k.mem_limit = size
        return 0

    def memtest(val: str | None) -> int:
        if val is None:
            k.memtest_patterns = len(MEMTEST_PATTERNS)
            return 0
        try:
            k.memtest_patterns = kstrtouint(val, 0)
        except Exception:
            return -EINVAL
        return 0

    def oops(val: str | None) -> int:
        if val is None:
            return -EINVAL
        if val == "panic":
            k.panic_on_oops = True
        return 0

    def keep_bootcon(val: str | None) -> int:
        k.consoles.keep_bootcon = True
        k.log(LOGLEVEL_INFO, "printk: debug: skip boot console de-registration.")
        return 0

    def no_hash_pointers(val: str | None) -> int:
        pk.formatter.hash_pointers = False
        for line in ("**********************************************************",
                     "**   NOTICE NOTICE NOTICE NOTICE NOTICE NOTICE NOTICE   **",
                     "**                                                      **",
                     "** This system shows unhashed kernel memory addresses   **",
                     "** via the console, logs, and other interfaces. This    **",
                     "** might reduce the security of your system.            **",
                     "**                                                      **",
                     "**   NOTICE NOTICE NOTICE NOTICE NOTICE NOTICE NOTICE   **",
                     "**********************************************************"):
            k.log(LOGLEVEL_WARNING, line)
        return 0

    def page_offset(val: str | None) -> int:
        # ksim's handle on the direct-map base (M3, F6): a fixed value, or "random" for a
        # KASLR-like per-boot base derived from the seed and the boot count.
        if val is None:
            return -EINVAL
        if val == "random":
            rng = random.Random(k.seed * 1_000_003 + k.machine.boot_count)
            k.page_offset = PAGE_OFFSET_DEFAULT + (rng.getrandbits(10) << 30)
            return 0
        try:
            k.page_offset = int(val, 0)
        except ValueError:
            return -EINVAL
        return 0

    def nr_cpus(val: str | None) -> int:
        # arch/x86: the number of possible CPUs; the others do not exist for this boot.
        rc, value, _ = get_option(val or "")
        if not rc or value < 1:
            return -EINVAL
        k.nr_cpu_ids = min(k.nr_cpu_ids, value)
        k.nr_online = min(k.nr_online, value)
        return 0

    def maxcpus(val: str | None) -> int:
        # kernel/cpu.c: bring up at most N CPUs at boot; the rest stay present but offline.
        rc, value, _ = get_option(val or "")
        if not rc or value < 0:
            return -EINVAL
        k.nr_online = max(min(k.nr_online, value), 1)
        return 0

    for name, fn in (("loglevel", loglevel), ("quiet", quiet), ("debug", debug),
                     ("nr_cpus", nr_cpus), ("maxcpus", maxcpus),
                     ("ignore_loglevel", ignore_loglevel), ("log_buf_len", log_buf_len),
                     ("mem", mem), ("memtest", memtest), ("oops", oops),
                     ("keep_bootcon", keep_bootcon), ("no_hash_pointers", no_hash_pointers),
                     ("ksim.page_offset", page_offset)):
        k.early_handlers.append((name, fn, "kernel"))

    def init_setup(val: str) -> int:
        k.execute_command = val
        for i in range(1, MAX_INIT_ARGS):  # P9: options before init= are discarded
            k.argv_init[i] = None
        return 1

    def rdinit_setup(val: str) -> int:
        k.ramdisk_execute_command = val
        for i in range(1, MAX_INIT_ARGS):
            k.argv_init[i] = None
        return 1

    for prefix, fn in (("console=", k.consoles.console_setup), ("init=", init_setup),
                       ("rdinit=", rdinit_setup)):
        k.setup_handlers.append((prefix, fn, "kernel"))

    # core_param()s and printk's built-in module params (P18: /sys/module/kernel, /printk).
    k.kernel_params += [
        KernelParam("panic", param_ops_int, 0o644, value=0),
        KernelParam("initcall_debug", param_ops_bool, 0o644, value=False),
        KernelParam("pause_on_oops", param_ops_int, 0o644, value=0),
        KernelParam("printk.time", param_ops_bool, 0o644, value=True),
        KernelParam("printk.ignore_loglevel", param_ops_bool, 0o644, value=False),
    ]


def _register_modules(k: Kernel) -> None:
    """Every plugin present gets an instance; built-in ones join the boot-line tables."""
    for name, cls in k.module_classes.items():
        builtin = name in k.builtin
        mod = instantiate(k, cls, builtin)
        for handler in cls.boot_handlers():
            if not (builtin or handler.core):
                continue
            fn = getattr(mod, handler.method)
            if handler.early:
                k.early_handlers.append((handler.name, fn, name))
            else:
                k.setup_handlers.append((handler.name, fn, name))
        if builtin:
            k.kernel_params += list(mod.kparams.values())


# -- command line ------------------------------------------------------------------------------

async def _call(fn: Callable[..., object], arg: object) -> object:
    result = fn(arg)
    if inspect.isawaitable(result):
        result = await result
    return result


async def parse_early_param(k: Kernel) -> None:
    """P12: every early handler whose name equals the word's name, in command-line order."""
    for tok in split_args(k.boot_command_line):
        if tok.name == "--" and tok.value is None:
            break
        for name, fn, _owner in list(k.early_handlers):
            if parameq(tok.name, name) or (tok.name == "console" and name == "earlycon"):
                if await _call(fn, tok.value) != 0:
                    k.log(LOGLEVEL_WARNING, "Malformed early option '%s'" % tok.name)


async def obsolete_checksetup(k: Kernel, line: str) -> bool:
    """P11: ``__setup`` prefix matching; early params of the same name count as handled."""
    had_early = False
    for prefix, fn, _owner in list(k.setup_handlers):
        n = len(prefix)
        if parameqn(line, prefix, n) and len(line) >= n:
            if fn is None:
                k.log(LOGLEVEL_WARNING, "Parameter %s is obsolete, ignored" % prefix)
                return True
            if await _call(fn, line[n:]):
                return True
    for name, _fn, _owner in k.early_handlers:
        n = len(name)
        if parameqn(line, name, n) and line[n:n + 1] in ("", "="):
            had_early = True
    return had_early


def _append_init_arg(k: Kernel, param: str) -> None:
    i = 0
    while k.argv_init[i] is not None:
        if i == MAX_INIT_ARGS:
            k.panic_later, k.panic_param = "init", param
        i += 1
    k.argv_init[i] = param


async def unknown_bootoption(k: Kernel, tok: Token) -> None:
    """P6: __setup, then early params, then module-looking names, then init's env or argv."""
    param = repair_env_string(tok)
    if await obsolete_checksetup(k, param):
        return
    if "." in tok.name:
        return  # an unused module parameter; modprobe re-reads /proc/cmdline (P6 step 4)
    if k.panic_later:
        return
    if tok.value is not None:
        prefix_len = len(tok.name) + 1
        i = 0
        while k.envp_init[i] is not None:
            if i == MAX_INIT_ENVS:
                k.panic_later, k.panic_param = "env", param
            if param[:prefix_len] == k.envp_init[i][:prefix_len]:  # P7: name= replaces
                break
            i += 1
        k.envp_init[i] = param
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
    tokens = split_args(k.boot_command_line)
    params = k.kernel_params
    rest: list[Token] | None = None
    err = 0
    for index, tok in enumerate(tokens):
        if tok.name == "--" and tok.value is None:
            # parse_args() returns ``err ?: args``: after a bad value anywhere before the
            # ``--``, start_kernel() gets an error pointer and init never sees the rest (P4).
            rest = None if err else tokens[index + 1:]
            break
        unknown: list[Token] = []
        result = parse_args("Booting kernel", [tok], params, -1, -1,
                            lambda t, doing: unknown.append(t) or 0, k.log)
        err = result.err or err
        for utok in unknown:
            await unknown_bootoption(k, utok)
    k.params_changed()
    if not k.panic_later:
        extra = _init_vector(k.argv_init, 1) + _init_vector(k.envp_init, 2)
        if extra:
            await printk(KERN_NOTICE + "Unknown kernel command line parameters \"%s\", "
                         "will be passed to user space.\n", " ".join(extra))
    if rest:
        for tok in rest:
            if tok.name == "--" and tok.value is None:
                break  # parse_args("Setting init args") stops at a second --
            if k.panic_later:
                break
            _append_init_arg(k, repair_env_string(tok))


async def dump_kernel_offset(nb: NotifierBlock, action: int, data: object) -> int:
    """x86's panic notifier: ksim's kernel text is never randomised (no KASLR, N14)."""
    await printk(KERN_EMERG + "Kernel Offset: disabled\n")
    return 0


# -- setup_arch: memory ---------------------------------------------------------------------

def e820_memory_setup(k: Kernel) -> list[str]:
    """e820__memory_setup(): the firmware map, printed *before* the early parameters run."""
    return ["BIOS-provided physical RAM map:",
            "BIOS-e820: [mem 0x%016x-0x%016x] usable" % (0, k.mem.size - 1)]


def setup_memory(k: Kernel) -> list[str]:
    """The x86 memory map after ``mem=``, memblock and the kernel image (M2, M7).

    e820__finish_early_params() prints the ``user:`` map once the early parameters ran.
    """
    lines: list[str] = []
    if k.mem_limit is not None and k.mem_limit < k.mem.size:
        lines += ["user-defined physical RAM map:",
                  "user: [mem 0x%016x-0x%016x] usable" % (0, k.mem_limit - 1)]
    kernel_end = KERNEL_IMAGE_START + KERNEL_IMAGE_SIZE
    k.layout = MemoryLayout.for_ram(k.mem.size, mem_limit=k.mem_limit,
                                    page_offset=k.page_offset or PAGE_OFFSET_DEFAULT,
                                    kernel_end=kernel_end)
    k.memblock = Memblock(k.layout.max_pfn, log=k.log)
    k.memblock.memblock_add(0, k.layout.max_pfn * PAGE_SIZE)
    k.memblock.memblock_reserve(0, PAGE_SIZE)  # the BIOS data area, page 0
    k.memblock.memblock_reserve(KERNEL_IMAGE_START, KERNEL_IMAGE_SIZE)
    return lines


def early_memtest(k: Kernel) -> None:
    """``memtest=N``: write patterns over free memory; the last pass leaves zeros (lazily)."""
    n = k.memtest_patterns
    if not n:
        return
    k.log(LOGLEVEL_INFO, "early_memtest: # of tests: %u" % n)
    assert k.memblock is not None
    ranges = list(k.memblock.free_ranges())
    for i in range(n - 1, -1, -1):
        pattern = MEMTEST_PATTERNS[i % len(MEMTEST_PATTERNS)]
        for start, end in ranges:
            k.log(LOGLEVEL_INFO, "  0x%016x - 0x%016x pattern %016x" % (
                start, end, int.from_bytes(pattern.to_bytes(8, "little"), "big")))
    k.mem.scrub(ranges, 0)


def setup_log_buf(k: Kernel) -> None:
    """x86 setup_arch()'s ``setup_log_buf(1)``: move to the ``log_buf_len=`` buffer (C16).

    The early records are copied over; ``early log buf free`` is what they left of the
    static buffer, each costing its text rounded up to 8 bytes plus an 8-byte block id, as
    in the lockless ring buffer's data ring.
    """
    size = getattr(k, "new_log_buf_len", 0)
    if not size:
        return
    free = LOG_BUF_LEN_DEFAULT
    for record in k.printk.log:
        text_len = len(record.text.encode(errors="surrogatepass"))
        if text_len:
            free -= (text_len + 8 + 7) & ~7
    k.printk.log.resize(size)
    k.new_log_buf_len = 0
    k.log(LOGLEVEL_INFO, "printk: log_buf_len: %u bytes" % size)
    k.log(LOGLEVEL_INFO, "printk: early log buf free: %u(%u%%)" % (
        free, free * 100 // LOG_BUF_LEN_DEFAULT))


# -- proc files of the core ------------------------------------------------------------------

def _proc_sys_int(k: Kernel, getter: Callable[[], int], setter: Callable[[int], None]) -> ProcOps:
    def read(file, count: int, pos: int) -> bytes:  # type: ignore[no-untyped-def]
        return ("%d\n" % getter()).encode()[pos:pos + count]

    def write(file, data: bytes) -> int:  # type: ignore[no-untyped-def]
        try:
            setter(int(data.decode().strip(), 0))
        except ValueError:
            return -EINVAL
        return len(data)

    return ProcOps(read, write)


def _proc_sys_printk(k: Kernel) -> ProcOps:
    pk = k.printk

    def write(file, data: bytes) -> int:  # type: ignore[no-untyped-def]
        fields = data.decode(errors="replace").split()
        names = ("console_loglevel", "default_message_loglevel", "minimum_console_loglevel",
                 "default_console_loglevel")
        try:
            values = [int(f, 0) for f in fields[:4]]
        except ValueError:
            return -EINVAL
        for name, value in zip(names, values):
            setattr(pk, name, value)
        return len(data)

    return ProcOps(text_reader(pk.proc_sys_printk).proc_read, write)


def create_core_files(k: Kernel) -> None:
    vfs = k.vfs
    vfs.create("/proc/cmdline", 0o444, text_reader(lambda: k.boot_command_line + "\n"))
    vfs.create("/proc/consoles", 0o444, text_reader(k.consoles.proc_consoles))
    vfs.create("/proc/lock_stat", 0o400, text_reader(lambda: render_lock_stat(k.locks_seen)))
    vfs.create("/proc/sys/kernel/lock_stat", 0o644, _proc_sys_int(
        k, lambda: int(k.lock_stat), lambda v: setattr(k, "lock_stat", bool(v))))
    vfs.create("/proc/version", 0o444, text_reader(lambda: BANNER % k.release + "\n"))
    vfs.create("/proc/sys/kernel/printk", 0o644, _proc_sys_printk(k))
    vfs.create("/proc/sys/kernel/panic", 0o644, _proc_sys_int(
        k, lambda: k.panic_timeout, lambda v: _set_panic(k, v)))
    vfs.create("/proc/sys/kernel/panic_on_oops", 0o644, _proc_sys_int(
        k, lambda: int(k.panic_on_oops), lambda v: setattr(k, "panic_on_oops", bool(v))))
    vfs.create("/proc/sys/kernel/tainted", 0o444, text_reader(lambda: "%d\n" % _taint_mask(k)))
    vfs.create("/proc/modules", 0o444, text_reader(lambda: "".join(
        "%s 16384 0 - Live 0x0000000000000000\n" % name for name in reversed(k.module_names()))))
    vfs.create("/proc/iomem", 0o444, text_reader(lambda: _proc_iomem(k)))
    vfs.create("/dev/kmsg", 0o644, text_reader(
        lambda: "".join(record_kmsg_text(r) for r in k.printk.log)))
    for path, kp in param_sysfs_builtin([p for p in k.kernel_params if "." not in p.name
                                         or p.name.startswith("printk.")]).items():
        vfs.create(path, kp.perm, param_file_ops(k, kp), owner="kernel")


def _set_panic(k: Kernel, value: int) -> None:
    k.param("panic").value = value
    k.params_changed()


def _taint_mask(k: Kernel) -> int:
    order = "PFSRMBUDAWCIOELKXTN"
    return sum(1 << i for i, flag in enumerate(order) if flag in k.taints)


def _proc_iomem(k: Kernel) -> str:
    assert k.layout is not None and k.memblock is not None
    lines = ["00000000-%08x : System RAM" % (k.layout.max_pfn * PAGE_SIZE - 1),
             "  %08x-%08x : Kernel code" % (KERNEL_IMAGE_START,
                                             KERNEL_IMAGE_START + KERNEL_IMAGE_SIZE - 1)]
    return "\n".join(lines) + "\n"


def _proc_pid_files(k: Kernel) -> None:
    k.vfs.create("/proc/1/cmdline", 0o444, text_reader(
        lambda: "".join(a + "\0" for a in k.init_argv)))
    k.vfs.create("/proc/1/environ", 0o400, text_reader(
        lambda: "".join(e + "\0" for e in k.init_envp)))
    k.vfs.create("/proc/1/comm", 0o644, text_reader(
        lambda: k.init_argv[0].rsplit("/", 1)[-1][:15] + "\n"))


# -- start_kernel ------------------------------------------------------------------------------

def _cpu_list(n: int) -> str:
    return "0\n" if n == 1 else "0-%d\n" % (n - 1)


async def smp_init(k: Kernel) -> None:
    """Bring up the secondary CPUs (kernel/smp.c): ``maxcpus=`` of them, within ``nr_cpus=``."""
    for cpu in k.cpus[k.nr_online:]:
        cpu.online = False
    await printk(KERN_INFO + "smp: Bringing up secondary CPUs ...\n")
    await printk(KERN_INFO + "smp: Brought up 1 node, %d CPU%s\n", k.nr_online,
                 "" if k.nr_online == 1 else "s")
    for name, count in (("possible", k.nr_cpu_ids), ("present", k.nr_cpu_ids),
                        ("online", k.nr_online)):
        k.vfs.create("/sys/devices/system/cpu/" + name, 0o444,
                     text_reader(lambda count=count: _cpu_list(count)))


async def start_kernel(k: Kernel) -> None:
    """Boot to the point where init runs (or panic trying)."""
    k.argv_init = ["init"] + [None] * (MAX_INIT_ARGS + 1)  # type: ignore[list-item]
    k.envp_init = ["HOME=/", "TERM=linux"] + [None] * MAX_INIT_ENVS  # type: ignore[list-item]
    _register_core(k)
    _register_modules(k)
    k.log(LOGLEVEL_NOTICE, BANNER % k.release)
    k.log(LOGLEVEL_INFO, "Command line: %s" % k.boot_command_line)
    for line in e820_memory_setup(k):
        k.log(LOGLEVEL_INFO, line)
    await parse_early_param(k)
    for line in setup_memory(k):
        k.log(LOGLEVEL_INFO, line)
    early_memtest(k)
    setup_log_buf(k)
    # arch/x86/kernel/setup.c: the first panic notifier reports the kernel text offset.
    atomic_notifier_chain_register(k.chains.panic_notifier_list,
                                   NotifierBlock(dump_kernel_offset))
    await printk(KERN_NOTICE + "Kernel command line: %s\n", k.boot_command_line)
    await parse_boot_args(k)
    create_core_files(k)
    for name, mod in k.module_instances.items():
        if mod.builtin:
            add_param_files(k, name, list(mod.kparams.values()))
    assert k.layout is not None and k.memblock is not None
    total = k.layout.max_pfn * PAGE_SIZE
    reserved = k.memblock.reserved_bytes()
    # mem_init_print_info(); the image's 3 MiB split as a small x86-64 build's would be.
    code, rwdata, rodata, init, bss = KERNEL_IMAGE_SECTIONS_K
    await printk(KERN_INFO + "Memory: %uK/%uK available (%uK kernel code, %uK rwdata, "
                 "%uK rodata, %uK init, %uK bss, %uK reserved, %uK cma-reserved)\n",
                 (total - reserved) // 1024, total // 1024, code, rwdata, rodata, init, bss,
                 reserved // 1024, 0)
    await register_console(k.serial.console())
    await smp_init(k)
    # rest_init(): pid 1 runs the initcalls, then becomes init.
    k.init_task = k.new_task("swapper/0")
    set_current(k.init_task)
    if k.panic_later:
        await panic("Too many boot %s vars at `%s'", k.panic_later, k.panic_param)
    for level in INITCALL_LEVELS:
        for mod in list(k.module_instances.values()):
            if mod.builtin and mod.initcall == level:
                await do_one_initcall(k, mod)
        await trio.sleep(0.001)  # each initcall level costs a little virtual time
    # printk_late_init() (modern) only drops boot consoles living in init memory, which no
    # ksim console does: a leftover boot console stays until a real preferred one registers
    # (C4h).
    await printk(KERN_INFO + "Freeing unused kernel image (initmem) memory: %uK\n",
                 KERNEL_IMAGE_SECTIONS_K[3])
    k.system_state = SYSTEM_RUNNING
    await run_init_process(k)


async def run_init_process(k: Kernel) -> None:
    """Pick init (P9) and give it argv/envp; ``Run %s as init process`` (pr_info + pr_debug)."""
    # ksim boots without an initramfs, so rdinit= only has its effect on argv (P9).
    # run_init_process() logs before kernel_execve(), so a missing init= program is still
    # announced (with its argv/envp) before the panic.
    command = k.execute_command
    if command is None:
        command = INIT_PROGRAMS[0]
    k.argv_init[0] = command
    argv = _init_vector(k.argv_init, 0)
    envp = _init_vector(k.envp_init, 0)
    await printk(KERN_INFO + "Run %s as init process\n", command)
    await printk("\x017  with arguments:\n")
    for arg in argv:
        await printk("\x017    %s\n", arg)
    await printk("\x017  with environment:\n")
    for env in envp:
        await printk("\x017    %s\n", env)
    if command not in INIT_PROGRAMS:
        await panic("Requested init %s failed (error %d).", command, -ENOENT)
    k.init_task.comm = command.rsplit("/", 1)[-1][:15]
    k.init_argv = argv
    k.init_envp = envp
    _proc_pid_files(k)
