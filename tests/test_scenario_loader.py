"""ksim.scenario.loader: YAML with positions, did-you-mean, strict types, every problem at once."""

from __future__ import annotations

import textwrap

import pytest

from ksim.scenario.loader import ScenarioInvalid, load_text, parse_duration, parse_priority
from ksim.scenario.model import (
    CorruptStep, ExpectStep, InsmodStep, PanicStep, PrintkStep, SleepStep, WriteStep,
)

ISSUE_EXAMPLE = """\
name: memconsole keeps the panic across a warm reboot
machine: {ram: 64M, cpus: 2}
seed: 1
plugins: [memconsole]
boots:
  - cmdline: "memconsole=8K loglevel=4"
    steps:
      - printk: {level: err, text: "disk on fire"}
      - panic: "Fatal exception"
    expect:
      - panicked: true
      - dmesg: {contains: "Kernel panic - not syncing: Fatal exception"}
  - reboot: warm            # warm | cold | memtest; the first boot is cold
    cmdline: "memconsole=8K"
    expect:
      - file: /proc/memconsole
        contains: ["disk on fire", "Kernel panic - not syncing: Fatal exception"]
      - dmesg: {not_contains: "isn't valid"}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ScenarioInvalid) as info:
        load_text(textwrap.dedent(text), "t.yaml")
    return [str(p) for p in info.value.problems]


def test_the_issue_example_loads_into_the_model() -> None:
    [sc] = load_text(ISSUE_EXAMPLE, "example.yaml")
    assert sc.name == "memconsole keeps the panic across a warm reboot"
    assert (sc.machine.ram, sc.machine.cpus, sc.seeds) == ("64M", 2, (1,))
    assert [p.name for p in sc.plugins] == ["memconsole"]
    first, second = sc.boots
    assert first.reboot is None and second.reboot == "warm"
    assert first.steps == (PrintkStep(text="disk on fire", level="err", loc=first.steps[0].loc),
                           PanicStep(message="Fatal exception", loc=first.steps[1].loc))
    assert str(first.steps[0].loc) == "example.yaml:8:9"
    exp = second.expect[0]
    assert (exp.subject, exp.target) == ("file", "/proc/memconsole")
    assert exp.matchers[0].kind == "contains"
    assert exp.matchers[0].value == ["disk on fire", "Kernel panic - not syncing: Fatal exception"]
    assert str(exp.matchers[0].loc) == "example.yaml:17:9"


def test_shorthands_and_sibling_forms() -> None:
    [sc] = load_text(textwrap.dedent("""\
        name: forms
        seeds: "3..5"
        plugins: [{name: memconsole, builtin: false}]
        boots:
          - steps:
              - write: /proc/sys/kernel/printk=8
              - write: /sys/module/x/parameters/y
                value: 0
                errno: enoent
              - sleep: 250ms
              - insmod: {name: memconsole, params: {reboot: false, n: 3}}
              - corrupt: {address: 0x1000, bytes: "de ad"}
              - expect: {dmesg: {count: {regex: 'a+', min: 1}}}
              - oops
        """), "f.yaml")
    assert sc.seeds == (3, 4, 5)
    assert sc.plugins[0].builtin is False
    steps = sc.boots[0].steps
    assert isinstance(steps[0], WriteStep) and (steps[0].path, steps[0].value) == (
        "/proc/sys/kernel/printk", "8")
    assert (steps[1].path, steps[1].value, steps[1].errno) == ("/sys/module/x/parameters/y", 0,
                                                                "enoent")
    assert isinstance(steps[2], SleepStep) and parse_duration(steps[2].duration) == 0.25
    assert isinstance(steps[3], InsmodStep) and steps[3].params == {"reboot": False, "n": 3}
    assert isinstance(steps[4], CorruptStep) and steps[4].address == 0x1000
    assert isinstance(steps[5], ExpectStep)
    assert steps[5].expectations[0].matchers[0].value == {"regex": "a+", "min": 1}
    assert steps[6].kind == "oops"


def test_every_problem_is_reported_with_its_position() -> None:
    found = problems("""\
        name: broken
        machin: {ram: 64M}
        machine: {ram: 64Q, cpus: "two"}
        plugins: [memconsol]
        boots:
          - reboot: warm
            steps:
              - printf: "x"
              - printk: {text: 5, levl: err}
              - printk: {text: hi, level: errr}
              - irq: {count: 3, cpu: 2}
              - panic: boom
              - printk: after
            expect:
              - dmesg: {contain: x}
              - file: /proc/x
                matches: "(unclosed"
              - panicked: yes
        """)
    expected = [
        "t.yaml:2:1: unknown scenario key 'machin'; did you mean 'machine'?",
        "t.yaml:3:16: machine.ram: invalid size '64Q'",
        "t.yaml:3:27: machine.cpus: expected an integer, got string 'two'",
        "t.yaml:4:11: unknown plugin 'memconsol'; did you mean 'memconsole'?",
        "t.yaml:6:13: the first boot of a machine is cold",
        "t.yaml:8:9: unknown step 'printf'; did you mean 'printk'?",
        "t.yaml:9:24: printk: text: expected a string, got integer 5",
        "t.yaml:9:27: printk: unknown field 'levl'; did you mean 'level'?",
        "t.yaml:10:9: printk: unknown level 'errr'; did you mean 'err'?",
        "t.yaml:11:9: irq: cpu 2 does not exist (the machine has 1)",
        "t.yaml:13:9: this step never runs: the panic at 12:9 ends the boot",
        "t.yaml:15:17: unknown matcher 'contain'; did you mean 'contains'?",
        "t.yaml:17:9: matches: bad regular expression '(unclosed'",
        "t.yaml:18:19: panicked: expected true or false, got string 'yes'",
    ]
    assert len(found) == len(expected), "\n".join(found)
    for got, want in zip(found, expected):
        assert got.startswith(want), (got, want)


def test_yaml_errors_and_duplicate_keys_are_located() -> None:
    [dup] = problems("name: a\nboots: []\nname: b\n")
    assert dup.startswith("t.yaml:3:1: invalid YAML: duplicate key \"name\"")
    [syntax] = problems("name: a\nboots: [\n")
    assert syntax.startswith("t.yaml:3:1: invalid YAML:")
    [empty] = problems("# nothing\n")
    assert empty == "t.yaml:1:1: no scenario in this file"


def test_structural_mistakes_get_hints() -> None:
    found = problems("""\
        name: x
        boots:
          - cmdline: ""
            printk: oops
            steps:
              - dmesg: {contains: a}
              - printk: a
                panic: b
            expect:
              - contains: a
              - file: /proc/x
              - reports: lockupp
              - count: {equals: 1, min: 2}
        ---
        name: x
        boots: 3
        """)
    assert any("4:5: 'printk' is a step: put it in this boot's 'steps' list" in p for p in found)
    assert any("6:9: 'dmesg' is an expectation" in p for p in found)
    assert any("7:9: one step per list item: found printk, panic" in p for p in found)
    assert any("10:9: expectation without a subject" in p for p in found)
    assert any("11:9: file: nothing to check" in p for p in found)
    assert any("15:1: two scenarios named 'x' in this file (the other at 1:1)" in p for p in found)
    assert any("unknown kind 'lockupp'; did you mean 'lockup'?" in p for p in found)
    assert any("16:8: boots: expected a non-empty list of boots" in p for p in found)


def test_semantic_checks() -> None:
    found = problems("""\
        name: semantics
        seeds: [1, 1]
        plugins: [memconsole]
        boots:
          - before:
              - corrupt: {reservation: memconsole, bytes: "00"}
            steps:
              - insmod: fwlog
              - spawn: {text: x, threads: 2, cpu: 3}
              - write: {path: proc/x, value: 1, errno: EWHAT}
              - corrupt: {address: 16, fill: 300}
              - notifier: {chain: panik, name: n, returns: maybe, priority: INT_MIN-1}
              - sys_reboot: reset
              - sleep: 1fortnight
        """)
    text = "\n".join(found)
    for needle in ["2:12: seeds: 1 is listed twice",
                   "'reservation' in the first boot's 'before'",
                   "insmod fwlog: 'fwlog' is not among this boot's plugins",
                   "spawn: cpu 3 does not exist (the machine has 1)",
                   "write: unknown errno 'EWHAT'",
                   "write: the path must be absolute",
                   "corrupt: fill must be a byte",
                   "corrupt: fill needs a length",
                   "notifier: chain 'panik' is not one of panic, reboot, die; did you mean 'panic'?",
                   "notifier: returns 'maybe'",
                   "notifier: priority: INT_MIN-1 does not fit an int",
                   "sys_reboot: mode 'reset' is not one of restart, halt, power_off",
                   "sleep: invalid duration '1fortnight'"]:
        assert needle in text, needle


def test_nested_type_errors_point_at_the_value() -> None:
    found = problems("""\
        name: nested
        plugins: [{name: memconsole, builtin: false}]
        boots:
          - steps:
              - insmod: {name: memconsole, params: {reboot: [1]}}
              - corrupt: {address: 0, bytes: [1, "x"]}
        """)
    assert found[0] == ("t.yaml:5:53: insmod: params.reboot: expected a string, an integer, a "
                        "number or true or false, got a list")
    assert found[1] == "t.yaml:6:42: corrupt: bytes.1: expected an integer, got string 'x'"


def test_helpers() -> None:
    assert parse_priority("INT_MIN") == -(1 << 31)
    assert parse_priority("INT_MAX - 1") == (1 << 31) - 2
    assert parse_priority(-5) == -5
    assert parse_duration("10us") == pytest.approx(1e-5)
    assert parse_duration(2) == 2.0


def test_a_boot_names_its_own_initramfs_size_which_is_checked() -> None:
    [sc] = load_text(textwrap.dedent("""\
        name: grows
        machine: {initrd: 40M}
        boots:
          - cmdline: ""
          - initrd: 44M
        """), "t.yaml")
    assert (sc.machine.initrd, sc.boots[0].initrd, sc.boots[1].initrd) == ("40M", None, "44M")
    [msg] = problems("""\
        name: bad
        boots:
          - initrd: 40Q
        """)
    assert msg.startswith("t.yaml:3:13: initrd: ")
    [msg] = problems("""\
        name: bad
        boots:
          - initrd: 40
        """)
    assert msg.startswith("t.yaml:3:13: initrd: expected a size such as 40M, got ")
