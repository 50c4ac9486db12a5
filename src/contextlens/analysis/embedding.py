"""Reports on text → tokens → vectors: a model's shape, the tokens of a text and the vectors they
start as, sentence embeddings and their similarities.

Each report is a dataclass; `contextlens.report.to_dict` turns it into the JSON that the CLI's
`--json` and the web API both give.
"""

from dataclasses import dataclass

import torch

from .. import metrics
from ..errors import ContextlensError
from ..io.catalog import CATALOG
from ..trace import Trace
from .words import Word, words

STRIP_TOKENS = 64  # the input vectors of at most this many tokens are reported


def rounded(x: torch.Tensor, digits: int) -> list:
    """`x` as nested lists of numbers rounded to `digits` decimals (JSON writes them short): for
    the large arrays a picture is drawn from, where more digits would only weigh."""
    return torch.round(x.detach().cpu().double(), decimals=digits).tolist()


@dataclass
class ModelInfo:
    """A transformer's shape."""

    name: str
    kind: str
    architecture: str
    n_layers: int
    n_heads: int
    d_model: int
    position: str


def model_info(name: str, model) -> ModelInfo:
    c = model.config
    return ModelInfo(name, model.kind, c.architecture, c.n_layers, c.n_heads, c.d_model, c.position)


@dataclass
class Tokens:
    """A text's tokens: ids, character spans, which are special, and their grouping into words
    (every view labels its axes with these)."""

    model: str
    text: str
    tokens: list[str]
    ids: list[int]
    offsets: list[tuple[int, int]]
    special: list[bool]
    words: list[Word]


def tokens_report(trace: Trace) -> Tokens:
    """The tokens of a trace (or of a tensor-less `Trace` made from a tokenizer's encoding)."""
    return Tokens(
        trace.model, trace.text, trace.tokens, trace.ids, trace.offsets, trace.special, words(trace)
    )


def tokenize(model, text: str, truncate: bool = False) -> Tokens:
    """`text`'s tokens without running the model (truncate=True: its first tokens when it is
    over the model's limit, with a `Truncated` warning)."""
    e = model.tokenize(text, truncate=truncate)
    return tokens_report(Trace(text, e.tokens, e.ids, e.offsets, e.special, model=model.name))


@dataclass
class InputVectors:
    """What enters layer 1, for the first `shown` tokens, each row `[shown, d_model]` rounded to
    3 decimals: the token's embedding-matrix row, its position vector (None for RoPE, which
    rotates q/k inside attention instead) and the input embedding (after the norm, if any)."""

    shown: int
    d_model: int
    position_kind: str
    norm: bool
    token: list
    position: list | None
    input: list


@dataclass
class TokenVectors:
    """Tokens → vectors: the tokens and the vectors they enter the model as."""

    tokens: Tokens
    vectors: InputVectors


def token_vectors(model, trace: Trace) -> TokenVectors:
    """Read from the trace's embedding parts (trace with embedding_parts=True)."""
    parts = trace.embedding_parts
    if parts is None:
        raise ContextlensError("this trace has no embedding parts; trace with embedding_parts=True")
    n = min(len(trace), STRIP_TOKENS)
    vectors = InputVectors(
        n,
        parts.token.shape[-1],
        model.config.position,
        parts.normed is not None,
        rounded(parts.token[:n], 3),
        None if parts.position is None else rounded(parts.position[:n], 3),
        rounded(parts.input[:n], 3),
    )
    return TokenVectors(tokens_report(trace), vectors)


@dataclass
class Embeddings:
    """Sentence embeddings `[n, d]` with the model's own pooling."""

    model: str
    texts: list[str]
    embeddings: torch.Tensor


def embeddings(model, texts: list[str], truncate: bool = False) -> Embeddings:
    return Embeddings(model.name, texts, model.embed(texts, truncate=truncate))


@dataclass
class Similarity:
    """How close every two texts (or words) are, each `[n, n]`: cosine of their embeddings, dot
    product, euclidean and manhattan distance."""

    model: str
    texts: list[str]
    cosine: torch.Tensor
    dot: torch.Tensor
    euclidean: torch.Tensor
    manhattan: torch.Tensor


def text_similarity(model, texts: list[str], truncate: bool = False) -> Similarity:
    """The similarity of the texts' sentence embeddings (the model's own pooling)."""
    return similarity(model.embed(texts, truncate=truncate), model.name, texts)


def similarity(vectors: torch.Tensor, model: str, texts: list[str]) -> Similarity:
    """vectors `[n, d]`, one per text (or word)."""
    a, b = vectors[:, None], vectors[None, :]
    return Similarity(
        model,
        texts,
        metrics.cosine(a, b),
        metrics.dot(a, b),
        metrics.euclidean(a, b),
        metrics.manhattan(a, b),
    )


@dataclass
class CatalogModel:
    """A model of the catalog, and where its files are (None when it is not installed)."""

    name: str
    kind: str
    description: str
    package: str
    installed: bool
    path: str | None


def catalog() -> list[CatalogModel]:
    """The catalog's models and whether each is installed."""
    out = []
    for e in CATALOG.values():
        path = e.path()
        out.append(
            CatalogModel(
                e.name, e.kind, e.description, e.package, path is not None, path and str(path)
            )
        )
    return out
