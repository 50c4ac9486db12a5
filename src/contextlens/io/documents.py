"""Documents to index, read from files: .txt/.md (as is), .html/.htm (visible text), .jsonl (one
document a line: a chosen text field, the other fields kept as metadata), .parquet (the same, one
document a row) and SMART collections
(`.I` records, e.g. Cranfield's `cran.all.1400`). Binary, non-UTF-8, empty, unreadable,
unsupported and non-regular files (FIFOs, sockets, devices) are skipped and reported, and so are
records whose text or name is not valid UTF-8.
"""

import hashlib
import json
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}


@dataclass(frozen=True)
class Document:
    name: str  # unique in an index: the file's absolute path, or `path#id` for a record
    text: str
    metadata: dict = field(default_factory=dict)

    @property
    def hash(self) -> str:
        data = self.text + "\0" + json.dumps(self.metadata, sort_keys=True)
        return hashlib.sha256(data.encode()).hexdigest()


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


class _Visible(HTMLParser):
    """The text a browser would show: no script/style, a line break after block elements."""

    BLOCKS = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "pre"}

    def __init__(self):
        super().__init__()
        self.parts: list[str] = []
        self.hidden = 0
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        self.hidden += tag in ("script", "style")
        self._in_title = tag == "title"
        if tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag):
        self.hidden -= tag in ("script", "style") and self.hidden > 0
        self._in_title = False
        if tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        elif not self.hidden:
            self.parts.append(data)


def html_text(html: str) -> tuple[str, str]:
    """(visible text, title) of an HTML page."""
    p = _Visible()
    p.feed(html)
    text = "".join(p.parts)
    text = re.sub(r"[ \t\r\f\v]+", " ", text)
    return re.sub(r"\s*\n\s*\n\s*", "\n\n", text).strip(), p.title.strip()


def smart_records(text: str) -> list[dict[str, str]]:
    """SMART records: `.I id`, then fields such as `.T` title, `.A` author, `.W` text."""
    records: list[dict[str, str]] = []
    key = None
    for line in text.splitlines():
        m = re.match(r"^\.([A-Z])(?:\s+(.*))?$", line)
        if m and m.group(1) == "I":
            records.append({"I": (m.group(2) or "").strip()})
            key = None
        elif m and records:
            key = m.group(1)
            records[-1][key] = ""
        elif key and records:
            records[-1][key] += line + "\n"
    return [{k: v.strip() for k, v in r.items()} for r in records]


def is_smart(text: str) -> bool:
    return text.startswith(".I ")


def utf8_problem(text: str) -> str | None:
    """Why `text` is not valid UTF-8 text, or None. Python keeps bytes it could not decode
    (in file names and command-line arguments) as lone surrogates: 0xff becomes U+DCFF."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        c = ord(text[e.start])
        what = f"byte 0x{c - 0xDC00:02x}" if 0xDC80 <= c <= 0xDCFF else f"lone surrogate U+{c:04X}"
        return f"not valid UTF-8 ({what} at character {e.start + 1})"
    return None


def shown(path: str | Path) -> str:
    """A path as it can be printed: bytes that are not UTF-8 written as \\xNN."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def decode_file(path: Path) -> tuple[str | None, str | None]:
    """(text, None) or (None, why it was skipped)."""
    if not path.is_file():
        return None, "not a regular file (a FIFO, socket, device or broken link)"
    try:
        data = path.read_bytes()
    except OSError as e:
        return None, f"cannot be read ({e.strerror or e})"
    if b"\0" in data[:8192]:
        return None, "binary file"
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        return None, f"not UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start})"
    if not text.strip():
        return None, "empty"
    return text, None


def _jsonl(path: Path, text: str, text_field: str, id_field: str | None):
    docs, skipped = [], []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            skipped.append(Skipped(f"{path}:{n}", "not a JSON object"))
            continue
        body = obj.get(text_field) if isinstance(obj, dict) else None
        if not isinstance(body, str) or not body.strip():
            skipped.append(Skipped(f"{path}:{n}", f"no text in field {text_field!r}"))
            continue
        key = next((obj[k] for k in (id_field, "_id", "id") if k and k in obj), n)
        meta = {
            k: v for k, v in obj.items() if k != text_field and isinstance(v, str | int | float)
        }
        meta |= {"id": str(key), "path": str(path)}
        docs.append(Document(f"{path}#{key}", body, meta))
    return docs, skipped


def _smart(path: Path, text: str):
    docs = []
    for r in smart_records(text):
        title, body = r.get("T", ""), r.get("W", "")
        if title and not body.startswith(title):
            body = f"{title}\n\n{body}"
        if body.strip():
            meta = {"id": r["I"], "path": str(path), "title": title, "author": r.get("A", "")}
            docs.append(Document(f"{path}#{r['I']}", body, meta))
    return docs


def read_file(path: Path, text_field: str = "text", id_field: str | None = None):
    """The documents in one file and what was skipped: (list[Document], list[Skipped])."""
    path = path.resolve()
    why = utf8_problem(str(path))
    if why:
        return [], [Skipped(shown(path), f"its path is {why}")]
    return _valid_unicode(*_parse(path, text_field, id_field))


def _valid_unicode(docs: list[Document], skipped: list[Skipped]):
    """Set aside the documents whose name, text or metadata holds characters that are not
    valid UTF-8 (lone surrogates, e.g. from a `\\udcff` escape in a .jsonl record)."""
    kept = []
    for d in docs:
        why = _unicode_problem(d)
        if why is None:
            kept.append(d)
        else:
            skipped.append(Skipped(shown(d.name), why))
    return kept, skipped


def _unicode_problem(d: Document) -> str | None:
    fields = [(f"metadata field {shown(k)!r}", str(v)) for k, v in d.metadata.items()]
    fields += [(f"metadata key {shown(k)!r}", k) for k in d.metadata]
    for part, text in [("name", d.name), ("text", d.text), *fields]:
        why = utf8_problem(text)
        if why:
            return f"its {part} is {why}"
    return None


def _parquet(path: Path, text_field: str, id_field: str | None):
    """A Parquet table: one document a row, like .jsonl records."""
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as e:  # pyarrow raises several kinds for a damaged or foreign file
        return [], [Skipped(str(path), f"not a readable Parquet file ({type(e).__name__})")]
    if rows and text_field not in rows[0]:
        return [], [Skipped(str(path), f"no column {text_field!r} (choose one with --text-field)")]
    lines = "\n".join(json.dumps(r, ensure_ascii=False, default=str) for r in rows)
    return _jsonl(path, lines, text_field, id_field)


def _parse(path: Path, text_field: str, id_field: str | None):
    if path.suffix.lower() == ".parquet" and path.is_file():
        return _parquet(path, text_field, id_field)
    text, why = decode_file(path)
    if text is None:
        return [], [Skipped(str(path), why)]
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _jsonl(path, text, text_field, id_field)
    if is_smart(text):
        return _smart(path, text), []
    if suffix in HTML_SUFFIXES:
        body, title = html_text(text)
        return [Document(str(path), body, {"path": str(path), "title": title})], []
    if suffix in TEXT_SUFFIXES:
        return [Document(str(path), text, {"path": str(path)})], []
    return [], [Skipped(str(path), f"unsupported file type {suffix or '(none)'}")]
