"""Embed a corpus to Parquet shards: the batch job that turns folders of documents into vectors.

    report = embed_corpus(["~/notes"], "vectors", "minilm")     # or engine=Engine("ray", ...)

`out` receives `part-00000.parquet`, `part-00001.parquet`, … (columns `id` int64, `source`
document name, `position` chunk number in its document, `start`/`end` character offsets, `chunk`
text, `tokens` its number of tokens, `vector` float32[d] unit) and `manifest.json` (the
settings and every finished shard with a digest of its chunks). Each shard and each manifest
update is written to a temporary file and renamed into place, so a killed job leaves only whole
shards; a rerun embeds only the shards whose chunks are not in the manifest yet (new, changed or
unfinished). `Job` reads a finished job back document by document, for an index to take it as
it is (`Index.build_from_shards`).
"""

import hashlib
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import ContextlensError
from ..io.documents import Skipped, shown
from ..lm import LanguageModel
from .build import read_documents
from .chunking import Chunk, chunk_settings, chunk_text
from .engine import Engine, ModelSpec, check_batch_size, embedded
from .vectors import SHARD_ROWS, atomic_write

MANIFEST = "manifest.json"
SHARD = re.compile(r"part-(\d{5})\.parquet")
DEFAULT_SHARD_ROWS = 4096


@dataclass
class CorpusReport:
    out: Path
    model: str
    engine: str
    documents: int = 0  # documents read
    chunks: int = 0  # chunks in all shards
    shards: int = 0
    embedded: int = 0  # shards embedded by this run
    kept: int = 0  # shards a previous run finished, not embedded again
    skipped: list[Skipped] = field(default_factory=list)


@dataclass(frozen=True)
class Row:
    source: str
    position: int
    start: int
    end: int
    chunk: str
    tokens: int = 0  # not in the digest: jobs written before it was kept stay valid


@dataclass(frozen=True)
class JobDocument:
    """A document of an embedding job as an index records it."""

    name: str
    hash: str  # of its chunks (positions, offsets, texts)
    metadata: dict


def shard_name(n: int) -> str:
    return f"part-{n:05d}.parquet"


def embed_corpus(
    paths: list[str | Path],
    out: str | Path,
    model: LanguageModel | str = "minilm",
    engine: Engine | None = None,
    batch_size: int = 32,
    shard_rows: int = DEFAULT_SHARD_ROWS,
    chunk_tokens: int | None = None,
    overlap: int | None = None,
    text_field: str = "text",
    id_field: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CorpusReport:
    """Chunk the documents under `paths` (files or folders: .txt .md .html .jsonl .parquet, SMART)
    and write their unit embeddings to Parquet shards of `shard_rows` chunks in `out`, skipping
    the shards a previous run finished. `model` is a loaded model or a name for `load`;
    `progress(done, total)` counts chunks."""
    if isinstance(model, str):
        from ..loader import load

        model = load(model)
    engine = engine or Engine()
    engine.check()
    check_batch_size(batch_size)
    if not isinstance(model, LanguageModel):
        raise ContextlensError(f"{model.name} is a word-vector table; embed with -m minilm")
    if not isinstance(shard_rows, int) or shard_rows < 1:
        raise ContextlensError(f"--shard-rows must be 1 or more chunks (got {shard_rows})")
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise ContextlensError(f"{shown(out)} is a file; give --out a folder (new or one of ours)")
    settings = {"model": model.name, "weights": ModelSpec.of(model).weights,
                "dim": model.config.d_model, **chunk_settings(model, chunk_tokens, overlap),
                "shard_rows": shard_rows}  # fmt: skip
    docs, skipped = read_documents(paths, text_field, id_field)
    rows = _rows(docs, model, settings, skipped)
    if not rows:
        raise ContextlensError(
            f"no text to embed under {', '.join(map(shown, paths))} ({len(skipped)} files "
            "skipped); give .txt, .md, .html, .jsonl or .parquet files"
        )
    shards = [rows[i : i + shard_rows] for i in range(0, len(rows), shard_rows)]
    digests = [_digest(settings, s) for s in shards]
    done = _finished(out, settings)
    todo = [n for n, d in enumerate(digests) if done.get(shard_name(n)) != d or not
            (out / shard_name(n)).exists()]  # fmt: skip
    report = CorpusReport(out, model.name, engine.name, len(docs), len(rows), len(shards),
                          len(todo), len(shards) - len(todo), skipped)  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    done = {k: v for k, v in done.items() if k in map(shard_name, range(len(shards)))}
    _drop_extra_shards(out, len(shards))
    write_manifest(out, settings, done, complete=False)
    texts = [r.chunk for n in todo for r in shards[n]]
    written, queue, buffer = 0, list(todo), np.zeros((0, settings["dim"]), np.float32)
    if progress:
        progress(len(rows) - len(texts), len(rows))
    for part in embedded(texts, model, engine, batch_size):
        buffer = np.concatenate([buffer, part])
        while queue and len(buffer) >= len(shards[queue[0]]):
            n = queue.pop(0)
            size = len(shards[n])
            write_shard(out / shard_name(n), n * shard_rows, shards[n], buffer[:size])
            buffer, written = buffer[size:], written + size
            done[shard_name(n)] = digests[n]
            write_manifest(out, settings, done, complete=not queue)
            if progress:
                progress(len(rows) - len(texts) + written, len(rows))
    write_manifest(out, settings, done, complete=True)
    return report


def read_corpus(out: str | Path) -> pa.Table:
    """All the shards of a finished `embed_corpus` job as one table, in id order."""
    out = Path(out).expanduser()
    return pa.concat_tables([pq.read_table(out / n) for n in _finished_job(out)["shards"]])


def _finished_job(out: Path) -> dict:
    manifest = _manifest(out)
    if manifest is None or not manifest.get("complete"):
        raise ContextlensError(
            f"{shown(out)} holds no finished embedding job; run `contextlens embed PATH… --out "
            f"{shown(out)}` (again, to finish it)"
        )
    manifest["shards"] = dict(sorted(manifest["shards"].items()))
    return manifest


class Job:
    """A finished embedding job in a folder, read a batch of rows at a time: its settings, its
    documents' hashes, and its documents with their chunks and vectors."""

    COLUMNS = ["source", "position", "start", "end", "chunk", "tokens"]

    def __init__(self, out: Path, manifest: dict):
        self.out, self.settings = out, manifest["settings"]
        self.files = [out / n for n in manifest["shards"]]
        for f in self.files:
            self._check_columns(f)
        self.hashes = self._hashes()
        self.rows = sum(pq.ParquetFile(f).metadata.num_rows for f in self.files)

    @classmethod
    def open(cls, out: str | Path) -> "Job":
        out = Path(out).expanduser()
        if not out.is_dir():
            raise ContextlensError(f"{shown(out)} is not a folder; give --from-shards the --out "
                                   "folder of a `contextlens embed` job")  # fmt: skip
        return cls(out, _finished_job(out))

    def check(self, meta: dict) -> None:
        """Refuse a job whose model or chunk settings are not the index's `meta`."""
        keys = ("model", "dim", "chunk_tokens", "overlap")
        diff = [f"{k} {self.settings.get(k)} ≠ {meta[k]}" for k in keys
                if self.settings.get(k) != meta[k]]  # fmt: skip
        if diff:
            raise ContextlensError(
                f"the job in {shown(self.out)} was made with other settings than the index "
                f"({', '.join(diff)}); give --index a new folder"
            )

    def _check_columns(self, f: Path) -> None:
        try:
            names = pq.read_schema(f).names
        except (OSError, pa.ArrowException) as e:
            raise ContextlensError(
                f"{shown(f)} cannot be read ({str(e).splitlines()[0]}); run `contextlens "
                f"embed PATH… --out {shown(self.out)}` again to finish the job"
            ) from None
        missing = [c for c in [*self.COLUMNS, "vector"] if c not in names]
        if missing:
            raise ContextlensError(
                f"{shown(f)} is not a shard this version can index (no {', '.join(missing)}); "
                f"run `contextlens embed PATH… --out NEW` again and index NEW"
            )

    def _batches(self, columns: list[str]):
        for f in self.files:
            try:
                yield from pq.ParquetFile(f).iter_batches(batch_size=1 << 16, columns=columns)
            except (OSError, ValueError, pa.ArrowException) as e:
                raise ContextlensError(
                    f"{shown(f)} cannot be read ({str(e).splitlines()[0][:100]}); run `contextlens "
                    f"embed PATH… --out {shown(self.out)}` again with a new folder"
                ) from None

    def _hashes(self) -> dict[str, str]:
        """Document name -> SHA-256 of its chunks."""
        digests = {}
        for batch in self._batches(self.COLUMNS[:5]):
            columns = (batch.column(c).to_pylist() for c in self.COLUMNS[:5])
            for source, *rest in zip(*columns, strict=True):
                h = digests.get(source) or digests.setdefault(source, hashlib.sha256())
                h.update(json.dumps(rest).encode() + b"\n")
        return {name: h.hexdigest() for name, h in digests.items()}

    def groups(self, names: set[str], progress: Callable[[int, int], None] | None = None):
        """The documents in `names`, in the job's order, with their chunks and vectors, in
        groups of whole documents of about `SHARD_ROWS` rows: ([(document, chunks, 0)],
        vectors `[rows, d]`)."""
        group, blocks, rows, done = [], [], 0, 0
        for doc, chunks, vectors in self._documents():
            done += len(chunks)
            if doc.name in names:
                group.append((doc, chunks, 0))
                blocks.append(vectors)
                rows += len(chunks)
            if rows >= SHARD_ROWS:
                yield group, np.concatenate(blocks)
                group, blocks, rows = [], [], 0
            if progress:
                progress(done, self.rows)
        if group:
            yield group, np.concatenate(blocks)

    def _documents(self):
        """(document, chunks, vectors `[chunks, d]`) of every document, in the job's order."""
        name, chunks, blocks = None, [], []
        for batch in self._batches([*self.COLUMNS, "vector"]):
            sources, _, start, end, text, tokens = (
                batch.column(c).to_pylist() for c in self.COLUMNS
            )
            vectors = batch.column("vector").flatten().to_numpy().reshape(len(batch), -1)
            cuts = [0, *(i for i in range(1, len(sources)) if sources[i] != sources[i - 1]),
                    len(sources)]  # fmt: skip
            for a, b in itertools.pairwise(cuts):
                if sources[a] != name:
                    if name is not None:
                        yield self._document(name), chunks, np.concatenate(blocks)
                    name, chunks, blocks = sources[a], [], []
                cut = zip(text[a:b], start[a:b], end[a:b], tokens[a:b], strict=True)
                chunks += [Chunk(*row) for row in cut]
                blocks.append(vectors[a:b])
        if name is not None:
            yield self._document(name), chunks, np.concatenate(blocks)

    def _document(self, name: str) -> JobDocument:
        return JobDocument(name, self.hashes[name], {"path": name.partition("#")[0]})


def _rows(docs, model, settings, skipped: list[Skipped]) -> list[Row]:
    rows = []
    for d in docs:
        chunks = chunk_text(d.text, model.tokenizer, settings["chunk_tokens"], settings["overlap"])
        if not chunks.chunks:
            skipped.append(Skipped(d.name, "no text to embed"))
        rows += [
            Row(d.name, i, c.start, c.end, c.text, c.n_tokens) for i, c in enumerate(chunks.chunks)
        ]
    return rows


def _digest(settings: dict, rows: list[Row]) -> str:
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for r in rows:
        h.update(json.dumps([r.source, r.position, r.start, r.end, r.chunk]).encode() + b"\n")
    return h.hexdigest()


def _manifest(out: Path) -> dict | None:
    try:
        return json.loads((out / MANIFEST).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise ContextlensError(
            f"{shown(out / MANIFEST)} cannot be read ({e}); give --out a new folder"
        ) from None


def _finished(out: Path, settings: dict) -> dict[str, str]:
    """Shard name -> digest of the shards a previous job in `out` finished with `settings`."""
    manifest = _manifest(out)
    if manifest is None:
        if out.is_dir() and any(SHARD.fullmatch(f.name) for f in out.iterdir()):
            raise ContextlensError(
                f"{shown(out)} holds shards without a manifest; give --out a new folder"
            )
        return {}
    made = manifest.get("settings")
    if made != settings:
        diff = [k for k in settings if (made or {}).get(k) != settings[k]]
        raise ContextlensError(
            f"{shown(out)} holds embeddings made with other settings ({', '.join(diff)}); give "
            "--out a new folder, or the same model and options as before"
        )
    return dict(manifest["shards"])


def write_manifest(out: Path, settings: dict, shards: dict[str, str], complete: bool) -> None:
    """The job's settings, its finished shards (name -> digest) and whether it is complete."""
    data = {"settings": settings, "shards": dict(sorted(shards.items())), "complete": complete}
    atomic_write(out / MANIFEST, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=1)))


def _drop_extra_shards(out: Path, count: int) -> None:
    """Delete shard files numbered `count` or more (left by a larger corpus)."""
    for f in out.iterdir():
        m = SHARD.fullmatch(f.name)
        if m and int(m[1]) >= count:
            f.unlink()


def write_shard(path: Path, first_id: int, rows: list[Row], vectors: np.ndarray) -> None:
    """One Parquet shard: `rows` with ids from `first_id` and their vectors `[rows, d]`."""
    d = vectors.shape[1]
    table = pa.table(
        {
            "id": pa.array(np.arange(first_id, first_id + len(rows)), pa.int64()),
            "source": pa.array([r.source for r in rows], pa.string()),
            "position": pa.array([r.position for r in rows], pa.int32()),
            "start": pa.array([r.start for r in rows], pa.int64()),
            "end": pa.array([r.end for r in rows], pa.int64()),
            "chunk": pa.array([r.chunk for r in rows], pa.string()),
            "tokens": pa.array([r.tokens for r in rows], pa.int32()),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), d),
        }
    )
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))
