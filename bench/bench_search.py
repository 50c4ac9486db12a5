"""Search: ingestion throughput vs sentence-transformers, and query latency of the exact and ANN
paths vs numpy / hnswlib used directly, at 10k, 100k and 1M vectors.

    .venv/bin/python bench/bench_search.py            # real sizes (about 4 minutes on 2 cores)
    .venv/bin/python bench/bench_search.py --ann-1m   # also build the 1M-vector HNSW graph (slow)
    .venv/bin/python bench/bench_search.py --small    # a quick check that it runs

Ingestion: `Index.build` on the 300 Lee news articles (read, chunk, embed, SQLite commit, snapshot)
against `SentenceTransformer.encode` of the same chunk texts. Queries: random unit vectors of
d=384 (the hard case for a graph index); ours is the function `Index.search` calls.
"""

import sys
import tempfile
import time
from pathlib import Path

import gensim
import numpy as np
import torch
from common import machine, timeit, write_section

import contextlens as cl
from contextlens.search import Index
from contextlens.search.vectors import HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH, HNSW_M, Hnsw, exact_top

LEE = Path(gensim.__file__).parent / "test" / "test_data" / "lee_background.cor"
D = 384


def ingestion(n_docs: int) -> list[str]:
    from sentence_transformers import SentenceTransformer

    m = cl.load("minilm")
    st = SentenceTransformer(str(cl.io.catalog.CATALOG["minilm"].path()), device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "docs"
        folder.mkdir()
        for i, line in enumerate(LEE.read_text().splitlines()[:n_docs]):
            (folder / f"lee{i:03d}.txt").write_text(line)
        ix = Index.create(Path(tmp) / "index", m)
        t0 = time.perf_counter()
        report = ix.build([folder], m)
        ours = time.perf_counter() - t0
        texts = ix.store.live_texts()
        theirs = timeit(lambda: st.encode(texts, batch_size=32), repeat=1, warmup=0)
        embed_only = timeit(lambda: m.embed(texts, batch_size=32), repeat=1, warmup=0)
        ix.close()
    n = report.chunks
    return [
        f"Ingestion of {n_docs} Lee articles = {n} chunks (≤ 200 tokens), minilm, batch 32:",
        "",
        "| | chunks/s | ours / theirs |",
        "|---|---:|---:|",
        f"| `index build` (read, chunk, embed, SQLite, snapshot) | {n / ours:.1f} "
        f"| {theirs / ours:.2f} |",
        f"| `m.embed` of the same chunks | {n / embed_only:.1f} | {theirs / embed_only:.2f} |",
        f"| sentence-transformers `encode` | {n / theirs:.1f} | 1 |",
    ]


def unit(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, D), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def numpy_top(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    scores = x @ q
    part = np.argpartition(-scores, k)[:k]
    return part[np.argsort(-scores[part])]


def queries_at(n: int, build_ann: bool) -> list[str]:
    x = unit(n, 0)
    qs = unit(50 if n < 1_000_000 else 10, 1)
    xt = torch.from_numpy(x)
    exact_ours = timeit(lambda: [exact_top(xt, torch.from_numpy(q)[None], 10) for q in qs], 3)
    exact_raw = timeit(lambda: [numpy_top(x, q, 10) for q in qs], 3)
    per = len(qs)
    rows = [
        f"| {n:,} | exact | {exact_ours / per * 1e3:.2f} | {per / exact_ours:.0f} "
        f"| {exact_raw / per * 1e3:.2f} (numpy) | {exact_ours / exact_raw:.2f} | 1 | |"
    ]
    if build_ann:
        t0 = time.perf_counter()
        ours = Hnsw.build(x)
        build = time.perf_counter() - t0
        raw = ours.index  # the same hnswlib graph, queried directly
        raw.set_ef(HNSW_EF_SEARCH)
        ann_ours = timeit(lambda: [ours.top(q[None], 10) for q in qs], 3)
        ann_raw = timeit(lambda: [raw.knn_query(q[None], k=10) for q in qs], 3)
        truth = exact_top(xt, torch.from_numpy(qs), 10)[1].numpy()
        found = ours.top(qs, 10)[1]
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth, found, strict=True)])
        rows.append(
            f"| {n:,} | HNSW | {ann_ours / per * 1e3:.3f} | {per / ann_ours:.0f} "
            f"| {ann_raw / per * 1e3:.3f} (hnswlib) | {ann_ours / ann_raw:.2f} | {recall:.3f} "
            f"| {build:.0f} s |"
        )
    return rows


def main() -> None:
    small = "--small" in sys.argv
    sizes = [2_000, 10_000] if small else [10_000, 100_000, 1_000_000]
    lines = [
        "## Search: ingestion and queries",
        "",
        f"Machine: {machine()}. Command: `.venv/bin/python bench/bench_search.py"
        f"{' --small' if small else ''}`.",
        "",
        *ingestion(40 if small else 300),
        "",
        f"Top-10 query latency, one query at a time, random unit vectors d={D}; HNSW with "
        f"hnswlib M={HNSW_M}, ef_construction={HNSW_EF_CONSTRUCTION}, ef={HNSW_EF_SEARCH} "
        "(recall@10 vs exact):",
        "",
        "| vectors | path | ours ms/query | ours QPS | raw ms/query | ours / raw | recall@10 "
        "| build |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for n in sizes:
        build_ann = n < 1_000_000 or "--ann-1m" in sys.argv
        lines += queries_at(n, build_ann)
        print(lines[-1], flush=True)
    if not small and "--ann-1m" not in sys.argv:
        lines += [
            "",
            "The 1M-vector HNSW graph is built only with `--ann-1m` (≈20 min on 2 cores).",
        ]
    write_section("search", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
