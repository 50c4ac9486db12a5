"""Attention summaries over a trace, for any model: who a word attends to, per layer and head,
rollout, per-head statistics and which heads link one word to another.

Shapes: a trace's attentions are `[L, H, s, s]` (layers, heads, query token, key token); word
level versions are `[L, H, w, w]`, built by averaging a word's rows and summing its columns.
"""

from dataclasses import dataclass

import torch

from ..errors import ContextlensError
from ..trace import Trace
from .words import Word, isolate, locate, pooling_matrices, words


def require_attentions(trace: Trace) -> torch.Tensor:
    """The trace's attention weights `[L, H, s, s]`, or a clear error if they were not recorded
    (or only some layers were)."""
    if trace.attentions is None:
        raise ContextlensError("this trace has no attention weights; trace with attentions=True")
    if trace.layers is not None:
        raise ContextlensError("this trace recorded only some layers; trace with layers=None")
    return trace.attentions.float()


def check_layer_head(attn: torch.Tensor, layer: int | None, head: int | None) -> None:
    """Raise a one-line error if `layer` / `head` is outside `attn` `[L, H, …]`."""
    n_layers, n_heads = attn.shape[:2]
    if layer is not None and not 0 <= layer < n_layers:
        raise ContextlensError(
            f"layer {layer} is out of range; this model has layers 0..{n_layers - 1}"
        )
    if head is not None and not 0 <= head < n_heads:
        raise ContextlensError(
            f"head {head} is out of range; this model has heads 0..{n_heads - 1}"
        )


def word_attention(attn: torch.Tensor, units: list[Word]) -> torch.Tensor:
    """Token attention `[..., s, s]` → word attention `[..., w, w]` (rows still sum to 1)."""
    mean, total = pooling_matrices(units, attn.shape[-1])
    return mean @ attn @ total


def rollout(attn: torch.Tensor, residual: bool = True) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema 2020): how much each token's layer-l vector draws on
    each input token, following attention through the layers.

    attn `[L, H, s, s]` → `[L, s, s]`; entry [l] is Â_l ··· Â_0 with Â = rownorm(0.5·mean_h A
    + 0.5·I) (the residual connection), or plain mean_h A with residual=False.
    """
    a = attn.float().mean(1)  # [L, s, s]
    if residual:
        a = 0.5 * a + 0.5 * torch.eye(a.shape[-1])
        a = a / a.sum(-1, keepdim=True)
    out = torch.empty_like(a)
    acc = torch.eye(a.shape[-1])
    for layer in range(a.shape[0]):
        acc = a[layer] @ acc
        out[layer] = acc
    return out


def raw_average(attn: torch.Tensor) -> torch.Tensor:
    """The plain average over layers and heads: `[L, H, s, s]` → `[s, s]`."""
    return attn.float().mean((0, 1))


@dataclass
class AttendsTo:
    """Where one word's attention goes, over the words of the text.

    weights: `[L, H, w]` — the word's attention to each word, per layer and head.
    rollout: `[L, w]` — the rolled-out attention (see `rollout`) from the word.
    """

    source: Word
    words: list[Word]
    weights: torch.Tensor
    rollout: torch.Tensor

    def all_layers(self) -> torch.Tensor:
        """`[w]`: averaged over layers and heads."""
        return self.weights.mean((0, 1))

    def row(self, layer: int | None = None, head: int | None = None) -> torch.Tensor:
        """`[w]`: one layer (all layers if None), one head (head-averaged if None)."""
        check_layer_head(self.weights, layer, head)
        w = self.weights if layer is None else self.weights[layer : layer + 1]
        w = w.mean(1) if head is None else w[:, head]
        return w.mean(0)

    def top(self, weights: torch.Tensor, k: int = 5) -> list[tuple[Word, float]]:
        """The k words with the largest weight in `weights` `[w]`, largest first."""
        v, i = weights.topk(min(k, weights.numel()))
        return [(self.words[j], float(x)) for x, j in zip(v.tolist(), i.tolist(), strict=True)]


def attends_to(
    trace: Trace, where: str | int | tuple[int, int], occurrence: int | None = None
) -> AttendsTo:
    """Where the word at `where` (see `words.locate`) attends, per layer, head, and rolled out.

    A source that is only part of a word (北京 in 我爱北京) becomes a word of its own.
    """
    attn = require_attentions(trace)
    units = words(trace)
    source = locate(trace, where, occurrence, units)
    units = isolate(trace, units, source)
    _, total = pooling_matrices(units, attn.shape[-1])
    rows = token_weights(source, attn.shape[-1]) / len(source.tokens)  # averages its query rows
    weights = torch.einsum("q,lhqk,kw->lhw", rows, attn, total)
    rolled = torch.einsum("q,lqk,kw->lw", rows, rollout(attn), total)
    return AttendsTo(source, units, weights, rolled)


def token_weights(word: Word, n_tokens: int) -> torch.Tensor:
    """`[s]`: 1 on the word's tokens, 0 elsewhere."""
    v = torch.zeros(n_tokens)
    v[list(word.tokens)] = 1.0
    return v


def sink_mask(trace: Trace) -> torch.Tensor:
    """`[s]` True for attention-sink candidates: special tokens and the first token."""
    mask = torch.tensor(trace.special, dtype=torch.bool)
    mask[0] = True
    return mask


@dataclass
class HeadStats:
    """Per-head statistics, each `[L, H]`, averaged over the query tokens.

    entropy: of each attention row, in nats (0 = all on one token; log s = uniform).
    distance: expected |query − key| in tokens.
    sink: share of attention on special tokens and the first token ("attention sinks").
    """

    entropy: torch.Tensor
    distance: torch.Tensor
    sink: torch.Tensor


def head_stats(trace: Trace) -> HeadStats:
    """Entropy, distance attended and sink share of every head (see `HeadStats`)."""
    attn = require_attentions(trace)
    s = attn.shape[-1]
    pos = torch.arange(s, dtype=torch.float32)
    gap = (pos[:, None] - pos[None, :]).abs()  # [s, s]
    entropy = -(attn * attn.clamp_min(1e-12).log()).sum(-1).mean(-1)
    distance = (attn * gap).sum(-1).mean(-1)
    sink = attn[..., sink_mask(trace)].sum(-1).mean(-1)
    return HeadStats(entropy, distance, sink)


@dataclass
class HeadLink:
    layer: int
    head: int
    weight: float


def head_links(
    trace: Trace,
    source: str | int | tuple[int, int],
    target: str | int | tuple[int, int],
    occurrence: tuple[int | None, int | None] = (None, None),
) -> tuple[Word, Word, torch.Tensor]:
    """How much `source` attends to `target` in every head: (source, target, `[L, H]`)."""
    attn = require_attentions(trace)
    units = words(trace)
    src = locate(trace, source, occurrence[0], units, option="--from-occurrence")
    dst = locate(trace, target, occurrence[1], units, option="--to-occurrence")
    s = attn.shape[-1]
    rows = token_weights(src, s) / len(src.tokens)
    return src, dst, torch.einsum("q,lhqk,k->lh", rows, attn, token_weights(dst, s))


def rank_heads(links: torch.Tensor, k: int = 10) -> list[HeadLink]:
    """The k heads with the largest weights in `links` `[L, H]`, largest first."""
    n_heads = links.shape[1]
    v, i = links.flatten().topk(min(k, links.numel()))
    return [
        HeadLink(j // n_heads, j % n_heads, x) for x, j in zip(v.tolist(), i.tolist(), strict=True)
    ]
