"""Building an index: read the documents, chunk and embed the new and changed ones, stage them in
small commits (a rerun resumes from them), publish them in one transaction, then write the
generation's vector snapshot. A failed first build can be undone (`Made`): only the files and
folders it made are removed.
"""

import fcntl
import os
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ContextlensError
from ..io.documents import Document, Skipped, read_file, shown
from .chunking import chunk_text
from .engine import Engine, check_batch_size, embedded
from .store import Store, is_index_file
from .vectors import (
    ANN_THRESHOLD,
    BLOCK_ROWS,
    Hnsw,
    load_snapshot,
    save_snapshot,
    snapshot_shape,
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
    """How many documents at the head of `queue` (document, chunked) fit in `rows` vectors."""
    n = 0
    while n < len(queue) and rows >= len(queue[n][1].chunks):
        rows -= len(queue[n][1].chunks)
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
            yield

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
        with self._writing():
            wanted = {d.name: d.hash for d in docs}
            live = self.store.hashes(live=True)
            staged = self.store.hashes(live=False)
            with self.store.transaction(write=True):
                for n, h in staged.items():
                    if wanted.get(n) != h:
                        self.store.drop_staged(n)
            report.unchanged = sum(live.get(n) == h for n, h in wanted.items())
            report.resumed = sum(staged.get(n) == h != live.get(n) for n, h in wanted.items())
            todo = [d for d in docs if d.hash not in (live.get(d.name), staged.get(d.name))]
            gone = [n for n in live if n not in wanted] if mirror else []
            self._embed(todo, model, engine, batch_size, commit_every, progress, report)
            if report.embedded or report.resumed or gone:
                with self.store.transaction(write=True):
                    report.generation = self.store.publish(gone)
                report.removed = len(gone)
                self._snapshot()
            else:
                report.generation = self.store.generation()
                self._snapshot(repair=True)
        return report

    def _embed(self, docs: list[Document], model, engine, batch_size, commit_every, progress,
               report):  # fmt: skip
        """Chunk and embed `docs`, committing them staged as soon as `commit_every` chunks of
        whole documents have their vectors (and the rest at the end)."""
        queue = []
        for d in docs:
            c = chunk_text(d.text, model.tokenizer, self.meta["chunk_tokens"], self.meta["overlap"])
            if c.chunks:
                queue.append((d, c))
            else:
                report.skipped.append(Skipped(d.name, "no text to index"))
        texts = [ch.text for _, c in queue for ch in c.chunks]
        if progress:
            progress(0, len(texts))
        vectors = np.zeros((0, self.meta["dim"]), np.float32)
        for part in embedded(texts, model, engine, batch_size, part=commit_every):
            vectors = np.concatenate([vectors, part])
            ready = _whole_documents(queue, len(vectors))
            rows = sum(len(c.chunks) for _, c in queue[:ready])
            if rows >= commit_every or ready == len(queue):
                self._stage(queue[:ready], vectors[:rows], report)
                queue, vectors = queue[ready:], vectors[rows:]
            if progress:
                progress(report.chunks + len(vectors), len(texts))

    def _stage(self, group: list, vectors: np.ndarray, report: BuildReport) -> None:
        """Commit the documents of `group` (document, chunked) staged, with their `vectors`."""
        with self.store.transaction(write=True):
            row = 0
            for d, c in group:
                n = len(c.chunks)
                self.store.insert_document(d, c.chunks, vectors[row : row + n], c.split)
                row += n
        report.embedded += len(group)
        report.chunks += len(vectors)
        report.split += sum(c.split for _, c in group)

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
            self._snapshot()
        return len(gone)

    def _snapshot(self, repair: bool = False) -> None:
        """Write the current generation's live vectors as snapshot files, a block of rows at a
        time; with `repair`, only if they are missing or do not match the database (a writer
        killed before writing them)."""
        dim = self.meta["dim"]
        with self.store.transaction():
            generation = self.store.generation()
            rows = self.store.live_chunk_count()
            if repair and snapshot_shape(self.folder, generation) == (rows, dim):
                return
            blocks = self.store.live_vector_blocks(dim, BLOCK_ROWS)
            save_snapshot(self.folder, generation, (rows, dim), blocks)
        if rows >= ANN_THRESHOLD:
            _, vectors = load_snapshot(self.folder, generation)
            Hnsw.build(vectors, self.folder / f"hnsw-{generation}.bin")
