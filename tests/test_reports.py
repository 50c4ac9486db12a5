"""Reports: the trace records what the input embedding is made of, and each report's JSON is the
same whether the CLI (--json) or the web API gives it."""

import json
from pathlib import Path

import pytest
import torch
from web_corpus import DOCS, build_index


@pytest.mark.parametrize("name", ["minilm", "smollm2"])
def test_embedding_parts_add_up_to_the_input_of_layer_1(request, name):
    m = request.getfixturevalue(name)
    t = m.trace(
        ["The river bank.", "A much longer second text about banks."], embedding_parts=True
    )[0]
    p = t.embedding_parts
    s, d = len(t), m.config.d_model
    assert p.token.shape == p.sum.shape == (s, d)
    assert torch.equal(p.token, m.model.tok.weight[t.ids])
    total = p.token + (0 if p.position is None else p.position)
    total = total + (0 if p.token_type is None else p.token_type)
    assert torch.allclose(p.sum, total, atol=1e-6)
    assert torch.allclose(p.input, t.hidden_states[0], atol=1e-6)
    if name == "minilm":  # BERT: learned positions, one token type, LayerNorm after the sum
        assert p.position.shape == (s, d) and p.token_type.shape == (s, d)
        assert p.normed is not None and not torch.allclose(p.normed, p.sum)
    else:  # RoPE rotates q/k instead; no type embedding, no norm on the input
        assert p.position is None and p.token_type is None and p.normed is None


def test_embedding_parts_are_recorded_only_when_asked(minilm):
    assert minilm.trace("hi").embedding_parts is None
    t = minilm.trace("hi", hidden_states=False, attentions=False, embedding_parts=True)
    assert t.hidden_states is None and t.embedding_parts.token.shape[0] == len(t)


@pytest.fixture(scope="module")
def index(tmp_path_factory, minilm):
    return build_index(tmp_path_factory.mktemp("reports"), minilm)


@pytest.fixture(scope="module")
def client(index):
    from fastapi.testclient import TestClient

    from contextlens.web import create_app

    app = create_app(["minilm", "smollm2", "glove-50"], index=str(index))
    return TestClient(app, base_url="http://127.0.0.1:8000")


def web(client, path: str, **body) -> dict:
    r = client.post(path, json=body)
    assert r.status_code == 200, r.json()
    return r.json()


def cli(run_cli, *args: str) -> dict:
    code, out, err = run_cli(*args, "--json")
    assert code == 0, err
    return json.loads(out)


IT = "The animal didn't cross the street because it was too tired."


@pytest.mark.parametrize("name", ["minilm", "smollm2"])
def test_coref_cli_and_web_give_the_same_report(run_cli, client, name):
    c = cli(run_cli, "coref", IT, "--pronoun", "it", "--candidates", "animal,street", "-m", name)
    w = web(
        client, "/api/coref", model=name, text=IT, pronoun="it", candidates=["animal", "street"]
    )
    assert c == w
    assert w["model"] == name and w["given"] == ["animal", "street"] and not w["proposed"]
    n_layers = len(w["scores"]["attention"])
    assert len(w["methods"]) == n_layers + 4
    assert all(m["winner"] in ("animal", "street") for m in w["methods"])


@pytest.mark.parametrize("name", ["minilm", "smollm2"])
def test_tokens_cli_and_web_give_the_same_report(run_cli, client, name):
    c = cli(run_cli, "tokens", IT, "-m", name)
    w = web(client, "/api/tokens", model=name, text=IT)
    assert c == w["tokens"]
    assert c["model"] == name and "animal" in [x["text"] for x in c["words"]]
    assert len(w["vectors"]["token"]) == len(c["ids"])


def test_embed_and_similarity_cli_and_web_give_the_same_report(run_cli, client):
    a, b = "A cat sits on the mat.", "A kitten rests on a rug."
    c = cli(run_cli, "embed", a, b)
    assert c == web(client, "/api/embed", model="minilm", texts=[a, b])
    assert len(c["embeddings"]) == 2 and len(c["embeddings"][0]) == 384
    c = cli(run_cli, "similarity", a, b)
    assert c == web(client, "/api/similarity", model="minilm", texts=[a, b])
    assert c["cosine"][0][1] == c["cosine"][1][0] > 0.5


def test_next_cli_and_web_give_the_same_report(run_cli, client):
    prompt = "The capital of France is"
    c = cli(run_cli, "next", prompt, "-k", "5", "-t", "0.7")
    w = web(client, "/api/next", model="smollm2", text=prompt, k=5, temperature=0.7)
    assert c == w["next"]
    assert c["candidates"][0]["text"] == " Paris" and c["candidates"][0]["p"] > 0.77
    assert len(w["attention"]) == len(w["tokens"]["ids"])


@pytest.mark.parametrize("name", ["minilm", "smollm2"])
def test_shift_cli_and_web_give_the_same_report(run_cli, client, name):
    bank = ["I sat on the bank of the river.", "I deposited cash at the bank."]
    c = cli(run_cli, "shift", "bank", *bank, "--neighbours", "3", "-m", name)
    w = web(client, "/api/shift", model=name, word="bank", sentences=bank, k=3)
    assert c == w
    assert len(w["cosine"]) == len(w["layers"]) and len(w["right_context"]) == 2
    assert (w["nearest_note"] is None) == (name == "minilm")


def test_head_statistics_cli_and_web_give_the_same_report(run_cli, client):
    c = cli(run_cli, "heads", IT)
    w = web(client, "/api/attention", model="minilm", text=IT, layer=0)
    assert c == w["stats"]
    assert len(c["entropy"]) == 6 and len(c["sink"][0]) == 12


def test_models_cli_and_web_give_the_same_report(run_cli, client, index):
    served = client.get("/api/models").json()
    names = ["minilm", "smollm2", "glove-50"]
    assert [m for m in cli(run_cli, "models") if m["name"] in names] == served["models"]
    assert [(m["name"], m["kind"]) for m in served["models"]] == list(
        zip(names, ["encoder", "decoder", "static"], strict=True)
    )
    assert served["index"] == {"name": index.name, "model": "minilm", "documents": 5, "chunks": 5}
    assert served["limits"]["tokens"] == 512 and "pca" in served["projections"]


def test_neighbours_cli_and_web_give_the_same_report(run_cli, client):
    c = cli(run_cli, "neighbors", "Paris", "-k", "4")
    assert c == web(client, "/api/neighbours", model="glove-50", word="Paris", k=4)
    assert c["word"] == "paris" and len(c["neighbors"]) == 4
    assert "france" in [n["word"] for n in c["neighbors"]]
    scores = [n["score"] for n in c["neighbors"]]
    assert scores == sorted(scores, reverse=True) and scores[0] < 1


@pytest.mark.parametrize("method", ["3cosadd", "3cosmul"])
def test_analogy_cli_and_web_give_the_same_report(run_cli, client, method):
    c = cli(run_cli, "analogy", "man", "king", "Woman", "-k", "3", "--method", method)
    w = web(client, "/api/analogy", a="man", b="king", c="Woman", k=3, method=method)
    assert c == w
    assert (c["c"], c["method"], c["answers"][0]["word"]) == ("woman", method, "queen")


def test_search_cli_and_web_give_the_same_report(run_cli, client, index):
    query = "an eruption of ash"
    c = cli(run_cli, "search", query, "--index", str(index), "-k", "2", "--explain")
    w = web(client, "/api/search", query=query, k=2, mode="hybrid")
    assert c == w["hits"] and (w["index"], w["mode"]) == (index.name, "hybrid")
    assert c[0]["document"].endswith("volcano.txt")
    e = c[0]["explain"]
    assert sum(share for _, share in e["chunk"]) == pytest.approx(e["score"], abs=1e-5)
    plain = cli(run_cli, "search", query, "--index", str(index), "-k", "2")
    assert [h["explain"] for h in plain] == [None, None]


def test_kv_cache_cli_and_web_give_the_same_reports(run_cli, client):
    r = client.get("/api/kv-cache", params={"model": "smollm2", "text": IT})
    assert r.status_code == 200, r.json()
    w = r.json()
    assert w["reports"][0] == cli(run_cli, "kv-cache", "smollm2")
    assert w["reports"][1:] == cli(run_cli, "kv-cache")
    demo = w["demo"]
    assert demo["model"] == "smollm2" and demo["gqa_cache"][3] == len(demo["tokens"])
    assert demo["max_difference"] < 1e-4


def test_index_info_cli_and_web_agree(run_cli, client, index):
    from contextlens.search import Index

    c = cli(run_cli, "index", "info", "--index", str(index))
    served = client.get("/api/models").json()["index"]
    shown = (Path(c["path"]).name, c["model"], c["documents"], c["chunks"])
    assert shown == (served["name"], served["model"], served["documents"], served["chunks"])
    assert sorted(Path(f).name for f in c["files"]) == sorted(DOCS)
    assert c | {"files": None} == Index.open(index).info()


def test_learn_cli_and_web_give_the_same_report(run_cli, client, tmp_path):
    animals, vehicles = ["cat", "dog"], ["car", "truck"]
    lines = [
        f"the {animals[i // 2 % 2]} eats grass near the barn"
        if i % 2
        else f"the {vehicles[i // 2 % 2]} drives on the road"
        for i in range(80)
    ]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(lines) + "\n")
    options = {"dim": 10, "window": 3, "min_count": 1, "epochs": 2, "seed": 3}
    w = web(client, "/api/learn", text=corpus.read_text(), track=[["cat", "dog"]], **options)
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]
    args = ["train", "word2vec", corpus, "-o", tmp_path / "v.txt", "--track", "cat,dog"]
    c = cli(run_cli, *args, *flags, "--checkpoints=10")
    timed = ("seconds", "words_per_second", "out")
    assert {k: v for k, v in c.items() if k not in timed} == {
        k: v for k, v in w.items() if k not in timed
    }
    words = [
        "the",
        "cat",
        "dog",
        "car",
        "truck",
        "eats",
        "grass",
        "near",
        "barn",
        "drives",
        "on",
        "road",
    ]
    assert c["words_sample"][0] == "the" and sorted(c["words_sample"]) == sorted(words)
