"""The pytest plugin: scenario files as items (one per scenario and seed), and the fixtures."""

from __future__ import annotations

import pytest

# pytester's in-process runs drop the modules each run imported, but the ksim package keeps the
# names it resolved lazily: load the whole kernel first, so every run shares one copy of it.
import ksim.scenario.runner  # noqa: F401

pytest_plugins = ["pytester"]

SCENARIOS = """\
name: passes
seeds: [1, 2]
boots:
  - steps: [{printk: {level: err, text: hello}}]
    expect: [{dmesg: {contains: hello}}]
---
name: fails
boots:
  - expect:
      - dmesg: {contains: "not there"}
"""


def test_scenarios_are_collected_per_seed_and_failures_read_like_the_cli(
        pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", lib=SCENARIOS)
    pytester.makefile(".yaml", other="just: some yaml\nnot: a scenario\n")
    result = pytester.runpytest_inprocess("-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([
        "lib.yaml::passes[[]seed=1[]] PASSED*",
        "lib.yaml::passes[[]seed=2[]] PASSED*",
        "lib.yaml::fails FAILED*",
        "*FAIL  lib.yaml: fails  (*",
        "*lib.yaml:10:17: boot 1: dmesg: contains",
        "*expected to contain: 'not there'",
    ])
    result = pytester.runpytest_inprocess("--ksim-seed", "9", "-k", "passes", "-v")
    result.stdout.fnmatch_lines(["lib.yaml::passes PASSED*"])


PARTLY = """\
name: sometimes
verdict:
  question: "Is the level 7?"
  answer: partly
  why: "it depends on the seed"
  observe: {file: /proc/sys/kernel/printk, equals: "7\\t4\\t1\\t7\\n"}
seeds: [1, 2]
boots: [{cmdline: "loglevel=7"}]
"""


def test_a_partly_verdict_is_judged_on_all_seeds_as_its_own_item(
        pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", partly=PARTLY)
    result = pytester.runpytest_inprocess("-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([
        "partly.yaml::sometimes[[]verdict[]] FAILED*",
        "*partly.yaml:2:1: verdict: the answer is 'partly' (the observation holds on some seeds "
        "but not all), but it held on 2 of 2 seeds",
    ])


def test_an_invalid_file_is_a_collection_error(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", broken="name: x\nboots:\n  - steps: [{printf: hi}]\n")
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*broken.yaml:3:14: unknown step 'printf'; did you mean 'printk'?*"])
    assert "Traceback" not in result.stdout.str()


def test_machine_and_kernel_fixtures_run_on_virtual_time(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest, trio
        from ksim import printk, KERN_ERR

        def test_machine(machine):
            assert machine.ram_size == 32 << 20 and machine.cpus == 1

        @pytest.mark.trio
        @pytest.mark.ksim(cmdline="memconsole=8192 loglevel=4", plugins=["memconsole"])
        async def test_kernel(kernel):
            await printk(KERN_ERR + "from a test\\n")
            await trio.sleep(3600)          # virtual: returns at once
            data = await kernel.read_file("/proc/memconsole")
            assert b"from a test" in data
            assert trio.current_time() >= 3600

        pytestmark = pytest.mark.ksim(ram="32M")
    """)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_a_stop_of_the_kernel_is_an_outcome_the_test_expects(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(stopper='''
        from ksim import KernelModule
        class Stopper(KernelModule):
            name = "stopper"
    ''')
    pytester.makepyfile(test_stops='''
        import pytest, trio
        from ksim import panic, printk

        @pytest.mark.trio
        @pytest.mark.ksim(outcome="halt")
        async def test_expected_panic(kernel):
            await panic("boom")

        @pytest.mark.trio
        @pytest.mark.ksim(outcome="restart", cmdline="panic=1")
        async def test_panic_restarts(kernel):
            await panic("boom")

        @pytest.mark.trio
        async def test_unexpected_panic(kernel):
            await panic("boom")

        @pytest.mark.trio
        @pytest.mark.ksim(outcome="restart")
        async def test_wrong_outcome(kernel):
            await panic("boom")

        @pytest.mark.trio
        @pytest.mark.ksim(outcome="halt")
        async def test_panic_in_a_kernel_thread(kernel):
            async def oops():
                await panic("from a thread")
            kernel._nursery.start_soon(oops)
            await trio.sleep(3600)
            raise AssertionError("the test body ends when the kernel stops")

        @pytest.mark.trio
        async def test_plain_assert(kernel):
            assert 1 == 2

        @pytest.mark.trio
        @pytest.mark.ksim(plugins=["stopper"], plugin_path=".")
        async def test_plugin_path(kernel):
            assert "stopper" in kernel.module.instances
    ''')
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=4, failed=3)
    result.stdout.fnmatch_lines([
        "*test_expected_panic PASSED*",
        "*test_panic_restarts PASSED*",
        "*test_unexpected_panic FAILED*",
        "*test_wrong_outcome FAILED*",
        "*test_panic_in_a_kernel_thread PASSED*",
        "*test_plain_assert FAILED*",
        "*test_plugin_path PASSED*",
        "the kernel stopped during the test: halt (panic: 'boom'); a test that expects it says "
        "@pytest.mark.ksim(outcome='halt')",
        "expected the kernel to stop with outcome 'restart', but it stopped with 'halt' "
        "(panic: 'boom')",
        ">       assert 1 == 2",
    ])
    assert "ExceptionGroup" not in result.stdout.str()
