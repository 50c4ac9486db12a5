"""Why a chunk matched a query: the cosine split exactly into per-token contributions.

With mean pooling the chunk's vector is c = (1/n) Σ_i h_i over its n tokens (last hidden states
h_i `[d]`), and the query's is q = (1/m) Σ_j g_j. Their cosine is

    cos(q, c) = ĉ · q̂ = Σ_i (h_i · q̂) / (n |c|)        (ĉ = c / |c|, q̂ = q / |q|)

so chunk token i contributes (h_i · q̂) / (n |c|), and the contributions sum to the score.
Symmetrically, query token j contributes (g_j · ĉ) / (m |q|).
"""

from dataclasses import dataclass

import torch

from ..errors import ContextlensError


@dataclass(frozen=True)
class Explanation:
    score: float  # cosine of the query's and the chunk's mean-pooled vectors
    query: list[tuple[str, float]]  # (token, contribution), in text order; sums to score
    chunk: list[tuple[str, float]]  # (token, contribution), in text order; sums to score

    def top(self, side: str = "chunk", n: int = 8) -> list[tuple[str, float]]:
        """The n tokens of one side that added most to the score."""
        return sorted(getattr(self, side), key=lambda t: -t[1])[:n]


@torch.inference_mode()
def _hidden(model, text: str) -> tuple[list[str], torch.Tensor]:
    """(tokens, last hidden states `[s, d]`) of one text, exactly as `embed` pools them (cut to
    the model's limit, as search cuts queries)."""
    encoded = model.tokenize(text, truncate=True, limit=model.pooling.max_length)
    ids, mask = model._batch([encoded])
    return encoded.tokens, model.model(ids, mask)[0]


def contributions(hidden: torch.Tensor, other_unit: torch.Tensor) -> torch.Tensor:
    """Per-token shares `[s]` of cos(mean(hidden), other) for tokens `hidden` `[s, d]`."""
    mean = hidden.mean(0)
    return hidden @ other_unit / (hidden.shape[0] * mean.norm())


def explain(model, query: str, chunk: str) -> Explanation:
    """Per-token contributions of `query` and `chunk` to their cosine (mean-pooling models)."""
    if model.pooling.mode != "mean":
        raise ContextlensError(
            f"--explain needs a mean-pooling model; {model.name} pools by {model.pooling.mode}"
        )
    q_tokens, g = _hidden(model, query)
    c_tokens, h = _hidden(model, chunk)
    q_unit = torch.nn.functional.normalize(g.mean(0), dim=0)
    c_unit = torch.nn.functional.normalize(h.mean(0), dim=0)
    q_parts, c_parts = contributions(g, c_unit), contributions(h, q_unit)
    return Explanation(
        score=float(q_unit @ c_unit),
        query=list(zip(q_tokens, q_parts.tolist(), strict=True)),
        chunk=list(zip(c_tokens, c_parts.tolist(), strict=True)),
    )
