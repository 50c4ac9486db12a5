"""Search and retrieval under bad input: a failed first build leaves the folder exactly as it
was, and every other failure is one line (exit 2)."""

import copy
import hashlib
import inspect
import itertools
import json
import os
import re
import signal
import sqlite3
import warnings
from contextlib import contextmanager
from pathlib import Path

import pytest

import contextlens.search.build as build_module
import contextlens.search.generation as generation_module
from contextlens.cli import search as search_cli
from contextlens.errors import ContextlensError
from contextlens.io.retrieval import read_qrels, read_queries
from contextlens.search import DEFAULT_MODE, Index
from contextlens.search.vectors import mask_path

SENTENCES = [f"Note {i} says that the {w} is kept in drawer {i}." for i, w in enumerate(
    ["stapler", "kettle", "passport", "torch", "charger", "ladder", "umbrella"] * 10
)]  # fmt: skip


NOT_REGULAR = "not a regular file (a FIFO, socket, device or broken link)"


def snapshot(folder: Path) -> dict[str, str]:
    """Every file and folder under `folder`, with a hash of each file's bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        if p.is_file()
        else "/"
        for p in sorted(folder.rglob("*"))
    }


def user_folder(path: Path) -> Path:
    """A folder of someone's files, some named like an index's own."""
    path.mkdir()
    (path / "report.pdf").write_bytes(bytes(range(256)) * 20)
    (path / "keep.csv").write_text("a,b\n1,2\n")
    (path / "write.lock").write_text("mine")
    (path / "results-0.npy").write_bytes(b"not ours")
    (path / "sub").mkdir()
    (path / "sub" / "deep.bin").write_bytes(b"\0\1")
    return path


def notes(path: Path, n: int) -> Path:
    path.mkdir()
    for i in range(n):
        (path / f"note{i:02d}.txt").write_text(SENTENCES[i])
    return path


def failing(model, error: BaseException, on: int):
    """A shallow copy of `model` (still a LanguageModel) whose `embed` raises `error` on its
    call number `on` (1-based)."""
    calls = itertools.count(1)

    def embed(*args, **kwargs):
        if next(calls) == on:
            raise error
        return model.embed(*args, **kwargs)

    copied = copy.copy(model)
    copied.embed = embed
    return copied


def no_space(*args, **kwargs):
    raise OSError(28, "No space left on device")


# (what fails, extra CLI arguments, the outcome: a one-line error's text, an exit code or what
# is raised)
FIRST_BUILD_FAILURES = {
    "binary file only": ([], "no readable documents"),
    "no documents": ([], "no readable documents"),
    "missing source": ([], "does not exist"),
    "not an encoder": (["-m", "glove-50"], "not a sentence encoder"),
    "unknown model": (["-m", "no-such-model"], "no-such-model"),
    "chunk too small": (["--chunk-tokens", "5"], "chunk"),
    "error mid-embedding": ([], RuntimeError),
    "ctrl-c mid-embedding": ([], 130),  # click prints "Aborted!" and exits 128 + SIGINT
    "disk full at a shard": ([], OSError),
    "disk full at the live mask": ([], OSError),
}


@pytest.mark.parametrize("folder", ["existing folder with other files", "new nested folder"])
@pytest.mark.parametrize("failure", FIRST_BUILD_FAILURES)
def test_failed_first_build_leaves_the_folder_as_it_was(
    run_cli, minilm, monkeypatch, tmp_path, folder, failure
):
    args, raised = FIRST_BUILD_FAILURES[failure]
    if folder == "new nested folder":
        index = tmp_path / "new" / "nested" / "ix"
    else:
        index = user_folder(tmp_path / "ix")
    source = tmp_path / "src"
    if failure == "binary file only":
        source.mkdir()
        (source / "scan.txt").write_bytes(b"\x89PNG\r\n\x1a\n\0\0")
    elif failure == "no documents":
        source.mkdir()
    elif failure != "missing source":
        notes(source, 70)  # more than one commit of 64 chunks
    if failure in ("error mid-embedding", "ctrl-c mid-embedding"):
        error = RuntimeError("boom") if raised is RuntimeError else KeyboardInterrupt()
        monkeypatch.setattr(search_cli, "get_model", lambda name: failing(minilm, error, on=2))
    if failure == "disk full at a shard":
        monkeypatch.setattr(build_module, "write_shard", no_space)
    if failure == "disk full at the live mask":
        monkeypatch.setattr(generation_module, "save_mask", no_space)
    before = snapshot(tmp_path)

    command = ["index", "build", source, "--index", index, *args]
    if isinstance(raised, str):
        code, _, err = run_cli(*command)
        assert code == 2 and err.startswith("error: ") and raised in err, err
        assert len(err.strip().splitlines()) == 1
    elif isinstance(raised, int):
        assert run_cli(*command)[0] == raised
    else:
        with pytest.raises(raised):
            run_cli(*command)
    assert snapshot(tmp_path) == before


def test_building_a_folder_into_itself_keeps_its_files(run_cli, tmp_path):
    """The reported case: SRC and --index the same folder of files that are not documents."""
    folder = user_folder(tmp_path / "d")
    before = snapshot(tmp_path)
    code, _, err = run_cli("index", "build", folder, "--index", folder)
    assert code == 2 and "no readable documents under" in err and "(4 files skipped)" in err
    assert snapshot(tmp_path) == before
    (folder / "todo.md").write_text("Renew the passport before the trip in May.")
    code, out, err = run_cli("index", "build", folder, "--index", folder, "--json")
    assert code == 0, err
    code, out, err = run_cli("index", "build", folder, "--index", folder)  # its own files unread
    assert code == 0 and "index.db" not in out and "vectors-" not in out, out
    assert (folder / "write.lock").read_text() == "mine"


def test_a_failed_rebuild_keeps_the_index(run_cli, minilm, tmp_path):
    source = notes(tmp_path / "src", 3)
    ix = Index.create(tmp_path / "ix", minilm)
    ix.build([source], minilm)
    before = sorted(p.name for p in (tmp_path / "ix").iterdir())
    code, _, err = run_cli("index", "build", tmp_path / "gone", "--index", tmp_path / "ix")
    assert code == 2 and "does not exist" in err
    assert sorted(p.name for p in (tmp_path / "ix").iterdir()) == before
    assert Index.create(tmp_path / "ix", minilm).discard() is False  # not made by this call
    assert Index.open(tmp_path / "ix").info()["documents"] == 3


@pytest.mark.parametrize("content", ["random bytes", "another program's database"])
def test_a_foreign_index_db_is_refused_untouched(run_cli, minilm, tmp_path, content):
    folder = tmp_path / "d"
    folder.mkdir()
    if content == "random bytes":
        (folder / "index.db").write_bytes(bytes(range(256)) * 8)
    else:
        with sqlite3.connect(folder / "index.db") as db:
            db.execute("CREATE TABLE people(name TEXT)")
        db.close()
    source = notes(tmp_path / "src", 1)
    before = snapshot(tmp_path)
    for args in (["index", "build", source], ["search", "passport"], ["index", "info"]):
        code, _, err = run_cli(*args, "--index", folder)
        assert code == 2 and "is not a usable contextlens index" in err, err
    assert snapshot(tmp_path) == before


def test_an_index_path_that_is_a_file_is_refused(run_cli, tmp_path):
    (tmp_path / "f").write_text("x")
    source = notes(tmp_path / "src", 1)
    code, _, err = run_cli("index", "build", source, "--index", tmp_path / "f")
    assert code == 2 and "is a file; give --index a folder" in err
    assert (tmp_path / "f").read_text() == "x"


# ── evaluation files ────────────────────────────────────────────────────────────────────────


@contextmanager
def no_hang(seconds: int = 20):
    """Fail, rather than hang, if the block blocks (reading a FIFO nobody writes to)."""

    def fail(*_):
        raise TimeoutError(f"still blocked after {seconds} s")

    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


BAD_QUERIES = [
    ('{"_id": "q1", "text": "fire"}\n{"_id": "q2", "text": \n', 2, "not valid JSON"),
    ('{"_id": "q1", "title": "fire"}\n', 1, "the query has no `text`"),
    ('{"_id": "q1", "text": "  "}\n', 1, "the query has no `text`"),
    ('{"_id": "q1", "text": 3}\n', 1, "the query has no `text`"),
    ('{"text": "fire"}\n', 1, "the query has no id"),
    ("q1\tfire\nq2\t \n", 2, "query 'q2' has no text"),
    ("q1\tfire\nq1\tflood\n", 2, "query id q1 appears twice"),
    ("\nfire in the hills\n", 2, "expected a JSON object or `id<TAB>text`"),
    ('{"_id": "q1", "text": "caf\\udce9"}\n', 1, "not valid UTF-8 (byte 0xe9 at character 4)"),
]


def test_a_smart_query_without_text_is_named(tmp_path):
    (tmp_path / "q.qry").write_text(".I 001\n.W\nwhat is lift\n.I 004\n.W\n")
    with pytest.raises(ContextlensError, match=r"query \.I 004 \(number 2\) has no \.W text"):
        read_queries(tmp_path / "q.qry")


BAD_QRELS = [
    ("q1 0 d1 1\nq1 0 d2 yes\n", 2, "relevance 'yes' is not a number"),
    ("q1 0 d1 yes\n", 1, "relevance 'yes' is not a number"),
    ("q1\td1\tnan\n", 1, "relevance 'nan' is not a number"),
    ("1 184 1.5\n", 1, "relevance code 1.5 is not a whole number"),
    ("q1 d1\n", 1, "expected `qid docid rel` or `qid iter docid rel`, not 2 columns"),
]


@pytest.mark.parametrize(
    "read, name, text, line, message",
    [(read_queries, "queries.jsonl", *case) for case in BAD_QUERIES]
    + [(read_qrels, "qrels.txt", *case) for case in BAD_QRELS],
)
def test_bad_lines_of_queries_and_judgements_name_file_and_line(
    tmp_path, read, name, text, line, message
):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ContextlensError, match=re.escape(message)) as e:
        read(path)
    assert str(e.value).startswith(f"{path}:{line}: ")


def test_decimal_judgements_and_the_beir_header(tmp_path):
    (tmp_path / "trec").write_text("q1 0 d1 1.0\nq1 0 d2 0.5\nq2 0 d3 0\n")
    assert read_qrels(tmp_path / "trec") == {"q1": {"d1": 1.0, "d2": 0.5}}
    (tmp_path / "beir.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\n")
    assert read_qrels(tmp_path / "beir.tsv") == {"q1": {"d1": 2.0}}
    (tmp_path / "smart").write_text("1 184 2\n1 486 -1\n")
    assert read_qrels(tmp_path / "smart") == {"1": {"184": 3.0}}


@pytest.mark.parametrize("reader, option", [(read_queries, "queries"), (read_qrels, "qrels")])
def test_evaluation_paths_that_are_not_files(tmp_path, reader, option):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "folder").mkdir()
    cases = {"missing": "does not exist", "folder": "is a folder", "fifo": "not a regular file"}
    for name, message in cases.items():
        with no_hang(), pytest.raises(ContextlensError, match=message) as e:
            reader(tmp_path / name)
        assert f"{option} file {tmp_path / name} " in str(e.value)
        assert f"give --{option} a file" in str(e.value)


def test_non_regular_corpus_files(run_cli, tmp_path):
    """A FIFO named as a source is refused; one inside a folder is skipped and reported."""
    folder = notes(tmp_path / "src", 2)
    os.mkfifo(folder / "pipe.txt")
    with no_hang():
        code, _, err = run_cli("index", "build", folder / "pipe.txt", "--index", tmp_path / "a")
        assert code == 2 and "is not a regular file or a folder" in err, err
        assert not (tmp_path / "a").exists()
        code, out, err = run_cli("index", "build", folder, "--index", tmp_path / "b", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["embedded"] == 2
    assert report["skipped"] == [{"path": str(folder / "pipe.txt"), "reason": NOT_REGULAR}]


@pytest.fixture(scope="module")
def small_notes(tmp_path_factory) -> Path:
    return notes(tmp_path_factory.mktemp("notes") / "notes", 7)


@pytest.fixture(scope="module")
def small(minilm, small_notes, tmp_path_factory) -> Path:
    """An index of seven notes, one thing in a drawer each (a kettle in note01.txt)."""
    path = tmp_path_factory.mktemp("index") / "small"
    Index.create(path, minilm).build([small_notes], minilm)
    return path


def test_evaluate_with_ids_that_match_no_query(run_cli, small, tmp_path):
    (tmp_path / "q.tsv").write_text("1\twhere is the kettle\n2\twhere is the torch\n")
    (tmp_path / "qrels").write_text("q1 0 note01 1\nq2 0 note03 1\n")
    corpus = notes(tmp_path / "corpus", 2)
    args = ["--queries", tmp_path / "q.tsv", "--qrels", tmp_path / "qrels"]
    for index, more in ((small, []), (tmp_path / "new", ["--corpus", corpus])):
        code, _, err = run_cli("evaluate", "retrieval", "--index", index, *args, *more)
        assert code == 2 and "no query has relevance judgements: query ids 1, 2" in err, err
        assert "judged ids q1, q2" in err
    assert not (tmp_path / "new").exists()  # refused before building anything


def test_evaluate_bad_line_is_one_line(run_cli, small, tmp_path):
    (tmp_path / "q.jsonl").write_text('{"_id": "1", "text": "kettle"}\n{"_id": "2"}\n')
    (tmp_path / "qrels").write_text("1 0 x 1\n")
    args = ["--queries", tmp_path / "q.jsonl", "--qrels", tmp_path / "qrels"]
    code, _, err = run_cli("evaluate", "retrieval", "--index", small, *args)
    assert code == 2 and err == f"error: {tmp_path / 'q.jsonl'}:2: the query has no `text`; " + (
        "give it a non-empty text field\n"
    )


# ── queries over the model's limit ──────────────────────────────────────────────────────────

LONG_QUERY = "Where did I leave the kettle? " + "It was in the kitchen last week. " * 75


def test_a_query_over_the_limit_is_cut_to_it(run_cli, small, small_notes, minilm, tmp_path):
    assert len(minilm.tokenize(LONG_QUERY, limit=10_000).ids) > 600
    ix = Index.open(small)
    for mode in ("dense", "hybrid", "bm25"):
        assert ix.search(LONG_QUERY, k=3, mode=mode, model=minilm)
    code, out, err = run_cli("search", LONG_QUERY, "--index", small, "-k", "2", "--explain")
    assert code == 0 and "1. " in out and "Σ token shares" in out, err
    assert err.count("note: ") == 1 and "over minilm's limit of 256" in err, err
    code, out, err = run_cli("ask", LONG_QUERY, "--index", small, "-k", "2")
    assert code == 0 and "[1] " in out, err
    (tmp_path / "q.tsv").write_text(f"long\t{LONG_QUERY}\nshort\twhere is the torch\n")
    kettle, torch = small_notes / "note01.txt", small_notes / "note03.txt"
    (tmp_path / "qrels").write_text(f"long 0 {kettle} 1\nshort 0 {torch} 1\n")
    args = ["--queries", tmp_path / "q.tsv", "--qrels", tmp_path / "qrels", "--json"]
    code, out, err = run_cli("evaluate", "retrieval", "--index", small, *args)
    assert code == 0 and err.count("note: ") == 1, err
    result = json.loads(out)
    assert result["queries"] == 2 and result["modes"]["dense"]["mrr@10"] > 0


# ── numeric options ─────────────────────────────────────────────────────────────────────────

BAD_BUILD_OPTIONS = [
    (["--chunk-tokens", "0"], "chunk size (--chunk-tokens) must be 10..256 tokens (got 0)"),
    (["--chunk-tokens", "-5"], "chunk size (--chunk-tokens) must be 10..256 tokens (got -5)"),
    (["--chunk-tokens", "9"], "chunk size (--chunk-tokens) must be 10..256 tokens (got 9)"),
    (["--chunk-tokens", "257"], "chunk size (--chunk-tokens) must be 10..256 tokens (got 257)"),
    (["--overlap", "-1"], "overlap (--overlap) must be 0..98 tokens for chunks of 200 (got -1)"),
    (
        ["--chunk-tokens", "64", "--overlap", "31"],
        "overlap (--overlap) must be 0..30 tokens for chunks of 64 (got 31)",
    ),
    (["--batch-size", "0"], "batch size (--batch-size) must be 1 or more (got 0)"),
]


@pytest.mark.parametrize("args, message", BAD_BUILD_OPTIONS)
def test_bad_build_options_are_refused(run_cli, tmp_path, args, message):
    source = notes(tmp_path / "src", 2)
    code, _, err = run_cli("index", "build", source, "--index", tmp_path / "ix", *args)
    assert code == 2 and err == f"error: {message}\n"
    assert not (tmp_path / "ix").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["search", "kettle", "-k", "0"], "k must be a positive number of results (got 0)"),
        (["search", "kettle", "-k", "-2"], "k must be a positive number of results (got -2)"),
        (["ask", "kettle?", "-k", "0"], "k must be a positive number of results (got 0)"),
        (["ask", "kettle?", "--max-new-tokens", "0"], "--max-new-tokens must be 1 or more"),
        (["evaluate", "retrieval", "--depth", "5", "--queries", "q", "--qrels", "r"], "--depth"),
    ],
)
def test_bad_search_options_are_refused(run_cli, small, args, message):
    code, _, err = run_cli(*args, "--index", small)
    assert code == 2 and err.startswith("error: ") and message in err, err
    assert len(err.splitlines()) == 1


def test_an_index_keeps_its_chunk_settings(run_cli, tmp_path):
    source = notes(tmp_path / "src", 3)
    index = tmp_path / "ix"
    settings = ["--chunk-tokens", "64", "--overlap", "8"]
    assert run_cli("index", "build", source, "--index", index, *settings)[0] == 0
    (source / "extra.txt").write_text("The spare key is under the mat.")
    code, out, err = run_cli("index", "build", source, "--index", index, "--json")
    assert code == 0 and json.loads(out)["embedded"] == 1, err
    code, _, err = run_cli("index", "build", source, "--index", index, "--chunk-tokens", "100")
    assert code == 2 and "uses chunk_tokens=64, not 100; leave out --chunk-tokens" in err
    assert Index.open(index).meta["overlap"] == 8


# ── the live mask ───────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("damage", ["deleted", "truncated"])
@pytest.mark.parametrize("repair", ["build", "add"])
def test_a_broken_live_mask_is_repaired_and_searches_do_not_warn(minilm, tmp_path, damage, repair):
    source = notes(tmp_path / "src", 5)
    ix = Index.create(tmp_path / "ix", minilm)
    ix.build([source], minilm)
    ix.remove([str(source / "note01.txt")])  # a dead row in the shard: the mask matters
    (source / "note01.txt").unlink()
    generation = ix.generation
    expected = ix.search("kettle", k=5, mode="dense", model=minilm)
    assert "note01" not in {Path(h.document).stem for h in expected}
    broken = mask_path(ix.path, generation)
    if damage == "deleted":
        broken.unlink()
    else:
        broken.write_bytes(broken.read_bytes()[:40])

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Index.open(ix.path).search("kettle", k=5, mode="dense", model=minilm) == expected

    report = getattr(ix, repair)([source], minilm)
    assert report.embedded == 0 and report.generation == generation
    assert Index.open(ix.path).search("kettle", k=5, mode="dense", model=minilm) == expected
    before = broken.stat().st_mtime_ns
    ix.build([source], minilm)  # nothing to repair: the mask is not rewritten
    assert broken.stat().st_mtime_ns == before


# ── the default mode ────────────────────────────────────────────────────────────────────────


def test_one_default_mode_for_the_library_and_the_cli(run_cli, small, minilm):
    assert inspect.signature(Index.search).parameters["mode"].default == DEFAULT_MODE == "hybrid"
    query = "where is the kettle"
    ix = Index.open(small)
    default = [(h.chunk_id, h.score) for h in ix.search(query, k=3, model=minilm)]
    hybrid = [(h.chunk_id, h.score) for h in ix.search(query, k=3, mode="hybrid", model=minilm)]
    code, out, _ = run_cli("search", query, "--index", small, "-k", "3", "--json")
    assert default == hybrid == [(h["chunk_id"], h["score"]) for h in json.loads(out)]
    assert ix.search("?!", k=2, model=minilm)  # no words: hybrid ranks by meaning alone
    with pytest.raises(ContextlensError, match="no words for keyword"):
        ix.search("?!", mode="bm25")


# ── text that is not UTF-8 ──────────────────────────────────────────────────────────────────


def test_a_query_that_is_not_utf8_is_one_line(run_cli, small, minilm):
    bad = os.fsdecode(b"kettle caf\xe9")  # how Python passes on bytes that are not UTF-8
    ix = Index.open(small)
    with pytest.raises(ContextlensError, match=r"the query is not valid UTF-8 \(byte 0xe9 at"):
        ix.search(bad, model=minilm)
    with pytest.raises(ContextlensError, match=r"the filter path=caf\\xe9 is not valid UTF-8"):
        ix.search("kettle", model=minilm, where={"path": os.fsdecode(b"caf\xe9")})
    for args in (["search", bad], ["ask", bad], ["search", "kettle", "--where", f"path={bad}"]):
        code, _, err = run_cli(*args, "--index", small)
        assert code == 2 and "not valid UTF-8 (byte 0xe9 at character" in err, err
        assert len(err.splitlines()) == 1


NOT_UTF8 = "not valid UTF-8 (byte 0xe9"


def test_documents_that_are_not_utf8_are_skipped_with_a_notice(run_cli, tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "good.txt").write_text("The kettle is in the kitchen.")
    (folder / "latin1.txt").write_bytes("Caf\xe9 au lait.".encode("latin-1"))
    with open(os.fsencode(folder) + b"/caf\xe9.txt", "wb") as f:
        f.write(b"A note whose name is Latin-1.")
    (folder / "recs.jsonl").write_text(
        '{"_id": "ok", "text": "A record."}\n'
        '{"_id": "bad", "text": "caf\\udce9"}\n'
        '{"_id": "meta", "text": "Fine text.", "who": "\\udce9"}\n'
    )
    code, out, err = run_cli("index", "build", folder, "--index", tmp_path / "ix", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["embedded"] == 2  # good.txt and recs.jsonl#ok
    position = len(f"{folder}/caf") + 1
    records = folder / "recs.jsonl"
    assert {s["path"]: s["reason"] for s in report["skipped"]} == {
        str(folder / "latin1.txt"): "not UTF-8 (byte 0xe9 at offset 3)",
        f"{folder}/caf\\xe9.txt": f"its path is {NOT_UTF8} at character {position})",
        f"{records}#bad": f"its text is {NOT_UTF8} at character 4)",
        f"{records}#meta": f"its metadata field 'who' is {NOT_UTF8} at character 1)",
    }
    code, out, err = run_cli("index", "build", folder, "--index", tmp_path / "ix")
    assert code == 0 and f"skipped {folder}/caf\\xe9.txt" in out.replace("\n", ""), err
