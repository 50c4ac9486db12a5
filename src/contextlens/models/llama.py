"""Llama (Touvron et al. 2023), as in SmolLM2: RMSNorm pre-norm blocks, RoPE, grouped-query
attention, SwiGLU MLP, causal, no biases, final norm, (tied) LM head.

The other decoder families (Mistral, Qwen, Gemma, Phi-3) are this with a few settings changed:
`decoder_config` and `window_settings` are shared with their modules."""

from collections.abc import Callable

from ..errors import ContextlensError
from .transformer import TransformerConfig, from_hf, hf_activation, is_int

KEYS = {  # TransformerConfig field -> config.json key
    "vocab_size": "vocab_size",
    "d_model": "hidden_size",
    "n_layers": "num_hidden_layers",
    "n_heads": "num_attention_heads",
    "n_kv_heads": "num_key_value_heads",
    "d_ff": "intermediate_size",
    "max_positions": "max_position_embeddings",
    "norm_eps": "rms_norm_eps",
    "bias": "attention_bias",
    "out_bias": "attention_bias",
    "mlp_bias": "mlp_bias",
    "tie_lm_head": "tie_word_embeddings",
    "declared_head_dim": "head_dim",
}
DEFAULTS = {  # config.json key -> value if absent (None: worked out below)
    "num_key_value_heads": None,
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-6,
    "attention_bias": False,
    "mlp_bias": False,
    "tie_word_embeddings": False,
    "head_dim": None,
}
LAYER_TYPES = ("full_attention", "sliding_attention")  # config.json's `layer_types` entries


def rope_theta(hf: dict, default: float = 10000.0):
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
    return default


def window_settings(hf: dict, sliding: Callable[[int], bool] | None = None) -> dict:
    """`sliding_window` and `window_layers` from config.json: the window applies to the layers
    `layer_types` calls "sliding_attention", or, without that list, to those where `sliding(i)`
    (None: to every layer). No window, or a null one: no settings."""
    window = hf.get("sliding_window")
    if window is None:
        return {}
    types, n = hf.get("layer_types"), hf.get("num_hidden_layers")
    if types is not None:
        if not isinstance(types, list) or any(t not in LAYER_TYPES for t in types):
            raise ContextlensError(
                f"config.json 'layer_types' is {types!r}; expected a list of "
                f"{' / '.join(map(repr, LAYER_TYPES))}, one per layer"
            )
        layers = tuple(i for i, t in enumerate(types) if t == "sliding_attention")
    elif sliding is None or not is_int(n):
        layers = None
    else:
        layers = tuple(i for i in range(n) if sliding(i))
    return {"sliding_window": window, "window_layers": layers}


def decoder_config(hf: dict, keys: dict, defaults: dict, **settings) -> TransformerConfig:
    """A Llama-like decoder: `settings` (fields worked out by the family), the other fields `keys`
    names read from config.json (with `defaults`), and Llama's choices for the rest."""
    values = from_hf(hf, {f: k for f, k in keys.items() if f not in settings}, defaults)
    if values["n_kv_heads"] is None:  # no grouping: one key/value head per query head
        values["n_kv_heads"] = values["n_heads"]
    llama = dict(
        position="rope",
        norm="rmsnorm",
        pre_norm=True,
        activation=hf_activation(hf.get("hidden_act", "silu")),
        gated_mlp=True,
        causal=True,
        final_norm=True,
        lm_head=True,
    )
    if "rope_theta" not in settings:  # a family with its own RoPE scaling works out its base
        llama["rope_theta"] = rope_theta(hf)
    return TransformerConfig(**llama | values | settings)


def config(hf: dict) -> TransformerConfig:
    return decoder_config(hf, KEYS, DEFAULTS, architecture="llama")


PREFIXES = ("model.",)
WEIGHTS = {
    "tok.weight": "embed_tokens.weight",
    "final_norm.weight": "norm.weight",
    "lm_head.weight": "lm_head.weight",
}
LAYER_PREFIX = "layers.{i}."
ATTENTION = {
    "attn.qkv.{p}": [f"self_attn.{n}_proj.{{p}}" for n in "qkv"],
    "attn.out.{p}": "self_attn.o_proj.{p}",
}
NORMS = {
    "norm1.weight": "input_layernorm.weight",
    "norm2.weight": "post_attention_layernorm.weight",
}
MLP = {
    "mlp.up.{p}": ["mlp.gate_proj.{p}", "mlp.up_proj.{p}"],  # gate first: see nn.MLP
    "mlp.down.{p}": "mlp.down_proj.{p}",
}
LAYER_WEIGHTS = ATTENTION | NORMS | MLP  # the families take the parts they share with Llama

# checkpoint tensors a Llama file may hold that contextlens does not use (shell patterns)
UNUSED = (
    "layers.*.self_attn.rotary_emb.inv_freq",  # RoPE's frequencies, saved by old transformers
    "rotary_emb.inv_freq",  # the same, shared by all layers
)
