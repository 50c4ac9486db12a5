"""Gemma 2 (Gemma Team 2024): a Llama-like decoder with token rows scaled by √d_model, RMSNorms
that scale by (1 + w), a norm before and after both attention and the MLP, a tanh-GELU gated MLP,
scores scaled by query_pre_attn_scalar^-½, soft-capped attention scores and logits, and a sliding
window on every other layer (the first, third, …); heads of their own width (`head_dim`)."""

from ..errors import ContextlensError
from . import llama
from .transformer import TransformerConfig, hf_activation, is_int

KEYS = llama.KEYS | {
    "attn_softcap": "attn_logit_softcapping",
    "logit_softcap": "final_logit_softcapping",
}
DEFAULTS = llama.DEFAULTS | {"tie_word_embeddings": True}


def positive(hf: dict, key: str, default: float) -> float:
    """A number > 0 from config.json, or one clear error naming the key."""
    value = hf.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ContextlensError(f"config.json {key!r} is {value!r}; expected a number > 0")
    return value


def gemma_settings(hf: dict) -> dict:
    """What Gemma 2 and 3 share, on top of Llama."""
    d = hf.get("hidden_size")
    return dict(
        norm="rmsnorm_plus_one",
        post_norms=True,
        activation=hf_activation(
            hf.get("hidden_activation") or hf.get("hidden_act", "gelu_pytorch_tanh")
        ),
        embedding_scale=d**0.5 if is_int(d) and d > 0 else None,
        attn_scale=positive(hf, "query_pre_attn_scalar", 256) ** -0.5,
    )


def config(hf: dict) -> TransformerConfig:
    caps = {  # absent: Gemma 2's own caps; null: none
        "attn_softcap": hf.get("attn_logit_softcapping", 50.0),
        "logit_softcap": hf.get("final_logit_softcapping", 30.0),
    }
    settings = caps | gemma_settings(hf) | llama.window_settings(hf, lambda i: i % 2 == 0)
    return llama.decoder_config(hf, KEYS, DEFAULTS, architecture="gemma2", **settings)


PREFIXES, WEIGHTS, LAYER_PREFIX = llama.PREFIXES, llama.WEIGHTS, llama.LAYER_PREFIX
LAYER_WEIGHTS = llama.ATTENTION | {
    "norm1.weight": "input_layernorm.weight",
    "post_attn_norm.weight": "post_attention_layernorm.weight",
    "norm2.weight": "pre_feedforward_layernorm.weight",
    "post_mlp_norm.weight": "post_feedforward_layernorm.weight",
    "mlp.up.weight": ["mlp.gate_proj.weight", "mlp.up_proj.weight"],  # gate first: see nn.MLP
    "mlp.down.weight": "mlp.down_proj.weight",
}
UNUSED = llama.UNUSED
