"""Semantic textual similarity: does the cosine of two sentence embeddings track human scores?"""

import csv
import io
import math
from pathlib import Path

from scipy.stats import pearsonr, spearmanr

from ..errors import ContextlensError, read_text
from ..metrics import cosine

Pair = tuple[float, str, str]  # human score, sentence 1, sentence 2


def read_sts(path: str | Path) -> list[Pair]:
    """STS Benchmark rows (tab-separated, no header, no quoting): fields 5–7 are score, s1, s2."""
    text = read_text(path, "an STS Benchmark file (e.g. tests/data/stsb-dev.csv)")
    rows = csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
    pairs = [_pair(row, f"{path}:{n}") for n, row in enumerate(rows, start=1) if row]
    if len(pairs) < 3:
        raise ContextlensError(f"{path} has {len(pairs)} pairs; a correlation needs at least 3")
    if len({score for score, _, _ in pairs}) < 2:
        raise ContextlensError(
            f"{path}: all pairs have the same score; a correlation needs varied scores"
        )
    return pairs


def _pair(row: list[str], where: str) -> Pair:
    """One row as (score, s1, s2), or an error naming the line and what is wrong with it."""
    if len(row) < 7:
        raise ContextlensError(
            f"{where}: {len(row)} tab-separated fields, expected 7 (genre, file, year, id, "
            "score, sentence 1, sentence 2: STS Benchmark format)"
        )
    try:
        score = float(row[4])
    except ValueError:
        score = math.nan
    if not math.isfinite(score):
        raise ContextlensError(f"{where}: the score (field 5) is {row[4]!r}, not a number")
    for field in (5, 6):
        if not row[field].strip():
            raise ContextlensError(f"{where}: sentence {field - 4} (field {field + 1}) is empty")
    return score, row[5], row[6]


def evaluate_sts(model, data: str | Path | list[Pair], batch_size: int = 64) -> dict:
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
