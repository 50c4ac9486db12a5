"""Similarity and distance between vectors, and softmax — on tensors of any batch shape.

Every function takes the vector axis as the last one and broadcasts the others, so
`cosine(a, b)` works for two vectors `[d]`, a batch against one vector `[n, d]` × `[d]`, or two
batches `[n, d]` × `[n, d]`. For all-pairs matrices use `cosine_matrix`.
"""

import math
from collections.abc import Sequence

import torch

from .errors import ContextlensError

Vectors = torch.Tensor | Sequence[float]


def _t(x: Vectors, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A float tensor of `x` (lists become `dtype`; tensors keep a floating dtype)."""
    if isinstance(x, torch.Tensor):
        t = x
    else:
        try:
            t = torch.tensor(x, dtype=dtype)
        except (TypeError, ValueError, RuntimeError):
            raise ContextlensError("expected numbers; pass a list of numbers or a tensor") from None
    if t.ndim == 0:
        raise ContextlensError("expected a vector, got a single number; pass a list or tensor")
    return t if t.is_floating_point() else t.float()


def _pair(a: Vectors, b: Vectors) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = _t(a), _t(b)
    if a.shape[-1] != b.shape[-1]:
        raise ContextlensError(
            f"vectors have different sizes ({a.shape[-1]} and {b.shape[-1]}); "
            "compare vectors from the same model"
        )
    return a, b


def dot(a: Vectors, b: Vectors) -> torch.Tensor:
    """Dot product over the last axis: `[..., d] · [..., d] -> [...]`."""
    a, b = _pair(a, b)
    return (a * b).sum(-1)


def l2_norm(a: Vectors) -> torch.Tensor:
    """Euclidean length over the last axis: `[..., d] -> [...]`."""
    return torch.linalg.vector_norm(_t(a), ord=2, dim=-1)


def l1_norm(a: Vectors) -> torch.Tensor:
    """Sum of absolute values over the last axis: `[..., d] -> [...]`."""
    return _t(a).abs().sum(-1)


def cosine(a: Vectors, b: Vectors, eps: float = 1e-12) -> torch.Tensor:
    """Cosine similarity a·b / (|a| |b|) over the last axis: `[..., d] × [..., d] -> [...]`.

    Clamped to [-1, 1]: rounding would otherwise give 1.0000001 for a vector and itself.
    """
    a, b = _pair(a, b)
    return (dot(a, b) / (l2_norm(a) * l2_norm(b)).clamp_min(eps)).clamp(-1.0, 1.0)


def euclidean(a: Vectors, b: Vectors) -> torch.Tensor:
    """Euclidean (L2) distance over the last axis: `[..., d] × [..., d] -> [...]`."""
    a, b = _pair(a, b)
    return l2_norm(a - b)


def manhattan(a: Vectors, b: Vectors) -> torch.Tensor:
    """Manhattan (L1) distance over the last axis: `[..., d] × [..., d] -> [...]`."""
    a, b = _pair(a, b)
    return l1_norm(a - b)


def normalize(a: Vectors, eps: float = 1e-12) -> torch.Tensor:
    """Scale each vector to unit length: `[..., d] -> [..., d]`."""
    a = _t(a)
    return a / l2_norm(a).unsqueeze(-1).clamp_min(eps)


def cosine_matrix(a: Vectors, b: Vectors) -> torch.Tensor:
    """All-pairs cosine similarity with one matrix product: `[n, d] × [m, d] -> [n, m]`."""
    a, b = _pair(a, b)
    return (normalize(a) @ normalize(b).T).clamp(-1.0, 1.0)


def check_temperature(temperature: float) -> None:
    """A softmax temperature must be a finite number above 0."""
    if not (math.isfinite(temperature) and temperature > 0):
        raise ContextlensError(f"temperature must be > 0 and finite (got {temperature}); try 1.0")


def softmax(scores: Vectors, temperature: float = 1.0, dim: int = -1) -> torch.Tensor:
    """exp(s / T) / Σ exp(s / T) along `dim`. T < 1 sharpens, T > 1 flattens; T must be > 0.

    Computed in float64 after subtracting the largest score, so huge finite scores work
    (`softmax([1e39, 1])` is [1, 0]); the result has the scores' dtype (float32 for a list).
    -inf means "never" (probability 0). +inf scores share all the mass equally, the limit as
    they grow together. NaN, and a row whose scores are all -inf, are errors.

    >>> softmax([3, 6, 7])   # tensor([0.0132, 0.2654, 0.7214])
    """
    check_temperature(temperature)
    given = _t(scores, torch.float64)
    s = given.double()
    if s.numel() == 0:
        raise ContextlensError("no scores given; pass at least one number")
    if s.isnan().any():
        raise ContextlensError("the scores contain NaN; give real numbers (-inf for 'never')")
    top = s.amax(dim, keepdim=True)
    if (top == -math.inf).any():
        raise ContextlensError(
            "every score is -inf, so no choice is possible; give at least one larger score"
        )
    infinite = top == math.inf
    p = torch.softmax((s - top.where(~infinite, 0.0)) / temperature, dim=dim)
    shared = (s == math.inf).double()
    p = p.where(~infinite, shared / shared.sum(dim, keepdim=True))
    return p.to(given.dtype if isinstance(scores, torch.Tensor) else torch.float32)
