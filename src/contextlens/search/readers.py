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
import math
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
        what = f"byte 0x{c - 0xDC00:02x}" if 0xDC80 <= c <= 0xDCFF else f"lone surrogate U+{c:04X}"
        return f"not valid UTF-8 ({what} at character {e.start + 1})"
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


def _evaluation_file(path: str | Path, option: str) -> str:
    """The text of a queries or qrels file (given as `--{option}`), or a one-line error."""
    path = Path(path)
    if not path.exists():
        raise ContextlensError(
            f"{option} file {shown(path)} does not exist; give --{option} a file"
        )
    if not path.is_file():
        kind = "a folder" if path.is_dir() else "not a regular file (a FIFO, socket or device)"
        raise ContextlensError(f"{option} file {shown(path)} is {kind}; give --{option} a file")
    text, why = _decode(path)
    if text is None:
        raise ContextlensError(
            f"cannot read {option} from {shown(path)}: {why}; give --{option} a UTF-8 text file"
        )
    return text


def read_queries(path: str | Path) -> dict[str, str]:
    """Query id -> text. BEIR `queries.jsonl` (`_id`, `text`), a TSV `id<TAB>text`, or SMART
    (`.I`/`.W`; SMART qrels number queries by position, so ids are 1, 2, … in file order —
    Cranfield's `.I` numbers skip values and do not match its qrels)."""
    text = _evaluation_file(path, "queries")
    if is_smart(text):
        return _smart_queries(path, text)
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        at = f"{shown(path)}:{n}"
        qid, query = _query_line(line, at)
        if qid in out:
            raise ContextlensError(f"{at}: query id {qid} appears twice; give each query once")
        out[qid] = query
    if not out:
        raise ContextlensError(f"no queries in {shown(path)}; give --queries a file of queries")
    return out


def _smart_queries(path: str | Path, text: str) -> dict[str, str]:
    out = {}
    for i, r in enumerate(smart_records(text), start=1):
        if not r.get("W"):
            raise ContextlensError(
                f"{shown(path)}: query .I {r['I']} (number {i}) has no .W text; give it one"
            )
        out[str(i)] = r["W"]
    return out


def _query_line(line: str, at: str) -> tuple[str, str]:
    """(id, text) of one line of a queries file: a JSON object or `id<TAB>text`."""
    if line.lstrip().startswith("{"):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ContextlensError(
                f"{at}: not valid JSON ({e.msg}, column {e.colno}); write one JSON object a line"
            ) from None
        qid, query = obj.get("_id", obj.get("id")), obj.get("text")
        if not isinstance(query, str) or not query.strip():
            raise ContextlensError(f"{at}: the query has no `text`; give it a non-empty text field")
    elif "\t" in line:
        qid, query = line.split("\t", 1)
        if not query.strip():
            raise ContextlensError(f"{at}: query {qid.strip()!r} has no text after the tab")
    else:
        raise ContextlensError(f"{at}: expected a JSON object or `id<TAB>text`")
    if qid is None or not str(qid).strip():
        raise ContextlensError(f"{at}: the query has no id; give it an `_id` (or id<TAB>text)")
    why = utf8_problem(query)
    if why:
        raise ContextlensError(f"{at}: the query text is {why}; write it as UTF-8 text")
    return str(qid).strip(), query.strip()


def read_qrels(path: str | Path) -> dict[str, dict[str, float]]:
    """Query id -> {doc id: gain > 0}. BEIR TSV (header `query-id corpus-id score`), TREC
    (`qid iter docid rel`, gain = rel) or SMART/Cranfield (`qid docid code`: code 1 = complete
    answer … 4 = minimal interest, gain 5 - code; -1 and 5 are not relevant)."""
    text = _evaluation_file(path, "qrels")
    qrels: dict[str, dict[str, float]] = {}
    first = True
    for n, line in enumerate(text.splitlines(), start=1):
        cols = line.split()
        if not cols:
            continue
        header, first = first and cols[-1].lower() == "score", False
        if header:
            continue
        qid, doc, gain = _judgement(line, cols, f"{shown(path)}:{n}")
        if gain > 0:
            qrels.setdefault(qid, {})[doc] = gain
    if not qrels:
        raise ContextlensError(
            f"no relevance judgements in {shown(path)} (none with a positive score); "
            "give --qrels a file that marks relevant documents"
        )
    return qrels


def _judgement(line: str, cols: list[str], at: str) -> tuple[str, str, float]:
    """(query id, document id, gain) of one qrels line."""
    if len(cols) == 4:
        qid, _, doc, rel = cols
    elif len(cols) == 3:
        qid, doc, rel = cols
    else:
        raise ContextlensError(
            f"{at}: expected `qid docid rel` or `qid iter docid rel`, not {len(cols)} columns"
        )
    gain = _number(rel)
    if gain is None:
        raise ContextlensError(
            f"{at}: relevance {rel!r} is not a number; write 0 (not relevant) or 1, 2, … (relevant)"
        )
    if len(cols) == 3 and "\t" not in line:  # SMART codes
        if gain != int(gain):
            raise ContextlensError(
                f"{at}: relevance code {rel} is not a whole number; SMART qrels use codes 1..4"
            )
        gain = 5.0 - gain if 1 <= gain <= 4 else 0.0
    return qid, doc, gain


def _number(text: str) -> float | None:
    try:
        x = float(text)
    except ValueError:
        return None
    return x if math.isfinite(x) else None
