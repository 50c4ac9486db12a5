"""Attention summaries over a trace, for any model: who a word attends to, per layer and head,
rollout, per-head statistics and which heads link one word to another.

Shapes: a trace's attentions are `[L, H, s, s]` (layers, heads, query token, key token); word
level versions are `[L, H, w, w]`, built by averaging a word's rows and summing its columns.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import ContextlensError
from ..trace import Trace
from .embedding import Tokens, rounded, tokens_report
from .words import Word, isolate, locate, pooling_matrices, words

THUMB = 16  # a head's thumbnail in the head view is at most THUMB × THUMB cells


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
    """Per-head statistics of a text, each `[L, H]`, averaged over the query tokens.

    entropy: of each attention row, in nats (0 = all on one token; log s = uniform).
    distance: expected |query − key| in tokens.
    sink: share of attention on special tokens and the first token ("attention sinks").
    """

    model: str
    text: str
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
    return HeadStats(trace.model, trace.text, entropy, distance, sink)


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


# ── reports ─────────────────────────────────────────────────────────────────────────────────
@dataclass
class Target:
    """A word and the attention it receives."""

    word: Word
    weight: float


@dataclass
class LayerTargets:
    layer: int
    top: list[Target]


def _targets(pairs: list[tuple[Word, float]]) -> list[Target]:
    return [Target(w, v) for w, v in pairs]


@dataclass
class WordAttention:
    """Where one word (`source`) attends, over the words of the text.

    weights: `[w]` — at `layer` (all layers averaged if None), `head` (heads averaged if None).
    layers: the top words of every layer (or of `layer` alone); all_layers: averaged over all
    layers; rollout: the rolled-out attention at the last layer.
    """

    model: str
    text: str
    source: Word
    layer: int | None
    head: int | None
    words: list[Word]
    weights: torch.Tensor
    layers: list[LayerTargets]
    all_layers: list[Target]
    rollout: list[Target]


def word_attention_report(
    trace: Trace,
    source: str | int | tuple[int, int],
    occurrence: int | None = None,
    layer: int | None = None,
    head: int | None = None,
    top: int = 5,
) -> WordAttention:
    """The `top` words `source` attends to most, per layer, over all layers and rolled out."""
    a = attends_to(trace, source, occurrence)
    check_layer_head(a.weights, layer, head)
    shown = range(a.weights.shape[0]) if layer is None else [layer]
    return WordAttention(
        trace.model,
        trace.text,
        a.source,
        layer,
        head,
        a.words,
        a.row(layer, head),
        [LayerTargets(n, _targets(a.top(a.row(n, head), top))) for n in shown],
        _targets(a.top(a.row(None, head), top)),
        _targets(a.top(a.rollout[-1], top)),
    )


def word_matrix(trace: Trace, layer: int | None, head: int | None) -> torch.Tensor:
    """Word-to-word attention `[w, w]` (over `words(trace)`) at `layer` (all layers averaged if
    None), `head` (heads averaged if None)."""
    attn = require_attentions(trace)
    check_layer_head(attn, layer, head)
    wa = word_attention(attn, words(trace))  # [L, H, w, w]
    sel = wa if layer is None else wa[layer : layer + 1]
    return (sel.mean(1) if head is None else sel[:, head]).mean(0)


@dataclass
class WordTargets:
    word: Word
    top: list[Target]


@dataclass
class WhoAttends:
    """Every word's strongest targets at `layer` (all layers averaged if None), `head` (heads
    averaged if None)."""

    model: str
    text: str
    layer: int | None
    head: int | None
    words: list[WordTargets]


def who_attends(trace: Trace, layer: int | None, head: int | None, top: int = 5) -> WhoAttends:
    units = words(trace)
    matrix = word_matrix(trace, layer, head)
    best = matrix.topk(min(top, len(units)), dim=-1)
    rows = [
        WordTargets(u, [Target(units[j], v) for v, j in zip(vs, js, strict=True)])
        for u, vs, js in zip(units, best.values.tolist(), best.indices.tolist(), strict=True)
    ]
    return WhoAttends(trace.model, trace.text, layer, head, rows)


@dataclass
class HeadLinks:
    """How much `source` attends to `target` in every head: links `[L, H]`, the heads ranked,
    each layer's heads averaged `[L]`, and the average over all heads."""

    model: str
    text: str
    source: Word
    target: Word
    links: torch.Tensor
    heads: list[HeadLink]
    by_layer: torch.Tensor
    all: float


def head_links_report(
    trace: Trace,
    source: str | int | tuple[int, int],
    target: str | int | tuple[int, int],
    occurrence: tuple[int | None, int | None] = (None, None),
    top: int = 10,
) -> HeadLinks:
    src, dst, links = head_links(trace, source, target, occurrence)
    return HeadLinks(
        trace.model,
        trace.text,
        src,
        dst,
        links,
        rank_heads(links, top),
        links.mean(1),
        float(links.mean()),
    )


def edges(attn: torch.Tensor, k: int) -> list[list]:
    """The k strongest keys of every query row: attn `[s, s]` → [[query, key, weight], …],
    weights rounded to 4 decimals."""
    v, i = attn.topk(min(k, attn.shape[-1]), dim=-1)  # [s, k]
    q = torch.arange(attn.shape[0])[:, None].expand_as(i)
    keep = v > 0
    return [
        [a, b, round(w, 4)]
        for a, b, w in zip(q[keep].tolist(), i[keep].tolist(), v[keep].tolist(), strict=True)
    ]


def thumbnails(attn: torch.Tensor) -> list:
    """attn `[L, H, s, s]` → `[L, H, t, t]` with t = min(s, THUMB) by block averaging, rounded
    to 3 decimals."""
    n_layers, n_heads, s, _ = attn.shape
    t = min(s, THUMB)
    pooled = F.adaptive_avg_pool2d(attn.reshape(n_layers * n_heads, 1, s, s), t)
    return rounded(pooled.reshape(n_layers, n_heads, t, t), 3)


@dataclass
class HeadView:
    """One layer's attention (one head, or the heads' average when head is None) as each query's
    `top_k` edges [[query, key, weight], …], a layer × head grid of thumbnails `[L, H, t, t]`
    and every head's statistics."""

    model: str
    n_layers: int
    n_heads: int
    tokens: Tokens
    layer: int
    head: int | None
    top_k: int
    edges: list[list]
    grid: list
    grid_size: int
    stats: HeadStats


def head_view(trace: Trace, layer: int, head: int | None, top_k: int) -> HeadView:
    attn = require_attentions(trace)  # [L, H, s, s]
    check_layer_head(attn, layer, head)
    a = attn[layer].mean(0) if head is None else attn[layer, head]  # [s, s]
    return HeadView(
        trace.model,
        attn.shape[0],
        attn.shape[1],
        tokens_report(trace),
        layer,
        head,
        top_k,
        edges(a, top_k),
        thumbnails(attn),
        min(len(trace), THUMB),
        head_stats(trace),
    )


@dataclass
class Steps:
    """One query token's attention in numbers, for one head or (head None) every head of the
    layer (h heads): scores q·kᵀ/√d `[h, s]` (None where the causal mask hides a key), the
    model's softmax weights `[h, s]`, the values V `[h, s, hd]` they average and the output
    `[h, hd]`; values and output rounded to 3 decimals."""

    tokens: Tokens
    layer: int
    head: int | None
    query: int
    head_dim: int
    scale: float
    scores: list[list[float | None]]
    weights: torch.Tensor
    values: list
    output: list


def steps(trace: Trace, layer: int, head: int | None, query: int, causal: bool) -> Steps:
    """Needs a trace with qkv=True."""
    if trace.qkv is None:
        raise ContextlensError("this trace has no queries/keys/values; trace with qkv=True")
    check_layer_head(require_attentions(trace), layer, head)
    s = len(trace)
    if not 0 <= query < s:
        raise ContextlensError(f"query token {query} is out of range; the text has {s} tokens")
    heads = slice(None) if head is None else slice(head, head + 1)
    q, k, v = trace.qkv[layer, :, heads].float()  # each [h, s, hd]
    scale = q.shape[-1] ** -0.5
    scores = torch.einsum("hkd,hd->hk", k, q[:, query]) * scale  # [h, s]
    scores = scores.masked_fill(torch.arange(s) > query, torch.nan) if causal else scores
    weights = trace.attentions[layer, heads, query].float()  # [h, s]
    return Steps(
        tokens_report(trace),
        layer,
        head,
        query,
        q.shape[-1],
        scale,
        [[None if math.isnan(x) else x for x in h] for h in scores.tolist()],
        weights,
        rounded(v, 3),
        rounded(torch.einsum("hk,hkd->hd", weights, v), 3),
    )
