"""A kernel access to memory that does not exist is a page fault Oops (D11).

``memmap=`` can declare RAM the machine lacks: it becomes the top of memblock, where the direct
map's page tables and the early allocations go.  On the oracle (128 MiB, ``memmap=128M@128M``)
the PTE page for the top of low RAM lands at 0xffff000, its part of the direct map is not
present, and find_cpio_data's read of the initramfs is an Oops of the idle task: a panic, with
nothing on the serial console unless earlyprintk.  Later, the same fault is an Oops of the
current task, with panic_on_oops applied.
"""

from __future__ import annotations

import pytest

from ksim import KernelModule, Machine, ProcOps, TaskKilled, proc_create
from ksim.cli import main
from ksim.mm import phys_to_virt, virt_read, virt_read_u32, virt_write_u64

ORACLE = "console=ttyS0 earlyprintk=serial,ttyS0 memmap=128M@128M"


def lines(k) -> list[str]:  # type: ignore[no-untyped-def]
    return [line.split("] ", 1)[1] for line in k.dmesg().splitlines()]


async def test_d11_a_table_where_there_is_no_ram_faults_find_cpio_data_in_the_idle_task(
        autojump_clock):
    async with Machine("128M", initrd="1376K").boot(ORACLE) as k:
        pass
    out = lines(k)
    assert "user: [mem 0x0000000008000000-0x000000000fffffff] usable" in out
    ramdisk = next(line for line in out if line.startswith("RAMDISK: "))
    start = int(ramdisk.split("[mem ")[1].split("-")[0], 16)
    assert k.layout is not None
    bug = out.index("BUG: unable to handle page fault for address: %016x"
                    % k.layout.phys_to_virt(start))
    assert out.index(ramdisk) == bug - 1
    assert out[bug + 1:bug + 3] == ["#PF: supervisor read access in kernel mode",
                                    "#PF: error_code(0x0000) - not-present page"]
    # the PMD entry points at the page at the top of memblock, which reads back zeros (oracle)
    assert out[bug + 3].startswith("PGD ") and out[bug + 3].endswith(" PMD ffff067 PTE 0")
    assert out[bug + 4] == "Oops: 0000 [#1] PREEMPT SMP NOPTI"
    assert out[bug + 5].startswith("CPU: 0 PID: 0 Comm: swapper Not tainted")
    assert out[bug + 7].startswith("RIP: 0010:find_cpio_data+")
    trace = out[out.index("Call Trace:", bug):out.index(" </TASK>", bug)]
    assert [f.split("+")[0].strip() for f in trace[2:]] == [
        "acpi_table_upgrade", "setup_arch", "start_kernel"]
    assert "CR2: %016x" % k.layout.phys_to_virt(start) in out
    assert out[-2:] == ["Kernel panic - not syncing: Attempted to kill the idle task!",
                        "---[ end Kernel panic - not syncing: Attempted to kill the idle task! ]---"]
    assert k.outcome == "halt"
    assert "Attempted to kill the idle task!" in k.serial_output()  # the boot console


async def test_d11_without_earlyprintk_the_early_oops_leaves_the_serial_console_silent(
        autojump_clock):
    async with Machine("128M", initrd="1376K").boot("console=ttyS0 memmap=128M@128M") as k:
        pass
    assert k.panic_message == "Attempted to kill the idle task!"
    assert k.serial_output() == ""


@pytest.mark.parametrize("memmap", ["128M@64M", "1G@0x4000000", "64M@512M", "4M@1G"])
async def test_d11_any_memmap_ram_beyond_the_machine_ends_in_an_oops_of_the_idle_task(
        autojump_clock, memmap):
    async with Machine("64M").boot("memmap=" + memmap) as k:
        pass
    assert "BUG: unable to handle page fault for address: " in k.dmesg()
    assert k.panic_message == "Attempted to kill the idle task!"


async def test_d11_mem_beyond_the_machine_only_limits(autojump_clock):
    """mem= removes RAM above its size and never adds any (E2; oracle: mem=1G at 128 MiB)."""
    async with Machine("64M").boot("mem=1G") as k:
        pass
    assert k.outcome == "shutdown" and "BUG:" not in k.dmesg()
    assert "user: [mem 0x0000000000100000-0x0000000003fdffff] usable" in lines(k)


def test_d11_the_cli_shows_the_panic_not_a_simulator_error(capsys):
    code = main(["boot", "--ram", "64M", "--cmdline",
                 "console=ttyS0 earlyprintk=serial,ttyS0 memmap=128M@64M"])
    out, err = capsys.readouterr()
    assert code == 3
    assert "BUG: unable to handle page fault for address: " in out
    assert "outside RAM" not in out + err and "Traceback" not in err


class Wild(KernelModule):
    """A driver that reads through a pointer to physical memory past the end of RAM."""

    name = "wild"

    async def read(self, file, count: int, pos: int) -> bytes:  # type: ignore[no-untyped-def]
        return virt_read(phys_to_virt(self.kernel.machine.mem.size + 0x1000), 8)

    async def init(self) -> int:
        proc_create("wild", 0o444, None, ProcOps(proc_read=self.read))
        return 0


async def test_d11_a_driver_reading_past_ram_oopses_the_current_task(autojump_clock):
    async with Machine("64M").boot("", [Wild]) as k:
        with pytest.raises(TaskKilled):
            await k.read_file("/proc/wild")
        virt = k.layout.phys_to_virt((64 << 20) + 0x1000)
        out = lines(k)
        at = out.index("BUG: unable to handle page fault for address: %016x" % virt)
        assert out[at + 4].startswith("Oops: 0000 [#1]")
        assert out[at + 7].startswith("RIP: 0010:read+")
        assert k.outcome == "running"  # the reader died, the kernel goes on
        assert "D" in k.panic.taints


async def test_d11_with_panic_on_oops_a_driver_fault_panics(autojump_clock):
    async with Machine("64M").boot("oops=panic", [Wild]) as k:
        await k.read_file("/proc/wild")
    assert k.panic_message == "Fatal exception"


class WildWord(Wild):
    """The same wild pointer through the one-frame word accessors (their fast path)."""

    name = "wildword"

    async def read(self, file, count: int, pos: int) -> bytes:  # type: ignore[no-untyped-def]
        virt = phys_to_virt(self.kernel.machine.mem.size + 0x1000)
        virt_write_u64(virt, 1)
        return b"%d" % virt_read_u32(virt)


async def test_d11_the_word_accessors_fault_past_ram_as_virt_read_does(autojump_clock):
    async with Machine("64M").boot("", [WildWord]) as k:
        with pytest.raises(TaskKilled):
            await k.read_file("/proc/wild")
        virt = k.layout.phys_to_virt((64 << 20) + 0x1000)
        assert "BUG: unable to handle page fault for address: %016x" % virt in lines(k)
