"""word2vec from scratch: what it learns (on a synthetic corpus with two topics, and on a real
news corpus against gensim), repeatability, the streaming corpus reader, the saved file in
every word-vector command, tracking, and one-line errors for bad input."""

import gzip
import json
import random
from pathlib import Path

import numpy as np
import pytest
from gensim.models import Word2Vec
from scipy.stats import spearmanr

import contextlens as cl
from contextlens import word2vec
from contextlens.analysis.learning import learning
from contextlens.analysis.wordvectors import DATASETS
from contextlens.errors import ContextlensError
from contextlens.io import corpus
from contextlens.word2vec import Settings, Vocabulary, windows

DATA = Path(__file__).parent / "data"
LEE = DATA / "lee_background.cor"  # 60,005 words of Australian news (gensim's test corpus)
ANIMALS = ["cat", "dog", "horse", "cow", "sheep", "goat"]
VEHICLES = ["car", "truck", "bus", "train", "plane", "boat"]


def two_topics(path: Path, sentences: int = 3000, seed: int = 0) -> Path:
    """Sentences about animals or vehicles, never both: words of one topic share contexts."""
    rng = random.Random(seed)
    verbs = {
        "a": ["eats", "sleeps", "grazes", "runs"],
        "v": ["drives", "stops", "carries", "parks"],
    }
    things = {"a": ["grass", "hay", "field", "barn"], "v": ["road", "station", "fuel", "engine"]}
    lines = []
    for _ in range(sentences):
        topic = rng.choice("av")
        nouns = ANIMALS if topic == "a" else VEHICLES
        words = [rng.choice(["the", "a"]), rng.choice(nouns), rng.choice(verbs[topic])]
        words += ["near", "the", rng.choice(things[topic]), "with", "the", rng.choice(nouns)]
        lines.append(" ".join(words))
    path.write_text("\n".join(lines) + "\n")
    return path


def purity(wv) -> float:
    """Share of each topic noun's 5 nearest other nouns that are of its own topic (0.5: none
    learned, chance level 5/11)."""
    nouns = ANIMALS + VEHICLES
    u = wv.get_unit(nouns)
    sims = (u @ u.T).numpy()
    np.fill_diagonal(sims, -2)
    top = np.argsort(-sims, 1)[:, :5]
    n = len(ANIMALS)
    return float(np.mean([(top[i] < n) == (i < n) for i in range(len(nouns))]))


@pytest.mark.parametrize("mode", ["skipgram", "cbow"])
def test_learns_two_topics(tmp_path, mode):
    text = two_topics(tmp_path / "topics.txt")
    run = cl.train_word2vec(
        text, mode=mode, dim=20, epochs=3, min_count=1, sample=0, track=[("cat", "dog")]
    )
    assert purity(run.vectors) > 0.9
    first, last = run.checkpoints[0], run.checkpoints[-1]
    assert first.progress == 0 and last.progress == pytest.approx(1.0)
    assert last.cosines[0] > first.cosines[0] + 0.3
    assert {w for w, _ in last.neighbours["cat"][:4]} <= set(ANIMALS)
    assert run.words_per_second > 0 and run.corpus_words == 3000 * 9


def test_same_seed_same_vectors(tmp_path):
    text = two_topics(tmp_path / "topics.txt", 500)
    runs = [cl.train_word2vec(text, dim=8, min_count=1, seed=s).vectors for s in (3, 3, 4)]
    assert np.array_equal(runs[0].vectors.numpy(), runs[1].vectors.numpy())
    assert not np.array_equal(runs[0].vectors.numpy(), runs[2].vectors.numpy())


def test_two_workers_learn_too(tmp_path):
    text = two_topics(tmp_path / "topics.txt")
    run = cl.train_word2vec(text, dim=20, epochs=3, min_count=1, sample=0, workers=2)
    assert purity(run.vectors) > 0.9


def test_windows_stay_in_sentence_and_reach():
    sentence = np.repeat(np.arange(50), 7)
    block = corpus.Block(np.arange(len(sentence)), sentence, len(sentence))  # id = position
    centre, context, count = windows(block, Settings(window=3), np.random.default_rng(0))
    assert sorted(centre) == list(range(len(sentence))) and context.shape == (len(centre), 6)
    assert np.all(np.diff(count) >= 0) and count.min() >= 1
    valid = np.arange(6) < count[:, None]  # the context words come first in each row
    assert np.all(context[~valid] == 0)
    centres = np.broadcast_to(centre[:, None], context.shape)[valid]
    assert np.array_equal(sentence[centres], sentence[context[valid]])
    distance = np.abs(centres - context[valid])
    assert distance.min() == 1 and distance.max() == 3
    assert all(len(set(row[:n])) == n for row, n in zip(context, count, strict=True))
    # reduced windows: each centre sees 1..3 words a side, 2 on average (word2vec's b draw)
    assert 2.5 < count.mean() < 3.5


def test_subsampling_and_vocabulary_follow_gensim():
    sentences = list(corpus.sentences([LEE]))
    theirs = Word2Vec(min_count=5, sample=1e-3)
    theirs.build_vocab(sentences)
    vocab = Vocabulary(corpus.count_words([LEE]), 5)
    assert set(vocab.words) == set(theirs.wv.index_to_key)
    keep = vocab.keep_probability(1e-3)
    expected = np.array([theirs.wv.get_vecattr(w, "sample_int") for w in vocab.words]) / 2**32
    assert np.abs(keep - expected).max() < 1e-6


@pytest.mark.parametrize("mode", ["skipgram", "cbow"])
def test_quality_against_gensim_on_news(mode):
    """Same corpus, same settings, three seeds each, in both modes: Spearman on the
    WordSim-353 and SimLex-999 pairs found in both vocabularies within 0.05 of gensim's on
    average, and as many shared nearest neighbours of frequent words with gensim as gensim
    shares with itself across seeds (less 20%)."""
    sentences = list(corpus.sentences([LEE]))
    pairs = [
        (a.lower(), b.lower(), s) for name in ("wordsim", "simlex") for a, b, s in _pairs(name)
    ]
    ours, theirs, shared, self_shared = [], [], [], []
    previous = None
    for seed in (1, 2, 3):
        mine = cl.train_word2vec(LEE, mode=mode, dim=50, epochs=5, seed=seed).vectors
        sg = int(mode == "skipgram")
        g = Word2Vec(sentences, sg=sg, vector_size=50, epochs=5, seed=seed, workers=1).wv
        both = [(a, b, s) for a, b, s in pairs if a in mine and b in mine and a in g and b in g]
        human = [s for *_, s in both]
        ours.append(spearmanr([mine.similarity(a, b) for a, b, _ in both], human)[0])
        theirs.append(spearmanr([float(g.similarity(a, b)) for a, b, _ in both], human)[0])
        frequent = g.index_to_key[30:130]
        shared.append(_agreement([_ours_top(mine, w) for w in frequent], g, frequent))
        if previous is not None:
            self_shared.append(_agreement([_top(previous, w) for w in frequent], g, frequent))
        previous = g
    assert len(both) > 100
    assert abs(np.mean(ours) - np.mean(theirs)) < 0.05, (ours, theirs)
    assert np.mean(shared) > 0.8 * np.mean(self_shared), (shared, self_shared)


def _pairs(name: str) -> list[tuple[str, str, float]]:
    rows = [line.split() for line in DATASETS[name].read_text().splitlines()]
    return [(r[0], r[1], float(r[2])) for r in rows if len(r) >= 3 and r[2][0].isdigit()]


def _top(kv, word: str) -> list[str]:
    return [w for w, _ in kv.most_similar(word, topn=10)]


def _ours_top(wv, word: str) -> list[str]:
    return [w for w, _ in wv.most_similar(word, k=10)]


def _agreement(lists: list[list[str]], g, words: list[str]) -> float:
    """Mean share of each word's 10 nearest words that `lists` and gensim's `g` agree on."""
    return float(
        np.mean([len(set(n) & set(_top(g, w))) / 10 for n, w in zip(lists, words, strict=True)])
    )


def test_gzip_and_several_files_stream_the_same(tmp_path):
    text = two_topics(tmp_path / "topics.txt", 600)
    lines = text.read_text().splitlines(keepends=True)
    first, second = tmp_path / "a.txt", tmp_path / "b.txt.gz"
    first.write_text("".join(lines[:250]))
    with gzip.open(second, "wt", encoding="utf-8") as f:
        f.write("".join(lines[250:]))
    one = cl.train_word2vec(text, dim=8, min_count=1).vectors
    two = cl.train_word2vec([first, second], dim=8, min_count=1).vectors
    assert one.words == two.words
    assert np.array_equal(one.vectors.numpy(), two.vectors.numpy())


def test_corpus_kept_in_memory_trains_as_one_read_each_epoch(tmp_path, monkeypatch):
    text = two_topics(tmp_path / "topics.txt", 2000)  # 18,000 words: two blocks
    kept = cl.train_word2vec(text, dim=8, min_count=1, epochs=3).vectors
    monkeypatch.setattr(word2vec, "KEEP_WORDS", 100)  # too large to keep: read every epoch
    read = cl.train_word2vec(text, dim=8, min_count=1, epochs=3).vectors
    assert np.array_equal(kept.vectors.numpy(), read.vectors.numpy())


def test_saved_vectors_work_in_every_command(tmp_path, run_cli):
    text = two_topics(tmp_path / "topics.txt")
    out = tmp_path / "topics.vec"
    code, stdout, err = run_cli(
        "train", "word2vec", text, "--out", out, "--dim", "20", "--epochs", "2",
        "--min-count", "1", "--sample", "0", "--track", "cat,dog,car", "--plot",
        tmp_path / "learn.png", "--checkpoints", "4", "--json",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(stdout)
    assert [(p["a"], p["b"]) for p in report["pairs"]] == [
        ("cat", "dog"),
        ("cat", "car"),
        ("dog", "car"),
    ]
    assert len(report["progress"]) == 5 and len(report["maps"][0]) == 3
    assert report["out"] == str(out) and (tmp_path / "learn.png").stat().st_size > 10_000
    wv = cl.load(out)
    assert len(wv) == report["vocabulary"] and wv.dim == 20
    code, stdout, err = run_cli("neighbors", "cat", "-m", out, "-k", "4", "--json")
    assert code == 0 and {n["word"] for n in json.loads(stdout)["neighbors"]} <= set(ANIMALS)
    assert run_cli("analogy", "cat", "dog", "car", "-m", out)[0] == 0
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("cat dog 9\ncat car 1\ndog horse 8\nbus car 9\ncow truck 1\n")
    code, stdout, err = run_cli("evaluate", "wordsim", pairs, "-m", out, "--json")
    assert code == 0 and json.loads(stdout)["spearman"] > 0.5


def test_cli_table_and_progress(tmp_path, run_cli):
    text = two_topics(tmp_path / "topics.txt", 500)
    code, out, err = run_cli(
        "train", "word2vec", text, "-o", tmp_path / "v.txt", "--min-count", "1",
        "--track", "cat,dog", "--mode", "cbow",
    )  # fmt: skip
    assert code == 0, err
    assert "trained cbow" in out and "cat · dog" in out and "at the random start" in out
    assert cl.load(tmp_path / "v.txt").dim == 100


def test_learning_report_maps_follow_the_last(tmp_path):
    text = two_topics(tmp_path / "topics.txt", 800)
    run = cl.train_word2vec(text, dim=16, min_count=1, track=[ANIMALS[:3] + VEHICLES[:3]])
    report = learning(run)
    assert report.maps.shape == (len(run.checkpoints), 6, 2)
    assert len(report.pairs) == 15 and report.tracked[0].word == "cat"
    last = report.maps[-1]
    assert float(last.norm(dim=1).max()) == pytest.approx(1.0, abs=1e-5)


BAD = [
    ("empty", b"", {}, "holds no words"),
    ("blank", b"\n \n\t\n", {}, "holds no words"),
    ("rare", b"one two three\n", {"min_count": 2}, "lower --min-count"),
    ("latin1", b"caf\xe9 au lait\n", {}, "line 1 is not UTF-8"),
    ("words", b"a b a b\n" * 5, {"track": [("a", "zebra")], "min_count": 1}, "'zebra'"),
    ("words", b"a b a b\n" * 5, {"window": 0}, "--window"),
    ("words", b"a b a b\n" * 5, {"mode": "glove"}, "--mode"),
]


@pytest.mark.parametrize(("name", "content", "options", "message"), BAD)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, name, content, options, message):
    path = tmp_path / f"{name}.txt"
    path.write_bytes(content)
    out = tmp_path / "out.vec"
    with pytest.raises(ContextlensError, match=message):
        cl.train_word2vec(path, out, **options)
    assert list(tmp_path.iterdir()) == [path]


def test_bad_files_and_options_on_the_command_line(tmp_path, run_cli):
    broken = tmp_path / "broken.txt.gz"
    broken.write_bytes(gzip.compress(b"some words here\n" * 100)[:40])
    for args, message in [
        ([broken, "-o", tmp_path / "v.vec"], "not a complete gzip file"),
        ([tmp_path / "missing.txt", "-o", tmp_path / "v.vec"], "does not exist"),
        ([tmp_path, "-o", tmp_path / "v.vec"], "is a folder"),
        ([LEE, "-o", tmp_path / "v.npy"], "give --out a .txt"),
        ([LEE, "-o", tmp_path / "no" / "v.vec"], "create it first"),
        ([LEE, "-o", tmp_path / "v.vec", "--track", "king"], "fewer than two words"),
        ([LEE, "-o", tmp_path / "v.vec", "--plot", tmp_path / "p.png"], "add --track"),
    ]:
        code, out, err = run_cli("train", "word2vec", *args)
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, (args, err)
        assert message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.txt.gz"]


def test_web_learning_view_trains_on_the_posted_text(tmp_path):
    from fastapi.testclient import TestClient

    from contextlens.web import create_app

    client = TestClient(create_app(["glove-50"]), base_url="http://127.0.0.1:8000")
    text = two_topics(tmp_path / "topics.txt", 1500).read_text()
    body = {"text": text, "track": [["cat", "dog"], ["cat", "car"]], "min_count": 1, "seed": 2}
    r = client.post("/api/learn", json=body)
    assert r.status_code == 200, r.text
    d = r.json()
    run = cl.train_word2vec(tmp_path / "topics.txt", dim=20, epochs=3, min_count=1, seed=2,
                            checkpoints=10, track=[("cat", "dog"), ("cat", "car")])  # fmt: skip
    expected = json.loads(json.dumps(cl.report.to_dict(learning(run))))
    assert {k: d[k] for k in ("pairs", "tracked", "maps", "progress", "loss")} == {
        k: expected[k] for k in ("pairs", "tracked", "maps", "progress", "loss")
    }
    assert d["pairs"][0]["cosines"][-1] > d["pairs"][1]["cosines"][-1]
    bad = client.post("/api/learn", json=body | {"track": [["cat", "zebra"]]})
    assert bad.status_code == 422 and "'zebra'" in bad.json()["error"]
    page = client.get("/static/js/views/learning.js")
    assert page.status_code == 200 and "/api/learn" in page.text
    assert 'data-view="learning"' in client.get("/").text
