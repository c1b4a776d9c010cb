"""lib/reed_solomon as pstore uses it (R8): RS over GF(256), poly 0x11d, fcr 0, prim 1, 16 roots.

The parity checks are against bytes the real Linux 6.1 wrote (the ecc-clean fixture): every
128-byte block and every zone header of that region carries parity computed by the kernel's
encode_rs8, and ksim must compute the same.  The decoder tests corrupt codewords within and
beyond the correction capacity and check what a caller sees: the count, the repaired bytes, or
-EBADMSG with the data left as it was.
"""

from __future__ import annotations

import gzip
import random
import struct
from pathlib import Path

import pytest

from ksim.errno import ERANGE
from ksim.reed_solomon import EBADMSG, _decode_scalar, decode_rs8, encode_rs8, init_rs

FIXTURES = Path(__file__).parent / "fixtures" / "ramoops"
NROOTS = 16


def rs16():
    rs = init_rs(8, 0x11D, 0, 1, NROOTS)
    assert rs is not None
    return rs


def parity(rs, data: bytes) -> list[int]:
    par = [0] * rs.codec.nroots
    assert encode_rs8(rs, data, len(data), par, 0) == 0
    return par


def corrupt(word: bytearray, positions: list[int], rnd: random.Random) -> None:
    for p in positions:
        word[p] ^= rnd.randrange(1, 256)


def test_R8_parity_matches_what_linux_wrote_for_every_block_and_header():
    """The kernel's parity bytes in a real ecc=1 region are reproduced bit for bit (order included)."""
    region = gzip.decompress((FIXTURES / "ecc-clean" / "region.bin.gz").read_bytes())
    rs = rs16()
    zone, data_size, par_off, hdr_par_off = 0x4040, 14580, 0x3900, 0x4030
    checked = 0
    for z in range(63):
        base = z * zone
        header = region[base:base + 12]
        assert bytes(parity(rs, header)) == region[base + hdr_par_off:base + hdr_par_off + 16]
        used = struct.unpack_from("<I", region, base + 8)[0]
        for block in range(-(-used // 128)):
            n = min(128, data_size - block * 128)
            data = region[base + 12 + block * 128:base + 12 + block * 128 + n]
            stored = region[base + par_off + 16 * block:base + par_off + 16 * block + 16]
            assert bytes(parity(rs, data)) == stored, (z, block)
            checked += 1
    assert checked > 70  # the dump in zone 0 spans ~75 blocks


def test_R8_intact_codewords_decode_to_zero_corrections():
    rs = rs16()
    rnd = random.Random(1)
    for length in (1, 12, 100, 128, 239):
        data = bytearray(rnd.randrange(256) for _ in range(length))
        par = parity(rs, data)
        assert decode_rs8(rs, data, list(par), length) == 0


@pytest.mark.parametrize("nerrors", [1, 2, 5, 8])
@pytest.mark.parametrize("length", [12, 128, 20])
def test_R8_up_to_eight_errors_are_corrected_in_place(nerrors, length):
    """nroots/2 = 8 symbol errors anywhere in data or parity are repaired; the count includes parity."""
    rs = rs16()
    rnd = random.Random(nerrors * 1000 + length)
    for _ in range(20):
        data = bytes(rnd.randrange(256) for _ in range(length))
        par = parity(rs, data)
        word = bytearray(data + bytes(par))
        corrupt(word, rnd.sample(range(len(word)), nerrors), rnd)
        got_data, got_par = bytearray(word[:length]), list(word[length:])
        assert decode_rs8(rs, got_data, got_par, length) == nerrors
        assert bytes(got_data) == data
        assert got_par == par


def test_R8_beyond_capacity_the_block_is_reported_or_miscorrected_never_half_fixed():
    """9+ errors: -EBADMSG with the data untouched, or (rarely) a different valid codeword."""
    rs = rs16()
    rnd = random.Random(7)
    failures = 0
    for trial in range(60):
        data = bytes(rnd.randrange(256) for _ in range(128))
        word = bytearray(data + bytes(parity(rs, data)))
        corrupt(word, rnd.sample(range(len(word)), 9 + trial % 20), rnd)
        got_data, got_par = bytearray(word[:128]), list(word[128:])
        ret = decode_rs8(rs, got_data, got_par, 128)
        if ret < 0:
            assert ret == -EBADMSG
            assert bytes(got_data) == bytes(word[:128]) and bytes(got_par) == bytes(word[128:])
            failures += 1
        else:
            assert 0 < ret <= 8
            assert bytes(parity(rs, got_data)) == bytes(got_par)  # a codeword, just not ours
    assert failures >= 55


def test_R8_an_error_located_in_the_shortening_pad_is_uncorrectable():
    """A 12-byte header is a shortened code: a locator root inside the 227 padding zeros is -EBADMSG."""
    rs = rs16()
    rnd = random.Random(3)
    seen_bad = 0
    for _ in range(120):
        header = bytes(rnd.randrange(256) for _ in range(12))
        word = bytearray(header + bytes(parity(rs, header)))
        corrupt(word, rnd.sample(range(28), 10), rnd)
        d, p = bytearray(word[:12]), list(word[12:])
        ret = decode_rs8(rs, d, p, 12)
        if ret < 0:
            seen_bad += 1
            assert bytes(d) == bytes(word[:12])
    assert seen_bad > 90


def test_R8_fast_path_agrees_with_the_full_decoder():
    """The table-driven syndrome shortcut returns exactly what decode_rs.c's path returns."""
    rs = rs16()
    codec = rs.codec
    rnd = random.Random(11)
    for trial in range(80):
        length = rnd.choice([12, 128, 64])
        data = bytes(rnd.randrange(256) for _ in range(length))
        word = bytearray(data + bytes(parity(rs, data)))
        corrupt(word, rnd.sample(range(len(word)), trial % 12), rnd)
        d1, p1 = bytearray(word[:length]), list(word[length:])
        d2, p2 = bytearray(word[:length]), list(word[length:])
        pad = codec.nn - codec.nroots - length
        r1 = decode_rs8(rs, d1, p1, length)
        r2 = _decode_scalar(codec, d2, p2, length, pad, None, 0, None, 0, None)
        assert (r1, d1, p1) == (r2, d2, p2)


def test_R8_other_root_counts_and_the_length_checks():
    """ramoops.ecc=N (N != 1) uses N roots: N/2 errors are corrected; bad lengths are refused."""
    rnd = random.Random(5)
    for nroots in (8, 32):
        rs = init_rs(8, 0x11D, 0, 1, nroots)
        assert rs is not None
        data = bytes(rnd.randrange(256) for _ in range(128))
        par = parity(rs, data)
        word = bytearray(data + bytes(par))
        corrupt(word, rnd.sample(range(len(word)), nroots // 2), rnd)
        d, p = bytearray(word[:128]), list(word[128:])
        assert decode_rs8(rs, d, p, 128) == nroots // 2
        assert bytes(d) == data
    rs = rs16()
    assert encode_rs8(rs, bytes(240), 240, [0] * NROOTS, 0) == -ERANGE
    with pytest.raises(ValueError, match="BUG"):
        decode_rs8(rs, bytearray(240), [0] * NROOTS, 240)
    assert init_rs(8, 0x11D, 0, 0, 16) is None  # prim must be > 0
    assert init_rs(8, 0x100, 0, 1, 16) is None  # x**8: alpha**255 never returns to 1
    # codec_init() only checks alpha**255 == 1, so the AES polynomial (alpha of order 51) passes.
    assert init_rs(8, 0x11B, 0, 1, 16) is not None
    assert init_rs(8, 0x11D, 0, 1, 16).codec is rs.codec  # shared, like the kernel's codec_list
