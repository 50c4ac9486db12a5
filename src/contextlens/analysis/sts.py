"""Semantic textual similarity: does the cosine of two sentence embeddings track human scores?"""

from pathlib import Path

from scipy.stats import pearsonr, spearmanr

from ..io.benchmarks import StsPair, read_sts
from ..metrics import cosine


def evaluate_sts(model, data: str | Path | list[StsPair], batch_size: int = 64) -> dict:
    """Spearman and Pearson correlation of cosine(embed(s1), embed(s2)) with the human scores.

    `data` is an STS Benchmark file or its pairs (`read_sts`). Sentences over the model's limit
    are cut to it, with a `Truncated` warning.
    """
    pairs = data if isinstance(data, list) else read_sts(data)
    gold = [p[0] for p in pairs]
    a = model.embed([p[1] for p in pairs], batch_size=batch_size, truncate=True)
    b = model.embed([p[2] for p in pairs], batch_size=batch_size, truncate=True)
    cos = cosine(a, b).tolist()
    return {
        "pairs": len(pairs),
        "spearman": float(spearmanr(cos, gold).statistic),
        "pearson": float(pearsonr(cos, gold).statistic),
    }
