"""Choosing the next token from the LM head's logits: greedy, temperature, top-k, top-p."""

import math

import torch

from .errors import ContextlensError


def check_sampling(
    temperature: float, top_k: int | None, top_p: float | None, seed: int | None = None
) -> None:
    """One clear error for a setting outside its range (NaN and infinity included)."""
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ContextlensError(
            f"temperature must be ≥ 0 and finite (got {temperature}); 0 means greedy"
        )
    if top_k is not None and top_k < 1:
        raise ContextlensError(f"top_k must be ≥ 1 (got {top_k}); leave it unset for no limit")
    if top_p is not None and not 0 < top_p <= 1:
        raise ContextlensError(f"top_p must be in (0, 1] (got {top_p}); 1 keeps every token")
    if seed is not None and not 0 <= seed < 2**64:
        raise ContextlensError(f"seed must be a whole number in 0..2**64-1 (got {seed})")


def scaled_logits(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """logits `[vocab]` / T with the largest at 0, in float64 so that a tiny T neither overflows
    nor divides by zero; T = 0 is its limit, greedy: the top logit at 0, the others -inf."""
    shifted = logits.double() - logits.max()
    if temperature == 0:
        return shifted.masked_fill(shifted < 0, -torch.inf)
    return shifted / temperature


def next_token_distribution(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> torch.Tensor:
    """logits [vocab] -> probabilities [vocab] after temperature, top-k and top-p (nucleus).

    top-k keeps the k most likely tokens; top-p keeps the smallest set of most likely tokens
    whose probabilities add up to at least p. The rest get probability 0; the kept renormalise.
    Temperature 0 is greedy: all the mass on the top token.
    """
    logits = scaled_logits(logits, temperature).float()
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = logits.softmax(-1)
    if top_p is not None and top_p < 1:
        sorted_p, order = probs.sort(descending=True)
        before = sorted_p.cumsum(-1) - sorted_p  # mass of the tokens ranked above each one
        drop = torch.zeros_like(probs, dtype=torch.bool)
        drop[order] = before >= top_p  # the top token always stays (before = 0)
        probs = probs.masked_fill(drop, 0.0)
        probs = probs / probs.sum()
    return probs


def choose(
    logits: torch.Tensor,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    generator: torch.Generator | None,
) -> int:
    """One token id: argmax when temperature is 0, else a draw from the filtered distribution."""
    if temperature == 0:
        return int(logits.argmax())
    probs = next_token_distribution(logits, temperature, top_k, top_p)
    return int(torch.multinomial(probs, 1, generator=generator))
