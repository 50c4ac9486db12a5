"""A generation's vectors as a query sees them: the shards its live chunks use, memory-mapped,
and its live mask (which rows of them are live chunks'), read from `live-G.npz` or, when that
is missing or damaged, derived from the database. Run these inside one read transaction."""

from pathlib import Path

import numpy as np

from ..errors import ContextlensError
from .store import Store
from .vectors import Part, load_mask, open_shard, save_mask, shard_path


def mask_from_database(store: Store, shards: list[tuple[int, int, int]]) -> np.ndarray:
    """The live mask `[rows of the shards]` bool: a shard whose rows are all used is all live;
    only the others' rows are asked for."""
    parts = []
    for shard, rows, used in shards:
        live = np.ones(rows, dtype=bool)
        if used < rows:
            live[:] = False
            live[store.shard_chunks(shard)[1]] = True
        parts.append(live)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)


def read_parts(store: Store, folder: Path, mapped: dict[int, np.ndarray]) -> list[Part]:
    """The current generation's shards with their live rows; `mapped` caches the mapped shard
    files by number (shards never change, and their numbers are never reused)."""
    shards = store.shards()
    live = load_mask(folder, store.generation(), *_layout(shards))
    if live is None:
        live = mask_from_database(store, shards)
    parts, start = [], 0
    for shard, rows, _ in shards:
        if shard not in mapped:
            mapped[shard] = _open(folder, shard, rows)
        mask = live[start : start + rows]
        parts.append(Part(shard, mapped[shard], None if mask.all() else mask))
        start += rows
    return parts


def write_mask(store: Store, folder: Path) -> None:
    """Write the current generation's live mask if its file is missing or damaged."""
    shards = store.shards()
    numbers, total = _layout(shards)
    if load_mask(folder, store.generation(), numbers, total) is None:
        save_mask(folder, store.generation(), numbers, mask_from_database(store, shards))


def _layout(shards: list[tuple[int, int, int]]) -> tuple[np.ndarray, int]:
    """The shard numbers `[s]` of a generation's (shard, rows, used), and their rows in all."""
    return np.array([s for s, _, _ in shards], dtype=np.int64), sum(r for _, r, _ in shards)


def _open(folder: Path, shard: int, rows: int) -> np.ndarray:
    try:
        vectors = open_shard(folder, shard)
        if vectors.ndim != 2 or len(vectors) != rows:
            raise ValueError(f"{vectors.shape} instead of {rows} rows")
    except (OSError, ValueError) as e:
        raise ContextlensError(
            f"{shard_path(folder, shard)} is missing or damaged ({e}); the index has lost "
            f"vectors: build it again into a new folder (`contextlens index build PATHS "
            f"--index NEW`)"
        ) from None
    return vectors
