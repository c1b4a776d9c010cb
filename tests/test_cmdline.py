"""Tests for ksim.cmdline: tokenizer (P2), names (P3), repair (P4/P6), numbers (P14-P16, F1)."""

from __future__ import annotations

import pytest

from ksim.cmdline import (
    Token,
    get_option,
    get_options,
    kstrtobool,
    kstrtoint,
    kstrtol,
    kstrtoll,
    kstrtos8,
    kstrtos16,
    kstrtou8,
    kstrtou16,
    kstrtouint,
    kstrtoul,
    kstrtoull,
    memparse,
    next_arg,
    parameq,
    parameqn,
    repair_env_string,
    simple_strtol,
    simple_strtoul,
    simple_strtoull,
    split_args,
)
from ksim.errno import EINVAL, ERANGE, KernelError

U64_MAX = (1 << 64) - 1


def one(line: str) -> Token:
    tokens = split_args(line)
    assert len(tokens) == 1, tokens
    return tokens[0]


# --- P2: tokenizer ----------------------------------------------------------------------------


def test_p2_bare_word_has_no_value() -> None:
    assert one("quiet") == Token("quiet", None, "quiet")


def test_p2_empty_value_is_empty_string_not_none() -> None:
    assert one("foo=") == Token("foo", "", "foo=")


def test_p2_first_equals_splits_later_ones_stay_in_value() -> None:
    assert one("a=b=c") == Token("a", "b=c", "a=b=c")
    assert one("x==y").value == "=y"


def test_p2_equals_at_index_zero_does_not_split() -> None:
    assert one("=a") == Token("=a", None, "=a")
    # ...but the next '=' still does: 0 doubles as "not found" in the C loop.
    assert one("=a=b") == Token("=a", "b", "=a=b")


def test_p2_quoted_value_strips_outer_quotes() -> None:
    assert one('foo="a b"') == Token("foo", "a b", 'foo="a b"')


def test_p2_quoted_value_keeps_inner_quotes() -> None:
    assert one('foo=a"b c"d') == Token("foo", 'a"b c"d', 'foo=a"b c"d')


def test_p2_quote_inside_value_only_at_start_is_stripped() -> None:
    assert one('foo="a"b') == Token("foo", 'a"b', 'foo="a"b')


def test_p2_leading_quote_allows_space_in_name() -> None:
    assert one('"a b=c"') == Token("a b", "c", '"a b=c"')


def test_p2_quoted_bare_word_loses_both_quotes() -> None:
    assert one('"a b"') == Token("a b", None, '"a b"')


def test_p2_quoted_word_and_quoted_value_strip_final_quote_once() -> None:
    assert one('"foo="') == Token("foo", "", '"foo="')
    assert one('foo="') == Token("foo", "", 'foo="')
    assert one('"x="ab""') == Token("x", 'ab"', '"x="ab""')


def test_p2_every_quote_toggles_so_a_leading_quote_can_close_early() -> None:
    # The word's own opening quote is closed by the value's: the space is not protected.
    assert split_args('"x="a b""') == [Token("x", "a", '"x="a'), Token('b""', None, 'b""')]


def test_p2_backslash_is_not_an_escape() -> None:
    assert split_args('foo="a\\" b"') == [
        Token("foo", "a\\", 'foo="a\\"'),
        Token('b"', None, 'b"'),
    ]


def test_p2_unterminated_quote_swallows_the_rest() -> None:
    assert split_args('a foo="x y z  w') == [
        Token("a", None, "a"),
        Token("foo", "x y z  w", 'foo="x y z  w'),
    ]


def test_p2_lone_quote_is_an_empty_name() -> None:
    assert split_args('a "') == [Token("a", None, "a"), Token("", None, '"')]


def test_p2_tabs_newlines_and_runs_of_spaces_separate() -> None:
    names = [t.name for t in split_args("  a\tb\nc \r\n d\v\fe\xa0f  ")]
    assert names == ["a", "b", "c", "d", "e", "f"]


def test_p2_ascii_information_separators_are_not_space() -> None:
    # str.isspace() says yes, the kernel's isspace() says no.
    assert split_args("a\x1cb") == [Token("a\x1cb", None, "a\x1cb")]


def test_p2_quoted_spaces_of_every_kind_are_kept() -> None:
    assert one('x="a\tb\nc"').value == "a\tb\nc"


def test_p2_next_arg_returns_token_and_next_position() -> None:
    line = "  root=/dev/sda1   ro "
    tok, pos = next_arg(line, 0)  # type: ignore[misc]
    assert tok == Token("root", "/dev/sda1", "root=/dev/sda1")
    assert line[pos:] == "ro "
    tok, pos = next_arg(line, pos)  # type: ignore[misc]
    assert tok.name == "ro" and pos == len(line)
    assert next_arg(line, pos) is None


def test_p2_next_arg_at_end_or_on_blank_line_is_none() -> None:
    assert next_arg("", 0) is None
    assert next_arg(" \t\n", 0) is None
    assert next_arg("abc", 3) is None


def test_p2_split_args_preserves_order_and_duplicates() -> None:
    assert [t.raw for t in split_args("a=1 b a=2")] == ["a=1", "b", "a=2"]


# --- P3: names --------------------------------------------------------------------------------


def test_p3_dash_and_underscore_are_equal_on_both_sides() -> None:
    assert parameq("usb-storage.delay_use", "usb_storage.delay-use")
    assert parameq("a_b", "a-b")
    assert parameq("a-b", "a_b")


def test_p3_everything_else_is_exact_and_case_sensitive() -> None:
    assert not parameq("Quiet", "quiet")
    assert not parameq("quiet", "quietly")
    assert not parameq("quietly", "quiet")
    assert not parameq("a.b", "a_b")


def test_p3_parameqn_compares_a_prefix() -> None:
    assert parameqn("panic=10", "panic=", 6)
    assert parameqn("no-hlt", "no_hlt_x", 6)
    assert not parameqn("panic=10", "panik=", 6)


def test_p3_parameqn_counts_the_terminating_nul() -> None:
    assert not parameqn("ab", "abc", 3)
    assert parameqn("ab", "ab", 5)


# --- P4/P6: repair_env_string ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('foo="a b"', "foo=a b"),
        ("splash", "splash"),
        ('"a b=c"', "a b=c"),
        ('"a b"', "a b"),
        ("foo=", "foo="),
        ("x=a=b", "x=a=b"),
        ('foo=a"b c"d', 'foo=a"b c"d'),
    ],
)
def test_p6_repair_env_string_restores_equals_but_not_quotes(raw: str, expected: str) -> None:
    assert repair_env_string(one(raw)) == expected


def test_p4_words_after_dashes_get_the_same_repair() -> None:
    tokens = split_args('ro -- single foo="x y"')
    rest = tokens[tokens.index(Token("--", None, "--")) + 1 :]
    assert [repair_env_string(t) for t in rest] == ["single", "foo=x y"]


# --- P16 [2009] simple_strto* (lib/vsprintf.c) and F1 -----------------------------------------------------


def test_p16_2009_simple_strtoul_stops_at_first_non_digit() -> None:
    assert simple_strtoul("123abc") == (123, "abc")
    assert simple_strtoul("abc") == (0, "abc")
    assert simple_strtoul("") == (0, "")


def test_p16_2009_simple_strtoul_skips_no_whitespace_and_no_plus() -> None:
    assert simple_strtoul(" 5") == (0, " 5")
    assert simple_strtoul("+5") == (0, "+5")


def test_p16_2009_simple_strtoul_base_detection() -> None:
    assert simple_strtoul("0x1fz") == (31, "z")
    assert simple_strtoul("0X1F") == (31, "")
    assert simple_strtoul("010") == (8, "")
    assert simple_strtoul("08") == (0, "8")
    assert simple_strtoul("0") == (0, "")
    # 0x without a hex digit is octal 0 followed by junk under base 0...
    assert simple_strtoul("0xg") == (0, "xg")
    # ...but base 16 skips the prefix unconditionally.
    assert simple_strtoul("0xg", 16) == (0, "g")
    assert simple_strtoul("ff", 16) == (255, "")


def test_f1_decimal_simple_strtoul_ignores_suffix_and_hex() -> None:
    assert simple_strtoul("1M", 10) == (1, "M")
    assert simple_strtoul("0x100000", 10) == (0, "x100000")


def test_p16_2009_simple_strtoull_wraps_at_2_64() -> None:
    assert simple_strtoull(str(U64_MAX)) == (U64_MAX, "")
    assert simple_strtoull(str(U64_MAX + 1)) == (0, "")
    assert simple_strtoull(str(U64_MAX + 6)) == (5, "")


def test_p16_2009_simple_strtol_negates_and_reinterprets_as_signed() -> None:
    assert simple_strtol("-5x") == (-5, "x")
    assert simple_strtol("42") == (42, "")
    assert simple_strtol(str(U64_MAX)) == (-1, "")
    assert simple_strtol("-") == (0, "")
    assert simple_strtol("--5") == (0, "-5")


# --- P14: memparse -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1KB", (1024, "B")),
        ("1.5G", (1, ".5G")),
        ("0x10M", (16 << 20, "")),
        ("010", (8, "")),
        ("64m", (64 << 20, "")),
        ("2k,rest", (2048, ",rest")),
        ("3T", (3 << 40, "")),
        ("3p", (3 << 50, "")),
        ("3E", (3 << 60, "")),
        ("1KK", (1024, "K")),
        ("1e", (1 << 60, "")),
        ("0x1e", (0x1E, "")),
        ("K", (0, "")),
        ("M@0x100", (0, "@0x100")),
        ("abc", (0, "abc")),
        ("1X", (1, "X")),
    ],
)
def test_p14_memparse(text: str, expected: tuple[int, str]) -> None:
    assert memparse(text) == expected


def test_p14_memparse_wraps_without_overflow_detection() -> None:
    assert memparse("16E") == (0, "")
    assert memparse("17E") == (1 << 60, "")
    assert memparse(str(U64_MAX + 2)) == (1, "")


# --- P15: get_option / get_options --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", (0, 0, "")),
        ("abc", (0, 0, "abc")),
        ("5", (1, 5, "")),
        ("5 x", (1, 5, " x")),
        ("0x10,7", (2, 16, "7")),
        ("3-5", (3, 3, "-5")),
        ("-5", (1, -5, "")),
        ("-5,", (2, -5, "")),
        ("-x", (0, 0, "x")),
        ("4294967297", (1, 1, "")),
        ("2147483648", (1, -(1 << 31), "")),
    ],
)
def test_p15_get_option_return_codes(text: str, expected: tuple[int, int, str]) -> None:
    assert get_option(text) == expected


def test_p15_get_options_expands_ranges() -> None:
    assert get_options("1,2,5-8,10", 16) == [1, 2, 5, 6, 7, 8, 10]
    assert get_options("0x10-0x12", 16) == [16, 17, 18]
    assert get_options("-2-1", 16) == [-2, -1, 0, 1]


def test_p15_get_options_nints_counts_the_count_slot() -> None:
    assert get_options("1,2,3", 3) == [1, 2]
    assert get_options("1-10", 4) == [1, 2, 3]
    assert get_options("7", 1) == []


def test_p15_get_options_stops_at_junk_end_or_descending_range() -> None:
    assert get_options("1,x,3", 16) == [1]
    assert get_options("1 2", 16) == [1]
    assert get_options("9-7", 16) == []
    assert get_options("4,9-7,1", 16) == [4]
    assert get_options("1-1", 16) == [1]
    assert get_options("", 16) == []


def test_p15_get_options_rejects_validate_mode() -> None:
    with pytest.raises(ValueError, match="nints"):
        get_options("1", 0)


# --- P16: kstrtox ----------------------------------------------------------------------------


def errno_of(fn: object, *args: object) -> int:
    with pytest.raises(KernelError) as info:
        fn(*args)  # type: ignore[operator]
    return info.value.errno


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("123", 123),
        ("0x1f", 31),
        ("0X1F", 31),
        ("017", 15),
        ("+5", 5),
        ("5\n", 5),
        (str(U64_MAX), U64_MAX),
    ],
)
def test_p16_kstrtoull_accepts(text: str, value: int) -> None:
    assert kstrtoull(text) == value


@pytest.mark.parametrize(
    "text", ["", "-5", "5\n\n", " 5", "5 ", "08", "0x", "12abc", "+", "++5", "5\r", "1_000"]
)
def test_p16_kstrtoull_rejects_junk_with_einval(text: str) -> None:
    assert errno_of(kstrtoull, text) == -EINVAL


def test_p16_kstrtoull_overflow_is_erange_even_before_junk() -> None:
    assert errno_of(kstrtoull, str(U64_MAX + 1)) == -ERANGE
    assert errno_of(kstrtoull, "99999999999999999999x") == -ERANGE


def test_p16_kstrtoull_explicit_base() -> None:
    assert kstrtoull("ff", 16) == 255
    assert kstrtoull("0xff", 16) == 255
    assert kstrtoull("10", 8) == 8
    assert errno_of(kstrtoull, "0x", 16) == -EINVAL
    assert errno_of(kstrtoull, "9", 8) == -EINVAL


def test_p16_kstrtoll_signed_limits() -> None:
    assert kstrtoll("-9223372036854775808") == -(1 << 63)
    assert kstrtoll("9223372036854775807") == (1 << 63) - 1
    assert kstrtoll("-0") == 0
    assert kstrtoll("-0x10") == -16
    assert errno_of(kstrtoll, "-9223372036854775809") == -ERANGE
    assert errno_of(kstrtoll, "9223372036854775808") == -ERANGE
    for junk in ("-", "--5", "+-5", "-+5"):
        assert errno_of(kstrtoll, junk) == -EINVAL


@pytest.mark.parametrize(
    ("fn", "lo", "hi"),
    [
        (kstrtouint, 0, (1 << 32) - 1),
        (kstrtoint, -(1 << 31), (1 << 31) - 1),
        (kstrtou16, 0, 0xFFFF),
        (kstrtos16, -0x8000, 0x7FFF),
        (kstrtou8, 0, 0xFF),
        (kstrtos8, -0x80, 0x7F),
        (kstrtoul, 0, U64_MAX),
        (kstrtol, -(1 << 63), (1 << 63) - 1),
    ],
)
def test_p16_kstrto_ranges(fn: object, lo: int, hi: int) -> None:
    assert fn(str(lo)) == lo  # type: ignore[operator]
    assert fn(str(hi)) == hi  # type: ignore[operator]
    assert errno_of(fn, str(hi + 1)) == -ERANGE
    below = errno_of(fn, str(lo - 1))
    # An unsigned type refuses the '-' sign itself; a signed one overflows.
    assert below == (-EINVAL if lo == 0 else -ERANGE)


def test_p16_kstrtou8_minus_zero_is_einval() -> None:
    assert errno_of(kstrtou8, "-0") == -EINVAL


@pytest.mark.parametrize(
    "text", ["y", "Y", "1", "t", "T", "yes", "Yellow", "1000", "on", "ON", "oN", "y\n", "true"]
)
def test_p16_kstrtobool_true(text: str) -> None:
    assert kstrtobool(text) is True


@pytest.mark.parametrize("text", ["n", "N", "0", "f", "F", "no", "off", "OFF", "oF", "false"])
def test_p16_kstrtobool_false(text: str) -> None:
    assert kstrtobool(text) is False


@pytest.mark.parametrize("text", ["", "o", "ox", "x", "2", " y", "-1", "enable"])
def test_p16_kstrtobool_rejects(text: str) -> None:
    assert errno_of(kstrtobool, text) == -EINVAL
