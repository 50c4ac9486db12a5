"""word2vec from scratch: skip-gram and CBOW with negative sampling (Mikolov et al. 2013), and
fastText's subword vectors (Bojanowski et al. 2017) for words never seen, loaded from a
fastText `.bin` or trained here (`subwords=True`).

Training reads the corpus as a stream (io/corpus.py): once for the word counts, then once per
epoch in blocks of word ids. In each block

    subsample:  a word w of corpus frequency f(w) survives with p = (√(f/(s·N)) + 1)·(s·N)/f
    window:     each kept word draws b ∈ [0, window) and sees window − b words each side:
                a row of its context ids `[2·window]`, those that exist first
    inputs:     skip-gram: each context word's input vector predicts the centre word
                CBOW: the mean of the context words' input vectors predicts it
    step:       for a batch of B centre words, the inputs v `[B, P, d]` (P = 2·window context
                slots for skip-gram, 1 for CBOW) and the output rows u `[B, 1 + k, d]` of the
                centre word and of `negative` noise words drawn from unigram^0.75:
                    g = lr · (label − σ(v·uᵀ))                    `[B, P, 1 + k]`
                    Δv = g·u,  Δu = gᵀ·v                          (index_add_ into the tables)
    subwords:   a word's input vector is the mean of its own row and its character n-grams'
                rows (hashed into `bucket` rows, as fastText does); Δv goes to each of them

The noise words are drawn once per centre word and shared by all its context words (the
"negative sample sharing" of Ji et al. 2016, "Parallelizing Word2Vec in Shared and Distributed
Memory"): the k + 1 output rows are gathered once per centre, not once per pair, and the step
is three small matrix products per centre instead of (1 + k) dot products per pair. gensim
and word2vec.c draw fresh noise words for every pair; the vectors score the same
(tests/test_word2vec.py::test_quality_against_gensim_on_news).

The learning rate falls linearly from `alpha` to `min_alpha` over all the words of all epochs,
as in word2vec.c and gensim. Every step is a handful of batched tensor operations: no Python
loop over words or pairs; a step is cut short enough that no row gets too many summed updates
at once (`Vocabulary.safe_batch`). `seed` fixes the initial vectors and every random draw, so a
run with the same settings and corpus on one worker (the default) gives the same vectors.

`track=[("king", "queen")]` records, at `checkpoints` evenly spaced moments from the random
start to the end, the cosine of each pair, the nearest neighbours of each tracked word and its
vector (analysis/learning.py turns them into a report and pictures).
"""

import math
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .errors import ContextlensError
from .io import corpus
from .io.fasttext import FastTextFile, buckets, ngram_rows, read_fasttext, write_fasttext
from .io.wordvectors import SUFFIX_FORMAT, atomic_path
from .static import WordVectors, _as_list

MODES = ("skipgram", "cbow")
NOISE_POWER = 0.75
NEIGHBOURS = 5  # neighbours recorded per tracked word at each checkpoint
MAX_REPEATS = 256  # expected updates of the commonest row in one step (see safe_batch)
KEEP_WORDS = 1 << 23  # a corpus of at most this many known words is read once, not every epoch
FASTTEXT_MODEL = {"cbow": 1, "skipgram": 2}  # fastText's model_name and loss_name numbers
FASTTEXT_LOSS = 2  # negative sampling
NOISE_TABLE = 1 << 21  # slots of the noise table (word2vec.c's unigram table, smaller)


@dataclass(frozen=True)
class Settings:
    """What a run trains, with gensim's defaults (`Word2Vec(sg=1)` for skip-gram)."""

    mode: str = "skipgram"
    dim: int = 100
    window: int = 5
    min_count: int = 5
    negative: int = 5
    sample: float = 1e-3
    alpha: float = 0.025
    min_alpha: float = 1e-4
    epochs: int = 5
    seed: int = 1
    batch: int = 1024  # centre words per step
    workers: int = 1  # threads training at once; 1 is repeatable, more are faster
    lowercase: bool = True
    subwords: bool = False  # fastText: a word's input vector is the mean of its n-gram rows too
    minn: int = 3  # shortest character n-gram (with subwords)
    maxn: int = 6  # longest character n-gram (with subwords)
    bucket: int = 200_000  # rows the n-grams are hashed into (with subwords)

    def check(self) -> None:
        """One clear error for a setting out of range, naming the option that sets it."""
        if self.mode not in MODES:
            raise ContextlensError(f"mode {self.mode!r} is unknown; use skipgram or cbow (--mode)")
        for name, value, low in (
            ("dim", self.dim, 1),
            ("window", self.window, 1),
            ("min_count", self.min_count, 1),
            ("negative", self.negative, 1),
            ("epochs", self.epochs, 1),
            ("batch", self.batch, 1),
            ("workers", self.workers, 1),
            ("minn", self.minn, 1),
            ("maxn", self.maxn, self.minn),
            ("bucket", self.bucket, 1),
        ):
            if value < low:
                option = name.replace("_", "-")
                raise ContextlensError(f"{name} must be ≥ {low} (got {value}); set --{option}")
        if not 0 <= self.sample < 1:
            raise ContextlensError(f"sample must be in [0, 1) (got {self.sample}); set --sample")
        if not 0 < self.min_alpha <= self.alpha:
            raise ContextlensError(
                f"need 0 < min_alpha ≤ alpha (got {self.min_alpha}, {self.alpha}); set --alpha"
            )


@dataclass
class Checkpoint:
    """The tracked words at one moment of training.

    progress: share of the training done (0 = random start, 1 = the end); words: corpus words
    read so far; loss: mean negative-sampling loss per pair since the previous checkpoint
    (None at the start); cosines: one per tracked pair; neighbours: word → [(word, cosine)];
    vectors: the tracked words' vectors `[w, d]`.
    """

    progress: float
    words: int
    lr: float
    loss: float | None
    cosines: list[float]
    neighbours: dict[str, list[tuple[str, float]]]
    vectors: torch.Tensor


@dataclass
class Training:
    """A finished run: the vectors, the settings, the corpus' size and speed, what was tracked."""

    vectors: WordVectors
    settings: Settings
    corpus_words: int
    seconds: float
    examples: int = 0  # training examples seen: pairs (skip-gram) or centre words (CBOW)
    pairs: list[tuple[str, str]] = field(default_factory=list)
    words: list[str] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)

    @property
    def words_per_second(self) -> float:
        """Corpus words read per second of training, all epochs (gensim's raw words/s)."""
        return self.corpus_words * self.settings.epochs / max(self.seconds, 1e-9)


@dataclass
class Progress:
    """Handed to the progress callback after each block: words read of `total`, the mean loss
    over the block, the learning rate and the speed so far."""

    words: int
    total: int
    loss: float
    lr: float
    words_per_second: float


class Vocabulary:
    """The words kept (count ≥ min_count), most frequent first, with their counts `[V]`."""

    def __init__(self, counts, min_count: int):
        kept = [(w, c) for w, c in counts.most_common() if c >= min_count]
        if not kept:
            top, n = counts.most_common(1)[0]
            raise ContextlensError(
                f"no word occurs {min_count} times or more (the commonest, {top!r}, occurs {n}); "
                "give a larger corpus or lower --min-count"
            )
        self.words = [w for w, _ in kept]
        self.index = {w: i for i, w in enumerate(self.words)}
        self.counts = np.array([c for _, c in kept], dtype=np.float64)
        self.total = int(sum(counts.values()))

    def keep_probability(self, sample: float) -> np.ndarray:
        """Each word's chance to survive subsampling `[V]` (gensim's formula; 1 when off)."""
        if sample == 0:
            return np.ones(len(self.words))
        threshold = sample * self.counts.sum()
        return np.minimum((np.sqrt(self.counts / threshold) + 1) * threshold / self.counts, 1.0)

    def noise(self, device) -> torch.Tensor:
        """A table of word ids `[NOISE_TABLE]` in which each word fills a share of the slots
        ∝ count^0.75 (word2vec.c's unigram table): a uniform slot is a noise word."""
        p = self.counts**NOISE_POWER
        ends = np.round(np.cumsum(p) / p.sum() * NOISE_TABLE).astype(np.int64)
        slots = np.diff(ends, prepend=0)  # [V] slots of each word
        return torch.from_numpy(np.repeat(np.arange(len(p)), slots)).to(device)

    def safe_batch(self, settings: Settings) -> int:
        """The most centre words one step may hold so that no row expects more than
        MAX_REPEATS of the step's updates (they are summed from the same stale vectors; far
        more than that for one frequent word overshoots, and the vectors diverge). Each centre
        word updates its output row and its noise rows once per context word (window + 1 of
        them on average) in skip-gram, and its context words' rows in CBOW. Large vocabularies
        allow big steps; a handful of words that make up the whole corpus force small ones.
        The workers' steps land on the same rows at once, so they share that budget."""
        kept = self.counts * self.keep_probability(settings.sample)
        noise = self.counts**NOISE_POWER
        share = kept.max() / kept.sum() + settings.negative * noise.max() / noise.sum()
        per_centre = settings.window + 1
        return max(1, int(MAX_REPEATS / share / per_centre / settings.workers))

    def check_tracked(self, words: Sequence[str], min_count: int) -> None:
        missing = [w for w in words if w not in self.index]
        if missing:
            raise ContextlensError(
                f"tracked word {missing[0]!r} occurs fewer than {min_count} times in the corpus "
                "(or not at all; words are lower-cased unless --keep-case); track other words "
                "or lower --min-count"
            )


def windows(block: corpus.Block, settings: Settings, rng: np.random.Generator):
    """Draw every word's reduced window in a (subsampled) block: `(centre [c], context
    [c, 2·window], count [c])`, the id of each centre word that has context words, the ids of
    those words (inside its sentence and its reduced window) first in each row, 0 after them,
    and how many there are. Rows are ordered by count, so that a step of neighbouring rows
    needs only as many columns as its longest row."""
    ids, sentence = block.ids, block.sentence
    w = settings.window
    reach = w - rng.integers(0, w, len(ids))  # [n] words each side this centre sees
    offsets = np.r_[-w:0, 1 : w + 1]  # [2w]
    at = np.arange(len(ids))[:, None] + offsets  # [n, 2w]
    inside = (at >= 0) & (at < len(ids))
    at = at.clip(0, max(len(ids) - 1, 0))
    mask = inside & (sentence[at] == sentence[:, None]) & (np.abs(offsets) <= reach[:, None])
    count = mask.sum(1)
    first = np.argsort(~mask, axis=1, kind="stable")  # the existing context words first
    context = np.take_along_axis(np.where(mask, ids[at], 0), first, 1)
    order = np.argsort(count, kind="stable")
    order = order[count[order] > 0]
    return ids[order], context[order], count[order]


def subword_rows(words: Sequence[str], settings: Settings) -> tuple[np.ndarray, np.ndarray]:
    """The input rows each word's vector is the mean of, with subwords: `(rows [T], lengths
    [V])`, word i's rows one after another (its own row i, then the rows V + hash % bucket of
    its character n-grams) and how many each word has."""
    grams = [buckets(w, settings.minn, settings.maxn, settings.bucket) for w in words]
    rows = np.concatenate([np.r_[i, len(words) + g] for i, g in enumerate(grams)])
    return rows, np.array([1 + len(g) for g in grams])


class Trainer:
    """The two tables (input `[V (+ bucket), d]`, output `[V, d]`) and one step of negative
    sampling. A word's input vector is the mean of its rows (`subword_rows`: its own row, and
    its n-grams' with subwords); an input's update goes whole to each of them, as fastText
    does. Workers share the tables (updated in place, lock-free, as word2vec.c's threads do);
    each brings its own random generator for noise words."""

    def __init__(self, vocab: Vocabulary, settings: Settings, device):
        self.settings = settings
        self.device = torch.device(device)
        gen = torch.Generator(self.device).manual_seed(settings.seed)
        n, d = len(vocab.words), settings.dim
        self.rows = self.lengths = self.starts = None  # [T], [V], [V] with subwords
        if settings.subwords:
            rows, lengths = subword_rows(vocab.words, settings)
            self.rows = torch.as_tensor(rows, device=self.device)
            self.lengths = torch.as_tensor(lengths, device=self.device)
            self.starts = self.lengths.cumsum(0) - self.lengths
        inputs = n + settings.bucket if settings.subwords else n
        init = torch.rand(inputs, d, generator=gen, device=self.device)
        self.w_in = (init - 0.5) / d  # word2vec.c's start: uniform in ±0.5/d
        self.w_out = torch.zeros(n, d, device=self.device)
        self.noise = vocab.noise(self.device)
        self.sign = torch.tensor([1.0] + [-1.0] * settings.negative, device=self.device)
        self.batch = min(settings.batch, vocab.safe_batch(settings))

    def generator(self, worker: int) -> torch.Generator:
        return torch.Generator(self.device).manual_seed(self.settings.seed + 1 + worker)

    def inputs(self, ids: torch.Tensor) -> torch.Tensor:
        """The input vector of each word ids `[B, P]`: `[B, P, d]`."""
        if self.rows is None:
            return F.embedding(ids, self.w_in)
        flat = ids.flatten()[:, None]
        return self.mean_inputs(flat, torch.ones_like(flat, dtype=torch.float32)).view(
            *ids.shape, -1
        )

    def mean_inputs(self, ids: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Σ_j weight[b, j] · (input vector of word ids[b, j]) `[B, d]` for ids `[B, P]`."""
        if self.rows is None:
            return F.embedding_bag(ids, self.w_in, per_sample_weights=weight, mode="sum")
        rows, lengths = self._rows(ids.flatten())
        share = torch.repeat_interleave(weight.flatten() / lengths, lengths)  # [T]
        bag = lengths.view(ids.shape).sum(1)  # [B] rows summed into each output
        offsets = bag.cumsum(0) - bag
        return F.embedding_bag(rows, self.w_in, offsets, per_sample_weights=share, mode="sum")

    def add_inputs(self, ids: torch.Tensor, delta: torch.Tensor) -> None:
        """Add delta `[B, P, d]` to the input vector of each word ids `[B, P]`: to every one of
        its rows."""
        if self.rows is None:
            self.w_in.index_add_(0, ids.flatten(), delta.flatten(0, 1))
            return
        rows, lengths = self._rows(ids.flatten())
        self.w_in.index_add_(0, rows, delta.flatten(0, 1).repeat_interleave(lengths, 0))

    def _rows(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The rows of words ids `[N]` one after another `[T]`, and how many each has `[N]`."""
        lengths = self.lengths[ids]
        shift = torch.repeat_interleave(self.starts[ids] - (lengths.cumsum(0) - lengths), lengths)
        return self.rows[torch.arange(len(shift), device=self.device) + shift], lengths

    def word_vectors(self) -> torch.Tensor:
        """Every word's input vector `[V, d]`: the mean of its rows."""
        if self.rows is None:
            return self.w_in
        ids = torch.arange(len(self.lengths), device=self.device)[:, None]
        return self.mean_inputs(ids, torch.ones_like(ids, dtype=torch.float32))

    def targets(self, centre: torch.Tensor, gen) -> tuple[torch.Tensor, torch.Tensor]:
        """The output rows of each centre word `[c]` and of `negative` noise words drawn for it
        `[c, 1 + k]`, and which of them count `[c, 1 + k]` (a noise draw of the centre word
        itself is skipped)."""
        k = self.settings.negative
        slot = torch.randint(len(self.noise), (len(centre), k), generator=gen, device=self.device)
        rows = torch.cat([centre[:, None], torch.take(self.noise, slot)], 1)
        drawn = rows != centre[:, None]
        drawn[:, 0] = True
        return rows, drawn

    def step(
        self, v: torch.Tensor, valid: torch.Tensor | None, rows: torch.Tensor, drawn, lr: float
    ) -> tuple[torch.Tensor, float]:
        """Negative sampling for inputs v `[B, P, d]` (`valid` `[B, P]` marks the real ones;
        None: all are) predicting the output rows `[B, 1 + k]` of their centre word against its
        noise words (`drawn` `[B, 1 + k]`, see `targets`): updates the output table, returns
        the inputs' update `[B, P, d]` (0 where not valid) and the summed loss."""
        use = drawn[:, None, :] if valid is None else valid[:, :, None] & drawn[:, None, :]
        out = F.embedding(rows, self.w_out)  # [B, 1 + k, d]
        score = torch.bmm(v, out.transpose(1, 2)).mul_(self.sign)  # [B, P, 1 + k], signed
        g = torch.sigmoid(-score).mul_(use).mul_(self.sign * lr)  # [B, P, 1 + k]
        loss = -float(F.logsigmoid(score).mul_(use).sum())
        self.w_out.index_add_(0, rows.flatten(), _products(g.transpose(1, 2), v).flatten(0, 1))
        return torch.bmm(g, out), loss

    def skipgram(self, work: "Work", lr, gen) -> tuple[float, int]:
        """Each context word's vector predicts its centre word, `batch` centres a step."""
        loss = 0.0
        for a, context, valid, rows, drawn in self._steps(work, gen):
            v = self.inputs(context)  # [B, P, d]
            dv, part = self.step(v, valid, rows, drawn, lr(a / len(work.centre)))  # [B, P, d]
            self.add_inputs(context, dv)
            loss += part
        return loss, int(work.count.sum())

    def cbow(self, work: "Work", lr, gen) -> tuple[float, int]:
        """The mean of a centre's context vectors predicts it, `batch` centres a step
        (gensim's cbow_mean=1: each context word gets the whole update)."""
        loss = 0.0
        for a, context, valid, rows, drawn in self._steps(work, gen):
            h = self.mean_inputs(context, valid / valid.sum(1, keepdim=True))  # [B, d]
            dh, part = self.step(h[:, None, :], None, rows, drawn, lr(a / len(work.centre)))
            self.add_inputs(context, dh * valid[:, :, None])
            loss += part
        return loss, len(work.centre)

    def _steps(self, work: "Work", gen):
        """`(first row, context [B, P], valid [B, P], rows [B, 1 + k], drawn [B, 1 + k])` for
        each step of a block (see `targets`), P the most context words of any of its rows. The
        noise words of the whole block are drawn at once."""
        context, count = (
            torch.as_tensor(x, device=self.device) for x in (work.context, work.count)
        )
        valid = torch.arange(context.shape[1], device=self.device) < count[:, None]  # [c, 2w]
        rows, drawn = self.targets(torch.as_tensor(work.centre, device=self.device), gen)
        for a in range(0, len(count), self.batch):
            b = min(a + self.batch, len(count))
            width = int(work.count[b - 1])  # the rows are sorted by count
            yield a, context[a:b, :width], valid[a:b, :width], rows[a:b], drawn[a:b]


def _products(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b for a `[B, m, P]`, b `[B, P, n]`: `[B, m, n]`; a broadcast product when P = 1
    (CBOW), where bmm is several times slower."""
    return a * b if a.shape[2] == 1 else torch.bmm(a, b)


@dataclass
class Work:
    """One block ready to train: centre ids `[c]`, their context ids `[c, 2·window]` and counts
    `[c]` (see `windows`), how many corpus words came before it (all epochs) and how many it
    stands for."""

    centre: np.ndarray
    context: np.ndarray
    count: np.ndarray
    before: int
    words: int


def _work(paths, vocab: Vocabulary, settings: Settings) -> Iterator[Work]:
    """Every block of every epoch, subsampled and windowed with the run's seeded generator."""
    rng = np.random.default_rng(settings.seed)
    keep = vocab.keep_probability(settings.sample)
    before = 0
    for block in _blocks(paths, vocab, settings):
        kept = rng.random(len(block.ids)) < keep[block.ids]
        block = corpus.Block(block.ids[kept], block.sentence[kept], block.words)
        yield Work(*windows(block, settings, rng), before, block.words)
        before += block.words


def _blocks(paths, vocab: Vocabulary, settings: Settings) -> Iterator[corpus.Block]:
    """The corpus' blocks once per epoch: read from the files each epoch, or, for a corpus of
    at most KEEP_WORDS known words, read once and kept in memory (16 bytes a word)."""
    kept: list[corpus.Block] | None = []
    size = 0
    for block in corpus.blocks(paths, vocab.index, settings.lowercase):
        yield block
        size += len(block.ids)
        if kept is not None and size <= KEEP_WORDS:
            kept.append(block)
        else:
            kept = None
    for _ in range(settings.epochs - 1):
        yield from (
            kept if kept is not None else corpus.blocks(paths, vocab.index, settings.lowercase)
        )


def _check_out(out: str | Path | None, subwords: bool) -> None:
    """Refuse an output file that could not be written, before any training time is spent."""
    if out is None:
        return
    out = Path(out)
    if subwords and out.suffix != ".bin":
        raise ContextlensError(
            f"subword vectors are saved as a fastText model: give --out a .bin name, not {out.name}"
        )
    if out.suffix not in SUFFIX_FORMAT:
        raise ContextlensError(
            f"cannot tell the format of {out.name}: give --out a .txt (glove), .vec (word2vec) "
            "or .bin (word2vec binary) name"
        )
    if not out.parent.is_dir():
        raise ContextlensError(f"{out.parent} is not a folder; create it first or change --out")


def _pairs(track: Sequence[Sequence[str]]) -> list[tuple[str, str]]:
    """Every pair of words within each tracked group: [("king", "queen"), …]."""
    pairs = []
    for group in track:
        group = list(group)
        if len(group) < 2:
            raise ContextlensError(
                f"a tracked group needs two or more words (got {group}); e.g. --track king,queen"
            )
        pairs += [(a, b) for i, a in enumerate(group) for b in group[i + 1 :]]
    return pairs


class Recorder:
    """Checkpoints of the tracked words at evenly spaced shares of training."""

    def __init__(self, vocab: Vocabulary, track, checkpoints: int, lowercase: bool):
        fold = str.lower if lowercase else str
        self.vocab = vocab
        self.pairs = [(fold(a), fold(b)) for a, b in _pairs(track)]
        self.words = list(dict.fromkeys(w for p in self.pairs for w in p))
        self.due = [i / checkpoints for i in range(checkpoints + 1)] if self.words else []
        self.taken: list[Checkpoint] = []
        self._loss, self._pairs = 0.0, 0

    def add_loss(self, loss: float, pairs: int) -> None:
        self._loss, self._pairs = self._loss + loss, self._pairs + pairs

    def maybe(
        self, vectors: Callable[[], torch.Tensor], progress: float, words: int, lr: float
    ) -> None:
        """Take a checkpoint of the word vectors `[V, d]` that `vectors()` gives if `progress`
        has reached the next one due."""
        if not self.due or progress + 1e-9 < self.due[0]:
            return
        while self.due and progress + 1e-9 >= self.due[0]:
            self.due.pop(0)
        w_in = vectors()
        unit = torch.nn.functional.normalize(w_in.float(), dim=1).cpu()  # [V, d]
        rows = torch.tensor([self.vocab.index[w] for w in self.words])
        sims = unit[rows] @ unit.T  # [w, V]
        sims[torch.arange(len(rows)), rows] = -math.inf
        top = sims.topk(min(NEIGHBOURS, len(unit) - 1), dim=1)
        at = {w: i for i, w in enumerate(self.words)}
        loss = self._loss / self._pairs if self._pairs else None
        self.taken.append(
            Checkpoint(
                progress=progress,
                words=words,
                lr=lr,
                loss=loss,
                cosines=[float(unit[rows[at[a]]] @ unit[rows[at[b]]]) for a, b in self.pairs],
                neighbours={
                    w: [
                        (self.vocab.words[j], round(float(s), 4))
                        for s, j in zip(
                            top.values[i].tolist(), top.indices[i].tolist(), strict=True
                        )
                    ]
                    for i, w in enumerate(self.words)
                },
                vectors=w_in[rows.to(w_in.device)].float().cpu().clone(),
            )
        )
        self._loss, self._pairs = 0.0, 0


def train_word2vec(
    corpus_paths: str | Path | Sequence[str | Path],
    out: str | Path | None = None,
    *,
    track: Sequence[Sequence[str]] = (),
    checkpoints: int = 8,
    progress: Callable[[Progress], None] | None = None,
    device: str | torch.device = "cpu",
    **options,
) -> Training:
    """Train word vectors on text files (plain, one sentence a line, or .gz) and, with `out`,
    save them (.txt GloVe, .vec word2vec text, .bin word2vec binary; with subwords a fastText
    .bin; written whole or not at all). `options` are the fields of `Settings`:
    mode="skipgram"|"cbow", dim, window, min_count, negative, sample, alpha, min_alpha, epochs,
    seed, batch, workers, lowercase, subwords, minn, maxn, bucket.

        run = train_word2vec("corpus.txt", "vectors.vec", track=[("king", "queen")])
        run.vectors.most_similar("king"); run.checkpoints[-1].cosines
    """
    paths = [corpus_paths] if isinstance(corpus_paths, str | Path) else list(corpus_paths)
    if not paths:
        raise ContextlensError("no corpus given; name one or more text files")
    unknown = set(options) - set(Settings.__dataclass_fields__)
    if unknown:
        known = ", ".join(Settings.__dataclass_fields__)
        raise ContextlensError(f"unknown setting {sorted(unknown)[0]!r}; use {known}")
    settings = Settings(**options)
    settings.check()
    if checkpoints < 1:
        raise ContextlensError(f"checkpoints must be ≥ 1 (got {checkpoints})")
    _check_out(out, settings.subwords)
    vocab = Vocabulary(corpus.count_words(paths, settings.lowercase), settings.min_count)
    recorder = Recorder(vocab, track, checkpoints, settings.lowercase)
    vocab.check_tracked(recorder.words, settings.min_count)
    trainer = Trainer(vocab, settings, device)
    started = time.perf_counter()
    examples = _epochs(paths, vocab, trainer, recorder, progress)
    seconds = time.perf_counter() - started
    vectors = _vectors(vocab, trainer, Path(out).name if out else "word2vec")
    if out is not None:
        _save(vectors, trainer, out)
    return Training(
        vectors,
        settings,
        vocab.total,
        seconds,
        examples,
        recorder.pairs,
        recorder.words,
        recorder.taken,
    )


def _vectors(vocab: Vocabulary, trainer: Trainer, name: str) -> WordVectors:
    """The trained input vectors; with subwords, a fastText model whose n-gram rows give
    vectors to words it never saw."""
    s = trainer.settings
    if not s.subwords:
        return WordVectors(vocab.words, trainer.w_in.cpu(), name=name)
    table = trainer.w_in.cpu().numpy()
    args = {
        "dim": s.dim, "ws": s.window, "epoch": s.epochs, "min_count": s.min_count,
        "neg": s.negative, "word_ngrams": 1, "loss": FASTTEXT_LOSS,
        "model": FASTTEXT_MODEL[s.mode], "bucket": s.bucket, "minn": s.minn, "maxn": s.maxn,
        "lr_update_rate": 100, "t": s.sample,
    }  # fmt: skip
    n = len(vocab.words)
    counts = [int(c) for c in vocab.counts]
    return SubwordVectors(
        FastTextFile(vocab.words, counts, table[:n], table[n:], s.minn, s.maxn, args), name
    )


def _save(vectors: WordVectors, trainer: Trainer, out: str | Path) -> None:
    """Word vectors in the format `out`'s suffix names; subword vectors as a fastText `.bin`
    with the output table (written whole or not at all)."""
    if not isinstance(vectors, SubwordVectors):
        return vectors.save(out)
    with atomic_path(Path(out)) as tmp, open(tmp, "wb") as f:
        write_fasttext(f, vectors.model, trainer.w_out.cpu().numpy())


def _train(work: Work, trainer: Trainer, total: int, gen) -> tuple[float, int]:
    """Train one block, the learning rate falling linearly with the words read."""
    s = trainer.settings

    def lr(share: float) -> float:
        done = work.before + share * work.words
        return max(s.min_alpha, s.alpha - (s.alpha - s.min_alpha) * done / total)

    if not len(work.centre):
        return 0.0, 0
    train = trainer.skipgram if s.mode == "skipgram" else trainer.cbow
    return train(work, lr, gen)


@contextmanager
def _threads(n: int):
    """torch's intra-op threads set to `n` for the block, then restored: the workers are the
    parallelism (an op split over threads waits at a barrier on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _epochs(paths, vocab: Vocabulary, trainer: Trainer, recorder: Recorder, progress) -> int:
    """Every epoch over the corpus: one worker trains in this thread (repeatable), several in
    threads that share the tables. Checkpoints and progress follow the blocks as they finish.
    Returns the number of training examples."""
    s = trainer.settings
    total = vocab.total * s.epochs
    started = time.perf_counter()
    done = examples = 0

    def finished(work: Work, loss: float, pairs: int) -> None:
        nonlocal done, examples
        done += work.words
        examples += pairs
        lr = max(s.min_alpha, s.alpha - (s.alpha - s.min_alpha) * done / total)
        recorder.add_loss(loss, pairs)
        recorder.maybe(trainer.word_vectors, done / total, done, lr)
        if progress:
            speed = done / max(time.perf_counter() - started, 1e-9)
            progress(Progress(done, total, loss / max(pairs, 1), lr, speed))

    recorder.maybe(trainer.word_vectors, 0.0, 0, s.alpha)
    with _threads(1 if trainer.device.type == "cpu" else torch.get_num_threads()):
        if s.workers == 1:
            gen = trainer.generator(0)
            for work in _work(paths, vocab, s):
                finished(work, *_train(work, trainer, total, gen))
        else:
            _threaded(_work(paths, vocab, s), trainer, total, finished)
    return examples


def _threaded(works: Iterator[Work], trainer: Trainer, total: int, finished) -> None:
    """Blocks trained by `workers` threads; this thread reads the corpus and reports."""
    jobs: queue.Queue = queue.Queue(maxsize=2 * trainer.settings.workers)
    results: queue.Queue = queue.Queue()

    def worker(i: int) -> None:
        gen = trainer.generator(i)
        while (work := jobs.get()) is not None:
            try:
                results.put((work, *_train(work, trainer, total, gen)))
            except Exception as e:  # handed to the reading thread, which raises it
                results.put(e)

    def drain() -> None:
        while not results.empty():
            item = results.get()
            if isinstance(item, BaseException):
                raise item
            finished(*item)

    threads = [
        threading.Thread(target=worker, args=(i,), daemon=True)
        for i in range(trainer.settings.workers)
    ]
    for t in threads:
        t.start()
    try:
        for work in works:
            jobs.put(work)
            drain()
    finally:
        for _ in threads:
            jobs.put(None)
        for t in threads:
            t.join()
    drain()


def load_fasttext(path: str | Path, name: str | None = None) -> "SubwordVectors":
    """The word vectors of a fastText model `.bin` (Facebook's format), able to give vectors to
    words it never saw from their character n-grams."""
    return SubwordVectors(read_fasttext(Path(path)), name or Path(path).name)


class SubwordVectors(WordVectors):
    """fastText vectors: a word's vector is the mean of its own row and its n-gram rows (as
    fastText's getWordVector computes it); an unknown word gets the mean of its n-gram rows, so
    misspelt and unseen words have vectors too. Neighbours are searched among known words."""

    def __init__(self, model: FastTextFile, name: str):
        self.model = model
        vectors = np.zeros((len(model.words), model.dim), np.float32)  # [n, d]
        for i, word in enumerate(model.words):
            rows = ngram_rows(word, model)
            vectors[i] = (model.word_rows[i] + model.ngram_matrix[rows].sum(0)) / (len(rows) + 1)
        super().__init__(model.words, torch.from_numpy(vectors), name)

    def lookup(self, word: str) -> str:
        """A known word, or an unknown one that has character n-grams to build a vector from."""
        if isinstance(word, str) and word not in self.index and len(ngram_rows(word, self.model)):
            return word
        return super().lookup(word)

    def vector(self, word: str) -> torch.Tensor:
        """The vector of any word `[d]`: its row if known, else the mean of its n-gram rows."""
        if word in self.index:
            return self.vectors[self.index[word]]
        rows = ngram_rows(self.lookup(word), self.model)
        return torch.from_numpy(self.model.ngram_matrix[rows].mean(0, dtype=np.float32))

    def __getitem__(self, words: str | Sequence[str]) -> torch.Tensor:
        if isinstance(words, str):
            return self.vector(words)
        return torch.stack([self.vector(w) for w in words])

    def get_unit(self, words: str | Sequence[str]) -> torch.Tensor:
        return F.normalize(self[words], dim=-1)

    def _as_queries(self, items) -> list:
        """Query items with each unknown word replaced by its n-gram vector (a raw vector is
        not left out of the answers, and an unknown word has no row to leave out)."""
        return [self.vector(x) if isinstance(x, str) and x not in self else x for x in items]

    def most_similar(self, positive=(), negative=(), k: int = 10, **options):
        pos, neg = self._as_queries(_as_list(positive)), self._as_queries(_as_list(negative))
        return super().most_similar(pos, neg, k, **options)

    def most_similar_cosmul(self, positive=(), negative=(), k: int = 10, **options):
        pos, neg = self._as_queries(_as_list(positive)), self._as_queries(_as_list(negative))
        return super().most_similar_cosmul(pos, neg, k, **options)
