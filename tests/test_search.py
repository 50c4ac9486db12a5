"""Search end to end on a real corpus (gensim's Lee background news, first 60 articles): known
passages rank first for hand-written paraphrased queries, ANN agrees with the exact scan,
explanations sum to the score, incremental builds, filters, chunking, readers and metrics."""

import math
import shutil
from pathlib import Path

import gensim
import numpy as np
import pytest
import torch

import contextlens as cl
from contextlens.errors import ContextlensError
from contextlens.io.retrieval import read_qrels, read_queries
from contextlens.search import Index, chunk_text, explain, read_documents
from contextlens.search.evaluate import mrr, ndcg, recall
from contextlens.search.rag import answer
from contextlens.search.vectors import Hnsw, exact_top

LEE = Path(gensim.__file__).parent / "test" / "test_data" / "lee_background.cor"
CRANFIELD = Path(__file__).parent / "data" / "cranfield"
N_DOCS = 60

# (query worded differently from the article, the article that answers it)
QUERIES = [
    ("nurses disciplined for inhaling laughing gas on the job", 4),
    ("film maker of the fantasy trilogy gets a national award", 18),
    ("tremor shakes farming country in the west of the continent", 32),
    ("oceans could rise sharply this century because of climate change", 31),
    ("backpackers stranded after their car got bogged in the outback", 24),
    ("star of a political sitcom about civil servants dies", 45),
    ("cheap airline slashes ticket prices to fend off a rival", 42),
    ("separatist commander gets life sentence for taking hostages", 51),
]


def lee_name(i: int) -> str:
    return f"lee{i:03d}.txt"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("lee")
    for i, line in enumerate(LEE.read_text().splitlines()[:N_DOCS]):
        (folder / lee_name(i)).write_text(line)
    return folder


@pytest.fixture(scope="module")
def built(corpus, minilm, tmp_path_factory):
    ix = Index.create(tmp_path_factory.mktemp("ix") / "lee", minilm)
    report = ix.build([corpus], minilm)
    return ix, report


def test_build_report(built):
    ix, report = built
    info = ix.info()
    assert report.documents == report.embedded == info["documents"] == N_DOCS
    assert report.chunks == info["chunks"] > N_DOCS  # long articles have several chunks
    assert info["model"] == "minilm" and info["dim"] == 384 and info["generation"] == 1


def test_known_passages_rank_first(built, minilm):
    """Dense search puts the answering article first; hybrid keeps it in the top 3 (the
    queries share few words with the articles, so BM25 pulls other articles up)."""
    ix, _ = built
    for query, expected in QUERIES:
        dense = ix.search(query, k=1, mode="dense", model=minilm)
        assert Path(dense[0].document).name == lee_name(expected), (query, dense[0].document)
        hybrid = ix.search(query, k=3, mode="hybrid", model=minilm)
        assert lee_name(expected) in [Path(h.document).name for h in hybrid], query


def test_hits_point_into_their_documents(built, minilm, corpus):
    ix, _ = built
    for h in ix.search("bushfires near Sydney", k=5, model=minilm):
        text = Path(h.document).read_text()
        assert text[h.start : h.end] == h.text
        assert h.metadata["path"] == h.document


def test_bm25_matches_words(built):
    ix, _ = built
    hits = ix.search("Hopman Cup", k=10, mode="bm25")
    both = [h for h in hits if "Hopman Cup" in h.text]  # only lee006 and lee017 have both words
    assert {Path(h.document).name for h in both} == {lee_name(6), lee_name(17)}
    assert hits[: len(both)] == both  # and they rank above chunks that only say "cup"
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_ann_recall_against_exact(built, minilm):
    ix, _ = built
    agree = []
    for query, _ in QUERIES:
        exact = {h.chunk_id for h in ix.search(query, k=10, mode="dense", model=minilm, ann=False)}
        ann = {h.chunk_id for h in ix.search(query, k=10, mode="dense", model=minilm, ann=True)}
        agree.append(len(exact & ann) / 10)
    assert np.mean(agree) >= 0.95


def test_hnsw_recall_on_random_unit_vectors():
    """The hard case for a graph index: 5,000 random unit vectors in 384 dimensions."""
    g = torch.Generator().manual_seed(0)
    vectors = torch.nn.functional.normalize(torch.randn(5000, 384, generator=g), dim=1)
    queries = torch.nn.functional.normalize(torch.randn(50, 384, generator=g), dim=1)
    _, exact = exact_top(vectors, queries, 10)
    scores, rows = Hnsw.build(vectors.numpy()).top(queries.numpy(), 10)
    recall10 = np.mean(
        [len(set(a) & set(b)) / 10 for a, b in zip(exact.tolist(), rows.tolist(), strict=True)]
    )
    assert recall10 >= 0.95
    np.testing.assert_allclose(
        scores, (queries @ vectors.T).gather(1, torch.from_numpy(rows)), atol=1e-5
    )


def test_explain_contributions_sum_to_the_score(built, minilm):
    ix, _ = built
    query = QUERIES[0][0]
    hit = ix.search(query, k=1, mode="dense", model=minilm)[0]
    e = explain(minilm, query, hit.text)
    assert math.isclose(sum(c for _, c in e.chunk), e.score, abs_tol=1e-5)
    assert math.isclose(sum(c for _, c in e.query), e.score, abs_tol=1e-5)
    assert math.isclose(e.score, hit.score, abs_tol=1e-4)  # the stored vector's cosine
    assert len(e.chunk) == len(minilm.tokenize(hit.text).ids)
    top = [t for t, _ in e.top("chunk", 10)]
    assert {"midwives", "nitrous", "oxide"} & set(top)


def test_filters(built, minilm):
    ix, _ = built
    where = {"path": f"*{lee_name(8)}"}
    for mode in ("dense", "bm25", "hybrid"):
        hits = ix.search("fire", k=5, mode=mode, model=minilm, where=where)
        assert hits and {Path(h.document).name for h in hits} == {lee_name(8)}
    assert ix.search("fire", k=5, model=minilm, where={"path": "*nothing*"}) == []


def test_incremental_build_add_remove(corpus, minilm, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(6):
        shutil.copy(corpus / lee_name(i), folder)
    ix = Index.create(tmp_path / "ix", minilm)
    assert ix.build([folder], minilm).embedded == 6
    (folder / lee_name(0)).write_text("A new text about tennis at the Hopman Cup in Perth.")
    (folder / lee_name(1)).unlink()
    report = ix.build([folder], minilm)
    assert (report.embedded, report.unchanged, report.removed) == (1, 4, 1)
    assert ix.search("tennis in Perth", k=1, model=minilm)[0].document.endswith(lee_name(0))
    extra = tmp_path / "extra.md"
    extra.write_text("# Minutes\n\nThe committee approved the budget for the new library.")
    assert ix.add([extra], minilm).embedded == 1
    assert ix.info()["documents"] == 6
    assert ix.remove([str(extra)]) == 1
    assert ix.info()["documents"] == 5
    with pytest.raises(ContextlensError, match="no document"):
        ix.remove(["not-there"])


def test_bad_queries(built, minilm, minilm_dir, tmp_path):
    ix, _ = built
    for bad in ("", "   "):
        with pytest.raises(ContextlensError, match="query is empty"):
            ix.search(bad, model=minilm)
    for k in (0, -3):
        with pytest.raises(ContextlensError, match="k must be"):
            ix.search("fire", k=k, model=minilm)
    with pytest.raises(ContextlensError, match="no words"):
        ix.search("?!", mode="bm25")
    with pytest.raises(ContextlensError, match="unknown search mode"):
        ix.search("fire", mode="fuzzy", model=minilm)
    other = cl.load(minilm_dir)  # the same weights under another name: a different model
    with pytest.raises(ContextlensError, match="made with minilm"):
        ix.search("fire", model=other)
    with pytest.raises(ContextlensError, match="no index at"):
        Index.open(tmp_path / "missing")


def test_bad_files_are_skipped_and_reported(minilm, tmp_path):
    (tmp_path / "good.txt").write_text("Kangaroos are marsupials found in Australia.")
    (tmp_path / "latin1.txt").write_bytes("Caf\xe9 au lait.".encode("latin-1"))
    (tmp_path / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0")
    (tmp_path / "blank.md").write_text("  \n")
    (tmp_path / "table.csv").write_text("a,b\n1,2\n")
    docs, skipped = read_documents([tmp_path])
    assert [Path(d.name).name for d in docs] == ["good.txt"]
    reasons = {Path(s.path).name: s.reason for s in skipped}
    assert reasons["latin1.txt"].startswith("not UTF-8 (byte 0xe9")
    assert reasons["image.txt"] == "binary file"
    assert reasons["blank.md"] == "empty"
    assert reasons["table.csv"] == "unsupported file type .csv"
    empty = tmp_path / "empty"
    empty.mkdir()
    ix = Index.create(tmp_path / "ix", minilm)
    with pytest.raises(ContextlensError, match="no readable documents"):
        ix.build([empty], minilm)
    with pytest.raises(ContextlensError, match="does not exist"):
        read_documents([tmp_path / "nope"])


def test_chunks_respect_the_limit_and_sentences(minilm):
    sentences = [
        f"Sentence number {i} talks about topic {i % 7} at some length." for i in range(60)
    ]
    long_one = " ".join(["supercalifragilistic"] * 150) + "."
    text = " ".join(sentences[:30]) + " " + long_one + " " + " ".join(sentences[30:])
    out = chunk_text(text, minilm.tokenizer, max_tokens=64, overlap=16)
    assert out.split == 1
    for c in out.chunks:
        assert c.text == text[c.start : c.end]
        assert len(minilm.tokenize(c.text, limit=10_000).ids) == c.n_tokens <= 64
    whole = [c for c in out.chunks if "supercali" not in c.text]
    assert all(c.text.startswith("Sentence") and c.text.endswith(".") for c in whole)
    starts = [c.start for c in out.chunks]
    assert starts == sorted(starts) and out.chunks[-1].end == len(text)
    assert any(
        a.end > b.start for a, b in zip(out.chunks[:-1], out.chunks[1:], strict=True)
    )  # overlap
    with pytest.raises(ContextlensError, match="overlap"):
        chunk_text(text, minilm.tokenizer, max_tokens=64, overlap=40)


def test_readers(tmp_path):
    (tmp_path / "page.html").write_text(
        "<html><head><title>T</title><style>p{}</style></head>"
        "<body><p>First para.</p><script>x()</script><p>Second.</p></body></html>"
    )
    (tmp_path / "recs.jsonl").write_text(
        '{"_id": "a1", "text": "Alpha text.", "lang": "en"}\nnot json\n{"title": "no text"}\n'
    )
    docs, skipped = read_documents([tmp_path])
    by = {d.name.rsplit("/", 1)[-1]: d for d in docs}
    assert (
        by["page.html"].text == "First para.\n\nSecond."
        and by["page.html"].metadata["title"] == "T"
    )
    rec = by["recs.jsonl#a1"]
    assert rec.text == "Alpha text." and rec.metadata["lang"] == "en" and rec.metadata["id"] == "a1"
    assert sorted(s.reason for s in skipped) == ["no text in field 'text'", "not a JSON object"]

    cran, _ = read_documents([CRANFIELD / "cran.all.1400"])
    assert len(cran) == 1403 and cran[0].metadata["id"] == "1"  # 1,405 records, 2 without text
    assert cran[0].text.startswith("experimental investigation of the aerodynamics of a\nwing")
    queries, qrels = read_queries(CRANFIELD / "cran.qry"), read_qrels(CRANFIELD / "cranqrel")
    assert len(queries) == 226 and set(qrels) == {str(i) for i in range(1, 226)}
    assert qrels["1"]["184"] == 3 and "486" not in qrels["1"]  # code 2 -> gain 3; -1 dropped


def test_metrics_by_hand():
    relevant = {"a": 3.0, "b": 1.0}
    ranked = ["x", "a", "y", "b"]
    assert recall(ranked, relevant, 2) == 0.5 and recall(ranked, relevant, 4) == 1.0
    assert mrr(ranked, relevant) == 0.5
    dcg = 3 / math.log2(3) + 1 / math.log2(5)
    assert math.isclose(ndcg(ranked, relevant), dcg / (3 + 1 / math.log2(3)))


def test_rag_prompt_and_answer(built, minilm, smollm2):
    ix, _ = built
    question = "How many midwives were suspended at Wollongong Hospital?"
    hits = ix.search(question, k=2, mode="hybrid", model=minilm)
    plain = answer(question, hits)
    assert plain.text is None and "[1] (" in plain.messages[1]["content"]
    result = answer(question, hits[:1], smollm2, max_new_tokens=12)
    assert result.prompt.startswith("<|im_start|>system") and hits[0].text in result.prompt
    assert result.text  # smollm2 (135M) answers, though not always correctly
    with pytest.raises(ContextlensError, match="decoder"):
        answer(question, hits, minilm)
