"""Reading what gets indexed and evaluated.

Documents: .txt/.md (as is), .html/.htm (visible text), .jsonl (one document a line: a chosen text
field, the other fields kept as metadata) and SMART collections (`.I` records, e.g. Cranfield's
`cran.all.1400`). Binary, non-UTF-8, empty, unreadable, unsupported and non-regular files (FIFOs,
sockets, devices) are skipped and reported, and so are records whose text or name is not valid
UTF-8; an index's own files are never read.
Queries and relevance judgements (qrels): BEIR (queries.jsonl, qrels .tsv with a header),
TREC (`qid iter docid rel`) and SMART (`.I`/`.W` queries; `qid docid code` qrels).
"""

import hashlib
import json
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from ..errors import ContextlensError
from .store import is_index_file

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
        if 0xDC80 <= c <= 0xDCFF:
            return f"not UTF-8 (byte 0x{c - 0xDC00:02x} at character {e.start})"
        return f"not valid Unicode (lone surrogate U+{c:04X} at character {e.start})"
    return None


def shown(path: str | Path) -> str:
    """A path as it can be printed: bytes that are not UTF-8 written as \\xNN."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _decode(path: Path) -> tuple[str | None, str | None]:
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
    if why is None:
        docs, skipped = _parse(path, text_field, id_field)
        return _valid_unicode(docs, skipped)
    return [], [Skipped(shown(path), f"file name {why}")]


def _valid_unicode(docs: list[Document], skipped: list[Skipped]):
    """Set aside the documents whose name, text or metadata holds characters that are not
    valid UTF-8 (lone surrogates, e.g. from a `\\udcff` escape in a .jsonl record)."""
    kept = []
    for d in docs:
        why = utf8_problem(d.name) or utf8_problem(d.text) or utf8_problem(json.dumps(d.metadata))
        if why is None:
            kept.append(d)
        else:
            skipped.append(Skipped(shown(d.name), why))
    return kept, skipped


def _parse(path: Path, text_field: str, id_field: str | None):
    text, why = _decode(path)
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


def read_documents(
    paths: list[str | Path], text_field: str = "text", id_field: str | None = None
) -> tuple[list[Document], list[Skipped]]:
    """Every document under `paths` (files, or folders walked recursively; hidden files skipped)."""
    if not paths:
        raise ContextlensError("no paths given; name the files or folders to index")
    docs, skipped = [], []
    for p in map(Path, paths):
        if not p.exists():
            raise ContextlensError(f"{shown(p)} does not exist; give a file or a folder")
        if not (p.is_file() or p.is_dir()):
            raise ContextlensError(
                f"{shown(p)} is not a regular file or a folder (a FIFO, socket or device); "
                "give files or folders"
            )
        files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if not f.is_dir())
        for f in files:
            if any(part.startswith(".") for part in f.relative_to(p).parts) or _of_an_index(f):
                continue
            d, s = read_file(f, text_field, id_field)
            docs += d
            skipped += s
    names = [d.name for d in docs]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ContextlensError(f"document {dup} appears twice; give each file or record once")
    return docs, skipped


def _of_an_index(f: Path) -> bool:
    return is_index_file(f.name) and (f.parent / "index.db").is_file()


# ── evaluation data ─────────────────────────────────────────────────────────────────────────


def read_queries(path: str | Path) -> dict[str, str]:
    """Query id -> text. BEIR `queries.jsonl` (`_id`, `text`), a TSV `id<TAB>text`, or SMART
    (`.I`/`.W`; SMART qrels number queries by position, so ids are 1, 2, … in file order —
    Cranfield's `.I` numbers skip values and do not match its qrels)."""
    text, why = _decode(Path(path))
    if text is None:
        raise ContextlensError(f"cannot read queries from {path}: {why}")
    if is_smart(text):
        return {str(i): r.get("W", "") for i, r in enumerate(smart_records(text), start=1)}
    out = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            obj = json.loads(line)
            out[str(obj.get("_id", obj.get("id")))] = obj["text"]
        elif "\t" in line:
            qid, q = line.split("\t", 1)
            out[qid.strip()] = q.strip()
        else:
            raise ContextlensError(f"{path}:{n}: expected a JSON object or `id<TAB>text`")
    if not out:
        raise ContextlensError(f"no queries in {path}")
    return out


def read_qrels(path: str | Path) -> dict[str, dict[str, float]]:
    """Query id -> {doc id: gain > 0}. BEIR TSV (header `query-id corpus-id score`), TREC
    (`qid iter docid rel`, gain = rel) or SMART/Cranfield (`qid docid code`: code 1 = complete
    answer … 4 = minimal interest, gain 5 - code; -1 and 5 are not relevant)."""
    text, why = _decode(Path(path))
    if text is None:
        raise ContextlensError(f"cannot read qrels from {path}: {why}")
    qrels: dict[str, dict[str, float]] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        cols = line.split()
        if not cols or (n == 1 and not cols[-1].lstrip("-").isdigit()):
            continue  # blank line or a BEIR header
        if len(cols) == 4:
            qid, _, doc, gain = cols[0], cols[1], cols[2], float(cols[3])
        elif len(cols) == 3 and "\t" in line:
            qid, doc, gain = cols[0], cols[1], float(cols[2])
        elif len(cols) == 3:
            code = int(cols[2])
            qid, doc, gain = cols[0], cols[1], float(5 - code if 1 <= code <= 4 else 0)
        else:
            raise ContextlensError(f"{path}:{n}: expected `qid docid rel` or `qid iter docid rel`")
        if gain > 0:
            qrels.setdefault(qid, {})[doc] = gain
    if not qrels:
        raise ContextlensError(f"no relevance judgements in {path}")
    return qrels
