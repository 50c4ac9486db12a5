"""Reports: the trace records what the input embedding is made of, and each report's JSON is the
same whether the CLI (--json) or the web API gives it."""

import json

import pytest
import torch


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
def client():
    from fastapi.testclient import TestClient

    from contextlens.web import create_app

    return TestClient(create_app(["minilm", "smollm2"]), base_url="http://127.0.0.1:8000")


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
    assert [x["word"] for x in c["candidates"]] == w["candidates"] == ["animal", "street"]
    assert (c["pronoun"]["word"], [c["pronoun"]["start"], c["pronoun"]["end"]]) == (
        w["pronoun"],
        w["pronoun_at"],
    )
    methods = {x["method"]: x["scores"] for x in c["methods"]}
    for n, row in enumerate(w["attention"]):
        assert methods[f"attention, layer {n} (heads averaged)"] == pytest.approx(row, abs=1e-4)
    assert methods["attention rollout, last layer"] == pytest.approx(w["rollout"][-1], abs=1e-4)
    assert methods["similarity, last layer"] == pytest.approx(w["similarity"][-1], abs=1e-4)
