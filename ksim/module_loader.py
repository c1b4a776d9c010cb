"""Loading and unloading modules (kernel/module/main.c, kernel/params.c sysfs part).

Built-in modules are set up at boot (their parameters join the boot-line table and their
``init`` runs at its initcall level); loadable ones come and go with :func:`insmod` and
:func:`rmmod`.  Either way the module's parameters appear under
``/sys/module/<name>/parameters/`` with their declared modes (P18), and a loaded module is
listed in ``/proc/modules`` and in an Oops's ``Modules linked in:``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import attrs

from ksim.current import current_kernel
from ksim.errno import EBUSY, EEXIST, EFAULT, ENOENT, errorcode
from ksim.fs import ProcFile, ProcOps, text_reader
from ksim.init import kernel_file
from ksim.module import KernelModule
from ksim.bug import is_driver_bug
from ksim.panic import driver_bug
from ksim.params import KernelParam, param_attr_store, param_sysfs_path, parse_module_args
from ksim.printk import KERN_DEBUG, KERN_WARNING, printk

if TYPE_CHECKING:
    from ksim.kernel import Kernel

__all__ = ["ModuleState", "errorcode", "insmod", "rmmod", "strerror"]


@attrs.define
class ModuleState:
    """The modules of one boot: every plugin present (``classes``), which are built in, one
    instance each (it also holds a ``core=True`` handler's results), and the live ones."""

    classes: dict[str, type[KernelModule]]
    builtin: set[str]
    instances: dict[str, KernelModule] = attrs.Factory(dict)
    live: dict[str, KernelModule] = attrs.Factory(dict)
    loading: str | None = None  # whose init is running (it owns the /proc files it creates)

    def names(self) -> list[str]:
        """Loadable modules currently loaded, as ``Modules linked in:`` lists them."""
        return [name for name, mod in self.live.items() if not mod.builtin]


@kernel_file("/proc/modules", 0o444)
def _proc_modules(k: Kernel) -> ProcOps:
    return text_reader(lambda: "".join(
        "%s 16384 0 - Live 0x0000000000000000\n" % name for name in reversed(k.module.names())))


def param_file_ops(kernel: Kernel, kp: KernelParam) -> ProcOps:
    """sysfs read/write of one parameter: ``get()`` text, ``set()`` on write (P18)."""

    async def read(file: ProcFile, count: int, pos: int) -> bytes:
        return kp.get().encode()[pos:pos + count]

    async def write(file: ProcFile, data: bytes) -> int:
        return param_attr_store(kp, data.decode(errors="replace"), kernel.printk.log_line)

    return ProcOps(proc_read=read, proc_write=write)


def add_param_files(kernel: Kernel, modname: str, params: list[KernelParam]) -> None:
    for kp in params:
        if kp.perm:
            file_name = kp.name.rsplit(".", 1)[-1] if "." in kp.name else kp.name
            kernel.vfs.create(param_sysfs_path(modname, file_name), kp.perm,
                              param_file_ops(kernel, kp), owner="module:" + modname)


def instantiate(kernel: Kernel, cls: type[KernelModule], builtin: bool) -> KernelModule:
    mod = cls(kernel, builtin)
    kernel.module.instances[cls.name] = mod
    return mod


async def do_init_module(kernel: Kernel, mod: KernelModule) -> int:
    """Run ``init``; a failure leaves the module unloaded and returns the errno."""
    from ksim.plugins import wall_budget  # the plugin loader: a boot without plugins needs none
    state = kernel.module
    state.loading = mod.name
    try:
        with kernel.hangcheck.running("%s_init" % mod.name), wall_budget(mod.name, "init",
                                                                         type(mod).__module__):
            try:
                ret = await mod.init()
            except BaseException as exc:
                if not is_driver_bug(exc):
                    raise
                await driver_bug(exc, "%s_init" % mod.name)
                ret = -EFAULT  # a die notifier stopped the oops: the module did not load
    finally:
        state.loading = None
    if ret is None:
        ret = 0
    if ret > 0:
        await printk(KERN_WARNING + "%s: '%s'->init suspiciously returned %d, it should "
                     "follow 0/-E convention\n", mod.name, mod.name, ret)
        await printk(KERN_WARNING + "%s: loading module anyway...\n", mod.name)
        ret = 0
    if ret < 0:
        return ret
    mod.live = True
    state.live[mod.name] = mod
    return 0


async def do_one_initcall(kernel: Kernel, mod: KernelModule) -> int:
    """A built-in module's initcall; failures are silent unless ``initcall_debug`` (P5)."""
    fn = "%s_init+0x0/0x80" % mod.name
    debug = kernel.init.initcall_debug
    if debug:
        await printk(KERN_DEBUG + "calling  %s @ %d\n", fn, 1)
    start = kernel.local_clock()
    ret = await do_init_module(kernel, mod)
    if debug:
        await printk(KERN_DEBUG + "initcall %s returned %d after %d usecs\n", fn, ret,
                     (kernel.local_clock() - start) // 1000)
    return ret


def strerror(errno: int) -> str:
    return os.strerror(-errno) if errno < 0 else "Success"


async def insmod(name: str, args: str | dict[str, object] | None = None, **params: object) -> int:
    """Load a module of a plugin present on this boot; returns 0 or a negative errno.

    ``params`` are ``name=value`` module parameters, as on the insmod command line; values
    are given as text (``True``/``False`` become ``Y``/``N``).
    """
    kernel = current_kernel()
    state = kernel.module
    cls = state.classes.get(name)
    if cls is None:
        return -ENOENT
    if name in state.live:
        return -EEXIST
    mod = state.instances.get(name)
    if mod is None or mod.builtin:
        mod = instantiate(kernel, cls, builtin=False)
    else:
        # The instance outlives rmmod because it also holds the core part's state (a
        # ``core=True`` handler's results); the module's parameters start afresh, as the
        # variables of a freshly loaded .ko do.
        mod.reset_params()
    words: dict[str, str | None] = {}
    if isinstance(args, dict):
        params = {**args, **params}
    elif isinstance(args, str) and args:
        err = parse_module_args(name, args, list(mod.kparams.values()), kernel.printk.log_line)
        if err:
            return err
    for key, value in params.items():
        words[key] = "Y" if value is True else "N" if value is False else (
            None if value is None else str(value))
    if words:
        err = parse_module_args(name, words, list(mod.kparams.values()), kernel.printk.log_line)
        if err:
            return err
    add_param_files(kernel, name, list(mod.kparams.values()))
    ret = await do_init_module(kernel, mod)
    if ret < 0:
        kernel.vfs.remove_owned("module:" + name)
    return ret


async def rmmod(name: str) -> int:
    """Unload a loadable module: its ``exit`` runs and its files go away."""
    kernel = current_kernel()
    state = kernel.module
    mod = state.live.get(name)
    if mod is None:
        return -ENOENT
    if mod.builtin:
        return -EBUSY  # built-in code cannot be unloaded
    try:
        await mod.exit()
    except BaseException as exc:
        if not is_driver_bug(exc):
            raise
        await driver_bug(exc, "%s_exit" % name)  # survived (a die notifier): unload anyway
    mod.live = False
    del state.live[name]
    kernel.vfs.remove_owned("module:" + name)
    return 0
