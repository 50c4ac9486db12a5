"""What the API answers, as plain data: each function takes a model (or trace) and the request's
values and returns a JSON-ready dict. Long texts are aggregated here (top-k edges per query,
pooled thumbnails, per-layer summaries) so the page never receives every weight.
"""

import math
import warnings

import torch
import torch.nn.functional as F

from ..analysis.attention import check_layer_head, head_stats, require_attentions
from ..analysis.context import nearest_words, occurrences, project_2d
from ..analysis.coref import coref_report
from ..analysis.words import words
from ..errors import ContextlensError
from ..sampling import check_sampling, next_token_distribution
from ..trace import Trace
from .inputs import PROJECTIONS, TEMPERATURE

THUMB = 16  # a grid thumbnail is at most THUMB × THUMB cells (block-averaged)
STRIP_TOKENS = 64  # the tokens view draws the vectors of at most this many tokens


def _round(x: torch.Tensor, digits: int = 4) -> list:
    return torch.round(x.double(), decimals=digits).tolist()


def token_info(trace: Trace) -> dict:
    """The tokens and their grouping into words (every view labels its axes with these)."""
    return {
        "tokens": trace.tokens,
        "ids": trace.ids,
        "special": trace.special,
        "offsets": [list(o) for o in trace.offsets],
        "words": [
            {"text": w.text, "start": w.start, "end": w.end, "tokens": list(w.tokens)}
            for w in words(trace)
        ],
    }


def model_info(name: str, model) -> dict:
    c = model.config
    return {
        "name": name,
        "kind": model.kind,
        "architecture": c.architecture,
        "n_layers": c.n_layers,
        "n_heads": c.n_heads,
        "d_model": c.d_model,
        "position": c.position,
    }


def edges(attn: torch.Tensor, k: int) -> list[list]:
    """The k strongest keys of every query row: attn `[s, s]` → [[query, key, weight], …]."""
    v, i = attn.topk(min(k, attn.shape[-1]), dim=-1)  # [s, k]
    q = torch.arange(attn.shape[0])[:, None].expand_as(i)
    keep = v > 0
    return [
        [a, b, round(w, 4)]
        for a, b, w in zip(q[keep].tolist(), i[keep].tolist(), v[keep].tolist(), strict=True)
    ]


def thumbnails(attn: torch.Tensor) -> list:
    """attn `[L, H, s, s]` → `[L, H, t, t]` with t = min(s, THUMB) by block averaging."""
    n_layers, n_heads, s, _ = attn.shape
    t = min(s, THUMB)
    pooled = F.adaptive_avg_pool2d(attn.reshape(n_layers * n_heads, 1, s, s), t)
    return _round(pooled.reshape(n_layers, n_heads, t, t), 3)


def attention(trace: Trace, layer: int, head: int | None, top_k: int) -> dict:
    """The head view of one layer (one head, or the heads' average when head is None): each
    query's top_k edges, plus the layer × head thumbnail grid and per-head statistics `[L, H]`."""
    attn = require_attentions(trace)  # [L, H, s, s]
    check_layer_head(attn, layer, head)
    a = attn[layer].mean(0) if head is None else attn[layer, head]  # [s, s]
    stats = head_stats(trace)
    return {
        "layer": layer,
        "head": head,
        "top_k": top_k,
        "edges": edges(a, top_k),
        "grid": thumbnails(attn),
        "grid_size": min(len(trace), THUMB),
        "entropy": _round(stats.entropy, 3),
        "distance": _round(stats.distance, 2),
        "sink": _round(stats.sink, 3),
    }


def steps(trace: Trace, layer: int, head: int | None, query: int, causal: bool) -> dict:
    """One query token's attention in numbers, for one head or (head None) every head of the
    layer: scores q·kᵀ/√d `[h, s]` (None where the causal mask hides a key), the model's
    softmax weights `[h, s]`, and the values V `[h, s, hd]` they average (h = 1 for one head)."""
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
    return {
        "layer": layer,
        "head": head,
        "query": query,
        "head_dim": q.shape[-1],
        "scale": scale,
        "scores": [[None if math.isnan(x) else round(x, 4) for x in h] for h in scores.tolist()],
        "weights": _round(weights, 5),
        "values": _round(v, 3),
        "output": _round(torch.einsum("hk,hkd->hd", weights, v), 3),
    }


def vectors(model, trace: Trace) -> dict:
    """Tokens → vectors: each token's embedding-matrix row, its position vector (learned or
    sinusoidal; None for RoPE, which rotates q/k inside attention instead) and the input
    embedding that enters layer 1. Rows `[n, d]` for the first STRIP_TOKENS tokens, read from
    the trace's embedding parts."""
    parts = trace.embedding_parts
    if parts is None:
        raise ContextlensError("this trace has no embedding parts; trace with embedding_parts=True")
    n = min(len(trace), STRIP_TOKENS)
    return {
        "shown": n,
        "d_model": parts.token.shape[-1],
        "position_kind": model.config.position,
        "norm": parts.normed is not None,
        "token": _round(parts.token[:n], 3),
        "position": None if parts.position is None else _round(parts.position[:n], 3),
        "input": _round(parts.input[:n], 3),
    }


def check_temperature(temperature: float) -> None:
    lo, hi = TEMPERATURE
    if not lo <= temperature <= hi:
        raise ContextlensError(
            f"temperature must be between {lo:g} and {hi:g} (got {temperature}); 0 is greedy "
            "(the most likely token only), 1 the model's own distribution"
        )


def next_token(
    model,
    trace: Trace,
    k: int,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
) -> dict:
    """The k most likely next tokens under temperature / top-k / top-p — only those the
    settings keep — with their plain (T=1) probabilities, and where the last token looks: its
    attention over the text, averaged over layers and heads `[s]`."""
    if model.kind != "decoder" or model.model.lm_head is None:
        kind = "an encoder" if model.kind == "encoder" else "a decoder without an LM head"
        raise ContextlensError(
            f"{model.name} is {kind}; next-token prediction needs a decoder with an LM head: "
            "set model to one (GET /api/models lists them)"
        )
    check_temperature(temperature)
    check_sampling(temperature, top_k, top_p)
    logits = model.model.logits(trace.hidden_states[-1, -1].float())  # [vocab]
    probs = next_token_distribution(logits, temperature, top_k, top_p)
    plain = logits.float().softmax(-1)
    kept = int((probs > 0).sum())
    v, i = probs.topk(min(k, kept))
    look = require_attentions(trace)[:, :, -1].mean((0, 1))  # [s]
    return {
        "candidates": [
            {
                "id": j,
                "text": model.tokenizer.decode([j]),
                "p": round(p, 6),
                "p1": round(float(plain[j]), 6),
            }
            for p, j in zip(v.tolist(), i.tolist(), strict=True)
        ],
        "kept": kept,
        "filtered": top_k is not None or (top_p is not None and top_p < 1),
        "vocab": probs.shape[-1],
        "attention": _round(look, 4),
    }


DECODER_NEIGHBOURS = (
    "not shown for a decoder: its hidden state at a word is shaped to predict the next token, "
    "so the input-embedding rows nearest to it (shared with the output head when tied) are "
    "likely next tokens and sub-word pieces, not words that mean the same"
)


def shift(model, word: str, sentences: list[str], k: int, occurrence: int | None = None) -> dict:
    """The "bank" curve: `word`'s cosine between sentence 1 and each other sentence per layer
    `[n-1, L+1]`, and (encoders only) its k nearest vocabulary words per layer in every
    sentence `[n, L+1, k]`."""
    occ = occurrences(model, word, sentences, occurrence)
    cos = occ.cosines()[:, 0, 1:].T  # [n-1, L+1]
    decoder = model.kind == "decoder"
    near = None
    if not decoder:
        near = [
            [[w for w, _ in row] for row in nearest_words(model, occ.vectors[i], k, exclude=word)]
            for i in range(len(sentences))
        ]
    return {
        "word": word,
        "found": [{"text": w.text, "start": w.start, "end": w.end} for w in occ.found],
        "cosine": _round(cos, 4),
        "nearest": near,
        "nearest_note": DECODER_NEIGHBOURS if decoder else None,
    }


def coref(
    trace: Trace,
    pronoun: str | None,
    candidates: list[str] | None,
    occurrence: int | None = None,
) -> dict:
    """Which candidate the pronoun points to, by layer: its attention to each candidate averaged
    over heads `[L, c]`, rolled-out attention `[L, c]` and vector cosine `[L+1, c]`."""
    r = coref_report(trace, pronoun, candidates, occurrence)
    s = r.scores
    return {
        "pronoun": s.pronoun.text,
        "pronoun_at": [s.pronoun.start, s.pronoun.end],
        "candidates": [w.text for w in s.candidates],
        "proposed": r.proposed,
        "attention": _round(s.attention.mean(1), 4),
        "rollout": _round(s.rollout, 4),
        "similarity": _round(s.similarity, 4),
    }


MIN_POINTS = {"pca": 1, "tsne": 2, "umap": 3}


def projections() -> list[str]:
    """The 2-D projections the maps offer: PCA, UMAP (umap-learn) and t-SNE (scikit-learn)."""
    return list(PROJECTIONS)


def _umap(x):
    try:
        import umap
    except ImportError:
        raise ContextlensError(
            "umap-learn is not installed; pip install 'contextlens[maps]', or use method pca"
        ) from None
    n = x.shape[0]
    return umap.UMAP(
        n_components=2, n_neighbors=max(2, min(15, n - 1)), init="random", random_state=0
    ).fit_transform(x)


def _tsne(x):
    try:
        from sklearn.manifold import TSNE
    except ImportError:
        raise ContextlensError(
            "scikit-learn is not installed; pip install 'contextlens[maps]', or use method pca"
        ) from None
    perplexity = max(1.0, min(30.0, (x.shape[0] - 1) / 3))  # below the number of points
    return TSNE(
        2, perplexity=perplexity, init="pca", method="exact", max_iter=500, random_state=0
    ).fit_transform(x)


def to_2d(vectors: torch.Tensor, method: str) -> list:
    """`[n, d]` → `[n, 2]` points by PCA, UMAP or t-SNE, rounded for JSON. t-SNE runs exact
    (the Barnes-Hut approximation is slower than exact on the few hundred points sent here)."""
    if method not in PROJECTIONS:
        raise ContextlensError(
            f"projection {method!r} is not available; use one of {', '.join(PROJECTIONS)}"
        )
    n = vectors.shape[0]
    if n < MIN_POINTS[method]:
        raise ContextlensError(
            f"{method} needs at least {MIN_POINTS[method]} points (got {n}); use more words "
            "or method pca"
        )
    if method == "pca":
        return _round(project_2d(vectors), 4)
    x = vectors.double().numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        points = _umap(x) if method == "umap" else _tsne(x)
    return _round(torch.as_tensor(points), 4)


def projection(model, trace: Trace, layer: int, method: str = "pca") -> dict:
    """A sentence's contextual word vectors at `layer` (0 = input embeddings), in 2-D."""
    n = model.config.n_layers
    if not 0 <= layer <= n:
        raise ContextlensError(f"layer {layer} is out of range; {model.name} has 0..{n}")
    units = [w for w in words(trace) if not w.special]
    h = trace.hidden_states[layer].float()  # [s, d]
    vecs = torch.stack([h[list(w.tokens)].mean(0) for w in units])
    return {"labels": [w.text for w in units], "points": to_2d(vecs, method), "method": method}


def embeddings(model, texts: list[str]) -> dict:
    """Sentence embeddings `[n, d]` with the model's own pooling."""
    return {"texts": texts, "embeddings": _round(model.embed(texts).reshape(len(texts), -1), 5)}


def similarity(model, texts: list[str]) -> dict:
    """Sentence embeddings' cosine similarities `[n, n]`."""
    e = F.normalize(model.embed(texts).float().reshape(len(texts), -1), dim=-1)
    return {"texts": texts, "cosine": _round(e @ e.T, 4)}
