"""Multi-head latent attention and DeepSeek's mixture of experts (DeepSeek-V2/V3), on tiny random
models saved by transformers, against transformers' own implementation (eager attention)."""

import json

import pytest
import torch
from tiny import byte_bpe_tokenizer

import contextlens as cl
from contextlens import ContextlensError
from contextlens.nn.attention import LatentCache
from contextlens.nn.moe import MoEConfig, Router
from contextlens.nn.positions import YaRN

PROMPTS = ["The capital of France is", "Numbers like 3.14, naïve café!"]
YARN = dict(
    rope_type="yarn",
    rope_theta=10000.0,
    factor=4.0,
    original_max_position_embeddings=64,
    mscale=1.0,
    mscale_all_dim=0.707,
    beta_fast=32,
    beta_slow=1,
)
COMMON = dict(
    hidden_size=64,
    intermediate_size=96,
    moe_intermediate_size=32,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=4,
    kv_lora_rank=16,
    qk_rope_head_dim=8,
    qk_nope_head_dim=10,
    v_head_dim=12,
    n_routed_experts=8,
    num_experts_per_tok=3,
    n_group=4,
    topk_group=2,
    first_k_dense_replace=1,
    max_position_embeddings=256,
    bos_token_id=0,
    eos_token_id=0,
    tie_word_embeddings=False,
)
VARIANTS = {  # V3 as released (low-rank q, YaRN, interleaved RoPE), V3 half-split, V2
    "v3": dict(q_lora_rank=24, n_shared_experts=1, routed_scaling_factor=2.5, rope_parameters=YARN),
    "v3-half": dict(q_lora_rank=None, n_shared_experts=1, rope_interleave=False),
    "v2": dict(q_lora_rank=None, n_shared_experts=2, topk_method="group_limited_greedy"),
}


def save_deepseek(variant: str, directory):
    """A seeded random DeepSeek model + tokenizer.json in `directory`; returns transformers'."""
    from transformers import (
        DeepseekV2Config,
        DeepseekV2ForCausalLM,
        DeepseekV3Config,
        DeepseekV3ForCausalLM,
    )

    torch.manual_seed(0)
    tok = byte_bpe_tokenizer()
    values = COMMON | VARIANTS[variant] | {"vocab_size": tok.get_vocab_size()}
    if variant == "v2":
        model = DeepseekV2ForCausalLM(DeepseekV2Config(**values))
    else:
        model = DeepseekV3ForCausalLM(DeepseekV3Config(**values))
    with torch.no_grad():  # widen the tiny init so that layers mix tokens and routes differ
        for p in model.parameters():
            if p.ndim >= 2:
                p.normal_(0, 0.2)
        for name, b in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                b.normal_(0, 0.1)
    model.save_pretrained(directory)
    tok.save(str(directory / "tokenizer.json"))
    model.config._attn_implementation = "eager"
    return model.eval()


@pytest.fixture(scope="module", params=list(VARIANTS))
def pair(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(request.param)
    ref = save_deepseek(request.param, d)
    return cl.load(d), ref


@pytest.mark.parametrize("prompt", PROMPTS)
def test_hidden_states_attentions_logits_equal_transformers(pair, prompt):
    m, ref = pair
    t = m.trace(prompt)
    with torch.no_grad():
        out = ref(torch.tensor([t.ids]), output_hidden_states=True, output_attentions=True)
    torch.testing.assert_close(
        t.hidden_states, torch.stack(out.hidden_states)[:, 0], atol=1e-4, rtol=0
    )
    torch.testing.assert_close(t.attentions, torch.stack(out.attentions)[:, 0], atol=1e-4, rtol=0)
    torch.testing.assert_close(m.next_token_logits(prompt), out.logits[0, -1], atol=1e-4, rtol=0)


def test_naive_and_absorbed_paths_agree(pair):
    m, _ = pair
    try:
        m.model.use_latent_path("naive")
        naive = m.trace(PROMPTS[0])
        m.model.use_latent_path("absorbed")
        absorbed = m.trace(PROMPTS[0])
    finally:
        m.model.use_latent_path("absorbed")
    torch.testing.assert_close(absorbed.attentions, naive.attentions, atol=1e-5, rtol=0)
    attn = m.model.blocks[1].attn
    x = torch.randn(1, 7, m.config.d_model)
    ctx = cl.nn.Pass(torch.arange(7), cl.nn.attention_mask(None, True, 7, 7, torch.float32))
    attn.absorbed = False
    y_naive = attn(x, ctx)
    attn.absorbed = True
    torch.testing.assert_close(attn(x, ctx), y_naive, atol=1e-5, rtol=0)


def test_greedy_32_tokens_equal_transformers_cache_and_paths(pair):
    m, ref = pair
    ids = m.tokenize(PROMPTS[0]).ids
    with torch.no_grad():
        out = ref.generate(
            torch.tensor([ids]),
            max_new_tokens=32,
            do_sample=False,
            eos_token_id=None,
            pad_token_id=0,
        )
    theirs = out[0, len(ids) :].tolist()

    def ours(**kw) -> list[int]:
        return list(m.generate_ids(ids, 32, stop_at_eos=False, **kw))

    assert ours() == theirs
    assert ours(use_cache=False) == theirs
    try:
        m.model.use_latent_path("naive")
        assert ours() == theirs
    finally:
        m.model.use_latent_path("absorbed")


def test_cache_holds_only_the_latent_and_rope_key(pair):
    m, _ = pair
    cache = m.model.new_cache(2, 40)
    assert isinstance(cache, LatentCache)
    dims = m.config.latent
    assert [tuple(t.shape) for t in cache.latent] == [(2, 1, 40, dims.kv_rank + dims.rope_dim)] * 3
    ids = torch.tensor([m.tokenize(PROMPTS[1]).ids] * 2)
    full = m.model(ids)
    step = torch.cat([m.model(ids[:, :-3], cache=cache), m.model(ids[:, -3:], cache=cache)], 1)
    torch.testing.assert_close(step, full, atol=1e-5, rtol=0)


def test_bfloat16_generation_follows_the_dtype(tmp_path):
    save_deepseek("v3", tmp_path)
    m = cl.load(tmp_path, dtype="bfloat16")
    assert m.model.new_cache(1, 4).latent[0].dtype == torch.bfloat16
    t = m.trace(PROMPTS[0])
    assert t.attentions.dtype == torch.bfloat16
    assert len(list(m.generate_ids(m.tokenize(PROMPTS[0]).ids, 5, stop_at_eos=False))) == 5


def test_router_equals_transformers_router():
    from transformers import DeepseekV2Config, DeepseekV3Config
    from transformers.models.deepseek_v2.modeling_deepseek_v2 import DeepseekV2TopkRouter
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3TopkRouter

    torch.manual_seed(1)
    x = torch.randn(50, 64)
    common = dict(hidden_size=64, n_routed_experts=16, num_experts_per_tok=4, n_group=4)
    v3 = DeepseekV3TopkRouter(
        DeepseekV3Config(**common, topk_group=2, routed_scaling_factor=2.5, norm_topk_prob=True)
    )
    v2 = DeepseekV2TopkRouter(
        DeepseekV2Config(**common, topk_group=2, topk_method="group_limited_greedy")
    )
    ours = {
        "v3": MoEConfig(16, 4, 8, 1, "sigmoid", "top2", 4, 2, True, 2.5, correction_bias=True),
        "v2": MoEConfig(16, 4, 8, 1, "softmax", "max", 4, 2),
    }
    for name, theirs in (("v3", v3), ("v2", v2)):
        router = Router(64, ours[name])
        with torch.no_grad():
            theirs.weight.normal_()
            router.weight.copy_(theirs.weight)
            if name == "v3":
                theirs.e_score_correction_bias.normal_(0, 0.3)
                router.bias.copy_(theirs.e_score_correction_bias)
            _, w_ref, e_ref = theirs(x)
        w, e = router(x)
        order, order_ref = e.sort(-1), e_ref.sort(-1)
        assert torch.equal(order.values, order_ref.values), name
        torch.testing.assert_close(w.gather(-1, order.indices), w_ref.gather(-1, order_ref.indices))


def test_yarn_frequencies_and_scale_equal_transformers():
    from transformers import DeepseekV3Config
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    cfg = DeepseekV3Config(**COMMON | {"rope_parameters": YARN})
    inv_freq, factor = ROPE_INIT_FUNCTIONS["yarn"](cfg)
    ours = YaRN(4.0, 64, 32, 1, 1.0, 0.707)
    torch.testing.assert_close(ours.inv_freq(8, 10000.0), inv_freq)
    assert ours.attention_factor == pytest.approx(factor)


def test_qkv_recording_is_refused_clearly(pair):
    m, _ = pair
    with pytest.raises(ContextlensError, match="qkv=False"):
        m.trace(PROMPTS[0], qkv=True)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"rope_parameters": {"rope_type": "linear", "factor": 2.0}}, "supported: yarn"),
        ({"n_group": 3}, "'n_group' is 3"),
        ({"qk_rope_head_dim": 7}, "'qk_rope_head_dim' is 7"),
        ({"kv_lora_rank": 0}, "'kv_lora_rank' is 0"),
    ],
)
def test_bad_configs_are_one_clear_error(tmp_path, change, message):
    save_deepseek("v3-half", tmp_path)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | change))
    with pytest.raises(ContextlensError, match=message):
        cl.load(tmp_path)


def test_unknown_latent_path_is_one_clear_error(pair):
    m, _ = pair
    with pytest.raises(ContextlensError, match="'absorbed' or 'naive'"):
        m.model.use_latent_path("fast")
