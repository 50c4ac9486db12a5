"""Activation patching and ablation through the Recorder's edits, on minilm and tiny GPT-2 /
Llama models."""

import json
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from contextlens import ContextlensError
from contextlens.analysis import coref
from contextlens.analysis.attribution import attribute_similarity
from contextlens.analysis.lens import encode, logit_lens
from contextlens.analysis.patching import (
    SITES,
    Patch,
    ablate,
    candidate_influence,
    grid_runs,
    patch,
    points,
    run_patched,
)
from contextlens.io.benchmarks import read_cases
from contextlens.report import to_dict
from contextlens.web import create_app
from contextlens.web.models import Registry

CLEAN, CORRUPTED = "The capital of France is", "The capital of Italy is"
TIRED = "The animal didn't cross the street because it was too tired."
WIDE = "The animal didn't cross the street because it was too wide."


def test_patching_a_run_into_itself_changes_nothing(tiny_decoder, minilm):
    for m, text in ((tiny_decoder, CLEAN), (minilm, TIRED)):
        _, ids = encode(m, text)
        hidden, source = points(m, ids)
        cfg = m.config
        for site in SITES:
            runs = grid_runs(site, cfg.n_layers, ids.shape[1], cfg.n_heads)
            out = run_patched(m, ids, runs, source)
            torch.testing.assert_close(out, hidden.expand_as(out), atol=1e-5, rtol=0)


def test_patching_everything_restores_the_clean_run_exactly(tiny_decoder):
    (_, clean), (_, corrupted) = encode(tiny_decoder, CLEAN), encode(tiny_decoder, CORRUPTED)
    hidden, source = points(tiny_decoder, clean)
    everything = [Patch("resid", i) for i in range(tiny_decoder.config.n_layers)]
    first_layer = [Patch("resid", 0)]
    out = run_patched(tiny_decoder, corrupted, [everything, first_layer], source)
    assert not torch.equal(points(tiny_decoder, corrupted)[0], hidden)
    assert torch.equal(out[0], hidden[0]) and torch.equal(out[1], hidden[0])


def test_patch_report_restores_one_at_the_changed_token(tiny_decoder, minilm):
    for m, clean, corrupted in ((tiny_decoder, CLEAN, CORRUPTED), (minilm, TIRED, WIDE)):
        r = patch(m, clean, corrupted)
        assert len(r.restored) == m.config.n_layers and len(r.restored[0]) == len(r.tokens)
        assert r.clean_value != r.corrupted_value
        for p, cell in enumerate(r.restored[0]):  # layer 0: the only difference is the input
            if p not in r.differs:
                assert cell == pytest.approx(0.0, abs=1e-4)
        if len(r.differs) == 1:  # minilm: tired / wide
            assert r.restored[0][r.differs[0]] == pytest.approx(1.0, abs=1e-4)
        heads = patch(m, clean, corrupted, site="heads")
        assert len(heads.restored[0]) == m.config.n_heads
        assert to_dict(heads)["metric"] == heads.metric


def test_minilm_patch_uses_the_embedding_and_finds_the_changed_word(minilm):
    r = patch(minilm, TIRED, WIDE, site="resid")
    assert r.metric.startswith("cosine") and r.clean_value == pytest.approx(1.0, abs=1e-5)
    assert [r.tokens[i] for i in r.differs] == ["tired"]
    assert r.restored[0][r.differs[0]] == pytest.approx(1.0, abs=1e-4)


def test_mean_ablation_of_a_one_token_text_changes_nothing(tiny_decoder):
    """Over one position a head's mean is its output: mean-ablation keeps the run."""
    every = [
        (i, h)
        for i in range(tiny_decoder.config.n_layers)
        for h in range(tiny_decoder.config.n_heads)
    ]
    text = tiny_decoder.tokenizer.decode(tiny_decoder.tokenize("The").ids[:1])
    same = ablate(tiny_decoder, text, every, mode="mean")
    assert same.after == pytest.approx(same.before, abs=1e-6)
    zeroed = ablate(tiny_decoder, CLEAN, every, mode="zero")
    assert zeroed.after != pytest.approx(zeroed.before, abs=1e-4)
    assert zeroed.top_before[0][0] == zeroed.target


def test_candidate_influence_is_zero_for_the_clean_run_and_grows_downstream(smollm2):
    t = smollm2.tokenize(TIRED)
    it = t.tokens.index("Ġit")
    animal, street = t.tokens.index("Ġanimal"), t.tokens.index("Ġstreet")
    moved = candidate_influence(smollm2, TIRED, [it], [[animal], [street]])
    assert moved.shape == (smollm2.config.n_layers + 1, 2)
    assert moved[0].abs().max() < 1e-6  # the embedding of "it" does not see the candidates
    assert (moved[1:] > 0).all()


def test_bad_inputs_are_one_line_errors(tiny_decoder, minilm):
    cases = [
        (lambda: patch(minilm, TIRED, "The animal didn't cross the road."), "same token length"),
        (lambda: patch(minilm, TIRED, TIRED), "are the same tokens"),
        (lambda: patch(minilm, TIRED, WIDE, site="mlp_in"), "unknown site 'mlp_in'"),
        (lambda: patch(tiny_decoder, CLEAN, CORRUPTED, target=" Paris France"), "tokens"),
        (lambda: patch(tiny_decoder, CLEAN, CORRUPTED, target="x", foil="x"), "both 'x'"),
        (lambda: ablate(tiny_decoder, CLEAN, [(9, 0)]), "layer 9 is out of range"),
        (lambda: ablate(tiny_decoder, CLEAN, [(0, 7)]), "head 7 is out of range"),
        (lambda: ablate(tiny_decoder, CLEAN, []), "at least one head"),
        (lambda: ablate(tiny_decoder, CLEAN, [(0, 0)], mode="half"), "unknown ablation 'half'"),
    ]
    for call, message in cases:
        with pytest.raises(ContextlensError, match=message) as e:
            call()
        assert "\n" not in str(e.value)


def test_cli_patch_and_ablate(run_cli, tmp_path):
    code, out, _ = run_cli("patch", TIRED, WIDE, "-m", "minilm", "--site", "attn", "--json")
    assert code == 0 and json.loads(out)["site"] == "attn"
    code, out, _ = run_cli("patch", TIRED, WIDE, "-m", "minilm", "--plot", tmp_path / "p.png")
    assert code == 0 and "'tired'" in out and (tmp_path / "p.png").stat().st_size
    code, out, _ = run_cli("patch", TIRED, "-m", "minilm", "--ablate", "1.2", "--mode", "mean")
    assert code == 0 and "cosine of the embedding" in out
    for args, message in [
        ((TIRED, "-m", "minilm", "--ablate", "1-2"), "write a head as LAYER.HEAD"),
        ((TIRED, "-m", "minilm"), "give the corrupted text"),
        ((TIRED, "The animal.", "-m", "minilm"), "same token length"),
    ]:
        code, _, err = run_cli("patch", *args)
        assert code == 2 and message in err and err.count("\n") == 1


def test_web_why_endpoints_give_the_reports(minilm, smollm2):
    """/api/lens, /api/attribute and /api/patch answer to_dict of the same reports."""
    loaded = {"minilm": minilm, "smollm2": smollm2}
    app = create_app(["minilm", "smollm2"], registry=Registry(list(loaded), loader=loaded.get))
    client = TestClient(app, base_url="http://127.0.0.1:8000")

    def post(path: str, **body) -> dict:
        r = client.post(path, json=body)
        assert r.status_code == 200, r.text
        return r.json()

    lens = post("/api/lens", model="smollm2", text=CLEAN, k=3)
    assert lens == json.loads(json.dumps(to_dict(logit_lens(smollm2, CLEAN, k=3))))
    sim = post("/api/attribute", model="minilm", text=TIRED, other=WIDE, steps=4)
    assert sim["cosine"] == pytest.approx(attribute_similarity(minilm, TIRED, WIDE, 4).cosine)
    assert post("/api/patch", model="minilm", clean=TIRED, corrupted=WIDE) == json.loads(
        json.dumps(to_dict(patch(minilm, TIRED, WIDE)))
    )
    bad = client.post("/api/patch", json={"model": "minilm", "clean": TIRED, "corrupted": "A cat."})
    assert bad.status_code == 422 and "same token length" in bad.json()["error"]
    long = client.post("/api/lens", json={"model": "smollm2", "text": "word " * 80})
    assert long.status_code == 413 and "Why view's limit of 64" in long.json()["error"]
    page = client.get("/").text
    assert 'data-view="why"' in page and 'id="view-why"' in page


def test_evaluate_coref_reports_the_candidate_ablation_method(minilm):
    cases = coref.limit_cases(read_cases(Path("tests/data/winobias"), None), 12)
    kept, feats, _ = coref.features(minilm, cases)
    assert feats.influence.shape == (len(kept), minilm.config.n_layers + 1, 2)
    r = coref.evaluate(feats, coref.split(kept))
    method = next(m for m in r["methods"] if m["method"].startswith("candidate ablation"))
    assert method["choice"].startswith("layer ") and 0 <= method["test"] <= 1
    assert len(r["test_by_layer"]["candidate ablation"]) == minilm.config.n_layers + 1
