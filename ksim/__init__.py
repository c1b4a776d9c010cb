"""ksim: a trio-based simulator of the Linux kernel's printk/console, notifier-chain and
boot-parameter machinery, for proving crash-logging and console drivers before they run on
metal.

The names below are the public API; they mirror the kernel's, in snake_case, so a C driver
ports line by line.  Each lives in the module named after its kernel source file
(``kernel/notifier.c`` → :mod:`ksim.notifier`, ``kernel/params.c`` → :mod:`ksim.params`...).

The names are imported on first use (PEP 562): ``import ksim.cli`` must not import the whole
kernel to print ``--help``.  ``from ksim import X`` and ``ksim.X`` work as with eager imports.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ksim.cmdline import memparse, simple_strtoul
    from ksim.console import (
        CON_ANYTIME, CON_BOOT, CON_BRL, CON_CONSDEV, CON_ENABLED, CON_EXTENDED, CON_PRINTBUFFER,
        Console,
    )
    from ksim.current import current, current_kernel, smp_processor_id
    from ksim.errno import (
        EACCES, EBUSY, EEXIST, EFAULT, EINVAL, EIO, ENODEV, ENOENT, ENOMEM, ENOSPC, EPERM, ERANGE,
        KernelError,
    )
    from ksim.fs import ProcOps, proc_create, remove_proc_entry
    from ksim.kernel import Kernel
    from ksim.locking import (
        DEFINE_MUTEX, DEFINE_RAW_SPINLOCK, DEFINE_SPINLOCK, Deadlock, Mutex, RawSpinLock, SpinLock,
        mutex_lock, mutex_unlock, raw_spin_lock, raw_spin_lock_irqsave, raw_spin_unlock,
        raw_spin_unlock_irqrestore, spin_lock, spin_lock_init, spin_lock_irq, spin_lock_irqsave,
        spin_trylock, spin_trylock_irqsave, spin_unlock, spin_unlock_irq,
        spin_unlock_irqrestore,
    )
    from ksim.machine import Machine
    from ksim.mm import (
        BOOTMEM_DEFAULT, BOOTMEM_EXCLUSIVE, PAGE_ALIGN, PAGE_MASK, PAGE_SHIFT, PAGE_SIZE, PFN_DOWN,
        PFN_PHYS, PFN_UP, max_low_pfn, max_pfn, memblock_phys_alloc, memblock_reserve, memcpy_from,
        memcpy_to, min_low_pfn,
        phys_to_virt, reserve_bootmem, reserve_bootmem_generic, virt_read, virt_read_u32,
        virt_read_u64, virt_to_phys, virt_write, virt_write_u32, virt_write_u64,
    )
    from ksim.module import KernelModule, early_param, module_param, setup
    from ksim.module_loader import insmod, rmmod
    from ksim.notifier import (
        INT_MAX, INT_MIN, NOTIFY_BAD, NOTIFY_DONE, NOTIFY_OK, NOTIFY_STOP, NOTIFY_STOP_MASK,
        AtomicNotifierHead, BlockingNotifierHead, NotifierBlock, RawNotifierHead,
        atomic_notifier_call_chain, atomic_notifier_chain_register,
        atomic_notifier_chain_unregister, blocking_notifier_call_chain,
        blocking_notifier_chain_register, blocking_notifier_chain_unregister,
        notifier_from_errno, notifier_to_errno, raw_notifier_call_chain,
        raw_notifier_chain_register, raw_notifier_chain_unregister,
    )
    from ksim.panic import TaskKilled, die, die_chain, oops_in_progress, panic, panic_notifier_list
    from ksim.preempt import (
        in_atomic, in_interrupt, in_irq, irqs_disabled, local_irq_restore, local_irq_save,
        preempt_disable, preempt_enable,
    )
    from ksim.printk import (
        KERN_ALERT, KERN_CONT, KERN_CRIT, KERN_DEBUG, KERN_DEFAULT, KERN_EMERG, KERN_ERR,
        KERN_INFO, KERN_NOTICE, KERN_WARNING, KMSG_DUMP_EMERG, KMSG_DUMP_MAX, KMSG_DUMP_OOPS,
        KMSG_DUMP_PANIC, KMSG_DUMP_SHUTDOWN, KMSG_DUMP_UNDEF, KmsgDumper, KmsgDumpIter,
        console_lock, console_trylock, console_unlock, kmsg_dump_get_buffer,
        kmsg_dump_register, kmsg_dump_rewind, kmsg_dump_unregister, pr_alert, pr_cont, pr_crit,
        pr_debug, pr_emerg, pr_err, pr_info, pr_notice, pr_warn, printk, printk_deferred,
        register_console, unregister_console,
    )
    from ksim.reboot import (
        emergency_restart, kernel_halt, kernel_power_off, kernel_restart, reboot_notifier_list,
        register_reboot_notifier, unregister_reboot_notifier,
    )
    from ksim.sched import kthread_run, might_sleep, msleep, schedule
    from ksim.scheduler import preempt_point

_SOURCES: dict[str, tuple[str, ...]] = {
    "ksim.cmdline": ("memparse", "simple_strtoul"),
    "ksim.console": ("CON_ANYTIME", "CON_BOOT", "CON_BRL", "CON_CONSDEV", "CON_ENABLED",
        "CON_EXTENDED", "CON_PRINTBUFFER", "Console"),
    "ksim.current": ("current", "current_kernel", "smp_processor_id"),
    "ksim.errno": ("EACCES", "EBUSY", "EEXIST", "EFAULT", "EINVAL", "EIO", "ENODEV", "ENOENT",
        "ENOMEM", "ENOSPC", "EPERM", "ERANGE", "KernelError"),
    "ksim.fs": ("ProcOps", "proc_create", "remove_proc_entry"),
    "ksim.kernel": ("Kernel",),
    "ksim.locking": ("DEFINE_MUTEX", "DEFINE_RAW_SPINLOCK", "DEFINE_SPINLOCK", "Deadlock",
        "Mutex", "RawSpinLock", "SpinLock", "mutex_lock", "mutex_unlock", "raw_spin_lock",
        "raw_spin_lock_irqsave", "raw_spin_unlock", "raw_spin_unlock_irqrestore", "spin_lock",
        "spin_lock_init", "spin_lock_irq", "spin_lock_irqsave", "spin_trylock",
        "spin_trylock_irqsave", "spin_unlock", "spin_unlock_irq", "spin_unlock_irqrestore"),
    "ksim.machine": ("Machine",),
    "ksim.mm": ("BOOTMEM_DEFAULT", "BOOTMEM_EXCLUSIVE", "PAGE_ALIGN", "PAGE_MASK",
        "PAGE_SHIFT", "PAGE_SIZE", "PFN_DOWN", "PFN_PHYS", "PFN_UP", "max_low_pfn", "max_pfn",
        "memblock_phys_alloc", "memblock_reserve", "memcpy_from", "memcpy_to", "min_low_pfn",
        "phys_to_virt", "reserve_bootmem", "reserve_bootmem_generic", "virt_read",
        "virt_read_u32", "virt_read_u64", "virt_to_phys", "virt_write", "virt_write_u32",
        "virt_write_u64"),
    "ksim.module": ("KernelModule", "early_param", "module_param", "setup"),
    "ksim.module_loader": ("insmod", "rmmod"),
    "ksim.notifier": ("INT_MAX", "INT_MIN", "NOTIFY_BAD", "NOTIFY_DONE", "NOTIFY_OK",
        "NOTIFY_STOP", "NOTIFY_STOP_MASK", "AtomicNotifierHead", "BlockingNotifierHead",
        "NotifierBlock", "RawNotifierHead", "atomic_notifier_call_chain",
        "atomic_notifier_chain_register", "atomic_notifier_chain_unregister",
        "blocking_notifier_call_chain", "blocking_notifier_chain_register",
        "blocking_notifier_chain_unregister", "notifier_from_errno", "notifier_to_errno",
        "raw_notifier_call_chain", "raw_notifier_chain_register",
        "raw_notifier_chain_unregister"),
    "ksim.panic": ("TaskKilled", "die", "die_chain", "oops_in_progress", "panic",
        "panic_notifier_list"),
    "ksim.preempt": ("in_atomic", "in_interrupt", "in_irq", "irqs_disabled",
        "local_irq_restore", "local_irq_save", "preempt_disable", "preempt_enable"),
    "ksim.printk": ("KERN_ALERT", "KERN_CONT", "KERN_CRIT", "KERN_DEBUG", "KERN_DEFAULT",
        "KERN_EMERG", "KERN_ERR", "KERN_INFO", "KERN_NOTICE", "KERN_WARNING",
        "KMSG_DUMP_EMERG", "KMSG_DUMP_MAX", "KMSG_DUMP_OOPS", "KMSG_DUMP_PANIC",
        "KMSG_DUMP_SHUTDOWN", "KMSG_DUMP_UNDEF", "KmsgDumpIter", "KmsgDumper", "console_lock",
        "console_trylock", "console_unlock", "kmsg_dump_get_buffer", "kmsg_dump_register",
        "kmsg_dump_rewind", "kmsg_dump_unregister", "pr_alert", "pr_cont", "pr_crit",
        "pr_debug", "pr_emerg", "pr_err", "pr_info", "pr_notice", "pr_warn", "printk",
        "printk_deferred", "register_console", "unregister_console"),
    "ksim.reboot": ("emergency_restart", "kernel_halt", "kernel_power_off", "kernel_restart",
        "reboot_notifier_list", "register_reboot_notifier", "unregister_reboot_notifier"),
    "ksim.sched": ("kthread_run", "might_sleep", "msleep", "schedule"),
    "ksim.scheduler": ("preempt_point",),
}

__version__ = "0.1.0"

__all__ = [
    # include/linux/console.h
    "CON_ANYTIME", "CON_BOOT", "CON_BRL", "CON_CONSDEV", "CON_ENABLED", "CON_EXTENDED",
    "CON_PRINTBUFFER", "Console",
    # kernel/printk
    "KERN_ALERT", "KERN_CONT", "KERN_CRIT", "KERN_DEBUG", "KERN_DEFAULT", "KERN_EMERG",
    "KERN_ERR", "KERN_INFO", "KERN_NOTICE", "KERN_WARNING", "KMSG_DUMP_EMERG", "KMSG_DUMP_MAX",
    "KMSG_DUMP_OOPS", "KMSG_DUMP_PANIC", "KMSG_DUMP_SHUTDOWN", "KMSG_DUMP_UNDEF",
    "KmsgDumpIter", "KmsgDumper", "console_lock", "console_trylock", "console_unlock",
    "kmsg_dump_get_buffer", "kmsg_dump_register", "kmsg_dump_rewind", "kmsg_dump_unregister",
    "pr_alert", "pr_cont", "pr_crit", "pr_debug", "pr_emerg", "pr_err", "pr_info", "pr_notice",
    "pr_warn", "printk", "printk_deferred", "register_console", "unregister_console",
    # lib/cmdline.c
    "memparse", "simple_strtoul",
    # current
    "current", "current_kernel", "smp_processor_id",
    # errno
    "EACCES", "EBUSY", "EEXIST", "EFAULT", "EINVAL", "EIO", "ENODEV", "ENOENT", "ENOMEM",
    "ENOSPC", "EPERM", "ERANGE", "KernelError",
    # procfs
    "ProcOps", "proc_create", "remove_proc_entry",
    # the machine and a boot
    "Kernel", "Machine",
    # kernel/locking
    "DEFINE_MUTEX", "DEFINE_RAW_SPINLOCK", "DEFINE_SPINLOCK", "Deadlock", "Mutex",
    "RawSpinLock", "SpinLock", "mutex_lock", "mutex_unlock", "raw_spin_lock",
    "raw_spin_lock_irqsave", "raw_spin_unlock", "raw_spin_unlock_irqrestore", "spin_lock",
    "spin_lock_init", "spin_lock_irq", "spin_lock_irqsave", "spin_trylock",
    "spin_trylock_irqsave", "spin_unlock", "spin_unlock_irq", "spin_unlock_irqrestore",
    # memory
    "BOOTMEM_DEFAULT", "BOOTMEM_EXCLUSIVE", "PAGE_ALIGN", "PAGE_MASK", "PAGE_SHIFT",
    "PAGE_SIZE", "PFN_DOWN", "PFN_PHYS", "PFN_UP", "max_low_pfn", "max_pfn",
    "memblock_phys_alloc", "memblock_reserve", "memcpy_from", "memcpy_to", "min_low_pfn",
    "phys_to_virt", "reserve_bootmem", "reserve_bootmem_generic", "virt_read",
    "virt_read_u32", "virt_read_u64", "virt_to_phys", "virt_write", "virt_write_u32",
    "virt_write_u64",
    # modules
    "KernelModule", "early_param", "insmod", "module_param", "rmmod", "setup",
    # kernel/notifier.c
    "INT_MAX", "INT_MIN", "NOTIFY_BAD", "NOTIFY_DONE", "NOTIFY_OK", "NOTIFY_STOP",
    "NOTIFY_STOP_MASK", "AtomicNotifierHead", "BlockingNotifierHead", "NotifierBlock",
    "RawNotifierHead", "atomic_notifier_call_chain", "atomic_notifier_chain_register",
    "atomic_notifier_chain_unregister", "blocking_notifier_call_chain",
    "blocking_notifier_chain_register", "blocking_notifier_chain_unregister",
    "notifier_from_errno", "notifier_to_errno", "raw_notifier_call_chain",
    "raw_notifier_chain_register", "raw_notifier_chain_unregister",
    # kernel/panic.c
    "TaskKilled", "die", "die_chain", "oops_in_progress", "panic", "panic_notifier_list",
    # preempt.h
    "in_atomic", "in_interrupt", "in_irq", "irqs_disabled", "local_irq_restore",
    "local_irq_save", "preempt_disable", "preempt_enable",
    # kernel/reboot.c
    "emergency_restart", "kernel_halt", "kernel_power_off", "kernel_restart",
    "reboot_notifier_list", "register_reboot_notifier", "unregister_reboot_notifier",
    # kernel/sched
    "kthread_run", "might_sleep", "msleep", "preempt_point", "schedule",
    "__version__",
]


_ORIGIN = {name: module for module, names in _SOURCES.items() for name in names}


class _Package(types.ModuleType):
    """``ksim`` itself.  Four public names are also submodule names (``printk``, ``panic``,
    ``current``, ``setup``); importing such a submodule must not rebind the public name to
    the module, which an eager ``from ksim.printk import printk`` here used to undo."""

    def __setattr__(self, name: str, value: object) -> None:
        if isinstance(value, types.ModuleType) and name in _ORIGIN:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> object:
    module = _ORIGIN.get(name)
    if module is None:
        raise AttributeError(f"module 'ksim' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
