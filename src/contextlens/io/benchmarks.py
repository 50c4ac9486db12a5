"""Readers of the labelled data sets the analyses are scored on: coreference (WSC-style JSONL,
WinoBias, GAP), Word in Context (WiC) and the STS Benchmark. They parse and check the files;
the scoring lives in `analysis`.
"""

import csv
import io
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ContextlensError, read_text

Span = tuple[int, int]


# ── coreference ─────────────────────────────────────────────────────────────────────────────
@dataclass(frozen=True)
class CorefCase:
    """One pronoun and its candidate antecedents. Spans are character spans in `text`; where
    a span is None the phrase is looked up (see `analysis.coref.mention`)."""

    text: str
    pronoun: str
    candidates: tuple[str, ...]
    answer: int | None = None  # index into candidates
    pronoun_span: Span | None = None
    candidate_spans: tuple[Span | None, ...] | None = None
    group: str = ""  # cases of one group (twin sentences) go to the same split


def _open(path: Path) -> str:
    return read_text(path, "a coreference data file (WSC/JSONL, WinoBias or GAP)")


def _answer_index(answer, candidates: Sequence[str], where: str) -> int:
    if isinstance(answer, int) and not isinstance(answer, bool):
        if 0 <= answer < len(candidates):
            return answer
    elif isinstance(answer, str):
        folded = [c.casefold() for c in candidates]
        if answer.casefold() in folded:
            return folded.index(answer.casefold())
    raise ContextlensError(f"{where}: answer {answer!r} is not one of the candidates {candidates}")


def read_jsonl(path: Path) -> list[CorefCase]:
    """One JSON object a line: `text`, `pronoun`, `candidates`, `answer` (a candidate or its
    index), optionally `pronoun_start` (character offset; needed if the pronoun recurs)."""
    cases = []
    for n, line in enumerate(_open(path).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            row = json.loads(line)
            text, pronoun, candidates = row["text"], row["pronoun"], tuple(row["candidates"])
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ContextlensError(
                f"{where}: expected a JSON object with text, pronoun, candidates and answer"
            ) from None
        start = row.get("pronoun_start")
        span = (start, start + len(pronoun)) if isinstance(start, int) else None
        if span and text[span[0] : span[1]].casefold() != pronoun.casefold():
            raise ContextlensError(f"{where}: pronoun_start {start} does not point at {pronoun!r}")
        cases.append(
            CorefCase(
                text,
                pronoun,
                candidates,
                _answer_index(row.get("answer"), candidates, where),
                span,
                group="|".join(sorted(c.casefold() for c in candidates)),
            )
        )
    return cases


BRACKET = re.compile(r"\[([^\]]*)\]")


def _unbracket(line: str) -> tuple[str, list[Span]]:
    """'[The developer] argued … [he] …' → clean text and the bracketed character spans."""
    text, spans, last = "", [], 0
    for m in BRACKET.finditer(line):
        text += line[last : m.start()]
        inner = m.group(1)
        pad = len(inner) - len(inner.lstrip())
        spans.append((len(text) + pad, len(text) + len(inner.rstrip())))
        text += inner
        last = m.end()
    return text + line[last:], spans


def read_winobias(path: Path) -> list[CorefCase]:
    """WinoBias `N text` lines (a file, or a directory of `*.dev`/`*.test` files): the first
    bracket marks the antecedent, the second the pronoun. Lines come in twins (2k-1, 2k) about
    the same two occupations, each twin bracketing the other; the two are the candidates."""
    path = Path(path)
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    cases = []
    for file in files:
        lines = [ln for ln in _open(file).splitlines() if ln.strip()]
        parsed = []
        for n, line in enumerate(lines, start=1):
            text, spans = _unbracket(re.sub(r"^\s*\d+\s+", "", line))
            if len(spans) < 2:
                raise ContextlensError(
                    f"{file}:{n}: expected '[antecedent] … [pronoun]' brackets (WinoBias format)"
                )
            parsed.append((text, spans))
        for k in range(0, len(parsed) - 1, 2):
            pair = parsed[k : k + 2]
            names = [t[s[0][0] : s[0][1]] for t, s in pair]
            for n, (text, spans) in enumerate(pair):
                cases.append(_winobias_case(text, spans, names, f"{file.name}:{k // 2}", n))
    return cases


def _winobias_case(text: str, spans: list[Span], names: list[str], group: str, n: int):
    own = spans[0]
    other = names[1 - n]
    at = text.casefold().find(other.casefold())
    cand_spans = [own, (at, at + len(other)) if at >= 0 else None]
    found = sorted(zip(cand_spans, [names[n], other], strict=True), key=lambda x: x[0] or (1e9,))
    return CorefCase(
        text,
        text[spans[1][0] : spans[1][1]],
        tuple(name for _, name in found),
        [s for s, _ in found].index(own),
        spans[1],
        tuple(s for s, _ in found),
        group,
    )


GAP_FIELDS = ["ID", "Text", "Pronoun", "Pronoun-offset", "A", "A-offset", "A-coref", "B"]


def read_gap(path: Path) -> list[CorefCase]:
    """GAP TSV (header: ID, Text, Pronoun, Pronoun-offset, A, A-offset, A-coref, B, B-offset,
    B-coref, …). Snippets where neither name is the pronoun's antecedent have answer None."""
    rows = list(csv.DictReader(_open(path).splitlines(), delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows or any(f not in rows[0] for f in GAP_FIELDS):
        raise ContextlensError(f"{path}: expected a GAP TSV with header {', '.join(GAP_FIELDS)}, …")
    cases = []
    for n, r in enumerate(rows, start=2):
        try:
            p, a, b = int(r["Pronoun-offset"]), int(r["A-offset"]), int(r["B-offset"])
        except (TypeError, ValueError):
            raise ContextlensError(f"{path}:{n}: offsets must be whole numbers") from None
        gold = [r["A-coref"].upper() == "TRUE", r["B-coref"].upper() == "TRUE"]
        cases.append(
            CorefCase(
                r["Text"],
                r["Pronoun"],
                (r["A"], r["B"]),
                gold.index(True) if gold.count(True) == 1 else None,
                (p, p + len(r["Pronoun"])),
                ((a, a + len(r["A"])), (b, b + len(r["B"]))),
                r["ID"],
            )
        )
    return cases


READERS: dict[str, Callable[[Path], list[CorefCase]]] = {
    "wsc": read_jsonl,
    "jsonl": read_jsonl,
    "winobias": read_winobias,
    "gap": read_gap,
}


def guess_format(path: Path) -> str:
    """The format from the file name: *.jsonl → jsonl, *.tsv → gap, WinoBias names/folders."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith(".jsonl") or name.endswith(".json"):
        return "jsonl"
    if name.endswith(".tsv"):
        return "gap"
    if "stereotyped" in name or path.is_dir() or name.endswith((".dev", ".test")):
        return "winobias"
    raise ContextlensError(
        f"cannot tell the format of {path.name}; pass --format {'|'.join(READERS)}"
    )


def read_cases(path: Path, fmt: str | None = None) -> list[CorefCase]:
    """Read a coreference file in format `fmt` (guessed from the name if None)."""
    fmt = fmt or guess_format(path)
    if fmt not in READERS:
        raise ContextlensError(f"unknown format {fmt!r}; choose one of {', '.join(READERS)}")
    cases = READERS[fmt](Path(path))
    if not cases:
        raise ContextlensError(f"{path} holds no cases; is it the right file (--format)?")
    return cases


# ── Word in Context ─────────────────────────────────────────────────────────────────────────
@dataclass(frozen=True)
class WicPair:
    word: str
    first: tuple[str, tuple[int, int]]  # sentence and the target's character span
    second: tuple[str, tuple[int, int]]
    same: bool


def _span(sentence: str, index: int, where: str) -> tuple[int, int]:
    """Character span of the index-th space-separated token of a WiC sentence."""
    pieces = sentence.split(" ")
    if not 0 <= index < len(pieces):
        raise ContextlensError(f"{where}: token index {index} is outside the sentence")
    start = sum(len(p) + 1 for p in pieces[:index])
    return start, start + len(pieces[index])


def read_wic(data: Path, gold: Path) -> list[WicPair]:
    """WiC files: data lines `word⇥POS⇥i-j⇥sentence1⇥sentence2`, gold lines `T` / `F`."""
    rows = read_text(data, "a WiC data file (e.g. tests/data/wic/dev.data.txt)").splitlines()
    labels = read_text(gold, "a WiC gold file (T or F a line)").split()
    rows = [r for r in rows if r.strip()]
    if len(rows) != len(labels):
        raise ContextlensError(
            f"{data} has {len(rows)} pairs but {gold} has {len(labels)} labels; they must match"
        )
    pairs = []
    for n, (row, label) in enumerate(zip(rows, labels, strict=True), start=1):
        where = f"{data}:{n}"
        fields = row.split("\t")
        if len(fields) != 5 or label not in ("T", "F"):
            raise ContextlensError(
                f"{where}: expected word, POS, i-j, sentence1, sentence2 (tab-separated) and a "
                "T/F gold label"
            )
        try:
            i, j = (int(x) for x in fields[2].split("-"))
        except ValueError:
            raise ContextlensError(f"{where}: token indices must look like 3-7") from None
        pairs.append(
            WicPair(
                fields[0],
                (fields[3], _span(fields[3], i, where)),
                (fields[4], _span(fields[4], j, where)),
                label == "T",
            )
        )
    return pairs


# ── STS Benchmark ───────────────────────────────────────────────────────────────────────────
StsPair = tuple[float, str, str]  # human score, sentence 1, sentence 2


def read_sts(path: str | Path) -> list[StsPair]:
    """STS Benchmark rows (tab-separated, no header, no quoting): fields 5–7 are score, s1, s2."""
    text = read_text(path, "an STS Benchmark file (e.g. tests/data/stsb-dev.csv)")
    rows = csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
    pairs = [_pair(row, f"{path}:{n}") for n, row in enumerate(rows, start=1) if row]
    if len(pairs) < 3:
        raise ContextlensError(f"{path} has {len(pairs)} pairs; a correlation needs at least 3")
    if len({score for score, _, _ in pairs}) < 2:
        raise ContextlensError(
            f"{path}: all pairs have the same score; a correlation needs varied scores"
        )
    return pairs


def _pair(row: list[str], where: str) -> StsPair:
    """One row as (score, s1, s2), or an error naming the line and what is wrong with it."""
    if len(row) < 7:
        raise ContextlensError(
            f"{where}: {len(row)} tab-separated fields, expected 7 (genre, file, year, id, "
            "score, sentence 1, sentence 2: STS Benchmark format)"
        )
    try:
        score = float(row[4])
    except ValueError:
        score = math.nan
    if not math.isfinite(score):
        raise ContextlensError(f"{where}: the score (field 5) is {row[4]!r}, not a number")
    for field in (5, 6):
        if not row[field].strip():
            raise ContextlensError(f"{where}: sentence {field - 4} (field {field + 1}) is empty")
    return score, row[5], row[6]
