"""The word-space view's answers: neighbours, analogies and a 2-D map of words, from a static
word-vector table (`contextlens.load("glove-50")`, a `WordVectors`)."""

import torch

from ..analysis.context import Projection, to_2d
from ..errors import ContextlensError
from ..report import to_dict
from ..static import WordVectors


def table(registry, name: str) -> WordVectors:
    """The word-vector table `name` (a served model of kind static)."""
    wv = registry.get(name)
    if not isinstance(wv, WordVectors):
        raise ContextlensError(
            f"{name} is a transformer model; neighbours and analogies need a word-vector table "
            "such as glove-50 (serve it with --models … glove-50)"
        )
    return wv


def info(name: str, wv) -> dict:
    return {"name": name, "kind": "static", "words": len(wv), "dim": wv.dim}


def spelled(wv, word: str) -> str:
    """`word` as the table spells it: itself, or its lowercase form when only that is in the
    table (GloVe's vocabulary is lowercase: "Paris" → "paris"); an unknown word is left for the
    table to refuse by name."""
    return word if word in wv or word.lower() not in wv else word.lower()


def _pairs(found) -> list[dict]:
    return [{"word": w, "cosine": round(float(c), 4)} for w, c in found]


def neighbours(wv, word: str, k: int) -> dict:
    word = spelled(wv, word)
    return {"word": word, "neighbours": _pairs(wv.most_similar(word, k=k))}


def analogy(wv, a: str, b: str, c: str, k: int) -> dict:
    """a : b :: c : ? — the words nearest b − a + c (the three inputs left out)."""
    a, b, c = (spelled(wv, w) for w in (a, b, c))
    return {"a": a, "b": b, "c": c, "answers": _pairs(wv.analogy(a, b, c, k=k))}


def project(wv, words: list[str], method: str = "pca") -> dict:
    """Words' vectors in 2-D (PCA, UMAP or t-SNE): labels (as the table spells them) and
    points `[n, 2]`."""
    words = [spelled(wv, w) for w in words]
    vecs = torch.as_tensor(wv[words]).float()  # [n, d]
    return to_dict(Projection(words, to_2d(vecs, method), method))
