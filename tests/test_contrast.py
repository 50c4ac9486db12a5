"""Static against contextual: glove-50's one neighbour list for "bank" beside minilm's lists,
which follow each sentence's meaning."""

import json

import pytest

import contextlens as cl
from contextlens.analysis.contrast import candidate_words, contrast
from contextlens.cli.app import get_model
from contextlens.errors import ContextlensError
from contextlens.report import to_dict

RIVER = "I sat on the bank of the river and watched the water."
LOAN = "The bank raised the interest rates on its loans."
SALARY = "She deposited her salary at the bank."
MONEY = {"loans", "loan", "financial", "finance", "monetary", "cash", "payments", "funds"}
MONEY |= {"currency", "debt", "account", "credit", "money", "deposit", "savings", "fund", "dollars"}


@pytest.fixture(scope="module")
def glove():
    return cl.load("glove-50")


def test_one_static_list_and_one_list_per_sentence(minilm, glove):
    r = contrast("bank", [RIVER, LOAN, SALARY], glove, minilm, k=8, candidates=1000)
    assert [w for w, _ in r.static] == [w for w, _ in glove.most_similar("bank", k=8)]
    assert r.layer == 6 and r.candidates == 1000 and r.contextual_model == "minilm"
    river, loan, salary = ([w for w, _ in s.neighbours] for s in r.sentences)
    assert river[0] == "river"
    assert _rank(loan, "river") > 0 and _rank(salary, "river") > 0
    river_score = [dict(s.neighbours).get("river", -1.0) for s in r.sentences]
    assert river_score[0] > max(river_score[1:])
    assert len(MONEY & set(salary)) >= 3
    assert loan[0] in MONEY and salary[0] in MONEY
    assert len(MONEY & set(loan)) >= 3
    assert all(not w.startswith("bank") for s in r.sentences for w, _ in s.neighbours)
    assert [s.found for s in r.sentences] == ["bank"] * 3


def _rank(words: list[str], word: str) -> int:
    return words.index(word) if word in words else len(words)


def test_cli_json_is_the_report(run_cli):
    code, out, err = run_cli(
        "contrast",
        "bank",
        RIVER,
        SALARY,
        "-k",
        "5",
        "--candidates",
        "500",
        "--layer",
        "4",
        "--json",
    )
    assert code == 0, err
    wv, lm = get_model("glove-50"), get_model("minilm")  # the CLI's own, already loaded
    assert json.loads(out) == to_dict(contrast("bank", [RIVER, SALARY], wv, lm, 5, 4, 500))
    code, out, err = run_cli("contrast", "bank", RIVER, SALARY, "-k", "3", "--candidates", "500")
    assert code == 0 and "glove-50 (static, any sentence)" in out and "minilm:" in out


def test_candidates_are_common_words(glove):
    words = candidate_words(glove, 50)
    assert len(words) == 50 and words[:3] == ["the", "of", "to"]
    assert all(w.isalpha() and len(w) > 1 for w in words)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bank", RIVER], "at least two"),
        (["bank", RIVER, "No such word here."], "sentence 2"),
        (["qzxv", RIVER, LOAN], "not in the vocabulary"),
        (["bank", RIVER, LOAN, "--layer", "9"], "--layer"),
        (["bank", RIVER, LOAN, "-k", "0"], "--top"),
        (["bank", RIVER, LOAN, "-s", "minilm"], "contextual model"),
        (["bank", RIVER, LOAN, "-m", "glove-50"], "-m minilm"),
    ],
)
def test_bad_input_is_one_line(run_cli, args, message):
    code, out, err = run_cli("contrast", *args)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err


def test_static_side_must_know_the_word(minilm, glove):
    with pytest.raises(ContextlensError, match="not in the vocabulary"):
        contrast("qzxv", [RIVER, LOAN], glove, minilm)


def test_web_contrast_is_the_report():
    from fastapi.testclient import TestClient

    from contextlens.web import create_app
    from contextlens.web.models import Registry

    registry = Registry(["minilm", "glove-50"], loader=get_model)  # the models loaded above
    app = create_app(["minilm", "glove-50"], registry=registry)
    client = TestClient(app, base_url="http://127.0.0.1:8000")
    body = {"word": "bank", "sentences": [RIVER, SALARY], "model": "minilm", "static": "glove-50"}
    r = client.post("/api/contrast", json=body | {"k": 5, "layer": 4, "candidates": 500})
    assert r.status_code == 200, r.text
    wv, lm = get_model("glove-50"), get_model("minilm")
    expected = to_dict(contrast("bank", [RIVER, SALARY], wv, lm, 5, 4, 500))
    assert r.json() == json.loads(json.dumps(expected))
    swapped = client.post("/api/contrast", json=body | {"model": "glove-50", "static": "minilm"})
    assert swapped.status_code == 422 and "transformer" in swapped.json()["error"]
