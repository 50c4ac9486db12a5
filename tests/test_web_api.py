"""The web API on the real models: answers agree with the Python API, bad requests get one-line
4xx errors, the static route cannot escape its folder, models load once, loopback by default."""

import json
import os
import re
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from web_corpus import DOCS, build_index

import contextlens as cl
from contextlens.analysis.context import occurrences
from contextlens.web import create_app, show
from contextlens.web.app import STATIC, Limits

IT = "The animal didn't cross the street because it was too tired."


@pytest.fixture(scope="module")
def app():
    return create_app(["minilm", "smollm2"], Limits(chars=2000, tokens=128))


@pytest.fixture(scope="module")
def client(app):
    return TestClient(app)


@pytest.fixture(scope="module")
def models(app):
    reg = app.state.registry
    return {name: reg.get(name) for name in ("minilm", "smollm2")}


def post(client, path, **body):
    r = client.post(path, json=body)
    assert r.status_code == 200, r.json()
    return r.json()


def test_models_and_openapi(client):
    served = client.get("/api/models").json()["models"]
    assert served == [{"name": "minilm", "kind": "encoder"}, {"name": "smollm2", "kind": "decoder"}]
    paths = client.get("/openapi.json").json()["paths"]
    for route in ("/api/tokens", "/api/attention", "/api/steps", "/api/next", "/api/shift"):
        assert route in paths


def test_tokens_vectors_match_the_model(client, models):
    m = models["minilm"]
    d = post(client, "/api/tokens", model="minilm", text=IT)
    t = m.trace(IT)
    assert d["tokens"] == t.tokens and d["ids"] == t.ids
    assert torch.allclose(torch.tensor(d["token"]), m.model.tok.weight[t.ids], atol=1e-3)
    assert torch.allclose(torch.tensor(d["input"]), t.hidden_states[0], atol=2e-3)
    assert d["position_kind"] == "learned" and len(d["position"]) == len(t)
    rope = post(client, "/api/tokens", model="smollm2", text=IT)
    assert rope["position"] is None and rope["position_kind"] == "rope"


@pytest.mark.parametrize(("name", "layer", "head"), [("minilm", 2, 5), ("smollm2", 7, None)])
def test_attention_edges_are_the_trace(client, models, name, layer, head):
    d = post(client, "/api/attention", model=name, text=IT, layer=layer, head=head)
    attn = models[name].trace(IT).attentions
    a = attn[layer].mean(0) if head is None else attn[layer, head]
    got = torch.zeros_like(a)
    for q, k, w in d["edges"]:
        got[q, k] = w
    assert torch.allclose(got, a, atol=1e-4)  # short text: every edge is sent
    assert len(d["grid"]) == attn.shape[0] and len(d["grid"][0]) == attn.shape[1]


def test_long_text_is_aggregated(client):
    text = " ".join(["the river bank was muddy and the boat drifted"] * 11)  # > 64 tokens
    d = post(client, "/api/attention", model="minilm", text=text, layer=1, head=0)
    s = len(d["tokens"])
    assert s > 64 and len(d["edges"]) <= 8 * s  # top-8 per query, not s²
    assert len(d["grid"][0][0]) == 16  # thumbnails pooled to 16 × 16
    assert len(json.dumps(d)) < 250_000


@pytest.mark.parametrize(
    ("name", "layer", "head", "query"), [("minilm", 3, 4, 9), ("smollm2", 5, 2, 8)]
)
def test_steps_softmax_gives_the_weights(client, models, name, layer, head, query):
    d = post(client, "/api/steps", model=name, text=IT, layer=layer, head=head, query=query)
    scores = torch.tensor([-torch.inf if x is None else x for x in d["scores"]])
    assert torch.allclose(scores.softmax(-1), torch.tensor(d["weights"]), atol=1e-3)
    attn = models[name].trace(IT).attentions[layer, head, query]
    assert torch.allclose(torch.tensor(d["weights"]), attn, atol=1e-4)
    if name == "smollm2":  # causal: the keys after the query are hidden
        assert all(x is None for x in d["scores"][query + 1 :])


def test_next_token(client, models):
    d = post(client, "/api/next", model="smollm2", text="The capital of France is")
    (word, p), *_ = models["smollm2"].next_token_probs("The capital of France is", k=1)
    assert d["candidates"][0]["text"] == word == " Paris"
    assert d["candidates"][0]["p"] == pytest.approx(p, abs=1e-4)
    sharp = post(
        client, "/api/next", model="smollm2", text="The capital of France is", temperature=0.5
    )
    assert sharp["candidates"][0]["p"] > p
    two = post(client, "/api/next", model="smollm2", text="The capital of France is", top_k=2)
    assert two["kept"] == 2 and sum(c["p"] for c in two["candidates"]) == pytest.approx(1, abs=1e-4)
    assert sum(d["attention"]) == pytest.approx(1, abs=1e-3)


def test_shift_and_projection(client, models):
    sentences = ["She sat on the bank of the river.", "He robbed the bank at noon."]
    d = post(client, "/api/shift", model="minilm", word="bank", sentences=sentences, k=3)
    want = occurrences(models["minilm"], "bank", sentences).cosines()[:, 0, 1]
    assert torch.allclose(torch.tensor(d["cosine"][0]), want, atol=1e-4)
    assert len(d["nearest"]) == 2 and all(len(row) == 3 for row in d["nearest"][0])
    p = post(client, "/api/project", model="minilm", text="The cat sat on the mat", layer=3)
    assert p["labels"] == ["The", "cat", "sat", "on", "the", "mat"] and len(p["points"]) == 6


def test_similarity(client, models):
    texts = ["A cat sits on the mat.", "A kitten rests on a rug.", "Stock prices fell."]
    d = post(client, "/api/similarity", model="minilm", texts=texts)
    e = models["minilm"].embed(texts)
    want = cl.cosine_matrix(e, e)
    assert torch.allclose(torch.tensor(d["cosine"]).float(), want, atol=1e-4)
    assert d["cosine"][0][1] > d["cosine"][0][2]


def test_embed(client, models):
    d = post(client, "/api/embed", model="minilm", texts=["a cat", "a dog"])
    want = models["minilm"].embed(["a cat", "a dog"])
    assert torch.allclose(torch.tensor(d["embeddings"]), want, atol=1e-4)


def test_projection_methods(client):
    methods = client.get("/api/models").json()["projections"]
    assert methods[0] == "pca"
    r = client.post("/api/project", json={"model": "minilm", "text": IT, "method": "umap"})
    if "umap" in methods:  # umap-learn installed: the map has one point per word
        assert r.status_code == 200 and len(r.json()["points"]) == len(r.json()["labels"])
    else:
        assert r.status_code == 422 and "pip install umap-learn" in r.json()["error"]
    r = client.post("/api/project", json={"model": "minilm", "text": IT, "method": "tsne"})
    assert r.status_code == 422 and "projection 'tsne' is not available" in r.json()["error"]


def test_coref(client, models):
    from contextlens.analysis.coref import CorefCase, probe

    d = post(
        client, "/api/coref", model="minilm", text=IT, pronoun="it", candidates=["animal", "street"]
    )
    want = probe(models["minilm"], CorefCase(IT, "it", ("animal", "street")))
    assert d["candidates"] == ["animal", "street"]
    assert torch.allclose(torch.tensor(d["attention"]), want.attention.mean(1), atol=1e-4)
    assert torch.allclose(torch.tensor(d["similarity"]), want.similarity, atol=1e-4)


BAD = [
    ("/api/tokens", {"model": "minilm", "text": "   "}, 422, "empty"),
    ("/api/tokens", {"model": "minilm", "text": "a" * 2001}, 413, "2001 characters"),
    ("/api/attention", {"model": "minilm", "text": "word " * 200}, 413, "over the limit of 128"),
    ("/api/tokens", {"model": "gpt-9", "text": "hi"}, 404, "unknown model 'gpt-9'"),
    (
        "/api/attention",
        {"model": "minilm", "text": "hi", "layer": 6},
        422,
        "layer 6 is out of range",
    ),
    ("/api/attention", {"model": "minilm", "text": "hi", "layer": 0, "head": -1}, 422, "head -1"),
    ("/api/steps", {"model": "smollm2", "text": "hi", "head": 9, "query": 0}, 422, "head 9"),
    ("/api/steps", {"model": "minilm", "text": "hi", "query": 7}, 422, "query token 7"),
    ("/api/next", {"model": "minilm", "text": "hi"}, 422, "minilm is an encoder"),
    ("/api/next", {"model": "smollm2", "text": "hi", "top_p": 2}, 422, "top_p must be"),
    (
        "/api/shift",
        {"model": "minilm", "word": "cat", "sentences": ["a cat", "a dog"]},
        422,
        "sentence 2",
    ),
    ("/api/tokens", {"model": "minilm"}, 422, "text: Field required"),
    ("/api/similarity", {"model": "minilm", "texts": []}, 422, "give 1 to 16 texts"),
    (
        "/api/coref",
        {"model": "minilm", "text": IT, "pronoun": "she", "candidates": ["a", "b"]},
        422,
        "'she' is not a word",
    ),
    (
        "/api/coref",
        {"model": "minilm", "text": IT, "pronoun": "it", "candidates": ["animal"]},
        422,
        "two candidates",
    ),
    ("/api/tokens", {"model": "minilm", "text": 3}, 422, "text:"),
]


@pytest.mark.parametrize(("path", "body", "status", "message"), BAD)
def test_bad_requests(client, path, body, status, message):
    r = client.post(path, json=body)
    assert r.status_code == status
    error = r.json()["error"]
    assert message in error and "\n" not in error and "Traceback" not in error


def test_malformed_json(client):
    r = client.post(
        "/api/tokens",
        content=b'{"model": "minilm", "text": ',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400 and r.json()["error"].startswith("malformed JSON body")


@pytest.mark.parametrize(
    "path",
    [
        "/static/..%2fapp.py",
        "/static/%2e%2e/app.py",
        "/static/..%2f..%2f..%2fpyproject.toml",
        "/static/%2fetc%2fpasswd",
        "/static/js/../../app.py",
        "/static/js",
        "/static/nothing.js",
    ],
)
def test_static_route_stays_inside(client, path):
    assert client.get(path).status_code == 404


def test_page_and_assets_are_local(client):
    assert client.get("/").status_code == 200
    assert client.get("/static/js/headview.js").status_code == 200
    outside = re.compile(r"https?://(?!www\.w3\.org/2000/svg)")
    for f in STATIC.rglob("*"):
        if f.is_file():
            assert not outside.search(f.read_text(encoding="utf-8")), f"{f} links outside"


def test_models_load_once(app, client):
    texts = [f"Sentence number {i} about a bank." for i in range(12)]
    with ThreadPoolExecutor(6) as pool:
        codes = list(
            pool.map(
                lambda t: (
                    client.post("/api/attention", json={"model": "minilm", "text": t}).status_code
                ),
                texts,
            )
        )
    assert codes == [200] * 12 and app.state.registry.loads == {"minilm": 1, "smollm2": 1}


def test_notebook_show(models):
    t = models["minilm"].trace(IT)
    html = show(t, layer=2, head=1)._repr_html_()
    assert "renderHeadView" in html and '"animal"' in html and "</script></div>" in html
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", html)
    with pytest.raises(cl.ContextlensError, match="layer 9 is out of range"):
        show(t, layer=9)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _outside_address() -> str | None:
    """This machine's address on its network interface (not loopback), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))  # UDP: sends nothing, picks the outgoing interface
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_serve_binds_loopback_by_default():
    port = _free_port()
    cli = Path(sys.executable).with_name("contextlens")
    proc = subprocess.Popen(
        [cli, "serve", "--port", str(port), "--models", "minilm"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=os.environ,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
                time.sleep(0.2)
        outside = _outside_address()
        if outside is not None:
            with pytest.raises(OSError):
                socket.create_connection((outside, port), timeout=1).close()
    finally:
        proc.terminate()
        proc.wait(10)
    assert f"http://127.0.0.1:{port}/" in proc.stdout.read().decode()


def test_serve_bad_port(run_cli):
    code, _, err = run_cli("serve", "--port", "70000", "--models", "minilm")
    assert code == 2 and "port 70000 is out of range" in err


def test_search_with_explanations(models, tmp_path):
    index = build_index(tmp_path, models["minilm"])
    app = create_app(["minilm"], index=str(index))
    c = TestClient(app)
    assert c.get("/api/models").json()["index"]["documents"] == len(DOCS)
    d = post(c, "/api/search", query="an eruption of ash", k=2, mode="dense")
    top = d["hits"][0]
    assert top["document"].endswith("volcano.txt")
    parts = top["explain"]["chunk"]
    assert sum(share for _, share in parts) == pytest.approx(top["explain"]["score"], abs=1e-4)
    assert top["explain"]["score"] == pytest.approx(top["score"], abs=1e-4)
    r = c.post("/api/search", json={"query": "ash", "mode": "sideways"})
    assert r.status_code == 422 and "unknown search mode" in r.json()["error"]
    r = TestClient(create_app(["minilm"])).post("/api/search", json={"query": "ash"})
    assert r.status_code == 404 and "--index" in r.json()["error"]
