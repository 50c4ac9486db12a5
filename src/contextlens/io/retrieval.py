"""Retrieval evaluation data: queries and relevance judgements (qrels) in the BEIR (queries.jsonl,
qrels .tsv with a header), TREC (`qid iter docid rel`) and SMART (`.I`/`.W` queries;
`qid docid code` qrels) formats.
"""

import json
import math
from pathlib import Path

from ..errors import ContextlensError
from .documents import decode_file, is_smart, shown, smart_records, utf8_problem


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
    text, why = decode_file(path)
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
