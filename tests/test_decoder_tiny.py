"""GPT-2 and Llama loaded from Hugging Face directories (small random weights saved by
transformers, since real GPT-2 weights are not available offline) against transformers."""

import pytest
from tiny import assert_pass_equals_transformers, load_pair, reference_greedy, save_tiny

from contextlens import ContextlensError

PROMPTS = ["The capital of France is", "Numbers like 3.14, naïve café!", "attention attention"]


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def pair(request, tmp_path_factory):
    return load_pair(save_tiny(request.param, tmp_path_factory.mktemp(request.param)))


@pytest.mark.parametrize("prompt", PROMPTS)
def test_hidden_states_attentions_logits_equal_transformers(pair, prompt):
    t = assert_pass_equals_transformers(*pair, prompt)
    assert t.attentions.triu(1).abs().max() == 0  # causal: nothing above the diagonal


def test_greedy_generation_equals_transformers_and_recompute(pair):
    m, ref = pair
    for prompt in PROMPTS:
        ids = m.tokenize(prompt).ids
        theirs = reference_greedy(ref, ids, pad_token_id=0)
        cached = list(m.generate_ids(ids, 32, 0.0, None, None, None))
        recomputed = list(m.generate_ids(ids, 32, 0.0, None, None, None, use_cache=False))
        n = len(cached)  # ours stops at end-of-sequence; transformers was told not to
        assert cached == recomputed
        assert cached == theirs[:n]


def test_sampling_is_seeded_and_streams_add_up(pair):
    m, _ = pair
    kw = dict(max_new_tokens=12, temperature=0.9, top_k=20, top_p=0.9)
    a = m.generate("The capital", seed=7, **kw)
    assert a == m.generate("The capital", seed=7, **kw)
    assert "".join(m.stream("The capital", seed=7, **kw)) == a


def test_next_token_probs_are_a_distribution(pair):
    m, _ = pair
    top = m.next_token_probs("The capital of France is", k=5)
    assert len(top) == 5 and all(isinstance(s, str) for s, _ in top)
    probs = [p for _, p in top]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1
    full = m.next_token_logits("The capital of France is").softmax(-1)
    assert probs[0] == pytest.approx(float(full.max()), abs=1e-6)
    batch = m.next_token_probs(["The capital of France is", "attention"], k=5)  # padded batch
    for got, alone in zip(batch, [top, m.next_token_probs("attention", k=5)], strict=True):
        assert [s for s, _ in got] == [s for s, _ in alone]
        assert [p for _, p in got] == pytest.approx([p for _, p in alone], abs=1e-5)


def test_decoder_bad_inputs(pair):
    m, _ = pair
    with pytest.raises(ContextlensError, match="max_new_tokens must be ≥ 1"):
        m.generate("hi", max_new_tokens=0)
    with pytest.raises(ContextlensError, match=r"top_p must be in \(0, 1\]"):
        m.generate("hi", temperature=1.0, top_p=1.5)
    with pytest.raises(ContextlensError, match=r"top_p must be in \(0, 1\]"):
        m.generate("hi", temperature=1.0, top_p=0)
    prompt = "hi"
    while len(m.tokenize(prompt).ids) < 80:  # fits alone, not with 64 new tokens
        prompt += " hi"
    with pytest.raises(ContextlensError, match="exceeds .* context of 128 tokens"):
        m.generate(prompt, max_new_tokens=64)
    with pytest.raises(ContextlensError, match="over .* limit of 128"):
        m.trace("hi " * 200)
    with pytest.raises(ContextlensError, match="temperature must be ≥ 0"):
        m.generate("hi", temperature=-1)


def test_encoder_refuses_generation(minilm):
    with pytest.raises(ContextlensError, match="minilm is an encoder.*smollm2"):
        minilm.next_token_probs("The capital of France is")
