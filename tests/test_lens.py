"""The logit lens: every layer's residual stream read through the final norm and LM head."""

import json

import pytest
import torch

from contextlens import ContextlensError
from contextlens.analysis.lens import lens_logits, logit_lens
from contextlens.report import to_dict

PROMPT = "The capital of France is"


def assert_same_logits(lens_row: torch.Tensor, logits: torch.Tensor) -> None:
    """Equal to 1e-5 of the largest logit (one matrix product of another shape rounds apart)."""
    assert (lens_row - logits).abs().max() <= 1e-5 * logits.abs().max()


def test_last_layer_lens_equals_the_model_logits(smollm2, tiny_decoder):
    for m in (smollm2, tiny_decoder):
        rows = lens_logits(m, PROMPT)
        assert rows.shape == (m.config.n_layers + 1, m.config.vocab_size)
        assert_same_logits(rows[-1], m.next_token_logits(PROMPT))


def test_lens_at_an_earlier_position_is_that_prefix_prediction(smollm2):
    prefix = smollm2.tokenizer.decode(smollm2.tokenize(PROMPT).ids[:3])
    assert_same_logits(
        lens_logits(smollm2, PROMPT, position=2)[-1], smollm2.next_token_logits(prefix)
    )


def test_paris_appears_late_and_takes_over(smollm2):
    r = logit_lens(smollm2, PROMPT, k=5, target=" Paris")
    n = smollm2.config.n_layers
    assert [row.layer for row in r.layers] == list(range(n + 1))
    assert r.layers[-1].top[0].token == " Paris" and r.layers[-1].target_rank == 1
    assert r.layers[0].target_rank > 5  # the embedding of " is" alone does not predict Paris
    assert r.appears is not None and 0 < r.appears <= r.takes_over <= n
    assert all(row.target_rank == 1 for row in r.layers[r.takes_over :])
    assert len(r.grid) == n + 1 and len(r.grid[0]) == len(r.tokens) == 5
    assert r.grid[-1][-1] == " Paris"
    assert to_dict(r)["layers"][-1]["top"][0] == {
        "token": " Paris",
        "probability": r.layers[-1].top[0].probability,
    }


def test_native_weights_lens_is_the_native_prediction(smollm2_native):
    m = smollm2_native
    assert_same_logits(lens_logits(m, PROMPT)[-1], m.next_token_logits(PROMPT))


def test_minilm_has_no_head_to_read_through(minilm):
    with pytest.raises(ContextlensError, match="no masked-LM head.*-m smollm2"):
        logit_lens(minilm, PROMPT)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"target": " Paris France"}, "is 2 tokens"),
        ({"target": ""}, "target is empty"),
        ({"position": 5}, "position 5 is out of range; the text has 5 tokens"),
        ({"position": -6}, "position -6 is out of range"),
        ({"k": 0}, "k must be ≥ 1"),
    ],
)
def test_bad_inputs_are_one_line_errors(smollm2, kwargs, message):
    with pytest.raises(ContextlensError, match=message) as e:
        logit_lens(smollm2, PROMPT, **kwargs)
    assert "\n" not in str(e.value)


def test_cli_lens_json_is_the_report_and_bad_input_exits_2(run_cli, smollm2, tmp_path):
    code, out, _ = run_cli("lens", PROMPT, "-k", "3", "--json")
    assert code == 0
    assert json.loads(out) == json.loads(json.dumps(to_dict(logit_lens(smollm2, PROMPT, k=3))))
    code, out, _ = run_cli("lens", PROMPT, "--plot", tmp_path / "lens.png")
    assert code == 0 and "leads from layer" in out and (tmp_path / "lens.png").stat().st_size
    code, _, err = run_cli("lens", PROMPT, "--target", " Paris France")
    assert code == 2 and err.startswith("error: target ' Paris France' is 2 tokens")
    assert err.count("\n") == 1
