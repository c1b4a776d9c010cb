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
