"""Scale: embedding throughput with 1 and 2 Ray actors (and in this process); search over 1M
real embeddings: our exact scan against numpy's matrix-vector product, the ANN libraries
(recall@10 against exact, latency, memory, build time) and the index's HNSW path with dead rows
hidden; an index of 10M chunks built from an embedding job's shards (build, disk, memory, exact
queries cold and warm, adding a document).

    .venv/bin/python bench/scale_vectors.py                     # once: the 1M real vectors
    nice -n 10 .venv/bin/python bench/bench_scale.py --only=ann   # or exact, dead, 10m, throughput

Each ANN library runs in a process of its own that imports only numpy and the library (its
memory is measured alone, and no second OpenMP runtime competes with faiss's). A built index is
saved under $CONTEXTLENS_HOME/bench/ann/ with its build time, so a rerun only queries; delete
that folder to build again. What the million vectors are: see scale_vectors.py.
"""

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from scale_vectors import CACHE, N, make, queries

K = 10
ANN = CACHE / "ann"
TRUTH = CACHE / f"truth-{N}-{K}.npy"
CRANFIELD = Path(__file__).resolve().parents[1] / "tests" / "data" / "cranfield" / "cran.all.1400"
HNSW_M, HNSW_EF_CONSTRUCTION = 16, 100  # the usual settings; the graph's default in vectors.py
LATENCY_QUERIES = 200


def load() -> float:
    return os.getloadavg()[0]


def memory_gb() -> dict[str, float]:
    """This process's resident memory (GB): total, file-backed (mapped files, page cache that
    the kernel can drop) and anonymous (its own)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    kb = lambda name: int(fields[name].split()[0])  # noqa: E731
    return {k: kb(f"Rss{k.capitalize()}") / 1024**2 for k in ("file", "anon")} | {
        "rss": kb("VmRSS") / 1024**2
    }


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth, strict=True)]))


# ── the ANN libraries, each in its own process ──────────────────────────────────────────────


class Hnswlib:
    file = f"hnswlib-M{HNSW_M}-ef{HNSW_EF_CONSTRUCTION}.bin"
    label = f"hnswlib HNSW (M={HNSW_M}, ef_construction={HNSW_EF_CONSTRUCTION}) ef_search"
    settings = (64, 128, 256)

    def __init__(self, index, x):
        self.index = index

    @classmethod
    def build(cls, x):
        import hnswlib

        index = hnswlib.Index(space="ip", dim=x.shape[1])
        index.init_index(len(x), M=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION, random_seed=0)
        index.add_items(x, np.arange(len(x)), num_threads=2)
        return cls(index, x)

    @classmethod
    def load(cls, path, x):
        import hnswlib

        index = hnswlib.Index(space="ip", dim=x.shape[1])
        index.load_index(str(path))
        return cls(index, x)

    def save(self, path):
        self.index.save_index(str(path))

    def tune(self, ef):
        self.index.set_ef(ef)
        self.index.set_num_threads(1)

    def search(self, q):
        return self.index.knn_query(q, k=K)[0]


class Usearch:
    file = f"usearch-M{HNSW_M}-ef{HNSW_EF_CONSTRUCTION}.usearch"
    label = f"usearch HNSW (M={HNSW_M}, ef_construction={HNSW_EF_CONSTRUCTION}, f32) ef_search"
    settings = (64, 128, 256)

    def __init__(self, index, x):
        self.index = index

    @classmethod
    def build(cls, x):
        from usearch.index import Index

        index = Index(
            ndim=x.shape[1],
            metric="ip",
            dtype="f32",
            connectivity=HNSW_M,
            expansion_add=HNSW_EF_CONSTRUCTION,
        )
        for start in range(0, len(x), 100_000):
            block = np.ascontiguousarray(x[start : start + 100_000])
            index.add(np.arange(start, start + len(block)), block, threads=2)
        return cls(index, x)

    @classmethod
    def load(cls, path, x):
        from usearch.index import Index

        return cls(Index.restore(str(path)), x)

    def save(self, path):
        self.index.save(str(path))

    def tune(self, ef):
        self.index.expansion_search = ef

    def search(self, q):
        return np.atleast_2d(self.index.search(q, K, threads=1).keys)


class FaissIvf:
    """faiss IVF with `lists` k-means lists trained on 50k vectors; `settings` are (lists
    probed, candidates re-ranked exactly against the memory-mapped vectors, 0 for none)."""

    factory = ""

    def __init__(self, index, x):
        self.index, self.x, self.rerank = index, x, 0

    @classmethod
    def build(cls, x):
        import faiss

        faiss.omp_set_num_threads(2)
        index = faiss.index_factory(x.shape[1], cls.factory, faiss.METRIC_INNER_PRODUCT)
        index.train(x[np.sort(np.random.default_rng(0).choice(len(x), 50_000, replace=False))])
        for start in range(0, len(x), 100_000):
            index.add(np.ascontiguousarray(x[start : start + 100_000]))
        return cls(index, x)

    @classmethod
    def load(cls, path, x):
        import faiss

        return cls(faiss.read_index(str(path)), x)

    def save(self, path):
        import faiss

        faiss.write_index(self.index, str(path))

    def tune(self, setting):
        import faiss

        faiss.omp_set_num_threads(1)
        self.index.nprobe, self.rerank = setting

    def search(self, q):
        rows = self.index.search(q, self.rerank or K)[1]
        if not self.rerank:
            return rows
        exact = np.einsum("qkd,qd->qk", self.x[rows], q)
        return np.take_along_axis(rows, np.argsort(-exact, axis=1)[:, :K], axis=1)


class FaissIvfPq(FaissIvf):
    factory = "IVF1024,PQ48"
    file = "faiss-IVF1024-PQ48.faiss"
    label = "faiss IVF1024,PQ48 (nprobe, re-ranked)"
    settings = ((32, 0), (32, 100), (64, 100))


class FaissIvfFlat(FaissIvf):
    factory = "IVF1024,Flat"
    file = "faiss-IVF1024-Flat.faiss"
    label = "faiss IVF1024,Flat (nprobe)"
    settings = ((16, 0), (32, 0), (64, 0))


LIBRARIES = {  # fastest build first
    "faiss-ivfpq": FaissIvfPq,
    "faiss-ivfflat": FaissIvfFlat,
    "usearch": Usearch,
    "hnswlib": Hnswlib,
}


def build_or_load(library, x) -> tuple[object, dict]:
    """The library's index over `x` from its cache file, or built and saved (atomically) with
    its build time, load average and memory."""
    path = ANN / library.file
    facts = path.with_suffix(".json")
    before = memory_gb()["anon"]
    if path.exists() and facts.exists():
        return library.load(path, x), json.loads(facts.read_text())
    t0 = time.perf_counter()
    index = library.build(x)
    built = {"build_s": time.perf_counter() - t0, "build_load": load()}
    built["build_memory_gb"] = memory_gb()["anon"] - before
    ANN.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    index.save(tmp)
    tmp.replace(path)
    facts.write_text(json.dumps(built))
    return index, built


def ann_one(name: str) -> None:
    """Run in a child process: build or load one library's index over the 1M vectors, then
    print one JSON line: its facts and, per setting, recall@10 and one-query latency."""
    library = LIBRARIES[name]
    x, qs, truth = make(N), queries(), np.load(TRUTH)
    before = memory_gb()["anon"]
    index, facts = build_or_load(library, x)
    facts |= {"memory_gb": memory_gb()["anon"] - before, "label": library.label, "rows": []}
    for setting in library.settings:
        index.tune(setting)
        found = index.search(qs)
        times = []
        for q in qs[:LATENCY_QUERIES]:
            t0 = time.perf_counter()
            index.search(q[None])
            times.append(time.perf_counter() - t0)
        ms = statistics.median(times) * 1e3
        facts["rows"].append([setting, recall(found, truth), ms, load()])
        print(name, facts["rows"][-1], file=sys.stderr, flush=True)
    print(json.dumps(facts))


def ann() -> list[str]:
    """Every library at 1M, one child process each, one after the other."""
    import torch

    from contextlens.search.vectors import exact_top

    qs = queries()  # cached for the children
    if not TRUTH.exists():
        truth = exact_top(make(N), torch.from_numpy(qs), K)[1].numpy()
        np.save(TRUTH, truth)
    lines = [
        f"ANN over the {N:,} real vectors, recall@10 against the exact top 10 of 1000 STS-B "
        f"queries, latency = median of {LATENCY_QUERIES} single queries on 1 thread; built "
        "on 2 threads; memory = anonymous resident memory the index adds (the vectors' own "
        "1.54 GB file is mapped, not counted):",
        "",
        "| library | setting | recall@10 | ms/query | build s (load) | memory GB | load |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name in LIBRARIES:
        child = [sys.executable, __file__, f"--ann={name}"]
        out = subprocess.run(child, check=True, capture_output=True, text=True).stdout
        facts = json.loads(out.strip().splitlines()[-1])
        for setting, hits, ms, at in facts["rows"]:
            lines.append(
                f"| {facts['label']} | {setting} | {hits:.4f} | {ms:.2f} | "
                f"{facts['build_s']:.0f} ({facts['build_load']:.1f}) | "
                f"{facts['memory_gb']:.2f} | {at:.1f} |"
            )
        print(lines[-1], flush=True)
    return lines


def dead_rows() -> list[str]:
    """The index's HNSW path with dead rows (removed documents) hidden in the graph
    (`Hnsw.hide`, hnswlib's mark_deleted): recall@10 against the exact top 10 of the live rows
    and latency, as more of the 1M rows die (the dead sets nest, as they do in a shard). Uses
    the hnswlib graph of `--only=ann` (M=16), built first if missing."""
    import torch

    from contextlens.search.vectors import Hnsw, exact_top

    x, qs = make(N), queries()
    build_or_load(Hnswlib, x)
    graph = Hnsw.load(ANN / Hnswlib.file, x.shape[1], N)
    draw = np.random.default_rng(0).random(N)
    lines = [
        f"HNSW with dead rows hidden, over the {N:,} real vectors (hnswlib M={HNSW_M}, "
        f"ef_construction={HNSW_EF_CONSTRUCTION}, ef_search 256 as the index queries), "
        f"{len(qs)} STS-B queries; recall@10 against the exact top 10 of the live rows; "
        f"latency = median of {LATENCY_QUERIES} single queries:",
        "",
        "| dead rows | recall@10 | ms/query | load |",
        "|---:|---:|---:|---:|",
    ]
    for fraction in (0.0, 0.1, 0.3, 0.49):
        dead = draw < fraction
        graph.hide(dead)
        truth = exact_top(x, torch.from_numpy(qs), K, dead=torch.from_numpy(np.flatnonzero(dead)))
        found = graph.top(qs, K)[1]
        assert not dead[found].any()
        times = []
        for q in qs[:LATENCY_QUERIES]:
            t0 = time.perf_counter()
            graph.top(q[None], K)
            times.append(time.perf_counter() - t0)
        hits = recall(found, truth[1].numpy())
        ms = statistics.median(times) * 1e3
        lines.append(f"| {fraction:.0%} | {hits:.4f} | {ms:.2f} | {load():.1f} |")
        print(lines[-1], flush=True)
    return lines


# ── exact search, 1M in memory and 10M on disk ──────────────────────────────────────────────


def exact() -> list[str]:
    """Our exact scan against numpy's `x @ q` + argpartition over the 1M vectors: `exact_top`
    on the matrix, and the index's path (`top` over the vectors as one shard with 1% of its rows
    dead, masked)."""
    import torch
    from common import timeit

    from contextlens.search.vectors import Part, exact_top, top

    x = np.ascontiguousarray(make(N))
    live = np.random.default_rng(0).random(N) >= 0.01
    one = queries()[:20]
    ours = timeit(lambda: [exact_top(x, torch.from_numpy(q)[None], K) for q in one], 2) / 20
    sharded = timeit(lambda: [top([Part(1, x, live)], torch.from_numpy(q)[None], K)
                              for q in one], 2) / 20  # fmt: skip
    numpy = timeit(lambda: [np.argpartition(-(x @ q), K)[:K] for q in one], 2) / 20
    return [
        f"Exact search over {N:,} real vectors (d=384, float32, {x.nbytes / 1e9:.2f} GB), one "
        f"query at a time, median of 2 runs of 20 queries: `exact_top` {ours * 1e3:.1f} ms, the "
        f"index's masked shard scan (`top`, 1% of rows dead) {sharded * 1e3:.1f} ms, numpy "
        f"`x @ q` + argpartition {numpy * 1e3:.1f} ms: ours/numpy time {ours / numpy:.2f} and "
        f"{sharded / numpy:.2f} (load {load():.1f})."
    ]


def noisy_copies(copies: int, sigma: float = 0.005):
    """(ids, unit vectors) blocks: the 1M real vectors, then `copies - 1` copies of them, each
    coordinate moved by N(0, sigma²) and normalised again (cosine to the original ~0.995)."""
    x, rng, rows = make(N), np.random.default_rng(0), 1 << 16
    for copy in range(copies):
        for start in range(0, N, rows):
            block = np.array(x[start : start + rows])
            if copy:
                block += rng.normal(0, sigma, block.shape).astype(np.float32)
                block /= np.linalg.norm(block, axis=1, keepdims=True)
            yield np.arange(copy * N + start, copy * N + start + len(block)), block


JOB_ROWS = 1 << 18  # rows per Parquet shard of the 10M job
DOC_CHUNKS = 100  # chunks per synthetic document


def write_job(out: Path, copies: int) -> str:
    """An `embed --out` job folder holding the `copies`×1M vectors as chunks of documents of
    100 chunks each (short synthetic texts, 8 tokens), written like `embed_corpus` writes one;
    skipped when already complete. Returns what it took."""
    from contextlens.search.corpus import Row, shard_name, write_manifest, write_shard

    settings = {"model": "minilm", "weights": "exact", "dim": 384, "chunk_tokens": 200,
                "overlap": 32, "shard_rows": JOB_ROWS}  # fmt: skip
    manifest = out / "manifest.json"
    if manifest.exists() and json.loads(manifest.read_text())["complete"]:
        return "already written"
    out.mkdir(parents=True, exist_ok=True)
    t0, done, first = time.perf_counter(), {}, 0
    buffer = np.zeros((0, 384), np.float32)

    def flush(vectors: np.ndarray) -> None:
        rows = [
            Row(f"/bench/doc{i // DOC_CHUNKS:06d}.txt", i % DOC_CHUNKS, 0, 20, f"span {i}", 8)
            for i in range(first, first + len(vectors))
        ]
        write_shard(out / shard_name(len(done)), first, rows, vectors)
        done[shard_name(len(done))] = "written by bench_scale.py"
        write_manifest(out, settings, done, complete=False)
        print(f"job shard {len(done)}: {first + len(rows):,} rows (load {load():.1f})", flush=True)

    for _, block in noisy_copies(copies):
        buffer = np.concatenate([buffer, block])
        if len(buffer) >= JOB_ROWS:
            flush(buffer[:JOB_ROWS])
            first, buffer = first + JOB_ROWS, buffer[JOB_ROWS:]
    if len(buffer):
        flush(buffer)
    write_manifest(out, settings, done, complete=True)
    return f"written in {time.perf_counter() - t0:.0f} s at load {load():.1f}"


def written_bytes() -> int:
    """Bytes this process has caused to be written to storage so far."""
    io = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return int(io["write_bytes"])


def folder_gb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) / 1e9


def ten_million(copies: int = int(os.environ.get("COPIES", 10))) -> list[str]:
    """An index of `copies`×1M chunks built from an embedding job's shards (`build_from_shards`,
    nothing embedded again), then: its exact (or ANN, per the index's rule) search cold and
    warm, this process's memory, and adding one small document (time, bytes written). The job
    and the index are deleted at the end (set KEEP_10M=1 to keep them; COPIES=1 gives a quick
    1M-chunk trial of the same steps)."""
    import shutil
    import tempfile

    import contextlens as cl
    from contextlens.io.retrieval import read_queries
    from contextlens.search import Index
    from contextlens.search.vectors import exact_top

    job, folder = CACHE / f"job-{copies}m", CACHE / f"index-{copies}m"
    wrote = write_job(job, copies)
    m = cl.load("minilm")
    ix = Index.create(folder, m)
    t0, before_peak = time.perf_counter(), memory_gb()
    report = ix.build_from_shards(job)
    built = time.perf_counter() - t0
    peak = int(Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0]) / 1024**2
    info = ix.details()
    lines = [
        f"Index of {info.chunks:,} chunks ({info.documents:,} documents) from the Parquet shards "
        f"of an embedding job ({folder_gb(job):.1f} GB, {wrote}): `build_from_shards` "
        f"{built:.0f} s at load {load():.1f} ({report.embedded:,} documents staged), peak "
        f"resident memory {peak:.2f} GB (before: {before_peak['rss']:.2f}); on disk "
        f"{info.bytes / 1e9:.1f} GB in {info.shards} shards + database; default dense search: "
        f"{info.search}."
    ]
    print(lines[-1], flush=True)
    ix.close()
    texts = [" ".join(t.split()) for t in read_queries(CRANFIELD.with_name("cran.qry")).values()]
    texts = texts[:6]
    ix = Index.open(folder)
    before = memory_gb()
    times = []
    for text in texts:
        t0 = time.perf_counter()
        hits = ix.search(text, k=K, mode="dense", model=m)
        times.append(time.perf_counter() - t0)
    after = memory_gb()
    q = torch_unit(m, texts[-1:])
    assert hits[0].score >= exact_top(make(N), q, 1)[0].item() - 1e-5  # the real rows are in it
    lines.append(
        f"Dense search, one text query at a time (embedding included), k=10: "
        f"{', '.join(f'{t:.2f}' for t in times)} s for {len(texts)} queries, the first cold "
        f"after the build (load {load():.1f}). Resident memory before → after: RSS "
        f"{before['rss']:.2f} → {after['rss']:.2f} GB, of which file-backed (the mapped shards' "
        f"pages) {before['file']:.2f} → {after['file']:.2f} GB and anonymous (the process's own) "
        f"{before['anon']:.2f} → {after['anon']:.2f} GB."
    )
    print(lines[-1], flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        note = Path(tmp) / "note.txt"
        note.write_text("The spare key to the garden shed is under the blue flower pot.")
        t0, wrote0, size0 = time.perf_counter(), written_bytes(), folder_gb(folder)
        added = ix.add([note], m)
        seconds, wrote1 = time.perf_counter() - t0, written_bytes()
    hit = ix.search("where is the key to the shed", k=1, mode="dense", model=m)[0]
    assert hit.document == str(note), hit
    lines.append(
        f"Adding one small document ({added.chunks} chunk) to it: {seconds:.2f} s (model "
        f"loaded; load {load():.1f}), {(wrote1 - wrote0) / 1e6:.1f} MB written by the process "
        f"(its shard, the database's pages and WAL, the live mask), index on disk "
        f"{size0:.2f} → {folder_gb(folder):.2f} GB; the next query finds it first."
    )
    print(lines[-1], flush=True)
    ix.close()
    if not os.environ.get("KEEP_10M"):
        shutil.rmtree(job)
        shutil.rmtree(folder)
        lines.append("The job and the index were deleted after the run.")
    return lines


def torch_unit(m, texts: list[str]):
    import torch

    return torch.nn.functional.normalize(m.embed(texts), dim=-1)


# ── embedding throughput ────────────────────────────────────────────────────────────────────


def throughput() -> list[str]:
    """chunks/s of `embed_corpus` on the Cranfield collection (one SMART file of 1,400
    abstracts): in this process, with 1 and with 2 Ray actors."""
    import tempfile

    import ray

    import contextlens as cl
    from contextlens.search import Engine, embed_corpus

    m = cl.load("minilm")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024**2,
             log_to_driver=False, logging_level="ERROR")  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, engine in [("this process (2 threads)", Engine()),
                              ("Ray, 1 actor (1 CPU)", Engine("ray", actors=1)),
                              ("Ray, 2 actors (1 CPU each)", Engine("ray", actors=2))]:  # fmt: skip
            t0 = time.perf_counter()
            report = embed_corpus([CRANFIELD], Path(tmp) / label, m, engine, shard_rows=256)
            seconds = time.perf_counter() - t0
            rows.append((label, report.chunks, seconds, load()))
            print(rows[-1], flush=True)
    ray.shutdown()
    base = rows[1][1] / rows[1][2]
    return [
        f"`embed_corpus` of the Cranfield collection ({rows[0][1]} chunks, minilm, batch 32), "
        "model load and Ray start-up included:",
        "",
        "| engine | chunks | seconds | chunks/s | vs 1 actor | load average at the end |",
        "|---|---:|---:|---:|---:|---:|",
        *[
            f"| {label} | {n} | {s:.0f} | {n / s:.1f} | {n / s / base:.2f} | {at:.1f} |"
            for label, n, s, at in rows
        ],  # fmt: skip
    ]


def main(parts: set[str]) -> None:
    from common import machine, matmul_ceiling

    start = os.getloadavg()
    ceiling = matmul_ceiling()
    lines = [
        f"Machine: {machine()}; fp32 matmul ceiling torch {ceiling['torch_gflops']:.0f} / numpy "
        f"{ceiling['numpy_gflops']:.0f} GFLOP/s; load average at the start "
        f"{start[0]:.1f} / {start[1]:.1f} / {start[2]:.1f} (shared with other engineers' jobs)."
    ]
    print(lines[0], flush=True)
    for part, run in [("exact", exact), ("ann", ann), ("dead", dead_rows), ("10m", ten_million),
                      ("throughput", throughput)]:  # fmt: skip
        if part in parts:
            lines += ["", *run()]
    print("\n".join(lines))  # pasted into the "scale" section of RESULTS.md


if __name__ == "__main__":
    options = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
    if "ann" in options:
        ann_one(options["ann"])
    else:
        parts = set(options["only"].split(",")) if "only" in options else {"exact", "ann"}
        main(parts)
