"""ksim.units: the strict size syntax of ksim's own interface (not the kernel's memparse, P14)."""

from __future__ import annotations

import pytest

from ksim.units import format_size, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("4096", 4096),
        ("512B", 512),
        ("64K", 64 << 10),
        ("64k", 64 << 10),
        ("64M", 64 << 20),
        ("64MB", 64 << 20),
        ("64MiB", 64 << 20),
        ("64mib", 64 << 20),
        ("2G", 2 << 30),
        ("1T", 1 << 40),
        ("007K", 7 << 10),
    ],
)
def test_parse_size_accepts_binary_suffixes(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "12Q", "1.5G", "-1", "+1", "0x100000", " 64M", "64M ", "64 M", "1P", "1KK", "B", "K", "64iB",
     "1_000", "٦٤"],
)
def test_parse_size_rejects_anything_else_naming_the_text(text: str) -> None:
    # Unlike memparse (P14), which stops at the first bad character ("1.5G" -> 1), a typo here is an error.
    with pytest.raises(ValueError, match="invalid size") as info:
        parse_size(text)
    assert repr(text) in str(info.value)


def test_parse_size_message() -> None:
    with pytest.raises(ValueError) as info:
        parse_size("12Q")
    assert str(info.value) == "invalid size '12Q': expected a number with an optional K, M, G or T suffix"


def test_parse_size_rejects_non_strings() -> None:
    with pytest.raises(TypeError):
        parse_size(64)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0"), (1, "1"), (1536, "1536"), (65536, "64K"), (64 << 20, "64M"), (3 << 30, "3G"),
     (1 << 40, "1T"), (1025 << 20, "1025M"), (2048 << 40, "2048T")],
)
def test_format_size_uses_the_largest_exact_suffix(n: int, text: str) -> None:
    assert format_size(n) == text
    assert parse_size(text) == n


def test_format_size_rejects_negative() -> None:
    with pytest.raises(ValueError):
        format_size(-1)


# -- the machine's limits: one rule for the CLI, YAML and the Python API ----------------------

from ksim.units import MAX_RAM, MIN_RAM, NR_CPUS, check_cpus, parse_ram  # noqa: E402


@pytest.mark.parametrize(("value", "message"), [
    ("31M", "the kernel is loaded at 16M and decompresses above it; give the machine at least 32M"),
    ("32764K", "give the machine at least 32M"),
    ("12345", "RAM must be a positive multiple of 4096"),
    ("0", "RAM must be a positive multiple of 4096"),
    ("100T", "at most 64T (x86-64's MAX_PHYSMEM_BITS, 46, is the limit)"),
    ("99999999T", "at most 64T"),
    ("9" * 5000, "digits is no size"),
])
def test_ram_outside_the_machines_limits_is_refused_with_the_limit_named(value, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")) \
            as refused:
        parse_ram(value)
    assert len(str(refused.value)) < 200  # the value is echoed clipped


def test_ram_at_the_limits_is_accepted():
    assert parse_ram("32M") == MIN_RAM and parse_ram("64T") == MAX_RAM
    assert parse_ram(64 << 20) == 64 << 20


def test_cpus_are_one_to_nr_cpus_as_on_x86_64():
    assert check_cpus(1) == 1 and check_cpus(NR_CPUS) == 8192
    with pytest.raises(ValueError, match="at least one CPU"):
        check_cpus(0)
    with pytest.raises(ValueError, match=r"more than NR_CPUS \(8192\)"):
        check_cpus(10 ** 20)
