"""What the API answers, as plain data: each function takes a model (or trace) and the request's
values and returns a JSON-ready dict. Long texts are aggregated here (top-k edges per query,
pooled thumbnails, per-layer summaries) so the page never receives every weight.
"""

import torch
import torch.nn.functional as F

from ..analysis.attention import check_layer_head, head_stats, require_attentions
from ..analysis.context import nearest_words, occurrences, project_2d
from ..analysis.coref import CorefCase, score
from ..analysis.words import words
from ..errors import ContextlensError
from ..sampling import check_sampling, next_token_distribution
from ..trace import Trace

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


def steps(trace: Trace, layer: int, head: int, query: int, causal: bool) -> dict:
    """One query token's attention in numbers: scores q·kᵀ/√d (None where the causal mask hides
    a key), the model's softmax weights, and the values V `[s, hd]` they average."""
    if trace.qkv is None:
        raise ContextlensError("this trace has no queries/keys/values; trace with qkv=True")
    check_layer_head(require_attentions(trace), layer, head)
    s = len(trace)
    if not 0 <= query < s:
        raise ContextlensError(f"query token {query} is out of range; the text has {s} tokens")
    q, k, v = trace.qkv[layer, :, head].float()  # each [s, hd]
    scale = q.shape[-1] ** -0.5
    scores = (k @ q[query]) * scale  # [s]
    visible = (torch.arange(s) <= query).tolist() if causal else [True] * s
    weights = trace.attentions[layer, head, query].float()  # [s]
    return {
        "layer": layer,
        "head": head,
        "query": query,
        "head_dim": q.shape[-1],
        "scale": scale,
        "scores": [
            round(x, 4) if ok else None for x, ok in zip(scores.tolist(), visible, strict=True)
        ],
        "weights": _round(weights, 5),
        "values": _round(v, 3),
        "output": _round(weights @ v, 3),
    }


def vectors(model, trace: Trace) -> dict:
    """Tokens → vectors: each token's embedding-matrix row, its position vector (learned or
    sinusoidal; None for RoPE, which rotates q/k inside attention instead) and the input
    embedding that enters layer 1. Rows `[n, d]` for the first STRIP_TOKENS tokens."""
    n = min(len(trace), STRIP_TOKENS)
    ids = torch.tensor(trace.ids[:n])
    positions = torch.arange(n)
    net = model.model
    with torch.inference_mode():
        token = net.tok.weight[ids]
        if net.pos is not None:
            position = net.pos.weight[positions]
        elif model.config.position == "sinusoidal":
            position = net.sinusoids[positions]
        else:
            position = None
        enters = net.embed(ids[None], positions)[0]
    return {
        "shown": n,
        "d_model": token.shape[-1],
        "position_kind": model.config.position,
        "norm": net.emb_norm is not None,
        "token": _round(token, 3),
        "position": None if position is None else _round(position, 3),
        "input": _round(enters, 3),
    }


def next_token(
    model,
    trace: Trace,
    k: int,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
) -> dict:
    """The k most likely next tokens under temperature / top-k / top-p, with their plain (T=1)
    probabilities, and where the last token looks: its attention over the text, averaged over
    layers and heads `[s]`."""
    model.require_decoder("next-token prediction")
    check_sampling(temperature, top_k, top_p)
    if temperature == 0:
        raise ContextlensError("temperature must be > 0 for a distribution; try 0.1 for greedy")
    logits = model.model.logits(trace.hidden_states[-1, -1].float())  # [vocab]
    probs = next_token_distribution(logits, temperature, top_k, top_p)
    plain = logits.softmax(-1)
    v, i = probs.topk(min(k, probs.shape[-1]))
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
        "kept": int((probs > 0).sum()),
        "vocab": probs.shape[-1],
        "attention": _round(look, 4),
    }


def shift(model, word: str, sentences: list[str], k: int) -> dict:
    """The "bank" curve: `word`'s cosine between sentence 1 and each other sentence per layer
    `[n-1, L+1]`, and its k nearest vocabulary words per layer in every sentence."""
    occ = occurrences(model, word, sentences)
    cos = occ.cosines()[:, 0, 1:].T  # [n-1, L+1]
    near = [
        [[w for w, _ in row] for row in nearest_words(model, occ.vectors[i], k, exclude=word)]
        for i in range(len(sentences))
    ]
    return {
        "word": word,
        "found": [{"text": w.text, "start": w.start, "end": w.end} for w in occ.found],
        "cosine": _round(cos, 4),
        "nearest": near,
    }


def coref(trace: Trace, pronoun: str, candidates: list[str]) -> dict:
    """Which candidate the pronoun points to, by layer: its attention to each candidate averaged
    over heads `[L, c]`, rolled-out attention `[L, c]` and vector cosine `[L+1, c]`."""
    if len(candidates) < 2:
        raise ContextlensError("give at least two candidates to choose between")
    s = score(trace, CorefCase(trace.text, pronoun, tuple(candidates)))
    return {
        "pronoun": s.pronoun.text,
        "candidates": [w.text for w in s.candidates],
        "attention": _round(s.attention.mean(1), 4),
        "rollout": _round(s.rollout, 4),
        "similarity": _round(s.similarity, 4),
    }


def projections() -> list[str]:
    """The 2-D projections this machine can do: PCA always, UMAP when umap-learn is installed."""
    import importlib.util

    return ["pca"] + (["umap"] if importlib.util.find_spec("umap") else [])


def to_2d(vectors: torch.Tensor, method: str) -> list:
    """`[n, d]` → `[n, 2]` points by PCA or UMAP, rounded for JSON."""
    if method not in projections():
        raise ContextlensError(
            f"projection {method!r} is not available; use one of {', '.join(projections())}"
            + (" (pip install umap-learn for umap)" if method == "umap" else "")
        )
    if method == "umap":
        import umap

        n = vectors.shape[0]
        reducer = umap.UMAP(n_components=2, n_neighbors=max(2, min(15, n - 1)), random_state=0)
        points = torch.as_tensor(reducer.fit_transform(vectors.double().numpy()))
    else:
        points = project_2d(vectors)
    return _round(points, 4)


def projection(model, trace: Trace, layer: int, method: str = "pca") -> dict:
    """A sentence's contextual word vectors at `layer` (0 = input embeddings), in 2-D."""
    n = model.config.n_layers
    if not 0 <= layer <= n:
        raise ContextlensError(f"layer {layer} is out of range; {model.name} has 0..{n}")
    units = [w for w in words(trace) if not w.special]
    h = trace.hidden_states[layer].float()  # [s, d]
    vecs = torch.stack([h[list(w.tokens)].mean(0) for w in units])
    return {"labels": [w.text for w in units], "points": to_2d(vecs, method)}


def embeddings(model, texts: list[str]) -> dict:
    """Sentence embeddings `[n, d]` with the model's own pooling."""
    return {"texts": texts, "embeddings": _round(model.embed(texts).reshape(len(texts), -1), 5)}


def similarity(model, texts: list[str]) -> dict:
    """Sentence embeddings' cosine similarities `[n, n]`."""
    e = F.normalize(model.embed(texts).float().reshape(len(texts), -1), dim=-1)
    return {"texts": texts, "cosine": _round(e @ e.T, 4)}
