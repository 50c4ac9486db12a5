"""Standard evaluations of static word vectors: analogies and word-pair similarity.

- Analogies (`questions-words.txt`, Mikolov et al. 2013): "a is to b as c is to ?" in sections
  (capitals, plurals, tenses, …); accuracy of the top answer by 3CosAdd or 3CosMul.
- Word pairs (WordSim-353, SimLex-999, MEN): Pearson and Spearman correlation of cosine
  similarity with human scores.

Both follow gensim's `evaluate_word_analogies` / `evaluate_word_pairs` protocol so the numbers
are comparable with published ones: words are matched upper-cased (the first, most frequent,
case variant wins), only the first `restrict_vocab` words are used, and questions or pairs with
an unknown word are skipped and counted as out-of-vocabulary (`oov`, and `oov_fraction` from 0
to 1, where gensim reports a percentage). 3CosAdd questions go through `WordVectors.best` all
at once (an int8 scan of the vocabulary keeps the few words that may be a question's best, which
are then scored exactly); 3CosMul questions are scored in batches: one `[vocabulary, questions]`
matrix product, a tile of the vocabulary at a time, reduced to the best score of each block of
words while in cache, then a blocked top-5 (`best_rows`).
"""

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import ContextlensError
from ..metrics import normalize
from ..static import COSMUL_EPS, WordVectors

DATA = Path(__file__).resolve().parent.parent / "data"
DATASETS = {
    "analogies": DATA / "questions-words.txt",
    "wordsim": DATA / "wordsim353.tsv",
    "simlex": DATA / "simlex999.txt",
    "men": DATA / "men-3k.txt",
}
METHODS = ("3cosadd", "3cosmul")
CANDIDATES = 5  # answers looked at per question, as gensim does
QUESTIONS = 170  # 3CosMul questions scored together (their [TILE, 3 × QUESTIONS] cosines)
TILE = 4096  # vocabulary rows scored at once: their [TILE, questions] scores stay in cache (L3)
BLOCK = 32  # words per block whose best score is kept


@dataclass
class AnalogySection:
    """One section of an analogy file: its questions, the answers given, which were right."""

    name: str
    questions: list[tuple[str, str, str, str]] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    correct: list[bool] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        """Fraction answered right (0.0 for a section with no in-vocabulary question)."""
        return sum(self.correct) / len(self.correct) if self.correct else 0.0


@dataclass
class AnalogyResult:
    path: str
    method: str
    restrict_vocab: int
    sections: list[AnalogySection]
    oov: int  # questions skipped because a word is not in the first restrict_vocab words

    @property
    def evaluated(self) -> int:
        return sum(len(s.correct) for s in self.sections)

    @property
    def n_correct(self) -> int:
        return sum(sum(s.correct) for s in self.sections)

    @property
    def accuracy(self) -> float:
        return self.n_correct / self.evaluated if self.evaluated else 0.0

    @property
    def oov_fraction(self) -> float:
        """Questions skipped, as a fraction of all questions (0 to 1, not a percentage)."""
        total = self.evaluated + self.oov
        return self.oov / total if total else 0.0

    def scores(self) -> "AnalogyScores":
        """The numbers of this result (without the questions and answers)."""
        sections = [
            SectionScores(s.name, s.accuracy, sum(s.correct), len(s.correct)) for s in self.sections
        ]
        return AnalogyScores(
            self.path,
            self.method,
            self.restrict_vocab,
            self.accuracy,
            self.n_correct,
            self.evaluated,
            self.oov,
            self.oov_fraction,
            sections,
        )


@dataclass(frozen=True)
class SectionScores:
    section: str
    accuracy: float
    correct: int
    evaluated: int


@dataclass(frozen=True)
class AnalogyScores:
    """An analogy evaluation's accuracy, overall and per section; `oov` questions skipped
    (`oov_fraction` of all, 0 to 1)."""

    path: str
    method: str
    restrict_vocab: int
    accuracy: float
    correct: int
    evaluated: int
    oov: int
    oov_fraction: float
    sections: list[SectionScores]


@dataclass(frozen=True)
class AnalogyComparison:
    """One analogy file answered by the word vectors `model` with each method (3cosadd, 3cosmul)."""

    model: str
    methods: dict[str, AnalogyScores]


@dataclass(frozen=True)
class WordPairScores:
    """Pearson and Spearman of cosine vs human scores over `pairs` word pairs of `file`; `oov`
    pairs skipped for an unknown word (`oov_fraction` of all, 0 to 1; gensim: a percentage)."""

    model: str
    file: str
    pearson: float
    spearman: float
    pairs: int
    oov: int
    oov_fraction: float


@dataclass(frozen=True)
class WordRows:
    """The raw vectors `[dim]` of some words of the table `model`, by word."""

    model: str
    dim: int
    vectors: dict[str, torch.Tensor]


def word_rows(wv: WordVectors, words: list[str]) -> WordRows:
    """The rows of `words` (spelt as the table spells them: `WordVectors.lookup`)."""
    return WordRows(wv.name, wv.dim, {w: wv[w] for w in words})


def compare_analogies(
    wv: WordVectors, path: str | Path, restrict_vocab: int = 300_000
) -> AnalogyComparison:
    """`evaluate_analogies` with every method, side by side."""
    methods = {m: evaluate_analogies(wv, path, m, restrict_vocab).scores() for m in METHODS}
    return AnalogyComparison(wv.name, methods)


def _lines(path: Path, what: str) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ContextlensError(f"{path} does not exist; give {what}") from None
    except UnicodeDecodeError as e:
        raise ContextlensError(f"{path} is not UTF-8 text ({e.reason})") from None


def _vocabulary(wv: WordVectors, restrict_vocab: int, case_insensitive: bool) -> dict[str, int]:
    """Lookup key → row over the first `restrict_vocab` words; the first case variant wins."""
    if restrict_vocab < 1:
        raise ContextlensError(f"restrict_vocab must be ≥ 1 (got {restrict_vocab})")
    r = min(restrict_vocab, len(wv))
    words = wv.words[:r]
    keys = map(str.upper, reversed(words)) if case_insensitive else reversed(words)
    return dict(zip(keys, range(r - 1, -1, -1), strict=True))


def read_analogies(path: Path, case_insensitive: bool = True) -> list[AnalogySection]:
    """Sections of `: name` lines followed by `a b c d` lines; other lines are skipped."""
    sections: list[AnalogySection] = []
    for number, line in enumerate(_lines(path, "an analogy file like questions-words.txt"), 1):
        if line.startswith(": "):
            sections.append(AnalogySection(line.lstrip(": ").strip()))
            continue
        words = line.upper().split() if case_insensitive else line.split()
        if not sections:
            raise ContextlensError(
                f"{path}:{number}: a question comes before any `: section` line; "
                "analogy files start with a section header"
            )
        if len(words) == 4:
            sections[-1].questions.append(tuple(words))
    if not any(s.questions for s in sections):
        raise ContextlensError(f"{path} has no `a b c d` analogy questions")
    return sections


def cosadd_queries(unit: torch.Tensor, abc: torch.Tensor) -> torch.Tensor:
    """The unit vector each 3CosAdd question `abc` `[q, 3]` is answered by: `[q, d]`, the
    normalised mean of b, c and −a as gensim's `most_similar` forms it."""
    ua, ub, uc = unit[abc].unbind(1)  # each [q, d]
    return normalize((ub + uc - ua) / 3)


def _cosmul(sims: torch.Tensor) -> torch.Tensor:
    """3CosMul scores from the cosines with a question's a, b and c `[..., 3, n]` (a fresh
    tensor, changed in place): `-> [..., n]`."""
    s = sims.add_(1).div_(2)  # cosines shifted to [0, 1], then b · c / (a + ε)
    return (s.select(-2, 1) * s.select(-2, 2)).div_(s.select(-2, 0).add_(COSMUL_EPS))


def _block_maxima(unit: torch.Tensor, r: int, queries: torch.Tensor) -> torch.Tensor:
    """The best 3CosMul score in each block of BLOCK consecutive rows among the first r of
    `unit`, for each question's a, b, c `queries` `[q, 3, d]`: `[⌈r / BLOCK⌉, q]`.

    The rows are scored TILE at a time and each tile is reduced at once, so the `[r, q]` scores
    are never written out whole: the matrix products run at the speed of arithmetic, not of
    memory.
    """
    q = len(queries)
    flat = queries.transpose(0, 1).flatten(0, 1).T.contiguous()  # [d, j * q], kind by kind
    out = torch.empty(-(-r // BLOCK), q)
    for start in range(0, r, TILE):
        tile = unit[start : min(start + TILE, r)] @ flat  # [t, j * q]
        scores = _cosmul(tile.view(len(tile), -1, q))  # [t, q]
        whole = len(scores) // BLOCK * BLOCK
        torch.amax(
            scores[:whole].view(-1, BLOCK, q), 1, out=out[start // BLOCK : (start + whole) // BLOCK]
        )
        if whole < len(scores):  # the last, shorter block
            out[-1] = scores[whole:].amax(0)
    return out


def best_rows(
    wv: WordVectors, r: int, abc: torch.Tensor, method: str, k: int = CANDIDATES
) -> torch.Tensor:
    """The k best of the first r words for each question `abc` `[q, 3]` (rows): `[q, k]` rows.

    The rows of a, b and c are never among them; -1 fills the places of a vocabulary too small
    to give k other words. 3CosAdd: `WordVectors.best`. 3CosMul, QUESTIONS at a time: instead
    of a top-k over every row of the `[r, q]` scores, keep the maximum of each block of BLOCK
    words (`_block_maxima`); a question's k best words lie in its k + 3 best blocks (a, b, c
    may win 3 of them), whose words are scored again and ranked.
    """
    if method == "3cosadd":
        return wv.best(cosadd_queries(wv.unit, abc), k, abc, r)[0]
    return torch.cat([_cosmul_best(wv.unit, r, part, k) for part in abc.split(QUESTIONS)])


def _cosmul_best(unit: torch.Tensor, r: int, abc: torch.Tensor, k: int) -> torch.Tensor:
    """`best_rows` for 3CosMul questions `abc` `[q, 3]`: `[q, k]`."""
    q = len(abc)
    queries = unit[abc]  # [q, 3, d]
    blocks = _block_maxima(unit, r, queries)  # [blocks, q]
    best_blocks = torch.topk(blocks, min(k + 3, len(blocks)), dim=0).indices.T  # [q, k + 3]
    columns = (best_blocks.unsqueeze(2) * BLOCK + torch.arange(BLOCK)).reshape(q, -1)  # [q, C]
    candidates = unit[columns.clamp_max(r - 1)]  # [q, C, d]
    exact = _cosmul(queries @ candidates.transpose(1, 2))  # [q, C]
    asked = (columns.unsqueeze(2) == abc.unsqueeze(1)).any(2)
    exact = exact.masked_fill(asked | (columns >= r), -torch.inf)
    best = torch.topk(exact, min(k, exact.shape[1]), dim=1)
    return columns.gather(1, best.indices).masked_fill(best.values == -torch.inf, -1)


def evaluate_analogies(
    wv: WordVectors,
    path: str | Path,
    method: str = "3cosadd",
    restrict_vocab: int = 300_000,
    case_insensitive: bool = True,
) -> AnalogyResult:
    """Answer every in-vocabulary question of an analogy file; accuracy per section and overall.

    The answer is the best-scoring word among the first `restrict_vocab` that is none of a, b, c
    (compared as lookup keys, so a case variant of a question word is not an answer either).
    """
    if method not in METHODS:
        raise ContextlensError(f"unknown analogy method {method!r}; use 3cosadd or 3cosmul")
    sections = read_analogies(Path(path), case_insensitive)
    vocab = _vocabulary(wv, restrict_vocab, case_insensitive)
    r = min(restrict_vocab, len(wv))
    key = str.upper if case_insensitive else str
    asked = [
        (s, q) for s in sections for q in s.questions if all(w in vocab for w in q)
    ]  # in file order
    oov = sum(len(s.questions) for s in sections) - len(asked)
    for s in sections:
        s.questions = []
    if asked:
        rows = torch.tensor([[vocab[w] for w in q] for _, q in asked])  # [q, 4]
        candidates = best_rows(wv, r, rows[:, :3], method).tolist()
        for (section, q), cands in zip(asked, candidates, strict=True):
            words = [wv.words[i] for i in cands if i >= 0]
            answer = next((w for w in words if key(w) not in q[:3]), words[-1] if words else "")
            section.questions.append(q)
            section.answers.append(answer)
            section.correct.append(key(answer) == q[3])
    return AnalogyResult(str(path), method, restrict_vocab, sections, oov)


def read_word_pairs(path: Path, case_insensitive: bool = True) -> list[tuple[str, str, float]]:
    """`word1 word2 score` lines (tab or space separated); `#` lines and other lines skipped."""
    pairs = []
    for line in _lines(path, "a word-pair file like wordsim353.tsv"):
        if line.startswith("#"):
            continue
        fields = line.upper().split() if case_insensitive else line.split()
        if len(fields) != 3:
            continue
        try:
            pairs.append((fields[0], fields[1], float(fields[2])))
        except ValueError:
            continue
    if not pairs:
        raise ContextlensError(f"{path} has no `word1 word2 score` lines")
    return pairs


def evaluate_word_pairs(
    wv: WordVectors,
    path: str | Path,
    restrict_vocab: int = 300_000,
    case_insensitive: bool = True,
) -> WordPairScores:
    """Pearson and Spearman of cosine(word1, word2) vs the human score, and the pairs skipped
    for an unknown word as `oov` (a count) and `oov_fraction` (0 to 1; gensim reports the
    same as a percentage)."""
    pairs = read_word_pairs(Path(path), case_insensitive)
    vocab = _vocabulary(wv, restrict_vocab, case_insensitive)
    known = [(vocab[a], vocab[b], s) for a, b, s in pairs if a in vocab and b in vocab]
    if len(known) < 3:
        raise ContextlensError(
            f"{path}: only {len(known)} of {len(pairs)} pairs have both words in {wv.name}; "
            "a correlation needs at least 3"
        )
    from scipy.stats import pearsonr, spearmanr  # slow to import; only this score needs it

    a, b, gold = zip(*known, strict=True)
    cosines = (wv.unit[list(a)] * wv.unit[list(b)]).sum(1).double().numpy()
    return WordPairScores(
        wv.name,
        str(path),
        float(pearsonr(gold, cosines).statistic),
        float(spearmanr(gold, cosines).statistic),
        len(known),
        len(pairs) - len(known),
        (len(pairs) - len(known)) / len(pairs),
    )
