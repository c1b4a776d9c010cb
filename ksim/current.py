"""``current``: the task running now, and through it its CPU and its kernel (asm/current.h).

A C driver reaches the kernel through globals; a ksim driver reaches it through the running
task, held in a :class:`contextvars.ContextVar`.  trio copies the context into every task a
nursery starts, so kernel threads inherit ``current`` from the kernel that spawned them and
several simulated kernels can run side by side (one per test) without sharing anything.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Generic, TypeVar, cast

import attrs

from ksim.cpu import CPU

if TYPE_CHECKING:
    from ksim.kernel import Kernel
    from ksim.scheduler import SimThread


class NoKernelError(RuntimeError):
    """A kernel API was called outside a running simulated kernel."""


@attrs.define(eq=False)
class Task:
    """A simulated task (``struct task_struct``): what dmesg, Oopses and lockdep name."""

    pid: int
    comm: str
    cpu: CPU
    kernel: Kernel | None = None
    # The scheduler's record of this task when a deterministic scheduler drives it.
    thread: SimThread | None = None
    caller_tag: str = attrs.field(init=False)  # printk's caller id in task context

    def __attrs_post_init__(self) -> None:
        self.caller_tag = "T%d" % self.pid


# Code that runs outside any kernel (a unit test of a notifier chain) still has a CPU to ask
# about preemption; it simply has no kernel to log to.
_orphan_task = Task(pid=0, comm="swapper/0", cpu=CPU(0))
_current: ContextVar[Task] = ContextVar("ksim_current_task", default=_orphan_task)


# The bound method itself, not a function around it: ``current()`` runs several times for
# every printk and lock, and this saves a Python frame each time.
current: Callable[[], Task] = _current.get


def current_cpu() -> CPU:
    return _current.get().cpu


def smp_processor_id() -> int:
    return _current.get().cpu.id


def current_kernel() -> Kernel:
    kernel = _current.get().kernel
    if kernel is None:
        raise NoKernelError("no ksim kernel is running in this task (boot one with Machine.boot())")
    return kernel


def maybe_current_kernel() -> Kernel | None:
    return _current.get().kernel


def set_current(task: Task) -> object:
    """Make ``task`` current in this context; returns a token for :func:`reset_current`."""
    return _current.set(task)


def reset_current(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]


T = TypeVar("T")


class KernelGlobal(Generic[T]):
    """A kernel global variable of which every simulated kernel has its own copy.

    ``panic_notifier_list`` is one variable in C; in ksim each booted kernel owns one, so the
    public name is a ``KernelGlobal`` that APIs taking it resolve against ``current``.  A C
    driver's ``atomic_notifier_chain_register(&panic_notifier_list, &nb)`` therefore ports
    unchanged as ``atomic_notifier_chain_register(panic_notifier_list, nb)``.
    """

    __slots__ = ("name", "_path")

    def __init__(self, name: str, path: str) -> None:
        self.name = name
        self._path = path.split(".")

    def get(self) -> T:
        obj: object = current_kernel()
        for part in self._path:
            obj = getattr(obj, part)
        return cast(T, obj)

    def __repr__(self) -> str:
        return f"<kernel global {self.name}>"


def deref(obj: T | KernelGlobal[T]) -> T:
    """The current kernel's copy of a :class:`KernelGlobal`; anything else unchanged."""
    return obj.get() if isinstance(obj, KernelGlobal) else obj
