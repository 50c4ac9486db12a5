"""Reports on what a decoder does with a text: the next-token distribution (with temperature,
top-k and top-p), where its last token looks, and generated text; and softmax itself."""

import math
from dataclasses import dataclass

import torch

from .. import metrics
from ..errors import ContextlensError
from ..sampling import check_sampling, next_token_distribution
from ..trace import Trace
from .attention import require_attentions
from .embedding import Tokens, tokens_report


@dataclass
class Candidate:
    """A possible next token: its id and text, its probability under the settings (`p`) and
    under the model's own distribution, T = 1 (`p1`)."""

    id: int
    text: str
    p: float
    p1: float


@dataclass
class NextTokens:
    """The k most likely next tokens under temperature / top-k / top-p — only those the settings
    keep (`kept` of `vocab`; `filtered` when top-k or top-p is on)."""

    model: str
    text: str
    temperature: float
    top_k: int | None
    top_p: float | None
    candidates: list[Candidate]
    kept: int
    filtered: bool
    vocab: int


def next_tokens(
    model,
    text: str,
    k: int = 10,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    truncate: bool = False,
) -> NextTokens:
    """The next-token report of a decoder (truncate=True: a prompt over the model's context
    keeps its last tokens, with a `Truncated` warning)."""
    if k < 1:
        raise ContextlensError(f"k must be ≥ 1 (got {k})")
    check_sampling(temperature, top_k, top_p)
    logits = model.next_token_logits(text, truncate=truncate)  # [vocab]
    probs = next_token_distribution(logits, temperature, top_k, top_p)
    plain = logits.float().softmax(-1)
    kept = int((probs > 0).sum())
    v, i = probs.topk(min(k, kept))
    candidates = [
        Candidate(j, model.tokenizer.decode([j]), p, float(plain[j]))
        for p, j in zip(v.tolist(), i.tolist(), strict=True)
    ]
    filtered = top_k is not None or (top_p is not None and top_p < 1)
    return NextTokens(
        model.name, text, temperature, top_k, top_p, candidates, kept, filtered, probs.shape[-1]
    )


@dataclass
class NextView:
    """The next-token report beside the text's tokens and where its last token looks: its
    attention over the text, averaged over layers and heads `[s]`."""

    tokens: Tokens
    next: NextTokens
    attention: torch.Tensor


def next_view(trace: Trace, report: NextTokens) -> NextView:
    look = require_attentions(trace)[:, :, -1].mean((0, 1))  # [s]
    return NextView(tokens_report(trace), report, look)


@dataclass
class Generation:
    """A prompt, the settings it was continued with (`LanguageModel.generate`'s), and the new
    text."""

    model: str
    prompt: str
    max_new_tokens: int
    temperature: float
    top_k: int | None
    top_p: float | None
    seed: int | None
    stop: list[str] | None
    truncate: bool
    text: str


@dataclass
class Chat:
    """A conversation: the messages ({role, content}) and the model's last reply."""

    model: str
    messages: list[dict]
    reply: str


@dataclass
class Softmax:
    """Scores → probabilities at a temperature; infinite scores written "inf" / "-inf" (JSON
    has no infinity)."""

    scores: list[float | str]
    temperature: float
    probabilities: list[float]


def softmax(numbers: list[float], temperature: float = 1.0) -> Softmax:
    probs = metrics.softmax(numbers, temperature=temperature).tolist()
    scores = [s if math.isfinite(s) else str(s) for s in numbers]
    return Softmax(scores, temperature, probs)
