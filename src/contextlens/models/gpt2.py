"""GPT-2 (Radford et al. 2019): learned positions, pre-norm LayerNorm blocks, tanh-GELU, one fused
Q/K/V projection stored as a Conv1D (weight [in, out], transposed here), tied LM head."""

import torch

from .transformer import TransformerConfig, hf_activation


def config(hf: dict) -> TransformerConfig:
    d = hf["n_embd"]
    return TransformerConfig(
        architecture="gpt2",
        vocab_size=hf["vocab_size"],
        d_model=d,
        n_layers=hf["n_layer"],
        n_heads=hf["n_head"],
        n_kv_heads=hf["n_head"],
        d_ff=hf.get("n_inner") or 4 * d,
        max_positions=hf["n_positions"],
        position="learned",
        norm="layernorm",
        norm_eps=hf.get("layer_norm_epsilon", 1e-5),
        pre_norm=True,
        activation=hf_activation(hf.get("activation_function", "gelu_new")),
        gated_mlp=False,
        causal=True,
        final_norm=True,
        lm_head=True,
        tie_lm_head=True,
    )


PREFIXES = ("transformer.",)
WEIGHTS = {
    "tok.weight": "wte.weight",
    "pos.weight": "wpe.weight",
    "final_norm.{p}": "ln_f.{p}",
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


def transform(name: str, tensor: torch.Tensor) -> torch.Tensor:
    """Conv1D stores weights as [in, out]; nn.Linear wants [out, in]."""
    conv1d = name.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight"))
    return tensor.T.contiguous() if conv1d else tensor
