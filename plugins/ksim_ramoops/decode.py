"""Decode a raw ramoops memory image into what Linux 6.1 would show in /sys/fs/pstore.

:func:`decode_ramoops_image` replays, on a copy of the image, what the next boot does with
that RAM: ``ramoops_register_dummy`` and ``ramoops_probe`` attach every zone
(:func:`ksim_ramoops.ram.ramoops_probe_zones`: signatures checked, ECC corrections made in
place, invalid and single-boot zones zapped), pstore sets compression up, and mounting pstore
reads the records (:func:`ksim_ramoops.platform.pstore_get_backend_records`), inflating dmesg
dumps and naming the files (:func:`ksim_ramoops.inode.pstore_mkfile`).  Nothing else writes
the region on a Debian 6.1 boot without ``CONFIG_PSTORE_CONSOLE``, so ``image_after`` is the
region as the booted kernel leaves it, and decoding that again shows the same files.

The kernel's messages come back in boot order, each as the text after the timestamp:
``ramoops: using module parameters``, the zone diagnostics (``ramoops: error in header, 2``,
``ramoops: found existing invalid buffer, ...``), the pstore registration lines, then anything
logged while the records were read (``pstore: crypto_comp_decompress failed, ret = -22!``).
"""

from __future__ import annotations

import attrs

from ksim_ramoops.inode import PstoreFile, pstore_mkfile
from ksim_ramoops.platform import (
    PstoreCompression,
    allocate_buf_for_compression,
    pstore_get_backend_records,
)
from ksim_ramoops.pstore import PSTORE_FLAGS_DMESG
from ksim_ramoops.ram import (
    MIN_MEM_SIZE,
    RamoopsContext,
    ramoops_platform_data_from_params,
    ramoops_probe_zones,
    ramoops_pstore_open,
    ramoops_pstore_read,
)
from ksim_ramoops.ram_core import KERN_ERR, KERN_INFO, ImageMem, RamLog

__all__ = ["DecodeResult", "decode_ramoops_image"]


@attrs.frozen
class DecodeResult:
    """The files pstore shows, what the kernel logged, and the region as the boot leaves it."""

    files: tuple[PstoreFile, ...]
    messages: tuple[str, ...]
    image_after: bytes
    error: int = 0  # a negative errno if ramoops_probe failed (then there are no files)
    context: RamoopsContext | None = attrs.field(default=None, eq=False, repr=False)


def decode_ramoops_image(
    image: bytes,
    *,
    mem_address: int,
    mem_size: int | None = None,
    image_base: int | None = None,
    record_size: int = MIN_MEM_SIZE,
    console_size: int = MIN_MEM_SIZE,
    ftrace_size: int = MIN_MEM_SIZE,
    pmsg_size: int = MIN_MEM_SIZE,
    ecc: int = 0,
    max_reason: int = -1,
    dump_oops: int = -1,
    nr_cpu_ids: int = 1,
    compress: bool = True,
) -> DecodeResult:
    """The pstore records a booting Linux 6.1 finds in ``image`` with these ``ramoops.*`` parameters.

    ``image`` holds RAM from physical address ``image_base`` (default ``mem_address``: the
    image is the region itself); ``mem_size`` defaults to the image's length.  ``compress=False``
    is a kernel built without pstore compression: compressed dumps then stay ``.enc.z``.
    """
    base = mem_address if image_base is None else image_base
    if mem_size is None:
        mem_size = len(image) - (mem_address - base)
    if mem_address < base or mem_address + mem_size > base + len(image):
        raise ValueError(
            f"the ramoops region 0x{mem_size:x}@0x{mem_address:x} is not inside the image "
            f"0x{len(image):x}@0x{base:x}"
        )
    mem = ImageMem(bytearray(image), base)
    log = RamLog()
    # ramoops_register_dummy(): only with mem_size set are the module parameters used.
    log.pr(KERN_INFO, "ramoops: using module parameters")
    pdata = ramoops_platform_data_from_params(
        mem_address, mem_size, record_size=record_size, console_size=console_size,
        ftrace_size=ftrace_size, pmsg_size=pmsg_size, max_reason=max_reason, dump_oops=dump_oops,
        ecc=ecc,
    )
    cxt = ramoops_probe_zones(pdata, mem, log, nr_cpu_ids=nr_cpu_ids)
    if isinstance(cxt, int):
        log.pr(KERN_ERR, f"ramoops: probe of ramoops failed with error {cxt}")
        return DecodeResult((), tuple(log.lines()), bytes(mem.image), error=cxt)

    comp: PstoreCompression | None = None
    if compress and cxt.pstore_flags & PSTORE_FLAGS_DMESG:
        comp = allocate_buf_for_compression(cxt.bufsize, log.pr)
    log.pr(KERN_INFO, f"pstore: Registered {cxt.name} as persistent store backend")
    log.pr(
        KERN_INFO,
        f"ramoops: using 0x{cxt.size:x}@0x{cxt.phys_addr:x}, ecc: {cxt.ecc_info.ecc_size}",
    )

    # mount -t pstore: pstore_fill_super() -> pstore_get_records(0)
    files: list[PstoreFile] = []
    ramoops_pstore_open(cxt)
    pstore_get_backend_records(
        cxt.name,
        lambda record: ramoops_pstore_read(cxt, record),
        comp,
        lambda record: pstore_mkfile(files, record),
        quiet=False,
        log=log.pr,
    )
    return DecodeResult(tuple(files), tuple(log.lines()), bytes(mem.image), context=cxt)
