"""Words ↔ tokens: the unit every user-facing output speaks in.

A tokenizer cuts "didn't" into `didn ' t` and "councilmen" into `council ##men`; people think
in words. `words(trace)` groups a trace's tokens into words (a special token such as [CLS] is a
word of its own) and `locate(trace, where)` finds one by its text (case-insensitive, whole
words, several words for a phrase, else a piece of a word made of whole tokens), by a
character span, or by a token index.

Han characters and kana are written without spaces, so each is a word of its own (BERT's
tokenizer splits them the same way; a token that covers several joins them again); a
combining mark (é written as e + ◌́, a Devanagari vowel sign) stays in the word it marks; and
emoji are words apart from the punctuation around them.
"""

import re
import unicodedata
from dataclasses import dataclass
from itertools import pairwise

import torch

from ..errors import ContextlensError
from ..trace import Trace

CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f"
LETTERS = rf"[^\W{CJK}]+"  # word characters other than Han and kana
SYMBOL = "\ue000"  # stands in for an emoji (or other non-ASCII symbol) while splitting words
# a Han or kana character, a word (with inner apostrophes: "didn't"), a possessive "'s" of its
# own, a run of emoji, or punctuation
WORD = re.compile(rf"[{CJK}]|{LETTERS}(?:['’](?!s\b){LETTERS})*|['’]s\b|{SYMBOL}+|[^\w\s{SYMBOL}]+")
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


def _for_splitting(text: str) -> str:
    """`text` with characters replaced (the length stays) so that `WORD` splits it well: a
    combining mark after a letter or digit becomes a letter, and a non-ASCII symbol becomes
    SYMBOL, with the joiners, skin tones and variation selectors that follow it."""
    if text.isascii():
        return text
    out: list[str] = []
    for c in text:
        kind = unicodedata.category(c)
        after = out[-1] if out else ""
        if kind.startswith("M") and after.isalnum():
            out.append("a")
        elif (kind.startswith("S") and not c.isascii()) or (
            after == SYMBOL and (kind.startswith("M") or c == "\u200d")
        ):
            out.append(SYMBOL)
        else:
            out.append(c)
    return "".join(out)


def _spans(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in WORD.finditer(_for_splitting(text))]


def markers(trace: Trace) -> list[bool]:
    """For each token, True if it is a marker rather than text: a special token the tokenizer
    added ([CLS], <s>) or one written out in the text (<|im_start|>). An unknown-token
    stand-in ([UNK] for an emoji) is text: it covers characters that are not its name."""
    return [
        special and (a >= b or trace.text[a:b] == token)
        for token, (a, b), special in zip(trace.tokens, trace.offsets, trace.special, strict=True)
    ]


def _trimmed(text: str, a: int, b: int) -> tuple[int, int]:
    """A token's character span without the whitespace at its ends (byte-level BPE tokens
    carry the space before a word)."""
    piece = text[a:b]
    return a + len(piece) - len(piece.lstrip()), b - len(piece) + len(piece.rstrip())


def words(trace: Trace) -> list[Word]:
    """The trace's tokens grouped into words, in order.

    A text word gets every token whose (whitespace-trimmed) span overlaps it; a token that
    straddles two text words merges them into one. Markers ([CLS], see `markers`) are words
    of their own, and so is a token that covers only whitespace (shown as ⏎, ⇥ or ·).
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
    for i, ((a, b), special) in enumerate(zip(trace.offsets, markers(trace), strict=True)):
        piece = trace.text[a:b]
        if special or not piece.strip():
            close()
            label = trace.tokens[i] if special or not piece else piece.translate(VISIBLE)
            out.append(Word(label, a, a if special else b, (i,), special=special))
            continue
        a, b = _trimmed(trace.text, a, b)
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
    """Several consecutive words as one (a phrase): their tokens together; the text has a space
    where the words had a gap."""
    if len(units) == 1:
        return units[0]
    start, end = units[0].start, units[-1].end
    text = units[0].text + "".join(
        (" " if prev.end < u.start else "") + u.text for prev, u in pairwise(units)
    )
    return Word(text, start, end, tuple(t for u in units for t in u.tokens))


def whole_tokens(trace: Trace, a: int, b: int) -> Word | None:
    """The text's characters a..b as a word of their own when they start and end at token
    boundaries (a word in text written without spaces, "bank" in "riverbank"); else None."""
    spans = [_trimmed(trace.text, x, y) for x, y in trace.offsets]
    inside = [
        i
        for i, ((x, y), special) in enumerate(zip(spans, markers(trace), strict=True))
        if not special and x < b and a < y
    ]
    if not inside or spans[inside[0]][0] != a or max(spans[i][1] for i in inside) != b:
        return None
    return Word(trace.text[a:b], a, b, tuple(inside))


def _pieces(trace: Trace, query: str) -> tuple[list[Word], tuple[int, int] | None]:
    """Every case-insensitive occurrence of `query` inside the text that is made of whole
    tokens, and the token span around the first occurrence that is not (None if none)."""
    found, partial = [], None
    for m in re.finditer(re.escape(query.strip()), trace.text, re.IGNORECASE):
        w = whole_tokens(trace, *m.span())
        if w is not None:
            found.append(w)
        elif partial is None:
            partial = _token_span(trace, *m.span())
    return found, partial


def _token_span(trace: Trace, a: int, b: int) -> tuple[int, int] | None:
    """The characters of all the tokens that overlap characters a..b."""
    spans = [
        _trimmed(trace.text, x, y)
        for (x, y), special in zip(trace.offsets, markers(trace), strict=True)
        if not special and x < b and a < y
    ]
    return (min(x for x, _ in spans), max(y for _, y in spans)) if spans else None


def isolate(trace: Trace, units: list[Word], word: Word) -> list[Word]:
    """`units` with `word` as one of them: the words it covers become `word`, and a word it
    covers only part of (a piece found by `locate`) keeps its other parts as words."""
    mine = set(word.tokens)
    out: list[Word] = []
    for u in units:
        if not mine & set(u.tokens):
            out.append(u)
            continue
        before = tuple(t for t in u.tokens if t < word.tokens[0])
        after = tuple(t for t in u.tokens if t > word.tokens[-1])
        if before:
            out.append(Word(trace.text[u.start : word.start], u.start, word.start, before))
        if word not in out:
            out.append(word)
        if after:
            out.append(Word(trace.text[word.end : u.end], word.end, u.end, after))
    return out


def find(trace: Trace, query: str, units: list[Word] | None = None) -> list[Word]:
    """Every occurrence of the word or phrase `query` in the trace (may be empty)."""
    units = units if units is not None else words(trace)
    return [merge([units[i] for i in m]) for m in _matches(units, query)]


def locate(
    trace: Trace,
    where: str | int | tuple[int, int],
    occurrence: int | None = None,
    units: list[Word] | None = None,
    option: str = "--occurrence",
) -> Word:
    """One word (or phrase) of the trace.

    where: a word or phrase (case-insensitive, whole words; else a piece of a word that starts
        and ends at token boundaries, such as 北京 in 我爱北京), a token index (the word holding
        that token; negative counts from the end), or a character span (start, end) — the words
        it overlaps, as one, or the piece of one word it marks out (see `whole_tokens`).
    occurrence: 1-based, when the word occurs more than once.
    option: what the CLI calls `occurrence`, for the error messages.
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
        inside_one = len(hit) == 1 and (hit[0].start < a or b < hit[0].end)
        return (inside_one and whole_tokens(trace, a, b)) or merge(hit)
    if not isinstance(where, str) or not where.strip():
        raise ContextlensError("the word to look for is empty; give a word of the text")
    found = find(trace, where, units) or _inside_words(trace, where, units)
    if occurrence is None:
        if len(found) > 1:
            at = ", ".join(f"{u.start}..{u.end}" for u in found)
            raise ContextlensError(
                f"{where!r} occurs {len(found)} times (characters {at}); choose one with "
                f"{option} 1..{len(found)} (in Python: occurrence=1..{len(found)} or a "
                "character span)"
            )
        return found[0]
    if not 1 <= occurrence <= len(found):
        raise ContextlensError(
            f"{where!r} occurs {len(found)} time(s); occurrence must be 1..{len(found)} "
            f"(got {option} {occurrence})"
        )
    return found[occurrence - 1]


def _inside_words(trace: Trace, where: str, units: list[Word]) -> list[Word]:
    """`where` inside the text's words (see `whole_tokens`), or an error saying what works."""
    found, partial = _pieces(trace, where)
    if found:
        return found
    if partial is not None:
        a, b = partial
        raise ContextlensError(
            f"{where!r} is not a word of the text: it is only part of a token there; choose "
            f"whole tokens, such as {trace.text[a:b]!r} (characters {a}..{b}; see "
            "`contextlens tokens`)"
        )
    raise ContextlensError(
        f"{where!r} is not a word of the text; its words are: {word_list(units)}"
    )


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
