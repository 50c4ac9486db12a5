"""Gemma 3 (Gemma Team 2025), text model: Gemma 2 with an RMSNorm (1 + w) over each head's
queries and keys instead of attention soft-capping, five windowed layers to one global one
(`layer_types`, or `sliding_window_pattern`), and RoPE of another base on the windowed layers."""

from ..errors import ContextlensError
from . import gemma2, llama
from .transformer import TransformerConfig

KEYS = gemma2.KEYS | {"rope_theta": "rope_theta", "rope_local_theta": "rope_local_base_freq"}
DEFAULTS = gemma2.DEFAULTS


def rope_bases(hf: dict) -> dict:
    """The global and the local RoPE base: `rope_parameters` per layer type (transformers 5) or
    `rope_theta` and `rope_local_base_freq` (transformers 4)."""
    params = hf.get("rope_parameters")
    if isinstance(params, dict) and "full_attention" in params:
        if not all(isinstance(params.get(k, {}), dict) for k in llama.LAYER_TYPES):
            raise ContextlensError(
                f"rope_parameters is {params!r}; expected an object per layer type"
            )
        full = {"rope_parameters": params["full_attention"]}
        local = {"rope_parameters": params.get("sliding_attention", {})}
        return dict(
            rope_theta=llama.rope_theta(full, 1e6), rope_local_theta=llama.rope_theta(local)
        )
    return dict(
        rope_theta=llama.rope_theta(hf, 1e6), rope_local_theta=hf.get("rope_local_base_freq", 1e4)
    )


def config(hf: dict) -> TransformerConfig:
    pattern = hf.get("sliding_window_pattern", 6)
    return llama.decoder_config(
        hf,
        KEYS,
        DEFAULTS,
        architecture="gemma3",
        qk_norm=True,
        logit_softcap=hf.get("final_logit_softcapping"),
        **gemma2.gemma_settings(hf) | rope_bases(hf),
        **llama.window_settings(hf, lambda i: (i + 1) % pattern != 0),
    )


PREFIXES, WEIGHTS, LAYER_PREFIX = llama.PREFIXES, llama.WEIGHTS, llama.LAYER_PREFIX
LAYER_WEIGHTS = gemma2.LAYER_WEIGHTS | {
    "attn.q_norm.weight": "self_attn.q_norm.weight",
    "attn.k_norm.weight": "self_attn.k_norm.weight",
}
UNUSED = llama.UNUSED
