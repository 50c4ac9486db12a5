"""Semantic textual similarity: does the cosine of two sentence embeddings track human scores?"""

import csv
from pathlib import Path

from scipy.stats import pearsonr, spearmanr

from ..errors import ContextlensError
from ..metrics import cosine


def read_sts(path: Path) -> list[tuple[float, str, str]]:
    """STS Benchmark rows (tab-separated, no header, no quoting): fields 5–7 are score, s1, s2."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    except FileNotFoundError:
        raise ContextlensError(f"{path} does not exist; give an STS Benchmark file") from None
    except UnicodeDecodeError as e:
        raise ContextlensError(f"{path} is not UTF-8 text ({e.reason})") from None
    pairs = []
    for n, row in enumerate(rows, start=1):
        if not row:
            continue
        try:
            pairs.append((float(row[4]), row[5], row[6]))
        except (IndexError, ValueError):
            raise ContextlensError(
                f"{path}:{n}: expected 7 tab-separated fields with a numeric score in field 5 "
                "(STS Benchmark format)"
            ) from None
    if len(pairs) < 3:
        raise ContextlensError(f"{path} has {len(pairs)} pairs; a correlation needs at least 3")
    return pairs


def evaluate_sts(model, path: Path, batch_size: int = 64) -> dict:
    """Spearman and Pearson correlation of cosine(embed(s1), embed(s2)) with the human scores."""
    pairs = read_sts(Path(path))
    gold = [p[0] for p in pairs]
    a = model.embed([p[1] for p in pairs], batch_size=batch_size, truncate=True)
    b = model.embed([p[2] for p in pairs], batch_size=batch_size, truncate=True)
    cos = cosine(a, b).tolist()
    return {
        "pairs": len(pairs),
        "spearman": float(spearmanr(cos, gold).statistic),
        "pearson": float(pearsonr(cos, gold).statistic),
    }
