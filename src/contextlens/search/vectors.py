"""Vector storage and search: immutable shards, the live mask of a generation, the exact scan
and hnswlib's HNSW graphs.

The vectors of an index live in **shards** next to its database, each written once to a
temporary file and renamed into place before the transaction that references it, and never
changed afterwards: `shard-S.npy` `[rows, d]` float32 unit rows, and (built on demand)
`hnsw-S.bin`, the HNSW graph over its rows. The database says which (shard, row) each chunk
has. A generation's **live mask** `live-G.npz` (the generation's shards and one bit per row:
is it a live chunk's) is derived data, rebuilt from the database when missing. A query maps the
shards read-only and scans them (or searches their graphs), masking dead rows, so an index of
tens of millions of vectors is searched without being read into memory (the operating system's
page cache keeps what fits).
"""

import os
import re
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ANN_THRESHOLD = 100_000  # live chunks: from this many up, ANN is the default (within the budget)
ANN_BUDGET_GB = 4.0  # memory the HNSW graphs may take by default (CONTEXTLENS_ANN_MEMORY_GB)
SHARD_ROWS = 1 << 20  # most rows a shard gets when shards are merged or ingested
SMALL_SHARD_ROWS = 1 << 16  # a shard under this many rows is small ...
MAX_SMALL_SHARDS = 8  # ... and more small shards than this are merged into one
MIN_LIVE_FRACTION = 0.5  # a shard with fewer live rows than this fraction is rewritten
BLOCK_ROWS = 1 << 16  # rows copied at a time when shards are rewritten
SCORES_BUDGET = 1 << 24  # numbers of scores an exact search holds at once (64 MB)
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 100
HNSW_EF_SEARCH = 256
FILE = re.compile(r"(shard|hnsw)-(\d+)\.(?:npy|bin)|live-(\d+)\.npz")
TEMPORARY = re.compile(r"\.(?:shard-\d+\.npy|hnsw-\d+\.bin|live-\d+\.npz)\.\w+\.tmp")


def is_vector_file(name: str) -> bool:
    """A shard, a graph or a live mask, or one being written (`.shard-S.npy.XXXX.tmp`)."""
    return FILE.fullmatch(name) is not None or TEMPORARY.fullmatch(name) is not None


def shard_path(folder: Path, shard: int) -> Path:
    return folder / f"shard-{shard}.npy"


def graph_path(folder: Path, shard: int) -> Path:
    return folder / f"hnsw-{shard}.bin"


def mask_path(folder: Path, generation: int) -> Path:
    return folder / f"live-{generation}.npz"


def atomic_write(path: Path, write) -> None:
    """Call `write(tmp_path)`, then rename the finished file to `path`."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_shard(folder: Path, shard: int, rows: int, blocks: Iterable[np.ndarray]) -> None:
    """Write shard S of `rows` rows from `blocks` of unit vectors `[≤ rows, d]` float32, a block
    at a time, flushed to disk before it is renamed into place."""
    blocks = iter(blocks)
    first = next(blocks)

    def write(tmp):
        out = np.lib.format.open_memmap(tmp, "w+", np.float32, (rows, first.shape[1]))
        row = 0
        for block in (first, *blocks):
            out[row : row + len(block)] = block
            row += len(block)
        if row != rows:
            raise ValueError(f"shard {shard}: {row} rows written, {rows} expected")
        out.flush()
        del out
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())

    atomic_write(shard_path(folder, shard), write)


def open_shard(folder: Path, shard: int) -> np.ndarray:
    """Shard S's vectors `[rows, d]`, memory-mapped read-only."""
    return np.load(shard_path(folder, shard), mmap_mode="r")


def save_mask(folder: Path, generation: int, shards: np.ndarray, live: np.ndarray) -> None:
    """Generation G's live mask: its shard ids `[s]` and one bit per row of them `[rows]`."""

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, shards=shards, bits=np.packbits(live), rows=len(live))

    atomic_write(mask_path(folder, generation), write)


def load_mask(folder: Path, generation: int, shards: np.ndarray, rows: int) -> np.ndarray | None:
    """Generation G's live mask `[rows]` bool, or None if its file is missing, damaged or not
    about these `shards`."""
    try:
        with open(mask_path(folder, generation), "rb") as file, np.load(file) as f:
            if not np.array_equal(f["shards"], shards) or int(f["rows"]) != rows:
                return None
            return np.unpackbits(f["bits"], count=rows).astype(bool)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def gather(folder: Path, shards: np.ndarray, rows: np.ndarray) -> Iterable[np.ndarray]:
    """The vectors at (`shards`, `rows`) `[n]`, in that order, a block of rows at a time."""
    for start in range(0, len(rows), BLOCK_ROWS):
        s, r = shards[start : start + BLOCK_ROWS], rows[start : start + BLOCK_ROWS]
        cuts = np.flatnonzero(np.diff(s)) + 1
        runs = zip(np.split(s, cuts), np.split(r, cuts), strict=True)
        yield np.concatenate([open_shard(folder, int(a[0]))[b] for a, b in runs])


def compaction(shards: list[tuple[int, int, int]]) -> list[int]:
    """Which of the published shards (shard, rows, rows used) to rewrite into new ones without
    their dead rows: those less than half live, and every small shard once there are more than
    `MAX_SMALL_SHARDS` of them (a build stages small shards; adding a document makes one)."""
    sparse = {s for s, rows, used in shards if used < MIN_LIVE_FRACTION * rows}
    small = {s for s, rows, _ in shards if rows < SMALL_SHARD_ROWS}
    return sorted(sparse | (small if len(small) > MAX_SMALL_SHARDS else set()))


@dataclass
class Part:
    """One shard as a generation sees it: its vectors `[rows, d]` (memory-mapped) and which of
    its rows are live `[rows]` bool (None: all of them); `dead` `[dead rows]` their numbers."""

    shard: int
    vectors: np.ndarray
    live: np.ndarray | None

    def __post_init__(self):
        dead = np.zeros(0, np.int64) if self.live is None else np.flatnonzero(~self.live)
        self.dead = torch.from_numpy(dead)

    @property
    def live_rows(self) -> int:
        return len(self.vectors) - len(self.dead)


def top(
    parts: list[Part],
    queries: torch.Tensor,
    k: int,
    allowed: list[np.ndarray | None] | None = None,
    graphs: dict[int, "Hnsw"] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The k best live rows over every part for unit `queries` `[m, d]`: (scores `[m, k']`,
    shards `[m, k']`, rows `[m, k']`), best first, k' = min(k, live rows). `allowed`: a mask
    `[rows]` per part (filters; None: every live row); `graphs`: search these parts' HNSW
    graphs (dead rows marked deleted in them) instead of scanning them."""
    scores, shards, rows = [], [], []
    for i, part in enumerate(parts):
        if graphs is not None and part.shard in graphs:
            s, r = graphs[part.shard].top(queries.numpy(), k)
            s, r = torch.from_numpy(s).float(), torch.from_numpy(r)
        elif allowed is not None:
            mask = allowed[i] if part.live is None else part.live & allowed[i]
            s, r = exact_top(part.vectors, queries, k, torch.from_numpy(mask))
        else:
            s, r = exact_top(part.vectors, queries, k, dead=part.dead)
        scores.append(s)
        rows.append(r)
        shards.append(torch.full_like(r, part.shard))
    if not parts:
        empty = torch.zeros(len(queries), 0)
        return empty, empty.long(), empty.long()
    scores, shards, rows = torch.cat(scores, 1), torch.cat(shards, 1), torch.cat(rows, 1)
    best = scores.topk(min(k, scores.shape[1]), dim=1)
    return best.values, shards.gather(1, best.indices), rows.gather(1, best.indices)


def exact_top(
    vectors: np.ndarray | torch.Tensor,
    queries: torch.Tensor,
    k: int,
    allowed: torch.Tensor | None = None,
    dead: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine top-k of unit `queries` `[m, d]` among unit `vectors` `[n, d]` (a tensor, or a
    numpy array such as a memory-mapped shard): (scores `[m, k]`, rows `[m, k]`), best first.
    `allowed` `[n]` bool masks rows out (filters); `dead` `[r]` leaves rows out by number (a
    shard's dead rows: cheaper than a mask when they are few). Queries go in groups that keep
    the scores under `SCORES_BUDGET` numbers."""
    n = vectors.shape[0]
    k = min(k, n if allowed is None else int(allowed.sum()))
    if dead is not None:
        k = min(k, n - len(dead))
    group = max(1, SCORES_BUDGET // max(n, 1))
    values, indices = [], []
    for start in range(0, len(queries), group):
        scores = _scores(vectors, queries[start : start + group])  # [g, n]
        if allowed is not None:
            scores.masked_fill_(~allowed, float("-inf"))
        if dead is not None:
            scores.index_fill_(1, dead, float("-inf"))
        best = scores.topk(k, dim=1)
        values.append(best.values)
        indices.append(best.indices)
    return torch.cat(values), torch.cat(indices)


def _scores(vectors: np.ndarray | torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """`[m, n]` dot products; on the CPU OpenBLAS reads the `[n, d]` rows (memory-mapped or
    not) ~2× faster than torch's gemv here."""
    if isinstance(vectors, torch.Tensor) and vectors.device.type != "cpu":
        return queries @ vectors.T
    rows = vectors.numpy() if isinstance(vectors, torch.Tensor) else vectors
    return torch.from_numpy(rows @ queries.float().cpu().numpy().T).T


def graph_bytes(rows: int, dim: int) -> int:
    """What hnswlib holds in memory for a graph of `rows` vectors: the float32 row and the
    layer-0 links (2·M of 4 bytes) of each, plus its label and upper-layer share."""
    return rows * (4 * dim + 8 * HNSW_M + 24)


def ann_budget_bytes() -> int:
    """The memory the HNSW graphs of an index may take: $CONTEXTLENS_ANN_MEMORY_GB or 4 GB."""
    return int(float(os.environ.get("CONTEXTLENS_ANN_MEMORY_GB") or ANN_BUDGET_GB) * 1e9)


def dense_method(chunks: int, need: int) -> tuple[bool, str]:
    """The default of dense search for an index of `chunks` live chunks whose HNSW graphs take
    `need` bytes: (use the graphs?, the rule as a sentence). ANN from `ANN_THRESHOLD` chunks up
    while the graphs fit the budget ($CONTEXTLENS_ANN_MEMORY_GB, default 4); otherwise the exact
    scan of the memory-mapped shards, which needs no memory of its own."""
    budget = ann_budget_bytes()
    if chunks < ANN_THRESHOLD:
        return False, f"exact scan (under {ANN_THRESHOLD:,} chunks)"
    if need > budget:
        return False, (
            f"exact scan (HNSW graphs would take {need / 1e9:.3g} GB, over the ANN memory budget "
            f"of {budget / 1e9:.3g} GB set by CONTEXTLENS_ANN_MEMORY_GB)"
        )
    return True, f"HNSW graphs ({need / 1e9:.3g} GB of the {budget / 1e9:.3g} GB ANN budget)"


class Hnsw:
    """hnswlib's inner-product HNSW graph over a shard's rows (labels are row numbers)."""

    def __init__(self, index):
        self.index = index
        self.hidden = np.zeros(index.get_current_count(), dtype=bool)

    @classmethod
    def build(cls, vectors: np.ndarray, path: Path | None = None, threads: int = -1) -> "Hnsw":
        import hnswlib

        index = hnswlib.Index(space="ip", dim=vectors.shape[1])
        index.init_index(
            max_elements=max(len(vectors), 1),
            M=HNSW_M,
            ef_construction=HNSW_EF_CONSTRUCTION,
            random_seed=0,
        )
        index.add_items(vectors, np.arange(len(vectors)), num_threads=threads)
        if path is not None:
            atomic_write(path, lambda tmp: index.save_index(tmp))
        return cls(index)

    @classmethod
    def load(cls, path: Path, dim: int, n: int) -> "Hnsw | None":
        import hnswlib

        if not path.exists():
            return None
        index = hnswlib.Index(space="ip", dim=dim)
        try:
            index.load_index(str(path), max_elements=n)
        except RuntimeError:
            return None
        return cls(index) if index.get_current_count() == n else None

    def hide(self, dead: np.ndarray) -> None:
        """Leave the rows of `dead` `[rows]` bool out of every answer (the graph still routes
        through them); rows once dead stay dead, so only the new ones are marked."""
        for row in np.flatnonzero(dead & ~self.hidden).tolist():
            self.index.mark_deleted(row)
        self.hidden |= dead

    def top(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores `[m, k]`, rows `[m, k]`) for unit queries `[m, d]`."""
        k = min(k, int((~self.hidden).sum()))
        if k <= 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        self.index.set_ef(max(HNSW_EF_SEARCH, k))
        rows, distances = self.index.knn_query(queries, k=k)
        return 1.0 - distances, rows.astype(np.int64)
