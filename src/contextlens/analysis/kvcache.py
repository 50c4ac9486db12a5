"""How much memory the KV cache takes: bytes per token and per context length for multi-head
(MHA), grouped-query (GQA), multi-query (MQA) and multi-head latent attention (MLA).

Per token, every layer caches (b = bytes per number):
    MHA  2·L·H·d_h·b        a key and a value for each of the H heads
    GQA  2·L·H_kv·d_h·b     for each of H_kv key/value heads, shared by groups of query heads
    MQA  2·L·d_h·b          one key/value head shared by all
    MLA  L·(d_c + d_r)·b    the compressed latent c_KV and the one-head RoPE key
For an MLA model, keys (d_qk = nope + rope) and values (d_v) differ in width: its MHA counterpart
keeps both, d_h = (d_qk + d_v) / 2.
"""

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch

from ..errors import ContextlensError
from ..lm import LanguageModel
from ..models.transformer import TransformerConfig, is_int
from ..nn.attention import Latent, LatentAttention, attention_mask
from ..nn.layers import RMSNorm

NAMED = {  # name -> the published config.json values shipped in contextlens/data
    "smollm2-135m": "config-smollm2-135m.json",
    "llama-3-8b": "config-llama-3-8b.json",
    "qwen2.5-7b": "config-qwen2.5-7b.json",
    "deepseek-v3": "config-deepseek-v3.json",
}
BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "float8": 1}
CONTEXTS = (4096, 32768, 131072)


@dataclass(frozen=True)
class CacheShape:
    """What the cache size depends on: layers L, query heads H, key/value heads H_kv, head width
    d_h (keys d_k, values d_v), the latent d_c and RoPE key d_r (MLA only), bytes per number b."""

    name: str
    layers: int
    heads: int
    kv_heads: int
    key_dim: int
    value_dim: int
    bytes_per_value: int
    dtype: str
    kv_rank: int | None = None
    rope_dim: int | None = None
    max_positions: int | None = None

    @property
    def head_dim(self) -> float:
        return (self.key_dim + self.value_dim) / 2

    @property
    def native(self) -> str:
        """The variant the model itself uses."""
        if self.kv_rank is not None:
            return "MLA"
        return "MHA" if self.kv_heads == self.heads else "MQA" if self.kv_heads == 1 else "GQA"


@dataclass(frozen=True)
class Variant:
    name: str  # MHA, GQA, MQA, MLA
    formula: str  # e.g. "2·L·H_kv·d_h·b"
    numbers: str  # the same with the values: "2·30·3·64·2"
    bytes_per_token: int
    bytes_at: dict[int, int]  # context length -> bytes for one sequence
    times_native: float  # bytes / the bytes of the variant the model uses


@dataclass(frozen=True)
class KVCacheReport:
    shape: CacheShape
    native: str
    contexts: list[int]
    variants: list[Variant]


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def variants(c: CacheShape) -> list[tuple[str, str, str, int]]:
    """(name, formula, numbers, bytes per token) of each variant that applies to `c`."""
    L, b, d = c.layers, c.bytes_per_value, c.key_dim + c.value_dim  # noqa: N806
    rows = [("MHA", "2·L·H·d_h·b", f"2·{L}·{c.heads}·{_fmt(c.head_dim)}·{b}", L * c.heads * d * b)]
    if 1 < c.kv_heads < c.heads:
        rows.append(
            (
                "GQA",
                "2·L·H_kv·d_h·b",
                f"2·{L}·{c.kv_heads}·{_fmt(c.head_dim)}·{b}",
                L * c.kv_heads * d * b,
            )
        )
    rows.append(("MQA", "2·L·d_h·b", f"2·{L}·{_fmt(c.head_dim)}·{b}", L * d * b))
    if c.kv_rank is not None:
        width = c.kv_rank + c.rope_dim
        rows.append(("MLA", "L·(d_c+d_r)·b", f"{L}·({c.kv_rank}+{c.rope_dim})·{b}", L * width * b))
    return rows


def report(shape: CacheShape, contexts: list[int] | None = None) -> KVCacheReport:
    """The cache of every variant for `shape`, per token and at each context length."""
    contexts = sorted(set(contexts or CONTEXTS))
    if any(not is_int(n) or n <= 0 for n in contexts):
        raise ContextlensError(f"context lengths must be positive integers, got {contexts}")
    rows = variants(shape)
    own = next(per for name, _, _, per in rows if name == shape.native)
    return KVCacheReport(
        shape,
        shape.native,
        contexts,
        [
            Variant(name, formula, numbers, per, {n: per * n for n in contexts}, per / own)
            for name, formula, numbers, per in rows
        ],
    )


def _bytes(dtype: str, source: str) -> int:
    name = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "fp8": "float8"}.get(
        dtype, dtype
    )
    if name not in BYTES:
        raise ContextlensError(
            f"{source}: dtype {dtype!r} is not one of {', '.join(BYTES)}; pass --dtype"
        )
    return BYTES[name]


def of_config(cfg: TransformerConfig, name: str, dtype: torch.dtype) -> CacheShape:
    """The cache shape of a loaded model's configuration, in the dtype it computes in."""
    dtype_name = str(dtype).removeprefix("torch.")
    lat = cfg.latent
    return CacheShape(
        name=name,
        layers=cfg.n_layers,
        heads=cfg.n_heads,
        kv_heads=cfg.n_kv_heads,
        key_dim=lat.qk_dim if lat else cfg.head_dim,
        value_dim=lat.v_dim if lat else cfg.head_dim,
        bytes_per_value=_bytes(dtype_name, name),
        dtype=dtype_name,
        kv_rank=lat.kv_rank if lat else None,
        rope_dim=lat.rope_dim if lat else None,
        max_positions=cfg.max_positions,
    )


def of_model(lm: LanguageModel, dtype: str | None = None) -> CacheShape:
    shape = of_config(lm.config, lm.name, lm.dtype)
    if dtype is None:
        return shape
    return CacheShape(
        **{**shape.__dict__, "dtype": dtype, "bytes_per_value": _bytes(dtype, lm.name)}
    )


def of_hf_config(hf: dict, name: str, dtype: str | None = None) -> CacheShape:
    """The cache shape a Hugging Face config.json describes (any decoder family)."""

    def count(key: str, default=None) -> int:
        value = hf.get(key, default)
        if not is_int(value) or value <= 0:
            raise ContextlensError(f"{name}: {key!r} is {value!r}; expected a positive integer")
        return value

    heads = count("num_attention_heads")
    mla = hf.get("kv_lora_rank") is not None
    head_dim = (
        None if mla else count("head_dim", hf.get("head_dim") or count("hidden_size") // heads)
    )
    dtype = dtype or hf.get("torch_dtype") or hf.get("dtype") or "float32"
    return CacheShape(
        name=name,
        layers=count("num_hidden_layers"),
        heads=heads,
        kv_heads=heads
        if mla
        else count("num_key_value_heads", hf.get("num_key_value_heads") or heads),
        key_dim=count("qk_nope_head_dim") + count("qk_rope_head_dim") if mla else head_dim,
        value_dim=count("v_head_dim") if mla else head_dim,
        bytes_per_value=_bytes(dtype, name),
        dtype=dtype,
        kv_rank=count("kv_lora_rank") if mla else None,
        rope_dim=count("qk_rope_head_dim") if mla else None,
        max_positions=hf.get("max_position_embeddings"),
    )


def load_config(source: str | Path, dtype: str | None = None) -> CacheShape:
    """A named configuration (see NAMED) or the path of a config.json."""
    if str(source) in NAMED:
        text = resources.files("contextlens.data").joinpath(NAMED[str(source)]).read_text()
        return of_hf_config(json.loads(text), str(source), dtype)
    path = Path(source)
    if not path.is_file():
        raise ContextlensError(
            f"{source!r} is neither a named configuration ({', '.join(NAMED)}) nor a file; "
            "give a config.json path or one of those names"
        )
    try:
        hf = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ContextlensError(f"{path}: not a JSON config ({e}); give a config.json") from None
    if not isinstance(hf, dict):
        raise ContextlensError(f"{path}: expected a JSON object (a config.json)")
    return of_hf_config(hf, path.name, dtype)


# ── teaching: what MLA caches vs what GQA caches, for one sentence ─────────────────────────────


@dataclass(frozen=True)
class LatentDemo:
    """One sentence through a GQA model, and one latent-attention layer of the same width."""

    model: str
    tokens: list[str]
    gqa_cache: list[int]  # the shape the model's KV cache fills: [L, 2, H_kv, tokens, d_h]
    gqa_bytes: int
    mla_cache: list[int]  # an MLA layer's: [L, tokens, d_c + d_r]
    mla_bytes: int
    mla_widths: dict[str, int]  # heads, d_c, d_r, nope, v
    layer: int  # whose hidden states enter the MLA layer
    naive: list[float]  # the last token's attention (head 0) over the tokens, naive path
    absorbed: list[float]  # the same through the absorbed path
    max_difference: float  # the largest |naive - absorbed| over all heads and tokens


def latent_demo(lm: LanguageModel, text: str, layer: int = 1, seed: int = 0) -> LatentDemo:
    """Run `text` through `lm` (a GQA decoder), fill its real KV cache, and feed layer `layer`'s
    hidden states to a randomly initialised (seeded) MLA layer with DeepSeek-V3's proportions
    scaled to the model's width: its cache, and its attention through both paths."""
    lm.require_decoder("the latent-attention demo")
    cfg = lm.config
    ids = torch.tensor([lm.tokenize(text).ids])
    n = ids.shape[1]
    cache = lm.model.new_cache(1, n)
    with torch.inference_mode():
        trace = lm.trace(text, attentions=False)
        lm.model(ids, cache=cache)
    torch.manual_seed(seed)
    head_dim = cfg.head_dim
    dims = Latent(kv_rank=4 * head_dim, rope_dim=head_dim // 2, nope_dim=head_dim, v_dim=head_dim)
    rope = dims.rope(cfg.rope_theta, n)
    norm = RMSNorm(dims.kv_rank, 1e-6)
    mla = LatentAttention(cfg.d_model, cfg.n_heads, dims, rope, None, norm, dims.scale)
    for p in mla.parameters():
        if p.ndim == 2:
            torch.nn.init.normal_(p, std=cfg.d_model**-0.5)
    x = trace.hidden_states[layer][None].float()  # [1, n, d]
    mask = attention_mask(None, True, n, n, torch.float32)
    weights = {}
    with torch.inference_mode():
        for path in ("naive", "absorbed"):
            mla.absorbed = path == "absorbed"
            slot = torch.empty(1, cfg.n_heads, n, n)
            q, latent = mla.queries(x, torch.arange(n)), mla.latent(x, torch.arange(n))
            attend = mla.attend_absorbed if mla.absorbed else mla.attend_naive
            attend(q, latent, mask, slot)
            weights[path] = slot[0]
    element = torch.finfo(lm.dtype).bits // 8
    width = dims.kv_rank + dims.rope_dim
    return LatentDemo(
        model=lm.name,
        tokens=[
            text[a:b] or token for token, (a, b) in zip(trace.tokens, trace.offsets, strict=True)
        ],
        gqa_cache=[cfg.n_layers, 2, cfg.n_kv_heads, n, head_dim],
        gqa_bytes=cache.nbytes,
        mla_cache=[cfg.n_layers, n, width],
        mla_bytes=cfg.n_layers * n * width * element,
        mla_widths={
            "heads": cfg.n_heads,
            "d_c": dims.kv_rank,
            "d_r": dims.rope_dim,
            "nope": dims.nope_dim,
            "v": dims.v_dim,
        },
        layer=layer,
        naive=weights["naive"][0, -1].tolist(),
        absorbed=weights["absorbed"][0, -1].tolist(),
        max_difference=float((weights["naive"] - weights["absorbed"]).abs().max()),
    )


__all__ = [
    "NAMED",
    "CacheShape",
    "KVCacheReport",
    "LatentDemo",
    "Variant",
    "latent_demo",
    "load_config",
    "of_config",
    "of_hf_config",
    "of_model",
    "report",
]
