"""The e820 memory map (arch/x86/kernel/e820.c): the firmware's table, ``mem=``, ``memmap=``.

The firmware reports physical memory as a list of typed ranges (:mod:`ksim.firmware` builds the
list QEMU's ``pc`` machine and SeaBIOS give, E1); the boot loader hands it over in the boot
parameters and ``e820__memory_setup`` prints it as ``BIOS-e820:`` lines.  ``mem=`` and ``memmap=``
(early parameters) edit the kernel's copy exactly as 6.1's ``parse_memopt`` and
``parse_memmap_one`` do; ``e820__finish_early_params`` sanitises the result and prints the
``user-defined physical RAM map:`` (E2, E3).  Afterwards setup_arch reads the table: the kernel's
own range must be RAM (``e820_add_kernel_range``), the first page and 640K-1M are not RAM
(``trim_bios_range``), ``last_pfn`` ends RAM (E5), RAM becomes memblock memory, the entries
become ``/proc/iomem`` resources, and the gaps give the hibernation ``nosave`` regions and the PCI
gap.

The table is the kernel's, and these functions are ports of the C: the change-point sanitiser
(``e820__update_table``: overlaps resolve to the highest type, ``persistent`` and ``soft
reserved`` ranges are never merged), ``e820__range_add``/``update``/``remove`` (which append,
shrink or zero entries and leave the sorting to the sanitiser), and the ``KERN_DEBUG`` lines they
print.  Not modelled: EFI's memory map (the ``uefi`` firmware profile reports the same e820 table
as SeaBIOS), ``setup_data`` e820 extensions, ``e820__reserve_resources_late`` (the ``reserve RAM
buffer`` lines) and kexec's copies of the table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Final

import attrs

from ksim.cmdline import memparse, simple_strtoull
from ksim.current import current_kernel
from ksim.errno import EINVAL
from ksim.init import early_param
from ksim.kern_levels import LOGLEVEL_DEBUG, LOGLEVEL_ERR, LOGLEVEL_INFO, LOGLEVEL_WARNING
from ksim.memory import PAGE_SHIFT, PAGE_SIZE

if TYPE_CHECKING:
    from ksim.kernel import Kernel

__all__ = [
    "E820_TYPE_ACPI", "E820_TYPE_NVS", "E820_TYPE_PMEM", "E820_TYPE_PRAM", "E820_TYPE_RAM",
    "E820_TYPE_RESERVED", "E820_TYPE_RESERVED_KERN", "E820_TYPE_SOFT_RESERVED",
    "E820_TYPE_UNUSABLE", "E820Entry", "E820State", "E820Table", "MAX_ARCH_PFN",
    "e820__end_of_low_ram_pfn", "e820__end_of_ram_pfn", "e820__finish_early_params",
    "e820__memory_setup", "e820__pci_gap", "e820__register_nosave_regions", "e820_add_kernel_range",
    "e820_type_to_string", "parse_memmap_one", "trim_bios_range",
]

E820_TYPE_RAM: Final = 1
E820_TYPE_RESERVED: Final = 2
E820_TYPE_ACPI: Final = 3
E820_TYPE_NVS: Final = 4
E820_TYPE_UNUSABLE: Final = 5
E820_TYPE_PMEM: Final = 7
E820_TYPE_PRAM: Final = 12
E820_TYPE_SOFT_RESERVED: Final = 0xEFFFFFFF
E820_TYPE_RESERVED_KERN: Final = 128

# E820_MAX_ENTRIES_ZEROPAGE + 3 * MAX_NUMNODES (Debian's NODES_SHIFT=10).
E820_MAX_ENTRIES: Final = 128 + 3 * 1024
ULLONG_MAX: Final = (1 << 64) - 1
MAX_PHYSMEM_BITS: Final = 46  # 4-level paging
MAX_ARCH_PFN: Final = (1 << MAX_PHYSMEM_BITS) >> PAGE_SHIFT
ISA_START_ADDRESS: Final = 0xA0000  # BIOS_BEGIN
BIOS_END: Final = 0x100000
MAX_GAP_END: Final = 1 << 32

LogFn = Callable[[int, str], None]


@attrs.define
class E820Entry:
    """``struct e820_entry``: ``size`` bytes of ``type`` from ``addr`` (mutable, as in C)."""

    addr: int
    size: int
    type: int

    @property
    def end(self) -> int:
        return self.addr + self.size


def e820_print_type(type_: int) -> str:
    if type_ in (E820_TYPE_RAM, E820_TYPE_RESERVED_KERN):
        return "usable"
    if type_ == E820_TYPE_RESERVED:
        return "reserved"
    if type_ == E820_TYPE_SOFT_RESERVED:
        return "soft reserved"
    if type_ == E820_TYPE_ACPI:
        return "ACPI data"
    if type_ == E820_TYPE_NVS:
        return "ACPI NVS"
    if type_ == E820_TYPE_UNUSABLE:
        return "unusable"
    if type_ in (E820_TYPE_PMEM, E820_TYPE_PRAM):
        return "persistent (type %u)" % type_
    return "type %u" % type_


def e820_type_to_string(type_: int) -> str:
    """The ``/proc/iomem`` name of an entry (``e820_type_to_string``)."""
    return {E820_TYPE_RESERVED_KERN: "System RAM", E820_TYPE_RAM: "System RAM",
            E820_TYPE_ACPI: "ACPI Tables", E820_TYPE_NVS: "ACPI Non-volatile Storage",
            E820_TYPE_UNUSABLE: "Unusable memory", E820_TYPE_PRAM: "Persistent Memory (legacy)",
            E820_TYPE_PMEM: "Persistent Memory", E820_TYPE_RESERVED: "Reserved",
            E820_TYPE_SOFT_RESERVED: "Soft Reserved"}.get(type_, "Unknown E820 type")


def _nomerge(type_: int) -> bool:
    """``e820_nomerge``: ranges of these types may be distinct devices; never merge them."""
    return type_ in (E820_TYPE_PRAM, E820_TYPE_SOFT_RESERVED)


class E820Table:
    """``struct e820_table``: at most :data:`E820_MAX_ENTRIES` entries, in table order."""

    def __init__(self, entries: Iterable[E820Entry] = (), *, log: LogFn | None = None) -> None:
        self.entries: list[E820Entry] = [E820Entry(e.addr, e.size, e.type) for e in entries]
        self._log = log or (lambda level, text: None)

    def copy(self) -> E820Table:
        return E820Table(self.entries, log=self._log)

    def __iter__(self) -> Iterator[E820Entry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    # -- editing (e820__range_add/update/remove) --------------------------------------------------

    def range_add(self, start: int, size: int, type_: int) -> None:
        """``__e820__range_add``: append an entry; the sanitiser resolves overlaps later."""
        if len(self.entries) >= E820_MAX_ENTRIES:
            self._log(LOGLEVEL_ERR, "e820: too many entries; ignoring [mem %#010x-%#010x]"
                      % (start, start + size - 1))
            return
        self.entries.append(E820Entry(start, size, type_))

    def range_update(self, start: int, size: int, old_type: int, new_type: int) -> int:
        """``__e820__range_update``: retype the ``old_type`` parts of [start, start + size)."""
        if size > ULLONG_MAX - start:
            size = ULLONG_MAX - start
        end = start + size
        self._log(LOGLEVEL_DEBUG, "e820: update [mem %#010x-%#010x] %s ==> %s" % (
            start, end - 1, e820_print_type(old_type), e820_print_type(new_type)))
        updated = 0
        for entry in list(self.entries):
            if entry.type != old_type:
                continue
            entry_end = entry.end
            if entry.addr >= start and entry_end <= end:
                entry.type = new_type
                updated += entry.size
                continue
            if entry.addr < start and entry_end > end:
                self.range_add(start, size, new_type)
                self.range_add(end, entry_end - end, entry.type)
                entry.size = start - entry.addr
                updated += size
                continue
            final_start, final_end = max(start, entry.addr), min(end, entry_end)
            if final_start >= final_end:
                continue
            self.range_add(final_start, final_end - final_start, new_type)
            updated += final_end - final_start
            entry.size -= final_end - final_start
            if entry.addr < final_start:
                continue
            entry.addr = final_end
        return updated

    def range_remove(self, start: int, size: int, old_type: int, check_type: bool) -> int:
        """``e820__range_remove``: cut [start, start + size) out of (``old_type``) entries."""
        if size > ULLONG_MAX - start:
            size = ULLONG_MAX - start
        end = start + size
        self._log(LOGLEVEL_DEBUG, "e820: remove [mem %#010x-%#010x] %s" % (
            start, end - 1, e820_print_type(old_type) if check_type else ""))
        removed = 0
        for entry in list(self.entries):
            if check_type and entry.type != old_type:
                continue
            entry_end = entry.end
            if entry.addr >= start and entry_end <= end:
                removed += entry.size
                entry.addr = entry.size = entry.type = 0  # memset(entry, 0, ...)
                continue
            if entry.addr < start and entry_end > end:
                self.range_add(end, entry_end - end, entry.type)
                entry.size = start - entry.addr
                removed += size
                continue
            final_start, final_end = max(start, entry.addr), min(end, entry_end)
            if final_start >= final_end:
                continue
            removed += final_end - final_start
            entry.size -= final_end - final_start
            if entry.addr < final_start:
                continue
            entry.addr = final_end
        return removed

    def update_table(self) -> int:
        """``e820__update_table``: sort, remove overlaps (the highest type wins), merge; -1 if
        there is nothing to do (fewer than two entries) or an entry wraps around."""
        entries = self.entries
        if len(entries) < 2:
            return -1
        if any(e.addr + e.size > ULLONG_MAX for e in entries):
            return -1
        # change points: (addr, is_end, entry); starts sort before ends at the same address
        points: list[tuple[int, int, int]] = []
        for i, e in enumerate(entries):
            if e.size:
                points.append((e.addr, 0, i))
                points.append((e.addr + e.size, 1, i))
        points.sort(key=lambda p: (p[0], p[1]))
        overlap: list[int] = []
        new: list[E820Entry] = []
        last_type = 0
        last_addr = 0
        current: E820Entry | None = None
        for addr, is_end, index in points:
            if not is_end:
                overlap.append(index)
            else:
                overlap.remove(index)
            current_type = max((entries[i].type for i in overlap), default=0)
            if current_type != last_type or _nomerge(current_type):
                if last_type != 0 and current is not None:
                    current.size = addr - last_addr
                    if current.size:
                        new.append(current)
                    current = None
                if current_type != 0:
                    current = E820Entry(addr, 0, current_type)
                    last_addr = addr
                last_type = current_type
        self.entries = new
        return 0

    # -- queries --------------------------------------------------------------------------------

    def mapped_all(self, start: int, end: int, type_: int) -> bool:
        """``e820__mapped_all``: all of [start, end) is in ``type_`` entries (sorted table)."""
        for entry in self.entries:
            if type_ and entry.type != type_:
                continue
            if entry.addr >= end or entry.end <= start:
                continue
            if entry.addr <= start:
                start = entry.end
            if start >= end:
                return True
        return False

    def mapped_any(self, start: int, end: int, type_: int) -> bool:
        return any((not type_ or e.type == type_) and e.addr < end and e.end > start
                   for e in self.entries)

    def end_pfn(self, limit_pfn: int, type_: int) -> int:
        """``e820_end_pfn`` without its printk: the end of the last ``type_`` entry below the
        limit."""
        last_pfn = 0
        for entry in self.entries:
            if entry.type != type_:
                continue
            start_pfn = entry.addr >> PAGE_SHIFT
            end_pfn = entry.end >> PAGE_SHIFT
            if start_pfn >= limit_pfn:
                continue
            if end_pfn > limit_pfn:
                last_pfn = limit_pfn
                break
            if end_pfn > last_pfn:
                last_pfn = end_pfn
        return min(last_pfn, MAX_ARCH_PFN)

    def ram_ranges(self) -> list[tuple[int, int]]:
        """The RAM entries as memblock sees them (``e820__memblock_setup`` then
        ``memblock_trim_memory(PAGE_SIZE)``): whole pages, merged, ascending."""
        ranges: list[tuple[int, int]] = []
        for entry in sorted(self.entries, key=lambda e: e.addr):
            if entry.type not in (E820_TYPE_RAM, E820_TYPE_RESERVED_KERN) or not entry.size:
                continue
            if ranges and entry.addr <= ranges[-1][1]:
                ranges[-1] = (ranges[-1][0], max(ranges[-1][1], entry.end))
            else:
                ranges.append((entry.addr, entry.end))
        trimmed = []
        for start, end in ranges:
            start = (start + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
            end &= ~(PAGE_SIZE - 1)
            if start < end:
                trimmed.append((start, end))
        return trimmed

    def lines(self, who: str) -> list[str]:
        """``e820__print_table(who)``."""
        return ["%s: [mem %#018x-%#018x] %s" % (who, e.addr, e.addr + e.size - 1,
                                                e820_print_type(e.type)) for e in self.entries]


@attrs.define
class E820State:
    """The kernel's e820 tables for one boot.

    ``table`` is ``e820_table`` (what mem=/memmap= edit and the kernel uses), ``firmware`` the
    unmodified ``e820_table_firmware``; ``userdef`` is set by any mem=/memmap= that claims to
    change the map (it prints the ``user:`` map); ``mem_limit`` is what ``mem=`` asked for.
    """

    table: E820Table = attrs.Factory(E820Table)
    firmware: E820Table = attrs.Factory(E820Table)
    userdef: bool = False
    mem_limit: int | None = None


# -- the early parameters (E2, E3) ----------------------------------------------------------------

@early_param("mem")
async def parse_memopt(val: str | None) -> int:
    """``mem=nn[KMG]``: RAM above nn is removed (E2); ``mem=0`` and junk are refused."""
    if val is None:
        return -EINVAL
    k = current_kernel()
    if val == "nopentium":
        k.printk.log_line(LOGLEVEL_WARNING, "mem=nopentium ignored! (only supported on x86_32)")
        return -EINVAL
    k.e820.userdef = True
    size, _ = memparse(val)
    if size == 0:
        return -EINVAL
    k.e820.table.range_remove(size, ULLONG_MAX - size, E820_TYPE_RAM, True)
    k.e820.mem_limit = size
    return 0


def parse_memmap_one(state: E820State, p: str) -> int:
    """``parse_memmap_one``: one ``memmap=`` item (E3).  Returns 0 or -EINVAL, which the caller
    ignores, as 6.1's ``parse_memmap_opt`` does."""
    table = state.table
    if p.startswith("exactmap"):
        table.entries.clear()
        state.userdef = True
        return 0
    mem_size, rest = memparse(p)
    if rest == p:
        return -EINVAL
    state.userdef = True
    kind = rest[:1]
    if kind in ("@", "#", "$", "!"):
        start_at, rest = memparse(rest[1:])
        type_ = {"@": E820_TYPE_RAM, "#": E820_TYPE_ACPI, "$": E820_TYPE_RESERVED,
                 "!": E820_TYPE_PRAM}[kind]
        table.range_add(start_at, mem_size, type_)
    elif kind == "%":
        start_at, rest = memparse(rest[1:])
        from_type = to_type = 0
        if rest[:1] == "-":
            from_type, rest = simple_strtoull(rest[1:], 0)
        if rest[:1] == "+":
            to_type, rest = simple_strtoull(rest[1:], 0)
        if rest:
            return -EINVAL
        if from_type and to_type:
            table.range_update(start_at, mem_size, from_type, to_type)
        elif to_type:
            table.range_add(start_at, mem_size, to_type)
        elif from_type:
            table.range_remove(start_at, mem_size, from_type, True)
        else:
            table.range_remove(start_at, mem_size, 0, False)
    else:
        # memmap=nn without a type: the same as mem=nn (but mem_limit is not recorded)
        table.range_remove(mem_size, ULLONG_MAX - mem_size, E820_TYPE_RAM, True)
    return 0 if not rest else -EINVAL


@early_param("memmap")
async def parse_memmap_opt(val: str | None) -> int:
    """``memmap=item[,item...]`` (E3): each item parsed on its own; errors are silent."""
    if val is None:
        return -EINVAL
    state = current_kernel().e820
    for item in val.split(","):
        parse_memmap_one(state, item)
    return 0


# -- what setup_arch does with the table ------------------------------------------------------

def e820__memory_setup(k: Kernel) -> list[str]:
    """``e820__memory_setup``: the firmware's table from the boot parameters (sanitised), printed
    *before* the early parameters run."""
    log = k.printk.log_line
    table = E820Table(k.boot_params.e820_table, log=log)
    table.update_table()
    k.e820.table = table
    k.e820.firmware = table.copy()
    return ["BIOS-provided physical RAM map:"] + table.lines("BIOS-e820")


def e820__finish_early_params(k: Kernel) -> list[str]:
    """The ``user:`` map, printed once ``mem=``/``memmap=`` changed the table (E2, E3).

    6.1 calls ``early_panic("Invalid user supplied memory map")`` when the sanitiser fails; it
    only fails for fewer than two entries or a wrapping entry, which ksim reports the same way.
    """
    state = k.e820
    if not state.userdef:
        return []
    if state.table.update_table() < 0 and len(state.table) != 1:
        raise ValueError("Invalid user supplied memory map")
    return ["user-defined physical RAM map:"] + state.table.lines("user")


def e820_add_kernel_range(k: Kernel, start: int, end: int) -> None:
    """``e820_add_kernel_range``: the kernel runs from [start, end); if that is not all RAM
    (mem=, memmap=), complain and make it RAM (E3)."""
    table = k.e820.table
    if table.mapped_all(start, end, E820_TYPE_RAM):
        return
    k.printk.log_line(LOGLEVEL_WARNING, ".text .data .bss are not marked as E820_TYPE_RAM!")
    table.range_remove(start, end - start, E820_TYPE_RAM, False)
    table.range_add(start, end - start, E820_TYPE_RAM)


def trim_bios_range(k: Kernel) -> None:
    """``trim_bios_range``: page 0 belongs to the BIOS, and 640K-1M is never RAM."""
    table = k.e820.table
    table.range_update(0, PAGE_SIZE, E820_TYPE_RAM, E820_TYPE_RESERVED)
    table.range_remove(ISA_START_ADDRESS, BIOS_END - ISA_START_ADDRESS, E820_TYPE_RAM, True)
    table.update_table()


def _last_pfn(k: Kernel, limit_pfn: int) -> int:
    last = k.e820.table.end_pfn(limit_pfn, E820_TYPE_RAM)
    k.printk.log_line(LOGLEVEL_INFO, "last_pfn = %#x max_arch_pfn = %#x" % (last, MAX_ARCH_PFN))
    return last


def e820__end_of_ram_pfn(k: Kernel) -> int:
    """``e820__end_of_ram_pfn``: ``max_pfn``, with its ``last_pfn`` line (E5)."""
    return _last_pfn(k, MAX_ARCH_PFN)


def e820__end_of_low_ram_pfn(k: Kernel) -> int:
    """``e820__end_of_low_ram_pfn``: the end of RAM below 4 GiB, with its ``last_pfn`` line."""
    return _last_pfn(k, 1 << (32 - PAGE_SHIFT))


def e820__register_nosave_regions(k: Kernel, limit_pfn: int) -> list[tuple[int, int]]:
    """The ``PM: hibernation: Registered nosave memory`` regions: the gaps between RAM entries
    (as pfn ranges), each printed as registered."""
    regions: list[tuple[int, int]] = []
    last_addr = 0

    def register(start_pfn: int, end_pfn: int) -> None:
        if start_pfn >= end_pfn:
            return
        if regions and regions[-1][1] == start_pfn:
            regions[-1] = (regions[-1][0], end_pfn)
        else:
            regions.append((start_pfn, end_pfn))
        k.printk.log_line(LOGLEVEL_INFO, "PM: hibernation: Registered nosave memory: "
                          "[mem %#010x-%#010x]" % (start_pfn << PAGE_SHIFT,
                                                   (end_pfn << PAGE_SHIFT) - 1))

    for entry in k.e820.table:
        if entry.type != E820_TYPE_RAM:
            continue
        if last_addr < entry.addr:
            register(last_addr >> PAGE_SHIFT, (entry.addr + PAGE_SIZE - 1) >> PAGE_SHIFT)
        last_addr = entry.end
    register(last_addr >> PAGE_SHIFT, limit_pfn)
    return regions


def e820__pci_gap(k: Kernel, max_pfn: int) -> tuple[int, int]:
    """``e820__setup_pci_gap``: the largest gap below 4 GiB (at least 4 MiB), printed; returns
    (start, size)."""
    log = k.printk.log_line
    gapstart, gapsize = 0, 0x400000
    found = False
    last = MAX_GAP_END
    for entry in reversed(k.e820.table.entries):
        start, end = entry.addr, entry.end
        if last > end:
            gap = last - end
            if gap >= gapsize:
                gapsize, gapstart, found = gap, end, True
        if start < last:
            last = start
    if not found:
        gapstart = (max_pfn << PAGE_SHIFT) + 1024 * 1024
        log(LOGLEVEL_ERR, "Cannot find an available gap in the 32-bit address range")
        log(LOGLEVEL_ERR, "PCI devices with unassigned 32-bit BARs may not work!")
    log(LOGLEVEL_INFO, "[mem %#010x-%#010x] available for PCI devices"
        % (gapstart, gapstart + gapsize - 1))
    return gapstart, gapsize
