"""Static word embeddings: one fixed vector per word (GloVe, word2vec, fastText).

A `WordVectors` is a vocabulary (words ↔ rows, in file order: frequency order for GloVe) and a
float32 matrix `[n, d]`. Every operation is a pass over the whole table, never a Python loop over
the vocabulary; nearest-word queries (`best`) first scan an int8 copy (`nn.scan`) and then score
exactly only the words that may still win:

    wv = contextlens.load("glove-50")
    wv.analogy("man", "king", "woman")[0]        # ('queen', 0.852...)   3CosAdd
    wv.most_similar(positive=["king", "woman"], negative=["man"])
    wv.similarity("king", "queen"), wv.doesnt_match(["breakfast", "lunch", "dinner", "car"])

Scores follow gensim's `KeyedVectors` exactly (same formulas, same exclusion of the query words,
same `restrict_vocab`), which the tests check on the same vectors. Unlike gensim, a word missing
from an all-lower-case vocabulary (GloVe 6B) is looked up lower-cased ("Paris" → "paris";
`wv.lookup` tells which word was used), and an unknown word's error suggests close words.
"""

import string
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from . import metrics
from .errors import ContextlensError
from .io.catalog import CatalogEntry, resolve
from .io.wordvectors import SUFFIX_FORMAT, non_finite_rows, read_vectors, write_vectors

if TYPE_CHECKING:
    from .nn.scan import Int8Scan

Query = str | torch.Tensor | np.ndarray | Sequence[float]
COSMUL_EPS = 1e-6  # Levy & Goldberg's ε, as gensim adds it
SUGGESTIONS = 3  # close words named when a word is unknown
ROUNDING = 1e-5  # bound on float32 rounding in one float32 cosine (d ≤ 1,000: < 4e-6)
EXACT_ROWS = 1 << 18  # rows scored exactly at once (in float64)
FLOAT_QUERIES = 64  # queries scored together by the float32 scan (`[64, n]` scores)


def _as_list(items) -> list:
    """A word or vector on its own, or a list of them, as a list."""
    if items is None:
        return []
    if isinstance(items, str | torch.Tensor | np.ndarray):
        return [items]
    if items and all(isinstance(x, int | float) for x in items):
        return [items]  # a plain list of numbers is one vector
    return list(items)


def _contenders(
    scores: torch.Tensor, k: int, exclude: torch.Tensor, slack: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows that may be among each query's k best once scored exactly: `(query, row)`, two
    int64 `[c]`, by query then row.

    scores `[m, r]` are each within `slack` of the exact score; a query's rows `exclude` `[m, e]`
    (-1 pads) never count. If k rows score at least t here, the k-th best exact score is at
    least t − slack, which a row below t − 2 · slack here cannot reach.
    """
    m, r = scores.shape
    banned = exclude.masked_fill((exclude < 0) | (exclude >= r), r)  # [m, e]: r = no row
    scores = torch.cat([scores, scores.new_zeros(m, 1)], 1).scatter_(1, banned, -torch.inf)
    scores = scores[:, :r]
    kth = torch.topk(scores, min(k, r), dim=1).values[:, -1:]  # [m, 1]
    return torch.nonzero((scores >= kth - 2 * slack) & (scores > -torch.inf), as_tuple=True)


def _top(
    query: torch.Tensor, rows: torch.Tensor, scores: torch.Tensor, m: int, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The k best `rows` `[c]` of each of m queries by `scores` `[c]` (`query` `[c]` says whose
    each is), equal scores: the earlier row first. Returns rows `[m, k]` int64 (-1 where a
    query has fewer) and scores `[m, k]` float32 (-inf there)."""
    order = torch.sort(rows, stable=True).indices
    order = order[torch.sort(scores[order], descending=True, stable=True).indices]
    order = order[torch.sort(query[order], stable=True).indices]
    query, rows, scores = query[order], rows[order], scores[order]
    rank = torch.arange(len(query)) - torch.searchsorted(query, query)  # place in its query
    keep = rank < k
    best = torch.full((m, k), -1, dtype=torch.long)
    best_scores = torch.full((m, k), -torch.inf)
    best[query[keep], rank[keep]] = rows[keep]
    best_scores[query[keep], rank[keep]] = scores[keep]
    return best, best_scores


class WordVectors:
    """Words and their vectors `[n, d]`, with a lazily computed unit-length copy.

    `notes` says what loading left out or merged (skipped rows, repeated words). A repeated
    word keeps its first row, as gensim does. A row with NaN or infinity is refused.
    """

    def __init__(
        self,
        words: list[str],
        vectors: torch.Tensor | np.ndarray,
        name: str = "vectors",
        notes: Sequence[str] = (),
    ):
        vectors = torch.as_tensor(vectors, dtype=torch.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(words):
            raise ContextlensError(
                f"{len(words)} words need a [{len(words)}, d] matrix, got {list(vectors.shape)}"
            )
        bad = non_finite_rows(vectors.detach().cpu().numpy())
        if len(bad):
            raise ContextlensError(
                f"row {bad[0] + 1} (word {words[bad[0]]!r}) of {name} holds NaN or infinity, "
                "which would rank it first for every query; drop or fix that row"
            )
        self.notes = list(notes)
        index = dict(zip(words, range(len(words)), strict=True))
        if len(index) != len(words):
            keep = sorted({w: i for i, w in reversed(list(enumerate(words)))}.values())
            repeated = next(w for i, w in enumerate(words) if index[w] != i)
            n = len(words) - len(keep)
            self.notes.append(
                f"left out {'1 later row' if n == 1 else f'{n:,} later rows'} of repeated words "
                f"(the first: {repeated!r}); each word keeps its first row, as gensim does"
            )
            words, vectors = [words[i] for i in keep], vectors[keep]
            index = dict(zip(words, range(len(words)), strict=True))
        self.name = name
        self.words = words
        self.index = index
        self.vectors = vectors
        self._norms: torch.Tensor | None = None
        self._unit: torch.Tensor | None = None
        self._scan: Int8Scan | bool | None = None  # False: no C compiler, scan in float32
        self._lowercase: bool | None = None

    # -- the table -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.index

    def __repr__(self) -> str:
        return f"WordVectors({self.name!r}, {len(self):,} words × {self.dim})"

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    @property
    def norms(self) -> torch.Tensor:
        """Euclidean length of every row: `[n]`."""
        if self._norms is None:
            self._norms = metrics.l2_norm(self.vectors)
        return self._norms

    @property
    def unit(self) -> torch.Tensor:
        """The rows scaled to length 1 (zero rows stay zero): `[n, d]`, computed once."""
        if self._unit is None:
            self._unit = self.vectors / self.norms.clamp_min(1e-12).unsqueeze(1)
        return self._unit

    @property
    def scan(self) -> "Int8Scan | None":
        """The int8 copy of the unit rows that `best` scans first (`nn.scan`, made on first use:
        52 bytes a row instead of 200 for d = 50), or None without a C compiler."""
        if self._scan is None:
            from .nn.scan import scanner  # not at module level: nn brings the gguf package

            self._scan = scanner(self.unit) or False
        return self._scan or None

    def best(
        self, queries: torch.Tensor, k: int, exclude: torch.Tensor, r: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The k words of the first r whose unit vectors are closest (cosine) to each unit
        query `[m, d]`, leaving out its rows `exclude` `[m, e]` (-1 pads); best first, equal
        cosines: the earlier row (the more frequent word) first. Returns rows `[m, k]` int64 (-1
        where fewer than k words remain) and their cosines `[m, k]` float32.

        A fast scan (`scan`, or float32 without a C compiler) keeps every row that could still
        be among the k best; only those are scored exactly (`exact_cosines`) and ranked, so the
        result is the ranking of every row by its exact cosine.
        """
        if self.scan is not None:
            return self.scan.best(queries, k, exclude, r)
        query, rows = self._float_candidates(queries, k, exclude, r)
        scores = self.exact_cosines(rows, queries[query])
        return _top(query, rows, scores, len(queries), k)

    def _float_candidates(
        self, queries: torch.Tensor, k: int, exclude: torch.Tensor, r: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`best`'s candidates from float32 cosines, FLOAT_QUERIES queries at a time."""
        found = []
        for start in range(0, len(queries), FLOAT_QUERIES):
            part = slice(start, start + FLOAT_QUERIES)
            query, rows = _contenders(queries[part] @ self.unit[:r].T, k, exclude[part], ROUNDING)
            found.append((query + start, rows))
        return torch.cat([q for q, _ in found]), torch.cat([r for _, r in found])

    def exact_cosines(self, rows: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """Cosines of the unit rows `rows` `[c]` with unit `queries` `[c, d]`, one each: `[c]`
        float32.

        Computed in float64 (each product of two float32 numbers is exact) and rounded to
        float32, so the order in which a kernel sums does not show: the same row gets the same
        score in any batch, and ties are real ties.
        """
        out = torch.empty(len(rows))
        for start in range(0, len(rows), EXACT_ROWS):
            part = slice(start, start + EXACT_ROWS)
            pairs = self.unit[rows[part]].double() * queries[part].double()  # [c, d]
            out[part] = pairs.sum(1).float()
        return out

    def _words(self, rows: torch.Tensor, scores: torch.Tensor) -> list[tuple[str, float]]:
        """`[(word, score)]` of one query's `best`, the -1 places left out."""
        best = zip(rows.tolist(), scores.tolist(), strict=True)
        return [(self.words[i], s) for i, s in best if i >= 0]

    @property
    def lowercase(self) -> bool:
        """Whether no word of the vocabulary has an upper-case letter (GloVe 6B), found once."""
        if self._lowercase is None:
            text = "\n".join(self.words)
            self._lowercase = text == text.lower()
        return self._lowercase

    def lookup(self, word: str) -> str:
        """The vocabulary word that stands for `word`: itself, or its lower-case form when it is
        missing and the vocabulary is all lower-case; else a ContextlensError naming it."""
        if not isinstance(word, str):
            raise ContextlensError(f"expected a word (a string), got {type(word).__name__}")
        if word in self.index:
            return word
        if word.lower() in self.index and self.lowercase:
            return word.lower()
        hint = f"; try {word.lower()!r}" if word.lower() in self.index else self._suggest(word)
        raise ContextlensError(
            f"{word!r} is not in the vocabulary of {self.name} ({len(self):,} words){hint}"
        )

    def _suggest(self, word: str) -> str:
        """A "did you mean" hint naming the commonest words one edit (a letter deleted, swapped,
        changed or added) away from `word`; empty when there are none or the word is long."""
        if len(word) > 40:
            return ""
        w = word.lower() if self.lowercase else word
        letters = set(string.ascii_lowercase) | set(w)
        splits = [(w[:i], w[i:]) for i in range(len(w) + 1)]
        edits = {a + b[1:] for a, b in splits if b}
        edits |= {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
        edits |= {a + c + b[1:] for a, b in splits if b for c in letters}
        edits |= {a + c + b for a, b in splits for c in letters}
        found = sorted(self.index[e] for e in edits if e in self.index)
        if not found:
            return ""
        return "; did you mean " + ", ".join(repr(self.words[i]) for i in found[:SUGGESTIONS]) + "?"

    def row(self, word: str) -> int:
        """The row of `word` (see `lookup`), or a ContextlensError that names it."""
        return self.index[self.lookup(word)]

    def rows(self, words: Sequence[str]) -> torch.Tensor:
        """Rows of several words: `[k]` int64."""
        return torch.tensor([self.row(w) for w in words], dtype=torch.long)

    def __getitem__(self, words: str | Sequence[str]) -> torch.Tensor:
        """The vector of one word `[d]`, or of several `[k, d]`."""
        if isinstance(words, str):
            return self.vectors[self.row(words)]
        return self.vectors[self.rows(list(words))]

    def get_unit(self, words: str | Sequence[str]) -> torch.Tensor:
        """Like `wv[words]` but unit length: `[d]` or `[k, d]`."""
        if isinstance(words, str):
            return self.unit[self.row(words)]
        return self.unit[self.rows(list(words))]

    # -- queries ---------------------------------------------------------------------------

    def _unit_queries(self, items: list) -> torch.Tensor:
        """Unit vectors of words or raw vectors: `[m, d]`."""
        out = []
        for x in items:
            if isinstance(x, str):
                out.append(self.get_unit(x))
            else:
                v = torch.as_tensor(np.asarray(x, dtype=np.float32))
                if v.shape != (self.dim,):
                    raise ContextlensError(
                        f"a query vector must have {self.dim} numbers, got shape {list(v.shape)}"
                    )
                if not torch.isfinite(v).all():
                    raise ContextlensError(
                        "a query vector holds NaN or infinity; give finite numbers"
                    )
                out.append(metrics.normalize(v))
        return torch.stack(out)

    def _limit(self, restrict_vocab: int | None) -> int:
        if restrict_vocab is not None and restrict_vocab < 1:
            raise ContextlensError(f"restrict_vocab must be ≥ 1 (got {restrict_vocab})")
        return min(restrict_vocab or len(self), len(self))

    def _asked(self, items: list, k: int, exclude_query: bool) -> torch.Tensor:
        """Rows of the query words to leave out of the answers (none if not `exclude_query`):
        `[1, e]` int64."""
        if k < 1:
            raise ContextlensError(f"k must be ≥ 1 (got {k})")
        rows = [self.row(w) for w in items if isinstance(w, str)] if exclude_query else []
        return torch.tensor([rows], dtype=torch.long).view(1, -1)

    def _split(self, positive, negative) -> tuple[list, list]:
        pos, neg = _as_list(positive), _as_list(negative)
        if not pos and not neg:
            raise ContextlensError("the query is empty; give at least one positive word")
        return pos, neg

    def most_similar(
        self,
        positive: Query | Sequence[Query] = (),
        negative: Query | Sequence[Query] = (),
        k: int = 10,
        *,
        exclude_query: bool = True,
        restrict_vocab: int | None = None,
        method: str = "3cosadd",
    ) -> list[tuple[str, float]]:
        """The k words closest to +positive and −negative, best first, with their scores.

        Words and vectors are unit-normalised first. `3cosadd`: the cosine with the mean of
        +positive and −negative, normalised. `3cosmul` (Levy & Goldberg 2014):
        Π (1 + cos(w, p)) / 2 / (Π (1 + cos(w, n)) / 2 + ε), each cosine shifted to [0, 1] so
        that one large similarity cannot dominate. The query words themselves are left out
        unless `exclude_query=False` (keeping them changes published analogy accuracies).
        `restrict_vocab=N` searches the first N words only.
        """
        pos, neg = self._split(positive, negative)
        exclude = self._asked(pos + neg, k, exclude_query)
        r = self._limit(restrict_vocab)
        if method not in ("3cosadd", "3cosmul"):
            raise ContextlensError(f"unknown analogy method {method!r}; use 3cosadd or 3cosmul")
        if method == "3cosmul" and not pos:
            raise ContextlensError("3CosMul needs at least one positive word")
        q = self._unit_queries(pos + neg)  # [m, d]
        if method == "3cosmul":
            rows, scores = self._cosmul(q, len(pos), k, exclude, r)
        else:
            sign = torch.tensor([1.0] * len(pos) + [-1.0] * len(neg)).unsqueeze(1)
            mean = metrics.normalize((sign * q).sum(0) / len(q))  # [d]
            rows, scores = self.best(mean.unsqueeze(0), k, exclude, r)
        return self._words(rows[0], scores[0])

    def most_similar_cosmul(self, positive=(), negative=(), k: int = 10, **options):
        """`most_similar(positive, negative, k, method="3cosmul", …)`, as gensim names it."""
        return self.most_similar(positive, negative, k, method="3cosmul", **options)

    def _cosmul(
        self, q: torch.Tensor, p: int, k: int, exclude: torch.Tensor, r: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """3CosMul's k best of the first r rows for unit queries `[m, d]`, the first p positive:
        rows `[1, k]` and scores `[1, k]` (as `best`)."""
        sims = (1 + self.unit[:r] @ q.T) / 2  # [r, m]
        scores = sims[:, :p].prod(1) / (sims[:, p:].prod(1) + COSMUL_EPS)
        query, rows = _contenders(scores.unsqueeze(0), k, exclude, 0.0)
        return _top(query, rows, scores[rows], 1, k)

    def analogy(
        self, a: str, b: str, c: str, k: int = 10, method: str = "3cosadd", **options
    ) -> list[tuple[str, float]]:
        """a is to b as c is to ?: `analogy("man", "king", "woman")[0][0] == "queen"`."""
        return self.most_similar([b, c], [a], k, method=method, **options)

    def similar_by_vector(
        self, vector: Query, k: int = 10, restrict_vocab: int | None = None
    ) -> list[tuple[str, float]]:
        """The k words whose vectors point most nearly the way `vector` `[d]` does (cosine)."""
        if isinstance(vector, str):
            raise ContextlensError("similar_by_vector takes a vector; use most_similar for words")
        return self.most_similar([vector], k=k, restrict_vocab=restrict_vocab)

    def similarity(self, w1: str, w2: str) -> float:
        """Cosine similarity of two words (1 = same direction, 0 = unrelated)."""
        return float(self.get_unit(w1) @ self.get_unit(w2))

    def distance(self, w1: str, w2: str, metric: str = "cosine") -> float:
        """Distance between two words: `cosine` (1 − similarity), `euclidean` or `manhattan`."""
        if metric == "cosine":
            return 1.0 - self.similarity(w1, w2)
        if metric in ("euclidean", "manhattan"):
            return float(getattr(metrics, metric)(self[w1], self[w2]))
        raise ContextlensError(f"unknown metric {metric!r}; use cosine, euclidean or manhattan")

    def doesnt_match(self, words: Sequence[str]) -> str:
        """The word farthest (cosine) from the normalised mean of the unit vectors of `words`."""
        words = list(words)
        if not words:
            raise ContextlensError("doesnt_match needs a list of words; the list is empty")
        u = self.get_unit(words)  # [k, d]
        sims = (u @ metrics.normalize(u.mean(0))).tolist()
        return min(zip(sims, words, strict=True))[1]  # ties: the first word in sorted order

    def arithmetic(self, expression: str) -> torch.Tensor:
        """The raw vector of `"king - man + woman"`: words joined by + and −, `[d]`."""
        tokens = expression.replace("+", " + ").replace("-", " - ").replace("−", " - ").split()
        if not tokens:
            raise ContextlensError("the expression is empty; write e.g. 'king - man + woman'")
        total, sign, expect_word = torch.zeros(self.dim), 1.0, True
        for tok in tokens:
            if tok in "+-" and not expect_word:
                sign, expect_word = (1.0 if tok == "+" else -1.0), True
            elif expect_word and tok not in "+-":
                total, expect_word = total + sign * self[tok], False
            else:
                raise ContextlensError(
                    f"cannot read {expression!r}: put + or − between words, "
                    "e.g. 'king - man + woman'"
                )
        if expect_word:
            raise ContextlensError(f"{expression!r} ends with an operator; end it with a word")
        return total

    # -- files -----------------------------------------------------------------------------

    def save(self, path: str | Path, format: str | None = None) -> str:
        """Write the table as `glove` (.txt), `word2vec` (.vec) or `word2vec-binary` (.bin)."""
        return write_vectors(Path(path), self.words, self.vectors.numpy(), format)


def holds_vectors(path: Path, entry: CatalogEntry | None) -> bool:
    """Whether a resolved catalog entry or file is a word-vector table (not a transformer)."""
    return entry.kind == "static" if entry else path.suffix in SUFFIX_FORMAT


def load_vectors(
    name_or_path: str | Path, name: str | None = None, *, skip_bad_rows: bool = False
) -> WordVectors:
    """A `WordVectors` from a catalog name (`glove-50`), a package directory or a GloVe /
    word2vec / fastText file.

    A row with NaN or infinity is an error naming its line; `skip_bad_rows=True` leaves such
    rows out instead, and `notes` says how many.
    """
    path, entry = resolve(name_or_path)
    if entry and entry.kind != "static":
        raise ContextlensError(
            f"{entry.name} is a transformer model, not word vectors; load it with "
            f"load_model({entry.name!r})"
        )
    file = read_vectors(path, skip_bad_rows)
    name = name or (entry.name if entry else path.name)
    return WordVectors(file.words, torch.from_numpy(file.matrix), name, file.notes)
