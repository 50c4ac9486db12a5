"""Static word vectors (glove-50): the table, operations and evaluations vs gensim KeyedVectors.

gensim gets exactly our matrix, so any difference is a difference in the computation. Scores
agree within 1e-5 (float32 sums in a different order); word-pair correlations within 1e-6 for
the same reason; analogy answers (which question is right) are identical.
"""

import json

import numpy as np
import pytest
import torch
from gensim.models import KeyedVectors

import contextlens as cl
from contextlens.analysis.wordvectors import DATASETS, read_analogies
from contextlens.io.catalog import CATALOG

SCORE_TOL = 1e-5


@pytest.fixture(scope="module")
def wv():
    return cl.load("glove-50")


@pytest.fixture(scope="module")
def kv(wv):
    k = KeyedVectors(wv.dim)
    k.add_vectors(wv.words, wv.vectors.numpy())
    return k


@pytest.fixture(scope="module")
def questions():
    """Every 97th question of the Google analogy file that glove-50 knows: [(a, b, c, d)]."""
    qs = [q for s in read_analogies(DATASETS["analogies"], False) for q in s.questions]
    return [tuple(w.lower() for w in q) for q in qs[::97]]


def same_ranking(ours, theirs):
    assert [w for w, _ in ours] == [w for w, _ in theirs]
    np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], atol=SCORE_TOL)


def test_table(wv):
    data = CATALOG["glove-50"].path()
    assert (len(wv), wv.dim) == (400_000, 50) and wv.vectors.dtype == torch.float32
    assert wv.words[:4] == ["the", ",", ".", "of"]  # frequency order kept
    assert "king" in wv and "King" not in wv and 3 not in wv
    np.testing.assert_array_equal(
        wv["king"].numpy(), np.load(data / "glove_6B_50d_emb.npy", mmap_mode="r")[691]
    )
    assert wv.words[691] == "king" and wv.row("king") == 691
    assert wv[["king", "queen"]].shape == (2, 50)
    torch.testing.assert_close(wv.unit.norm(dim=1), torch.ones(len(wv)))
    assert repr(wv) == "WordVectors('glove-50', 400,000 words × 50)"


def test_king_minus_man_plus_woman_is_queen(wv):
    assert wv.analogy("man", "king", "woman")[0][0] == "queen"
    assert wv.most_similar(positive=["king", "woman"], negative=["man"], k=1)[0][0] == "queen"
    assert wv.analogy("man", "king", "woman", method="3cosmul")[0][0] == "queen"
    assert wv.similarity("king", "queen") > 0.75 > 0.4 > wv.similarity("king", "apple")


def test_most_similar_matches_gensim(wv, kv, questions):
    words = wv.words[100:20_000:200]  # 100 single words across the frequency range
    for w in words:
        same_ranking(wv.most_similar(w), kv.most_similar(w))
    for a, b, c, _ in questions[:60]:  # 60 analogies
        same_ranking(wv.most_similar([b, c], [a]), kv.most_similar([b, c], [a]))
    for a, b, c, _ in questions[100:110]:
        ours = wv.most_similar([b, c], [a], k=5, restrict_vocab=30_000)
        same_ranking(ours, kv.most_similar([b, c], [a], topn=5, restrict_vocab=30_000))


def test_most_similar_cosmul_matches_gensim(wv, kv, questions):
    for a, b, c, _ in questions[:40]:
        same_ranking(wv.most_similar_cosmul([b, c], [a]), kv.most_similar_cosmul([b, c], [a]))
    for w in ("paris", "computer", "run"):
        same_ranking(wv.most_similar_cosmul(w), kv.most_similar_cosmul(w))


def test_doesnt_match_matches_gensim(wv, kv, questions):
    sets = [list(q) + [wv.words[1000 + 37 * i]] for i, q in enumerate(questions[:100])]
    sets.append(["breakfast", "cereal", "dinner", "lunch"])
    for words in sets:
        assert wv.doesnt_match(words) == kv.doesnt_match(words), words
    assert wv.doesnt_match(["breakfast", "lunch", "dinner", "car"]) == "car"


def test_similarity_distance_and_vectors(wv, kv):
    for a, b in [("king", "queen"), ("king", "apple"), ("cat", "dog"), ("car", "banana")]:
        assert wv.similarity(a, b) == pytest.approx(kv.similarity(a, b), abs=1e-6)
        assert wv.distance(a, b) == pytest.approx(kv.distance(a, b), abs=1e-6)
        diff = kv[a] - kv[b]
        assert wv.distance(a, b, "euclidean") == pytest.approx(np.linalg.norm(diff), rel=1e-6)
        assert wv.distance(a, b, "manhattan") == pytest.approx(np.abs(diff).sum(), rel=1e-6)
    v = wv.arithmetic("king - man + woman")
    torch.testing.assert_close(v, wv["king"] - wv["man"] + wv["woman"])
    ours = wv.similar_by_vector(v, k=5)
    same_ranking(ours, kv.similar_by_vector(v.numpy(), topn=5))
    assert ours[0][0] == "king"  # the query words are not left out of a raw vector's neighbours
    assert wv.most_similar("king", k=1, exclude_query=False) == [("king", pytest.approx(1.0))]
    assert wv.most_similar("king", k=1)[0][0] != "king"


def test_word_pair_evaluations_match_gensim(wv, kv):
    for name in ("wordsim", "simlex", "men"):
        ours = cl.evaluate_word_pairs(wv, DATASETS[name])
        pearson, spearman, oov = kv.evaluate_word_pairs(str(DATASETS[name]))
        assert ours.pearson == pytest.approx(pearson.statistic, abs=1e-6)
        assert ours.spearman == pytest.approx(spearman.statistic, abs=1e-6)
        assert ours.oov_fraction * 100 == pytest.approx(oov, abs=1e-9)  # theirs: a percentage
    simlex = cl.evaluate_word_pairs(wv, DATASETS["simlex"])
    assert (simlex.pairs, simlex.oov) == (998, 1)


def every_nth_question(path, n: int):
    """Every n-th line of each section of questions-words.txt, written next to `path`."""
    keep, i = [], 0
    for line in DATASETS["analogies"].read_text().splitlines():
        i = 0 if line.startswith(":") else i + 1
        if i % n == 0:
            keep.append(line)
    path.write_text("\n".join(keep) + "\n")
    return path


@pytest.fixture(scope="module")
def analogy_subset(tmp_path_factory):
    """About 1,000 questions from all 14 sections."""
    return every_nth_question(tmp_path_factory.mktemp("analogies") / "subset.txt", 20)


def test_analogy_evaluation_matches_gensim(wv, kv, analogy_subset):
    ours = cl.evaluate_analogies(wv, analogy_subset, restrict_vocab=100_000)
    score, sections = kv.evaluate_word_analogies(str(analogy_subset), restrict_vocab=100_000)
    assert [s.name for s in ours.sections] + ["Total accuracy"] == [s["section"] for s in sections]
    for s, g in zip(ours.sections, sections, strict=False):
        right = [q for q, ok in zip(s.questions, s.correct, strict=True) if ok]
        wrong = [q for q, ok in zip(s.questions, s.correct, strict=True) if not ok]
        assert (right, wrong) == (g["correct"], g["incorrect"]), s.name
    assert ours.accuracy == score and ours.evaluated > 900
    assert ours.scores().sections[0].section == "capital-common-countries"


def test_cosmul_evaluation_matches_gensim_answers(wv, kv, tmp_path):
    """gensim has no 3CosMul evaluation: ask its most_similar_cosmul question by question."""
    subset = every_nth_question(tmp_path / "small.txt", 60)
    result = cl.evaluate_analogies(wv, subset, method="3cosmul", restrict_vocab=len(wv))
    asked = [(q, a) for s in result.sections for q, a in zip(s.questions, s.answers, strict=True)]
    for (a, b, c, _), answer in asked[::8]:
        top = kv.most_similar_cosmul([b.lower(), c.lower()], [a.lower()], topn=5)
        expected = next(w for w, _ in top if w.upper() not in (a, b, c))
        assert answer == expected, (a, b, c)
    assert 0.3 < result.accuracy < cl.evaluate_analogies(wv, subset).accuracy + 0.2


def test_cli(run_cli):
    code, out, _ = run_cli("analogy", "man", "king", "woman", "--json")
    assert code == 0 and json.loads(out)["answers"][0]["word"] == "queen"
    code, out, _ = run_cli("analogy", "man", "king", "woman")
    assert code == 0 and "man : king :: woman : queen" in out and "runners-up" in out
    code, out, _ = run_cli("neighbors", "frog", "-k", "3", "--json")
    assert code == 0 and len(json.loads(out)["neighbors"]) == 3
    code, out, _ = run_cli("vectors", "king", "queen", "--json")
    vectors = json.loads(out)["vectors"]
    assert code == 0 and vectors["king"][:2] == pytest.approx([0.50451, 0.68607])
    code, out, _ = run_cli("evaluate", "simlex", "--json")
    assert code == 0 and json.loads(out)["pairs"] == 998
    code, out, _ = run_cli("evaluate", "men")
    assert code == 0 and "MEN" in out and "3000 pairs" in out
    code, _, err = run_cli("neighbors", "qwxzv")
    assert code == 2 and err.startswith("error: 'qwxzv' is not in the vocabulary of glove-50")
    code, _, err = run_cli("neighbors", "king", "-m", "minilm")
    assert code == 2 and "contextual model" in err


def test_cli_analogy_evaluation(run_cli, analogy_subset):
    code, out, _ = run_cli("evaluate", "analogies", analogy_subset, "--restrict-vocab", "30000")
    assert code == 0 and "3CosAdd" in out and "3CosMul" in out and "gram8-plural" in out
    code, out, _ = run_cli(
        "evaluate", "analogies", analogy_subset, "--restrict-vocab", "30000", "--json"
    )
    r = json.loads(out)
    add, mul = r["methods"]["3cosadd"], r["methods"]["3cosmul"]
    assert add["evaluated"] == mul["evaluated"] > 700
