"""DeepSeek-V2 and V3 (DeepSeek-AI 2024): Llama-like pre-norm decoders whose attention is
multi-head latent attention (nn.attention.LatentAttention, RoPE with YaRN scaling) and whose MLPs,
after the first `first_k_dense_replace` layers, are mixtures of experts (nn.moe.MoE).

V2 and V3 differ in the router (softmax vs sigmoid scores with a correction bias, groups ranked
by their best score vs their best two) and in how RoPE pairs channels (V2: always adjacent
pairs, its complex form; V3: adjacent if `rope_interleave`, else half a head apart). A config is
V3's if its model_type says so or its router scores with a sigmoid (`scoring_func`, as
DeepSeek's own config.json and llama.cpp's "deepseek2" files say it).
"""

import torch

from ..errors import ContextlensError
from ..nn.attention import Latent
from ..nn.moe import MoEConfig
from ..nn.positions import YaRN
from . import llama
from .transformer import TransformerConfig, is_int

# Llama's keys, but every head has its own keys and values (made from the latent), and the head
# width is the latent's, not config.json's head_dim
KEYS = {f: k for f, k in llama.KEYS.items() if f != "declared_head_dim"} | {
    "n_kv_heads": "num_attention_heads"
}
DEFAULTS = {k: v for k, v in llama.DEFAULTS.items() if v is not None}
LATENT_KEYS = {  # Latent field -> config.json key; each a positive integer
    "kv_rank": "kv_lora_rank",
    "rope_dim": "qk_rope_head_dim",
    "nope_dim": "qk_nope_head_dim",
    "v_dim": "v_head_dim",
}


def _count(hf: dict, key: str) -> int:
    value = hf[key]
    if not is_int(value) or value <= 0:
        raise ContextlensError(f"config.json {key!r} is {value!r}; expected a positive integer")
    return value


def rope(hf: dict) -> tuple[float, YaRN | None]:
    """RoPE's base and its YaRN scaling, if any (`rope_parameters`, or the older `rope_scaling`
    and `rope_theta`)."""
    params = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    if not isinstance(params, dict):
        raise ContextlensError(f"rope_parameters is {params!r}; expected an object ({{…}})")
    theta = params.get("rope_theta", hf.get("rope_theta")) or 10000.0
    kind = params.get("rope_type", params.get("type", "default"))
    if kind == "default":
        return theta, None
    if kind != "yarn":
        raise ContextlensError(f"RoPE scaling {kind!r} is not supported; supported: yarn")
    original = params["original_max_position_embeddings"]
    factor = params.get("factor") or hf["max_position_embeddings"] / original
    yarn = YaRN(
        factor=factor,
        original_max=original,
        beta_fast=params.get("beta_fast") or 32.0,
        beta_slow=params.get("beta_slow") or 1.0,
        mscale=params.get("mscale") or 0.0,
        mscale_all_dim=params.get("mscale_all_dim") or 0.0,
    )
    return theta, yarn


def is_v3(hf: dict) -> bool:
    return hf["model_type"] == "deepseek_v3" or hf.get("scoring_func") == "sigmoid"


def latent(hf: dict, yarn: YaRN | None) -> Latent:
    dims = {field: _count(hf, key) for field, key in LATENT_KEYS.items()}
    if dims["rope_dim"] % 2:
        raise ContextlensError(
            f"config.json 'qk_rope_head_dim' is {dims['rope_dim']}; expected an even width, "
            "for RoPE to rotate pairs"
        )
    q_rank = None if hf.get("q_lora_rank") is None else _count(hf, "q_lora_rank")
    v3 = is_v3(hf)
    interleaved = bool(hf.get("rope_interleave", True)) if v3 else True
    return Latent(**dims, q_rank=q_rank, interleaved=interleaved, yarn=yarn)


def moe(hf: dict) -> MoEConfig | None:
    """The experts, or None for a model without them."""
    if not hf.get("n_routed_experts"):
        return None
    v3 = is_v3(hf)
    limited = v3 or hf.get("topk_method", "greedy") == "group_limited_greedy"
    n_experts = _count(hf, "n_routed_experts")
    n_group = _count(hf, "n_group") if limited and hf.get("n_group") else 1
    if n_experts % n_group:
        raise ContextlensError(
            f"config.json 'n_group' is {n_group}; expected a divisor of 'n_routed_experts' "
            f"({n_experts})"
        )
    return MoEConfig(
        n_experts=n_experts,
        top_k=_count(hf, "num_experts_per_tok"),
        d_ff=_count(hf, "moe_intermediate_size"),
        n_shared=hf.get("n_shared_experts") or 0,
        scoring="sigmoid" if v3 else "softmax",
        group_score="top2" if v3 else "max",
        n_group=n_group,
        topk_group=_count(hf, "topk_group") if n_group > 1 else 1,
        norm_topk_prob=bool(hf.get("norm_topk_prob", False)),
        routed_scaling_factor=float(hf.get("routed_scaling_factor") or 1.0),
        correction_bias=v3,
        first_dense=hf.get("first_k_dense_replace") or 0,
    )


def config(hf: dict) -> TransformerConfig:
    """A Llama-like decoder whose attention is latent (MLA) and whose MLPs are experts."""
    theta, yarn = rope(hf)
    settings = {"rope_theta": theta, "latent": latent(hf, yarn), "moe": moe(hf)}
    return llama.decoder_config(hf, KEYS, DEFAULTS, architecture=hf["model_type"], **settings)


PREFIXES, WEIGHTS, LAYER_PREFIX = llama.PREFIXES, llama.WEIGHTS, llama.LAYER_PREFIX
LAYER_WEIGHTS = {
    "attn.q.weight": "self_attn.q_proj.weight",
    "attn.q_a.{p}": "self_attn.q_a_proj.{p}",
    "attn.q_norm.weight": "self_attn.q_a_layernorm.weight",
    "attn.q_b.weight": "self_attn.q_b_proj.weight",
    "attn.kv_a.{p}": "self_attn.kv_a_proj_with_mqa.{p}",
    "attn.kv_norm.weight": "self_attn.kv_a_layernorm.weight",
    "attn.kv_b.weight": "self_attn.kv_b_proj.weight",
    "attn.out.{p}": "self_attn.o_proj.{p}",
    **llama.NORMS,
    **llama.MLP,
    "mlp.router.proj.weight": "mlp.gate.weight",
    "mlp.router.bias": "mlp.gate.e_score_correction_bias",
    "mlp.shared.up.weight": [
        "mlp.shared_experts.gate_proj.weight",
        "mlp.shared_experts.up_proj.weight",
    ],
    "mlp.shared.down.weight": "mlp.shared_experts.down_proj.weight",
}


def layer_weights(cfg: TransformerConfig) -> dict:
    """LAYER_WEIGHTS with each routed expert's gated MLP (their number is the config's)."""
    experts = {}
    for e in range(cfg.moe.n_experts if cfg.moe else 0):
        theirs = f"mlp.experts.{e}"
        experts[f"{theirs}.up.weight"] = [f"{theirs}.gate_proj.weight", f"{theirs}.up_proj.weight"]
        experts[f"{theirs}.down.weight"] = f"{theirs}.down_proj.weight"
    return LAYER_WEIGHTS | experts


UNUSED = ("layers.*.self_attn.rotary_emb.inv_freq",)


def regroup(tensors: dict, cfg: TransformerConfig) -> dict:
    """A llama.cpp file's tensors under this module's checkpoint names: routed experts stored
    stacked (`mlp.experts.gate_proj.weight` [experts, rows, cols]) become one tensor per expert;
    kv_b stored split (`k_b_proj` [heads, d_c, nope], `v_b_proj` [heads, v, d_c]) becomes
    `kv_b_proj` [heads·(nope + v), d_c] (kept as is where the file holds it too); the correction
    bias takes its checkpoint name. Hugging Face checkpoints pass through unchanged."""
    out = {}
    for name, t in tensors.items():
        layer, _, rest = name.rpartition("mlp.experts.")
        if layer and rest.count(".") == 1:  # stacked: "<proj>.weight"
            out |= {f"{layer}mlp.experts.{e}.{rest}": t[e] for e in range(t.shape[0])}
        elif name.endswith("mlp.gate.e_score_correction.bias"):
            out[name.removesuffix(".bias") + "_bias"] = t
        elif not name.endswith(("self_attn.k_b_proj.weight", "self_attn.v_b_proj.weight")):
            out[name] = t
    for name in [n for n in tensors if n.endswith("self_attn.k_b_proj.weight")]:
        kv_b = name.replace("k_b_proj", "kv_b_proj")
        if kv_b not in out:
            k_b, v_b = tensors[name], tensors[name.replace("k_b_proj", "v_b_proj")]
            out[kv_b] = torch.cat((k_b.transpose(1, 2), v_b), dim=1).flatten(0, 1)
    return out
