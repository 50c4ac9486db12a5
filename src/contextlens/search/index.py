"""`Index`: a folder of documents made searchable by meaning (dense), by words (BM25) or both.

An index is a directory: `index.db` (SQLite; every statement is in `store`) and the shard,
graph and live-mask files of `vectors`. `build` writes them; `Index` opens, builds through it
and searches.
It records the model and chunk settings that made it and refuses queries from another model.

    ix = Index.create("notes", model=m)            # or Index.open("notes")
    ix.build(["~/notes"], model=m)                  # embeds only new or changed documents
    ix.search("how do I renew a passport", k=5)     # list[Hit]
"""

import os
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ContextlensError, Truncated
from ..io.documents import shown, utf8_problem
from ..lm import LanguageModel
from .build import Builder, BuildReport, Made
from .chunking import check_chunking
from .corpus import Job
from .explain import Explanation
from .explain import explain as explain_match
from .generation import read_parts
from .store import Store
from .vectors import (
    Hnsw,
    Part,
    ann_budget_bytes,
    dense_method,
    gather,
    graph_bytes,
    graph_path,
    top,
)

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
class ExplainedHit(Hit):
    """A hit and, when asked, the tokens that made it match (`explain`)."""

    explain: Explanation | None = None


@dataclass(frozen=True)
class SearchReport:
    """A query's hits in the index `index` (its folder's name), best first."""

    index: str
    query: str
    mode: str
    hits: list[ExplainedHit]


@dataclass(frozen=True)
class IndexSummary:
    """What an index holds, in short: its folder's name, model and counts."""

    name: str
    model: str
    documents: int
    chunks: int


@dataclass(frozen=True)
class IndexInfo:
    """What an index holds and how it was made: its folder, settings, live counts (documents,
    chunks, tokens, split sentences; staged: documents of an unfinished build) and size on
    disk; `files`, when asked for, names its documents."""

    path: str
    model: str
    dim: int
    chunk_tokens: int
    overlap: int
    generation: int
    documents: int
    chunks: int
    tokens: int
    split_sentences: int
    staged_documents: int
    bytes: int
    shards: int
    search: str  # how dense search runs by default: the HNSW graphs or the exact scan, and why
    files: list[str] | None = None


@dataclass
class IndexBuilt(BuildReport):
    """A build's (or add's) report, naming the index it changed."""

    index: str = ""


@dataclass(frozen=True)
class Removed:
    """How many documents `Index.remove` took out of the index `index`."""

    index: str
    removed: int


@dataclass(frozen=True)
class RetrievalReport:
    """A retrieval evaluation of the index `index`: per mode, the mean recall@10,
    recall@{depth}, mrr@10, ndcg@10 over the judged queries and the queries per second; `ann`:
    the HNSW graphs' recall@10 against the exact scan, and their qps (None without dense, or
    when the graphs exceed the ANN memory budget)."""

    index: str
    queries: int
    depth: int
    modes: dict[str, dict[str, float]]
    ann: dict[str, float] | None


class Index:
    def __init__(self, path: Path):
        self.path = path
        self.store = Store(path / "index.db")
        self.meta = self.store.meta()
        self._generation = -1
        self._parts: list[Part] = []  # the generation's shards, memory-mapped, and live rows
        self._mapped: dict[int, np.ndarray] = {}  # shard -> its mapped file
        self._graphs: dict[int, Hnsw] = {}  # shard -> its HNSW graph, once used
        self._loaded = None
        self._made: Made | None = None
        if self.meta and self.store.has_blob_vectors():
            self._writer().upgrade()

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
        if not isinstance(model, LanguageModel) or model.kind != "encoder":
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
        made = None if (path / "index.db").exists() else Made.before_mkdir(path)
        path.mkdir(parents=True, exist_ok=True)
        try:
            ix = cls(path)
            ix._made = made
            if not ix.meta:
                with ix.store.transaction(write=True):
                    settings = {"model": model.name, "dim": model.config.d_model, **wanted}
                    ix.store.set_meta(**settings, generation=0, created=time.time())
                ix.meta = ix.store.meta()
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
        dim = model.config.d_model if isinstance(model, LanguageModel) else None
        if model.name != self.meta["model"] or dim != self.meta["dim"]:
            raise ContextlensError(
                f"index {self.path} was made with {self.meta['model']} "
                f"(d={self.meta['dim']}), not {model.name}; use -m {self.meta['model']}"
            )

    @property
    def model_name(self) -> str:
        return self.meta["model"]

    # ── writing ─────────────────────────────────────────────────────────────────────────────
    def build(self, paths, model, **kwargs) -> BuildReport:
        """Make the index hold exactly the documents under `paths`: embed new and changed ones,
        remove the ones that are gone. Resumes a build that was interrupted."""
        return self._update(paths, model, mirror=True, **kwargs)

    def add(self, paths, model, **kwargs) -> BuildReport:
        """Add (or update) the documents under `paths`, keeping everything else."""
        return self._update(paths, model, mirror=False, **kwargs)

    def build_from_shards(
        self, folder: str | Path, progress: Callable[[int, int], None] | None = None
    ) -> BuildReport:
        """Make the index hold exactly the documents of a finished `embed_corpus` job in
        `folder` (Parquet shards of chunks and vectors), without embedding anything: the job's
        model and chunk settings must be the index's. Resumes like `build`."""
        job = Job.open(folder)
        job.check(self.meta)
        report = BuildReport(documents=len(job.hashes))
        return self._writer().ingest(job.hashes, lambda todo: job.groups(todo, progress), report)

    def _update(self, paths, model, mirror: bool, **kwargs) -> BuildReport:
        self.check_model(model)
        return self._writer().update(paths, model, mirror, **kwargs)

    def remove(self, names: list[str]) -> int:
        """Remove documents by name, path or folder (everything under it); returns how many."""
        return self._writer().remove(names)

    def _writer(self) -> Builder:
        return Builder(self.store, self.path, self.meta)

    # ── reading ─────────────────────────────────────────────────────────────────────────────
    @property
    def generation(self) -> int:
        return self.store.generation()

    def details(self, files: bool = False) -> IndexInfo:
        """What the index holds; with `files`, the names of its documents too."""
        with self.store.transaction():
            counts = self.store.counts()
            meta = self.store.meta()
            names = [d["name"] for d in self.store.documents()] if files else None
            shards = self.store.shards()
        size = sum(f.stat().st_size for f in self.path.iterdir() if f.is_file())
        settings = ("model", "dim", "chunk_tokens", "overlap", "generation")
        given = {k: meta[k] for k in settings} | counts
        need = sum(graph_bytes(rows, meta["dim"]) for _, rows, _ in shards)
        method = dense_method(counts["chunks"], need)[1]
        return IndexInfo(str(self.path), **given, bytes=size, shards=len(shards), search=method,
                         files=names)  # fmt: skip

    def info(self) -> dict:
        """`details()` as a dict."""
        return asdict(self.details())

    def summary(self) -> IndexSummary:
        info = self.details()
        return IndexSummary(self.path.name, info.model, info.documents, info.chunks)

    def documents(self) -> list[dict]:
        return self.store.documents()

    def _model(self):
        """The index's own model, loaded once (when `search` is not given one)."""
        if self._loaded is None:
            from ..loader import load

            self._loaded = load(self.model_name)
        return self._loaded

    def _load_vectors(self) -> None:
        """Bring the mapped shards and live rows up to the database's generation (inside a read
        transaction, so they match the metadata read in it)."""
        generation = self.generation
        if generation == self._generation:
            return
        self._parts = read_parts(self.store, self.path, self._mapped)
        kept = {p.shard for p in self._parts}
        self._mapped = {s: v for s, v in self._mapped.items() if s in kept}
        self._graphs = {s: g for s, g in self._graphs.items() if s in kept}
        self._generation = generation

    def vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """(chunk ids `[n]`, unit vectors `[n, d]`) of the live chunks, by chunk id, read from
        the shards into memory (for small indexes and checks; search never does this)."""
        with self.store.transaction():
            ids, shards, rows = self.store.live_places()
            blocks = list(gather(self.path, shards, rows))
        dim = self.meta["dim"]
        return ids, np.concatenate(blocks) if blocks else np.zeros((0, dim), np.float32)

    def _graph_of(self, part: Part) -> Hnsw:
        """The HNSW graph of `part`'s shard (loaded, or built and saved when the folder is
        writable), its dead rows hidden."""
        graph = self._graphs.get(part.shard)
        if graph is None:
            path = graph_path(self.path, part.shard)
            n = len(part.vectors)
            graph = Hnsw.load(path, self.meta["dim"], n) or Hnsw.build(
                part.vectors, path if os.access(self.path, os.W_OK) else None
            )
            self._graphs[part.shard] = graph
        if part.live is not None:
            graph.hide(~part.live)
        return graph

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
        graphs from 100k chunks up while they fit the ANN memory budget (`index info` says
        which; filters always scan exactly); `where` filters metadata by
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
        with self.store.transaction():
            self._load_vectors()
            if not self._parts:
                raise ContextlensError(f"index {self.path} is empty; add documents to it first")
            allowed = self._allowed(where) if where else None
            depth = max(k, 100) if mode == "hybrid" else k
            ranked: dict[str, list[tuple[int, float]]] = {}
            if mode != "bm25":
                ranked["dense"] = self._dense(query, depth, model, allowed, ann)
            if mode != "dense":
                ranked["bm25"] = self.store.bm25(words, depth, where) if words else []
            found = ranked[mode] if mode in ranked else _fuse(list(ranked.values()))
            return self._hits(found[:k])

    def report(
        self,
        query: str,
        model: LanguageModel,
        k: int = 10,
        mode: str = DEFAULT_MODE,
        where: dict[str, str] | None = None,
        ann: bool | None = None,
        explain: bool = False,
    ) -> SearchReport:
        """`search`'s hits as a report; with `explain`, each hit says which tokens of the query
        and of its chunk made the cosine (mean-pooling models)."""
        hits = self.search(query, k, mode, model, where, ann)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Truncated)  # the search has noted the query's cut
            reasons = [explain_match(model, query, h.text) if explain else None for h in hits]
        explained = [ExplainedHit(**vars(h), explain=e) for h, e in zip(hits, reasons, strict=True)]
        return SearchReport(self.path.name, query, mode, explained)

    def _allowed(self, where: dict[str, str]) -> list[np.ndarray]:
        """Per part, `[rows]` bool: the rows whose documents' metadata match `where`."""
        shards, rows = self.store.places(where)
        masks = []
        for part in self._parts:
            mask = np.zeros(len(part.vectors), dtype=bool)
            mask[rows[shards == part.shard]] = True
            masks.append(mask)
        return masks

    def _dense(self, query, k, model, allowed, ann) -> list[tuple[int, float]]:
        q = torch.nn.functional.normalize(model.embed(query, truncate=True), dim=-1)  # [d]
        q = q.float().cpu()  # the shards are memory-mapped on the CPU
        graphs = None
        if allowed is None and self._use_ann(ann):
            graphs = {p.shard: self._graph_of(p) for p in self._parts}
        scores, shards, rows = top(self._parts, q[None], k, allowed, graphs)
        places = list(zip(shards[0].tolist(), rows[0].tolist(), strict=True))
        ids = self.store.ids_at(places)
        return list(zip(ids, scores[0].tolist(), strict=True))

    def graphs_fit(self) -> bool:
        """Whether the HNSW graphs of the live shards fit the ANN memory budget."""
        with self.store.transaction():
            shards = self.store.shards()
        need = sum(graph_bytes(rows, self.meta["dim"]) for _, rows, _ in shards)
        return need <= ann_budget_bytes()

    def _use_ann(self, ann: bool | None) -> bool:
        """Whether to search the HNSW graphs: asked for, or (`ann` None) the default of
        `dense_method`; asked for over the memory budget, a clear error."""
        live = sum(p.live_rows for p in self._parts)
        need = sum(graph_bytes(len(p.vectors), self.meta["dim"]) for p in self._parts)
        if ann and need > ann_budget_bytes():
            raise ContextlensError(
                f"the HNSW graphs of index {self.path} would take {need / 1e9:.3g} GB, over the "
                f"ANN memory budget of {ann_budget_bytes() / 1e9:.3g} GB; search with --exact, "
                "or raise CONTEXTLENS_ANN_MEMORY_GB"
            )
        return dense_method(live, need)[0] if ann is None else ann

    def _hits(self, found: list[tuple[int, float]]) -> list[Hit]:
        rows = self.store.chunks([i for i, _ in found])
        return [Hit(rank, score, *rows[i], i) for rank, (i, score) in enumerate(found, start=1)]

    def close(self) -> None:
        self.store.close()


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


def _fuse(rankings: list[list[tuple[int, float]]]) -> list[tuple[int, float]]:
    """Reciprocal-rank fusion: score(chunk) = Σ over rankings of 1 / (60 + rank)."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, (i, _) in enumerate(ranking, start=1):
            scores[i] = scores.get(i, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(scores.items(), key=lambda x: -x[1])
