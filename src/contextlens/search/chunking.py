"""Split a document into chunks that fit the model: whole sentences packed up to a token budget.

A sentence longer than the budget is cut between words into pieces (and counted: `Chunked.split`);
nothing is ever truncated. Consecutive chunks share up to `overlap` tokens of whole sentences.
"""

import re
from bisect import bisect_left
from dataclasses import dataclass

from ..errors import ContextlensError
from ..io.tokenizer import Tokenizer

# A sentence ends after . ! ? (and closing quotes/brackets) followed by space, or at a blank line.
SENTENCE_END = re.compile(r"(?<=[.!?])[\"'’”)\]]*\s+|\n\s*\n")
MIN_TEXT_TOKENS = 8  # the fewest tokens of text a chunk may hold
DEFAULT_CHUNK_TOKENS = 200
DEFAULT_OVERLAP = 32


@dataclass(frozen=True)
class Chunk:
    text: str
    start: int  # character offsets of the chunk in its document
    end: int
    n_tokens: int  # tokens the model sees, special tokens included


@dataclass(frozen=True)
class Chunked:
    chunks: list[Chunk]
    split: int  # sentences longer than the budget that had to be cut into pieces


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of `text`, surrounding whitespace left out."""
    spans, start = [], 0
    for m in [*SENTENCE_END.finditer(text), None]:
        end = m.start() if m else len(text)
        piece = text[start:end]
        if piece.strip():
            left = start + len(piece) - len(piece.lstrip())
            spans.append((left, start + len(piece.rstrip())))
        start = m.end() if m else end
    return spans


def _pieces(
    span: tuple[int, int], starts: list[int], ends: list[int], budget: int
) -> list[tuple[int, int, int]]:
    """A sentence as (char start, char end, n tokens) pieces of at most `budget` tokens, cut
    before a token that begins a word where possible."""
    a, b = bisect_left(starts, span[0]), bisect_left(starts, span[1])
    if b == a:
        return []
    out = []
    while b - a > budget:
        cut = a + budget
        word_start = next(
            (c for c in range(cut, a + budget // 2, -1) if starts[c] > ends[c - 1]), cut
        )
        out.append((starts[a], ends[word_start - 1], word_start - a))
        a = word_start
    out.append((starts[a], ends[b - 1], b - a))
    return out


def check_chunking(n_special: int, max_tokens: int, overlap: int, limit: int | None = None) -> int:
    """Check chunk settings for a model adding `n_special` tokens to every text and reading at
    most `limit`; returns the tokens of text a chunk holds (`max_tokens - n_special`)."""
    smallest = n_special + MIN_TEXT_TOKENS
    largest = max_tokens if limit is None else limit
    if not isinstance(max_tokens, int) or not smallest <= max_tokens <= largest:
        most = " or more" if limit is None else f"..{limit}"
        raise ContextlensError(
            f"chunk size (--chunk-tokens) must be {smallest}{most} tokens (got {max_tokens})"
        )
    budget = max_tokens - n_special
    if not isinstance(overlap, int) or not 0 <= overlap < budget // 2:
        raise ContextlensError(
            f"overlap (--overlap) must be 0..{budget // 2 - 1} tokens for chunks of "
            f"{max_tokens} (got {overlap})"
        )
    return budget


def chunk_settings(model, chunk_tokens: int | None, overlap: int | None) -> dict[str, int]:
    """Checked chunk settings for `model` (a `LanguageModel`): `chunk_tokens` (None: 200 or the
    model's limit) and `overlap` (None: 32)."""
    limit = model.pooling.max_length or model.max_length
    tokens = min(DEFAULT_CHUNK_TOKENS, limit) if chunk_tokens is None else chunk_tokens
    overlap = DEFAULT_OVERLAP if overlap is None else overlap
    check_chunking(sum(model.tokenize("x").special), tokens, overlap, limit)
    return {"chunk_tokens": tokens, "overlap": overlap}


def chunk_text(text: str, tokenizer: Tokenizer, max_tokens: int, overlap: int) -> Chunked:
    """Chunks of `text` of at most `max_tokens` tokens each (special tokens included)."""
    enc = tokenizer.encode([text])[0]
    n_special = sum(enc.special)
    budget = check_chunking(n_special, max_tokens, overlap)
    real = [o for o, s in zip(enc.offsets, enc.special, strict=True) if not s]
    starts, ends = [o[0] for o in real], [o[1] for o in real]
    pieces, split = [], 0
    for span in sentence_spans(text):
        p = _pieces(span, starts, ends, budget)
        split += len(p) > 1
        pieces.extend(p)

    chunks: list[Chunk] = []
    current: list[tuple[int, int, int]] = []

    def emit() -> None:
        s, e = current[0][0], current[-1][1]
        chunks.append(Chunk(text[s:e], s, e, sum(p[2] for p in current) + n_special))

    for piece in pieces:
        if current and sum(p[2] for p in current) + piece[2] > budget:
            emit()
            kept, total = [], 0
            for p in reversed(current):
                if total + p[2] > overlap:
                    break
                kept.insert(0, p)
                total += p[2]
            while kept and total + piece[2] > budget:
                total -= kept.pop(0)[2]
            current = kept
        current.append(piece)
    if current:
        emit()
    return Chunked(chunks, split)
