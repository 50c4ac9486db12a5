"""Watching word vectors being learned: a training run's checkpoints as a report (the cosine of
tracked pairs over time, each tracked word's neighbours, a 2-D map of the tracked words at each
checkpoint) and as a picture.

At the random start every cosine is near 0 and every neighbour list is noise; as training
reads the corpus, words that share contexts ("king" and "queen" both sit next to "the", "of",
"crowned") are pushed the same way, so their cosine climbs and the map's clusters form.
"""

from dataclasses import dataclass
from pathlib import Path

import torch

from ..word2vec import Training
from .context import project_2d
from .plots import plt, save

MAP_PANELS = 4  # checkpoints drawn as maps in the picture: the start, the end, and between
SAMPLE_WORDS = 200  # vocabulary words a report lists, most frequent first


@dataclass
class PairCurve:
    """The cosine of two tracked words at each checkpoint."""

    a: str
    b: str
    cosines: list[float]


@dataclass
class WordNeighbours:
    """A tracked word's nearest words (word, cosine) at each checkpoint."""

    word: str
    neighbours: list[list[tuple[str, float]]]


@dataclass
class Learning:
    """A training run and what it learned, checkpoint by checkpoint.

    progress: share of training done at each checkpoint (0 = random start); words: corpus
    words read by then; loss: mean loss per pair since the previous checkpoint (None at the
    start); maps: per checkpoint, the tracked words in 2-D `[c, w, 2]` (PCA of that
    checkpoint's vectors, rotated to line up with the last map so that the words can be
    followed from panel to panel); words_sample: the vocabulary's SAMPLE_WORDS most frequent
    words (words to try tracking next).
    """

    mode: str
    corpus_words: int
    vocabulary: int
    dim: int
    epochs: int
    seconds: float
    words_per_second: float
    out: str | None
    progress: list[float]
    words: list[int]
    loss: list[float | None]
    pairs: list[PairCurve]
    tracked: list[WordNeighbours]
    labels: list[str]
    maps: torch.Tensor
    words_sample: list[str]


def learning(run: Training, out: str | Path | None = None) -> Learning:
    """The report of a finished run (`train_word2vec(..., track=…)`)."""
    points = run.checkpoints
    maps = _aligned([c.vectors for c in points]) if points else torch.zeros(0, 0, 2)
    return Learning(
        mode=run.settings.mode,
        corpus_words=run.corpus_words,
        vocabulary=len(run.vectors),
        dim=run.vectors.dim,
        epochs=run.settings.epochs,
        seconds=round(run.seconds, 3),
        words_per_second=round(run.words_per_second),
        out=str(out) if out else None,
        progress=[round(c.progress, 4) for c in points],
        words=[c.words for c in points],
        loss=[None if c.loss is None else round(c.loss, 4) for c in points],
        pairs=[
            PairCurve(a, b, [round(c.cosines[i], 4) for c in points])
            for i, (a, b) in enumerate(run.pairs)
        ],
        tracked=[WordNeighbours(w, [c.neighbours[w] for c in points]) for w in run.words],
        labels=list(run.words),
        maps=maps,
        words_sample=list(run.vectors.words[:SAMPLE_WORDS]),
    )


def _aligned(vectors: list[torch.Tensor]) -> torch.Tensor:
    """Each checkpoint's `[w, d]` vectors in 2-D `[c, w, 2]`, each map turned (orthogonal
    Procrustes, reflections allowed) to match the last one and scaled to unit spread."""
    maps = [project_2d(v) for v in vectors]
    maps = [m / m.norm(dim=1).max().clamp_min(1e-12) for m in maps]
    last = maps[-1]
    out = []
    for m in maps:
        u, _, vt = torch.linalg.svd(m.T @ last)
        out.append(m @ (u @ vt))
    return torch.stack(out)


def plot_learning(report: Learning, path: str | Path) -> Path:
    """The pairs' cosines over training (left) beside 2-D maps of the tracked words at
    MAP_PANELS checkpoints from the random start to the end (right)."""
    n = len(report.progress)
    shown = sorted({round(i * (n - 1) / (MAP_PANELS - 1)) for i in range(MAP_PANELS)})
    fig, axes = plt.subplots(1, 1 + len(shown), figsize=(5 + 3.2 * len(shown), 3.8))
    ax = axes[0]
    x = [100 * p for p in report.progress]
    for pair in report.pairs:
        ax.plot(x, pair.cosines, marker="o", ms=3, label=f"{pair.a} · {pair.b}")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("training done (%)")
    ax.set_ylabel("cosine")
    ax.set_ylim(-1, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(f"{report.mode}: tracked pairs", fontsize=10)
    for ax, c in zip(axes[1:], shown, strict=True):
        xy = report.maps[c]
        ax.scatter(xy[:, 0], xy[:, 1], s=14, color="tab:blue")
        for (px, py), label in zip(xy.tolist(), report.labels, strict=True):
            ax.annotate(label, (px, py), fontsize=8, xytext=(3, 3), textcoords="offset points")
        ax.set_title(f"{100 * report.progress[c]:.0f}% trained", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.margins(0.3)
    words = f"{report.corpus_words:,} words × {report.epochs} epochs"
    fig.suptitle(f"Watching {report.vocabulary:,} word vectors learn ({words})", fontsize=10)
    fig.tight_layout()
    return save(fig, path)
