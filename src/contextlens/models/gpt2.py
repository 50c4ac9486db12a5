"""GPT-2 (Radford et al. 2019): learned positions, pre-norm LayerNorm blocks, tanh-GELU, one fused
Q/K/V projection, tied LM head. Hugging Face stores the projections as Conv1D weights, [in, out],
transposed here; a GGUF file stores them as nn.Linear wants them, [out, in], and `models.build`
leaves them be."""

import torch

from . import bert
from .transformer import TransformerConfig, from_hf, hf_activation, is_int

KEYS = {  # TransformerConfig field -> config.json key
    "vocab_size": "vocab_size",
    "d_model": "n_embd",
    "n_layers": "n_layer",
    "n_heads": "n_head",
    "n_kv_heads": "n_head",
    "d_ff": "n_inner",
    "max_positions": "n_positions",
    "norm_eps": "layer_norm_epsilon",
    "tie_lm_head": "tie_word_embeddings",
}
DEFAULTS = {"n_inner": None, "layer_norm_epsilon": 1e-5, "tie_word_embeddings": True}
GPT2 = bert.LEARNED | {"pre_norm": True, "causal": True, "final_norm": True, "lm_head": True}


def config(hf: dict) -> TransformerConfig:
    values = from_hf(hf, KEYS, DEFAULTS)
    d = values["d_model"]
    if values["d_ff"] is None and is_int(d):  # GPT-2's MLP is 4 × as wide as the model
        values["d_ff"] = 4 * d
    activation = hf_activation(hf.get("activation_function", "gelu_new"))
    return TransformerConfig(architecture="gpt2", activation=activation, **values | GPT2)


PREFIXES = ("transformer.",)
WEIGHTS = {
    "tok.weight": "wte.weight",
    "pos.weight": "wpe.weight",
    "final_norm.{p}": "ln_f.{p}",
    "lm_head.weight": "lm_head.weight",
}
LAYER_PREFIX = "h.{i}."
LAYER_WEIGHTS = {
    "norm1.{p}": "ln_1.{p}",
    "attn.qkv.{p}": "attn.c_attn.{p}",
    "attn.out.{p}": "attn.c_proj.{p}",
    "norm2.{p}": "ln_2.{p}",
    "mlp.up.{p}": "mlp.c_fc.{p}",
    "mlp.down.{p}": "mlp.c_proj.{p}",
}

# checkpoint tensors a GPT-2 file may hold that contextlens does not use (shell patterns)
UNUSED = (
    "h.*.attn.bias",  # the causal mask, saved as a buffer by older transformers
    "h.*.attn.masked_bias",  # the value masked scores took there
)


def transform(name: str, tensor: torch.Tensor) -> torch.Tensor:
    """A Hugging Face checkpoint's Conv1D weight [in, out] -> nn.Linear's [out, in]."""
    conv1d = name.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight"))
    return tensor.T.contiguous() if conv1d else tensor
