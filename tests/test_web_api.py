"""The web API on the real models: answers agree with the Python API, bad requests get one-line
errors of one shape, the static route cannot escape its folder, bodies and Host headers are
checked before the app reads them, models load once, loopback by default."""

import asyncio
import json
import math
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
from contextlens.web.guard import Guard
from contextlens.web.server import running

IT = "The animal didn't cross the street because it was too tired."
PARIS = "The capital of France is"
HOME = "http://127.0.0.1:8000"  # the test client's address: a Host the server answers to


@pytest.fixture(scope="module")
def app():
    return create_app(["minilm", "smollm2"], Limits(chars=2000, tokens=128))


@pytest.fixture(scope="module")
def client(app):
    return TestClient(app, base_url=HOME, raise_server_exceptions=False)


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
    assert [(m["name"], m["kind"], m["installed"]) for m in served] == [
        ("minilm", "encoder", True),
        ("smollm2", "decoder", True),
    ]
    paths = client.get("/openapi.json").json()["paths"]
    for route in ("/api/tokens", "/api/attention", "/api/steps", "/api/next", "/api/shift"):
        assert route in paths


def test_tokens_vectors_match_the_model(client, models):
    m = models["minilm"]
    r = post(client, "/api/tokens", model="minilm", text=IT)
    d, v = r["tokens"], r["vectors"]
    t = m.trace(IT)
    assert d["tokens"] == t.tokens and d["ids"] == t.ids
    assert torch.allclose(torch.tensor(v["token"]), m.model.tok.weight[t.ids], atol=1e-3)
    assert torch.allclose(torch.tensor(v["input"]), t.hidden_states[0], atol=2e-3)
    assert v["position_kind"] == "learned" and len(v["position"]) == len(t)
    rope = post(client, "/api/tokens", model="smollm2", text=IT)["vectors"]
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
    s = len(d["tokens"]["tokens"])
    assert s > 64 and len(d["edges"]) <= 8 * s  # top-8 per query, not s²
    assert len(d["grid"][0][0]) == 16  # thumbnails pooled to 16 × 16
    assert len(json.dumps(d)) < 250_000


@pytest.mark.parametrize(
    ("name", "layer", "head", "query"), [("minilm", 3, 4, 9), ("smollm2", 5, 2, 8)]
)
def test_steps_softmax_gives_the_weights(client, models, name, layer, head, query):
    d = post(client, "/api/steps", model=name, text=IT, layer=layer, head=head, query=query)
    (row,) = d["scores"]
    scores = torch.tensor([-torch.inf if x is None else x for x in row])
    assert torch.allclose(scores.softmax(-1), torch.tensor(d["weights"][0]), atol=1e-3)
    attn = models[name].trace(IT).attentions[layer, head, query]
    assert torch.allclose(torch.tensor(d["weights"][0]), attn, atol=1e-4)
    if name == "smollm2":  # causal: the keys after the query are hidden
        assert all(x is None for x in row[query + 1 :])


@pytest.mark.parametrize("name", ["minilm", "smollm2"])
def test_steps_of_every_head_average_to_the_head_view(client, models, name):
    d = post(client, "/api/steps", model=name, text=IT, layer=2, head=None, query=8)
    attn = models[name].trace(IT).attentions[2]  # [H, s, s]
    assert len(d["scores"]) == len(d["weights"]) == len(d["values"]) == attn.shape[0]
    weights = torch.tensor(d["weights"])
    assert torch.allclose(weights, attn[:, 8], atol=1e-4)
    view = post(client, "/api/attention", model=name, text=IT, layer=2, head=None)
    row = {k: w for q, k, w in view["edges"] if q == 8}
    assert [row.get(k, 0.0) for k in range(len(d["tokens"]["tokens"]))] == pytest.approx(
        weights.mean(0).tolist(), abs=1e-4
    )  # the step card's averaged weights are the lines drawn for "all heads"


def test_next_token(client, models):
    view = post(client, "/api/next", model="smollm2", text="The capital of France is")
    d = view["next"]
    (word, p), *_ = models["smollm2"].next_token_probs("The capital of France is", k=1)
    assert d["candidates"][0]["text"] == word == " Paris"
    assert d["candidates"][0]["p"] == pytest.approx(p, abs=1e-4)
    assert len(d["candidates"]) == 12 and not d["filtered"]
    sharp = post(
        client, "/api/next", model="smollm2", text="The capital of France is", temperature=0.5
    )
    assert sharp["next"]["candidates"][0]["p"] > p
    assert sum(view["attention"]) == pytest.approx(1, abs=1e-3)


@pytest.mark.parametrize(("top_k", "top_p"), [(2, None), (3, None), (None, 0.8), (5, 0.5)])
def test_filtered_lists_hold_only_kept_tokens(client, top_k, top_p):
    d = post(
        client,
        "/api/next",
        model="smollm2",
        text="The capital of France is",
        top_k=top_k,
        top_p=top_p,
    )["next"]
    cands = d["candidates"]
    assert d["filtered"] and len(cands) == d["kept"] <= (top_k or 12)
    assert all(c["p"] > 0 for c in cands)
    assert sum(c["p"] for c in cands) == pytest.approx(1, abs=1e-4)
    assert not any(c["text"].startswith("<") for c in cands)  # no special tokens at 0 %


@pytest.mark.parametrize("temperature", ["0", "1e-300", "0.0"])
def test_temperature_zero_and_tiny_are_greedy(client, temperature):
    body = (
        f'{{"model": "smollm2", "text": "The capital of France is", "temperature": {temperature}}}'
    )
    r = client.post("/api/next", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.json()
    (top,) = r.json()["next"]["candidates"]
    assert top["text"] == " Paris" and top["p"] == 1.0 and r.json()["next"]["kept"] == 1


@pytest.mark.parametrize("temperature", ["NaN", "Infinity", "-Infinity", "1e308", "-1", "100.5"])
def test_temperature_out_of_range(client, temperature):
    body = (
        f'{{"model": "smollm2", "text": "The capital of France is", "temperature": {temperature}}}'
    )
    r = client.post("/api/next", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["error"].startswith("temperature must be between 0 and 100 (got ")
    assert "0 is greedy" in r.json()["error"]


def test_shift_and_projection(client, models):
    sentences = ["She sat on the bank of the river.", "He robbed the bank at noon."]
    d = post(client, "/api/shift", model="minilm", word="bank", sentences=sentences, k=3)
    want = occurrences(models["minilm"], "bank", sentences).cosines()[:, 0, 1]
    assert torch.allclose(torch.tensor(d["cosine"])[:, 0, 1], want, atol=1e-4)
    assert len(d["layers"]) == 7 and len(d["layers"][0]["nearest"]) == 2
    assert all(len(row) == 3 for row in d["layers"][0]["nearest"])
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
    assert methods == ["pca", "umap", "tsne"]
    for method in methods:
        d = post(client, "/api/project", model="minilm", text=IT, method=method, layer=4)
        assert len(d["points"]) == len(d["labels"]) == 12 and d["method"] == method
        assert all(len(p) == 2 and all(math.isfinite(x) for x in p) for p in d["points"])
    r = client.post("/api/project", json={"model": "minilm", "text": IT, "method": "mds"})
    assert r.status_code == 422 and "use one of pca, umap, tsne" in r.json()["error"]


@pytest.fixture(scope="module")
def glove_client():
    return TestClient(create_app(["glove-50"]), base_url=HOME)


@pytest.mark.parametrize("method", ["pca", "umap", "tsne"])
@pytest.mark.parametrize("n", [3, 12])
def test_word_maps_in_2d(glove_client, method, n):
    words = ["king", "queen", "man", "woman", "paris", "france", "rome", "italy", "berlin"]
    words += ["germany", "cat", "dog"]
    r = glove_client.post("/api/words2d", json={"words": words[:n], "method": method})
    assert r.status_code == 200, r.json()
    points = r.json()["points"]
    assert len(points) == n and all(len(p) == 2 for p in points)
    assert len({tuple(p) for p in points}) == n  # a real layout, not one spot


def test_umap_needs_three_points(glove_client):
    r = glove_client.post("/api/words2d", json={"words": ["king", "queen"], "method": "umap"})
    assert r.status_code == 422 and r.json()["error"].startswith("umap needs at least 3 points")
    r = glove_client.post("/api/words2d", json={"words": ["king", "queen"], "method": "tsne"})
    assert r.status_code == 200 and len(r.json()["points"]) == 2


def test_capitalised_words_use_the_lowercase_vocabulary(glove_client):
    d = glove_client.post("/api/neighbours", json={"word": "Paris", "k": 3}).json()
    assert d["word"] == "paris" and d["neighbors"][1]["word"] == "france"
    d = glove_client.post("/api/analogy", json={"a": "Paris", "b": "France", "c": "Rome"}).json()
    assert d["answers"][0]["word"] == "italy"
    d = glove_client.post("/api/words2d", json={"words": ["Paris", "Berlin", "cat"]}).json()
    assert d["labels"] == ["paris", "berlin", "cat"]
    r = glove_client.post("/api/neighbours", json={"word": "Xqzzyv"})
    assert r.status_code == 422 and "'Xqzzyv' is not in the vocabulary" in r.json()["error"]


def test_coref(client, models):
    from contextlens.analysis.coref import CorefCase, probe

    d = post(
        client, "/api/coref", model="minilm", text=IT, pronoun="it", candidates=["animal", "street"]
    )
    want = probe(models["minilm"], CorefCase(IT, "it", ("animal", "street")))
    assert d["given"] == ["animal", "street"]
    assert torch.allclose(torch.tensor(d["scores"]["attention"]), want.attention, atol=1e-4)
    assert torch.allclose(torch.tensor(d["scores"]["similarity"]), want.similarity, atol=1e-4)


def test_coref_proposes_its_pronoun_and_candidates(client, models):
    from contextlens.analysis.coref import CorefCase, probe

    trophy = "The trophy didn't fit in the suitcase because it was too big."
    d = post(client, "/api/coref", model="minilm", text=trophy)
    pronoun = d["scores"]["pronoun"]["text"]
    assert (pronoun, d["given"], d["proposed"]) == ("it", ["trophy", "suitcase"], True)
    want = probe(models["minilm"], CorefCase(trophy, "it", ("trophy", "suitcase")))
    assert torch.allclose(torch.tensor(d["scores"]["attention"]), want.attention, atol=1e-4)
    told = post(client, "/api/coref", model="minilm", text="Mary told her sister that she won.")
    assert told["scores"]["pronoun"]["text"] == "she" and "sister" in told["given"]
    assert "her" not in told["given"]
    r = client.post("/api/coref", json={"model": "minilm", "text": "Rain fell on the hills."})
    assert r.status_code == 422 and "no pronoun" in r.json()["error"]
    assert "with pronoun" in r.json()["error"]


def test_coref_occurrence_of_a_repeated_pronoun(client):
    text = "The dog saw the cat and it ran. Then it slept on the mat."
    r = client.post("/api/coref", json={"model": "minilm", "text": text, "pronoun": "it"})
    assert r.status_code == 422 and "occurrence=1..2" in r.json()["error"]
    first = post(client, "/api/coref", model="minilm", text=text, pronoun="it", occurrence=1)
    second = post(client, "/api/coref", model="minilm", text=text, pronoun="it", occurrence=2)
    at = [(x["scores"]["pronoun"]["start"], x["scores"]["pronoun"]["end"]) for x in (first, second)]
    assert at == [(24, 26), (37, 39)]
    assert first["given"] == ["dog", "cat"] and "mat" not in second["given"]
    assert first["scores"]["attention"] != second["scores"]["attention"]
    r = client.post(
        "/api/coref", json={"model": "minilm", "text": text, "pronoun": "it", "occurrence": 3}
    )
    assert r.status_code == 422 and "occurrence must be 1..2" in r.json()["error"]


def test_shift_occurrence_and_decoder_neighbours(client, models):
    sentences = ["The bank near the bank was closed.", "A bank by the river bank."]
    r = client.post("/api/shift", json={"model": "minilm", "word": "bank", "sentences": sentences})
    assert r.status_code == 422 and "occurrence=1..2" in r.json()["error"]
    d = post(client, "/api/shift", model="minilm", word="bank", sentences=sentences, occurrence=2)
    assert [f["start"] for f in d["found"]] == [18, 20] and d["nearest_note"] is None
    want = occurrences(models["minilm"], "bank", sentences, 2).cosines()[:, 0, 1]
    assert torch.allclose(torch.tensor(d["cosine"])[:, 0, 1], want, atol=1e-4)
    two = ["She sat on the bank of the river.", "He robbed the bank at noon."]
    dec = post(client, "/api/shift", model="smollm2", word="bank", sentences=two)
    assert "predict the next token" in dec["nearest_note"]
    assert len(dec["cosine"]) == len(dec["layers"]) == 31


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


LOCAL = re.compile(r"https?://(?!www\.w3\.org/2000/svg)")


def test_page_and_assets_are_local(client):
    assert client.get("/").status_code == 200
    assert client.get("/static/js/headview.js").status_code == 200
    for f in STATIC.rglob("*"):
        if f.is_file():
            assert not LOCAL.search(f.read_text(encoding="utf-8")), f"{f} links outside"


def test_api_reference_is_served_locally(client):
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert not LOCAL.search(page.text) and "<script" not in page.text
    for path, methods in client.get("/openapi.json").json()["paths"].items():
        for method in methods:
            assert f"<code>{method.upper()} {path}</code>" in page.text
    assert "temperature" in page.text and "0 to 100; 0 = greedy" in page.text
    redoc = client.get("/redoc", follow_redirects=False)
    assert redoc.status_code in (302, 307) and redoc.headers["location"] == "/docs"


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
    assert not LOCAL.search(html)
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
    c = TestClient(app, base_url=HOME)
    assert c.get("/api/models").json()["index"]["documents"] == len(DOCS)
    d = post(c, "/api/search", query="an eruption of ash", k=2, mode="dense")
    top = d["hits"][0]
    assert top["document"].endswith("volcano.txt")
    parts = top["explain"]["chunk"]
    assert sum(share for _, share in parts) == pytest.approx(top["explain"]["score"], abs=1e-4)
    assert top["explain"]["score"] == pytest.approx(top["score"], abs=1e-4)
    r = c.post("/api/search", json={"query": "ash", "mode": "sideways"})
    assert r.status_code == 422 and "unknown search mode" in r.json()["error"]
    r = TestClient(create_app(["minilm"]), base_url=HOME).post("/api/search", json={"query": "ash"})
    assert r.status_code == 404 and "--index" in r.json()["error"]


def _json(client, path, raw: bytes):
    return client.post(path, content=raw, headers={"content-type": "application/json"})


LONE = [
    ("/api/tokens", '{"model": "minilm", "text": "a \\ud800 b"}', "text"),
    ("/api/attention", '{"model": "minilm", "text": "\\udfff"}', "text"),
    ("/api/steps", '{"model": "minilm", "text": "x\\ud800", "query": 0}', "text"),
    ("/api/next", '{"model": "smollm2", "text": "\\ud800"}', "text"),
    ("/api/shift", '{"model": "minilm", "word": "\\ud800", "sentences": ["a", "b"]}', "word"),
    ("/api/shift", '{"model": "minilm", "word": "a", "sentences": ["a", "\\ud800"]}', "sentences"),
    (
        "/api/coref",
        '{"model": "minilm", "text": "it", "candidates": ["\\ud800", "x"]}',
        "candidates",
    ),
    ("/api/project", '{"model": "minilm", "text": "\\ud800"}', "text"),
    ("/api/embed", '{"model": "minilm", "texts": ["\\ud800"]}', "texts"),
    ("/api/similarity", '{"model": "minilm", "texts": ["a", "\\udc00"]}', "texts"),
    ("/api/neighbours", '{"word": "\\ud800"}', "word"),
    ("/api/analogy", '{"a": "a", "b": "\\ud800", "c": "c"}', "b"),
    ("/api/words2d", '{"words": ["a", "\\ud800"]}', "words"),
    ("/api/search", '{"query": "\\ud800"}', "query"),
]


@pytest.mark.parametrize(("path", "body", "field"), LONE)
def test_lone_surrogates_are_refused(client, path, body, field):
    r = _json(client, path, body.encode())
    assert r.status_code == 422, r.text
    assert r.json() == {
        "error": f"{field}: contains a lone surrogate (such as \\ud800), which is not a "
        "character; send valid Unicode text"
    }


class Broken:
    """A registry whose model fails to load with an error of ours cannot foresee."""

    names = ["broken"]

    def kind(self, name):
        raise RuntimeError("the disk is on fire")


def test_every_error_has_one_shape(client):
    unexpected = TestClient(
        create_app(["broken"], registry=Broken()), base_url=HOME, raise_server_exceptions=False
    )
    cases = [
        (_json(client, "/api/tokens", b"{"), 400, "malformed JSON body"),
        (client.get("/", headers={"host": "evil.example:8000"}), 400, "Host 'evil.example:8000'"),
        (client.get("/nowhere"), 404, "no such page or endpoint: /nowhere"),
        (client.get("/api/nothing"), 404, "no such page or endpoint: /api/nothing"),
        (client.get("/static/a%00b.js"), 404, "no such file under /static/"),
        (client.get("/static/" + "x" * 5000), 404, "no such file under /static/"),
        (client.get("/api/models/gpt-9"), 404, "unknown model 'gpt-9'"),
        (client.put("/api/tokens"), 405, "PUT is not allowed on /api/tokens; use POST"),
        (client.get("/api/tokens"), 405, "GET is not allowed on /api/tokens; use POST"),
        (client.post("/api/tokens", json={"model": "minilm", "text": "a" * 3000}), 413, "3000"),
        (_json(client, "/api/tokens", b" " * ((1 << 20) + 1)), 413, "request body is over"),
        (client.post("/api/tokens", json={"model": "minilm"}), 422, "text: Field required"),
        (client.post("/api/tokens", json={"model": "minilm", "text": ""}), 422, "empty"),
        (unexpected.get("/api/models/broken"), 500, "the server failed on /api/models/broken"),
    ]
    for r, status, message in cases:
        assert r.status_code == status, (r.status_code, r.text)
        assert r.headers["content-type"] == "application/json"
        body = r.json()
        assert list(body) == ["error"] and message in body["error"], body
        assert "\n" not in body["error"] and "Traceback" not in body["error"]


def asgi(app, scope: dict, chunks):
    """Run `app` on one request whose body arrives as `chunks`; returns (status, body, number
    of chunks the app pulled)."""
    pulled, sent = [], []
    stream = iter(chunks)

    async def receive():
        chunk = next(stream, None)
        pulled.append(chunk)
        more = chunk is not None
        return {"type": "http.request", "body": chunk or b"", "more_body": more}

    async def send(message):
        sent.append(message)

    base = {"type": "http", "method": "POST", "path": "/", "server": ("127.0.0.1", 8000)}
    asyncio.run(app(base | scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body), len(pulled)


async def echo(scope, receive, send):
    """A stand-in app that reads the whole body and answers its length."""
    size, more = 0, True
    while more:
        message = await receive()
        size, more = size + len(message.get("body", b"")), message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": json.dumps({"size": size}).encode()})


def test_body_over_the_limit_is_refused_before_it_is_read():
    guard = Guard(echo, max_body=1000)
    host = [(b"host", b"127.0.0.1:8000")]
    endless = (b"x" * 100 for _ in range(10**9))
    told = {"headers": [*host, (b"content-length", b"52428800")]}
    assert asgi(guard, told, endless) == (
        413,
        {"error": "request body is over this server's limit of 1,000 bytes; send less text"},
        0,  # not one chunk read
    )
    status, body, pulled = asgi(guard, {"headers": host}, endless)  # chunked: no length given
    assert status == 413 and "limit of 1,000 bytes" in body["error"]
    assert pulled == 11  # stopped at the first chunk past 1000 bytes, not at the end of the stream
    assert asgi(guard, {"headers": host}, [b"x" * 600, b"x" * 400]) == (200, {"size": 1000}, 3)


def test_server_refuses_big_bodies_over_the_socket(app):
    """A real server: a 50 MB Content-Length is answered at once, before any body is sent, and
    a chunked body is cut off once past the limit."""
    with running(app) as base:
        port = int(base.rsplit(":", 1)[1])
        head = (
            f"POST /api/tokens HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Content-Type: application/json\r\n"
        )
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall((head + "Content-Length: 52428800\r\n\r\n").encode())
            assert s.recv(4096).startswith(b"HTTP/1.1 413")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall((head + "Transfer-Encoding: chunked\r\n\r\n").encode())
            chunk = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
            answer = b""
            for _ in range(40):  # 2.5 MB offered; the limit is 1 MB
                try:
                    s.sendall(chunk)
                except OSError:
                    break
            answer = s.recv(4096)
            assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


@pytest.mark.parametrize(
    ("bound", "host", "ok"),
    [
        ("127.0.0.1", "127.0.0.1:8000", True),
        ("127.0.0.1", "localhost:8000", True),
        ("127.0.0.1", "[::1]:8000", True),
        ("127.0.0.1", "LOCALHOST:8000", True),
        ("127.0.0.1", "localhost:8001", False),
        ("127.0.0.1", "localhost", False),  # port 80
        ("127.0.0.1", "evil.example:8000", False),
        ("127.0.0.1", "127.0.0.1.evil.example:8000", False),
        ("127.0.0.1", "", False),
        ("::1", "[::1]:8000", True),
        ("10.1.2.3", "10.1.2.3:8000", True),
        ("10.1.2.3", "localhost:8000", False),
        ("mybox.lan", "mybox.lan:8000", True),
        ("mybox.lan", "evil.example:8000", False),
        ("0.0.0.0", "localhost:8000", True),
        ("0.0.0.0", "127.0.0.1:8000", True),
        ("0.0.0.0", "evil.example:8000", False),
    ],
)
def test_host_header_must_name_this_server(bound, host, ok):
    status, body, _ = asgi(Guard(echo, 1000, bound), {"headers": [(b"host", host.encode())]}, [])
    assert (status == 200) == ok, body
    if not ok:
        assert status == 400 and body["error"].startswith(f"Host {host!r} is not this server")
        assert "--host" in body["error"]


def test_real_server_checks_the_host_header(app):
    with running(app) as base:
        port = int(base.rsplit(":", 1)[1])
        for host, want in ((f"localhost:{port}", b"200"), (f"rebind.example:{port}", b"400")):
            with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                s.sendall(f"GET /api/models HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
                assert s.recv(4096).split(b" ")[1] == want
