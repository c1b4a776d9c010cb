"""procfs, sysfs and /dev files: modes (P18), module parameters in sysfs (P18), /proc/consoles
(C7), /dev/kmsg (C14).  Rule ids refer to ``linux-semantics.md``."""

from __future__ import annotations

import pytest

from ksim import (
    EACCES, EINVAL, ENOENT, ERANGE, KERN_ERR, KernelError, KernelModule, Machine, ProcOps,
    module_param, printk, proc_create, remove_proc_entry,
)


class Params(KernelModule):
    name = "params_demo"
    flag = module_param("bool", False, 0o644)
    count = module_param("int", 3, 0o444)
    label = module_param("charp", None, 0o644)
    mask = module_param("hexint", 0x10, 0o600)
    hidden = module_param("uint", 1, 0)


async def expect_errno(errno: int, coro) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(KernelError) as info:
        await coro
    assert info.value.errno == -errno


# -- modes -------------------------------------------------------------------------------------

async def test_p18_core_files_have_linux_modes(autojump_clock):
    async with Machine("64M").boot("") as k:
        modes = {p: k.vfs.lookup(p).mode for p in (
            "/proc/cmdline", "/proc/consoles", "/proc/1/cmdline", "/proc/1/environ",
            "/proc/sys/kernel/printk", "/proc/sys/kernel/panic", "/dev/kmsg",
            "/sys/module/kernel/parameters/panic", "/sys/module/printk/parameters/time",
            "/sys/module/printk/parameters/ignore_loglevel")}
    assert modes == {"/proc/cmdline": 0o444, "/proc/consoles": 0o444, "/proc/1/cmdline": 0o444,
                     "/proc/1/environ": 0o400, "/proc/sys/kernel/printk": 0o644,
                     "/proc/sys/kernel/panic": 0o644, "/dev/kmsg": 0o644,
                     "/sys/module/kernel/parameters/panic": 0o644,
                     "/sys/module/printk/parameters/time": 0o644,
                     "/sys/module/printk/parameters/ignore_loglevel": 0o644}


async def test_p18_writing_a_read_only_file_is_eacces_even_for_root(autojump_clock):
    async with Machine("64M").boot("a=b") as k:
        for path in ("/proc/cmdline", "/proc/consoles", "/proc/1/cmdline", "/proc/1/environ"):
            before = await k.read_file(path)
            await expect_errno(EACCES, k.write_file(path, "x\n"))
            assert await k.read_file(path) == before
        await expect_errno(ENOENT, k.read_file("/proc/nope"))
        await expect_errno(ENOENT, k.write_file("/sys/module/nope/parameters/x", "1"))


async def test_reads_honour_offset_and_count(autojump_clock):
    async with Machine("64M").boot("hello world") as k:
        assert await k.read_file("/proc/cmdline", 6) == b"world\n"
        assert await k.read_file("/proc/cmdline", 0, 5) == b"hello"
        assert await k.read_file("/proc/cmdline", 100) == b""
        await expect_errno(EINVAL, k.read_file("/proc/cmdline", -1))


# -- P18: module parameters in sysfs -----------------------------------------------------------

async def test_p18_module_param_files_read_write_and_modes(autojump_clock):
    async with Machine("64M").boot("params_demo.count=9 params-demo.label=hi", [Params]) as k:
        base = "/sys/module/params_demo/parameters/"
        mod = k.module.live["params_demo"]
        assert sorted(k.vfs.listdir(base)) == ["count", "flag", "label", "mask"]  # 0: no file
        assert [k.vfs.lookup(base + n).mode for n in ("count", "flag", "label", "mask")] == [
            0o444, 0o644, 0o644, 0o600]
        assert await k.read_file(base + "count") == b"9\n"
        assert await k.read_file(base + "label") == b"hi\n"
        assert await k.read_file(base + "flag") == b"N\n"
        assert await k.read_file(base + "mask") == b"0x000010\n"
        await expect_errno(EACCES, k.write_file(base + "count", "1\n"))
        assert mod.count == 9
        assert await k.write_file(base + "flag", "on\n") == 3
        assert await k.read_file(base + "flag") == b"Y\n" and mod.flag is True
        await expect_errno(EINVAL, k.write_file(base + "flag", "maybe\n"))
        assert mod.flag is True
        await k.write_file(base + "label", "there\n")
        assert mod.label == "there\n"  # charp keeps the newline echo wrote
        await k.write_file(base + "mask", "0xff")
        assert await k.read_file(base + "mask") == b"0x0000ff\n"


async def test_p18_core_param_write_checks_type_and_takes_effect(autojump_clock):
    async with Machine("64M").boot("") as k:
        path = "/sys/module/kernel/parameters/panic"
        assert await k.read_file(path) == b"0\n"
        await expect_errno(EINVAL, k.write_file(path, "soon\n"))
        await expect_errno(ERANGE, k.write_file(path, "99999999999\n"))
        assert await k.read_file(path) == b"0\n" and k.panic.panic_timeout == 0
        await k.write_file(path, "-1\n")
        assert k.panic.panic_timeout == -1
        await k.write_file("/sys/module/printk/parameters/time", "N")
        await printk(KERN_ERR + "untimed\n")
    assert k.serial_output().endswith("\nuntimed\n")


async def test_p17_bad_boot_value_logs_and_keeps_default(autojump_clock):
    async with Machine("64M").boot("params_demo.count=x printk.time=maybe", [Params]) as k:
        assert await k.read_file("/sys/module/params_demo/parameters/count") == b"3\n"
        assert await k.read_file("/sys/module/printk/parameters/time") == b"Y\n"
    assert "Booting kernel: `x' invalid for parameter `params_demo.count'" in k.dmesg()
    assert "Booting kernel: `maybe' invalid for parameter `printk.time'" in k.dmesg()


# -- procfs API for drivers --------------------------------------------------------------------

class ProcUser(KernelModule):
    name = "procuser"

    async def init(self) -> int:
        async def read(file, count: int, pos: int) -> bytes:  # type: ignore[no-untyped-def]
            return b"0123456789"[pos:pos + count]

        written: list[bytes] = []

        async def write(file, data: bytes) -> int:  # type: ignore[no-untyped-def]
            written.append(data)
            return len(data)

        self.written = written
        self.ro = proc_create("procuser_ro", 0o444, None, ProcOps(read))
        self.rw = proc_create("procuser_rw", 0o600, "driver", ProcOps(read, write))
        self.dup = proc_create("procuser_ro", 0o444, None, ProcOps(read))
        return 0


async def test_proc_create_modes_duplicates_and_removal(autojump_clock):
    async with Machine("64M").boot("", [ProcUser]) as k:
        mod = k.module.live["procuser"]
        assert mod.ro is not None and mod.dup is None
        assert await k.read_file("/proc/procuser_ro", 3, 4) == b"3456"
        await expect_errno(EACCES, k.write_file("/proc/procuser_ro", "x"))
        assert await k.write_file("/proc/driver/procuser_rw", "abc") == 3
        assert mod.written == [b"abc"]
        with k.as_current():
            remove_proc_entry("procuser_ro", None)
        await expect_errno(ENOENT, k.read_file("/proc/procuser_ro"))


# -- C7 / C14 / misc files ---------------------------------------------------------------------

async def test_c7_proc_consoles_default_serial_line(autojump_clock):
    async with Machine("64M").boot("") as k:
        assert await k.read_file("/proc/consoles") == b"ttyS0                -W- (EC p a)    4:64\n"
    async with Machine("64M").boot("console=ttyS0,115200n8") as k:
        assert await k.read_file("/proc/consoles") == b"ttyS0                -W- (EC p a)    4:64\n"


async def test_c14_dev_kmsg_format_and_facility(autojump_clock):
    async with Machine("64M").boot("") as k:
        await printk(KERN_ERR + "caf\u00e9 \\ end\n")
        data = (await k.read_file("/dev/kmsg")).decode()
    line = data.splitlines()[-1]
    prio, seq, usec, rest = line.split(",", 3)
    assert (prio, rest) == ("3", "-;caf\\xc3\\xa9 \\x5c end")
    assert int(seq) == len(data.splitlines()) - 1
    assert int(usec) == k.printk.log.get(int(seq)).ts_nsec // 1000  # type: ignore[union-attr]
    assert data.endswith("\n") and data.count("\n") == len(k.printk.log)


async def test_proc_sys_kernel_tainted_and_modules(autojump_clock):
    async with Machine("64M").boot("") as k:
        assert await k.read_file("/proc/sys/kernel/tainted") == b"0\n"
        assert await k.read_file("/proc/modules") == b""
        assert (await k.read_file("/proc/version")).startswith(b"Linux version 6.1.0-ksim ")
