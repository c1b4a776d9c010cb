"""The kernel's tables of boot options, core parameters and files (include/linux/init.h).

In Linux, ``early_param("loglevel", loglevel)`` and ``__setup("console=", console_setup)``
each put a ``struct obs_kernel_param`` into the ``.init.setup`` section of the object file
that declares them, ``core_param(panic, panic_timeout, int, 0644)`` puts a ``struct
kernel_param`` into ``__param``, and the linker concatenates every file's entries in link
order; ``start_kernel`` then walks the tables.  That is why a boot option is declared next
to the code it configures, and why init/main.c knows no option of printk's or panic's.

ksim does the same at import time: a core module declares its options, parameters and
``/proc``/``sysfs`` files with the decorators below, next to the state they configure, and
they land in module-level tables in import order (ksim's link order).  A plugin uses the
same two decorators on methods of its :class:`~ksim.module.KernelModule`; they are bound to
the module instance of each boot and come after the core's entries, as a driver is linked
after the core kernel.

Handlers are ``async def``: they can printk and run driver code, so they may be preemption
points (the project's rule: async iff a function can be a preemption point or run driver
code).  That is checked once, when the handler is declared.
"""

from __future__ import annotations

import builtins
import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from ksim.bug import is_driver_bug
from ksim.cmdline import parameq, parameqn, split_args
from ksim.kern_levels import LOGLEVEL_WARNING
from ksim.params import KernelParam, ParamOps, check_perm, param_ops_for

if TYPE_CHECKING:
    from ksim.fs import ProcOps
    from ksim.kernel import Kernel

__all__ = [
    "BootHandler", "CoreParam", "KernelFile", "ObsKernelParam", "CORE_PARAMS", "KERNEL_FILES",
    "SETUP_TABLE", "core_param", "early_param", "kernel_file", "require_async", "setup",
]

SetupFn = Callable[[Any], Awaitable[int]]

# enum system_states (include/linux/kernel.h); the variable is init/main.c's.
SYSTEM_BOOTING = "booting"
SYSTEM_SCHEDULING = "scheduling"  # from rest_init(): the initcalls run in this state
SYSTEM_RUNNING = "running"
SYSTEM_HALT = "halt"
SYSTEM_POWER_OFF = "power_off"
SYSTEM_RESTART = "restart"
F = TypeVar("F", bound=Callable[..., Any])


def require_async(fn: object, what: str) -> None:
    """Refuse a callback that is not ``async def``: every driver callback is a coroutine.

    Checked where the callback is registered, so a mistake is reported at its source rather
    than as a ``TypeError`` deep inside a console flush or a notifier walk.
    """
    if not inspect.iscoroutinefunction(fn):
        name = getattr(fn, "__qualname__", None) or repr(fn)
        raise TypeError(f"{what} {name} must be an 'async def' function (ksim callbacks are "
                        "coroutines: they can printk and be preemption points)")


@attrs.frozen
class ObsKernelParam:
    """``struct obs_kernel_param``: one ``__setup`` (prefix match, P11) or ``early_param``
    (whole name, P12) entry.  ``setup_func`` None is an obsolete option (P11)."""

    str: builtins.str
    setup_func: SetupFn | None
    early: bool
    owner: builtins.str = "kernel"


@attrs.frozen
class BootHandler:
    """A boot option declared on a plugin method; bound to the module instance at boot.

    ``core`` marks code a patch adds to the core kernel (the 2009 memconsole appended its
    ``__setup`` to mm/bootmem.c): it runs whenever the plugin is present, built in or not.
    """

    name: str
    method: str
    early: bool
    core: bool


@attrs.frozen
class CoreParam:
    """``core_param()`` / a built-in ``module_param`` of core code: the sysfs file lives under
    ``/sys/module/<text before the dot>/parameters`` (``kernel`` without a dot, P18).

    ``storage`` is the variable: ``"panic.panic_timeout"`` is ``kernel.panic.panic_timeout``.
    """

    name: str
    type: str
    perm: int
    storage: str


@attrs.frozen
class KernelFile:
    """A file the core creates at boot: ``make(kernel)`` returns its :class:`ProcOps`."""

    path: str
    mode: int
    make: Callable[[Kernel], ProcOps]


SETUP_TABLE: list[ObsKernelParam] = []
CORE_PARAMS: list[CoreParam] = []
KERNEL_FILES: list[KernelFile] = []


def _is_method(fn: Callable[..., Any]) -> bool:
    qualname = fn.__qualname__
    if "<locals>" in qualname:
        raise TypeError(f"boot option handler {qualname} is a local function: declare boot "
                        "options at import time, at module level or as methods of a "
                        "KernelModule")
    return qualname != fn.__name__


def _declare(name: str, early: bool, core: bool) -> Callable[[F], F]:
    def mark(fn: F) -> F:
        require_async(fn, "the early_param handler" if early else "the __setup handler")
        if _is_method(fn):
            fn.__ksim_boot_handler__ = BootHandler(name, fn.__name__, early, core)  # type: ignore[attr-defined]
        else:
            SETUP_TABLE.append(ObsKernelParam(name, fn, early))
        return fn
    return mark


def setup(name: str, *, core: bool = False) -> Callable[[F], F]:
    """``__setup(name, fn)``: ``fn`` gets the text after the prefix and returns 1 if it
    consumed the option; 0 passes the word on to later handlers and to init (P11)."""
    return _declare(name, False, core)


def early_param(name: str, *, core: bool = False) -> Callable[[F], F]:
    """``early_param(name, fn)``: ``fn`` gets the value (None without ``=``) and returns 0, or
    non-zero for ``Malformed early option`` (P12)."""
    return _declare(name, True, core)


def core_param(name: str, type: str, perm: int, storage: str) -> None:
    """``core_param(name, var, type, perm)``: a boot-line and sysfs parameter of core code."""
    check_perm(perm)
    CORE_PARAMS.append(CoreParam(name, type, perm, storage))


def kernel_file(path: str, mode: int) -> Callable[[Callable[[Kernel], ProcOps]],
                                                  Callable[[Kernel], ProcOps]]:
    """Declare a file the core creates at boot; the decorated function builds its ops."""
    def declare(make: Callable[[Kernel], ProcOps]) -> Callable[[Kernel], ProcOps]:
        KERNEL_FILES.append(KernelFile(path, mode, make))
        return make
    return declare


def resolve(kernel: object, storage: str) -> tuple[object, str]:
    """``"panic.panic_timeout"`` → ``(kernel.panic, "panic_timeout")``."""
    *path, attr = storage.split(".")
    obj = kernel
    for part in path:
        obj = getattr(obj, part)
    return obj, attr


def bind_core_params(kernel: object) -> list[Any]:
    """One :class:`~ksim.params.KernelParam` per declared core parameter, bound to ``kernel``."""
    ops_cache: dict[str, ParamOps] = {}
    out = []
    for decl in CORE_PARAMS:
        ops = ops_cache.get(decl.type) or ops_cache.setdefault(decl.type,
                                                               param_ops_for(decl.type))
        out.append(KernelParam(decl.name, ops, decl.perm, storage=resolve(kernel, decl.storage)))
    return out


# -- walking the tables (init/main.c's do_early_param and obsolete_checksetup) --------------
# They live here, beside the tables, because setup_arch (ksim.setup) runs the early pass
# and init/main.c (ksim.main) runs setup_arch: the walkers belong to neither.

async def parse_early_param(kernel: Kernel) -> None:
    """P12: every early handler whose name equals the word's name, in command-line order; a
    ``console`` word also runs the ``earlycon`` handlers.  The pass stops at ``--``."""
    table = kernel.init.setup_table
    for tok in split_args(kernel.init.boot_command_line):
        if tok.name == "--" and tok.value is None:
            break
        for p in table:
            if p.early and p.setup_func is not None and (
                    parameq(tok.name, p.str) or (tok.name == "console" and p.str == "earlycon")):
                ret = await _call_setup(kernel, p, tok.value)
                if ret != 0:
                    kernel.printk.log_line(LOGLEVEL_WARNING,
                                           "Malformed early option '%s'" % tok.name)


async def _call_setup(kernel: Kernel, p: ObsKernelParam, value: str | None) -> object:
    """Run a ``__setup``/``early_param`` handler; an exception in it is a bug in that code,
    reported as an Oops (early in boot the idle task dies: a panic, as in Linux)."""
    assert p.setup_func is not None
    with kernel.hangcheck.running(_handler_name(p)):
        try:
            return await p.setup_func(value)
        except BaseException as exc:
            if not is_driver_bug(exc):
                raise
            await kernel.driver_bug(exc, _handler_name(p))
            return 0


async def obsolete_checksetup(kernel: Kernel, line: str) -> bool:
    """P11: ``__setup`` prefix matching (first consumer wins; a handler returning 0 passes
    the word on); an early param of the same name counts as handled."""
    had_early = False
    for p in kernel.init.setup_table:
        n = len(p.str)
        if not parameqn(line, p.str, n):
            continue
        if p.early:
            if line[n:n + 1] in ("", "="):
                had_early = True
        elif len(line) >= n:
            if p.setup_func is None:
                kernel.printk.log_line(LOGLEVEL_WARNING,
                                       "Parameter %s is obsolete, ignored" % p.str)
                return True
            consumed = await _call_setup(kernel, p, line[n:])
            if consumed:
                return True
    return had_early


def _handler_name(p: ObsKernelParam) -> str:
    return getattr(p.setup_func, "__name__", p.str)
