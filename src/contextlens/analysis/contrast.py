"""Static against contextual, side by side: a static table (word2vec, GloVe, fastText) gives a
word one vector and so one list of neighbours, whatever the sentence; a transformer gives the
word a vector per sentence, and the neighbours change with the meaning ("bank" by a river
beside "bank" that lends money).

The contextual neighbours are ranked among `candidates` common words of the static table,
each run through the same transformer alone ("[CLS] shore [SEP]") and read at the same layer,
so that both sides choose from the same words.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import torch

from ..errors import ContextlensError
from ..lm import LanguageModel
from ..static import WordVectors
from .context import occurrences
from .words import locate, word_vectors

BATCH = 256  # candidate words traced at once


@dataclass
class InSentence:
    """The word in one sentence (as written there) and its nearest candidate words (cosine)."""

    sentence: str
    found: str
    neighbours: list[tuple[str, float]]


@dataclass
class Contrast:
    """One static neighbour list beside one contextual list per sentence."""

    word: str
    static_model: str
    static: list[tuple[str, float]]
    contextual_model: str
    layer: int
    candidates: int
    sentences: list[InSentence]


def candidate_words(wv: WordVectors, n: int) -> list[str]:
    """The first `n` words of the table (its most frequent, for GloVe and word2vec files)
    made of letters, two or more."""
    found = []
    for w in wv.words:
        if w.isalpha() and len(w) > 1:
            found.append(w)
            if len(found) == n:
                break
    return found


@cache
def _candidate_vectors(model: LanguageModel, words: tuple[str, ...], layer: int) -> torch.Tensor:
    """Each word traced alone, its tokens averaged at `layer`, unit length: `[n, d]`."""
    out = []
    for start in range(0, len(words), BATCH):
        chunk = list(words[start : start + BATCH])
        traces = model.trace(chunk, attentions=False)
        out += [
            word_vectors(t.hidden_states, locate(t, w))[layer]
            for t, w in zip(traces, chunk, strict=True)
        ]
    return torch.nn.functional.normalize(torch.stack(out).float(), dim=-1)


def contrast(
    word: str,
    sentences: Sequence[str],
    wv: WordVectors,
    model: LanguageModel,
    k: int = 8,
    layer: int | None = None,
    candidates: int = 3000,
) -> Contrast:
    """`word`'s k static neighbours in `wv` beside its k contextual neighbours in each of
    `sentences` (two or more) at `layer` of `model` (default: the last)."""
    if k < 1:
        raise ContextlensError(f"k must be ≥ 1 (got {k}); set --top")
    if candidates < k:
        raise ContextlensError(f"--candidates ({candidates}) must be at least --top ({k})")
    n = model.config.n_layers
    layer = n if layer is None else layer
    if not 0 <= layer <= n:
        raise ContextlensError(f"layer {layer} is out of range; {model.name} has 0..{n} (--layer)")
    static = wv.most_similar(word, k=k)
    folded = wv.lookup(word).casefold()
    pool = [w for w in candidate_words(wv, candidates + 50) if not w.casefold().startswith(folded)]
    pool = tuple(pool[:candidates])
    found = occurrences(model, word, sentences)
    mine = torch.nn.functional.normalize(found.vectors[:, layer].float(), dim=-1)  # [s, d]
    sims = mine @ _candidate_vectors(model, pool, layer).T  # [s, c]
    top = sims.topk(min(k, len(pool)), dim=1)
    rows = [
        InSentence(
            s,
            w.text,
            [(pool[j], round(v, 4)) for v, j in zip(vals.tolist(), idx.tolist(), strict=True)],
        )
        for s, w, vals, idx in zip(sentences, found.found, top.values, top.indices, strict=True)
    ]
    static = [(w, round(s, 4)) for w, s in static]
    return Contrast(word, wv.name, static, model.name, layer, len(pool), rows)
