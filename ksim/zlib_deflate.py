"""The kernel's deflate compressor (lib/zlib_deflate/deflate.c, deftree.c, defutil.h), Linux 6.1.

Linux carries its own copy of an old zlib (1.1.3 with later fixes), and its output is not what
a current zlib produces for the same parameters: ``zlib_tr_tally`` still has the heuristic that
ends a block early when, every 4096 symbols, matches look scarce and the estimate says the
block already halves its input.  A pstore dump compressed by Linux therefore has different
block boundaries, and a different size, than ``zlib.compress`` gives.  This module reproduces
the kernel's bytes: ``deflate_slow`` (levels 4-9) with its hash chains, lazy matching and window
sliding, and the tree code that picks stored, static or dynamic blocks.

Scope: raw or zlib-wrapped streams, produced by one ``zlib_deflate(Z_FINISH)`` call, as the
crypto API's "deflate" transform does (:func:`crypto_deflate_compress`).  Levels 1-3
(``deflate_fast``), level 0 and the other flush modes are not ported: pstore never uses them.

Model
-----
:class:`DeflateWorkspace` is the memory the transform allocates once (``vzalloc``) and reuses
for every compression: ``zlib_deflateReset`` clears only the hash heads, so the window bytes a
previous compression left behind are still there, and ``longest_match`` can read them past the
end of the input (its quick rejects look at ``scan[best_len]``).  Keeping the workspace between
calls keeps that behaviour.  The bit writer is an LSB-first accumulator; ``bi_buf``'s 16-bit
staging does not change the bytes.

Deviations
----------
* ``pending_buf`` does not overlay ``d_buf``/``l_buf`` as in the C: the overlay only matters in
  the corner case zlib fixed as CVE-2018-25032 (output of a block outgrowing its symbols),
  which the kernel copy still has; there the kernel's output would be corrupt and this one is not.
"""

from __future__ import annotations

import zlib
from typing import Final

import attrs

__all__ = [
    "DeflateWorkspace",
    "Z_DEFAULT_COMPRESSION",
    "crypto_deflate_compress",
    "zlib_deflate_stream",
]

Z_DEFAULT_COMPRESSION: Final = -1
MAX_MEM_LEVEL: Final = 8
MIN_MATCH: Final = 3
MAX_MATCH: Final = 258
MIN_LOOKAHEAD: Final = MAX_MATCH + MIN_MATCH + 1
TOO_FAR: Final = 4096
NIL: Final = 0

LENGTH_CODES: Final = 29
LITERALS: Final = 256
L_CODES: Final = LITERALS + 1 + LENGTH_CODES
D_CODES: Final = 30
BL_CODES: Final = 19
HEAP_SIZE: Final = 2 * L_CODES + 1
MAX_BITS: Final = 15
MAX_BL_BITS: Final = 7
END_BLOCK: Final = 256
REP_3_6: Final = 16
REPZ_3_10: Final = 17
REPZ_11_138: Final = 18
STORED_BLOCK: Final = 0
STATIC_TREES: Final = 1
DYN_TREES: Final = 2

extra_lbits: Final = (0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0)
extra_dbits: Final = (0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13)
extra_blbits: Final = (0,) * 16 + (2, 3, 7)
bl_order: Final = (16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15)

# good_length, max_lazy, nice_length, max_chain (configuration_table of deflate.c)
configuration_table: Final = (
    (0, 0, 0, 0), (4, 4, 8, 4), (4, 5, 16, 8), (4, 6, 32, 32),
    (4, 4, 16, 16), (8, 16, 32, 32), (8, 16, 128, 128), (8, 32, 128, 256),
    (32, 128, 258, 1024), (32, 258, 258, 4096),
)


def _bitrev(code: int, length: int) -> int:
    return int(f"{code:0{length}b}"[::-1], 2) if length else 0


class _Tree:
    """``ct_data[]``: ``fc`` is the Freq/Code union, ``dl`` the Dad/Len union, as in C."""

    __slots__ = ("fc", "dl")

    def __init__(self, size: int) -> None:
        self.fc = [0] * size
        self.dl = [0] * size


@attrs.frozen
class _StaticDesc:
    static_tree: _Tree | None
    extra_bits: tuple[int, ...]
    extra_base: int
    elems: int
    max_length: int


def _tr_static_init() -> tuple[_Tree, _Tree, list[int], list[int], list[int], list[int]]:
    base_length = [0] * LENGTH_CODES
    length_code = [0] * (MAX_MATCH - MIN_MATCH + 1)
    length = 0
    code = 0
    for code in range(LENGTH_CODES - 1):
        base_length[code] = length
        for _ in range(1 << extra_lbits[code]):
            length_code[length] = code
            length += 1
    # Length 258 can be code 284 + 5 bits or code 285: use the shorter.
    length_code[length - 1] = code + 1
    dist_code = [0] * 512
    base_dist = [0] * D_CODES
    dist = 0
    for code in range(16):
        base_dist[code] = dist
        for _ in range(1 << extra_dbits[code]):
            dist_code[dist] = code
            dist += 1
    dist >>= 7  # from now on, all distances are divided by 128
    for code in range(16, D_CODES):
        base_dist[code] = dist << 7
        for _ in range(1 << (extra_dbits[code] - 7)):
            dist_code[256 + dist] = code
            dist += 1
    static_ltree = _Tree(L_CODES + 2)
    bl_count = [0] * (MAX_BITS + 1)
    for n in range(L_CODES + 2):
        bits = 8 if n <= 143 else 9 if n <= 255 else 7 if n <= 279 else 8
        static_ltree.dl[n] = bits
        bl_count[bits] += 1
    _gen_codes(static_ltree, L_CODES + 1, bl_count)
    static_dtree = _Tree(D_CODES)
    for n in range(D_CODES):
        static_dtree.dl[n] = 5
        static_dtree.fc[n] = _bitrev(n, 5)
    return static_ltree, static_dtree, dist_code, length_code, base_length, base_dist


def _gen_codes(tree: _Tree, max_code: int, bl_count: list[int]) -> None:
    next_code = [0] * (MAX_BITS + 1)
    code = 0
    for bits in range(1, MAX_BITS + 1):
        code = ((code + bl_count[bits - 1]) << 1) & 0xFFFF
        next_code[bits] = code
    for n in range(max_code + 1):
        length = tree.dl[n]
        if length == 0:
            continue
        tree.fc[n] = _bitrev(next_code[length] & ((1 << length) - 1), length)
        next_code[length] += 1


_STATIC_LTREE, _STATIC_DTREE, _DIST_CODE, _LENGTH_CODE, _BASE_LENGTH, _BASE_DIST = _tr_static_init()
_STATIC_L_DESC: Final = _StaticDesc(_STATIC_LTREE, extra_lbits, LITERALS + 1, L_CODES, MAX_BITS)
_STATIC_D_DESC: Final = _StaticDesc(_STATIC_DTREE, extra_dbits, 0, D_CODES, MAX_BITS)
_STATIC_BL_DESC: Final = _StaticDesc(None, extra_blbits, 0, BL_CODES, MAX_BL_BITS)


def _d_code(dist: int) -> int:
    return _DIST_CODE[dist] if dist < 256 else _DIST_CODE[256 + (dist >> 7)]


class DeflateWorkspace:
    """The deflate state and its memory, allocated zeroed once and reused (see the module doc)."""

    def __init__(self, window_bits: int = 15, mem_level: int = MAX_MEM_LEVEL) -> None:
        if window_bits < 0:  # undocumented feature: suppress the zlib header
            self.noheader = 1
            window_bits = -window_bits
        else:
            self.noheader = 0
        if not (1 <= mem_level <= MAX_MEM_LEVEL and 9 <= window_bits <= 15):
            raise ValueError(f"zlib_deflateInit2: windowBits {window_bits}, memLevel {mem_level}")
        self.w_bits = window_bits
        self.w_size = 1 << window_bits
        self.w_mask = self.w_size - 1
        self.hash_bits = mem_level + 7
        self.hash_size = 1 << self.hash_bits
        self.hash_mask = self.hash_size - 1
        self.hash_shift = (self.hash_bits + MIN_MATCH - 1) // MIN_MATCH
        self.window = bytearray(2 * self.w_size)
        self.prev = [0] * self.w_size
        self.head = [0] * self.hash_size
        self.lit_bufsize = 1 << (mem_level + 6)


class _Deflate:
    """One ``zlib_deflate(Z_FINISH)`` over all of ``data`` (the deflate_state of one call)."""

    def __init__(self, ws: DeflateWorkspace, level: int, data: bytes) -> None:
        if level == Z_DEFAULT_COMPRESSION:
            level = 6
        if not 4 <= level <= 9:
            raise ValueError(f"deflate level {level} is not ported (pstore uses 6)")
        self.ws = ws
        self.level = level
        self.input = data
        self.next_in = 0
        self.out = bytearray()
        self.bi_buf = 0
        self.bi_valid = 0
        # lm_init
        self.window_size = 2 * ws.w_size
        ws.head[:] = [NIL] * ws.hash_size  # CLEAR_HASH
        good, lazy, nice, chain = configuration_table[level]
        self.max_lazy_match = lazy
        self.good_match = good
        self.nice_match = nice
        self.max_chain_length = chain
        self.strstart = 0
        self.block_start = 0
        self.lookahead = 0
        self.match_length = self.prev_length = MIN_MATCH - 1
        self.match_available = 0
        self.match_start = 0
        self.prev_match = 0
        self.ins_h = 0
        # zlib_tr_init / init_block
        self.dyn_ltree = _Tree(HEAP_SIZE)
        self.dyn_dtree = _Tree(2 * D_CODES + 1)
        self.bl_tree = _Tree(2 * BL_CODES + 1)
        self.l_max_code = 0
        self.d_max_code = 0
        self.bl_max_code = 0
        self.bl_count = [0] * (MAX_BITS + 1)
        self.heap = [0] * (2 * L_CODES + 1)
        self.heap_len = 0
        self.heap_max = 0
        self.depth = [0] * (2 * L_CODES + 1)
        self.d_buf: list[int] = []
        self.l_buf: list[int] = []
        self._init_block()

    # -- bits -------------------------------------------------------------------------------------

    def send_bits(self, value: int, length: int) -> None:
        self.bi_buf |= value << self.bi_valid
        self.bi_valid += length
        while self.bi_valid >= 16:
            self.out += (self.bi_buf & 0xFFFF).to_bytes(2, "little")
            self.bi_buf >>= 16
            self.bi_valid -= 16

    def bi_windup(self) -> None:
        if self.bi_valid > 8:
            self.out += (self.bi_buf & 0xFFFF).to_bytes(2, "little")
        elif self.bi_valid > 0:
            self.out.append(self.bi_buf & 0xFF)
        self.bi_buf = 0
        self.bi_valid = 0

    # -- deflate.c ----------------------------------------------------------------------------------

    def fill_window(self) -> None:
        ws = self.ws
        wsize = ws.w_size
        window = ws.window
        while True:
            more = self.window_size - self.lookahead - self.strstart
            if more == 0 and self.strstart == 0 and self.lookahead == 0:
                more = wsize
            elif self.strstart >= wsize + (wsize - MIN_LOOKAHEAD):
                # Slide the upper half down, and the hash links with it.
                window[0:wsize] = window[wsize:2 * wsize]
                self.match_start -= wsize
                self.strstart -= wsize
                self.block_start -= wsize
                ws.head[:] = [m - wsize if m >= wsize else NIL for m in ws.head]
                ws.prev[:] = [m - wsize if m >= wsize else NIL for m in ws.prev]
                more += wsize
            avail_in = len(self.input) - self.next_in
            if avail_in == 0:
                return
            n = min(avail_in, more)
            at = self.strstart + self.lookahead
            window[at:at + n] = self.input[self.next_in:self.next_in + n]
            self.next_in += n
            self.lookahead += n
            if self.lookahead >= MIN_MATCH:
                self.ins_h = window[self.strstart]
                self.ins_h = ((self.ins_h << ws.hash_shift) ^ window[self.strstart + 1]) & ws.hash_mask
            if not (self.lookahead < MIN_LOOKAHEAD and self.next_in < len(self.input)):
                return

    def longest_match(self, cur_match: int) -> int:
        ws = self.ws
        window = ws.window
        prev = ws.prev
        wmask = ws.w_mask
        chain_length = self.max_chain_length
        scan = self.strstart
        best_len = self.prev_length
        nice_match = self.nice_match
        max_dist = ws.w_size - MIN_LOOKAHEAD
        limit = self.strstart - max_dist if self.strstart > max_dist else NIL
        scan_end1 = window[scan + best_len - 1]
        scan_end = window[scan + best_len]
        if self.prev_length >= self.good_match:
            chain_length >>= 2
        if nice_match > self.lookahead:
            nice_match = self.lookahead
        scan0 = window[scan]
        scan1 = window[scan + 1]
        tail = bytes(window[scan + 3:scan + MAX_MATCH])
        while True:
            match = cur_match
            if not (
                window[match + best_len] != scan_end
                or window[match + best_len - 1] != scan_end1
                or window[match] != scan0
                or window[match + 1] != scan1
            ):
                # scan[2] == match[2] follows from equal hashes; compare from 3 up to 258.
                other = bytes(window[match + 3:match + MAX_MATCH])
                if other == tail:
                    length = MAX_MATCH
                else:
                    x = int.from_bytes(tail, "little") ^ int.from_bytes(other, "little")
                    length = 3 + ((x & -x).bit_length() - 1) // 8
                if length > best_len:
                    self.match_start = cur_match
                    best_len = length
                    if length >= nice_match:
                        break
                    scan_end1 = window[scan + best_len - 1]
                    scan_end = window[scan + best_len]
            cur_match = prev[cur_match & wmask]
            if cur_match <= limit:
                break
            chain_length -= 1
            if chain_length == 0:
                break
        if best_len <= self.lookahead:
            return best_len
        return self.lookahead

    def insert_string(self, pos: int) -> int:
        ws = self.ws
        self.ins_h = ((self.ins_h << ws.hash_shift) ^ ws.window[pos + MIN_MATCH - 1]) & ws.hash_mask
        match_head = ws.head[self.ins_h]
        ws.prev[pos & ws.w_mask] = match_head
        ws.head[self.ins_h] = pos
        return match_head

    def flush_block(self, eof: int) -> None:
        """FLUSH_BLOCK_ONLY (the output buffer is never short: see zlib_deflate_stream)."""
        buf = self.block_start if self.block_start >= 0 else None
        self.zlib_tr_flush_block(buf, self.strstart - self.block_start, eof)
        self.block_start = self.strstart

    def deflate_slow(self) -> None:
        ws = self.ws
        window = ws.window
        max_dist = ws.w_size - MIN_LOOKAHEAD
        hash_head = NIL
        while True:
            if self.lookahead < MIN_LOOKAHEAD:
                self.fill_window()
                if self.lookahead == 0:
                    break
            if self.lookahead >= MIN_MATCH:
                hash_head = self.insert_string(self.strstart)
            self.prev_length = self.match_length
            self.prev_match = self.match_start
            self.match_length = MIN_MATCH - 1
            if (
                hash_head != NIL and self.prev_length < self.max_lazy_match
                and self.strstart - hash_head <= max_dist
            ):
                self.match_length = self.longest_match(hash_head)
                if self.match_length <= 5 and (
                    self.match_length == MIN_MATCH and self.strstart - self.match_start > TOO_FAR
                ):
                    self.match_length = MIN_MATCH - 1
            if self.prev_length >= MIN_MATCH and self.match_length <= self.prev_length:
                max_insert = self.strstart + self.lookahead - MIN_MATCH
                bflush = self.zlib_tr_tally(self.strstart - 1 - self.prev_match, self.prev_length - MIN_MATCH)
                self.lookahead -= self.prev_length - 1
                self.prev_length -= 2
                while True:
                    self.strstart += 1
                    if self.strstart <= max_insert:
                        hash_head = self.insert_string(self.strstart)
                    self.prev_length -= 1
                    if self.prev_length == 0:
                        break
                self.match_available = 0
                self.match_length = MIN_MATCH - 1
                self.strstart += 1
                if bflush:
                    self.flush_block(0)
            elif self.match_available:
                if self.zlib_tr_tally(0, window[self.strstart - 1]):
                    self.flush_block(0)
                self.strstart += 1
                self.lookahead -= 1
            else:
                self.match_available = 1
                self.strstart += 1
                self.lookahead -= 1
        if self.match_available:
            self.zlib_tr_tally(0, window[self.strstart - 1])
            self.match_available = 0
        self.flush_block(1)

    # -- deftree.c ----------------------------------------------------------------------------------

    def _init_block(self) -> None:
        for n in range(L_CODES):
            self.dyn_ltree.fc[n] = 0
        for n in range(D_CODES):
            self.dyn_dtree.fc[n] = 0
        for n in range(BL_CODES):
            self.bl_tree.fc[n] = 0
        self.dyn_ltree.fc[END_BLOCK] = 1
        self.opt_len = self.static_len = 0
        self.d_buf.clear()
        self.l_buf.clear()
        self.matches = 0

    def _smaller(self, tree: _Tree, n: int, m: int) -> bool:
        fn = tree.fc[n]
        fm = tree.fc[m]
        return fn < fm or (fn == fm and self.depth[n] <= self.depth[m])

    def pqdownheap(self, tree: _Tree, k: int) -> None:
        heap = self.heap
        v = heap[k]
        j = k << 1
        while j <= self.heap_len:
            if j < self.heap_len and self._smaller(tree, heap[j + 1], heap[j]):
                j += 1
            if self._smaller(tree, v, heap[j]):
                break
            heap[k] = heap[j]
            k = j
            j <<= 1
        heap[k] = v

    def gen_bitlen(self, tree: _Tree, max_code: int, desc: _StaticDesc) -> None:
        stree = desc.static_tree
        extra = desc.extra_bits
        base = desc.extra_base
        max_length = desc.max_length
        bl_count = self.bl_count
        heap = self.heap
        for bits in range(MAX_BITS + 1):
            bl_count[bits] = 0
        tree.dl[heap[self.heap_max]] = 0  # root of the heap
        overflow = 0
        h = self.heap_max + 1
        while h < HEAP_SIZE:
            n = heap[h]
            h += 1
            bits = tree.dl[tree.dl[n]] + 1
            if bits > max_length:
                bits = max_length
                overflow += 1
            tree.dl[n] = bits
            if n > max_code:
                continue  # not a leaf node
            bl_count[bits] += 1
            xbits = extra[n - base] if n >= base else 0
            f = tree.fc[n]
            self.opt_len += f * (bits + xbits)
            if stree is not None:
                self.static_len += f * (stree.dl[n] + xbits)
        if overflow == 0:
            return
        while True:
            bits = max_length - 1
            while bl_count[bits] == 0:
                bits -= 1
            bl_count[bits] -= 1
            bl_count[bits + 1] += 2
            bl_count[max_length] -= 1
            overflow -= 2
            if overflow <= 0:
                break
        h = HEAP_SIZE
        for bits in range(max_length, 0, -1):
            n = bl_count[bits]
            while n != 0:
                h -= 1
                m = heap[h]
                if m > max_code:
                    continue
                if tree.dl[m] != bits:
                    self.opt_len += (bits - tree.dl[m]) * tree.fc[m]
                    tree.dl[m] = bits
                n -= 1

    def build_tree(self, tree: _Tree, desc: _StaticDesc) -> int:
        stree = desc.static_tree
        elems = desc.elems
        heap = self.heap
        depth = self.depth
        max_code = -1
        self.heap_len = 0
        self.heap_max = HEAP_SIZE
        for n in range(elems):
            if tree.fc[n] != 0:
                self.heap_len += 1
                heap[self.heap_len] = max_code = n
                depth[n] = 0
            else:
                tree.dl[n] = 0
        # At least two codes of non-zero frequency, so that one bit is always sent.
        while self.heap_len < 2:
            if max_code < 2:
                max_code += 1
                node = max_code
            else:
                node = 0
            self.heap_len += 1
            heap[self.heap_len] = node
            tree.fc[node] = 1
            depth[node] = 0
            self.opt_len -= 1
            if stree is not None:
                self.static_len -= stree.dl[node]
        for n in range(self.heap_len // 2, 0, -1):
            self.pqdownheap(tree, n)
        node = elems
        while True:
            n = heap[1]  # pqremove
            heap[1] = heap[self.heap_len]
            self.heap_len -= 1
            self.pqdownheap(tree, 1)
            m = heap[1]
            self.heap_max -= 1
            heap[self.heap_max] = n
            self.heap_max -= 1
            heap[self.heap_max] = m
            tree.fc[node] = (tree.fc[n] + tree.fc[m]) & 0xFFFF
            depth[node] = (max(depth[n], depth[m]) + 1) & 0xFF
            tree.dl[n] = tree.dl[m] = node
            heap[1] = node
            node += 1
            self.pqdownheap(tree, 1)
            if self.heap_len < 2:
                break
        self.heap_max -= 1
        heap[self.heap_max] = heap[1]
        self.gen_bitlen(tree, max_code, desc)
        _gen_codes(tree, max_code, self.bl_count)
        return max_code

    def scan_tree(self, tree: _Tree, max_code: int) -> None:
        bl = self.bl_tree.fc
        prevlen = -1
        nextlen = tree.dl[0]
        count = 0
        max_count, min_count = (138, 3) if nextlen == 0 else (7, 4)
        tree.dl[max_code + 1] = 0xFFFF  # guard
        for n in range(max_code + 1):
            curlen = nextlen
            nextlen = tree.dl[n + 1]
            count += 1
            if count < max_count and curlen == nextlen:
                continue
            elif count < min_count:
                bl[curlen] += count
            elif curlen != 0:
                if curlen != prevlen:
                    bl[curlen] += 1
                bl[REP_3_6] += 1
            elif count <= 10:
                bl[REPZ_3_10] += 1
            else:
                bl[REPZ_11_138] += 1
            count = 0
            prevlen = curlen
            if nextlen == 0:
                max_count, min_count = 138, 3
            elif curlen == nextlen:
                max_count, min_count = 6, 3
            else:
                max_count, min_count = 7, 4

    def send_tree(self, tree: _Tree, max_code: int) -> None:
        bl = self.bl_tree
        prevlen = -1
        nextlen = tree.dl[0]
        count = 0
        max_count, min_count = (138, 3) if nextlen == 0 else (7, 4)
        for n in range(max_code + 1):
            curlen = nextlen
            nextlen = tree.dl[n + 1]
            count += 1
            if count < max_count and curlen == nextlen:
                continue
            elif count < min_count:
                while True:
                    self.send_bits(bl.fc[curlen], bl.dl[curlen])
                    count -= 1
                    if count == 0:
                        break
            elif curlen != 0:
                if curlen != prevlen:
                    self.send_bits(bl.fc[curlen], bl.dl[curlen])
                    count -= 1
                self.send_bits(bl.fc[REP_3_6], bl.dl[REP_3_6])
                self.send_bits(count - 3, 2)
            elif count <= 10:
                self.send_bits(bl.fc[REPZ_3_10], bl.dl[REPZ_3_10])
                self.send_bits(count - 3, 3)
            else:
                self.send_bits(bl.fc[REPZ_11_138], bl.dl[REPZ_11_138])
                self.send_bits(count - 11, 7)
            count = 0
            prevlen = curlen
            if nextlen == 0:
                max_count, min_count = 138, 3
            elif curlen == nextlen:
                max_count, min_count = 6, 3
            else:
                max_count, min_count = 7, 4

    def build_bl_tree(self) -> int:
        self.scan_tree(self.dyn_ltree, self.l_max_code)
        self.scan_tree(self.dyn_dtree, self.d_max_code)
        self.bl_max_code = self.build_tree(self.bl_tree, _STATIC_BL_DESC)
        max_blindex = BL_CODES - 1
        while max_blindex >= 3:
            if self.bl_tree.dl[bl_order[max_blindex]] != 0:
                break
            max_blindex -= 1
        self.opt_len += 3 * (max_blindex + 1) + 5 + 5 + 4
        return max_blindex

    def send_all_trees(self, lcodes: int, dcodes: int, blcodes: int) -> None:
        self.send_bits(lcodes - 257, 5)
        self.send_bits(dcodes - 1, 5)
        self.send_bits(blcodes - 4, 4)
        for rank in range(blcodes):
            self.send_bits(self.bl_tree.dl[bl_order[rank]], 3)
        self.send_tree(self.dyn_ltree, lcodes - 1)
        self.send_tree(self.dyn_dtree, dcodes - 1)

    def zlib_tr_stored_block(self, buf: int, stored_len: int, eof: int) -> None:
        self.send_bits((STORED_BLOCK << 1) + eof, 3)
        # copy_block with header
        self.bi_windup()
        self.out += (stored_len & 0xFFFF).to_bytes(2, "little")
        self.out += (~stored_len & 0xFFFF).to_bytes(2, "little")
        self.out += self.ws.window[buf:buf + stored_len]

    def zlib_tr_flush_block(self, buf: int | None, stored_len: int, eof: int) -> None:
        self.l_max_code = self.build_tree(self.dyn_ltree, _STATIC_L_DESC)
        self.d_max_code = self.build_tree(self.dyn_dtree, _STATIC_D_DESC)
        max_blindex = self.build_bl_tree()
        opt_lenb = (self.opt_len + 3 + 7) >> 3
        static_lenb = (self.static_len + 3 + 7) >> 3
        if static_lenb <= opt_lenb:
            opt_lenb = static_lenb
        if stored_len + 4 <= opt_lenb and buf is not None:
            self.zlib_tr_stored_block(buf, stored_len, eof)
        elif static_lenb == opt_lenb:
            self.send_bits((STATIC_TREES << 1) + eof, 3)
            self.compress_block(_STATIC_LTREE, _STATIC_DTREE)
        else:
            self.send_bits((DYN_TREES << 1) + eof, 3)
            self.send_all_trees(self.l_max_code + 1, self.d_max_code + 1, max_blindex + 1)
            self.compress_block(self.dyn_ltree, self.dyn_dtree)
        self._init_block()
        if eof:
            self.bi_windup()

    def zlib_tr_tally(self, dist: int, lc: int) -> bool:
        self.d_buf.append(dist)
        self.l_buf.append(lc & 0xFF)
        last_lit = len(self.l_buf)
        if dist == 0:
            self.dyn_ltree.fc[lc] += 1
        else:
            self.matches += 1
            dist -= 1
            self.dyn_ltree.fc[_LENGTH_CODE[lc] + LITERALS + 1] += 1
            self.dyn_dtree.fc[_d_code(dist)] += 1
        # The old zlib's guess whether ending the block here pays off.
        if (last_lit & 0xFFF) == 0 and self.level > 2:
            out_length = last_lit * 8
            in_length = self.strstart - self.block_start
            dtree = self.dyn_dtree.fc
            for dcode in range(D_CODES):
                out_length += dtree[dcode] * (5 + extra_dbits[dcode])
            out_length >>= 3
            if self.matches < last_lit // 2 and out_length < in_length // 2:
                return True
        return last_lit == self.ws.lit_bufsize - 1

    def compress_block(self, ltree: _Tree, dtree: _Tree) -> None:
        lcode = ltree.fc
        llen = ltree.dl
        dcode_t = dtree.fc
        dlen = dtree.dl
        send_bits = self.send_bits
        for dist, lc in zip(self.d_buf, self.l_buf):
            if dist == 0:
                send_bits(lcode[lc], llen[lc])
            else:
                code = _LENGTH_CODE[lc]
                send_bits(lcode[code + LITERALS + 1], llen[code + LITERALS + 1])
                extra = extra_lbits[code]
                if extra != 0:
                    send_bits(lc - _BASE_LENGTH[code], extra)
                dist -= 1
                code = _d_code(dist)
                send_bits(dcode_t[code], dlen[code])
                extra = extra_dbits[code]
                if extra != 0:
                    send_bits(dist - _BASE_DIST[code], extra)
        send_bits(lcode[END_BLOCK], llen[END_BLOCK])


def zlib_deflate_stream(ws: DeflateWorkspace, data: bytes, level: int = Z_DEFAULT_COMPRESSION) -> bytes:
    """The complete stream ``zlib_deflate(Z_FINISH)`` writes for ``data`` (given room enough)."""
    d = _Deflate(ws, level, data)
    if not ws.noheader:
        header = (8 + ((ws.w_bits - 8) << 4)) << 8
        level_flags = min((d.level - 1) >> 1, 3)
        header |= level_flags << 6
        header += 31 - (header % 31)
        d.out += header.to_bytes(2, "big")
    d.deflate_slow()
    if not ws.noheader:
        d.out += zlib.adler32(data).to_bytes(4, "big")  # zlib_adler32 over the input
    return bytes(d.out)


def crypto_deflate_compress(ws: DeflateWorkspace, src: bytes, dlen: int) -> bytes | None:
    """crypto/deflate.c ``deflate_compress``: the stream, or None (-EINVAL) if it does not fit.

    The stream must be *shorter* than ``dlen``: when the last block fills the buffer exactly,
    deflate() returns Z_OK ("finish started") instead of Z_STREAM_END, and the call fails.
    """
    out = zlib_deflate_stream(ws, src)
    if len(out) >= dlen:
        return None
    return out
