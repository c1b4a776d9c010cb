"""Kernel parameters: a port of kernel/params.c and the rules of include/linux/moduleparam.h.

A *kernel parameter* is a named variable plus a type (its ops) that knows how to parse text
into it and print it back.  The same object serves three ways in, as in Linux:

* the boot line: :func:`parse_args` with ``doing="Booting kernel"`` and the built-in
  parameters, whose names are ``modname.param`` (``module_param`` in built-in code) or a bare
  ``param`` (``core_param``), P5/P19;
* module loading: :func:`parse_module_args`, where names carry no prefix because
  MODULE_PARAM_PREFIX is empty in a loadable module (P17);
* sysfs: ``/sys/module/<mod>/parameters/<name>`` reads :meth:`KernelParam.get` and writes go
  through :func:`param_attr_store` (P18).

Parsing failures are :class:`~ksim.errno.KernelError` exceptions carrying the kernel's negative
errno.  When the kernel's ``set()`` op prints a message of its own before failing (a too-long
string, a too-long array), that text is the exception's ``message``; whoever catches the error
logs it at KERN_ERR, which keeps the ops free of any logging dependency and preserves the
kernel's order (the op's line first, then parse_args' summary line).

Rule ids (P5, P16 ...) refer to ``linux-semantics.md``; the core follows Linux 6.x.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from ksim.cmdline import (
    Token,
    kstrtobool,
    kstrtoint,
    kstrtol,
    kstrtos16,
    kstrtou8,
    kstrtou16,
    kstrtouint,
    kstrtoul,
    kstrtoull,
    parameq,
    split_args,
)
from ksim.errno import EACCES, EINVAL, ENOENT, ENOSPC, KernelError
from ksim.kern_levels import LOGLEVEL_ERR, LOGLEVEL_WARNING

__all__ = [
    "KernelParam",
    "Log",
    "ParamOps",
    "ParseResult",
    "UnknownHandler",
    "check_perm",
    "module_param_sysfs_setup",
    "param_array_ops",
    "param_attr_store",
    "param_ops_for",
    "param_ops_bint",
    "param_ops_bool",
    "param_ops_byte",
    "param_ops_charp",
    "param_ops_hexint",
    "param_ops_int",
    "param_ops_invbool",
    "param_ops_long",
    "param_ops_short",
    "param_ops_string",
    "param_ops_uint",
    "param_ops_ullong",
    "param_ops_ulong",
    "param_ops_ushort",
    "param_sysfs_builtin",
    "param_sysfs_path",
    "parse_args",
    "parse_module_args",
]

#: ``log(level, text)``: where parse errors go; *level* is a printk level (KERN_ERR is 3) and
#: *text* has no trailing newline.
Log = Callable[[int, str], None]

#: ``unknown(token, doing) -> errno``: called for a word that matches no parameter (P5).
UnknownHandler = Callable[[Token, str], int]


# --- Ops (P16) --------------------------------------------------------------------------------


@attrs.frozen
class ParamOps:
    """A parameter type: ``struct kernel_param_ops`` plus the name ``modinfo`` shows for it.

    ``noarg`` is KERNEL_PARAM_OPS_FL_NOARG: only such types accept a bare ``name`` without
    ``=`` (P5).  ``zero`` is the value of a zero-initialised C variable of the type, the
    default of a :class:`KernelParam` that is not given one.  ``set(val, name)`` returns the
    parsed value (*name* is only for messages); ``get(value)`` returns the sysfs text.
    """

    name: str
    noarg: bool
    zero: object
    _set: Callable[[str | None, str], object]
    _get: Callable[[Any], str]

    def parse(self, val: str | None, name: str) -> object:
        """Parse *val* for the parameter *name*; raise ``KernelError`` if it is unacceptable.

        A missing value (``None``, the word had no ``=``) is ``-EINVAL`` unless the type is
        NOARG; parse_one() applies that rule before calling any ``set()`` op (P5).
        """
        if val is None and not self.noarg:
            raise KernelError(-EINVAL)
        return self._set(val, name)

    def format(self, value: Any) -> str:
        """The text a sysfs read returns for *value*, trailing newline included (P18)."""
        return self._get(value)


def _set_bool(val: str | None, name: str) -> bool:
    # No '=' means "set": `quiet`-style flags are bool parameters given without a value.
    return kstrtobool("1" if val is None else val)


def _get_bool(value: bool) -> str:
    return "Y\n" if value else "N\n"


def _set_invbool(val: str | None, name: str) -> bool:
    return not _set_bool(val, name)


def _get_invbool(value: bool) -> str:
    # Stored inverted, shown in the user's sense: writing 1 stores False and reads back Y.
    return "N\n" if value else "Y\n"


def _set_bint(val: str | None, name: str) -> int:
    return int(_set_bool(val, name))


def _get_decimal(value: int) -> str:
    return f"{value}\n"


param_ops_bool = ParamOps("bool", noarg=True, zero=False, set=_set_bool, get=_get_bool)
# invbool lacks KERNEL_PARAM_OPS_FL_NOARG in kernel/params.c, so a bare `name` is -EINVAL.
param_ops_invbool = ParamOps("invbool", noarg=False, zero=False, set=_set_invbool, get=_get_invbool)
param_ops_bint = ParamOps("bint", noarg=True, zero=0, set=_set_bint, get=_get_decimal)


def _standard_param_def(
    name: str, strtolfn: Callable[[str], int], get: Callable[[int], str] = _get_decimal
) -> ParamOps:
    """The integer types: STANDARD_PARAM_DEF, i.e. a base-0 ``kstrto*`` and a printf format."""

    def set_(val: str | None, param_name: str) -> int:
        assert val is not None  # not NOARG: ParamOps.parse() already refused None
        return strtolfn(val)

    return ParamOps(name, noarg=False, zero=0, set=set_, get=get)


def _get_hexint(value: int) -> str:
    # "%#08x" in the kernel's vsprintf: the 0x counts towards the width of 8 and, unlike glibc,
    # is printed for zero too (0 reads back as 0x000000).
    return f"0x{value:06x}\n"


param_ops_byte = _standard_param_def("byte", kstrtou8)
param_ops_short = _standard_param_def("short", kstrtos16)
param_ops_ushort = _standard_param_def("ushort", kstrtou16)
param_ops_int = _standard_param_def("int", kstrtoint)
param_ops_uint = _standard_param_def("uint", kstrtouint)
param_ops_long = _standard_param_def("long", kstrtol)
param_ops_ulong = _standard_param_def("ulong", kstrtoul)
param_ops_ullong = _standard_param_def("ullong", kstrtoull)
param_ops_hexint = _standard_param_def("hexint", kstrtouint, _get_hexint)

_CHARP_MAXLEN = 1024


def _set_charp(val: str | None, name: str) -> str:
    assert val is not None  # not NOARG: ParamOps.parse() already refused None
    if len(val) > _CHARP_MAXLEN:
        raise KernelError(-ENOSPC, f"{name}: string parameter too long")
    return val


def _get_charp(value: str | None) -> str:
    # A charp nobody set is a NULL pointer, which the kernel's %s prints as "(null)".
    return f"{'(null)' if value is None else value}\n"


param_ops_charp = ParamOps("charp", noarg=False, zero=None, set=_set_charp, get=_get_charp)


def _get_string(value: str) -> str:
    return f"{value}\n"


def param_ops_string(maxlen: int) -> ParamOps:
    """A ``module_param_string`` type copying into a ``char[maxlen]`` buffer (P16).

    *maxlen* is the buffer size, NUL included, so the longest value is ``maxlen - 1``
    characters; a longer one fails with ``-ENOSPC`` and the message
    ``%s: string doesn't fit in %u chars.`` naming that limit.
    """
    if maxlen < 1:
        raise ValueError(f"param_ops_string: maxlen must be at least 1, got {maxlen}")

    def set_(val: str | None, name: str) -> str:
        assert val is not None  # not NOARG: ParamOps.parse() already refused None
        if len(val) >= maxlen:
            raise KernelError(-ENOSPC, f"{name}: string doesn't fit in {maxlen - 1} chars.")
        return val

    return ParamOps("string", noarg=False, zero="", set=set_, get=_get_string)


def param_array_ops(elem_ops: ParamOps, max: int, min: int = 1) -> ParamOps:
    """A ``module_param_array`` type: comma-separated elements of *elem_ops* (P16).

    Values are tuples of the elements given (the kernel's ``*nump`` elements).  More than
    *max* elements is ``-EINVAL`` with ``%s: can only take %i arguments`` (checked before each
    element is parsed, so ``1,2,x`` with max 2 reports the count, not the ``x``); fewer than
    *min* is ``-EINVAL`` with ``%s: needs at least %i arguments`` (the kernel always passes 1,
    which a split can never undercut).  An element's own error (and message, which names the
    array) is passed on unchanged.  Reads join the elements' texts with commas; an empty array
    reads as the empty string, without even a newline, as param_array_get() produces.

    Deviation: ksim assigns the whole array or nothing, whereas the kernel stores elements
    (and the count) one by one and leaves the prefix parsed before an error in place.
    """

    def set_(val: str | None, name: str) -> tuple[object, ...]:
        assert val is not None  # not NOARG: ParamOps.parse() already refused None
        values: list[object] = []
        for piece in val.split(","):
            if len(values) == max:
                raise KernelError(-EINVAL, f"{name}: can only take {max} arguments")
            values.append(elem_ops.parse(piece, name))
        if len(values) < min:
            raise KernelError(-EINVAL, f"{name}: needs at least {min} arguments")
        return tuple(values)

    def get(values: tuple[object, ...]) -> str:
        if not values:
            return ""
        # The kernel overwrites each element's trailing "\n" with the next separator.
        return ",".join(elem_ops.format(v)[:-1] for v in values) + "\n"

    return ParamOps(f"array of {elem_ops.name}", noarg=False, zero=(), set=set_, get=get)


# --- Parameters (P18) -------------------------------------------------------------------------


def _octal(perm: int) -> str:
    return f"0{perm:o}"


def check_perm(perm: int) -> int:
    """Return *perm* if it is a valid parameter mode, else raise ``ValueError`` (P18).

    The kernel checks modes at compile time (VERIFY_OCTAL_PERMISSIONS) and refuses to build a
    bad one; ksim refuses to declare it.  Rules: 0 ≤ perm ≤ 0777; readable by others ⇒ by
    group ⇒ by user; writable by group ⇒ by user; never writable by others.  0 is valid and
    means "no sysfs file".
    """
    if not 0 <= perm <= 0o777:
        raise ValueError(f"invalid parameter permissions {perm:#o}: must be within 0..0777")
    user, group, other = perm >> 6 & 7, perm >> 3 & 7, perm & 7
    if user & 4 < group & 4:
        raise ValueError(
            f"invalid parameter permissions {_octal(perm)}: group-readable needs user-readable"
        )
    if group & 4 < other & 4:
        raise ValueError(
            f"invalid parameter permissions {_octal(perm)}: other-readable needs group-readable"
        )
    if user & 2 < group & 2:
        raise ValueError(
            f"invalid parameter permissions {_octal(perm)}: group-writable needs user-writable"
        )
    if other & 2:
        raise ValueError(
            f"invalid parameter permissions {_octal(perm)}: world-writable parameters "
            "are not allowed"
        )
    return perm


_UNSET: Any = object()


class _Var:
    """The storage of a parameter that has no owner of its own (a module's ``static`` variable)."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value


class KernelParam:
    """One parameter: ``struct kernel_param`` together with the variable it controls.

    ``name`` is the name as registered: ``modname.param`` for ``module_param`` in built-in
    code, a bare name for ``core_param`` (``panic``) and for parameters of a loadable module.
    ``perm`` is the sysfs mode, checked by :func:`check_perm`.  ``level`` is the initcall level
    at which a boot-line value is applied (-1: during the "Booting kernel" pass, P5).

    ``value`` is the variable, initially the type's zero.  Like ``kernel_param.arg``, which
    points at a C variable, the variable may live elsewhere: ``storage=(obj, "attr")`` makes
    ``value`` read and write ``obj.attr`` (a core parameter's variable belongs to the state
    of the subsystem that declares it, e.g. ``panic_timeout`` to kernel/panic.c's).
    """

    __slots__ = ("name", "ops", "perm", "level", "_obj", "_attr")

    def __init__(self, name: str, ops: ParamOps, perm: int, level: int = -1,
                 value: Any = _UNSET, *, storage: tuple[object, str] | None = None) -> None:
        check_perm(perm)
        self.name = name
        self.ops = ops
        self.perm = perm
        self.level = level
        if storage is not None:
            self._obj, self._attr = storage
            if value is not _UNSET:
                setattr(self._obj, self._attr, value)
        else:
            self._obj, self._attr = _Var(ops.zero if value is _UNSET else value), "value"

    @property
    def value(self) -> Any:
        return getattr(self._obj, self._attr)

    @value.setter
    def value(self, value: Any) -> None:
        setattr(self._obj, self._attr, value)

    def set(self, val: str | None) -> None:
        """Parse *val* into ``value`` (``ops->set``); on ``KernelError`` it stays unchanged."""
        self.value = self.ops.parse(val, self.name)

    def get(self) -> str:
        """The sysfs text of ``value`` (``ops->get``), newline included."""
        return self.ops.format(self.value)

    def __repr__(self) -> str:
        return f"KernelParam({self.name!r}, {self.ops.name}, {self.perm:#o}, value={self.value!r})"


def param_ops_for(type_: str | ParamOps) -> ParamOps:
    """``"bool"`` → ``param_ops_bool``; an ops object is returned unchanged."""
    if not isinstance(type_, str):
        return type_
    ops = globals().get("param_ops_" + type_)
    if not isinstance(ops, ParamOps):
        raise ValueError(f"unknown module parameter type {type_!r}")
    return ops


# --- parse_args (P5, P17) ---------------------------------------------------------------------


@attrs.frozen
class ParseResult:
    """What :func:`parse_args` returns: the C function's ``err ?: args`` split in two.

    ``err`` is 0 or the negative errno of the *last* failing word (parsing goes on after an
    error).  ``rest`` holds the words after a bare ``--`` (P4), or is ``None`` when there was no
    ``--`` *or an error happened before it*: the kernel returns the error pointer instead of the
    remainder then, so init never sees those words.  A trailing ``--`` gives ``()``.
    """

    err: int
    rest: tuple[Token, ...] | None


def _parse_one(
    tok: Token,
    doing: str,
    params: Sequence[KernelParam],
    min_level: int,
    max_level: int,
    unknown: UnknownHandler | None,
    log: Log,
) -> int:
    """Dispatch one word: parse_one().  Returns 0 or a negative errno."""
    for kp in params:
        if not parameq(tok.name, kp.name):
            continue
        # A parameter of another initcall level is silently skipped, not "unknown".
        if not min_level <= kp.level <= max_level:
            return 0
        try:
            kp.set(tok.value)
        except KernelError as exc:
            if exc.message:
                log(LOGLEVEL_ERR, exc.message)
            return exc.errno
        return 0
    if unknown is not None:
        return unknown(tok, doing)
    return -ENOENT


def parse_args(
    doing: str,
    args: str | Sequence[Token],
    params: Sequence[KernelParam],
    min_level: int,
    max_level: int,
    unknown: UnknownHandler | None,
    log: Log,
) -> ParseResult:
    """Apply every ``name[=value]`` word of *args* to *params*: parse_args() (P5, P17).

    Each word goes to the first parameter whose name matches under :func:`parameq`; if that
    parameter's level is outside ``min_level..max_level`` the word is skipped, a missing value
    for a non-NOARG type is ``-EINVAL``, otherwise the type parses it.  Unmatched words go to
    ``unknown(token, doing)``, or are ``-ENOENT`` without a handler.  Every failure is logged at
    KERN_ERR (after the type's own message, if it has one) as::

        %s: Unknown parameter `%s'             (-ENOENT)
        %s: `%s' too large for parameter `%s'  (-ENOSPC; the value, then the name)
        %s: `%s' invalid for parameter `%s'    (anything else; a missing value prints as ``)

    and parsing continues with the next word (modern; 2009 stopped).  A bare ``--`` stops
    parsing; see :class:`ParseResult` for how the words after it come back.  The kernel's boot
    code hands them to init with ``parse_args("Setting init args", result.rest, (), -1, -1,
    set_init_arg, log)``, which is why a second ``--`` drops everything after it.
    """
    tokens = split_args(args) if isinstance(args, str) else list(args)
    err = 0
    for index, tok in enumerate(tokens):
        if tok.value is None and tok.name == "--":
            return ParseResult(err, None if err else tuple(tokens[index + 1 :]))
        ret = _parse_one(tok, doing, params, min_level, max_level, unknown, log)
        if ret == 0:
            continue
        val = tok.value or ""
        if ret == -ENOENT:
            log(LOGLEVEL_ERR, f"{doing}: Unknown parameter `{tok.name}'")
        elif ret == -ENOSPC:
            log(LOGLEVEL_ERR, f"{doing}: `{val}' too large for parameter `{tok.name}'")
        else:
            log(LOGLEVEL_ERR, f"{doing}: `{val}' invalid for parameter `{tok.name}'")
        err = ret
    return ParseResult(err, None)


def _unknown_module_param(log: Log) -> UnknownHandler:
    """unknown_module_param_cb() of kernel/module/main.c, logging through *log*."""

    def handler(tok: Token, modname: str) -> int:
        # async_probe is a per-module flag of the module loader, not a parameter; ksim has no
        # asynchronous probing, so it is accepted and has no effect.
        if tok.name == "async_probe":
            return 0
        # dyndbg / <mod>.dyndbg belong to dynamic debug, which accepts and ignores them here.
        if tok.name.split(".", 1)[-1] == "dyndbg":
            return 0
        log(LOGLEVEL_WARNING, f"{modname}: unknown parameter '{tok.name}' ignored")
        return 0

    return handler


def parse_module_args(
    modname: str,
    args: str | Sequence[Token] | Mapping[str, str | None],
    params: Sequence[KernelParam],
    log: Log,
) -> int:
    """Apply load-time arguments to a module's *params*, as load_module() does (P17).

    *args* is the text given to ``insmod``/``modprobe`` or a mapping ``{name: value}`` (``None``
    for a bare name).  Parameter names are matched without a module prefix.  All levels apply.
    An unknown name only warns ``%s: unknown parameter '%s' ignored`` (KERN_WARNING); a bad
    value is logged by :func:`parse_args` and its errno returned, which fails the load.  Words
    after ``--`` are dropped with the warning ``%s: parameters '%s' after `--' ignored``; ksim
    rebuilds that text from the words, so runs of separators print as one space.
    """
    if isinstance(args, Mapping):
        args = [
            Token(name, value, name if value is None else f"{name}={value}")
            for name, value in args.items()
        ]
    result = parse_args(modname, args, params, -32768, 32767, _unknown_module_param(log), log)
    if result.err:
        return result.err
    if result.rest is not None:
        ignored = " ".join(tok.raw for tok in result.rest)
        log(LOGLEVEL_WARNING, f"{modname}: parameters '{ignored}' after `--' ignored")
    return 0


# --- sysfs (P18) ------------------------------------------------------------------------------


def param_sysfs_path(modname: str, param_name: str) -> str:
    """The sysfs file of a parameter: ``/sys/module/<modname>/parameters/<param_name>``."""
    return f"/sys/module/{modname}/parameters/{param_name}"


def param_sysfs_builtin(params: Iterable[KernelParam]) -> dict[str, KernelParam]:
    """Map sysfs path → parameter for built-in parameters: param_sysfs_builtin() (P18).

    The module directory is the name's text before the first ``.`` and the file the text after
    it; ``core_param`` names have no dot and live under ``kernel``.  Mode 0 means no file.
    """
    files: dict[str, KernelParam] = {}
    for kp in params:
        if kp.perm == 0:
            continue
        modname, dot, param_name = kp.name.partition(".")
        if not dot:
            modname, param_name = "kernel", kp.name
        files[param_sysfs_path(modname, param_name)] = kp
    return files


def module_param_sysfs_setup(
    modname: str, params: Iterable[KernelParam]
) -> dict[str, KernelParam]:
    """Map sysfs path → parameter for a loaded module's parameters (mode 0: no file, P18)."""
    return {param_sysfs_path(modname, kp.name): kp for kp in params if kp.perm != 0}


def param_attr_store(kp: KernelParam, buf: str, log: Log) -> int:
    """A ``write(2)`` of *buf* to the parameter's sysfs file; returns what write returns (P18).

    Without any write bit in the mode the kernel never reaches the store (kernfs refuses to
    open the file for writing, even for root): ``-EACCES``.  Otherwise *buf* goes to the type
    unchanged, trailing newline included (integers and bools tolerate it; a charp or string
    keeps it); success returns ``len(buf)``, failure the negative errno after logging the
    type's message, if any.
    """
    if not kp.perm & 0o222:
        return -EACCES
    try:
        kp.set(buf)
    except KernelError as exc:
        if exc.message:
            log(LOGLEVEL_ERR, exc.message)
        return exc.errno
    return len(buf)
