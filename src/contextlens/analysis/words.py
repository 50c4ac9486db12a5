"""Words ↔ tokens: the unit every user-facing output speaks in.

A tokenizer cuts "didn't" into `didn ' t` and "councilmen" into `council ##men`; people think
in words. `words(trace)` groups a trace's tokens into words (a special token such as [CLS] is a
word of its own) and `locate(trace, where)` finds one by its text (case-insensitive, whole
words, several words for a phrase), by a character span, or by a token index.
"""

import re
from dataclasses import dataclass

import torch

from ..errors import ContextlensError
from ..trace import Trace

# a word (with inner apostrophes: "didn't"), a possessive "'s" of its own, or punctuation
WORD = re.compile(r"\w+(?:['’](?!s\b)\w+)*|['’]s\b|[^\w\s]+")
VISIBLE = str.maketrans({"\n": "⏎", "\t": "⇥", " ": "·", "\r": "␍"})  # whitespace-only tokens


@dataclass(frozen=True)
class Word:
    """One word of a trace: its text, character span in the text and token indices."""

    text: str
    start: int
    end: int
    tokens: tuple[int, ...]
    special: bool = False

    def __str__(self) -> str:
        return self.text


def _spans(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in WORD.finditer(text)]


def words(trace: Trace) -> list[Word]:
    """The trace's tokens grouped into words, in order.

    A text word gets every token whose (whitespace-trimmed) span overlaps it; a token that
    straddles two text words merges them into one. Special tokens are words of their own,
    and so is a token that covers only whitespace (shown as ⏎, ⇥ or ·).
    """
    spans = _spans(trace.text)
    out: list[Word] = []
    group: list[int] = []
    lo = hi = 0  # the character span of the group being built

    def close() -> None:
        if group:
            out.append(Word(trace.text[lo:hi], lo, hi, tuple(group)))
            group.clear()

    w = 0  # index into spans: the first text word that may still overlap a token
    for i, ((a, b), special) in enumerate(zip(trace.offsets, trace.special, strict=True)):
        piece = trace.text[a:b]
        if special or not piece.strip():
            close()
            label = trace.tokens[i] if special or not piece else piece.translate(VISIBLE)
            out.append(Word(label, a, a if special else b, (i,), special=special))
            continue
        a, b = a + len(piece) - len(piece.lstrip()), b - len(piece) + len(piece.rstrip())
        while w < len(spans) and spans[w][1] <= a:
            w += 1
        first, last = w, w
        while last + 1 < len(spans) and spans[last + 1][0] < b:
            last += 1
        span = (min(a, spans[first][0]), max(b, spans[last][1])) if w < len(spans) else (a, b)
        if group and span[0] < hi:
            hi = max(hi, span[1])
        else:
            close()
            lo, hi = span
        group.append(i)
    close()
    return out


def word_list(units: list[Word], limit: int = 40) -> str:
    """The words of a text for an error message: 'the, animal, …' (special tokens left out)."""
    texts = [u.text for u in units if not u.special]
    more = f", … ({len(texts)} words)" if len(texts) > limit else ""
    return ", ".join(texts[:limit]) + more


def _matches(units: list[Word], query: str) -> list[list[int]]:
    """Start..end word indices of every whole-word, case-insensitive match of `query`."""
    parts = [query[a:b].casefold() for a, b in _spans(query)]
    if not parts:
        return []
    texts = [u.text.casefold() if not u.special else None for u in units]
    n = len(parts)
    return [list(range(i, i + n)) for i in range(len(units) - n + 1) if texts[i : i + n] == parts]


def merge(units: list[Word]) -> Word:
    """Several consecutive words as one (a phrase): their tokens together."""
    if len(units) == 1:
        return units[0]
    start, end = units[0].start, units[-1].end
    text = " ".join(u.text for u in units)
    return Word(text, start, end, tuple(t for u in units for t in u.tokens))


def find(trace: Trace, query: str, units: list[Word] | None = None) -> list[Word]:
    """Every occurrence of the word or phrase `query` in the trace (may be empty)."""
    units = units if units is not None else words(trace)
    return [merge([units[i] for i in m]) for m in _matches(units, query)]


def locate(
    trace: Trace,
    where: str | int | tuple[int, int],
    occurrence: int | None = None,
    units: list[Word] | None = None,
) -> Word:
    """One word (or phrase) of the trace.

    where: a word or phrase (case-insensitive, whole words), a token index (the word holding
        that token; negative counts from the end), or a character span (start, end) — the words
        it overlaps, as one.
    occurrence: 1-based, when the word occurs more than once.
    """
    units = units if units is not None else words(trace)
    if isinstance(where, bool):
        raise ContextlensError(f"cannot locate {where!r}; give a word, token index or span")
    if isinstance(where, int):
        n = len(trace.ids)
        if not -n <= where < n:
            raise ContextlensError(f"token index {where} is out of range; the text has {n} tokens")
        i = where % n
        return next(u for u in units if i in u.tokens)
    if isinstance(where, tuple):
        a, b = where
        hit = [u for u in units if not u.special and u.start < b and a < u.end]
        if not hit or a >= b:
            raise ContextlensError(
                f"characters {a}..{b} hold no word of the text ({len(trace.text)} characters)"
            )
        return merge(hit)
    if not isinstance(where, str) or not where.strip():
        raise ContextlensError("the word to look for is empty; give a word of the text")
    found = find(trace, where, units)
    if not found:
        raise ContextlensError(
            f"{where!r} is not a word of the text; its words are: {word_list(units)}"
        )
    if occurrence is None:
        if len(found) > 1:
            at = ", ".join(f"{u.start}..{u.end}" for u in found)
            raise ContextlensError(
                f"{where!r} occurs {len(found)} times (characters {at}); choose one with "
                f"occurrence=1..{len(found)} (--occurrence in the CLI) or a character span"
            )
        return found[0]
    if not 1 <= occurrence <= len(found):
        raise ContextlensError(
            f"{where!r} occurs {len(found)} time(s); occurrence must be 1..{len(found)}"
        )
    return found[occurrence - 1]


def pooling_matrices(units: list[Word], n_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token → word matrices: mean `[w, s]` (a word's rows averaged) and sum `[s, w]` (its
    columns summed), so `mean @ A @ sum` turns token attention `[s, s]` into word attention
    `[w, w]` whose rows still sum to 1."""
    mean = torch.zeros(len(units), n_tokens)
    total = torch.zeros(n_tokens, len(units))
    for j, u in enumerate(units):
        idx = list(u.tokens)
        mean[j, idx] = 1.0 / len(idx)
        total[idx, j] = 1.0
    return mean, total


def word_vectors(hidden: torch.Tensor, word: Word) -> torch.Tensor:
    """A word's vector at every layer: its tokens' hidden states averaged, `[L+1, s, d]` →
    `[L+1, d]`."""
    return hidden[:, list(word.tokens)].mean(1)
