"""Context shift: how one word's vector changes with the sentence around it, layer by layer.

At layer 0 a word's vector is its row of the input-embedding matrix (plus, for models with
learned or sinusoidal positions such as BERT, a position vector: then the same word at two
different positions already differs there). Each layer's attention mixes in the other words,
so "bank" beside "river" and "bank" beside "loan" drift apart.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache

import torch

from ..errors import ContextlensError
from ..metrics import normalize
from ..trace import Trace
from .words import Word, locate, word_vectors


def position_in_input(model) -> bool:
    """True if the input embeddings carry the position (learned or sinusoidal tables, as in
    BERT and GPT-2); False for RoPE models (Llama), whose layer-0 vector is the token's alone."""
    return model.config.position != "rope"


@dataclass
class Occurrences:
    """One word across several sentences.

    vectors: `[n, L+1, d]` — the word's vector (its tokens averaged) in each sentence, at each
        layer; [:, 0] the input embeddings.
    """

    word: str
    sentences: list[str]
    found: list[Word]
    vectors: torch.Tensor

    def cosines(self) -> torch.Tensor:
        """`[L+1, n, n]`: cosine similarity between every two occurrences, per layer."""
        v = normalize(self.vectors.transpose(0, 1))  # [L+1, n, d]
        return v @ v.mT

    def mean_cosine(self) -> torch.Tensor:
        """`[L+1]`: the average cosine over all pairs of different sentences, per layer."""
        c = self.cosines()
        n = c.shape[-1]
        upper = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
        return c[:, upper].mean(-1)


def occurrences(
    model,
    word: str,
    sentences: Sequence[str],
    occurrence: int | None = None,
    batch_size: int = 32,
    truncate: bool = False,
) -> Occurrences:
    """Trace `sentences` and collect `word`'s vector in each (see `Occurrences`); truncate=True
    cuts a sentence over the model's limit to its first tokens (with a `Truncated` warning)."""
    sentences = list(sentences)
    if len(sentences) < 2:
        raise ContextlensError(
            f"got {len(sentences)} sentence; comparing how {word!r} shifts needs at least two"
        )
    found, vectors = [], []
    for start in range(0, len(sentences), batch_size):
        chunk = sentences[start : start + batch_size]
        traces = model.trace(chunk, attentions=False, truncate=truncate)
        for n, trace in enumerate(traces, start=start):
            try:
                w = locate(trace, word, occurrence)
            except ContextlensError as e:
                raise ContextlensError(f"sentence {n + 1}: {e}") from None
            found.append(w)
            vectors.append(word_vectors(trace.hidden_states.float(), w))
    return Occurrences(word, sentences, found, torch.stack(vectors))


@dataclass
class Vocabulary:
    """The input-embedding rows of whole-word tokens, normalised, for nearest-word look-ups."""

    ids: torch.Tensor  # [V']
    labels: list[str]
    unit: torch.Tensor  # [V', d]


@cache
def _vocabulary(model) -> Vocabulary:
    tok = model.tokenizer.tok
    n = tok.get_vocab_size()
    pieces = [tok.id_to_token(i) or "" for i in range(n)]
    texts = tok.decode_batch([[i] for i in range(n)], skip_special_tokens=True)
    wordpiece = any(p.startswith("##") for p in pieces)

    def starts_word(piece: str, text: str) -> bool:
        return not piece.startswith("##") if wordpiece else text.startswith(" ")

    first: dict[str, int] = {}  # one id per word: the first in the vocabulary
    for i, (p, t) in enumerate(zip(pieces, texts, strict=True)):
        if t.strip().isalpha() and len(t.strip()) > 1 and starts_word(p, t):
            first.setdefault(t.strip(), i)
    keep = sorted(first.values())
    weight = model.model.tok.weight.detach().float()[keep]
    return Vocabulary(
        torch.tensor(keep),
        [texts[i].strip() for i in keep],
        torch.nn.functional.normalize(weight, dim=-1),
    )


def nearest_words(
    model, vectors: torch.Tensor, k: int = 5, exclude: str | None = None
) -> list[list[tuple[str, float]]]:
    """The k whole words whose input embedding is most cosine-similar to each vector.

    vectors `[n, d]` → n lists of (word, cosine). `exclude` leaves out words starting with it
    (the word itself and its inflections: "bank", "banks", "banking"). Input embeddings are
    the model's vocabulary of meanings at layer 0; later layers drift away from them, and in a
    decoder the last layers point towards the *next* word (the LM head reads them).
    """
    vocab = _vocabulary(model)
    sims = torch.nn.functional.normalize(vectors.float(), dim=-1) @ vocab.unit.T  # [n, V']
    if exclude:
        drop = [lab.casefold().startswith(exclude.casefold()) for lab in vocab.labels]
        sims[:, torch.tensor(drop)] = -2.0
    v, i = sims.topk(min(k, sims.shape[-1]), dim=-1)
    return [
        [(vocab.labels[j], x) for x, j in zip(row_v.tolist(), row_i.tolist(), strict=True)]
        for row_v, row_i in zip(v, i, strict=True)
    ]


def clusters(vectors: torch.Tensor, k: int = 2) -> list[int]:
    """Group occurrences by meaning: average-linkage clustering on cosine distance.

    vectors `[n, d]` → a cluster number (1..k) per occurrence, in order of first appearance.
    """
    from scipy.cluster.hierarchy import fcluster, linkage

    n = vectors.shape[0]
    if not 1 <= k <= n:
        raise ContextlensError(f"cannot make {k} groups of {n} occurrences; choose k in 1..{n}")
    if n == 1 or k == 1:
        return [1] * n
    x = torch.nn.functional.normalize(vectors.double(), dim=-1).numpy()
    raw = fcluster(linkage(x, method="average", metric="cosine"), t=k, criterion="maxclust")
    renumber: dict[int, int] = {}
    return [renumber.setdefault(int(c), len(renumber) + 1) for c in raw]


def project_2d(vectors: torch.Tensor) -> torch.Tensor:
    """PCA to two dimensions: `[n, d]` → `[n, 2]` (principal axes of the centred points)."""
    x = vectors.double() - vectors.double().mean(0)
    if x.shape[0] < 2:
        return torch.zeros(x.shape[0], 2)
    _, _, vt = torch.linalg.svd(x, full_matrices=False)
    out = x @ vt[:2].T
    return torch.nn.functional.pad(out, (0, 2 - out.shape[1])).float()


@dataclass
class RightContext:
    """How much a word's vector moved because of the words after it.

    cosine: `[L+1]` — the word's vector in the whole sentence vs in the sentence cut right
        after the word, per layer. 1.0 everywhere for a decoder (it never looks right).
    """

    word: Word
    prefix: str
    cosine: torch.Tensor
    full: Trace = field(repr=False)


def right_context(
    model,
    sentence: str,
    word: str | int | tuple[int, int],
    occurrence: int | None = None,
    truncate: bool = False,
) -> RightContext:
    """Compare `word` in `sentence` with the same word in the sentence cut right after it
    (truncate=True: a sentence over the model's limit is first cut to its first tokens)."""
    full = model.trace(sentence, attentions=False, truncate=truncate)
    w = locate(full, word, occurrence)
    prefix = sentence[: w.end]
    if prefix == sentence.rstrip() or w.special:
        raise ContextlensError(
            f"{w.text!r} is the last word of the sentence; pick a word with words after it"
        )
    cut = model.trace(prefix, attentions=False)
    w_cut = locate(cut, (w.start, w.end))
    a = word_vectors(full.hidden_states.float(), w)
    b = word_vectors(cut.hidden_states.float(), w_cut)
    return RightContext(w, prefix, torch.nn.functional.cosine_similarity(a, b, dim=-1), full)
