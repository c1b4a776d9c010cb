"""Log levels and their prefixes (include/linux/kern_levels.h, include/linux/printk.h; C8, C9).

A leaf module: everything that reports (locking, bug, the ring buffer) needs the levels,
and none of it may import printk itself, which needs them all.
"""

from __future__ import annotations

LOGLEVEL_EMERG = 0
LOGLEVEL_ALERT = 1
LOGLEVEL_CRIT = 2
LOGLEVEL_ERR = 3
LOGLEVEL_WARNING = 4
LOGLEVEL_NOTICE = 5
LOGLEVEL_INFO = 6
LOGLEVEL_DEBUG = 7
LOGLEVEL_DEFAULT = -1

KERN_SOH = "\x01"
KERN_EMERG = KERN_SOH + "0"
KERN_ALERT = KERN_SOH + "1"
KERN_CRIT = KERN_SOH + "2"
KERN_ERR = KERN_SOH + "3"
KERN_WARNING = KERN_SOH + "4"
KERN_NOTICE = KERN_SOH + "5"
KERN_INFO = KERN_SOH + "6"
KERN_DEBUG = KERN_SOH + "7"
KERN_DEFAULT = ""  # modern kernels: no prefix means default_message_loglevel
KERN_CONT = KERN_SOH + "c"

LEVEL_NAMES = ("emerg", "alert", "crit", "err", "warn", "notice", "info", "debug")

# Console loglevel presets (C9).
CONSOLE_LOGLEVEL_SILENT = 0
CONSOLE_LOGLEVEL_MIN = 1
CONSOLE_LOGLEVEL_QUIET = 4
CONSOLE_LOGLEVEL_DEFAULT = 7
CONSOLE_LOGLEVEL_DEBUG = 10
CONSOLE_LOGLEVEL_MOTORMOUTH = 15
MESSAGE_LOGLEVEL_DEFAULT = 4


def level_from_name(name: str | int) -> int:
    """``"err"`` / ``"3"`` / ``3`` → 3; also accepts ``warning`` and ``KERN_ERR``-style names."""
    if isinstance(name, int):
        if not 0 <= name <= 7:
            raise ValueError(f"log level {name} is outside 0..7")
        return name
    key = name.strip().lower().removeprefix("kern_")
    if key.isascii() and key.isdigit():  # "²" is a digit to str.isdigit, not to int()
        return level_from_name(int(key))
    if key == "warning":
        key = "warn"
    if key in LEVEL_NAMES:
        return LEVEL_NAMES.index(key)
    raise ValueError(f"unknown log level {name!r}; expected one of {', '.join(LEVEL_NAMES)} or 0-7")
