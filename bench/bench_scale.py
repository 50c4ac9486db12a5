"""Scale: embedding throughput with 1 and 2 Ray actors (and in this process), and search over
1M real embeddings: our exact block scan against numpy's matrix-vector product, and the ANN
libraries (recall@10 against exact, QPS, memory, build time).

    .venv/bin/python bench/scale_vectors.py          # once: the 1M real span embeddings (cached)
    .venv/bin/python bench/bench_scale.py            # prints the "scale" section of RESULTS.md
    .venv/bin/python bench/bench_scale.py --small    # 100k vectors, a quick check that it runs
    .venv/bin/python bench/bench_scale.py --only=throughput    # or --only=search
    .venv/bin/python bench/bench_scale.py --hnsw-n=200000      # HNSW graphs on the first 200k

What the million vectors are: see scale_vectors.py (minilm span embeddings of real text).
"""

import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import gensim
import numpy as np
import ray
import torch
from common import machine, matmul_ceiling, timeit
from scale_vectors import make, queries

import contextlens as cl
from contextlens.search import Engine, embed_corpus
from contextlens.search.vectors import HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH, HNSW_M, exact_top

LEE = Path(gensim.__file__).parent / "test" / "test_data" / "lee_background.cor"
K = 10


def throughput(n_docs: int) -> list[str]:
    """chunks/s of `embed_corpus` on the Lee articles: in this process, 1 and 2 Ray actors."""
    m = cl.load("minilm")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024**2,
             log_to_driver=False, logging_level="ERROR")  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "docs"
        folder.mkdir()
        for i, line in enumerate(LEE.read_text().splitlines()[:n_docs]):
            (folder / f"lee{i:03d}.txt").write_text(line)
        for label, engine in [("this process (2 threads)", Engine()),
                              ("Ray, 1 actor (1 CPU)", Engine("ray", actors=1)),
                              ("Ray, 2 actors (1 CPU each)", Engine("ray", actors=2))]:  # fmt: skip
            t0 = time.perf_counter()
            report = embed_corpus([folder], Path(tmp) / label, m, engine, shard_rows=256)
            seconds = time.perf_counter() - t0
            rows.append((label, report.chunks, seconds, os.getloadavg()[0]))
            print(rows[-1], flush=True)
    ray.shutdown()
    base = rows[1][1] / rows[1][2]
    return [
        f"`embed_corpus` of {n_docs} Lee articles ({rows[0][1]} chunks ≤ 200 tokens, minilm, "
        "batch 32), model load and Ray start-up included:",
        "",
        "| engine | chunks/s | vs 1 actor | load average at the end |",
        "|---|---:|---:|---:|",
        *[
            f"| {label} | {n / s:.1f} | {n / s / base:.2f} | {load:.1f} |"
            for label, n, s, load in rows
        ],  # fmt: skip
    ]


def rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth, strict=True)]))


def search(n: int, hnsw_n: int) -> list[str]:
    """Exact (ours vs numpy) over `n` vectors; the ANN libraries, HNSW ones over the first
    `hnsw_n` (a 1M graph takes most of an hour to build on this busy machine)."""
    x = np.ascontiguousarray(make(n) if n == 1_000_000 else make()[:n])
    qs = queries()
    one = qs[:20]
    ours = timeit(lambda: [exact_top(x, torch.from_numpy(q)[None], K) for q in one], 2) / 20
    numpy = timeit(lambda: [np.argpartition(-(x @ q), K)[:K] for q in one], 2) / 20
    lines = [
        f"Exact search over {n:,} real vectors (d=384, float32, {x.nbytes / 1e9:.2f} GB), one "
        f"query at a time: ours {ours * 1e3:.1f} ms, numpy `x @ q` + argpartition "
        f"{numpy * 1e3:.1f} ms: ours/numpy time {ours / numpy:.2f}.",
        "",
        "| library (settings) | vectors | build s | memory GB | QPS (1 thread) | recall@10 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    print(lines[0], flush=True)
    for name, (build, graph) in LIBRARIES.items():
        rows = x[:hnsw_n] if graph else x
        truth = exact_top(rows, torch.from_numpy(qs), K)[1].numpy()
        before = rss_gb()
        t0 = time.perf_counter()
        index = build(rows)
        built = time.perf_counter() - t0
        memory = max(rss_gb() - before, index.memory / 1e9)
        found = index.search(qs)
        qps = len(one) / timeit(lambda index=index: [index.search(q[None]) for q in one], 3)
        lines.append(f"| {name} | {len(rows):,} | {built:.0f} | {memory:.2f} | {qps:.0f} | "
                     f"{recall(found, truth):.4f} |")  # fmt: skip
        print(lines[-1], os.getloadavg(), flush=True)
        del index
    return lines


class Hnswlib:
    def __init__(self, x):
        import hnswlib

        self.index = hnswlib.Index(space="ip", dim=x.shape[1])
        self.index.init_index(len(x), M=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION, random_seed=0)
        self.index.add_items(x, num_threads=2)
        self.index.set_ef(HNSW_EF_SEARCH)
        self.index.set_num_threads(1)
        self.memory = len(x) * (x.shape[1] * 4 + HNSW_M * 2 * 4 + 16)

    def search(self, q):
        return self.index.knn_query(q, k=K)[0]


class Usearch:
    def __init__(self, x):
        from usearch.index import Index

        settings = {"connectivity": HNSW_M, "expansion_add": HNSW_EF_CONSTRUCTION}
        self.index = Index(ndim=x.shape[1], metric="ip", dtype="f32", **settings)
        self.index.expansion_search = HNSW_EF_SEARCH
        self.index.add(np.arange(len(x)), x, threads=2)
        self.memory = self.index.memory_usage

    def search(self, q):
        return np.atleast_2d(self.index.search(q, K, threads=1).keys)


class FaissIvfPq:
    """IVF with 1024 lists (k-means on 50k vectors), PQ 48×8 bits, 32 lists probed, the 100 best
    re-ranked exactly."""

    def __init__(self, x):
        import faiss

        faiss.omp_set_num_threads(2)
        self.x = x
        ivf = faiss.index_factory(x.shape[1], "IVF1024,PQ48", faiss.METRIC_INNER_PRODUCT)
        ivf.train(x[np.random.default_rng(0).choice(len(x), 50_000, replace=False)])
        ivf.add(x)
        ivf.nprobe = 32
        self.index = ivf
        self.memory = len(x) * (48 + 8)
        faiss.omp_set_num_threads(1)

    def search(self, q):
        _, rows = self.index.search(q, 100)
        exact = np.einsum("qkd,qd->qk", self.x[rows], q)
        return np.take_along_axis(rows, np.argsort(-exact, axis=1)[:, :K], axis=1)


LIBRARIES = {  # (class, whether it is a graph: built on the first hnsw_n), fastest build first
    "faiss IVF1024,PQ48, nprobe 32, re-rank 100 exact": (FaissIvfPq, False),
    f"usearch HNSW (M={HNSW_M}, ef_construction={HNSW_EF_CONSTRUCTION}, ef={HNSW_EF_SEARCH})": (
        Usearch,
        True,
    ),
    "hnswlib HNSW (the same settings; what contextlens uses)": (Hnswlib, True),
}


def main(small: bool, parts: set[str], hnsw_n: int) -> None:
    load = os.getloadavg()
    ceiling = matmul_ceiling()
    lines = [
        f"Machine: {machine()}; fp32 matmul ceiling torch {ceiling['torch_gflops']:.0f} / numpy "
        f"{ceiling['numpy_gflops']:.0f} GFLOP/s; load average at the start {load[0]:.1f} "
        "(shared with other engineers' jobs: figures are noisy and slower than on a quiet "
        "machine). Command: `.venv/bin/python bench/bench_scale.py`.",
    ]
    if "throughput" in parts:
        lines += ["", *throughput(20 if small else 40)]
    if "search" in parts:
        lines += ["", *search(100_000 if small else 1_000_000, hnsw_n)]
    print("\n".join(lines))  # pasted into the "scale" section of RESULTS.md


if __name__ == "__main__":
    only = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--only=")]
    graphs = [int(a.split("=", 1)[1]) for a in sys.argv if a.startswith("--hnsw-n=")]
    main("--small" in sys.argv, set(only) or {"throughput", "search"}, (graphs or [1_000_000])[0])
