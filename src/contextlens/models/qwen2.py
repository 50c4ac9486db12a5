"""Qwen2 and Qwen2.5 (Yang et al. 2024): Llama with biases on the Q, K and V projections (none on
the output or the MLP), and, if `use_sliding_window`, a window on the layers from
`max_window_layers` on (or those `layer_types` names)."""

from ..errors import ContextlensError
from . import llama
from .transformer import TransformerConfig, is_int

KEYS = {k: v for k, v in llama.KEYS.items() if k not in ("bias", "out_bias", "mlp_bias")}
DEFAULTS = llama.DEFAULTS


def window_settings(hf: dict) -> dict:
    """The window, only where `use_sliding_window` turns it on (Qwen's config.json keeps a
    `sliding_window` value either way)."""
    if not hf.get("use_sliding_window"):
        return {}
    first = hf.get("max_window_layers", 0)
    if not is_int(first):
        raise ContextlensError(
            f"config.json 'max_window_layers' is {first!r}; expected an integer (the first "
            "layer with the window)"
        )
    return llama.window_settings(hf, lambda i: i >= first)


def config(hf: dict) -> TransformerConfig:
    biases = {"bias": True, "out_bias": False, "mlp_bias": False}  # on Q, K and V only
    settings = biases | window_settings(hf)
    return llama.decoder_config(hf, KEYS, DEFAULTS, architecture="qwen2", **settings)


PREFIXES, WEIGHTS, LAYER_PREFIX = llama.PREFIXES, llama.WEIGHTS, llama.LAYER_PREFIX
LAYER_WEIGHTS, UNUSED = llama.LAYER_WEIGHTS, llama.UNUSED
