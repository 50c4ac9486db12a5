"""Multi-head latent attention and DeepSeek's mixture of experts (DeepSeek-V2/V3), on tiny random
models saved by transformers, against transformers' own implementation (eager attention)."""

import json

import pytest
import torch
from tiny import (
    assert_pass_equals_transformers,
    byte_bpe_tokenizer,
    finish,
    gguf_vocab,
    reference_greedy,
    save,
    write_bpe_vocab,
)

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
    mscale=0.707,  # as DeepSeek-V2 (V3: 1.0 and 1.0); GGUF keeps one value for both
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
BLOCKS = dict(q_lora_rank=32, kv_lora_rank=32, v_head_dim=16)  # widths native kernels take


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
    values = (
        COMMON | VARIANTS[variant.removesuffix("-blocks")] | {"vocab_size": tok.get_vocab_size()}
    )
    if variant.endswith("-blocks"):
        values |= BLOCKS
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
    save(model, tok, directory)
    model.config._attn_implementation = "eager"
    return model.eval()


@pytest.fixture(scope="module", params=list(VARIANTS))
def pair(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(request.param)
    ref = save_deepseek(request.param, d)
    return cl.load(d), ref


@pytest.mark.parametrize("prompt", PROMPTS)
def test_hidden_states_attentions_logits_equal_transformers(pair, prompt):
    assert_pass_equals_transformers(*pair, prompt)


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
    theirs = reference_greedy(ref, ids, pad_token_id=0)

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
            router.proj.weight.copy_(theirs.weight)
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

    cfg = DeepseekV3Config(**COMMON | {"rope_parameters": YARN | {"mscale": 1.0}})
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


def write_deepseek2_gguf(path, model, split_kv_b_only: bool = False, matrices=None):
    """The tiny model as llama.cpp's converter writes a "deepseek2" GGUF: gguf's own tensor names,
    routed experts stacked [experts, rows, cols], kv_b also split into k_b (transposed) and v_b,
    the widths of MLA's absorbed form under key_length/value_length and the per-head ones under
    *_mla, the tokenizer as GGUF metadata. `matrices`: a numpy dtype to store 2-D weights in."""
    import numpy as np
    from gguf import MODEL_ARCH, GGUFWriter, get_tensor_name_map

    c = model.config
    tok = byte_bpe_tokenizer()
    v3 = c.model_type == "deepseek_v3"
    w = GGUFWriter(path, "deepseek2")
    a = "deepseek2."
    for key, value in {
        "block_count": c.num_hidden_layers,
        "context_length": c.max_position_embeddings,
        "embedding_length": c.hidden_size,
        "feed_forward_length": c.intermediate_size,
        "attention.head_count": c.num_attention_heads,
        "attention.head_count_kv": 1,
        "vocab_size": c.vocab_size,
        "leading_dense_block_count": c.first_k_dense_replace,
        "attention.kv_lora_rank": c.kv_lora_rank,
        "attention.key_length": c.kv_lora_rank + c.qk_rope_head_dim,
        "attention.value_length": c.kv_lora_rank,
        "attention.key_length_mla": c.qk_nope_head_dim + c.qk_rope_head_dim,
        "attention.value_length_mla": c.v_head_dim,
        "expert_feed_forward_length": c.moe_intermediate_size,
        "expert_count": c.n_routed_experts,
        "expert_shared_count": c.n_shared_experts,
        "expert_used_count": c.num_experts_per_tok,
        "expert_gating_func": 2 if v3 else 1,
        "expert_group_count": c.n_group,
        "expert_group_used_count": c.topk_group,
        "rope.dimension_count": c.qk_rope_head_dim,
    }.items():
        w.add_uint32(a + key, value)
    if c.q_lora_rank is not None:
        w.add_uint32(a + "attention.q_lora_rank", c.q_lora_rank)
    w.add_float32(a + "attention.layer_norm_rms_epsilon", c.rms_norm_eps)
    w.add_float32(a + "rope.freq_base", c.rope_parameters["rope_theta"])
    w.add_float32(a + "expert_weights_scale", c.routed_scaling_factor)
    w.add_bool(a + "expert_weights_norm", bool(c.norm_topk_prob))
    rope = c.rope_parameters
    if rope.get("rope_type") == "yarn":
        w.add_string(a + "rope.scaling.type", "yarn")
        w.add_float32(a + "rope.scaling.factor", rope["factor"])
        w.add_uint32(a + "rope.scaling.original_context_length", 64)
        w.add_float32(a + "rope.scaling.yarn_log_multiplier", 0.1 * rope["mscale_all_dim"])
    write_bpe_vocab(w, *gguf_vocab(json.loads(tok.to_str())))
    names = get_tensor_name_map(MODEL_ARCH.DEEPSEEK2, c.num_hidden_layers)
    state = model.state_dict()
    for name, t in state.items():
        base, kind = name.rsplit(".", 1)
        gguf_name = names.get_name(base)
        if ".experts." in name or gguf_name is None:
            continue
        if base.endswith("kv_b_proj") and split_kv_b_only:
            continue
        t = t.contiguous().numpy()
        if matrices is not None and t.ndim == 2:
            t = t.astype(matrices)
        w.add_tensor(f"{gguf_name}.{kind}", t)
    for i in range(c.first_k_dense_replace, c.num_hidden_layers):
        layer = f"model.layers.{i}.mlp"
        gate, up = state[f"{layer}.experts.gate_up_proj"].chunk(2, dim=1)  # [experts, ff, d]
        down = state[f"{layer}.experts.down_proj"]  # [experts, d, ff]
        for p, stacked in (("gate", gate), ("up", up), ("down", down)):
            w.add_tensor(f"blk.{i}.ffn_{p}_exps.weight", stacked.contiguous().numpy())
        if v3:
            bias = state[f"{layer}.gate.e_score_correction_bias"]
            w.add_tensor(f"blk.{i}.exp_probs_b.bias", bias.numpy())
    for i in range(c.num_hidden_layers):
        kv_b = state[f"model.layers.{i}.self_attn.kv_b_proj.weight"]
        kv_b = kv_b.view(c.num_attention_heads, -1, c.kv_lora_rank)
        k_b, v_b = kv_b.split([c.qk_nope_head_dim, c.v_head_dim], dim=1)
        w.add_tensor(f"blk.{i}.attn_k_b.weight", np.ascontiguousarray(k_b.transpose(1, 2)))
        w.add_tensor(f"blk.{i}.attn_v_b.weight", np.ascontiguousarray(v_b))
    finish(w)
    return path


@pytest.mark.parametrize("split_only", [False, True], ids=["kv_b-and-split", "split-only"])
@pytest.mark.parametrize("variant", ["v3", "v2"])  # llama.cpp rotates adjacent pairs only
def test_deepseek2_gguf_gives_the_same_logits(tmp_path, variant, split_only):
    ref = save_deepseek(variant, tmp_path)
    m = cl.load(tmp_path)
    g = cl.load(write_deepseek2_gguf(tmp_path / "tiny.gguf", ref, split_only))
    assert m.tokenize(PROMPTS[1]).ids == g.tokenize(PROMPTS[1]).ids
    ids = torch.tensor([m.tokenize(PROMPTS[0]).ids])
    torch.testing.assert_close(g.model.logits(g.model(ids)), m.model.logits(m.model(ids)))
    assert list(g.generate_ids(ids[0].tolist(), 8, stop_at_eos=False)) == list(
        m.generate_ids(ids[0].tolist(), 8, stop_at_eos=False)
    )


def test_deepseek2_gguf_native_weights(tmp_path):
    import numpy as np

    from contextlens.nn.quant import QuantLinear

    ref = save_deepseek("v3-blocks", tmp_path)
    path = write_deepseek2_gguf(tmp_path / "f16.gguf", ref, matrices=np.float16)
    exact, native = cl.load(path), cl.load(path, weights="native")
    assert isinstance(native.model.blocks[1].attn.kv_b, QuantLinear)
    assert isinstance(native.model.blocks[1].mlp.router.proj, QuantLinear)
    ids = torch.tensor([exact.tokenize(PROMPTS[0]).ids])
    logits = exact.model.logits(exact.model(ids))
    for path_name in ("absorbed", "naive"):
        native.model.use_latent_path(path_name)
        got = native.model.logits(native.model(ids))
        torch.testing.assert_close(got, logits, atol=1e-4, rtol=0)
    native.model.use_latent_path("absorbed")
    assert list(native.generate_ids(ids[0].tolist(), 8, stop_at_eos=False)) == list(
        exact.generate_ids(ids[0].tolist(), 8, stop_at_eos=False)
    )
