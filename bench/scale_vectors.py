"""One million real embeddings for the scale benchmark, made once and cached.

Embedding a million separate chunks with minilm takes ~9 hours on this 2-core machine, so the
million vectors are real model outputs made more cheaply: the texts at hand (tests/data and
gensim's test corpora) are cut into chunks of 128 tokens, each chunk runs through minilm once,
and every window of 8, 16 and 32 consecutive tokens (stride 2) is mean-pooled from that pass
and normalised: minilm's own pooling over a span of real text in its real context. The queries
are real sentence embeddings (`m.embed`) of STS-B sentences, none of them in the index. Torch
and the model are imported only to make the files, so that the ANN benchmark's processes read
the cached files with numpy and their libraries alone.

    .venv/bin/python bench/scale_vectors.py     # writes $CONTEXTLENS_HOME/bench/spans-1m.npy
"""

import csv
import os
from pathlib import Path

import gensim
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GENSIM = Path(gensim.__file__).parent / "test" / "test_data"
SOURCES = [
    *sorted((ROOT / "tests" / "data").rglob("*.*")),
    GENSIM / "lee_background.cor",
    GENSIM / "crime-and-punishment.txt",
]
WINDOWS = (8, 16, 32)
STRIDE = 2
N = 1_000_000
CACHE = Path(os.environ.get("CONTEXTLENS_HOME") or Path.home() / ".cache/contextlens") / "bench"


def span_means(hidden):
    """hidden `[n, d]` (one chunk's last layer) -> unit means of every window `[spans, d]`."""
    import torch

    total = torch.cat([torch.zeros(1, hidden.shape[1]), hidden.float().cumsum(0)])  # [n+1, d]
    spans = []
    for w in (w for w in WINDOWS if w <= hidden.shape[0]):
        starts = torch.arange(0, hidden.shape[0] - w + 1, STRIDE)
        spans.append((total[starts + w] - total[starts]) / w)
    return torch.nn.functional.normalize(torch.cat(spans), dim=-1)


def texts() -> list[str]:
    import contextlens as cl
    from contextlens.search.chunking import chunk_text

    m = cl.load("minilm")
    out = []
    for path in SOURCES:
        text = path.read_text(errors="replace")
        out += [c.text for c in chunk_text(text, m.tokenizer, 128, 0).chunks]
    return out


def make(n: int = N) -> np.ndarray:
    """`[n, 384]` float32 unit span embeddings (cached)."""
    path = CACHE / f"spans-{n}.npy"
    if path.exists():
        return np.load(path, mmap_mode="r")
    import contextlens as cl

    m = cl.load("minilm")
    chunks, parts, have = texts(), [], 0
    for start in range(0, len(chunks), 32):
        traces = m.trace(chunks[start : start + 32], attentions=False, layers=[6])
        for t in traces:
            parts.append(span_means(t.hidden_states[-1]).numpy())
            have += len(parts[-1])
        print(f"{have} span vectors from {start + 32} of {len(chunks)} chunks", flush=True)
        if have >= n:
            break
    if have < n:
        raise SystemExit(f"only {have} span vectors in the texts; lower n or add texts")
    vectors = np.concatenate(parts)[:n].astype(np.float32)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def queries(n: int = 1000) -> np.ndarray:
    """`[n, 384]` unit sentence embeddings of STS-B sentences (cached)."""
    path = CACHE / f"queries-{n}.npy"
    if path.exists():
        return np.load(path)
    import torch

    import contextlens as cl

    with open(ROOT / "tests" / "data" / "stsb-dev.csv", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    sentences = list(dict.fromkeys(s for r in rows for s in r[5:7]))[:n]
    unit = torch.nn.functional.normalize(cl.load("minilm").embed(sentences), dim=-1).numpy()
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, unit)
    return unit


if __name__ == "__main__":
    print(make().shape)
