"""The decoder families beyond Llama and GPT-2 — Qwen2, Qwen3, Mistral, Gemma 2, Gemma 3, Phi-3 —
loaded from Hugging Face directories that transformers itself saved from tiny random
configurations, against transformers' own (eager) implementation of each."""

import json

import pytest
import torch
from tiny import (
    assert_pass_equals_transformers,
    byte_bpe_tokenizer,
    load_pair,
    reference_greedy,
    save,
)

import contextlens as cl
from contextlens import ContextlensError

PROMPTS = [
    "The capital of France is Paris, and the animal didn't cross the street",
    "Numbers like 3.14, naïve café!",
]
WINDOW = 6  # shorter than the prompts and the generations, so that the window matters
GEMMA3_ROPE = {
    "full_attention": {"rope_type": "default", "rope_theta": 10000.0},
    "sliding_attention": {"rope_type": "default", "rope_theta": 100.0},
}
FAMILIES = {  # name -> (config class, model class, what sets the family's quirks apart)
    "qwen2": (
        "Qwen2Config",
        "Qwen2ForCausalLM",
        dict(use_sliding_window=True, sliding_window=WINDOW, max_window_layers=1),
    ),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", dict(head_dim=24)),
    "mistral": ("MistralConfig", "MistralForCausalLM", dict(head_dim=24, sliding_window=WINDOW)),
    "gemma2": (
        "Gemma2Config",
        "Gemma2ForCausalLM",
        dict(
            head_dim=24,
            sliding_window=WINDOW,
            query_pre_attn_scalar=20,
            attn_logit_softcapping=4.0,
            final_logit_softcapping=3.0,
        ),
    ),
    "gemma3": (
        "Gemma3TextConfig",
        "Gemma3ForCausalLM",
        dict(
            head_dim=24,
            sliding_window=WINDOW,
            query_pre_attn_scalar=20,
            final_logit_softcapping=3.0,
            layer_types=["sliding_attention", "full_attention"],
            rope_parameters=GEMMA3_ROPE,
        ),
    ),
    "phi3": ("Phi3Config", "Phi3ForCausalLM", dict(sliding_window=WINDOW)),
    "llama-mlp-bias": ("LlamaConfig", "LlamaForCausalLM", dict(mlp_bias=True)),
}


def save_family(name: str, directory, **overrides):
    """A random 2-layer `name` model (d_model 64) and a byte-level BPE tokenizer, saved by
    transformers; every weight and bias drawn wide enough that each part of the block matters."""
    import transformers

    config_class, model_class, quirks = FAMILIES[name]
    torch.manual_seed(0)
    tok = byte_bpe_tokenizer()
    cfg = getattr(transformers, config_class)(
        vocab_size=tok.get_vocab_size(),
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
        **quirks | overrides,
    )
    model = getattr(transformers, model_class)(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2) if p.ndim == 2 else p.add_(0.3 * torch.randn_like(p))
    return save(model, tok, directory)


@pytest.fixture(scope="module", params=list(FAMILIES))
def pair(request, tmp_path_factory):
    return load_pair(save_family(request.param, tmp_path_factory.mktemp(request.param)))


@pytest.mark.parametrize("prompt", PROMPTS)
def test_hidden_states_attentions_logits_equal_transformers(pair, prompt):
    assert_pass_equals_transformers(*pair, prompt)


def test_greedy_32_tokens_equal_transformers_and_cache_equals_recompute(pair):
    m, ref = pair
    ids = m.tokenize(PROMPTS[0]).ids
    theirs = reference_greedy(ref, ids)
    cached = list(m.generate_ids(ids, 32, 0.0, None, None, None))
    recomputed = list(m.generate_ids(ids, 32, 0.0, None, None, None, use_cache=False))
    assert cached == recomputed
    assert cached == theirs[: len(cached)] and len(cached) >= 8  # ours stops at end-of-text


def test_a_padded_batch_equals_each_text_alone(pair):
    m, _ = pair
    batch = m.next_token_logits(PROMPTS)
    for row, prompt in zip(batch, PROMPTS, strict=True):
        torch.testing.assert_close(row, m.next_token_logits(prompt), atol=1e-4, rtol=0)


def test_the_quirks_are_in_the_config(tmp_path):
    cfgs = {
        name: cl.load(save_family(name, tmp_path / name)).model.cfg
        for name in ("qwen2", "gemma2", "gemma3", "llama-mlp-bias")
    }
    qwen2, gemma2, gemma3, llama = cfgs.values()
    assert (qwen2.bias, qwen2.out_bias, qwen2.mlp_bias) == (True, False, False)
    assert [qwen2.windowed(i) for i in range(2)] == [False, True]
    assert [gemma2.windowed(i) for i in range(2)] == [True, False]
    assert (gemma2.attn_softcap, gemma2.logit_softcap, gemma2.head_dim) == (4.0, 3.0, 24)
    assert gemma2.embedding_scale == pytest.approx(8.0) and gemma2.norm == "rmsnorm_plus_one"
    assert (gemma3.rope_theta, gemma3.rope_local_theta, gemma3.qk_norm) == (10000.0, 100.0, True)
    assert (llama.bias, llama.out_bias, llama.mlp_bias) == (False, False, True)


def edit_config(directory, change) -> None:
    path = directory / "config.json"
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


@pytest.mark.parametrize(
    ("family", "change", "message"),
    [
        ("gemma2", {"query_pre_attn_scalar": "big"}, "'query_pre_attn_scalar' is 'big'; expected"),
        ("gemma2", {"sliding_window": 0}, "'sliding_window' is 0; expected null or a positive"),
        ("gemma2", {"final_logit_softcapping": -1}, "is -1; expected null or a finite number > 0"),
        ("gemma2", {"layer_types": ["local"] * 2}, "'layer_types' is ['local', 'local']; expected"),
        ("qwen2", {"max_window_layers": "1"}, "'max_window_layers' is '1'; expected an integer"),
        ("qwen3", {"head_dim": 0}, "config.json 'head_dim' is 0; expected a positive integer"),
        ("phi3", {"partial_rotary_factor": 0.5}, "partial_rotary_factor is 0.5; only RoPE over"),
        ("gemma3", {"model_type": "gemma3"}, "architecture 'gemma3' is not supported; supported:"),
    ],
)
def test_bad_family_configs_are_one_clear_error(tmp_path, family, change, message):
    d = save_family(family, tmp_path / family)
    edit_config(d, lambda c: c | change)
    with pytest.raises(ContextlensError, match="^" + str(d).replace(".", r"\.")) as e:
        cl.load(d)
    assert message in str(e.value) and "\n" not in str(e.value)
