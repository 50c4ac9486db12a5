"""SmolLM2-135M-Instruct from its GGUF file vs transformers reading the same file."""

import pytest
import torch
from tiny import reference_greedy

from contextlens.web import show

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    if n < 2:\n        return n",
    "Déjà vu — 東京 🙂, 3.14159 and   spaces!",
    "<|im_start|>user\nName a colour.<|im_end|>\n<|im_start|>assistant\n",
]


@pytest.mark.parametrize("prompt", PROMPTS)
def test_ids_logits_hidden_states_attentions_equal_transformers(smollm2, smollm2_reference, prompt):
    ref, tok = smollm2_reference
    t = smollm2.trace(prompt)
    assert t.ids == tok(prompt)["input_ids"]
    with torch.no_grad():
        out = ref(torch.tensor([t.ids]), output_hidden_states=True, output_attentions=True)
    n = len(t.ids)
    assert t.hidden_states.shape == (31, n, 576) and t.attentions.shape == (30, 9, n, n)
    torch.testing.assert_close(
        t.hidden_states, torch.stack(out.hidden_states)[:, 0], atol=1e-4, rtol=0
    )
    torch.testing.assert_close(t.attentions, torch.stack(out.attentions)[:, 0], atol=1e-4, rtol=0)
    torch.testing.assert_close(
        smollm2.next_token_logits(prompt), out.logits[0, -1], atol=1e-4, rtol=0
    )
    assert t.attentions.triu(1).abs().max() == 0


def test_greedy_generation_equals_transformers(smollm2, smollm2_reference):
    ref, _ = smollm2_reference
    for prompt in PROMPTS[:2]:
        ids = smollm2.tokenize(prompt).ids
        theirs = reference_greedy(ref, ids, pad_token_id=2)
        greedy = dict(temperature=0.0, top_k=None, top_p=None, seed=None, stop_at_eos=False)
        ours = list(smollm2.generate_ids(ids, 32, **greedy))
        assert len(ours) == 32 and ours == theirs
        if prompt == PROMPTS[0]:  # the KV cache changes nothing (tiny models check every prompt)
            assert ours == list(smollm2.generate_ids(ids, 32, use_cache=False, **greedy))


def test_paris_comes_first(smollm2):
    top = smollm2.next_token_probs("The capital of France is", k=5)
    assert top[0][0] == " Paris" and top[0][1] > 0.5


def test_chat_uses_the_models_template(smollm2):
    prompt = smollm2.chat_prompt("What is the capital of France?")
    assert prompt.startswith("<|im_start|>system\n")  # SmolLM2's template adds a system turn
    assert prompt.endswith(
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert "Paris" in smollm2.chat("What is the capital of France?", max_new_tokens=16)


def test_stop_strings_and_stream(smollm2):
    text = smollm2.generate("The capital of France is", max_new_tokens=20, stop=".")
    assert text == " Paris"
    pieces = list(smollm2.stream("The capital of France is", max_new_tokens=8))
    assert len(pieces) > 1 and "".join(pieces) == smollm2.generate(
        "The capital of France is", max_new_tokens=8
    )


def test_prompt_over_the_context(smollm2):
    from contextlens import ContextlensError

    with pytest.raises(ContextlensError, match="context of 8192 tokens"):
        smollm2.generate("hi", max_new_tokens=9000)


def test_recorded_queries_and_keys_give_the_attention_weights(smollm2):
    t = smollm2.trace("The capital of France is", qkv=True, layers=[0, 29])
    q, k = t.qkv[:, 0], t.qkv[:, 1]  # [2, 9, s, 64]: keys repeated for the 9 query heads
    n = len(t.ids)
    causal = torch.ones(n, n, dtype=torch.bool).tril()
    scores = (q @ k.transpose(-1, -2) / 64**0.5).masked_fill(~causal, float("-inf"))
    torch.testing.assert_close(scores.softmax(-1), t.attentions, atol=1e-5, rtol=0)
    html = show(smollm2.trace("The capital of France is"))._repr_html_()
    assert "headview" in html and "https://" not in html
