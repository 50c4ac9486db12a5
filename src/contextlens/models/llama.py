"""Llama (Touvron et al. 2023), as in SmolLM2: RMSNorm pre-norm blocks, RoPE, grouped-query
attention, SwiGLU MLP, causal, no biases, final norm, (tied) LM head."""

from ..errors import ContextlensError
from .transformer import TransformerConfig, from_hf, hf_activation

KEYS = {  # TransformerConfig field -> config.json key
    "vocab_size": "vocab_size",
    "d_model": "hidden_size",
    "n_layers": "num_hidden_layers",
    "n_heads": "num_attention_heads",
    "n_kv_heads": "num_key_value_heads",
    "d_ff": "intermediate_size",
    "max_positions": "max_position_embeddings",
    "norm_eps": "rms_norm_eps",
    "rope_theta": "rope_theta",
    "bias": "attention_bias",
    "tie_lm_head": "tie_word_embeddings",
    "declared_head_dim": "head_dim",
}
DEFAULTS = {  # config.json key -> value if absent (None: worked out below)
    "num_key_value_heads": None,
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-6,
    "rope_theta": None,
    "attention_bias": False,
    "tie_word_embeddings": False,
    "head_dim": None,
}


def rope_theta(hf: dict):
    """RoPE's base: `rope_theta` (transformers 4) or `rope_parameters` (transformers 5)."""
    rope = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    if not isinstance(rope, dict):
        raise ContextlensError(f"rope_parameters is {rope!r}; expected an object ({{…}})")
    kind = rope.get("rope_type", rope.get("type", "default"))
    if kind != "default":
        raise ContextlensError(f"RoPE scaling {kind!r} is not supported (only plain RoPE)")
    for value in (hf.get("rope_theta"), rope.get("rope_theta")):
        if value is not None:
            return value
    return 10000.0


def config(hf: dict) -> TransformerConfig:
    values = from_hf(hf, KEYS, DEFAULTS)
    if values["n_kv_heads"] is None:  # no grouping: one key/value head per query head
        values["n_kv_heads"] = values["n_heads"]
    return TransformerConfig(
        architecture="llama",
        **values | {"rope_theta": rope_theta(hf)},
        position="rope",
        norm="rmsnorm",
        pre_norm=True,
        activation=hf_activation(hf.get("hidden_act", "silu")),
        gated_mlp=True,
        causal=True,
        final_norm=True,
        lm_head=True,
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

# checkpoint tensors a Llama file may hold that contextlens does not use (shell patterns)
UNUSED = (
    "layers.*.self_attn.rotary_emb.inv_freq",  # RoPE's frequencies, saved by old transformers
    "rotary_emb.inv_freq",  # the same, shared by all layers
)
