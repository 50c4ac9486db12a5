"""The logit lens: the next-token distribution read from every layer's residual stream.

    lens(l) = LM head(final norm(resid_l))      resid_l [s, d] -> logits [s, vocab]

resid_0 is the input embedding and resid_l the output of layer l, read at the Recorder's
"resid" points of one ordinary pass; at the last layer the lens is the model's own prediction.
The helpers here (one token, a position, a layer) are shared by the other causal methods.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ContextlensError
from ..io.tokenizer import Encoded
from ..lm import LanguageModel
from ..nn.record import Recorder
from . import plots


# ── shared by the causal methods ───────────────────────────────────────────────────────────
def require_lm_head(lm: LanguageModel, what: str) -> None:
    """A model with an LM head; else one line saying why there is none and what to use."""
    if lm.model.lm_head is not None:
        return
    why = (
        f"{lm.name} is an encoder and its checkpoint has no masked-LM head (all-MiniLM-L6-v2 "
        "ships without one; contextlens does not load BERT's cls.predictions head)"
        if lm.kind == "encoder"
        else f"{lm.name} has no LM head"
    )
    raise ContextlensError(f"{what} reads the layers through an LM head; {why}; use -m smollm2")


def token_id(lm: LanguageModel, piece: str, what: str = "target") -> int:
    """The id of `piece` if it is exactly one token (a leading space counts: ' Paris')."""
    ids = lm.tokenizer.tok.encode(piece, add_special_tokens=False).ids
    if len(ids) != 1:
        pieces = [lm.tokenizer.decode([i]) for i in ids]
        raise ContextlensError(
            f"{what} {piece!r} is {len(ids)} tokens {pieces}; give a single token, e.g. "
            f"{pieces[0]!r}"
            if ids
            else f"{what} is empty; give a single token such as ' Paris'"
        )
    return ids[0]


def check_position(position: int, n: int) -> int:
    """A token index (negative counts from the end) within a text of n tokens, as 0..n-1."""
    if not -n <= position < n:
        raise ContextlensError(
            f"position {position} is out of range; the text has {n} tokens (0..{n - 1}, or "
            "-1 for the last)"
        )
    return position % n


def check_layer(layer: int, n_layers: int, name: str = "layer") -> int:
    if not 0 <= layer < n_layers:
        raise ContextlensError(
            f"{name} {layer} is out of range; the model has layers 0..{n_layers - 1}"
        )
    return layer


def encode(lm: LanguageModel, text: str) -> tuple[Encoded, torch.Tensor]:
    """(tokens, ids [1, s]) of one text within the model's context."""
    e = lm.tokenize(text)
    return e, torch.tensor([e.ids])


def pieces(lm: LanguageModel, ids: list[int]) -> list[str]:
    """Each token as the text it stands for (' Paris', not the tokenizer's 'ĠParis')."""
    return [lm.tokenizer.decode([i]) for i in ids]


def unembed(lm: LanguageModel, resid: torch.Tensor) -> torch.Tensor:
    """resid [..., d] -> float32 logits [..., vocab] through the final norm (if any) and head."""
    m = lm.model
    x = m.final_norm(resid) if m.final_norm is not None else resid
    return m.logits(x).float()


@torch.inference_mode()
def residuals(lm: LanguageModel, ids: torch.Tensor) -> torch.Tensor:
    """The residual stream of one text at every layer: ids [1, s] -> [n_layers + 1, s, d]."""
    rec = Recorder(keep=frozenset({"resid"}))
    lm.model(ids, record=rec)
    return torch.stack([rec.points[("resid", i)][0] for i in range(lm.config.n_layers + 1)])


@torch.inference_mode()
def lens_logits(lm: LanguageModel, text: str, position: int = -1) -> torch.Tensor:
    """The next-token logits read at `position` from every layer: `[n_layers + 1, vocab]`
    (row 0: the input embedding; the last row: the model's own logits)."""
    require_lm_head(lm, "the logit lens")
    e, ids = encode(lm, text)
    pos = check_position(position, len(e.ids))
    return unembed(lm, residuals(lm, ids)[:, pos])


# ── the report ─────────────────────────────────────────────────────────────────────────────
@dataclass
class Candidate:
    token: str
    probability: float


@dataclass
class LensLayer:
    """What layer `layer` (0 = the input embedding) predicts at the lens position."""

    layer: int
    top: list[Candidate]
    target_probability: float
    target_rank: int  # 1 = the most likely token


@dataclass
class LensReport:
    """The logit lens of one text.

    layers: the top-k next tokens at `position`, layer by layer, with the target's probability
        and rank (target: the model's final prediction unless one was given).
    appears: the first layer where the target is in the top k; takes_over: the first layer from
        which it stays the most likely (None: never).
    grid: the most likely next token at every layer × position `[n_layers + 1][s]`, with
        `grid_probability` its probability.
    """

    model: str
    text: str
    tokens: list[str]
    position: int
    target: str
    k: int
    layers: list[LensLayer]
    appears: int | None
    takes_over: int | None
    grid: list[list[str]]
    grid_probability: list[list[float]]


def logit_lens(
    lm: LanguageModel, text: str, k: int = 5, target: str | None = None, position: int = -1
) -> LensReport:
    """Read the next token after `position` (default: the last token) from every layer."""
    require_lm_head(lm, "the logit lens")
    if k < 1:
        raise ContextlensError(f"k must be ≥ 1 (got {k})")
    e, ids = encode(lm, text)
    pos = check_position(position, len(e.ids))
    resid = residuals(lm, ids)  # [L+1, s, d]
    with torch.inference_mode():
        probs = unembed(lm, resid[:, pos]).softmax(-1)  # [L+1, vocab]
        grid = [unembed(lm, r).softmax(-1).max(-1) for r in resid]  # per layer: [s]
    t = token_id(lm, target) if target is not None else int(probs[-1].argmax())
    ranks = (probs > probs[:, t : t + 1]).sum(-1) + 1  # [L+1]
    top = probs.topk(min(k, probs.shape[-1]))
    decode = lm.tokenizer.decode
    rows = [
        LensLayer(
            i,
            [Candidate(decode([int(j)]), float(p)) for p, j in zip(ps, js, strict=True)],
            float(probs[i, t]),
            int(ranks[i]),
        )
        for i, (ps, js) in enumerate(zip(top.values, top.indices, strict=True))
    ]
    inside = [i for i, r in enumerate(ranks.tolist()) if r <= k]
    leads = [r == 1 for r in ranks.tolist()]
    takes_over = next((i for i in range(len(leads)) if all(leads[i:])), None)
    return LensReport(
        lm.name,
        text,
        pieces(lm, e.ids),
        pos,
        decode([t]),
        k,
        rows,
        inside[0] if inside else None,
        takes_over,
        [[decode([int(j)]) for j in g.indices] for g in grid],
        [g.values.tolist() for g in grid],
    )


# ── pictures ───────────────────────────────────────────────────────────────────────────────
MAX_WRITTEN = 400  # cells; larger grids are drawn without the tokens written in them


def label_axes(ax, cols: list[str], rows: list[str], axes: tuple[str, str]) -> None:
    """Column and row labels (thinned when there are many) and the axes' names."""
    plots._ticks(ax, cols, "x")
    plots._ticks(ax, rows, "y")
    ax.set_xlabel(axes[0])
    ax.set_ylabel(axes[1])


def lens_picture(r: LensReport, path: str | Path) -> Path:
    """Layers (rows, the embedding at the bottom) × positions: each cell the most likely next
    token read there, coloured by its probability."""
    probs = torch.tensor(r.grid_probability)  # [L+1, s]
    fig, ax = plots.plt.subplots(figsize=(min(3 + 1.1 * probs.shape[1], 20), 2 + 0.3 * len(probs)))
    im = ax.imshow(probs.numpy(), cmap=plots.CMAP, vmin=0, vmax=1, aspect="auto", origin="lower")
    if probs.numel() <= MAX_WRITTEN:
        for (i, j), p in np.ndenumerate(probs.numpy()):
            colour = "white" if p > 0.6 else "black"
            ax.text(
                j,
                i,
                repr(r.grid[i][j])[1:-1][:10],
                ha="center",
                va="center",
                fontsize=7,
                color=colour,
            )
    label_axes(
        ax, r.tokens, [str(i) for i in range(len(probs))], ("token", "layer (0 = embedding)")
    )
    ax.set_title(f"{r.model}: logit lens of {r.text[:60]!r}", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.04, label="probability of the top token")
    return plots.save(fig, path)


def signed_map(
    values,
    rows: list[str],
    cols: list[str],
    title: str,
    path: str | Path,
    axes: tuple[str, str],
    label: str,
) -> Path:
    """A matrix of signed values `[rows, cols]` in a diverging colour map centred on 0."""
    m = torch.as_tensor(values, dtype=torch.float32)
    top = float(m.abs().max()) or 1.0
    fig, ax = plots.plt.subplots(
        figsize=(min(3 + 0.45 * m.shape[1], 20), min(2 + 0.3 * m.shape[0], 16))
    )
    im = ax.imshow(m.numpy(), cmap="RdBu_r", vmin=-top, vmax=top, aspect="auto", origin="lower")
    label_axes(ax, cols, rows, axes)
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.04, label=label)
    return plots.save(fig, path)
