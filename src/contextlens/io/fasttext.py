"""fastText model files (`.bin`, Facebook's format) and the character n-grams of its subwords.

The file, all little-endian:

    int32 magic 793712314, int32 version (≤ 12)
    args: int32 dim, ws, epoch, minCount, neg, wordNgrams, loss, model, bucket, minn, maxn,
          lrUpdateRate; float64 t
    dictionary: int32 size, nwords, nlabels; int64 ntokens, pruneidx_size;
          size × (word UTF-8 bytes, NUL, int64 count, int8 type); pruneidx_size × (int32, int32)
    input matrix: bool quantised; int64 rows (nwords + bucket), int64 dim; rows × dim float32
    output matrix: the same layout (word vectors do not need it; its size is checked)

Files from before the magic number (fastText 2016, some of gensim's test models) start directly
with the args and have no pruneidx_size and no quantised flag; they are told apart from a
word2vec binary (whose first bytes are ASCII digits) by their first two int32s, a plausible
dim and window.

A word is seen as `<word>`; its n-grams are the substrings of n = minn … maxn characters (UTF-8
continuation bytes never start or end one; a lone `<` or `>` is not one), each hashed with
32-bit FNV-1a over its bytes, every byte sign-extended first as fastText's `char` is signed, and
stored in row `nwords + hash % bucket`.
"""

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ContextlensError, regular_file

MAGIC = 793712314
VERSION = 12
ARGS = struct.Struct("<12id")
ARG_NAMES = ("dim", "ws", "epoch", "min_count", "neg", "word_ngrams", "loss", "model", "bucket")
ARG_NAMES += ("minn", "maxn", "lr_update_rate", "t")
MAX_WORD = 1 << 16  # bytes of one dictionary word
MAX_DIM, MAX_WINDOW = 1 << 16, 1 << 10  # plausible first two int32s of a file without magic
FNV_OFFSET, FNV_PRIME = 2166136261, 16777619


@dataclass
class FastTextFile:
    """What a fastText `.bin` holds for word vectors: the words (`nwords` of them, most frequent
    first) and counts, their own rows `[nwords, d]`, the n-gram bucket rows `[bucket, d]`, the
    n-gram lengths and the training arguments."""

    words: list[str]
    counts: list[int]
    word_rows: np.ndarray
    ngram_matrix: np.ndarray
    minn: int
    maxn: int
    args: dict

    @property
    def dim(self) -> int:
        return self.word_rows.shape[1]

    @property
    def bucket(self) -> int:
        return self.ngram_matrix.shape[0]


def layout(path: Path) -> str | None:
    """ "new" (magic number), "old" (fastText before the magic number) or None (not fastText)."""
    path = Path(path)
    if not path.is_file():
        return None
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8:
        return None
    first, second = struct.unpack("<2i", head)
    if first == MAGIC:
        return "new"
    return "old" if 0 < first <= MAX_DIM and 0 < second <= MAX_WINDOW else None


def fnv1a(data: bytes) -> int:
    """fastText's hash of a byte string: 32-bit FNV-1a over sign-extended bytes."""
    h = FNV_OFFSET
    for b in data:
        h = ((h ^ (b | 0xFFFFFF00 if b >= 0x80 else b)) * FNV_PRIME) & 0xFFFFFFFF
    return h


def ngrams(word: str, minn: int, maxn: int) -> list[bytes]:
    """The character n-grams of `<word>` fastText hashes, as UTF-8 bytes, in its order."""
    data = f"<{word}>".encode()
    starts = [i for i, b in enumerate(data) if b & 0xC0 != 0x80] + [len(data)]
    out = []
    for a, i in enumerate(starts[:-1]):
        for n in range(1, maxn + 1):
            if a + n >= len(starts):
                break
            j = starts[a + n]
            if n >= minn and not (n == 1 and (i == 0 or j == len(data))):
                out.append(data[i:j])
    return out


def ngram_rows(word: str, model: FastTextFile) -> np.ndarray:
    """The rows of `model.ngram_matrix` that hold `word`'s n-grams `[k]` (repeats kept)."""
    return buckets(word, model.minn, model.maxn, model.bucket)


def buckets(word: str, minn: int, maxn: int, bucket: int) -> np.ndarray:
    """The buckets `[k]` that `word`'s n-grams of minn … maxn characters hash to."""
    if maxn == 0 or bucket == 0:
        return np.zeros(0, np.int64)
    return np.array([fnv1a(g) % bucket for g in ngrams(word, minn, maxn)], dtype=np.int64)


class _Reader:
    """Little-endian values read from a fastText file, with one clear error at a short read."""

    def __init__(self, path: Path, f):
        self.path, self.f = path, f

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        data = self.f.read(size)
        if len(data) < size:
            raise self.truncated()
        return struct.unpack(fmt, data)

    def word(self) -> bytes:
        chunk = bytearray()
        while True:
            b = self.f.read(1)
            if not b:
                raise self.truncated()
            if b == b"\0":
                return bytes(chunk)
            chunk += b
            if len(chunk) > MAX_WORD:
                raise ContextlensError(
                    f"{self.path}: a dictionary word is longer than {MAX_WORD:,} bytes; the file "
                    "is corrupt"
                )

    def truncated(self) -> ContextlensError:
        return ContextlensError(
            f"{self.path} ends early: the fastText model is truncated; copy or download it again"
        )


def read_fasttext(path: Path) -> FastTextFile:
    """A fastText `.bin` model's word vectors, or one clear error naming what is wrong."""
    path = regular_file(path, "a fastText model (.bin)")
    kind = layout(path)
    if kind is None:
        raise ContextlensError(
            f"{path} is not a fastText model (no fastText header at its start); give a .bin "
            "written by fastText, or a word2vec file"
        )
    with open(path, "rb") as f:
        r = _Reader(path, f)
        version = r.take("<2i")[1] if kind == "new" else 0
        if version > VERSION:
            raise ContextlensError(
                f"{path} is a fastText model of format version {version}; this reader knows "
                f"versions up to {VERSION}"
            )
        args = dict(zip(ARG_NAMES, r.take(ARGS.format), strict=True))
        size, nwords, nlabels = r.take("<3i")
        if not 0 <= nwords <= size or args["dim"] < 1 or args["bucket"] < 0:
            raise ContextlensError(
                f"{path}: the header says {nwords} words of {size} entries, dim {args['dim']}, "
                f"{args['bucket']} buckets; the file is corrupt"
            )
        ntokens, pruned = r.take("<2q") if kind == "new" else (*r.take("<q"), 0)
        if nlabels or pruned > 0:  # fastText writes -1 when nothing was pruned
            kind = "a supervised (classifier)" if nlabels else "a quantised (pruned)"
            raise ContextlensError(
                f"{path} is {kind} fastText model; give an unsupervised model's .bin"
            )
        entries = [(r.word(), *r.take("<qb")) for _ in range(size)]
        (quantised,) = r.take("<?") if kind == "new" else (False,)
        if quantised:
            raise ContextlensError(
                f"{path} is a quantised fastText model (.ftz); give the full .bin model"
            )
        rows, dim = r.take("<2q")
        if rows != nwords + args["bucket"] or dim != args["dim"]:
            raise ContextlensError(
                f"{path}: the input matrix is {rows} × {dim}, expected {nwords + args['bucket']} "
                f"× {args['dim']} (words + buckets × dim); the file is corrupt"
            )
        if rows * dim * 4 > path.stat().st_size - f.tell():
            raise r.truncated()
        matrix = np.fromfile(f, dtype="<f4", count=rows * dim)
        _check_output(r, kind)
    matrix = matrix.reshape(rows, dim).astype(np.float32)
    words = [_decode(path, w) for w, _, _ in entries[:nwords]]
    return FastTextFile(
        words=words,
        counts=[c for _, c, _ in entries[:nwords]],
        word_rows=matrix[:nwords],
        ngram_matrix=matrix[nwords:],
        minn=args["minn"],
        maxn=args["maxn"],
        args=args | {"version": version, "ntokens": ntokens},
    )


def _check_output(r: _Reader, kind: str) -> None:
    """The output matrix (unused here) must be whole: a file cut inside it is truncated too."""
    if kind == "new":
        r.take("<?")
    rows, dim = r.take("<2q")
    if rows < 0 or dim < 0 or rows * dim * 4 != r.path.stat().st_size - r.f.tell():
        raise r.truncated()


def _decode(path: Path, word: bytes) -> str:
    try:
        return word.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ContextlensError(
            f"{path}: the word {word[:40]!r} is not UTF-8 ({e.reason}); the model must store "
            "its words in UTF-8"
        ) from None


def write_fasttext(f, model: FastTextFile, output: np.ndarray) -> None:
    """Write `model` with its output matrix `[nwords, d]` to the binary file `f` as a fastText
    `.bin` of the current layout (an unsupervised model: no labels, nothing pruned or
    quantised), which fastText, gensim and `read_fasttext` load."""
    f.write(struct.pack("<2i", MAGIC, VERSION))
    f.write(ARGS.pack(*(model.args[name] for name in ARG_NAMES)))
    f.write(struct.pack("<3i2q", len(model.words), len(model.words), 0, sum(model.counts), -1))
    for word, count in zip(model.words, model.counts, strict=True):
        f.write(word.encode() + b"\0" + struct.pack("<qb", count, 0))
    for matrix in (np.concatenate([model.word_rows, model.ngram_matrix]), output):
        f.write(struct.pack("<?2q", False, *matrix.shape))
        f.write(np.ascontiguousarray(matrix, dtype="<f4").tobytes())
