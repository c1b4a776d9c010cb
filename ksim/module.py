"""The plugin API: kernel modules (include/linux/module.h, moduleparam.h, init.h).

A ksim plugin declares a kernel module as a subclass of :class:`KernelModule`.  The class body
reads like the C file it ports: ``module_param`` declarations, ``@setup("name=")`` and
``@early_param("name")`` boot-option handlers, and ``init``/``exit``.  An *instance* holds what
the C file keeps in ``static`` variables, one instance per simulated kernel, so many kernels
can run the same driver side by side.

Built in or loadable (P19): a built-in module has its handlers and ``module.param=`` options
parsed from the command line and its ``init`` run at its initcall level; a loadable module gets
its parameters from ``insmod`` and its ``__setup`` handlers never run, exactly as a ``.ko``.
A handler declared ``core=True`` stands for code the patch adds to the core kernel (the 2009
memconsole put its ``__setup`` in mm/bootmem.c): it runs whenever the plugin is present.
The decorators are the core's own (:mod:`ksim.init`): one table, as in the kernel.
"""

from __future__ import annotations

from collections.abc import Mapping

from typing import TYPE_CHECKING, Any, ClassVar

from ksim import params as _params
from ksim.init import BootHandler, early_param, setup
from ksim.params import ParamOps, param_ops_for

if TYPE_CHECKING:
    from ksim.kernel import Kernel

__all__ = ["INITCALL_LEVELS", "BootHandler", "KernelModule", "early_param", "module_param",
           "param_ops_for", "setup"]

INITCALL_LEVELS = ("early", "core", "postcore", "arch", "subsys", "fs", "device", "late")


class module_param:  # noqa: N801 - named as the kernel macro
    """``module_param(name, type, perm)`` with a default and a description (MODULE_PARM_DESC).

    Reading the attribute on a module instance gives the parameter's current value; the value
    lives in the kernel's :class:`~ksim.params.KernelParam`, so a sysfs write is seen at once.
    """

    def __init__(self, type: str | ParamOps, default: object, perm: int, desc: str = "") -> None:
        self.ops = param_ops_for(type)
        self.type_name: str = getattr(self.ops, "name", str(type))
        self.default = default
        self.perm = perm
        self.desc = desc
        self.name = ""
        _params.check_perm(perm)

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: KernelModule | None, owner: type) -> Any:
        if instance is None:
            return self
        return instance.kparams[self.name].value

    def __set__(self, instance: KernelModule, value: object) -> None:
        instance.kparams[self.name].value = value


class KernelModule:
    """Base class of a plugin's kernel module.  Override ``init`` and ``exit``.

    ``init`` returns 0 or a negative errno; a failing module is not loaded.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    author: ClassVar[str] = ""
    license: ClassVar[str] = "GPL"
    initcall: ClassVar[str] = "device"
    source: ClassVar[str] = ""  # where the plugin was found (set by the loader)
    # For ``ksim compare``: the command line a user of this crash-log driver usually boots with
    # (``memconsole=8192``), and the files the next boot shows the saved log in (a directory
    # means every file in it).  A driver without ``crash_log_files`` cannot be compared.
    # ``crash_log_lock``: the name of the spinlock its log writes take, which the compare's
    # ``panic-driver-lock`` fault waits for another CPU to hold (None: it takes none).
    usual_cmdline: ClassVar[str] = ""
    crash_log_files: ClassVar[tuple[str, ...]] = ()
    crash_log_lock: ClassVar[str | None] = None

    @classmethod
    def crash_log_flags(cls, shown: Mapping[str, bytes]) -> list[str]:
        """What the crash-log files ``shown`` (path -> bytes, as the next boot shows them) say
        about their own damage, one line each (``ksim compare``'s *flagged* class); none by
        default: a driver that never says its log is damaged."""
        return []

    def crash_log_region(self) -> tuple[int, int] | None:
        """``(physical start, size)`` of the RAM this instance keeps its log in, None if it has
        none: where ``ksim compare``'s ``bitflips`` fault flips bits."""
        return None

    def __init__(self, kernel: Kernel, builtin: bool) -> None:
        self.kernel = kernel
        self.builtin = builtin
        self.live = False
        self.kparams: dict[str, _params.KernelParam] = {}
        # Built-in parameters are named ``modname.param`` on the boot line; a loadable
        # module's have no prefix (MODULE_PARAM_PREFIX is empty in a .ko, P17/P19).
        prefix = self.name + "." if builtin else ""
        for decl in self.module_params():
            self.kparams[decl.name] = _params.KernelParam(
                name=prefix + decl.name, ops=decl.ops, perm=decl.perm, value=decl.default)

    def reset_params(self) -> None:
        """Back to the declared defaults (what a freshly loaded .ko starts with)."""
        for decl in self.module_params():
            self.kparams[decl.name].value = decl.default

    @classmethod
    def module_params(cls) -> list[module_param]:
        found: dict[str, module_param] = {}
        for klass in reversed(cls.__mro__):
            for key, value in vars(klass).items():
                if isinstance(value, module_param):
                    found[key] = value
        return list(found.values())

    @classmethod
    def boot_handlers(cls) -> list[BootHandler]:
        handlers = []
        for klass in reversed(cls.__mro__):
            for value in vars(klass).values():
                handler = getattr(value, "__ksim_boot_handler__", None)
                if handler is not None:
                    handlers.append(handler)
        return handlers

    async def init(self) -> int:
        return 0

    async def exit(self) -> None:
        return None

    async def check_invariants(self) -> list[str]:
        """What must hold of the driver's state between operations, for ``ksim stress``.

        Called after a stress run (as the kernel's code, with the driver's own locks free
        to take) with every writer and reader finished.  Return one line per violated
        invariant, an empty list if all hold.  The default checks nothing.  A wrong return
        type or an exception is reported as a violation naming the plugin.
        """
        return []
