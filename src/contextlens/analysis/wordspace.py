"""Reports on a static word-vector table (a `WordVectors`): its shape, a word's nearest words,
an analogy's answers and a 2-D map of chosen words. The CLI (`neighbors`, `analogy`) and the
web's word-space view show the same reports.

Words are looked up as the table spells them (`WordVectors.lookup`: "Paris" → "paris" in an
all-lower-case vocabulary); each report holds the spelling it used.
"""

from dataclasses import dataclass

import torch

from ..errors import ContextlensError
from ..static import WordVectors
from .context import Projection, to_2d


@dataclass(frozen=True)
class TableInfo:
    """A word-vector table's shape: `words` rows of `dim` numbers."""

    name: str
    kind: str
    words: int
    dim: int


@dataclass(frozen=True)
class Scored:
    """A word and its score: a cosine, or the 3CosMul score of an analogy."""

    word: str
    score: float


@dataclass(frozen=True)
class Neighbours:
    """The words nearest `word` (cosine of the vectors), best first."""

    model: str
    word: str
    neighbors: list[Scored]


@dataclass(frozen=True)
class Analogy:
    """a : b :: c : ? — the words nearest b − a + c (3cosadd) or best by 3cosmul, best first,
    the three inputs left out."""

    model: str
    a: str
    b: str
    c: str
    method: str
    answers: list[Scored]


def table_info(wv: WordVectors) -> TableInfo:
    return TableInfo(wv.name, "static", len(wv), wv.dim)


def _scored(pairs: list[tuple[str, float]]) -> list[Scored]:
    return [Scored(w, float(s)) for w, s in pairs]


def neighbours(wv: WordVectors, word: str, k: int = 10) -> Neighbours:
    word = wv.lookup(word)
    return Neighbours(wv.name, word, _scored(wv.most_similar(word, k=k)))


def analogy(
    wv: WordVectors, a: str, b: str, c: str, k: int = 5, method: str = "3cosadd"
) -> Analogy:
    a, b, c = (wv.lookup(w) for w in (a, b, c))
    answers = wv.analogy(a, b, c, k=k, method=method)
    if not answers:
        raise ContextlensError(
            f"{wv.name} has no word besides {a!r}, {b!r} and {c!r} to answer with; "
            "choose a table with a larger vocabulary (--model)"
        )
    return Analogy(wv.name, a, b, c, method, _scored(answers))


def word_map(wv: WordVectors, words: list[str], method: str = "pca") -> Projection:
    """Words' vectors in 2-D (PCA, UMAP or t-SNE): labels (as the table spells them) and
    points `[n, 2]`."""
    words = [wv.lookup(w) for w in words]
    vecs = torch.as_tensor(wv[words]).float()  # [n, d]
    return Projection(words, to_2d(vecs, method), method)
