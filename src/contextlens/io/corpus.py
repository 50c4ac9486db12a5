"""Text corpora for training word vectors, read as a stream: plain text, one sentence a line, or
either gzip-compressed (`.gz`). Nothing holds the whole corpus: `count_words` makes one pass for
the vocabulary, `blocks` one pass per epoch that yields word ids a block at a time, so a corpus
larger than memory trains in the memory of its vocabulary.

A line is a sentence (a context window never crosses a line end); a very long line (a whole
book on one line, as text8 is) is cut every `MAX_SENTENCE` words, as gensim's LineSentence does.
Words are runs of letters and digits (apostrophes and hyphens inside a word kept), lower-cased
unless `lowercase=False`.
"""

import gzip
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ContextlensError, regular_file

WORD = re.compile(r"\w+(?:['’-]\w+)*")
MAX_SENTENCE = 10_000  # words; longer lines are cut into sentences of this length
BLOCK_WORDS = 1 << 14  # words per block handed to the trainer (checkpoints fall between blocks)


@dataclass
class Block:
    """Word ids of consecutive sentences `[n]` int64, which sentence each word is in `[n]`
    int64, and how many words of the corpus (known or not) the block stands for."""

    ids: np.ndarray
    sentence: np.ndarray
    words: int


def tokenize(line: str, lowercase: bool = True) -> list[str]:
    """The words of one line: `"Don't panic, Arthur!"` → `["don't", "panic", "arthur"]`."""
    return WORD.findall(line.lower() if lowercase else line)


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def lines(paths: Sequence[str | Path]) -> Iterator[str]:
    """Every line of every file in turn, decoded as UTF-8; a file that is missing, not UTF-8,
    not gzip (for `.gz`) or unreadable is one clear error naming it and the line."""
    for path in paths:
        path = regular_file(path, "a text corpus (plain text, one sentence a line, or .gz)")
        number = 0
        try:
            with _open(path) as f:
                for raw in f:
                    number += 1
                    yield raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ContextlensError(
                f"{path}: line {number} is not UTF-8 text ({e.reason} at byte {e.start}); "
                "re-encode the corpus as UTF-8 (e.g. iconv -t UTF-8)"
            ) from None
        except (gzip.BadGzipFile, EOFError) as e:
            raise ContextlensError(
                f"{path} is not a complete gzip file ({e}); give it unpacked or repack it"
            ) from None
        except OSError as e:
            raise ContextlensError(f"{path} cannot be read ({e.strerror or e})") from None


def sentences(paths: Sequence[str | Path], lowercase: bool = True) -> Iterator[list[str]]:
    """The corpus as sentences of words: each line, cut every MAX_SENTENCE words; empty lines
    are left out."""
    for line in lines(paths):
        words = tokenize(line, lowercase)
        for start in range(0, len(words), MAX_SENTENCE):
            yield words[start : start + MAX_SENTENCE]


def count_words(paths: Sequence[str | Path], lowercase: bool = True) -> Counter:
    """How often each word occurs in the corpus (the first pass)."""
    counts: Counter = Counter()
    for words in sentences(paths, lowercase):
        counts.update(words)
    if not counts:
        names = ", ".join(str(p) for p in paths)
        raise ContextlensError(f"the corpus ({names}) holds no words; give a text file with words")
    return counts


def blocks(
    paths: Sequence[str | Path], index: dict[str, int], lowercase: bool = True
) -> Iterator[Block]:
    """The corpus as blocks of about BLOCK_WORDS word ids (words outside `index` dropped, as
    word2vec drops them before windows are drawn); whole sentences only."""
    ids: list[int] = []
    sentence: list[int] = []
    words = 0
    for number, tokens in enumerate(sentences(paths, lowercase)):
        known = [i for i in map(index.get, tokens) if i is not None]
        ids += known
        sentence += [number] * len(known)
        words += len(tokens)
        if len(ids) >= BLOCK_WORDS:
            yield Block(np.array(ids, np.int64), np.array(sentence, np.int64), words)
            ids, sentence, words = [], [], 0
    if words:
        yield Block(np.array(ids, np.int64), np.array(sentence, np.int64), words)
