"""Retrieval evaluation: recall@k, MRR@10 and nDCG@10 of dense, BM25 and hybrid search, the
ANN's agreement with the exact scan, and queries per second.

Documents are ranked by their best chunk. A document is matched to the qrels by its `id`
metadata (jsonl and SMART records) or else its name.
"""

import math
import time

from ..errors import ContextlensError
from .index import Index, RetrievalReport


def recall(ranked: list[str], relevant: dict[str, float], k: int) -> float:
    return len(set(ranked[:k]) & relevant.keys()) / len(relevant)


def mrr(ranked: list[str], relevant: dict[str, float], k: int = 10) -> float:
    return next((1.0 / r for r, d in enumerate(ranked[:k], start=1) if d in relevant), 0.0)


def ndcg(ranked: list[str], relevant: dict[str, float], k: int = 10) -> float:
    """Normalised discounted cumulative gain: Σ gain / log2(rank + 1), over the ideal order's."""
    dcg = sum(relevant.get(d, 0.0) / math.log2(r + 1) for r, d in enumerate(ranked[:k], start=1))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    return dcg / sum(g / math.log2(r + 1) for r, g in enumerate(ideal, start=1))


def judged(queries: dict[str, str], qrels: dict[str, dict[str, float]]) -> dict[str, str]:
    """The queries that have relevance judgements (id -> text); an error if there are none."""
    out = {q: t for q, t in queries.items() if q in qrels}
    if not out:
        raise ContextlensError(
            f"no query has relevance judgements: query ids {_some(queries)}, judged ids "
            f"{_some(qrels)}; give --queries and --qrels that number queries the same way"
        )
    return out


def _some(ids) -> str:
    ids = list(ids)
    return ", ".join(ids[:3]) + (", …" if len(ids) > 3 else "")


def documents_of(hits) -> list[str]:
    """Document ids in the order of their best chunk."""
    return list(dict.fromkeys(h.metadata.get("id", h.document) for h in hits))


def evaluate(
    index: Index,
    model,
    queries: dict[str, str],
    qrels: dict[str, dict[str, float]],
    depth: int = 100,
    modes: tuple[str, ...] = ("dense", "bm25", "hybrid"),
) -> RetrievalReport:
    """Mean metrics per mode over the queries that have judgements, plus exact-vs-ANN recall@10
    (when the HNSW graphs fit the ANN memory budget) and each mode's queries per second (one
    query at a time, embedding included)."""
    judged_queries = judged(queries, qrels)
    chunks = 3 * depth  # documents may have several chunks
    scores: dict[str, dict[str, float]] = {}
    exact_top10: dict[str, list[int]] = {}
    for mode in modes:
        sums = {"recall@10": 0.0, f"recall@{depth}": 0.0, "mrr@10": 0.0, "ndcg@10": 0.0}
        t0 = time.perf_counter()
        for qid, text in judged_queries.items():
            hits = index.search(text, k=chunks, mode=mode, model=model, ann=False)
            if mode == "dense":
                exact_top10[qid] = [h.chunk_id for h in hits[:10]]
            ranked, rel = documents_of(hits), qrels[qid]
            sums["recall@10"] += recall(ranked, rel, 10)
            sums[f"recall@{depth}"] += recall(ranked, rel, depth)
            sums["mrr@10"] += mrr(ranked, rel)
            sums["ndcg@10"] += ndcg(ranked, rel)
        seconds = time.perf_counter() - t0
        scores[mode] = {m: s / len(judged_queries) for m, s in sums.items()}
        scores[mode]["qps"] = len(judged_queries) / seconds
    agreement = None
    if exact_top10 and index.graphs_fit():
        t0 = time.perf_counter()
        agree = 0.0
        for qid, text in judged_queries.items():
            hits = index.search(text, k=10, mode="dense", model=model, ann=True)
            ann = {h.chunk_id for h in hits}
            agree += len(ann & set(exact_top10[qid])) / max(len(exact_top10[qid]), 1)
        agreement = {
            "recall@10_vs_exact": agree / len(judged_queries),
            "qps": len(judged_queries) / (time.perf_counter() - t0),
        }
    return RetrievalReport(index.path.name, len(judged_queries), depth, scores, agreement)
