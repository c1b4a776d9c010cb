"""Generic Reed-Solomon encoder/decoder (lib/reed_solomon/reed_solomon.c, encode_rs.c, decode_rs.c).

A port of the Linux 6.1 library (Phil Karn's codec as adapted by Thomas Gleixner), kept to the
kernel's names and arguments so that a driver calling ``init_rs``/``encode_rs8``/``decode_rs8``
ports line by line.  pstore's persistent RAM (R8) is its user here: symbol size 8, field
polynomial 0x11d, first consecutive root 0, primitive element 1, 16 roots, 128-byte blocks.

Model
-----
* Codes are *shortened*: a ``len``-symbol data field is a codeword of ``nn = 2**symsize - 1``
  symbols whose first ``pad = nn - nroots - len`` symbols are zero.  ``data[0]`` is the highest
  power of x and ``par[nroots - 1]`` the constant term; parity is the remainder of
  ``data(x) * x**nroots`` by the generator polynomial, as the kernel's LFSR computes it.
* ``par`` is the kernel's ``uint16_t`` array: a mutable list of ints that ``encode_rs8``
  accumulates into (the caller clears it, as pstore does) and ``decode_rs8`` corrects in place.
* ``decode_rs8`` follows decode_rs.c step by step (syndromes, Berlekamp-Massey, Chien search,
  Forney, and the final check that the error pattern reproduces the syndromes), so it fails,
  and *mis*corrects, exactly where Linux does: -EBADMSG when a root falls in the pad, when the
  locator has fewer roots than its degree, or when the pattern does not match.  The return value
  counts corrected symbols, parity included.

Speed
-----
pstore checks every block of every zone at boot (about 7000 for a 1 MiB region), and nearly all
of them are intact.  For 8-bit symbols without ``invmsk`` the codec keeps, per data position,
a 256-entry table of that byte's contribution to the parity (the code is linear), packed into
one Python int; a block's parity is then one XOR-reduction over those tables.  A block whose
stored parity equals the recomputed one has an all-zero syndrome, so ``decode_rs8`` returns 0
without running the decoder: the two tests are equivalent because the generator's roots are
distinct.  Any other case takes the faithful scalar path.

Deviations
----------
* ``BUG_ON(pad < 0 || pad >= nn - nroots)`` in ``decode_rs8`` raises :class:`ValueError`
  instead of oopsing: a wrong length is a bug in the caller.
* ``init_rs`` shares codecs between identical parameter sets as the kernel's ``codec_list``
  does, but there is no reference count to drop: ``free_rs`` only detaches the control.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from functools import reduce
from typing import Final

import attrs

from ksim.errno import ERANGE

__all__ = [
    "EBADMSG",
    "RSCodec",
    "RSControl",
    "decode_rs8",
    "encode_rs8",
    "free_rs",
    "init_rs",
    "rs_modnn",
]

# include/uapi/asm-generic/errno.h; decode_rs8 is the only user so far.
EBADMSG: Final = 74

_Buffer = bytes | bytearray | memoryview


@attrs.define(eq=False)
class RSCodec:
    """``struct rs_codec``: the field tables and generator polynomial, shared between users."""

    mm: int
    nn: int
    alpha_to: list[int]
    index_of: list[int]
    genpoly: list[int]
    nroots: int
    fcr: int
    prim: int
    iprim: int
    gfpoly: int
    # Fast path (8-bit symbols only): _pos_tables[k][v] is the parity, packed big-endian with
    # par[0] as the top byte, of a data byte v followed by k zero bytes.
    _pos_tables: list[list[int]] = attrs.field(factory=list, repr=False)
    _rows_by_len: dict[int, tuple[list[int], ...]] = attrs.field(factory=dict, repr=False)

    def _parity_rows(self, length: int) -> tuple[list[int], ...]:
        """Per-position tables for a ``length``-byte block, first byte first."""
        rows = self._rows_by_len.get(length)
        if rows is None:
            tables = self._pos_tables
            if not tables:
                tables.append(self._single_byte_table())
            shift = 8 * (self.nroots - 1)
            mask = (1 << (8 * self.nroots)) - 1
            first = tables[0]
            while len(tables) < length:
                prev = tables[-1]
                # One more zero byte after v: the LFSR step with data 0.
                tables.append([((r << 8) & mask) ^ first[r >> shift] for r in prev])
            rows = tuple(tables[length - 1 - i] for i in range(length))
            self._rows_by_len[length] = rows
        return rows

    def _single_byte_table(self) -> list[int]:
        table = []
        for v in range(256):
            par = [0] * self.nroots
            _encode_scalar(self, bytes((v,)), 1, par, 0)
            table.append(int.from_bytes(bytes(par), "big"))
        return table

    def parity8(self, data: _Buffer, length: int) -> bytes:
        """The ``nroots`` parity bytes of ``data[:length]`` (8-bit symbols, zero initial parity)."""
        rows = self._parity_rows(length)
        if length == 0:
            return bytes(self.nroots)
        value: int = reduce(operator.xor, map(list.__getitem__, rows, data[:length]))
        return value.to_bytes(self.nroots, "big")


@attrs.define(eq=False)
class RSControl:
    """``struct rs_control``: one user's handle on a shared :class:`RSCodec`."""

    codec: RSCodec


_codec_list: list[RSCodec] = []


def rs_modnn(rs: RSCodec, x: int) -> int:
    """``x % nn`` computed the kernel's way (include/linux/rslib.h)."""
    while x >= rs.nn:
        x -= rs.nn
        x = (x >> rs.mm) + (x & rs.nn)
    return x


def _codec_init(symsize: int, gfpoly: int, fcr: int, prim: int, nroots: int) -> RSCodec | None:
    """``codec_init``: build the log/antilog tables and the generator polynomial."""
    nn = (1 << symsize) - 1
    alpha_to = [0] * (nn + 1)
    index_of = [0] * (nn + 1)
    index_of[0] = nn  # log(zero) = -inf
    alpha_to[nn] = 0  # alpha**-inf = 0
    sr = 1
    for i in range(nn):
        index_of[sr] = i
        alpha_to[i] = sr
        sr <<= 1
        if sr & (1 << symsize):
            sr ^= gfpoly
        sr &= nn
    if sr != 1:  # the polynomial is not primitive
        return None
    iprim = 1
    while iprim % prim != 0:
        iprim += nn
    rs = RSCodec(
        mm=symsize, nn=nn, alpha_to=alpha_to, index_of=index_of, genpoly=[0] * (nroots + 1),
        nroots=nroots, fcr=fcr, prim=prim, iprim=iprim // prim, gfpoly=gfpoly,
    )
    genpoly = rs.genpoly
    genpoly[0] = 1
    root = fcr * prim
    for i in range(nroots):
        genpoly[i + 1] = 1
        for j in range(i, 0, -1):
            if genpoly[j] != 0:
                genpoly[j] = genpoly[j - 1] ^ alpha_to[rs_modnn(rs, index_of[genpoly[j]] + root)]
            else:
                genpoly[j] = genpoly[j - 1]
        genpoly[0] = alpha_to[rs_modnn(rs, index_of[genpoly[0]] + root)]
        root += prim
    for i in range(nroots + 1):  # index form, for quicker encoding
        genpoly[i] = index_of[genpoly[i]]
    return rs


def init_rs(symsize: int, gfpoly: int, fcr: int, prim: int, nroots: int) -> RSControl | None:
    """``init_rs``: a control for the codec with these parameters, or ``None`` if they are invalid."""
    if symsize < 1:
        return None
    if fcr < 0 or fcr >= (1 << symsize):
        return None
    if prim <= 0 or prim >= (1 << symsize):
        return None
    if nroots < 0 or nroots >= (1 << symsize):
        return None
    for codec in _codec_list:
        if (codec.mm, codec.gfpoly, codec.fcr, codec.prim, codec.nroots) == (
            symsize, gfpoly, fcr, prim, nroots,
        ):
            return RSControl(codec)
    codec_new = _codec_init(symsize, gfpoly, fcr, prim, nroots)
    if codec_new is None:
        return None
    _codec_list.append(codec_new)
    return RSControl(codec_new)


def free_rs(rs: RSControl | None) -> None:
    """``free_rs``: the shared codec stays cached (see the module's deviations)."""


def _encode_scalar(rs: RSCodec, data: _Buffer, length: int, par: list[int], invmsk: int) -> None:
    nn = rs.nn
    nroots = rs.nroots
    alpha_to = rs.alpha_to
    index_of = rs.index_of
    genpoly = rs.genpoly
    msk = nn
    for i in range(length):
        fb = index_of[((data[i] ^ invmsk) & msk) ^ par[0]]
        if fb != nn:  # feedback term is non-zero
            for j in range(1, nroots):
                par[j] ^= alpha_to[rs_modnn(rs, fb + genpoly[nroots - j])]
        par[0:nroots - 1] = par[1:nroots]
        par[nroots - 1] = alpha_to[rs_modnn(rs, fb + genpoly[0])] if fb != nn else 0


def encode_rs8(rs: RSControl, data: _Buffer, length: int, par: list[int], invmsk: int) -> int:
    """``encode_rs8``: add the parity of ``data[:length]`` into ``par``; 0, or -ERANGE."""
    codec = rs.codec
    pad = codec.nn - codec.nroots - length
    if pad < 0 or pad >= codec.nn:
        return -ERANGE
    if codec.mm == 8 and invmsk == 0 and length > 0 and not any(par):
        par[:] = codec.parity8(data, length)
    else:
        _encode_scalar(codec, data, length, par, invmsk)
    return 0


def decode_rs8(
    rs: RSControl,
    data: bytearray | memoryview | None,
    par: list[int] | None,
    length: int,
    s: list[int] | None = None,
    no_eras: int = 0,
    eras_pos: list[int] | None = None,
    invmsk: int = 0,
    corr: list[int] | None = None,
) -> int:
    """``decode_rs8``: correct ``data[:length]`` and ``par`` in place.

    Returns the number of corrected symbols (parity included), or -EBADMSG when the block is
    uncorrectable.  With ``corr`` and ``eras_pos`` the pattern is stored there instead of applied,
    and ``s`` may carry a precomputed syndrome in index form, as in the kernel.
    """
    codec = rs.codec
    nn = codec.nn
    nroots = codec.nroots
    pad = nn - nroots - length
    if pad < 0 or pad >= nn - nroots:
        raise ValueError(f"decode_rs8: BUG: length {length} invalid for a ({nn}, {nn - nroots}) code")
    if (
        s is None and no_eras == 0 and invmsk == 0 and codec.mm == 8
        and data is not None and par is not None
    ):
        received = bytes(p & 0xFF for p in par[:nroots])
        if codec.parity8(data, length) == received:
            return 0  # all-zero syndrome: a codeword, nothing to correct
    return _decode_scalar(codec, data, par, length, pad, s, no_eras, eras_pos, invmsk, corr)


def _decode_scalar(
    rs: RSCodec,
    data: bytearray | memoryview | None,
    par: list[int] | None,
    length: int,
    pad: int,
    s: Sequence[int] | None,
    no_eras: int,
    eras_pos: list[int] | None,
    invmsk: int,
    corr: list[int] | None,
) -> int:
    nn = rs.nn
    nroots = rs.nroots
    fcr = rs.fcr
    prim = rs.prim
    iprim = rs.iprim
    alpha_to = rs.alpha_to
    index_of = rs.index_of
    msk = nn
    lambda_ = [0] * (nroots + 1)
    syn = [0] * (nroots + 1)
    b = [0] * (nroots + 1)
    t = [0] * (nroots + 1)
    omega = [0] * (nroots + 1)
    root = [0] * (nroots + 1)
    reg = [0] * (nroots + 1)
    loc = [0] * (nroots + 1)

    if s is not None:
        # The caller's syndrome is in index form: nn stands for zero.
        if all(s[i] == nn for i in range(nroots)):
            return 0
        for i in range(nroots):
            syn[i] = s[i]
    else:
        assert data is not None and par is not None
        # Evaluate data(x) at the roots of g(x).
        for i in range(nroots):
            syn[i] = ((data[0] ^ invmsk) & msk)
        for j in range(1, length):
            dj = (data[j] ^ invmsk) & msk
            for i in range(nroots):
                if syn[i] == 0:
                    syn[i] = dj
                else:
                    syn[i] = dj ^ alpha_to[rs_modnn(rs, index_of[syn[i]] + (fcr + i) * prim)]
        for j in range(nroots):
            pj = par[j] & msk
            for i in range(nroots):
                if syn[i] == 0:
                    syn[i] = pj
                else:
                    syn[i] = pj ^ alpha_to[rs_modnn(rs, index_of[syn[i]] + (fcr + i) * prim)]
        # Convert the syndromes to index form, checking for a nonzero one.
        syn_error = 0
        for i in range(nroots):
            syn_error |= syn[i]
            syn[i] = index_of[syn[i]]
        if not syn_error:
            return 0  # data[] is a codeword
    s = syn

    # decode:
    lambda_[0] = 1
    if no_eras > 0:
        assert eras_pos is not None
        # Initialise lambda to the erasure locator polynomial.
        lambda_[1] = alpha_to[rs_modnn(rs, prim * (nn - 1 - (eras_pos[0] + pad)))]
        for i in range(1, no_eras):
            u = rs_modnn(rs, prim * (nn - 1 - (eras_pos[i] + pad)))
            for j in range(i + 1, 0, -1):
                tmp = index_of[lambda_[j - 1]]
                if tmp != nn:
                    lambda_[j] ^= alpha_to[rs_modnn(rs, u + tmp)]

    for i in range(nroots + 1):
        b[i] = index_of[lambda_[i]]

    # Berlekamp-Massey: the error+erasure locator polynomial.
    r = no_eras
    el = no_eras
    while True:
        r += 1
        if r > nroots:
            break
        discr_r = 0
        for i in range(r):
            if lambda_[i] != 0 and s[r - i - 1] != nn:
                discr_r ^= alpha_to[rs_modnn(rs, index_of[lambda_[i]] + s[r - i - 1])]
        discr_r = index_of[discr_r]  # index form
        if discr_r == nn:
            b[1:nroots + 1] = b[0:nroots]  # B(x) <-- x*B(x)
            b[0] = nn
        else:
            # T(x) <-- lambda(x) - discr_r*x*b(x)
            t[0] = lambda_[0]
            for i in range(nroots):
                if b[i] != nn:
                    t[i + 1] = lambda_[i + 1] ^ alpha_to[rs_modnn(rs, discr_r + b[i])]
                else:
                    t[i + 1] = lambda_[i + 1]
            if 2 * el <= r + no_eras - 1:
                el = r + no_eras - el
                # B(x) <-- inv(discr_r) * lambda(x)
                for i in range(nroots + 1):
                    b[i] = nn if lambda_[i] == 0 else rs_modnn(rs, index_of[lambda_[i]] - discr_r + nn)
            else:
                b[1:nroots + 1] = b[0:nroots]
                b[0] = nn
            lambda_[:] = t

    # Convert lambda to index form and compute deg(lambda(x)).
    deg_lambda = 0
    for i in range(nroots + 1):
        lambda_[i] = index_of[lambda_[i]]
        if lambda_[i] != nn:
            deg_lambda = i
    if deg_lambda == 0:
        return -EBADMSG  # nonzero syndrome but no locator: uncorrectable

    # Chien search for the roots of the locator.
    reg[1:nroots + 1] = lambda_[1:nroots + 1]
    count = 0
    k = iprim - 1
    for i in range(1, nn + 1):
        q = 1  # lambda[0] is always 0
        for j in range(deg_lambda, 0, -1):
            if reg[j] != nn:
                reg[j] = rs_modnn(rs, reg[j] + j)
                q ^= alpha_to[reg[j]]
        if q == 0:
            if k < pad:
                return -EBADMSG  # an error location inside the pad: impossible
            root[count] = i
            loc[count] = k
            count += 1
            if count == deg_lambda:
                break
        k = rs_modnn(rs, k + iprim)
    if deg_lambda != count:
        return -EBADMSG  # deg(lambda) unequal to its number of roots

    # omega(x) = s(x)*lambda(x) mod x**nroots, in index form.
    deg_omega = deg_lambda - 1
    for i in range(deg_omega + 1):
        tmp = 0
        for j in range(i, -1, -1):
            if s[i - j] != nn and lambda_[j] != nn:
                tmp ^= alpha_to[rs_modnn(rs, s[i - j] + lambda_[j])]
        omega[i] = index_of[tmp]

    # Forney: error values in poly form; b[] is reused for the correction pattern.
    num_corrected = 0
    for j in range(count - 1, -1, -1):
        num1 = 0
        for i in range(deg_omega, -1, -1):
            if omega[i] != nn:
                num1 ^= alpha_to[rs_modnn(rs, omega[i] + i * root[j])]
        if num1 == 0:
            b[j] = 0  # nothing to correct at this position
            continue
        num2 = alpha_to[rs_modnn(rs, root[j] * (fcr - 1) + nn)]
        den = 0
        # lambda[i+1] for i even is the formal derivative lambda_pr of lambda[i]
        i = min(deg_lambda, nroots - 1) & ~1
        while i >= 0:
            if lambda_[i + 1] != nn:
                den ^= alpha_to[rs_modnn(rs, lambda_[i + 1] + i * root[j])]
            i -= 2
        b[j] = alpha_to[rs_modnn(rs, index_of[num1] + index_of[num2] + nn - index_of[den])]
        num_corrected += 1

    # The syndrome of the error pattern must match the received one.
    for i in range(nroots):
        tmp = 0
        for j in range(count):
            if b[j] == 0:
                continue
            kk = (fcr + i) * prim * (nn - loc[j] - 1)
            tmp ^= alpha_to[rs_modnn(rs, index_of[b[j]] + kk)]
        if tmp != alpha_to[s[i]]:
            return -EBADMSG

    if corr is not None and eras_pos is not None:
        j = 0
        for i in range(count):
            if b[i]:
                corr[j] = b[i]
                eras_pos[j] = loc[i] - pad
                j += 1
    elif data is not None and par is not None:
        for i in range(count):
            if loc[i] < nn - nroots:
                data[loc[i] - pad] ^= b[i]
            else:
                par[loc[i] - pad - length] ^= b[i]
    return num_corrected
