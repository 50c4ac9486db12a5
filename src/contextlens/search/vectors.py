"""Vector search: the exact path (one matrix product) and the ANN path (hnswlib's HNSW graph).

A generation's live vectors are kept as snapshot files next to the database, each written to a
temporary file and renamed into place: `vectors-G.npy` `[n, d]` float32 unit rows, `ids-G.npy`
`[n]` chunk ids, and (built on demand) `hnsw-G.bin`. They are derived data: when one is missing
(a process was killed before writing it) it is rebuilt from the database. Snapshots are written
from the database a block of rows at a time and read memory-mapped, and the exact scan is a
matrix product over the mapped rows, so an index of tens of millions of vectors is searched
without being read into memory (the operating system's page cache keeps what fits).
"""

import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

ANN_THRESHOLD = 100_000  # chunks: from this many up, the HNSW graph is the default
BLOCK_ROWS = 1 << 16  # rows written to a snapshot at a time
SCORES_BUDGET = 1 << 24  # numbers of scores an exact search holds at once (64 MB)
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 100
HNSW_EF_SEARCH = 256
SNAPSHOT = re.compile(r"(?:vectors|ids)-(\d+)\.npy|hnsw-(\d+)\.bin")
TEMPORARY = re.compile(r"\.(?:(?:vectors|ids)-\d+\.npy|hnsw-\d+\.bin)\.\w+\.tmp")


def snapshot_generation(name: str) -> int | None:
    """The generation G of a snapshot file name (`vectors-G.npy`, `ids-G.npy`, `hnsw-G.bin`)."""
    m = SNAPSHOT.fullmatch(name)
    return int(m[1] or m[2]) if m else None


def is_snapshot_file(name: str) -> bool:
    """A snapshot file, or one being written (`.vectors-G.npy.XXXX.tmp`)."""
    return snapshot_generation(name) is not None or TEMPORARY.fullmatch(name) is not None


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


def save_snapshot(
    directory: Path,
    generation: int,
    shape: tuple[int, int],
    blocks: Iterable[tuple[np.ndarray, np.ndarray]],
) -> None:
    """Write generation G's ids and vectors `shape` `[n, d]` from `blocks` of (ids `[rows]`,
    vectors `[rows, d]`), a block at a time (ids last: a reader trusts a pair only when both
    exist and agree in length), and delete snapshots older than G - 1."""
    ids = np.zeros(shape[0], dtype=np.int64)

    def vectors(tmp):
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
        row = 0
        for block_ids, block in blocks:
            out[row : row + len(block)] = block
            ids[row : row + len(block)] = block_ids
            row += len(block)
        out.flush()
        del out

    def save_ids(tmp):
        with open(tmp, "wb") as f:
            np.save(f, ids)

    atomic_write(directory / f"vectors-{generation}.npy", vectors)
    atomic_write(directory / f"ids-{generation}.npy", save_ids)
    for f in directory.iterdir():
        old = snapshot_generation(f.name)
        if old is not None and old < generation - 1:
            f.unlink(missing_ok=True)


def load_snapshot(directory: Path, generation: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(ids `[n]`, vectors `[n, d]` memory-mapped, read-only) of generation G, or None if its
    files are not all there."""
    try:
        ids = np.load(directory / f"ids-{generation}.npy")
        vectors = np.load(directory / f"vectors-{generation}.npy", mmap_mode="r")
    except (FileNotFoundError, ValueError, OSError):
        return None
    return (ids, vectors) if vectors.ndim == 2 and len(ids) == len(vectors) else None


def snapshot_shape(directory: Path, generation: int) -> tuple[int, int] | None:
    """The `[n, d]` shape of generation G's snapshot, read from the file headers, or None if its
    files are not all there or disagree."""
    try:
        ids = np.load(directory / f"ids-{generation}.npy", mmap_mode="r")
        vectors = np.load(directory / f"vectors-{generation}.npy", mmap_mode="r")
    except (FileNotFoundError, ValueError, OSError):
        return None
    return vectors.shape if vectors.ndim == 2 and ids.shape == vectors.shape[:1] else None


def exact_top(
    vectors: np.ndarray | torch.Tensor,
    queries: torch.Tensor,
    k: int,
    allowed: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine top-k of unit `queries` `[m, d]` among unit `vectors` `[n, d]` (a tensor, or a
    numpy array such as a memory-mapped snapshot): (scores `[m, k]`, rows `[m, k]`), best first.
    `allowed` `[n]` bool masks rows out (filters). Queries go in groups that keep the scores
    under `SCORES_BUDGET` numbers."""
    n = vectors.shape[0]
    k = min(k, n if allowed is None else int(allowed.sum()))
    group = max(1, SCORES_BUDGET // max(n, 1))
    values, indices = [], []
    for start in range(0, len(queries), group):
        scores = _scores(vectors, queries[start : start + group])  # [g, n]
        if allowed is not None:
            scores.masked_fill_(~allowed, float("-inf"))
        top = scores.topk(k, dim=1)
        values.append(top.values)
        indices.append(top.indices)
    return torch.cat(values), torch.cat(indices)


def _scores(vectors: np.ndarray | torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """`[m, n]` dot products; on the CPU OpenBLAS reads the `[n, d]` rows (memory-mapped or
    not) ~2× faster than torch's gemv here."""
    if isinstance(vectors, torch.Tensor) and vectors.device.type != "cpu":
        return queries @ vectors.T
    rows = vectors.numpy() if isinstance(vectors, torch.Tensor) else vectors
    return torch.from_numpy(rows @ queries.float().cpu().numpy().T).T


class Hnsw:
    """hnswlib's inner-product HNSW graph over a snapshot's rows (labels are row numbers)."""

    def __init__(self, index):
        self.index = index

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
        index.load_index(str(path), max_elements=n)
        return cls(index) if index.get_current_count() == n else None

    def top(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores `[m, k]`, rows `[m, k]`) for unit queries `[m, d]`."""
        k = min(k, self.index.get_current_count())
        self.index.set_ef(max(HNSW_EF_SEARCH, k))
        rows, distances = self.index.knn_query(queries, k=k)
        return 1.0 - distances, rows.astype(np.int64)
