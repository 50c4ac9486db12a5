"""The search commands: index build/add/info/list/remove, search (--explain, --where), ask,
evaluate retrieval, and their one-line errors (exit code 2)."""

import json
from pathlib import Path

import gensim
import pytest

from contextlens.cli import search as search_cli
from contextlens.search import Index

LEE = Path(gensim.__file__).parent / "test" / "test_data" / "lee_background.cor"
# Lee articles 4 (midwives), 18 (Peter Jackson), 32 (earthquake) and 7 others, as BEIR-style jsonl
ARTICLES = [4, 18, 32, 0, 1, 2, 3, 5, 6, 7]
QUERIES = {
    "q1": "nurses disciplined for inhaling laughing gas",
    "q2": "film maker of the fantasy trilogy honoured",
    "q3": "tremor in the wheat growing region",
}
QRELS = {"q1": "lee4", "q2": "lee18", "q3": "lee32"}


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("home")


@pytest.fixture
def cli(run_cli, monkeypatch, home):
    monkeypatch.setenv("CONTEXTLENS_HOME", str(home))
    return run_cli


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    lines = LEE.read_text().splitlines()
    with open(folder / "corpus.jsonl", "w") as f:
        for i in ARTICLES:
            f.write(json.dumps({"_id": f"lee{i}", "text": lines[i], "year": 2001 + i % 2}) + "\n")
    (folder / "queries.tsv").write_text("".join(f"{q}\t{t}\n" for q, t in QUERIES.items()))
    (folder / "qrels.txt").write_text("".join(f"{q} 0 {d} 1\n" for q, d in QRELS.items()))
    return folder


@pytest.fixture(scope="module")
def built(files, home, minilm):
    """The index `lee` under CONTEXTLENS_HOME, made once for the module."""
    ix = Index.create(home / "indexes" / "lee", minilm)
    return ix.build([files / "corpus.jsonl"], minilm)


def test_build_reports_skipped_files(cli, tmp_path):
    (tmp_path / "a.txt").write_text("Kangaroos are marsupials. They live in Australia.")
    (tmp_path / "b.txt").write_bytes("na\xefve".encode("latin-1"))
    code, out, err = cli("index", "build", tmp_path, "--index", "small", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["embedded"] == report["chunks"] == 1
    assert report["skipped"] == [
        {"path": str(tmp_path / "b.txt"), "reason": "not UTF-8 (byte 0xef at offset 2)"}
    ]
    code, out, _ = cli("index", "build", tmp_path, "--index", "small")
    assert code == 0 and "unchanged" in out and "skipped" in out


def test_info_list_search(cli, built, home):
    code, out, _ = cli("index", "info", "--index", "lee", "--json")
    info = json.loads(out)
    assert code == 0 and info["documents"] == len(ARTICLES) and info["model"] == "minilm"
    code, out, _ = cli("index", "list", "--json")
    assert "lee" in [Path(r["path"]).name for r in json.loads(out)]
    code, out, _ = cli(
        "search", QUERIES["q1"], "--index", "lee", "-k", "2", "--mode", "dense", "--json"
    )
    hits = json.loads(out)
    assert code == 0 and len(hits) == 2 and hits[0]["metadata"]["id"] == "lee4"
    code, out, _ = cli("search", "honours list", "--index", "lee", "--where", "year=2002", "--json")
    assert {h["metadata"]["year"] for h in json.loads(out)} == {2002}


def test_search_explain(cli, built):
    code, out, _ = cli("search", QUERIES["q1"], "--index", "lee", "-k", "1", "--explain", "--json")
    hit = json.loads(out)[0]
    parts = [c for _, c in hit["explain"]["chunk"]]
    assert abs(sum(parts) - hit["explain"]["score"]) < 1e-5
    code, out, _ = cli("search", QUERIES["q1"], "--index", "lee", "-k", "1", "--explain")
    assert code == 0 and "Σ token shares" in out and "midwives" in out


def test_ask_without_a_decoder_shows_the_context(cli, built):
    code, out, _ = cli("ask", "Who was suspended?", "--index", "lee", "-k", "2", "--show-prompt")
    assert (
        code == 0 and "Sources:" in out and "[1] " in out and "Question: Who was suspended?" in out
    )
    code, _, err = cli("ask", "Who?", "--index", "lee", "-m", "minilm")
    assert code == 2 and "give a decoder such as -m smollm2" in err


def test_evaluate_retrieval(cli, built, files):
    args = ["--queries", files / "queries.tsv", "--qrels", files / "qrels.txt"]
    code, out, err = cli("evaluate", "retrieval", "--index", "lee", *args, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["queries"] == 3
    assert (
        result["modes"]["dense"]["mrr@10"] == 1.0 and result["modes"]["dense"]["recall@10"] == 1.0
    )
    assert result["ann"]["recall@10_vs_exact"] == 1.0
    corpus = ["--corpus", files / "corpus.jsonl"]  # one command: build, then evaluate
    code, out, _ = cli("evaluate", "retrieval", "--index", "lee-eval", *corpus, *args)
    assert code == 0 and "ndcg@10" in out and "ANN (HNSW)" in out
    assert out.splitlines()[0].startswith("lee-eval: 3 queries")


@pytest.mark.parametrize(
    "args, message",
    [
        (["search", "fire", "--index", "nothing-here"], "no index at"),
        (["search", "fire", "--index", "lee", "-k", "0"], "k must be a positive number"),
        (["search", "  ", "--index", "lee"], "the query is empty"),
        (["search", "fire", "--index", "lee", "--where", "year"], "is not key=value"),
        (["search", "fire", "--index", "lee", "-m", "glove-50"], "was made with minilm"),
        (["index", "build", "EMPTY", "--index", "x"], "no readable documents"),
        (["index", "remove", "nope", "--index", "lee"], "no document 'nope'"),
        (["index", "info", "--index", "bad/../name!"], "no index at"),
    ],
)
def test_errors(cli, built, tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    args = [str(tmp_path / "empty") if a == "EMPTY" else a for a in args]
    code, out, err = cli(*args)
    assert code == 2 and err.startswith("error: ") and message in err, err


def test_tour_section(capsys, minilm):
    search_cli._tour()
    out = capsys.readouterr().out
    assert "Indexed 3 notes as 3 chunks" in out
    first = out.split("vectors):")[1].split()[1]
    assert first == "kitchen.txt"
