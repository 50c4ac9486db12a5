"""Qwen3 (Yang et al. 2025): Llama with an RMSNorm over each head's queries and keys before RoPE,
heads of their own width (`head_dim`), optional attention biases, and Qwen2's sliding window."""

from . import llama, qwen2
from .transformer import TransformerConfig

KEYS, DEFAULTS = llama.KEYS, llama.DEFAULTS


def config(hf: dict) -> TransformerConfig:
    return llama.decoder_config(
        hf, KEYS, DEFAULTS, architecture="qwen3", qk_norm=True, **qwen2.window_settings(hf)
    )


PREFIXES, WEIGHTS, LAYER_PREFIX = llama.PREFIXES, llama.WEIGHTS, llama.LAYER_PREFIX
LAYER_WEIGHTS = llama.LAYER_WEIGHTS | {
    "attn.q_norm.weight": "self_attn.q_norm.weight",
    "attn.k_norm.weight": "self_attn.k_norm.weight",
}
UNUSED = llama.UNUSED
