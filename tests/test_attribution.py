"""Gradient attributions (saliency, input × gradient, integrated gradients) and direct logit
attribution, on the real models and tiny GPT-2 / Llama ones."""

import json

import pytest

import contextlens as cl
from contextlens import ContextlensError
from contextlens.analysis.attribution import (
    DEFAULT_STEPS,
    attribute_next_token,
    attribute_similarity,
    direct_logit_attribution,
)

PROMPT = "The capital of France is"


def assert_complete(r) -> None:
    """Integrated gradients sum to f(x) − f(baseline) within 1% at the default steps."""
    assert r.steps == DEFAULT_STEPS
    total = sum(t.integrated_gradients for t in r.tokens)
    assert total - (r.value - r.baseline_value) == pytest.approx(r.completeness_gap, abs=1e-4)
    assert abs(r.completeness_gap) <= 0.01 * abs(r.value - r.baseline_value)


def test_integrated_gradients_are_complete_for_the_next_token(smollm2, tiny_decoder):
    r = attribute_next_token(smollm2, PROMPT, target=" Paris")
    assert r.value == pytest.approx(
        float(smollm2.next_token_logits(PROMPT)[r_id(smollm2)]), abs=1e-4
    )
    assert_complete(r)
    assert "".join(t.token for t in r.tokens) == PROMPT
    assert r.tokens[0].integrated_gradients == 0  # the first token (the sink) is in the baseline
    assert_complete(attribute_next_token(tiny_decoder, PROMPT, log_prob=True))


def r_id(m) -> int:
    return m.tokenizer.tok.encode(" Paris", add_special_tokens=False).ids[0]


def test_similarity_attribution_is_complete_on_both_sides(minilm):
    a, b = "A man is playing a guitar.", "Someone is playing an instrument."
    s = attribute_similarity(minilm, a, b)
    assert s.cosine == pytest.approx(float(cl.cosine(*minilm.embed([a, b]))), abs=1e-5)
    for side in (s.a, s.b):
        assert side.value == pytest.approx(s.cosine, abs=1e-5)
        assert_complete(side)
        specials = [t for t in side.tokens if t.special]
        assert [t.token for t in specials] == ["[CLS]", "[SEP]"]
        assert all(t.integrated_gradients == 0 for t in specials)  # kept in the baseline


def test_saliency_and_input_times_gradient_follow_the_gradient(tiny_decoder):
    """With one step at α = ½ nothing changes for saliency and input × gradient; a token that
    cannot reach the output (after the last one, in a decoder: none) still gets a gradient."""
    r = attribute_next_token(tiny_decoder, PROMPT, steps=1)
    assert all(t.saliency >= 0 for t in r.tokens)
    assert any(t.saliency > 0 for t in r.tokens)
    again = attribute_next_token(tiny_decoder, PROMPT, steps=4)
    assert [t.saliency for t in again.tokens] == [t.saliency for t in r.tokens]
    assert [t.input_x_gradient for t in again.tokens] == [t.input_x_gradient for t in r.tokens]


def assert_split(m) -> None:
    """Embedding + every head + each attention bias + every MLP + the final norm's bias."""
    d = direct_logit_attribution(m, PROMPT)
    assert d.logit == pytest.approx(float(m.next_token_logits(PROMPT).max()), abs=1e-4)
    assert d.total == pytest.approx(d.logit, abs=1e-4)
    assert sum(p.logit for p in d.parts) == pytest.approx(d.logit, abs=1e-4)
    n, h = m.config.n_layers, m.config.n_heads
    assert len(d.heads) == n and all(len(row) == h for row in d.heads) and len(d.mlps) == n
    per_layer_bias = n if m.config.bias else 0
    assert len(d.parts) == 1 + n * (h + 1) + per_layer_bias + 1


def test_direct_logit_attribution_sums_to_the_logit(smollm2, tiny_decoder):
    assert_split(smollm2)
    assert_split(tiny_decoder)


def test_direct_logit_attribution_with_native_weights_sums_too(smollm2_native):
    m = smollm2_native
    d = direct_logit_attribution(m, PROMPT, target=" Paris")
    assert d.total == pytest.approx(d.logit, abs=1e-3)
    with pytest.raises(ContextlensError, match="need exact weights.*weights='exact'"):
        attribute_next_token(m, PROMPT)


def test_bad_inputs_are_one_line_errors(smollm2, minilm):
    cases = [
        (lambda: attribute_next_token(smollm2, PROMPT, target=" Paris France"), "is 2 tokens"),
        (lambda: attribute_next_token(smollm2, PROMPT, steps=0), "steps must be 1 to 512"),
        (lambda: direct_logit_attribution(smollm2, PROMPT, position=9), "position 9 is out"),
        (lambda: direct_logit_attribution(minilm, PROMPT), "no masked-LM head"),
        (lambda: attribute_next_token(minilm, PROMPT), "no masked-LM head"),
        (lambda: attribute_similarity(minilm, "", "x"), "text is empty"),
    ]
    for call, message in cases:
        with pytest.raises(ContextlensError, match=message) as e:
            call()
        assert "\n" not in str(e.value)


def test_cli_attribute(run_cli, minilm):
    a, b = "A man is playing a guitar.", "Someone is playing an instrument."
    code, out, _ = run_cli("attribute", a, "--with", b, "--steps", "8", "--json")
    assert code == 0
    assert json.loads(out)["cosine"] == pytest.approx(attribute_similarity(minilm, a, b, 8).cosine)
    code, out, _ = run_cli("attribute", PROMPT, "--direct", "-k", "3")
    assert code == 0 and "parts" in out and "MLP" in out
    code, _, err = run_cli("attribute", PROMPT, "--plot", "x.png")
    assert code == 2 and "add --direct" in err
