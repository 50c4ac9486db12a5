"""Mistral (Jiang et al. 2023): Llama with a sliding window on every layer (`sliding_window`,
null in later versions) and, in some versions, heads wider than d_model / n_heads."""

from . import llama
from .transformer import TransformerConfig

KEYS, DEFAULTS = llama.KEYS, llama.DEFAULTS


def config(hf: dict) -> TransformerConfig:
    settings = llama.window_settings(hf)
    return llama.decoder_config(hf, KEYS, DEFAULTS, architecture="mistral", **settings)


PREFIXES, WEIGHTS, LAYER_PREFIX = llama.PREFIXES, llama.WEIGHTS, llama.LAYER_PREFIX
LAYER_WEIGHTS, UNUSED = llama.LAYER_WEIGHTS, llama.UNUSED
