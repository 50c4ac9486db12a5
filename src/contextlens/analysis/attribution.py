"""Which input tokens move an output: gradient attributions and direct logit attribution.

Gradient attributions differentiate an output f — a next-token logit or log-probability, the
cosine of two sentence embeddings, a search hit's score — with respect to the token-embedding
rows x [s, d] (the Recorder's "token" point, replaced by a leaf tensor; positions are added
after it, as in the ordinary pass):

    saliency            ‖∂f/∂x_i‖                      how sensitive f is to token i
    input × gradient    x_i · ∂f/∂x_i                  a first-order share of f
    integrated grads    (x_i − b_i) · ∫₀¹ ∂f/∂x_i(b + α(x − b)) dα     (Gauss–Legendre nodes)

The baseline b gives each token the mean row of the embedding matrix, an average token, and
keeps special tokens, positions and a decoder's first token: the first token is the attention
sink every later token leans on, and moving it makes f jump (smollm2, "The capital of France
is": the logit of " Paris" swings 17.3 → 0.4 → 18.6 between neighbouring points of the path).
A zero row would be a bad start too: the norms are blind to scale, so f jumps at the origin.
Integrated gradients sum to f(x) − f(b) (completeness); the report states the gap.

Direct logit attribution splits the final logit of a token of a pre-norm model exactly: the
residual stream before the final norm is the embedding plus every head's output (through its
slice of W_O), each attention bias and each MLP's output; with the final norm's scale frozen at
its value on this input, the logit is linear in those parts and they sum to it.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ContextlensError
from ..lm import LanguageModel
from ..nn.record import Recorder
from .lens import check_position, encode, pieces, require_lm_head, token_id

DEFAULT_STEPS = 64
BASELINE = (
    "each token's embedding row replaced by the mean row of the embedding matrix, except special "
    "tokens and a decoder's first token (its attention sink); positions kept"
)


def require_gradients(lm: LanguageModel) -> None:
    """Gradients need float weights in torch: native (quantised) kernels have no backward."""
    if lm.weights == "native":
        raise ContextlensError(
            f"gradient attributions need exact weights and {lm.name} was loaded with native "
            "(quantised) ones; load it with weights='exact' (CLI: --weights exact)"
        )


def check_steps(steps: int) -> int:
    if not isinstance(steps, int) or not 1 <= steps <= 512:
        raise ContextlensError(
            f"steps must be 1 to 512 (got {steps}); the default is {DEFAULT_STEPS}"
        )
    return steps


def gradients(
    lm: LanguageModel, ids: torch.Tensor, rows: torch.Tensor, f: Callable
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the model on token-embedding rows `[n, s, d]` (ids `[1, s]` only fix the rest of the
    pass) with gradients: (f(hidden) `[n]`, ∂f/∂rows `[n, s, d]`), both float32.

    `f` maps the last hidden states `[n, s, d]` to one number per row."""
    require_gradients(lm)
    leaf = rows.detach().to(device=lm.device, dtype=lm.dtype).requires_grad_(True)
    rec = Recorder(edits={("token", 0): leaf})
    with torch.inference_mode(False), torch.enable_grad():
        values = f(lm.model(ids.expand(len(rows), -1), record=rec))
        (grad,) = torch.autograd.grad(values.sum(), leaf)
    return values.detach().float(), grad.float()


def mean_row(lm: LanguageModel) -> torch.Tensor:
    """The average token: the mean row of the embedding matrix `[d]`, float32."""
    with torch.inference_mode():
        return lm.model.tok.weight.float().mean(0)


def gauss_legendre(steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes α in (0, 1) and weights (summing to 1) for ∫₀¹ g(α) dα ≈ Σ w·g(α)."""
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    return torch.tensor((nodes + 1) / 2), torch.tensor(weights / 2)


# ── one output, its attributions to the tokens ─────────────────────────────────────────────
@dataclass
class TokenScore:
    token: str
    start: int
    end: int
    special: bool
    saliency: float
    input_x_gradient: float
    integrated_gradients: float


@dataclass
class AttributionReport:
    """Attributions of `output` (value f(x); f(baseline) at `baseline`) to the tokens of `text`.

    completeness_gap: Σ integrated gradients − (f(x) − f(baseline)), with `steps` nodes.
    """

    model: str
    text: str
    output: str
    value: float
    baseline: str
    baseline_value: float
    steps: int
    tokens: list[TokenScore]
    completeness_gap: float


def attribute(
    lm: LanguageModel, text: str, f: Callable, output: str, steps: int = DEFAULT_STEPS
) -> AttributionReport:
    """Saliency, input × gradient and integrated gradients of `f` (last hidden `[n, s, d]` ->
    `[n]`) for the tokens of `text`."""
    check_steps(steps)
    e, ids = encode(lm, text)
    with torch.inference_mode():
        x = lm.model.tok(ids.to(lm.device)).float()[0]  # [s, d]
    keep = torch.tensor(e.special, device=x.device)[:, None]  # [s, 1]
    keep[0] |= lm.config.causal  # a decoder's first token is its attention sink
    base = torch.where(keep, x, mean_row(lm).to(x))
    alphas, weights = gauss_legendre(steps)
    path = base + alphas.to(x)[:, None, None] * (x - base)  # [steps, s, d]
    rows = torch.cat([x[None], base[None], path])  # [2 + steps, s, d]
    values, grads = gradients(lm, ids, rows, f)
    mean_grad = (weights.to(x)[:, None, None] * grads[2:]).sum(0)  # [s, d]
    ig = ((x - base) * mean_grad).sum(-1)  # [s]
    return AttributionReport(
        lm.name,
        text,
        output,
        float(values[0]),
        BASELINE,
        float(values[1]),
        steps,
        [
            TokenScore(t, o[0], o[1], sp, float(sal), float(ixg), float(g))
            for t, o, sp, sal, ixg, g in zip(
                pieces(lm, e.ids),
                e.offsets,
                e.special,
                grads[0].norm(dim=-1),
                (x * grads[0]).sum(-1),
                ig,
                strict=True,
            )
        ],
        float(ig.sum() - (values[0] - values[1])),
    )


def next_token_output(lm: LanguageModel, target: int, log_prob: bool) -> Callable:
    """f(hidden) = the logit (or log-probability) of token `target` after the last token."""

    def f(hidden: torch.Tensor) -> torch.Tensor:
        logits = lm.model.logits(hidden[:, -1]).float()  # [n, vocab]
        return (logits.log_softmax(-1) if log_prob else logits)[:, target]

    return f


def attribute_next_token(
    lm: LanguageModel,
    text: str,
    target: str | None = None,
    log_prob: bool = False,
    steps: int = DEFAULT_STEPS,
) -> AttributionReport:
    """Attributions of the next token's logit (log_prob=True: log-probability) after `text`;
    `target` is one token (default: the model's most likely next token)."""
    require_lm_head(lm, "next-token attribution")
    lm.require_decoder("next-token attribution")
    t = token_id(lm, target) if target is not None else int(lm.next_token_logits(text).argmax())
    what = "log-probability" if log_prob else "logit"
    output = f"{what} of {lm.tokenizer.decode([t])!r} as the next token"
    return attribute(lm, text, next_token_output(lm, t, log_prob), output, steps)


@dataclass
class SimilarityAttribution:
    """Which words made two texts similar: each text's tokens attributed with the other text's
    embedding held fixed (`a` with b fixed, `b` with a fixed)."""

    model: str
    cosine: float
    a: AttributionReport
    b: AttributionReport


def cosine_output(lm: LanguageModel, other: torch.Tensor) -> Callable:
    """f(hidden) = cosine of the pooled sentence embedding with `other` [d]."""

    def f(hidden: torch.Tensor) -> torch.Tensor:
        mask = torch.ones(hidden.shape[:2], dtype=torch.bool, device=hidden.device)
        return torch.nn.functional.cosine_similarity(lm.pool(hidden, mask), other[None], dim=-1)

    return f


def attribute_similarity(
    lm: LanguageModel, a: str, b: str, steps: int = DEFAULT_STEPS, what: str = "cosine"
) -> SimilarityAttribution:
    """Attributions of cos(embed(a), embed(b)) to the tokens of a and of b."""
    ea, eb = lm.embed([a, b]).float()
    sides = [
        attribute(lm, text, cosine_output(lm, other), f"{what} with {other_text!r}", steps)
        for text, other, other_text in ((a, eb, b), (b, ea, a))
    ]
    return SimilarityAttribution(lm.name, float(torch.cosine_similarity(ea, eb, dim=0)), *sides)


def attribute_hit(
    lm: LanguageModel, query: str, hit_text: str, steps: int = DEFAULT_STEPS
) -> SimilarityAttribution:
    """A dense search hit's score (the cosine of query and chunk embeddings) attributed to the
    query's and the chunk's tokens."""
    return attribute_similarity(lm, query, hit_text, steps, what="search score")


# ── direct logit attribution ───────────────────────────────────────────────────────────────
@dataclass
class LogitPart:
    name: str  # "embedding", "L3 H5", "L3 attention bias", "L3 MLP", "final norm bias"
    layer: int | None
    head: int | None
    logit: float


@dataclass
class DirectLogitAttribution:
    """The logit of `target` after `position`, split into parts that sum to it.

    heads: `[n_layers][n_heads]` each head's direct contribution; mlps: `[n_layers]`;
    parts: every part, in the order of the pass; total: their sum (= logit up to rounding).
    """

    model: str
    text: str
    tokens: list[str]
    position: int
    target: str
    logit: float
    total: float
    embedding: float
    heads: list[list[float]]
    mlps: list[float]
    parts: list[LogitPart]


def head_outputs(attn, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each head's output through W_O at one position: y [h, hd] -> ([h, d], bias [d]).

    Head j's share is W_O applied to y with every other head zeroed (works for any linear
    layer, quantised ones too); the bias is what W_O gives for zeros."""
    h, hd = y.shape
    blocks = torch.zeros(h + 1, h, hd, dtype=y.dtype, device=y.device)
    blocks[torch.arange(h), torch.arange(h)] = y
    out = attn.out(blocks.reshape(h + 1, h * hd))  # [h + 1, d]
    return out[:h] - out[h], out[h]


def frozen_norm(
    norm, parts: torch.Tensor, total: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The final norm as a linear map fixed at its value on `total` [d]: parts [P, d] ->
    (normed parts [P, d], the constant it adds [d]), float32."""
    w = norm.weight.float()
    total = total.float()
    if isinstance(norm, torch.nn.LayerNorm):
        std = (total.var(unbiased=False) + norm.eps).sqrt()
        bias = norm.bias.float() if norm.bias is not None else torch.zeros_like(w)
        return (parts - parts.mean(-1, keepdim=True)) * w / std, bias
    rms = (total.pow(2).mean() + norm.eps).sqrt()
    return parts * w / rms, torch.zeros_like(w)


def residual_parts(lm: LanguageModel, rec: Recorder, pos: int) -> list[tuple]:
    """The parts that add up to the residual stream before the final norm, at `pos`, as
    (name, layer, head, vector [d]): the embedding, then per layer each head, the attention
    bias (models with biases) and the MLP."""
    parts = [("embedding", None, None, rec.points[("resid", 0)][0, pos])]
    for i, block in enumerate(lm.model.blocks):
        per_head, bias = head_outputs(block.attn, rec.points[("heads", i)][0, pos])
        parts += [(f"L{i} H{j}", i, j, v) for j, v in enumerate(per_head)]
        if lm.config.bias:
            parts.append((f"L{i} attention bias", i, None, bias))
        parts.append((f"L{i} MLP", i, None, rec.points[("mlp", i)][0, pos]))
    return parts


@torch.inference_mode()
def direct_logit_attribution(
    lm: LanguageModel, text: str, target: str | None = None, position: int = -1
) -> DirectLogitAttribution:
    """Split the logit of `target` (default: the most likely next token) after `position`."""
    require_lm_head(lm, "direct logit attribution")
    cfg, m = lm.config, lm.model
    if not cfg.pre_norm or m.final_norm is None:
        raise ContextlensError(
            f"direct logit attribution needs a pre-norm model with a final norm; {lm.name} "
            "normalises after every layer, so its logit has no exact split; use -m smollm2"
        )
    e, ids = encode(lm, text)
    pos = check_position(position, len(e.ids))
    rec = Recorder(keep=frozenset({"resid", "heads", "mlp"}))
    m(ids, record=rec)
    final = rec.points[("resid", cfg.n_layers)][0, pos]  # [d]
    model_logits = m.logits(m.final_norm(final)).float()  # [vocab]
    t = token_id(lm, target) if target is not None else int(model_logits.argmax())
    parts = residual_parts(lm, rec, pos)
    vectors = torch.stack([v for *_, v in parts]).float()  # [P, d]
    normed, constant = frozen_norm(m.final_norm, vectors, final)
    parts.append(("final norm bias", None, None, constant))
    logits = m.logits(torch.cat([normed, constant[None]]).to(lm.dtype)).float()[:, t]  # [P+1]
    named = [
        LogitPart(n, lay, h, float(x)) for (n, lay, h, _), x in zip(parts, logits, strict=True)
    ]
    return DirectLogitAttribution(
        lm.name,
        text,
        pieces(lm, e.ids),
        pos,
        lm.tokenizer.decode([t]),
        float(model_logits[t]),
        float(logits.double().sum()),
        named[0].logit,
        [
            [p.logit for p in named if p.layer == i and p.head is not None]
            for i in range(cfg.n_layers)
        ],
        [p.logit for p in named if p.name.endswith("MLP")],
        named,
    )
