"""Llama (Touvron et al. 2023), as in SmolLM2: RMSNorm pre-norm blocks, RoPE, grouped-query
attention, SwiGLU MLP, causal, no biases, final norm, (tied) LM head."""

from ..errors import ContextlensError
from .transformer import TransformerConfig, hf_activation


def rope_theta(hf: dict) -> float:
    """RoPE's base: `rope_theta` (transformers 4) or `rope_parameters` (transformers 5)."""
    rope = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    kind = rope.get("rope_type", rope.get("type", "default"))
    if kind != "default":
        raise ContextlensError(f"RoPE scaling {kind!r} is not supported (only plain RoPE)")
    return float(hf.get("rope_theta") or rope.get("rope_theta") or 10000.0)


def config(hf: dict) -> TransformerConfig:
    n_heads = hf["num_attention_heads"]
    if hf.get("head_dim", hf["hidden_size"] // n_heads) != hf["hidden_size"] // n_heads:
        raise ContextlensError(f"head_dim {hf['head_dim']} ≠ hidden_size / heads is not supported")
    return TransformerConfig(
        architecture="llama",
        vocab_size=hf["vocab_size"],
        d_model=hf["hidden_size"],
        n_layers=hf["num_hidden_layers"],
        n_heads=n_heads,
        n_kv_heads=hf.get("num_key_value_heads") or n_heads,
        d_ff=hf["intermediate_size"],
        max_positions=hf.get("max_position_embeddings", 2048),
        position="rope",
        rope_theta=rope_theta(hf),
        norm="rmsnorm",
        norm_eps=hf.get("rms_norm_eps", 1e-6),
        pre_norm=True,
        activation=hf_activation(hf.get("hidden_act", "silu")),
        gated_mlp=True,
        causal=True,
        bias=bool(hf.get("attention_bias", False)),
        final_norm=True,
        lm_head=True,
        tie_lm_head=bool(hf.get("tie_word_embeddings", False)),
    )


PREFIXES = ("model.",)
WEIGHTS = {
    "tok.weight": "embed_tokens.weight",
    "final_norm.weight": "norm.weight",
    "lm_head.weight": "lm_head.weight",
}
LAYER_PREFIX = "layers.{i}."
LAYER_WEIGHTS = {
    "attn.qkv.{p}": [f"self_attn.{n}_proj.{{p}}" for n in "qkv"],
    "attn.out.{p}": "self_attn.o_proj.{p}",
    "norm1.weight": "input_layernorm.weight",
    "norm2.weight": "post_attention_layernorm.weight",
    "mlp.up.weight": ["mlp.gate_proj.weight", "mlp.up_proj.weight"],  # gate first: see nn.MLP
    "mlp.down.weight": "mlp.down_proj.weight",
}
