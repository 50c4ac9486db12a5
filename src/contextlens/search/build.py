"""Building an index: read the documents, chunk and embed the new and changed ones (or take
them with their vectors from an embedding job's shards), stage them in small commits (a rerun
resumes from them), each commit's vectors in a new shard file written before it, publish them in
one transaction, then settle: rewrite mostly dead or too many small shards (compaction), write
the generation's live mask and, when ANN is the default, the shards' HNSW graphs. Files no
database row uses (left by a killed writer) are deleted when the next write starts. A failed
first build can be undone (`Made`): only the files and folders it made are removed.
"""

import fcntl
import os
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ContextlensError
from ..io.documents import Document, Skipped, read_file, shown
from .chunking import chunk_text
from .engine import Engine, check_batch_size, embedded
from .generation import write_mask
from .store import Store, is_index_file
from .vectors import (
    BLOCK_ROWS,
    FILE,
    SHARD_ROWS,
    TEMPORARY,
    Hnsw,
    compaction,
    dense_method,
    gather,
    graph_bytes,
    graph_path,
    open_shard,
    write_shard,
)


@dataclass
class BuildReport:
    documents: int = 0  # documents read
    embedded: int = 0  # documents embedded by this run
    chunks: int = 0  # chunks embedded by this run
    unchanged: int = 0  # documents already in the index with the same content
    resumed: int = 0  # documents embedded by an interrupted earlier run, not embedded again
    removed: int = 0
    split: int = 0  # sentences longer than a chunk, cut into pieces
    generation: int = 0
    skipped: list[Skipped] = field(default_factory=list)


@dataclass(frozen=True)
class Made:
    """What creating an index added to the file system: the folders it made (deepest first)
    and the names already in its folder."""

    folders: tuple[Path, ...]
    before: frozenset[str]

    @classmethod
    def before_mkdir(cls, path: Path) -> "Made":
        """Note what is there before `path.mkdir(parents=True)`."""
        folders = []
        while not path.exists():
            folders.append(path)
            path = path.parent
        return cls(tuple(folders), frozenset(os.listdir(path)) if not folders else frozenset())

    def undo(self, path: Path) -> None:
        """Delete the index files that were not there before, then the made folders if empty."""
        for f in path.iterdir() if path.is_dir() else ():
            if f.name not in self.before and is_index_file(f.name):
                f.unlink(missing_ok=True)
        for folder in self.folders:
            if folder.exists():
                if any(folder.iterdir()):
                    break
                folder.rmdir()


def read_documents(
    paths: list[str | Path], text_field: str = "text", id_field: str | None = None
) -> tuple[list[Document], list[Skipped]]:
    """Every document under `paths` (files, or folders walked recursively; hidden files and an
    index's own files skipped), and what was skipped."""
    if not paths:
        raise ContextlensError("no paths given; name the files or folders to index")
    docs, skipped = [], []
    for p in map(Path, paths):
        if not p.exists():
            raise ContextlensError(f"{shown(p)} does not exist; give a file or a folder")
        if not (p.is_file() or p.is_dir()):
            raise ContextlensError(
                f"{shown(p)} is not a regular file or a folder (a FIFO, socket or device); "
                "give files or folders"
            )
        files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if not f.is_dir())
        for f in files:
            if any(part.startswith(".") for part in f.relative_to(p).parts) or _of_an_index(f):
                continue
            d, s = read_file(f, text_field, id_field)
            docs += d
            skipped += s
    names = [d.name for d in docs]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ContextlensError(f"document {dup} appears twice; give each file or record once")
    return docs, skipped


def _whole_documents(queue: list, rows: int) -> int:
    """How many documents at the head of `queue` (document, chunks, split) fit in `rows`
    vectors."""
    n = 0
    while n < len(queue) and rows >= len(queue[n][1]):
        rows -= len(queue[n][1])
        n += 1
    return n


def _of_an_index(f: Path) -> bool:
    return is_index_file(f.name) and (f.parent / "index.db").is_file()


class Builder:
    """The writes to the index in `folder` (database `store`, settings `meta`): one writer at a
    time, holding the folder's lock file; readers are never blocked."""

    def __init__(self, store: Store, folder: Path, meta: dict):
        self.store, self.folder, self.meta = store, folder, meta

    @contextmanager
    def _writing(self):
        with open(self.folder / "write.lock", "a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ContextlensError(
                    f"index {self.folder} is being written by another process; wait for it"
                ) from None
            self._sweep()
            yield

    def _sweep(self) -> None:
        """Delete the files a killed writer left: shards and graphs no database row names,
        temporary files, live masks older than the previous generation."""
        known = self.store.shard_numbers()
        generation = self.store.generation()
        for f in self.folder.iterdir():
            m = FILE.fullmatch(f.name)
            orphan = m is not None and (
                int(m[2]) not in known if m[1] else int(m[3]) < generation - 1
            )
            if orphan or TEMPORARY.fullmatch(f.name):
                f.unlink(missing_ok=True)

    def update(
        self,
        paths,
        model,
        mirror: bool,
        text_field: str = "text",
        id_field: str | None = None,
        batch_size: int = 32,
        commit_every: int = 64,
        progress: Callable[[int, int], None] | None = None,
        engine: Engine | None = None,
    ) -> BuildReport:
        """Embed the new and changed documents under `paths` (in this process, or on Ray with
        `engine`) and publish them; with `mirror`, also remove the documents that are no longer
        there."""
        check_batch_size(batch_size)
        if not isinstance(commit_every, int) or commit_every < 1:
            raise ContextlensError(f"commit_every must be 1 or more chunks (got {commit_every})")
        engine = engine or Engine()
        engine.check()
        docs, skipped = read_documents(paths, text_field, id_field)
        if not docs:
            raise ContextlensError(
                f"no readable documents under {', '.join(map(str, paths))} "
                f"({len(skipped)} files skipped); index .txt, .md, .html, .jsonl or SMART files"
            )
        report = BuildReport(documents=len(docs), skipped=list(skipped))

        def embed(todo: set[str]) -> None:
            todo_docs = [d for d in docs if d.name in todo]
            self._embed(todo_docs, model, engine, batch_size, commit_every, progress, report)

        self._apply({d.name: d.hash for d in docs}, mirror, report, embed)
        return report

    def ingest(
        self,
        hashes: dict[str, str],
        groups: Callable[[set[str]], Iterable[tuple[list, np.ndarray]]],
        report: BuildReport,
    ) -> BuildReport:
        """Make the index hold exactly the documents named in `hashes` (name -> content hash),
        whose chunks and vectors come ready: `groups(names)` yields, for the documents named that
        are not in the index yet, (documents as (document, chunks, split), their vectors
        `[rows, d]`), a group a shard."""
        self._apply(hashes, True, report, lambda todo: self._stage_all(groups(todo), report))
        return report

    def _apply(self, wanted: dict[str, str], mirror: bool, report: BuildReport,
               stage: Callable[[set[str]], None]) -> None:  # fmt: skip
        """Under the lock: keep the staged documents still wanted, `stage` the new and changed
        ones, publish (removing the gone ones with `mirror`), settle."""
        with self._writing():
            live = self.store.hashes(live=True)
            staged = self.store.hashes(live=False)
            with self.store.transaction(write=True):
                for n, h in staged.items():
                    if wanted.get(n) != h:
                        self.store.drop_staged(n)
            report.unchanged = sum(live.get(n) == h for n, h in wanted.items())
            report.resumed = sum(staged.get(n) == h != live.get(n) for n, h in wanted.items())
            todo = {n for n, h in wanted.items() if h not in (live.get(n), staged.get(n))}
            gone = [n for n in live if n not in wanted] if mirror else []
            stage(todo)
            if report.embedded or report.resumed or gone:
                with self.store.transaction(write=True):
                    self.store.publish(gone)
                report.removed = len(gone)
            self._settle()
            report.generation = self.store.generation()

    def _embed(self, docs: list[Document], model, engine, batch_size, commit_every, progress,
               report):  # fmt: skip
        """Chunk and embed `docs`, committing them staged as soon as `commit_every` chunks of
        whole documents have their vectors (and the rest at the end)."""
        queue = []
        for d in docs:
            c = chunk_text(d.text, model.tokenizer, self.meta["chunk_tokens"], self.meta["overlap"])
            if c.chunks:
                queue.append((d, c.chunks, c.split))
            else:
                report.skipped.append(Skipped(d.name, "no text to index"))
        texts = [ch.text for _, chunks, _ in queue for ch in chunks]
        if progress:
            progress(0, len(texts))
        vectors = np.zeros((0, self.meta["dim"]), np.float32)
        for part in embedded(texts, model, engine, batch_size, part=commit_every):
            vectors = np.concatenate([vectors, part])
            ready = _whole_documents(queue, len(vectors))
            rows = sum(len(chunks) for _, chunks, _ in queue[:ready])
            if rows >= commit_every or ready == len(queue):
                self._stage(queue[:ready], vectors[:rows], report)
                queue, vectors = queue[ready:], vectors[rows:]
            if progress:
                progress(report.chunks + len(vectors), len(texts))

    def _stage_all(self, groups: Iterable[tuple[list, np.ndarray]], report: BuildReport) -> None:
        for group, vectors in groups:
            self._stage(group, vectors, report)

    def _stage(self, group: list, vectors: np.ndarray, report: BuildReport) -> None:
        """Write `vectors` `[rows, d]` as a new shard, then commit the documents of `group`
        (document, chunks, split) staged, their chunks pointing at its rows."""
        if not group:
            return
        shard = self.store.reserve_shard()
        write_shard(self.folder, shard, len(vectors), [vectors])
        with self.store.transaction(write=True):
            self.store.add_shard(shard, len(vectors))
            row = 0
            for d, chunks, split in group:
                self.store.insert_document(d, chunks, shard, row, split)
                row += len(chunks)
        report.embedded += len(group)
        report.chunks += len(vectors)
        report.split += sum(split for _, _, split in group)

    def remove(self, names: list[str]) -> int:
        """Remove documents by name, path or folder (everything under it); returns how many."""
        with self._writing():
            live = self.store.live_names()
            gone = set()
            for n in names:
                full = str(Path(n).expanduser().resolve())  # files may be gone already
                match = [
                    x for x in live if x in (n, full) or x.startswith((full + "/", full + "#"))
                ]
                if not match:
                    raise ContextlensError(f"no document {n!r} in the index; see `index info`")
                gone.update(match)
            with self.store.transaction(write=True):
                self.store.publish(sorted(gone))
            self._settle()
        return len(gone)

    def _settle(self) -> None:
        """After a publish (or to finish a killed writer's work): compact, write the live mask,
        and build the missing HNSW graphs when ANN is the index's default."""
        self._compact()
        with self.store.transaction():
            write_mask(self.store, self.folder)
            shards = self.store.shards()
        live = sum(used for _, _, used in shards)
        need = sum(graph_bytes(rows, self.meta["dim"]) for _, rows, _ in shards)
        if dense_method(live, need)[0]:
            for shard, _, _ in shards:
                if not graph_path(self.folder, shard).exists():
                    Hnsw.build(open_shard(self.folder, shard), graph_path(self.folder, shard))

    def _compact(self) -> None:
        """Rewrite the shards `compaction` picks into new shards of their live rows (at most
        `SHARD_ROWS` each), written before the one transaction that moves the chunks to them."""
        with self.store.transaction():
            plan = compaction(self.store.shards())
            taken = [self.store.shard_chunks(s) for s in plan]
        if not taken:
            return
        ids = np.concatenate([i for i, _ in taken])
        shards = np.concatenate([np.full(len(r), s) for s, (_, r) in zip(plan, taken, strict=True)])
        rows = np.concatenate([r for _, r in taken])
        pieces = []
        for start in range(0, len(ids), SHARD_ROWS):
            piece = slice(start, start + SHARD_ROWS)
            shard = self.store.reserve_shard()
            blocks = gather(self.folder, shards[piece], rows[piece])
            write_shard(self.folder, shard, len(ids[piece]), blocks)
            pieces.append((shard, ids[piece]))
        with self.store.transaction(write=True):
            for shard, chunks in pieces:
                self.store.move(chunks, shard)
            self.store.next_generation()

    def upgrade(self) -> bool:
        """Move an index of the first format (each vector a BLOB in the database) to shards:
        the live vectors are written to shards, then one transaction drops the BLOBs and points
        the chunks at their rows, and the database is vacuumed. Returns whether there was
        anything to upgrade."""
        if not self.store.has_blob_vectors():
            return False
        with self._writing():
            for f in self.folder.iterdir():
                if re.fullmatch(r"(?:vectors|ids)-\d+\.npy|hnsw-\d+\.bin", f.name):
                    f.unlink()  # the first format's snapshots
            count = self.store.counts()["chunks"]
            numbers = [self.store.reserve_shard() for _ in range(0, count, SHARD_ROWS)]
            placed = []
            with self.store.transaction():
                stream = self.store.blob_vectors(self.meta["dim"], BLOCK_ROWS)
                for shard, start in zip(numbers, range(0, count, SHARD_ROWS), strict=True):
                    rows = min(SHARD_ROWS, count - start)
                    ids: list[np.ndarray] = []
                    write_shard(self.folder, shard, rows, _noting_ids(stream, rows, ids))
                    placed.append((shard, np.concatenate(ids)))
            with self.store.transaction(write=True):
                self.store.drop_blob_vectors(placed)
            self.store.db.execute("VACUUM")  # give the BLOBs' pages back to the file system
            self._settle()
        return True


def _noting_ids(stream: Iterator[tuple[np.ndarray, np.ndarray]], rows: int, ids: list):
    """The vectors of the next `rows` rows of `stream` (blocks of (ids, vectors)), noting their
    ids in `ids`."""
    while rows > 0:
        block_ids, vectors = next(stream)
        ids.append(block_ids)
        rows -= len(block_ids)
        yield vectors
