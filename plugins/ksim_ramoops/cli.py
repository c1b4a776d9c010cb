"""``ksim pstore``: read the ramoops records out of a raw memory image, without booting.

The image is any file of physical RAM: a ksim ``--ram-file``, a QEMU ``memory-backend-file``,
a dump of a machine's memory.  Byte 0 of the file is physical address ``--image-base``
(default 0, as in both RAM files for RAM below 4 GiB).  The options are ramoops' own module
parameters with their defaults, so the command line of the kernel that wrote the region can be
copied.  What is shown is what Linux 6.1 would show in ``/sys/fs/pstore`` on a boot with those
parameters (:func:`ksim_ramoops.decode.decode_ramoops_image`): each file with its size, its
time and whether it was decompressed, what ECC corrected or could not, and ramoops' and
pstore's own messages.  The image is only read, never written (the corrections a boot would
make in RAM are made in a copy).

The core CLI finds this command through the ``ksim.commands`` entry point of the plugin
package, so the core never imports the plugin.

Exit status: 0 (the region was decoded, records or not), 2 (bad usage, an image that cannot
hold the region, a region without any ramoops signature: one line on stderr).
"""

from __future__ import annotations

import argparse
import os
import stat
import struct
import sys
import time
from pathlib import Path
from typing import Any

from ksim.clitools import UsageError, shown
from ksim_ramoops.decode import DecodeResult, decode_ramoops_image
from ksim_ramoops.ram import MIN_MEM_SIZE
from ksim_ramoops.ram_core import PERSISTENT_RAM_SIG, PersistentRamZone

__all__ = ["add_parser", "main"]

PROG = "ksim pstore"


def _number(text: str) -> int:
    """A module parameter's number: decimal, 0x hex or 0 octal, as kstrtoul(..., 0) reads it."""
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{shown(text)} is not a number (e.g. 0x100000)") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{shown(text)} is negative")
    return value


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "pstore", help="list the ramoops records in a memory image, without booting",
        description="Decode the ramoops zones of a raw memory image (a ksim RAM file, a VM's "
        "RAM file, a memory dump) as Linux 6.1 would on its next boot: list the "
        "/sys/fs/pstore files, decompress dumps, report ECC corrections.  The options are "
        "ramoops' module parameters, with its defaults.", allow_abbrev=False)
    p.add_argument("image", metavar="IMAGE", help="the memory image (a regular file)")
    p.add_argument("--mem-address", type=_number, required=True, metavar="A",
                   help="ramoops.mem_address: the region's physical address")
    p.add_argument("--mem-size", type=_number, required=True, metavar="S",
                   help="ramoops.mem_size: the region's size in bytes")
    for name, what in (("record-size", "each dmesg record"), ("console-size", "the console zone"),
                       ("ftrace-size", "the ftrace zones"), ("pmsg-size", "the pmsg zone")):
        p.add_argument(f"--{name}", type=_number, default=MIN_MEM_SIZE, metavar="N",
                       help=f"ramoops.{name.replace('-', '_')}: size of {what} (default 4096)")
    p.add_argument("--ecc", type=_number, default=0, metavar="N",
                   help="ramoops.ecc: parity bytes per block, 1 meaning 16 (default 0: none)")
    p.add_argument("--cpus", type=_number, default=1, metavar="N",
                   help="nr_cpu_ids of the kernel that wrote it: how many ftrace zones "
                        "(default 1)")
    p.add_argument("--image-base", type=_number, default=0, metavar="ADDR",
                   help="the physical address of the image's first byte (default 0)")
    p.add_argument("--cat", action="append", default=[], metavar="NAME",
                   help="also print the file NAME (repeatable)")
    p.add_argument("--output", "-o", metavar="DIR",
                   help="write every file into DIR (created if missing)")


def _read_region(path: str, offset: int, size: int) -> bytes:
    """The region's bytes, read without loading the (maybe huge, sparse) image."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise UsageError(f"{PROG}: {shown(path)}: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{PROG}: {shown(path)} is a directory, not a memory image")
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{PROG}: {shown(path)} is not a regular file (a memory image is a "
                         "file of RAM, such as a ksim --ram-file)")
    if offset + size > st.st_size:
        raise UsageError(
            f"{PROG}: {shown(path)} holds 0x{st.st_size:x} bytes, but the region "
            f"0x{size:x}@0x{offset:x} (from the image's start) ends at 0x{offset + size:x}: "
            "check --mem-address, --mem-size and --image-base")
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(size)
    except OSError as exc:
        raise UsageError(f"{PROG}: {shown(path)}: {exc.strerror}") from None
    if len(data) != size:
        raise UsageError(f"{PROG}: {shown(path)}: short read ({len(data)} of {size} bytes)")
    return data


def _zones(result: DecodeResult) -> list[PersistentRamZone]:
    cxt = result.context
    if cxt is None:
        return []
    zones = list(cxt.dprzs or []) + list(cxt.fprzs or [])
    zones += [z for z in (cxt.cprz, cxt.mprz) if z is not None]
    return zones


def _has_signature(region: bytes, base: int, zones: list[PersistentRamZone]) -> bool:
    """Did any zone carry a ramoops signature before the decode re-signed them?"""
    for zone in zones:
        off = zone.paddr - base
        sig = struct.unpack_from("<I", region, off)[0]
        if sig == PERSISTENT_RAM_SIG or sig ^ PERSISTENT_RAM_SIG in (0x0601C0,):
            return True
    return False


def _mtime(result_file: Any) -> str:
    if result_file.mtime is None:
        return "no time (shows the mount time)"
    sec = result_file.mtime.tv_sec
    try:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(sec))
    except (OverflowError, OSError, ValueError):
        return f"{sec} s"
    return f"{stamp}.{result_file.mtime.tv_nsec // 1000:06d} UTC"


def main(args: argparse.Namespace) -> int:
    if args.mem_size == 0:
        raise UsageError(f"{PROG}: --mem-size must not be 0 (ramoops ignores its parameters "
                         "without one)")
    if args.mem_address < args.image_base:
        raise UsageError(f"{PROG}: --mem-address 0x{args.mem_address:x} lies below the image's "
                         f"start (--image-base 0x{args.image_base:x})")
    if args.cpus < 1:
        raise UsageError(f"{PROG}: --cpus must be at least 1")
    offset = args.mem_address - args.image_base
    region = _read_region(args.image, offset, args.mem_size)
    result = decode_ramoops_image(
        region, mem_address=args.mem_address, mem_size=args.mem_size,
        record_size=args.record_size, console_size=args.console_size,
        ftrace_size=args.ftrace_size, pmsg_size=args.pmsg_size, ecc=args.ecc,
        nr_cpu_ids=args.cpus,
    )
    if result.error:
        detail = next((m for m in reversed(result.messages) if "probe" not in m),
                      f"error {result.error}")
        raise UsageError(f"{PROG}: ramoops refuses these parameters: {detail}")
    zones = _zones(result)
    if not _has_signature(region, args.mem_address, zones):
        raise UsageError(
            f"{PROG}: no ramoops zone at 0x{args.mem_address:x} in {shown(args.image)}: no "
            "zone header carries the signature DBGC (wrong --mem-address, or a region ramoops "
            "never used)")
    out = sys.stdout
    cxt = result.context
    assert cxt is not None
    dz = cxt.dprzs[0].size if cxt.dprzs else 0
    out.write(f"ramoops region 0x{cxt.size:x}@0x{cxt.phys_addr:x}: {cxt.max_dump_cnt} dmesg "
              f"zones of 0x{dz:x} bytes, console 0x{cxt.console_size:x}, ftrace "
              f"0x{cxt.ftrace_size:x}, pmsg 0x{cxt.pmsg_size:x}, ecc {cxt.ecc_info.ecc_size}\n")
    for msg in result.messages:
        out.write(f"  kernel: {msg}\n")
    if not result.files:
        out.write("no records\n")
    for f in result.files:
        how = "  compressed: did not inflate" if f.name.endswith(".enc.z") else ""
        ecc = ""
        if cxt.ecc_info.ecc_size:
            tail = f.data.rsplit(b"\nECC: ", 1)
            ecc = "  ECC: " + tail[1].decode(errors="replace").strip() if len(tail) == 2 else ""
        out.write(f"{f.name}  {len(f.data)} bytes  {_mtime(f)}{how}{ecc}\n")
    names = {f.name: f for f in result.files}
    for name in args.cat:
        if name not in names:
            raise UsageError(f"{PROG}: --cat {shown(name)}: no such record "
                             f"(records: {', '.join(names) or 'none'})")
        out.write(f"==> {name} <==\n")
        out.flush()
        sys.stdout.buffer.write(names[name].data)
        sys.stdout.buffer.flush()
    if args.output:
        folder = Path(args.output)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for f in result.files:
                (folder / f.name).write_bytes(f.data)
        except OSError as exc:
            raise UsageError(f"{PROG}: --output {shown(args.output)}: {exc.strerror}") from None
    return 0
