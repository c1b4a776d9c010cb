"""WARN, BUG and other kernel reports (lib/bug.c, kernel/panic.c ``__warn``).

A report is printed to the log in the kernel's own shape *and* kept as a structured
:class:`Report` on the kernel, so tests and scenarios can assert "lockdep fired" without
parsing dmesg.  Reports never raise into the caller: the simulated kernel, like the real one,
carries on after a WARN or a might_sleep splat.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from functools import lru_cache

import attrs

from ksim.current import current, maybe_current_kernel
from ksim.kern_levels import KERN_ERR, KERN_WARNING, LOGLEVEL_DEFAULT
from ksim.memory import PageFault, PhysAddrError

TAINT_WARN = "W"
TAINT_DIE = "D"
# taint_flags[] of kernel/panic.c: one column each; the first prints P, or G when untainted.
TAINT_ORDER = "PFSRMBUDAWCIOELKXTN"


@attrs.frozen
class Report:
    """A structured kernel report: ``kind`` is e.g. ``warning``, ``bug``, ``lockdep``, ``oops``."""

    kind: str
    title: str
    text: str


# -- source locations: Python frames stand in for the kernel's %pS ----------------------------

# Where project code lives, as (folder, prefix) pairs: the ksim package (``ksim/``), its parent
# (a checkout: ``tests/``, ``plugins/``), and the folders plugins were loaded from.  A path is
# shown relative to the innermost root that holds it, so a checkout folder named ``ksim``
# changes nothing.
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_source_roots: list[tuple[str, str]] = [(_PACKAGE_DIR, "ksim/"),
                                        (os.path.dirname(_PACKAGE_DIR), "")]
# The runtime (the stdlib, installed packages): trio's or pytest's frames are not kernel code,
# even when a virtual environment sits inside the checkout.
_RUNTIME_DIRS = tuple(sorted({os.path.abspath(p) for p in (sysconfig.get_paths().get(k) for k in (
    "stdlib", "platstdlib", "purelib", "platlib")) if p}, key=len, reverse=True))


def _root_of(path: str) -> tuple[str, str] | None:
    best = None
    for root in _source_roots:
        if path.startswith(root[0] + os.sep) and (best is None or len(root[0]) > len(best[0])):
            best = root
    return best


def add_source_root(folder: str, prefix: str = "") -> None:
    """Show files under ``folder`` as ``prefix`` + their path relative to it, unless a known
    root already holds the folder outside the runtime (the plugin loader calls this for each
    plugin's folder: an installed plugin's frames are then project code, not runtime)."""
    folder = os.path.abspath(folder)
    if _root_of(folder + os.sep + "x") is not None and not _runtime_path(folder + os.sep + "x"):
        return
    _source_roots.append((folder, prefix))
    _short_path.cache_clear()
    _runtime_path.cache_clear()


@lru_cache(maxsize=4096)
def _runtime_path(path: str) -> bool:
    path = os.path.abspath(path)
    runtime = next((d for d in _RUNTIME_DIRS if path.startswith(d + os.sep)), None)
    if runtime is None:
        return False
    root = _root_of(path)
    # A root inside the runtime folder (an installed ksim or plugin) holds project code.
    return root is None or len(root[0]) <= len(runtime)


def is_runtime_file(path: str) -> bool:
    """Whether ``path`` belongs to the runtime (stdlib, trio, pytest) rather than to ksim, a
    plugin or a test: where a simulated kernel's stack trace ends."""
    return _runtime_path(path)


@lru_cache(maxsize=4096)
def _short_path(path: str) -> str:
    path = os.path.abspath(path)
    root = _root_of(path)
    if root is None:
        return path
    return root[1] + path[len(root[0]) + 1:]


def short_path(path: str) -> str:
    """``ksim/printk.py``, ``plugins/ksim_memconsole/memconsole.py``, ``tests/test_x.py``:
    a source path relative to the project root that holds it (absolute for other files)."""
    return _short_path(path)


def caller_location(depth: int = 2) -> str:
    """``file:line func`` of a Python caller, standing in for the kernel's ``%pS``."""
    frame = sys._getframe(depth)
    return "%s:%d %s" % (_short_path(frame.f_code.co_filename), frame.f_lineno,
                         frame.f_code.co_name)


def is_driver_bug(exc: BaseException) -> bool:
    """Whether an exception escaping driver code is a bug in that driver.

    ksim's own exceptions carry the simulator's control flow (a task killed, an errno, a
    machine stopping, a checker's or a replay's verdict) and pass through; anything else --
    a ``ZeroDivisionError``, a ``TypeError`` from a core API called wrongly, ``SystemExit``
    from a plugin calling ``sys.exit`` -- is what a wild pointer or ``BUG()`` is in C.  A
    memory access the MMU could not complete (D11) is the driver's bug too."""
    if isinstance(exc, (PhysAddrError, PageFault)):
        return True
    if isinstance(exc, (KeyboardInterrupt, GeneratorExit)) or not isinstance(
            exc, (Exception, SystemExit)):
        return False
    return type(exc).__module__.partition(".")[0] != "ksim"


def taint_string(taints: str) -> str:
    """``Not tainted`` or ``Tainted: G        W`` (K7)."""
    if not taints:
        return "Not tainted"
    chars = [flag if flag in taints else " " for flag in TAINT_ORDER]
    if chars[0] == " ":
        chars[0] = "G"
    return "Tainted: " + "".join(chars)


def cpu_pid_line() -> str:
    """The ``CPU: %d PID: %d Comm: %s %s 6.1.0-ksim #1`` line of dump_stack()."""
    task = current()
    kernel = maybe_current_kernel()
    taints = kernel.panic.taints if kernel is not None else ""
    release = kernel.release if kernel is not None else "6.1.0-ksim"
    return "CPU: %d PID: %d Comm: %s %s %s #1" % (task.cpu.id, task.pid, task.comm,
                                                   taint_string(taints), release)


def kernel_ident() -> str:
    """print_kernel_ident(): ``6.1.0-ksim #1 Not tainted``, the third line of every lockdep,
    RCU and locking report."""
    kernel = maybe_current_kernel()
    release = kernel.release if kernel is not None else "6.1.0-ksim"
    return "%s #1 %s" % (release, taint_string(kernel.panic.taints if kernel is not None else ""))


def report_header(title: str) -> list[str]:
    """The rule, title, kernel ident and dashes that lockdep-style reports start with."""
    return ["=" * len(title), title, kernel_ident(), "-" * len(title)]


def dump_stack_lines(where: str, context: str = "TASK") -> list[str]:
    """dump_stack() for a one-frame stack: the CPU/PID line and ``Call Trace:``."""
    return [cpu_pid_line(), "Call Trace:", " <%s>" % context, " " + where, " </%s>" % context]


def add_report(kind: str, title: str, lines: list[str], level: str = KERN_ERR) -> Report:
    """Log ``lines`` (the first is the title) and record the report on the current kernel."""
    report = Report(kind, title, "\n".join(lines))
    kernel = maybe_current_kernel()
    if kernel is not None:
        # printk_deferred(): stored now, printed at the next console flush (a report can be
        # raised where nothing may await).
        task = current()
        cpu = task.cpu
        caller = "C%d" % cpu.id if cpu.hardirq_count else "T%d" % task.pid
        store = kernel.printk.vprintk_store
        for line in lines:
            store(0, LOGLEVEL_DEFAULT, level + line + "\n", caller)
        kernel.reports.append(report)
    return report


def add_taint(flag: str) -> None:
    kernel = maybe_current_kernel()
    if kernel is not None and flag not in kernel.panic.taints:
        kernel.panic.taints += flag


def warn(message: str = "", where: str | None = None) -> Report:
    """``WARN()``: the cut-here splat (K7), taint W, and carry on."""
    where = where or caller_location(2)
    task = current()
    lines = ["------------[ cut here ]------------"]
    if message:
        lines.append(message)
    lines += ["WARNING: CPU: %d PID: %d at %s" % (task.cpu.id, task.pid, where), cpu_pid_line(),
              "---[ end trace 0000000000000000 ]---"]
    report = add_report("warning", message or "WARNING at " + where, lines, KERN_WARNING)
    add_taint(TAINT_WARN)
    return report


def WARN(condition: object, fmt: str = "", *args: object) -> bool:
    """``WARN(cond, fmt, ...)``: report when ``condition`` is true; returns it, as in C."""
    if condition:
        warn((fmt % args) if args else fmt, caller_location(2))
    return bool(condition)


def WARN_ON(condition: object) -> bool:
    if condition:
        warn("", caller_location(2))
    return bool(condition)
