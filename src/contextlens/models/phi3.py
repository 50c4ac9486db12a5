"""Phi-3 (Abdin et al. 2024): Llama with Q, K and V stored as one fused `qkv_proj` and the MLP's
gate and up projections as one `gate_up_proj` (gate first), and an optional sliding window."""

from ..errors import ContextlensError
from . import llama
from .transformer import TransformerConfig

KEYS, DEFAULTS = llama.KEYS, llama.DEFAULTS


def config(hf: dict) -> TransformerConfig:
    rope = hf.get("rope_parameters") or {}
    partial = hf.get("partial_rotary_factor", rope.get("partial_rotary_factor", 1.0))
    if partial != 1.0:
        raise ContextlensError(
            f"partial_rotary_factor is {partial!r}; only RoPE over the whole head (1.0) is "
            "supported"
        )
    settings = llama.window_settings(hf)
    return llama.decoder_config(hf, KEYS, DEFAULTS, architecture="phi3", **settings)


PREFIXES, WEIGHTS, LAYER_PREFIX = llama.PREFIXES, llama.WEIGHTS, llama.LAYER_PREFIX
FUSED = {
    "attn.qkv.weight": "self_attn.qkv_proj.weight",
    "attn.out.weight": "self_attn.o_proj.weight",
    "mlp.up.weight": "mlp.gate_up_proj.weight",  # gate first, as nn.MLP splits it
    "mlp.down.weight": "mlp.down_proj.weight",
}
LAYER_WEIGHTS = FUSED | llama.NORMS
UNUSED = llama.UNUSED
