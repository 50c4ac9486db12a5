"""The same analyses on the real decoder smollm2 (Llama, RoPE, causal): what changes and why."""

import pytest
import torch

from contextlens.analysis import attention as att
from contextlens.analysis import context as ctx
from contextlens.analysis import coref
from contextlens.analysis.words import words

ANIMAL = "The animal didn't cross the street because it was too tired.\n\nNew  line"
RIVER = "I sat on the bank of the river and watched the water."
MONEY = "I deposited my salary at the bank this morning."


@pytest.fixture(scope="module")
def trace(smollm2):
    return smollm2.trace(ANIMAL)


def test_words_from_byte_level_tokens(trace):
    units = words(trace)
    texts = [u.text for u in units]
    assert texts[:4] == ["The", "animal", "didn't", "cross"]
    assert [trace.tokens[i] for i in units[2].tokens] == ["Ġdidn", "'t"]
    assert texts[-5:] == ["⏎", "⏎", "New", "·", "line"]  # whitespace-only tokens, visible
    assert sorted(i for u in units for i in u.tokens) == list(range(len(trace)))


def test_causal_rows(trace):
    a = trace.attentions
    assert a.shape[:2] == (30, 9)
    s = a.shape[-1]
    torch.testing.assert_close(a.sum(-1), torch.ones(30, 9, s))
    assert a.triu(diagonal=1).abs().max() == 0  # nothing above the diagonal
    wa = att.word_attention(a, words(trace))
    torch.testing.assert_close(wa.sum(-1), torch.ones(30, 9, wa.shape[-1]))
    assert wa.triu(diagonal=1).abs().max() == 0  # still causal word by word


def test_first_token_is_the_sink(trace):
    stats = att.head_stats(trace)
    assert not any(trace.special)  # no BOS: the sink is simply the first word
    assert stats.sink[10:].mean() > 0.5  # deeper layers park most attention on it
    a = att.attends_to(trace, "it")
    assert a.top(a.rollout[-1], 1)[0][0].text == "The"  # rollout collapses onto the first token


def test_layer0_identical_then_bank_drifts(smollm2):
    assert not ctx.position_in_input(smollm2)  # RoPE: position enters inside attention
    cos = ctx.occurrences(smollm2, "bank", [RIVER, MONEY]).mean_cosine()
    assert cos[0].item() == pytest.approx(1.0, abs=1e-6)  # positions 4 and 6, same vector
    assert cos[-1] < 0.9


def test_decoder_never_looks_right(smollm2):
    r = ctx.right_context(smollm2, RIVER, "bank")
    torch.testing.assert_close(r.cosine, torch.ones_like(r.cosine), atol=1e-4, rtol=0)


def test_coref_later_candidate_gets_nothing(smollm2):
    case = coref.CorefCase("It was late when the bus came.", "It", ("the bus",))
    s = coref.score(smollm2.trace(case.text), case)
    assert s.attention.abs().max() == 0 and s.rollout.abs().max() == 0
