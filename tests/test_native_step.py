"""The fused decoding step (`Block.step`: a few C calls per layer, over native or exact weights)
against the general path through the same modules: its C pieces (RoPE, one token's attention
over the cache) against torch's, then whole steps of SmolLM2 and of the tiny GGUF families —
those it applies to and those that must fall back (QK-norm, post norms, soft-capping)."""

from dataclasses import replace

import pytest
import torch
from gguf import GGMLQuantizationType
from test_families import save_family
from test_gguf_families import GGUF_CAN_SAY, write_gguf

import contextlens as cl
from contextlens.nn import quant
from contextlens.nn.attention import attend, attention_mask
from contextlens.nn.positions import RoPE

Q = GGMLQuantizationType


@pytest.mark.parametrize("interleaved", [False, True], ids=["half-split", "interleaved"])
def test_rope_call_turns_queries_and_keys_as_the_module_does(interleaved):
    rope = RoPE(16, 10000.0, 64, interleaved)
    x = torch.randn(1, 7, 1, 16)  # 7 heads (queries then keys) of one token
    want = rope(x, torch.tensor([37]))
    got = x.clone()
    row = 37 * 16 * 4
    lib = quant.kernels()
    lib.cl_rope(got.data_ptr(), 7, 16, rope.cos.data_ptr() + row, rope.sin.data_ptr() + row,
                interleaved)  # fmt: skip
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize(
    "window, softcap, scale", [(None, None, None), (5, None, 0.3), (None, 20.0, None)]
)
def test_one_token_attention_equals_attend(window, softcap, scale):
    """Grouped-query (6 query heads over 2 KV heads): the new key and value land in the cache
    at the last position, and the output is `attend`'s with the same mask, scale and cap."""
    h, h_kv, d, n, stride = 6, 2, 16, 12, 20
    cache_k, cache_v = torch.randn(2, 1, h_kv, stride, d).unbind(0)
    q, k, v = torch.randn(h, d), torch.randn(h_kv, d), torch.randn(h_kv, d)
    keys, values = cache_k.clone(), cache_v.clone()
    keys[0, :, n - 1], values[0, :, n - 1] = k, v
    mask = attention_mask(None, True, 1, n, torch.float32, window=window)
    want, _ = attend(q.view(1, h, 1, d), keys[:, :, :n], values[:, :, :n], mask,
                     scale=scale, softcap=softcap)  # fmt: skip
    out = torch.empty(h, d)
    lo = max(0, n - window) if window else 0
    lib = quant.kernels()
    done = lib.cl_attend_one(q.data_ptr(), k.data_ptr(), v.data_ptr(), cache_k.data_ptr(),
                             cache_v.data_ptr(), stride, h, h_kv, d, lo, n,
                             scale or d**-0.5, softcap or 0.0, out.data_ptr())  # fmt: skip
    assert done == 0
    torch.testing.assert_close(cache_k, keys, atol=0, rtol=0)
    torch.testing.assert_close(cache_v, values, atol=0, rtol=0)
    torch.testing.assert_close(out, want.view(h, d), atol=1e-5, rtol=1e-5)


def step_logits(lm, prompt: list[int], follow: list[int], fused: bool) -> torch.Tensor:
    """The logits after the prompt and after each token of `follow`, fed one at a time through
    a KV cache: [len(follow) + 1, vocab]. fused=False makes every block take the general path."""
    for block in lm.model.blocks:
        block.fusable = None if fused else False  # None: decided again at the next step
    cache = lm.model.new_cache(1, len(prompt) + len(follow))
    out = [lm.model.logits(lm.model(torch.tensor([prompt]), cache=cache)[0, -1])]
    with torch.no_grad():
        for token in follow:
            out.append(lm.model.logits(lm.model(torch.tensor([[token]]), cache=cache)[0, -1]))
    return torch.stack(out)


def test_smollm2_steps_are_fused_and_equal_the_general_path():
    lm = cl.load("smollm2", weights="native")
    prompt = lm.tokenize("The history of France spans thousands of years, from").ids
    follow = list(lm.generate_ids(prompt, 12, stop_at_eos=False))
    assert all(block.fusable for block in lm.model.blocks)  # the generation took the fused step
    fused = step_logits(lm, prompt, follow[:-1], fused=True)
    general = step_logits(lm, prompt, follow[:-1], fused=False)
    assert follow == fused.argmax(-1).tolist() == general.argmax(-1).tolist()
    torch.testing.assert_close(fused, general, atol=2e-3 * general.abs().max(), rtol=0)


def test_exact_mode_steps_are_fused_and_equal_the_general_path():
    """Exact (float32) weights take the same step, every product (the LM head's included) a
    quant.c call over the float32 weights in place: its sums run in another order than torch's,
    so the logits agree within 1e-5 of the largest, and the greedy tokens are the same."""
    lm = cl.load("smollm2")
    prompt = lm.tokenize("The capital of France is").ids
    follow = list(lm.generate_ids(prompt, 8, stop_at_eos=False))
    assert all(block.fusable for block in lm.model.blocks)
    linears = [lm.model.lm_head] + [b.mlp.down for b in lm.model.blocks]
    assert all(linear.__dict__.get("kernel_call") for linear in linears)  # quant.c multiplied
    fused = step_logits(lm, prompt, follow[:-1], fused=True)
    general = step_logits(lm, prompt, follow[:-1], fused=False)
    assert follow == fused.argmax(-1).tolist() == general.argmax(-1).tolist()
    torch.testing.assert_close(fused, general, atol=1e-5 * general.abs().max(), rtol=0)


FUSABLE = {
    "qwen2": True,
    "mistral": True,
    "phi3": True,
    "qwen3": False,
    "gemma2": False,
    "gemma3": False,
}  # fmt: skip  (QK-norm; post norms, soft-capping, windows)


@pytest.mark.parametrize("family", list(FUSABLE))
def test_families_step_fused_where_they_can_and_fall_back_where_not(family, tmp_path):
    """Each tiny family as a Q8_0 GGUF in native mode: the same logits step by step whether a
    block fuses or not (up to the int16 rounding of activations normalised in another order),
    and a block fuses exactly when every piece applies."""
    d = save_family(family, tmp_path / family, **GGUF_CAN_SAY.get(family, {}))
    lm = cl.load(write_gguf(d, tmp_path / f"{family}.gguf", family, Q.Q8_0), weights="native")
    prompt, follow = [5, 17, 120, 33, 250, 9, 64], [64, 201, 11, 3, 77, 150, 42, 299, 1]
    fused = step_logits(lm, prompt, follow, fused=True)
    assert [b.fusable for b in lm.model.blocks] == [FUSABLE[family]] * len(lm.model.blocks)
    general = step_logits(lm, prompt, follow, fused=False)
    torch.testing.assert_close(fused, general, atol=1e-3 * general.abs().max(), rtol=0)


def test_sliding_window_in_the_fused_step(tmp_path):
    """Mistral's blocks with a 4-position window (shorter than the 16 tokens fed): the fused
    step reads only the window's cache rows, as the general path's mask allows."""
    d = save_family("mistral", tmp_path / "mistral", sliding_window=None)
    lm = cl.load(write_gguf(d, tmp_path / "mistral.gguf", "mistral", Q.Q8_0), weights="native")
    lm.model.cfg = replace(lm.model.cfg, sliding_window=4)
    for block in lm.model.blocks:
        block.attn.window = 4
    prompt, follow = [5, 17, 120], [33, 250, 9, 64, 64, 201, 11, 3, 77, 150, 42, 299, 1]
    fused = step_logits(lm, prompt, follow, fused=True)
    assert all(block.fusable for block in lm.model.blocks)
    general = step_logits(lm, prompt, follow, fused=False)
    torch.testing.assert_close(fused, general, atol=1e-3 * general.abs().max(), rtol=0)
    unwindowed = step_logits(cl.load(tmp_path / "mistral.gguf", weights="native"), prompt,
                             follow, fused=True)  # fmt: skip
    assert (unwindowed[-1] - fused[-1]).abs().max() > 1e-3  # the window changed the answer
