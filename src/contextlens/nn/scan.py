"""A fast first pass over a table of unit vectors: which rows may be a query's k best by cosine.

`Int8Scan(unit)` stores the rows `[n, d]` once as int8 (one step for the whole table: v ≈ step ·
ṽ, |ṽ| ≤ 127, 52 bytes a row for d = 50 instead of 200) and `best(queries, k, …)` scores every
query against every row with integer dot products in `scan.c` (AVX2, OpenMP; compiled on first
use like `quant.c`). Each query is rounded to int8 too (|q̃| ≤ 63), so a score is off from
the exact cosine q · v by at most

    slack = step / 2 · (Σ|q| + Σ|e|) + ‖e‖        e = q̃ · s − q, the query's own rounding

(‖v‖ = 1 bounds e · v). A row whose scan score is more than 2 · slack below the k-th best scan
score cannot be among the k best once scored exactly, so the kernel keeps only the others and
never writes out the `[queries, n]` scores; the few rows kept are scored exactly and ranked in
the same call.
"""

import ctypes
from functools import cache
from pathlib import Path

import torch

from ..errors import ContextlensError
from .quant import built

SOURCE = Path(__file__).with_name("scan.c")
LANES, GROUPS = 8, 2  # rows interleaved in the table; groups scored together (NG in scan.c)
QUERY_MAX = 63  # int8 query values stay within ±63 so that u8 × s8 pairs never saturate
ROW_MAX = 127
ROW_ERROR = 1 + 1e-4  # a row value is within step / 2 · ROW_ERROR of the float (float32 rounding)
CAP = 256  # rows kept per query before the kernel must drop the ones that fell behind
CAP_VALUES = 1 << 22  # at most this many rows kept at once by one call (32 MiB)


@cache
def library(portable: bool = False) -> ctypes.CDLL | None:
    """scan.c as a loaded library; None without a C compiler. portable=True: the scalar build
    (no AVX2), for tests."""
    target = built(SOURCE, portable)
    if target is None:
        return None
    lib = ctypes.CDLL(str(target))
    p, i, n = ctypes.c_void_p, ctypes.c_int, ctypes.c_long
    lib.cl_scan.argtypes = [p, n, i, p, i, p, i, p, i, i, i, p, i, p, p, p, p, i]
    return lib


class Int8Scan:
    """The unit rows `[n, d]` float32, and as int8 in the kernel's layout `[groups, quads, 8, 4]`
    (uint8, offset by 128), made once."""

    def __init__(self, lib: ctypes.CDLL, unit: torch.Tensor):
        n, d = unit.shape
        self.lib, self.unit, self.quads = lib, unit.contiguous(), -(-d // 4)
        self.step = max(float(unit.max()), -float(unit.min()), 1e-30) / ROW_MAX
        groups = -(-n // (LANES * GROUPS)) * GROUPS
        table = torch.full((groups * LANES, 4 * self.quads), 128, dtype=torch.uint8)
        table[:n, :d] = torch.round(unit * (1 / self.step)).add_(128)  # float32: see ROW_ERROR
        self.table = table.view(groups, LANES, self.quads, 4).transpose(1, 2).contiguous()

    def _rounded(self, queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Queries `[m, d]` as int8 `[m, 4 · quads]`, and each one's margin in scan units `[m]`
        int32: 2 · slack / (its step · the table's step), rounded up."""
        q = queries.double()
        scale = (q.abs().amax(1) / QUERY_MAX).clamp_min(1e-30)  # [m]
        ints = torch.round(q / scale.unsqueeze(1))  # [m, d]
        e = ints * scale.unsqueeze(1) - q  # [m, d]: the rounding
        norm = 1 + 1e-6  # a unit row's length, rounded
        slack = self.step / 2 * ROW_ERROR * (q.abs().sum(1) + e.abs().sum(1))
        slack += e.norm(dim=1) * norm + 1e-6  # 1e-6: the exact score's own float32 rounding
        margin = torch.ceil(2 * slack / (scale * self.step)) + 1
        out = torch.zeros(len(q), 4 * self.quads, dtype=torch.int8)
        out[:, : q.shape[1]] = ints.to(torch.int8)
        return out, margin.clamp_max(2**30).to(torch.int32)

    def _call(self, queries, q, margin, exclude, k: int, r: int, cap: int):
        """One kernel call: rows `[m, k]`, cosines `[m, k]` and which queries overflowed `[m]`."""
        m = len(q)
        rows = torch.empty(m, k, dtype=torch.int32)
        scores = torch.empty(m, k)
        overflow = torch.empty(m, dtype=torch.int32)
        args = (self.table.data_ptr(), self.table.shape[0], self.quads, q.data_ptr(), m)
        args += (exclude.data_ptr(), exclude.shape[1], margin.data_ptr(), k, r, cap)
        args += (self.unit.data_ptr(), self.unit.shape[1], queries.data_ptr())
        args += (rows.data_ptr(), scores.data_ptr(), overflow.data_ptr())
        if self.lib.cl_scan(*args, torch.get_num_threads()):
            raise ContextlensError(f"the word-vector scan ran out of memory for k={k}; lower k")
        return rows, scores, overflow.bool()

    def best(
        self, queries: torch.Tensor, k: int, exclude: torch.Tensor, r: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The k rows of the first r with the highest exact cosine to each unit query `[m, d]`
        float32, leaving out its rows `exclude` `[m, e]` (-1 pads); best first, equal cosines:
        the earlier row first. Returns rows `[m, k]` int64 (-1 where fewer rows remain) and
        cosines `[m, k]` float32 (float64 sums of the exact products, rounded to float32).

        A query that had to keep more than `cap` rows (rows closer together than the int8 steps)
        is scanned again with room for 16 times more, up to every row.
        """
        queries = queries.float().contiguous()
        q, margin = self._rounded(queries)
        exclude = exclude.to(torch.int32).contiguous()
        k = min(k, r)
        rows = torch.empty(len(q), k, dtype=torch.int32)
        scores = torch.empty(len(q), k)
        todo, cap = torch.arange(len(q)), max(CAP, 4 * k)
        while len(todo):
            again = []
            for part in todo.split(max(1, CAP_VALUES // cap)):
                args = (queries[part], q[part], margin[part], exclude[part], k, r, cap)
                rows[part], scores[part], overflow = self._call(*args)
                again.append(part[overflow])
            todo, cap = torch.cat(again), min(cap * 16, r)
        return rows.long(), scores


def scanner(unit: torch.Tensor) -> Int8Scan | None:
    """An `Int8Scan` of the unit rows, or None without a C compiler (then scan in float32)."""
    lib = library()
    return None if lib is None else Int8Scan(lib, unit)
