"""`Index`: a folder of documents made searchable by meaning (dense), by words (BM25) or both.

An index is a directory: `index.db` (SQLite, see `store`) and the snapshot files of `vectors`.
It records the model and chunk settings that made it and refuses queries from another model.

    ix = Index.create("notes", model=m)            # or Index.open("notes")
    ix.build(["~/notes"], model=m)                  # embeds only new or changed documents
    ix.search("how do I renew a passport", k=5)     # list[Hit]
"""

import fcntl
import json
import os
import re
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import ContextlensError
from . import store
from .chunking import check_chunking, chunk_text
from .readers import Document, Skipped, read_documents, shown, utf8_problem
from .store import LIVE_CHUNKS, is_index_file, transaction
from .vectors import Hnsw, exact_top, load_snapshot, save_snapshot, snapshot_shape

ANN_THRESHOLD = 100_000  # chunks: below this the exact scan is the default
RRF_K = 60  # reciprocal-rank fusion constant (Cormack et al. 2009)
MODES = ("dense", "bm25", "hybrid")
DEFAULT_MODE = "hybrid"  # the best of the three on Cranfield (docs/search.md)
DEFAULT_CHUNK_TOKENS = 200
DEFAULT_OVERLAP = 32
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def index_root() -> Path:
    """Where indexes named without a path live: $CONTEXTLENS_HOME/indexes
    (default ~/.cache/contextlens/indexes)."""
    home = os.environ.get("CONTEXTLENS_HOME") or Path.home() / ".cache" / "contextlens"
    return Path(home).expanduser() / "indexes"


def index_path(name_or_path: str | Path) -> Path:
    """A bare name (`notes`) lives under `index_root()`; anything with a slash is a path."""
    s = str(name_or_path)
    if "/" in s or s.startswith(("~", ".")) or os.sep in s:
        return Path(s).expanduser()
    if not NAME.match(s):
        raise ContextlensError(f"bad index name {s!r}; use letters, digits, '.', '-', '_'")
    return index_root() / s


def list_indexes() -> list[Path]:
    root = index_root()
    return sorted(p for p in root.iterdir() if (p / "index.db").exists()) if root.exists() else []


@dataclass(frozen=True)
class Hit:
    rank: int
    score: float  # cosine (dense), BM25 (bm25) or reciprocal-rank-fusion score (hybrid)
    document: str
    position: int  # the chunk's number in its document (0-based)
    start: int  # character offsets of the chunk in the document
    end: int
    text: str
    metadata: dict
    chunk_id: int


@dataclass(frozen=True)
class _Made:
    """What creating an index added to the file system: the folders it made (deepest first)
    and the names already in its folder."""

    folders: tuple[Path, ...]
    before: frozenset[str]

    @classmethod
    def before_mkdir(cls, path: Path) -> "_Made":
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


class Index:
    def __init__(self, path: Path):
        self.path = path
        self.db = store.connect(path / "index.db")
        self.meta = store.get_meta(self.db)
        self._generation = -1
        self._ids = np.zeros(0, dtype=np.int64)
        self._vectors = torch.zeros(0, 0)
        self._hnsw: Hnsw | None = None
        self._loaded = None
        self._made: _Made | None = None

    # ── opening ─────────────────────────────────────────────────────────────────────────────
    @classmethod
    def open(cls, name_or_path: str | Path) -> "Index":
        path = index_path(name_or_path)
        if not (path / "index.db").exists():
            raise ContextlensError(
                f"no index at {path}; build one with `contextlens index build FOLDER "
                f"--index {name_or_path}`"
            )
        return cls(path)

    @classmethod
    def create(
        cls,
        name_or_path: str | Path,
        model,
        chunk_tokens: int | None = None,
        overlap: int | None = None,
    ) -> "Index":
        """Open the index, creating it for `model` if it does not exist yet (chunks of
        `chunk_tokens`, default 200 or the model's limit, sharing `overlap` tokens, default 32;
        None keeps an existing index's). A folder that exists may hold other files: the index
        only adds its own (see `discard`)."""
        if getattr(model, "kind", None) != "encoder":
            raise ContextlensError(f"{model.name} is not a sentence encoder; index with -m minilm")
        path = index_path(name_or_path)
        if path.exists() and not path.is_dir():
            raise ContextlensError(f"{path} is a file; give --index a folder (new or an index)")
        limit = model.pooling.max_length or model.max_length
        given = {"chunk_tokens": chunk_tokens, "overlap": overlap}
        defaults = {"chunk_tokens": min(DEFAULT_CHUNK_TOKENS, limit), "overlap": DEFAULT_OVERLAP}
        wanted = {k: defaults[k] if v is None else v for k, v in given.items()}
        n_special = sum(model.tokenize("x").special)
        check_chunking(n_special, wanted["chunk_tokens"], wanted["overlap"], limit)
        made = None if (path / "index.db").exists() else _Made.before_mkdir(path)
        path.mkdir(parents=True, exist_ok=True)
        try:
            ix = cls(path)
            ix._made = made
            if not ix.meta:
                with transaction(ix.db, write=True):
                    settings = {"model": model.name, "dim": model.config.d_model, **wanted}
                    store.set_meta(ix.db, **settings, generation=0, created=time.time())
                ix.meta = store.get_meta(ix.db)
        except BaseException:
            if made is not None:
                made.undo(path)
            raise
        ix.check_model(model)
        for key, value in given.items():
            if value is not None and ix.meta[key] != value:
                option = "--" + key.replace("_", "-")
                raise ContextlensError(
                    f"index {path} uses {key}={ix.meta[key]}, not {value}; leave out {option} "
                    "to keep its settings, or give --index a new folder"
                )
        return ix

    def discard(self) -> bool:
        """Delete the index if `create` made it in this process (to undo a failed first build):
        only the files the index wrote, and the folders `create` made once they are empty; what
        was in the folder before is left alone. Returns whether there was anything to undo."""
        if self._made is None:
            return False
        self.close()
        self._made.undo(self.path)
        self._made = None
        return True

    def check_model(self, model) -> None:
        dim = getattr(getattr(model, "config", None), "d_model", None)
        if model.name != self.meta["model"] or dim != self.meta["dim"]:
            raise ContextlensError(
                f"index {self.path} was made with {self.meta['model']} "
                f"(d={self.meta['dim']}), not {model.name}; use -m {self.meta['model']}"
            )

    @property
    def model_name(self) -> str:
        return self.meta["model"]

    @contextmanager
    def _writing(self):
        """One writer at a time (a lock file); readers are never blocked."""
        with open(self.path / "write.lock", "a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ContextlensError(
                    f"index {self.path} is being written by another process; wait for it"
                ) from None
            yield

    # ── writing ─────────────────────────────────────────────────────────────────────────────
    def build(self, paths, model, **kwargs) -> BuildReport:
        """Make the index hold exactly the documents under `paths`: embed new and changed ones,
        remove the ones that are gone. Resumes a build that was interrupted."""
        return self._update(paths, model, mirror=True, **kwargs)

    def add(self, paths, model, **kwargs) -> BuildReport:
        """Add (or update) the documents under `paths`, keeping everything else."""
        return self._update(paths, model, mirror=False, **kwargs)

    def _update(
        self,
        paths,
        model,
        mirror: bool,
        text_field: str = "text",
        id_field: str | None = None,
        batch_size: int = 32,
        commit_every: int = 64,
        progress: Callable[[int, int], None] | None = None,
    ) -> BuildReport:
        self.check_model(model)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ContextlensError(
                f"batch size (--batch-size) must be 1 or more (got {batch_size})"
            )
        if not isinstance(commit_every, int) or commit_every < 1:
            raise ContextlensError(f"commit_every must be 1 or more chunks (got {commit_every})")
        docs, skipped = read_documents(paths, text_field, id_field)
        if not docs:
            raise ContextlensError(
                f"no readable documents under {', '.join(map(str, paths))} "
                f"({len(skipped)} files skipped); index .txt, .md, .html, .jsonl or SMART files"
            )
        report = BuildReport(documents=len(docs), skipped=list(skipped))
        with self._writing():
            wanted = {d.name: d.hash for d in docs}
            live = dict(self.db.execute("SELECT name, hash FROM documents WHERE live = 1"))
            staged = dict(self.db.execute("SELECT name, hash FROM documents WHERE live = 0"))
            stale = [n for n, h in staged.items() if wanted.get(n) != h]
            with transaction(self.db, write=True):
                for n in stale:
                    store.delete_documents(self.db, "live = 0 AND name = ?", (n,))
            report.unchanged = sum(live.get(n) == h for n, h in wanted.items())
            report.resumed = sum(staged.get(n) == h != live.get(n) for n, h in wanted.items())
            todo = [d for d in docs if d.hash not in (live.get(d.name), staged.get(d.name))]
            gone = [n for n in live if n not in wanted] if mirror else []
            self._embed(todo, model, batch_size, commit_every, progress, report)
            if report.embedded or report.resumed or gone:
                with transaction(self.db, write=True):
                    report.generation = store.publish(self.db, gone)
                report.removed = len(gone)
                self._snapshot()
            else:
                report.generation = self.generation
                self._snapshot(repair=True)
        return report

    def _embed(self, docs: list[Document], model, batch_size, commit_every, progress, report):
        """Chunk and embed `docs`, committing them staged every `commit_every` chunks."""
        chunked = []
        for d in docs:
            c = chunk_text(d.text, model.tokenizer, self.meta["chunk_tokens"], self.meta["overlap"])
            if c.chunks:
                chunked.append((d, c))
            else:
                report.skipped.append(Skipped(d.name, "no text to index"))
        total, done = sum(len(c.chunks) for _, c in chunked), 0
        if progress:
            progress(done, total)
        group: list = []
        for i, item in enumerate(chunked):
            group.append(item)
            if sum(len(c.chunks) for _, c in group) >= commit_every or i == len(chunked) - 1:
                texts = [ch.text for _, c in group for ch in c.chunks]
                vectors = torch.nn.functional.normalize(model.embed(texts, batch_size), dim=-1)
                vectors = vectors.numpy()
                with transaction(self.db, write=True):
                    row = 0
                    for d, c in group:
                        n = len(c.chunks)
                        store.insert_document(self.db, d, c.chunks, vectors[row : row + n], c.split)
                        row += n
                report.embedded += len(group)
                report.chunks += len(texts)
                report.split += sum(c.split for _, c in group)
                done += len(texts)
                if progress:
                    progress(done, total)
                group = []

    def remove(self, names: list[str]) -> int:
        """Remove documents by name, path or folder (everything under it); returns how many."""
        with self._writing():
            live = [r[0] for r in self.db.execute("SELECT name FROM documents WHERE live = 1")]
            gone = set()
            for n in names:
                full = str(Path(n).expanduser().resolve())  # files may be gone already
                match = [
                    x for x in live if x in (n, full) or x.startswith((full + "/", full + "#"))
                ]
                if not match:
                    raise ContextlensError(f"no document {n!r} in the index; see `index info`")
                gone.update(match)
            with transaction(self.db, write=True):
                store.publish(self.db, sorted(gone))
            self._snapshot()
        return len(gone)

    def _snapshot(self, repair: bool = False) -> None:
        """Write the current generation's live vectors as snapshot files; with `repair`, only
        if they are missing or do not match the database (a writer killed before writing them)."""
        with transaction(self.db):
            generation = self.generation
            if repair:
                rows = self.db.execute(f"SELECT count(*) FROM {LIVE_CHUNKS}").fetchone()[0]
                if snapshot_shape(self.path, generation) == (rows, self.meta["dim"]):
                    return
            ids, vectors = store.live_vectors(self.db, self.meta["dim"])
        save_snapshot(self.path, generation, ids, vectors)
        if len(ids) >= ANN_THRESHOLD:
            Hnsw.build(vectors, self.path / f"hnsw-{generation}.bin")

    # ── reading ─────────────────────────────────────────────────────────────────────────────
    @property
    def generation(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return json.loads(row[0]) if row else 0

    def info(self) -> dict:
        with transaction(self.db):
            docs, split = self.db.execute(
                "SELECT count(*), coalesce(sum(split), 0) FROM documents WHERE live = 1"
            ).fetchone()
            chunks, tokens = self.db.execute(
                f"SELECT count(*), coalesce(sum(c.n_tokens), 0) FROM {LIVE_CHUNKS}"
            ).fetchone()
            staged = self.db.execute("SELECT count(*) FROM documents WHERE live = 0").fetchone()[0]
            meta = store.get_meta(self.db)
        size = sum(f.stat().st_size for f in self.path.iterdir() if f.is_file())
        return {
            "path": str(self.path),
            "model": meta["model"],
            "dim": meta["dim"],
            "chunk_tokens": meta["chunk_tokens"],
            "overlap": meta["overlap"],
            "generation": meta["generation"],
            "documents": docs,
            "chunks": chunks,
            "tokens": tokens,
            "split_sentences": split,
            "staged_documents": staged,
            "bytes": size,
        }

    def documents(self) -> list[dict]:
        rows = self.db.execute(
            "SELECT d.name, count(c.id), d.metadata FROM documents d JOIN chunks c ON c.doc = d.id "
            "WHERE d.live = 1 GROUP BY d.id ORDER BY d.name"
        )
        return [{"name": n, "chunks": c, "metadata": json.loads(m)} for n, c, m in rows]

    def _model(self):
        """The index's own model, loaded once (when `search` is not given one)."""
        if self._loaded is None:
            from ..loader import load

            self._loaded = load(self.model_name)
        return self._loaded

    def _load_vectors(self) -> None:
        """Bring the in-memory vectors up to the database's generation (inside a read
        transaction, so they match the metadata read in it)."""
        generation = self.generation
        if generation == self._generation:
            return
        snap = load_snapshot(self.path, generation)
        if snap is None:
            snap = store.live_vectors(self.db, self.meta["dim"])
        self._ids, vectors = snap
        self._vectors = torch.from_numpy(np.ascontiguousarray(vectors))
        self._hnsw = None
        self._generation = generation

    def _ann(self) -> Hnsw:
        if self._hnsw is None:
            path = self.path / f"hnsw-{self._generation}.bin"
            n = len(self._ids)
            self._hnsw = Hnsw.load(path, self.meta["dim"], n) or Hnsw.build(
                self._vectors.numpy(), path if os.access(self.path, os.W_OK) else None
            )
        return self._hnsw

    def _allowed(self, where: dict[str, str] | None) -> set[int] | None:
        """Chunk ids whose document metadata match every `key=glob` of `where`."""
        if not where:
            return None
        sql, params = _where_sql(where)
        rows = self.db.execute(f"SELECT c.id FROM {LIVE_CHUNKS} WHERE 1{sql}", params)
        return {r[0] for r in rows}

    def search(
        self,
        query: str,
        k: int = 10,
        mode: str = DEFAULT_MODE,
        model=None,
        where: dict[str, str] | None = None,
        ann: bool | None = None,
    ) -> list[Hit]:
        """The k best chunks for `query`, best first. mode: dense (cosine of embeddings), bm25
        (SQLite FTS5) or hybrid (reciprocal-rank fusion of both). `ann` None picks the HNSW
        graph from 100k chunks up (filters always scan exactly); `where` filters metadata by
        glob (`{"path": "*/notes/*"}`). A query over the model's limit is cut to it."""
        _check_query(query, where)
        if not isinstance(k, int) or k < 1:
            raise ContextlensError(
                f"k must be a positive number of results (got {k}); use -k 1 or more"
            )
        if mode not in MODES:
            raise ContextlensError(f"unknown search mode {mode!r}; use one of {', '.join(MODES)}")
        words = re.findall(r"\w+", query.lower())
        if mode == "bm25" and not words:
            raise ContextlensError("the query has no words for keyword (BM25) search")
        if mode != "bm25":
            model = model or self._model()
            self.check_model(model)
        with transaction(self.db):
            self._load_vectors()
            if len(self._ids) == 0:
                raise ContextlensError(f"index {self.path} is empty; add documents to it first")
            allowed = self._allowed(where)
            depth = max(k, 100) if mode == "hybrid" else k
            ranked: dict[str, list[tuple[int, float]]] = {}
            if mode != "bm25":
                ranked["dense"] = self._dense(query, depth, model, allowed, ann)
            if mode != "dense":
                ranked["bm25"] = self._bm25(words, depth, where)
            found = ranked[mode] if mode in ranked else _fuse(list(ranked.values()))
            return self._hits(found[:k])

    def _dense(self, query, k, model, allowed, ann) -> list[tuple[int, float]]:
        q = torch.nn.functional.normalize(model.embed(query, truncate=True), dim=-1)  # [d]
        use_ann = (len(self._ids) >= ANN_THRESHOLD) if ann is None else ann
        if allowed is not None or not use_ann:
            mask = None
            if allowed is not None:
                mask = torch.from_numpy(np.isin(self._ids, np.fromiter(allowed, np.int64)))
            scores, rows = exact_top(self._vectors, q[None], k, mask)
            scores, rows = scores[0].numpy(), rows[0].numpy()
        else:
            scores, rows = self._ann().top(q[None].numpy(), k)
            scores, rows = scores[0], rows[0]
        return [(int(self._ids[r]), float(s)) for r, s in zip(rows, scores, strict=True)]

    def _bm25(self, words: list[str], k, where) -> list[tuple[int, float]]:
        if not words:
            return []
        match = " OR ".join(f'"{w}"' for w in dict.fromkeys(words))
        sql, params = _where_sql(where)
        rows = self.db.execute(
            "SELECT c.id, -bm25(chunks_fts) FROM chunks_fts "
            f"JOIN {LIVE_CHUNKS} AND c.id = chunks_fts.rowid "
            f"WHERE chunks_fts MATCH ?{sql} ORDER BY bm25(chunks_fts) LIMIT ?",
            [match, *params, k],
        )
        return [(int(i), float(s)) for i, s in rows]

    def _hits(self, found: list[tuple[int, float]]) -> list[Hit]:
        if not found:
            return []
        marks = ",".join("?" * len(found))
        rows = {
            r[0]: r
            for r in self.db.execute(
                "SELECT c.id, d.name, c.position, c.start, c.end, c.text, d.metadata "
                f"FROM {LIVE_CHUNKS} WHERE c.id IN ({marks})",
                [i for i, _ in found],
            )
        }
        hits = []
        for rank, (i, score) in enumerate(found, start=1):
            _, name, position, start, end, text, metadata = rows[i]
            hits.append(Hit(rank, score, name, position, start, end, text, json.loads(metadata), i))
        return hits

    def close(self) -> None:
        self.db.close()


def _check_query(query: str, where: dict[str, str] | None) -> None:
    if not isinstance(query, str) or not query.strip():
        raise ContextlensError("the query is empty; give some words to search for")
    why = utf8_problem(query)
    if why:
        raise ContextlensError(f"the query is {why}; give it as UTF-8 text")
    for key, value in (where or {}).items():
        why = utf8_problem(f"{key}={value}")
        if why:
            raise ContextlensError(
                f"the filter {shown(key)}={shown(value)} is {why}; give --where as UTF-8 text"
            )


def _where_sql(where: dict[str, str] | None) -> tuple[str, list[str]]:
    """` AND …` conditions (and their parameters) matching document metadata `key=glob`."""
    if not where:
        return "", []
    sql = "".join(" AND CAST(json_extract(d.metadata, ?) AS TEXT) GLOB ?" for _ in where)
    return sql, [x for k, v in where.items() for x in (f'$."{k}"', str(v))]


def _fuse(rankings: list[list[tuple[int, float]]]) -> list[tuple[int, float]]:
    """Reciprocal-rank fusion: score(chunk) = Σ over rankings of 1 / (60 + rank)."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, (i, _) in enumerate(ranking, start=1):
            scores[i] = scores.get(i, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(scores.items(), key=lambda x: -x[1])
