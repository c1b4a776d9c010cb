"""Tests for ksim.params: dispatch (P5), ``--`` (P4), types (P16), messages (P17), sysfs (P18)."""

from __future__ import annotations

import pytest

from ksim.cmdline import Token, repair_env_string, split_args
from ksim.errno import EACCES, EINVAL, ENOENT, ENOSPC, ERANGE, KernelError
from ksim.params import (
    KernelParam,
    ParamOps,
    ParseResult,
    UnknownHandler,
    check_perm,
    module_param_sysfs_setup,
    param_array_ops,
    param_attr_store,
    param_ops_bint,
    param_ops_bool,
    param_ops_byte,
    param_ops_charp,
    param_ops_hexint,
    param_ops_int,
    param_ops_invbool,
    param_ops_long,
    param_ops_short,
    param_ops_string,
    param_ops_uint,
    param_ops_ullong,
    param_ops_ulong,
    param_ops_ushort,
    param_sysfs_builtin,
    param_sysfs_path,
    parse_args,
    parse_module_args,
)

KERN_ERR = 3
KERN_WARNING = 4
BOOT = "Booting kernel"


class Log:
    """Collects ``log(level, text)`` calls."""

    def __init__(self) -> None:
        self.lines: list[tuple[int, str]] = []

    def __call__(self, level: int, text: str) -> None:
        self.lines.append((level, text))

    @property
    def texts(self) -> list[str]:
        return [text for _, text in self.lines]


def boot(
    line: str, *params: KernelParam, unknown: UnknownHandler | None = None
) -> tuple[ParseResult, Log]:
    log = Log()
    return parse_args(BOOT, line, params, -1, -1, unknown, log), log


def parse(ops: ParamOps, val: str | None, name: str = "p") -> object:
    return ops.parse(val, name)


def error_of(ops: ParamOps, val: str | None, name: str = "p") -> KernelError:
    with pytest.raises(KernelError) as info:
        ops.parse(val, name)
    return info.value


# --- P5: dispatch ---------------------------------------------------------------------------


def test_p5_matching_word_calls_the_type() -> None:
    panic = KernelParam("panic", param_ops_int, 0o644)
    result, log = boot("panic=10", panic)
    assert result == ParseResult(0, None)
    assert panic.value == 10 and log.lines == []


def test_p5_p19_names_match_with_dash_underscore_equivalence() -> None:
    delay = KernelParam("usb_storage.delay_use", param_ops_uint, 0o644)
    result, _ = boot("usb-storage.delay-use=3", delay)
    assert result.err == 0 and delay.value == 3


def test_p5_bare_word_sets_noarg_types() -> None:
    flag = KernelParam("m.flag", param_ops_bool, 0o644)
    count = KernelParam("m.bint", param_ops_bint, 0o644)
    result, _ = boot("m.flag m.bint", flag, count)
    assert result.err == 0
    assert flag.value is True and count.value == 1


def test_p5_bare_word_is_einval_for_other_types() -> None:
    panic = KernelParam("panic", param_ops_int, 0o644)
    result, log = boot("panic", panic)
    assert result.err == -EINVAL
    assert log.lines == [(KERN_ERR, "Booting kernel: `' invalid for parameter `panic'")]


def test_p5_invbool_is_not_noarg() -> None:
    # kernel/params.c gives param_ops_invbool no KERNEL_PARAM_OPS_FL_NOARG flag.
    nosmp = KernelParam("m.inv", param_ops_invbool, 0o644)
    result, log = boot("m.inv", nosmp)
    assert result.err == -EINVAL
    assert log.texts == ["Booting kernel: `' invalid for parameter `m.inv'"]
    assert nosmp.value is False


def test_p5_param_of_other_level_is_skipped_silently() -> None:
    late = KernelParam("m.late", param_ops_int, 0o644, level=6)
    seen: list[Token] = []

    def unknown(tok: Token, doing: str) -> int:
        seen.append(tok)
        return 0

    result, log = boot("m.late=junk", late, unknown=unknown)
    assert result.err == 0 and late.value == 0
    assert seen == [] and log.lines == []


def test_p5_param_inside_the_level_window_is_set() -> None:
    late = KernelParam("m.late", param_ops_int, 0o644, level=6)
    log = Log()
    assert parse_args("m", "m.late=4", [late], 5, 7, None, log).err == 0
    assert late.value == 4


def test_p5_unmatched_word_goes_to_unknown_handler_with_doing() -> None:
    calls: list[tuple[Token, str]] = []

    def unknown(tok: Token, doing: str) -> int:
        calls.append((tok, doing))
        return 0

    result, log = boot('splash foo="a b"', unknown=unknown)
    assert result.err == 0 and log.lines == []
    assert calls == [
        (Token("splash", None, "splash"), BOOT),
        (Token("foo", "a b", 'foo="a b"'), BOOT),
    ]


def test_p5_unknown_handler_error_is_reported_like_any_other() -> None:
    result, log = boot("x=1", unknown=lambda tok, doing: -EINVAL)
    assert result.err == -EINVAL
    assert log.texts == ["Booting kernel: `1' invalid for parameter `x'"]


def test_p5_accepts_pre_split_tokens() -> None:
    panic = KernelParam("panic", param_ops_int, 0o644)
    log = Log()
    result = parse_args(BOOT, split_args("panic=5"), [panic], -1, -1, None, log)
    assert result.err == 0 and panic.value == 5


# --- P17: messages and error handling -------------------------------------------------------------


def test_p17_unknown_parameter_without_handler() -> None:
    result, log = boot("nosuch=1")
    assert result.err == -ENOENT
    assert log.lines == [(KERN_ERR, "Booting kernel: Unknown parameter `nosuch'")]


def test_p17_too_large_message_follows_the_types_own_message() -> None:
    name = KernelParam("m.name", param_ops_string(4), 0o644)
    result, log = boot("m.name=abcd", name)
    assert result.err == -ENOSPC
    assert log.lines == [
        (KERN_ERR, "m.name: string doesn't fit in 3 chars."),
        (KERN_ERR, "Booting kernel: `abcd' too large for parameter `m.name'"),
    ]


def test_p17_invalid_message_covers_erange_too() -> None:
    byte = KernelParam("m.b", param_ops_byte, 0o644)
    result, log = boot("m.b=256", byte)
    assert result.err == -ERANGE
    assert log.texts == ["Booting kernel: `256' invalid for parameter `m.b'"]


def test_p17_parsing_continues_and_the_last_error_wins() -> None:
    a = KernelParam("a", param_ops_int, 0o644)
    b = KernelParam("b", param_ops_int, 0o644)
    c = KernelParam("c", param_ops_charp, 0o644)
    result, log = boot(f"a=x b=2 nosuch c={'z' * 1025}", a, b, c)
    assert result.err == -ENOSPC
    assert b.value == 2 and a.value == 0 and c.value is None
    assert log.texts == [
        "Booting kernel: `x' invalid for parameter `a'",
        "Booting kernel: Unknown parameter `nosuch'",
        "c: string parameter too long",
        f"Booting kernel: `{'z' * 1025}' too large for parameter `c'",
    ]


def test_p17_doing_names_the_pass() -> None:
    log = Log()
    parse_args("early options", "x", [], -1, -1, None, log)
    assert log.texts == ["early options: Unknown parameter `x'"]


# --- P4: words after `--` -----------------------------------------------------------------------


def test_p4_double_dash_stops_parsing_and_returns_the_rest() -> None:
    panic = KernelParam("panic", param_ops_int, 0o644)
    result, log = boot('quiet -- panic=3 single foo="a b"', panic, unknown=lambda t, d: 0)
    assert result.err == 0 and panic.value == 0 and log.lines == []
    assert result.rest is not None
    assert [repair_env_string(t) for t in result.rest] == ["panic=3", "single", "foo=a b"]


def test_p4_trailing_double_dash_gives_empty_rest() -> None:
    result, _ = boot("ro --", unknown=lambda t, d: 0)
    assert result == ParseResult(0, ())


def test_p4_no_double_dash_gives_no_rest() -> None:
    result, _ = boot("ro", unknown=lambda t, d: 0)
    assert result.rest is None


def test_p4_only_a_bare_double_dash_counts() -> None:
    seen: list[str] = []

    def unknown(tok: Token, doing: str) -> int:
        seen.append(tok.raw)
        return 0

    result, _ = boot('--=x "--" after', unknown=unknown)
    assert seen == ["--=x"]
    assert result.rest == (Token("after", None, "after"),)


def test_p4_error_before_double_dash_hides_the_rest() -> None:
    panic = KernelParam("panic", param_ops_int, 0o644)
    result, _ = boot("panic=x -- single", panic)
    assert result == ParseResult(-EINVAL, None)


def test_p4_second_pass_over_rest_stops_at_a_second_double_dash() -> None:
    first, _ = boot("ro -- a b=1 -- c", unknown=lambda t, d: 0)
    assert first.rest is not None
    init_args: list[str] = []

    def set_init_arg(tok: Token, doing: str) -> int:
        init_args.append(repair_env_string(tok))
        return 0

    second = parse_args("Setting init args", first.rest, [], -1, -1, set_init_arg, Log())
    assert init_args == ["a", "b=1"]
    assert second.rest == (Token("c", None, "c"),)


# --- P16: types -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("val", "expected"),
    [(None, True), ("y", True), ("1", True), ("on", True), ("n", False), ("0", False),
     ("off", False), ("N", False)],
)
def test_p16_bool_values(val: str | None, expected: bool) -> None:
    assert parse(param_ops_bool, val) is expected


@pytest.mark.parametrize("val", ["", "maybe", "2", "o"])
def test_p16_bool_rejects(val: str) -> None:
    assert error_of(param_ops_bool, val).errno == -EINVAL


def test_p16_bool_formats_y_n() -> None:
    assert param_ops_bool.format(True) == "Y\n"
    assert param_ops_bool.format(False) == "N\n"


def test_p16_invbool_stores_inverted_and_reads_back_user_sense() -> None:
    kp = KernelParam("m.inv", param_ops_invbool, 0o644)
    kp.set("1")
    assert kp.value is False and kp.get() == "Y\n"
    kp.set("off")
    assert kp.value is True and kp.get() == "N\n"


def test_p16_bint_stores_int() -> None:
    kp = KernelParam("m.bint", param_ops_bint, 0o644)
    kp.set("y")
    assert kp.value == 1 and type(kp.value) is int and kp.get() == "1\n"
    kp.set("n")
    assert kp.get() == "0\n"


@pytest.mark.parametrize(
    ("ops", "lo", "hi"),
    [
        (param_ops_byte, 0, 255),
        (param_ops_short, -32768, 32767),
        (param_ops_ushort, 0, 65535),
        (param_ops_int, -(1 << 31), (1 << 31) - 1),
        (param_ops_uint, 0, (1 << 32) - 1),
        (param_ops_long, -(1 << 63), (1 << 63) - 1),
        (param_ops_ulong, 0, (1 << 64) - 1),
        (param_ops_ullong, 0, (1 << 64) - 1),
        (param_ops_hexint, 0, (1 << 32) - 1),
    ],
)
def test_p16_integer_types_ranges(ops: ParamOps, lo: int, hi: int) -> None:
    assert parse(ops, str(lo)) == lo
    assert parse(ops, str(hi)) == hi
    assert error_of(ops, str(hi + 1)).errno == -ERANGE
    assert error_of(ops, str(lo - 1)).errno == (-EINVAL if lo == 0 else -ERANGE)


@pytest.mark.parametrize("val", ["", "12abc", " 1", "1 ", "0x", "1.5", "08"])
def test_p16_integer_junk_is_einval(val: str) -> None:
    assert error_of(param_ops_int, val).errno == -EINVAL


def test_p16_integers_accept_base_prefixes_plus_and_one_newline() -> None:
    assert parse(param_ops_int, "0x10") == 16
    assert parse(param_ops_int, "010") == 8
    assert parse(param_ops_int, "+7") == 7
    assert parse(param_ops_int, "-7\n") == -7
    assert error_of(param_ops_int, "7\n\n").errno == -EINVAL


def test_p16_integer_formats() -> None:
    assert param_ops_int.format(-5) == "-5\n"
    assert param_ops_ullong.format((1 << 64) - 1) == "18446744073709551615\n"
    assert param_ops_hexint.format(0x10) == "0x000010\n"
    assert param_ops_hexint.format(0) == "0x000000\n"
    assert param_ops_hexint.format(0xDEADBEEF) == "0xdeadbeef\n"


def test_p16_charp_limit_and_message() -> None:
    assert parse(param_ops_charp, "x" * 1024) == "x" * 1024
    assert parse(param_ops_charp, "") == ""
    err = error_of(param_ops_charp, "x" * 1025, "m.name")
    assert err.errno == -ENOSPC and err.message == "m.name: string parameter too long"


def test_p16_charp_formats_null_as_null() -> None:
    kp = KernelParam("m.name", param_ops_charp, 0o444)
    assert kp.value is None and kp.get() == "(null)\n"
    kp.set("ttyS0")
    assert kp.get() == "ttyS0\n"


def test_p16_string_fits_maxlen_minus_one() -> None:
    ops = param_ops_string(8)
    assert parse(ops, "1234567") == "1234567"
    err = error_of(ops, "12345678", "m.s")
    assert err.errno == -ENOSPC and err.message == "m.s: string doesn't fit in 7 chars."
    assert ops.format("abc") == "abc\n" and ops.name == "string"


def test_p16_string_needs_room_for_the_nul() -> None:
    with pytest.raises(ValueError, match="maxlen"):
        param_ops_string(0)


def test_p16_array_parses_each_element() -> None:
    ops = param_array_ops(param_ops_int, 4)
    assert ops.name == "array of int"
    assert parse(ops, "1,-2,0x3") == (1, -2, 3)
    assert ops.format((1, -2, 3)) == "1,-2,3\n"


def test_p16_array_too_many_elements() -> None:
    ops = param_array_ops(param_ops_int, 2)
    err = error_of(ops, "1,2,x", "m.a")
    assert err.errno == -EINVAL and err.message == "m.a: can only take 2 arguments"


def test_p16_array_element_error_passes_through_with_array_name() -> None:
    ints = param_array_ops(param_ops_int, 4)
    assert error_of(ints, "1,x").errno == -EINVAL
    assert error_of(ints, "1,").errno == -EINVAL
    assert error_of(ints, "1,99999999999").errno == -ERANGE
    names = param_array_ops(param_ops_charp, 4)
    assert error_of(names, "a," + "z" * 1025, "m.n").message == "m.n: string parameter too long"


def test_p16_array_min_elements() -> None:
    ops = param_array_ops(param_ops_int, 4, min=2)
    err = error_of(ops, "1", "m.a")
    assert err.errno == -EINVAL and err.message == "m.a: needs at least 2 arguments"


def test_p16_array_of_charp_keeps_empty_elements() -> None:
    assert parse(param_array_ops(param_ops_charp, 4), "a,,b") == ("a", "", "b")


def test_p16_array_formats() -> None:
    bools = param_array_ops(param_ops_bool, 4)
    assert parse(bools, "y,n") == (True, False)
    assert bools.format((True, False)) == "Y,N\n"
    assert bools.format(()) == ""


def test_p16_array_needs_a_value_and_keeps_old_value_on_error() -> None:
    kp = KernelParam("m.a", param_array_ops(param_ops_int, 2), 0o644)
    assert kp.value == ()
    kp.set("1,2")
    with pytest.raises(KernelError):
        kp.set(None)
    with pytest.raises(KernelError):
        kp.set("3,4,5")
    assert kp.value == (1, 2)


def test_p16_failed_set_leaves_value_unchanged() -> None:
    kp = KernelParam("panic", param_ops_int, 0o644, value=5)
    with pytest.raises(KernelError):
        kp.set("x")
    assert kp.value == 5


@pytest.mark.parametrize(
    ("ops", "zero"),
    [(param_ops_bool, False), (param_ops_int, 0), (param_ops_charp, None),
     (param_ops_string(4), ""), (param_array_ops(param_ops_int, 2), ())],
)
def test_p16_default_value_is_the_zero_of_the_type(ops: ParamOps, zero: object) -> None:
    assert KernelParam("x", ops, 0).value == zero


# --- P17: module load ----------------------------------------------------------------------------


def test_p17_module_unknown_parameter_only_warns() -> None:
    reboot = KernelParam("reboot", param_ops_bool, 0o644)
    log = Log()
    assert parse_module_args("memconsole", "bogus=1 reboot=0", [reboot], log) == 0
    assert reboot.value is False
    assert log.lines == [(KERN_WARNING, "memconsole: unknown parameter 'bogus' ignored")]


def test_p17_module_bad_value_fails_the_load() -> None:
    size = KernelParam("size", param_ops_uint, 0o444)
    log = Log()
    assert parse_module_args("memconsole", "size=-1", [size], log) == -EINVAL
    assert log.lines == [(KERN_ERR, "memconsole: `-1' invalid for parameter `size'")]


def test_p17_module_async_probe_and_dyndbg_are_special() -> None:
    log = Log()
    assert parse_module_args("m", "async_probe dyndbg=+p m.dyndbg", [], log) == 0
    assert log.lines == []


def test_p17_module_args_from_mapping_and_all_levels_apply() -> None:
    late = KernelParam("late", param_ops_int, 0o644, level=7)
    flag = KernelParam("flag", param_ops_bool, 0o644)
    log = Log()
    assert parse_module_args("m", {"late": "3", "flag": None}, [late, flag], log) == 0
    assert late.value == 3 and flag.value is True


def test_p17_module_words_after_double_dash_are_ignored_with_warning() -> None:
    log = Log()
    assert parse_module_args("m", "-- a  b=1", [], log) == 0
    assert log.lines == [(KERN_WARNING, "m: parameters 'a b=1' after `--' ignored")]
    log = Log()
    parse_module_args("m", "--", [], log)
    assert log.texts == ["m: parameters '' after `--' ignored"]


# --- P18: permissions and sysfs -------------------------------------------------------------------


@pytest.mark.parametrize("perm", [0, 0o444, 0o644, 0o400, 0o600, 0o640, 0o664, 0o755, 0o200])
def test_p18_valid_modes(perm: int) -> None:
    assert check_perm(perm) == perm


@pytest.mark.parametrize(
    ("perm", "why"),
    [
        (0o666, "world-writable"),
        (0o646, "world-writable"),
        (0o1644, "0..0777"),
        (-1, "0..0777"),
        (0o044, "group-readable needs user-readable"),
        (0o040, "group-readable needs user-readable"),
        (0o404, "other-readable needs group-readable"),
        (0o604, "other-readable needs group-readable"),
        (0o420, "group-writable needs user-writable"),
    ],
)
def test_p18_invalid_modes_are_refused(perm: int, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        check_perm(perm)


def test_p18_kernel_param_refuses_an_invalid_mode() -> None:
    with pytest.raises(ValueError, match="world-writable"):
        KernelParam("m.x", param_ops_int, 0o666)


def test_p18_builtin_sysfs_grouping() -> None:
    panic = KernelParam("panic", param_ops_int, 0o644)
    reboot = KernelParam("memconsole.reboot", param_ops_bool, 0o644)
    dotted = KernelParam("a.b.c", param_ops_int, 0o444)
    hidden = KernelParam("memconsole.secret", param_ops_int, 0)
    assert param_sysfs_builtin([panic, reboot, dotted, hidden]) == {
        "/sys/module/kernel/parameters/panic": panic,
        "/sys/module/memconsole/parameters/reboot": reboot,
        "/sys/module/a/parameters/b.c": dotted,
    }


def test_p18_module_sysfs_files() -> None:
    reboot = KernelParam("reboot", param_ops_bool, 0o644)
    hidden = KernelParam("secret", param_ops_int, 0)
    assert param_sysfs_path("ramoops", "mem_size") == "/sys/module/ramoops/parameters/mem_size"
    assert module_param_sysfs_setup("memconsole", [reboot, hidden]) == {
        "/sys/module/memconsole/parameters/reboot": reboot
    }


def test_p18_sysfs_write_to_read_only_file_is_eacces() -> None:
    kp = KernelParam("m.x", param_ops_int, 0o444)
    assert param_attr_store(kp, "5\n", Log()) == -EACCES
    assert kp.value == 0


def test_p18_sysfs_write_returns_length_and_tolerates_newline() -> None:
    kp = KernelParam("m.x", param_ops_int, 0o644)
    assert param_attr_store(kp, "5\n", Log()) == 2
    assert kp.get() == "5\n"


def test_p18_sysfs_write_failure_returns_errno_and_logs_type_message() -> None:
    kp = KernelParam("m.name", param_ops_charp, 0o600)
    log = Log()
    assert param_attr_store(kp, "bad" * 400, log) == -ENOSPC
    assert log.lines == [(KERN_ERR, "m.name: string parameter too long")]
    assert param_attr_store(KernelParam("m.i", param_ops_int, 0o200), "x", log) == -EINVAL


def test_p18_sysfs_write_to_charp_keeps_the_newline() -> None:
    kp = KernelParam("m.name", param_ops_charp, 0o644)
    assert param_attr_store(kp, "abc\n", Log()) == 4
    assert kp.get() == "abc\n\n"
