"""WARN, BUG and other kernel reports (lib/bug.c, kernel/panic.c ``__warn``).

A report is printed to the log in the kernel's own shape *and* kept as a structured
:class:`Report` on the kernel, so tests and scenarios can assert "lockdep fired" without
parsing dmesg.  Reports never raise into the caller: the simulated kernel, like the real one,
carries on after a WARN or a might_sleep splat.
"""

from __future__ import annotations

import sys

import attrs

from ksim.current import current, maybe_current_kernel
from ksim.printk import KERN_ERR, KERN_WARNING, printk_deferred

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


def caller_location(depth: int = 2) -> str:
    """``file:line func`` of a Python caller, standing in for the kernel's ``%pS``."""
    frame = sys._getframe(depth)
    path = frame.f_code.co_filename
    for marker in ("/ksim/", "/plugins/", "/tests/"):
        at = path.rfind(marker)
        if at >= 0:
            path = path[at + 1:]
            break
    return "%s:%d %s" % (path, frame.f_lineno, frame.f_code.co_name)


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
    taints = kernel.taints if kernel is not None else ""
    release = kernel.release if kernel is not None else "6.1.0-ksim"
    return "CPU: %d PID: %d Comm: %s %s %s #1" % (task.cpu.id, task.pid, task.comm,
                                                   taint_string(taints), release)


def add_report(kind: str, title: str, lines: list[str], level: str = KERN_ERR) -> Report:
    """Log ``lines`` (the first is the title) and record the report on the current kernel."""
    text = "\n".join(lines)
    for line in lines:
        printk_deferred(level + "%s\n", line)
    report = Report(kind, title, text)
    kernel = maybe_current_kernel()
    if kernel is not None:
        kernel.reports.append(report)
    return report


def add_taint(flag: str) -> None:
    kernel = maybe_current_kernel()
    if kernel is not None and flag not in kernel.taints:
        kernel.taints += flag


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
