"""Context shift: how one word's vector changes with the sentence around it, layer by layer.

At layer 0 a word's vector is its row of the input-embedding matrix (plus, for models with
learned or sinusoidal positions such as BERT, a position vector: then the same word at two
different positions already differs there). Each layer's attention mixes in the other words,
so "bank" beside "river" and "bank" beside "loan" drift apart.
"""

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache

import torch

from ..errors import ContextlensError
from ..metrics import normalize
from ..trace import Trace
from .embedding import rounded
from .words import Word, locate, word_vectors, words


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


# ── reports ─────────────────────────────────────────────────────────────────────────────────
DECODER_NEIGHBOURS = (
    "in a decoder, the hidden state at a word is shaped to predict the next token, so the "
    "input-embedding rows nearest to it (shared with the output head when tied) are likely next "
    "tokens and sub-word pieces, not words that mean the same"
)


@dataclass
class Neighbour:
    word: str
    cosine: float


@dataclass
class ShiftLayer:
    """One layer of a shift report: the average and the lowest cosine between two occurrences,
    the sense group (1..k) of each occurrence, and each occurrence's nearest input-embedding
    words `[n][k]`."""

    layer: int
    mean_cosine: float
    min_cosine: float
    groups: list[int]
    nearest: list[list[Neighbour]]


@dataclass
class Shift:
    """How `word`'s vector changes with its sentence, layer by layer.

    cosine: `[L+1, n, n]` — between every two occurrences, per layer ([0] input embeddings).
    right_context: per sentence, the cosine at the last layer between the word in the whole
        sentence and in the sentence cut right after it (None when nothing follows it).
    nearest_note: why the nearest words say little for this model (decoders), else None.
    """

    model: str
    word: str
    sentences: list[str]
    found: list[Word]
    position_in_input: bool
    layers: list[ShiftLayer]
    cosine: torch.Tensor
    right_context: list[float | None]
    nearest_note: str | None


def shift(model, occ: Occurrences, neighbours: int = 4, groups: int = 2) -> Shift:
    """The report on a word's occurrences (see `occurrences`): `neighbours` nearest words per
    occurrence and layer, `groups` sense groups (at most one per sentence)."""
    for name, value in (("neighbours", neighbours), ("groups", groups)):
        if value < 1:
            raise ContextlensError(f"{name} must be ≥ 1 (got {value})")
    n, n_layers, d = occ.vectors.shape
    word = occ.word
    cos = occ.cosines()
    mean = occ.mean_cosine()
    near = nearest_words(model, occ.vectors.transpose(0, 1).reshape(-1, d), neighbours, word)
    layers = [
        ShiftLayer(
            i,
            float(mean[i]),
            float(cos[i].min()),
            clusters(occ.vectors[:, i], min(groups, n)),
            [[Neighbour(*x) for x in row] for row in near[i * n : (i + 1) * n]],
        )
        for i in range(n_layers)
    ]
    moved = [
        float(right_context(model, s, (w.start, w.end), truncate=True).cosine[-1])
        if s[w.end :].strip()
        else None
        for s, w in zip(occ.sentences, occ.found, strict=True)
    ]
    note = DECODER_NEIGHBOURS if model.kind == "decoder" else None
    return Shift(
        model.name,
        word,
        occ.sentences,
        occ.found,
        position_in_input(model),
        layers,
        cos,
        moved,
        note,
    )


PROJECTIONS = ("pca", "umap", "tsne")
MIN_POINTS = {"pca": 1, "tsne": 2, "umap": 3}


def _umap(x):
    try:
        import umap
    except ImportError:
        raise ContextlensError(
            "umap-learn is not installed; pip install 'contextlens[maps]', or use method pca"
        ) from None
    n = x.shape[0]
    return umap.UMAP(
        n_components=2, n_neighbors=max(2, min(15, n - 1)), init="random", random_state=0
    ).fit_transform(x)


def _tsne(x):
    try:
        from sklearn.manifold import TSNE
    except ImportError:
        raise ContextlensError(
            "scikit-learn is not installed; pip install 'contextlens[maps]', or use method pca"
        ) from None
    perplexity = max(1.0, min(30.0, (x.shape[0] - 1) / 3))  # below the number of points
    return TSNE(
        2, perplexity=perplexity, init="pca", method="exact", max_iter=500, random_state=0
    ).fit_transform(x)


def to_2d(vectors: torch.Tensor, method: str) -> list:
    """`[n, d]` → `[n, 2]` points by PCA, UMAP or t-SNE, rounded to 4 decimals. t-SNE runs
    exact (the Barnes-Hut approximation is slower than exact on a few hundred points)."""
    if method not in PROJECTIONS:
        raise ContextlensError(
            f"projection {method!r} is not available; use one of {', '.join(PROJECTIONS)}"
        )
    n = vectors.shape[0]
    if n < MIN_POINTS[method]:
        raise ContextlensError(
            f"{method} needs at least {MIN_POINTS[method]} points (got {n}); use more words "
            "or method pca"
        )
    if method == "pca":
        return rounded(project_2d(vectors), 4)
    x = vectors.double().numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        points = _umap(x) if method == "umap" else _tsne(x)
    return rounded(torch.as_tensor(points), 4)


@dataclass
class Projection:
    """Labelled points `[n, 2]` in a 2-D projection (`method`: pca, umap or tsne)."""

    labels: list[str]
    points: list
    method: str


def sentence_map(trace: Trace, layer: int, method: str = "pca") -> Projection:
    """A sentence's contextual word vectors at `layer` (0 = input embeddings), in 2-D."""
    n = trace.hidden_states.shape[0] - 1
    if not 0 <= layer <= n:
        raise ContextlensError(f"layer {layer} is out of range; {trace.model} has 0..{n}")
    units = [w for w in words(trace) if not w.special]
    h = trace.hidden_states.float()[layer]  # [s, d]
    vecs = torch.stack([h[list(w.tokens)].mean(0) for w in units])
    return Projection([w.text for w in units], to_2d(vecs, method), method)
