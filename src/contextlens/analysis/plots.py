"""Pictures of attention and context shift (matplotlib, Agg; PNG or SVG by the file's suffix).

Every picture has words on its axes. Long texts are aggregated rather than drawn in full:
heatmaps thin their labels, grids average blocks of words, line views draw only the strongest
links. Files are written to a temporary name and renamed, so a failure leaves nothing behind.
"""

import os
import re
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from ..errors import ContextlensError, Note  # noqa: E402

FORMATS = {".png": "png", ".svg": "svg"}
MAX_LABELS = 60  # more words than this: label every n-th one
MAX_CELLS = 48  # grid panels are averaged down to at most this many words a side
CMAP = "Blues"


def save(fig, path: str | Path) -> Path:
    """Write `fig` to `path` (.png or .svg) atomically and close it."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    try:
        if fmt is None:
            raise ContextlensError(
                f"cannot save {path.name}: give a file name ending in .png or .svg"
            )
        if not path.parent.is_dir():
            raise ContextlensError(f"cannot save {path}: folder {path.parent} does not exist")
        _write(fig, fmt, path)
    except OSError as e:
        raise ContextlensError(
            f"cannot save {path}: {e.strerror or e}; give a file in a folder you can write to"
        ) from None
    finally:
        plt.close(fig)
    return path


def _write(fig, fmt: str, path: Path) -> None:
    """Save to a temporary file beside `path`, then rename it: never a half-written picture."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fig.savefig(f, format=fmt, dpi=120, bbox_inches="tight")
        _missing_glyphs(caught, path)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; a saved file is not
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _missing_glyphs(caught: list[warnings.WarningMessage], path: Path) -> None:
    """matplotlib warns once per character its font lacks (Chinese, emoji …): one `Note` for
    them all instead; other warnings pass on as they were."""
    missing = []
    for w in caught:
        glyph = re.match(r"Glyph (\d+) .*missing from font", str(w.message))
        if glyph:
            missing.append(chr(int(glyph.group(1))))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if missing:
        shown = " ".join(dict.fromkeys(missing))
        warnings.warn(
            Note(f"the font has no glyphs for {shown}; they show as boxes in {path.name}"),
            stacklevel=3,
        )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _ticks(ax, labels: Sequence[str], axis: str) -> None:
    """Word labels on an axis, every n-th one when there are too many."""
    step = max(1, -(-len(labels) // MAX_LABELS))
    idx = list(range(0, len(labels), step))
    names = [labels[i] for i in idx]
    if axis == "x":
        ax.set_xticks(idx, names, rotation=90, fontsize=8)
    else:
        ax.set_yticks(idx, names, fontsize=8)


def heatmap(
    matrix: torch.Tensor,
    rows: Sequence[str],
    cols: Sequence[str],
    title: str,
    path: str | Path,
    highlight: int | None = None,
    axes: tuple[str, str] = ("attends to", "word"),
    label: str = "attention weight",
) -> Path:
    """A `[q, k]` matrix, by default attention: row = the word attending, column = the word
    attended to; `highlight` frames one row."""
    q, k = matrix.shape
    side = min(4 + 0.28 * max(q, k), 18)
    fig, ax = plt.subplots(figsize=(side + 1.5, side))
    im = ax.imshow(matrix.float().numpy(), cmap=CMAP, vmin=0, aspect="auto")
    _ticks(ax, cols, "x")
    _ticks(ax, rows, "y")
    ax.set_xlabel(axes[0])
    ax.set_ylabel(axes[1])
    if highlight is not None:
        ax.axhspan(highlight - 0.5, highlight + 0.5, fill=False, edgecolor="tab:red", lw=1.5)
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.04, label=label)
    return save(fig, path)


def block_average(m: torch.Tensor, size: int) -> torch.Tensor:
    """`[..., w, w]` → at most `[..., size, size]`, each cell the mean over a block of
    consecutive words (for display: a long text's matrix as a readable picture)."""
    w = m.shape[-1]
    if w <= size:
        return m
    pool = torch.nn.functional.adaptive_avg_pool2d
    return pool(m.reshape(-1, 1, w, w), size).reshape(*m.shape[:-2], size, size)


def grid(attn: torch.Tensor, labels: Sequence[str], title: str, path: str | Path) -> Path:
    """Small multiples of every layer × head: `attn` `[L, H, w, w]` (word level). Words label
    the first panel when there are few; longer texts are block-averaged to MAX_CELLS a side."""
    n_layers, n_heads, w, _ = attn.shape
    small = block_average(attn.float(), MAX_CELLS)
    size = 1.2 if w > 12 else 1.6
    fig, axes = plt.subplots(
        n_layers,
        n_heads,
        figsize=(n_heads * size + 1, n_layers * size + 1),
        squeeze=False,
        layout="constrained",
    )
    for layer in range(n_layers):
        for head in range(n_heads):
            ax = axes[layer][head]
            ax.imshow(small[layer, head].numpy(), cmap=CMAP, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if layer == 0:
                ax.set_title(f"head {head}", fontsize=8)
            if head == 0:
                ax.set_ylabel(f"layer {layer}", fontsize=8)
    note = f" (blocks of words averaged to {MAX_CELLS})" if w > MAX_CELLS else ""
    words = " ".join(labels[:24]) + (" …" if len(labels) > 24 else "")
    fig.suptitle(f"{title}{note}\nrows/columns: {words}", fontsize=9)
    return save(fig, path)


def lines(
    labels: Sequence[str],
    weights: torch.Tensor,
    source: int,
    title: str,
    path: str | Path,
    top: int = 20,
) -> Path:
    """Lines from one word (left) to the words it attends to (right), thicker for more weight.

    weights `[w]`; with more than `top` words only the `top` strongest links are drawn and
    labelled, in text order.
    """
    w = len(labels)
    keep = sorted(weights.topk(min(top, w)).indices.tolist()) if w > top else list(range(w))
    n = len(keep)
    fig, ax = plt.subplots(figsize=(6, max(3, 0.32 * n + 1)))
    ys = {j: n - 1 - r for r, j in enumerate(keep)}
    y0 = (n - 1) / 2
    peak = float(weights.max()) or 1.0
    for j in keep:
        v = float(weights[j])
        share = min(v / peak, 1.0)  # (0.8 * v) / peak could round past 0.8: alpha > 1
        ax.plot([0, 1], [y0, ys[j]], color="tab:blue", lw=0.5 + 6 * share, alpha=0.2 + 0.8 * share)
        ax.text(1.03, ys[j], f"{labels[j]}  {v:.2f}", va="center", fontsize=9)
    ax.text(-0.03, y0, labels[source], va="center", ha="right", fontsize=11, weight="bold")
    ax.set_xlim(-0.5, 1.6)
    ax.set_ylim(-1, n)
    ax.axis("off")
    more = f" (top {n} of {w} words)" if n < w else ""
    ax.set_title(title + more, fontsize=10)
    return save(fig, path)


def curves(
    series: dict[str, torch.Tensor], title: str, path: str | Path, ylabel: str = "cosine"
) -> Path:
    """One line per series over the layers (x = 0 … L; 0 = input embeddings)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, values in series.items():
        ax.plot(range(len(values)), values.tolist(), marker="o", ms=3, label=name)
    ax.set_xlabel("layer (0 = input embeddings)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1))
    ax.set_title(title, fontsize=10)
    return save(fig, path)


def scatter_maps(
    points: list[torch.Tensor],
    labels: Sequence[str],
    groups: Sequence[int],
    titles: Sequence[str],
    title: str,
    path: str | Path,
) -> Path:
    """Side-by-side 2-D maps (e.g. PCA of a word's vectors at several layers): `points` holds
    one `[n, 2]` tensor per panel; points are numbered, coloured by group, and the numbers'
    labels listed below."""
    fig, axes = plt.subplots(1, len(points), figsize=(4.2 * len(points), 4.2), squeeze=False)
    colors = plt.get_cmap("tab10")
    for ax, xy, sub in zip(axes[0], points, titles, strict=True):
        for i, ((x, y), g) in enumerate(zip(xy.tolist(), groups, strict=True), start=1):
            ax.scatter(x, y, color=colors((g - 1) % 10), s=30)
            ax.annotate(str(i), (x, y), fontsize=8, xytext=(3, 3), textcoords="offset points")
        ax.set_title(sub, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.margins(0.25)
    fig.suptitle(title, fontsize=10)
    shown = labels[:MAX_LABELS]
    legend = "\n".join(f"{i}: {lab}" for i, lab in enumerate(shown, start=1))
    fig.text(0.02, -0.01, legend, fontsize=8, va="top")
    return save(fig, path)
