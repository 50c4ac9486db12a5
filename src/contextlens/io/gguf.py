"""llama.cpp's GGUF files: one file holding the config (as metadata), the weights (often quantised)
and the tokenizer (vocabulary, merges, special tokens, chat template).

`read_gguf(path)` gives what a Hugging Face directory would: a config dict, float32 tensors under
Hugging Face names (matrices in nn.Linear's orientation), and the tokenizer, built with the
`tokenizers` library from the file's own metadata. The `gguf` package dequantises the blocks
(vectorised numpy: SmolLM2-135M loads in a few seconds, so no float cache is kept).

Architectures: llama (and Mistral, which llama.cpp converts as llama), qwen2, qwen3, gemma2,
gemma3, phi3 and gpt2. Every matrix arrives in nn.Linear's [out, in] orientation, as llama.cpp
stores it (GPT-2's Conv1D weights too). llama.cpp's converter changes two things that are undone
here: the rows of Llama's Q and K projections are permuted within each head (it pairs rotary
dimensions as (0, 1), (2, 3), … where Hugging Face pairs (i, i + d/2)), and Gemma's norm weights
are stored plus one.
"""

import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, TokenType
from gguf.quants import dequantize as gguf_dequantize
from tokenizers import AddedToken, decoders, models, pre_tokenizers, processors
from tokenizers import Tokenizer as HFTokenizer

from ..errors import ContextlensError
from .tokenizer import Tokenizer, regex_then_bytes, sentencepiece_bpe, split_regex

MAGIC = b"GGUF"


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of the file: its bytes (a view of the memory map) and how to read them."""

    name: str
    kind: GGMLQuantizationType
    shape: tuple[int, ...]  # numpy/torch order: [rows, cols] (GGUF lists dimensions reversed)
    data: np.ndarray  # uint8 [rows, bytes per row], in the file's block format

    def dequantize(self, source: Path | str = "") -> torch.Tensor:
        """The tensor as float32, shape `self.shape`."""
        try:
            values = gguf_dequantize(self.data, self.kind)
        except NotImplementedError:
            raise ContextlensError(
                f"{source}: tensor {self.name!r} is stored as {self.kind.name}, which the gguf "
                "package cannot dequantise; convert the model to another quantisation (e.g. "
                "Q8_0 or Q4_K)"
            ) from None
        # the mapped F32 data is copy-on-write: copy it (dequantised arrays are new already)
        return torch.from_numpy(np.require(values, np.float32, ["C", "W"])).reshape(self.shape)


@dataclass(frozen=True)
class GGUFFile:
    path: Path
    metadata: dict  # key -> str | int | float | bool | list
    tensors: list[TensorInfo]


# GGUF value types (gguf.GGUFValueType) -> struct format; 8 is a string, 9 an array
SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q"}
SCALARS[12] = "d"
STRING, ARRAY = 8, 9
_U64 = struct.Struct("<Q")


class _Cursor:
    """Reads GGUF's little-endian header fields from a buffer, front to back."""

    def __init__(self, buf: memoryview):
        self.buf, self.pos = buf, 0

    def scalar(self, fmt: str):
        (value,) = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        n = self.scalar("Q")
        if self.pos + n > len(self.buf):
            raise ValueError("a string runs past the end of the file")
        text = str(self.buf[self.pos : self.pos + n], "utf-8")
        self.pos += n
        return text

    def strings(self, count: int) -> list[str]:
        """An array of strings (a vocabulary, merges): the hot loop of reading a header."""
        buf, pos, length, out = self.buf, self.pos, _U64.unpack_from, []
        append = out.append
        for _ in range(count):
            n = length(buf, pos)[0]
            pos += 8
            append(str(buf[pos : pos + n], "utf-8"))
            pos += n
        if pos > len(buf):
            raise ValueError("a string runs past the end of the file")
        self.pos = pos
        return out

    def value(self, kind: int):
        if kind == STRING:
            return self.string()
        if kind == ARRAY:
            item, count = self.scalar("I"), self.scalar("Q")
            if item == STRING:
                return self.strings(count)
            if item not in SCALARS:
                return [self.value(item) for _ in range(count)]
            size = struct.calcsize(SCALARS[item])
            if self.pos + size * count > len(self.buf):
                raise ValueError("an array runs past the end of the file")
            values = np.frombuffer(self.buf, "<" + SCALARS[item], count, self.pos)
            self.pos += size * count
            return values.tolist()
        if kind not in SCALARS:
            raise ValueError(f"unknown value type {kind}")
        return self.scalar(SCALARS[kind])


def open_gguf(path: Path) -> GGUFFile:
    """Parse the header, metadata and tensor table; the tensor data stays memory-mapped
    (copy-on-write: nothing is read until used, and nothing is ever written back)."""
    path = Path(path)
    if not path.is_file():
        raise ContextlensError(f"{path} does not exist or is not a file; give a .gguf file")
    with path.open("rb") as f:
        if f.read(4) != MAGIC:
            raise ContextlensError(
                f"{path} is not a GGUF file (it does not start with the bytes 'GGUF'); give a "
                "llama.cpp .gguf model file"
            )
    data = np.memmap(path, np.uint8, mode="c")
    try:
        c = _Cursor(memoryview(data))
        c.pos = 4
        version, n_tensors, n_kv = c.scalar("I"), c.scalar("Q"), c.scalar("Q")
        if version not in (2, 3):
            raise ValueError(f"GGUF version {version} (contextlens reads versions 2 and 3)")
        meta = {}
        for _ in range(n_kv):
            key = c.string()
            try:
                meta[key] = c.value(c.scalar("I"))
            except UnicodeDecodeError:
                raise ContextlensError(
                    f"{path}: metadata {key!r} holds text that is not UTF-8, so the file is "
                    "corrupt; download or copy it again"
                ) from None
        table = []
        for _ in range(n_tensors):
            name = c.string()
            dims = [c.scalar("Q") for _ in range(c.scalar("I"))]
            table.append((name, GGMLQuantizationType(c.scalar("I")), dims[::-1], c.scalar("Q")))
        align = meta.get("general.alignment", 32)
        start = -(-c.pos // align) * align
        tensors = []
        for name, kind, shape, offset in table:
            per_block, block_bytes = GGML_QUANT_SIZES[kind]
            if shape[-1] % per_block:
                raise ValueError(f"tensor {name!r}: {shape[-1]} values per row")
            rows = int(np.prod(shape[:-1], dtype=np.int64))
            row_bytes = shape[-1] // per_block * block_bytes
            begin = start + offset
            if begin + rows * row_bytes > len(data):
                raise ValueError(f"tensor {name!r} runs past the end of the file")
            raw = data[begin : begin + rows * row_bytes].reshape(rows, row_bytes)
            tensors.append(TensorInfo(name, kind, tuple(shape), raw))
    except (ValueError, IndexError, OverflowError, KeyError, struct.error) as e:
        raise ContextlensError(
            f"{path} is truncated or corrupt ({e}); download or copy the file again"
        ) from None
    return GGUFFile(path, meta, tensors)


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a GGUF file, dequantised to float32, under its llama.cpp name."""
    return {t.name: t.dequantize(path) for t in open_gguf(path).tensors}


# ---- architectures --------------------------------------------------------------------------


SPECIAL_IDS = {"bos": "bos", "eos": "eos", "unk": "unknown", "pad": "padding"}  # HF: llama.cpp


def _special_ids(meta: dict) -> dict:
    return {
        f"{hf}_token_id": meta[f"tokenizer.ggml.{ours}_token_id"]
        for hf, ours in SPECIAL_IDS.items()
        if f"tokenizer.ggml.{ours}_token_id" in meta
    }


# Hugging Face config key -> llama.cpp metadata key, less the "<architecture>." in front
LLAMA_KEYS = {
    "vocab_size": "vocab_size",
    "hidden_size": "embedding_length",
    "intermediate_size": "feed_forward_length",
    "num_hidden_layers": "block_count",
    "num_attention_heads": "attention.head_count",
    "num_key_value_heads": "attention.head_count_kv",
    "max_position_embeddings": "context_length",
    "rms_norm_eps": "attention.layer_norm_rms_epsilon",
    "rope_theta": "rope.freq_base",
    "head_dim": "attention.key_length",
}
WINDOW_KEYS = LLAMA_KEYS | {"sliding_window": "attention.sliding_window"}
GEMMA2_KEYS = WINDOW_KEYS | {
    "attn_logit_softcapping": "attn_logit_softcapping",
    "final_logit_softcapping": "final_logit_softcapping",
}
GPT2_KEYS = {
    "vocab_size": "vocab_size",
    "n_embd": "embedding_length",
    "n_layer": "block_count",
    "n_head": "attention.head_count",
    "n_positions": "context_length",
    "n_ctx": "context_length",
    "n_inner": "feed_forward_length",
    "layer_norm_epsilon": "attention.layer_norm_epsilon",
}
OPTIONAL = {
    "vocab_size",
    "attention.head_count_kv",
    "attention.key_length",
    "attention.sliding_window",
    "rope.freq_base",
    "attn_logit_softcapping",
    "final_logit_softcapping",
}


def _from_metadata(meta: dict, arch: str, keys: dict[str, str]) -> dict:
    """Hugging Face config key -> its metadata value; a missing required key raises KeyError.
    The vocabulary size defaults to the number of tokens."""
    config = {
        hf: meta[f"{arch}.{key}"]
        for hf, key in keys.items()
        if key not in OPTIONAL or f"{arch}.{key}" in meta
    }
    return {"vocab_size": len(meta["tokenizer.ggml.tokens"])} | config


def _check_rotary_width(meta: dict, arch: str, config: dict, source: Path | str) -> None:
    """`rope.dimension_count` (the channels RoPE turns) is the whole head; llama.cpp's partial
    rotation is not supported. (Heads that do not split the width are named by the tensors.)"""
    rotated, heads = meta.get(f"{arch}.rope.dimension_count"), config.get("num_attention_heads")
    width, given = config.get("head_dim"), f"metadata '{arch}.attention.key_length'"
    d = config.get("hidden_size")
    if width is None and all(type(v) is int and v > 0 for v in (d, heads)) and d % heads == 0:
        width = d // heads
        given = f"metadata '{arch}.embedding_length' / metadata '{arch}.attention.head_count'"
    if rotated is not None and width is not None and rotated != width:
        raise ContextlensError(
            f"{source}: metadata '{arch}.rope.dimension_count' is {rotated!r}; expected {given} "
            f"= {width}"
        )


def _decoder_config(meta: dict, tensor_names: set[str], arch: str, keys: dict) -> dict:
    """A Llama-like decoder's config.json, as transformers builds it from the same metadata."""
    config = {
        **_from_metadata(meta, arch, keys),
        "hidden_act": "silu",
        # llama.cpp writes the output projection only when it is not the embedding matrix
        "tie_word_embeddings": "output.weight" not in tensor_names,
    }
    config.setdefault("num_key_value_heads", config["num_attention_heads"])
    config.setdefault("rope_theta", 10000.0)
    scaling = meta.get(f"{arch}.rope.scaling.type", "none")
    if scaling != "none":  # passed on so that the model refuses it rather than ignoring it
        factor = meta[f"{arch}.rope.scaling.factor"]
        config["rope_scaling"] = {"rope_type": scaling, "factor": factor}
    return config | _special_ids(meta)


def _llama_config(meta: dict, tensor_names: set[str]) -> dict:
    """Llama, and Mistral, which llama.cpp converts as Llama."""
    return {"model_type": "llama"} | _decoder_config(meta, tensor_names, "llama", LLAMA_KEYS)


def _qwen_config(arch: str) -> Callable[[dict, set[str]], dict]:
    """Qwen2 and Qwen3: a window where the file gives one, on every layer."""

    def config(meta: dict, tensor_names: set[str]) -> dict:
        config = _decoder_config(meta, tensor_names, arch, WINDOW_KEYS)
        return {"model_type": arch, "use_sliding_window": "sliding_window" in config} | config

    return config


def _phi3_config(meta: dict, tensor_names: set[str]) -> dict:
    """Phi-3: a sliding window of 0 means none (Phi-4)."""
    config = {"model_type": "phi3"} | _decoder_config(meta, tensor_names, "phi3", WINDOW_KEYS)
    if config.get("sliding_window") == 0:
        config["sliding_window"] = None
    return config


def _query_scalar(config: dict) -> int | None:
    """Gemma's query_pre_attn_scalar, which llama.cpp does not store: it scales scores by the
    head width, but for the 27B model (46 layers) by d_model / heads."""
    d, heads = config["hidden_size"], config["num_attention_heads"]
    if not (type(d) is int and type(heads) is int and heads > 0):
        return None  # the config's own checks name the bad value
    if config["num_hidden_layers"] == 46 or config.get("head_dim") is None:
        return d // heads
    return config["head_dim"]


def _gemma_layer_types(meta: dict, arch: str, n_layers, default_period: int) -> list[str] | None:
    """Which layers are windowed: llama.cpp's `attention.sliding_window_pattern` (a period n:
    all but every n-th layer; or one flag per layer), else the family's period."""
    pattern = meta.get(f"{arch}.attention.sliding_window_pattern", default_period)
    if isinstance(pattern, list):
        return ["sliding_attention" if p else "full_attention" for p in pattern]
    if type(n_layers) is not int or type(pattern) is not int or pattern < 1:
        return None
    return [
        "sliding_attention" if i % pattern < pattern - 1 else "full_attention"
        for i in range(n_layers)
    ]


def _gemma_config(arch: str, default_period: int) -> Callable[[dict, set[str]], dict]:
    """Gemma 2 (windows on every other layer) and Gemma 3 (five of six, and a local RoPE base)."""

    def config(meta: dict, tensor_names: set[str]) -> dict:
        config = _decoder_config(meta, tensor_names, arch, GEMMA2_KEYS)
        config |= {
            "model_type": "gemma2" if arch == "gemma2" else "gemma3_text",
            "hidden_activation": "gelu_pytorch_tanh",
            "query_pre_attn_scalar": _query_scalar(config),
            "layer_types": _gemma_layer_types(
                meta, arch, config["num_hidden_layers"], default_period
            ),
        }
        config.setdefault("attn_logit_softcapping", None)  # absent from the file: none
        config.setdefault("final_logit_softcapping", None)
        if arch == "gemma3":
            local = meta.get("gemma3.rope.freq_base_swa", 10000.0)
            config["rope_parameters"] = {
                "full_attention": {"rope_type": "default", "rope_theta": config.pop("rope_theta")},
                "sliding_attention": {"rope_type": "default", "rope_theta": local},
            }
        return config

    return config


def _gpt2_config(meta: dict, tensor_names: set[str]) -> dict:
    """The keys of a Hugging Face GPT-2 config.json."""
    return {
        "model_type": "gpt2",
        **_from_metadata(meta, "gpt2", GPT2_KEYS),
        "activation_function": "gelu_new",
        "tie_word_embeddings": "output.weight" not in tensor_names,
    } | _special_ids(meta)


def unpermute_rotary(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Undo llama.cpp's Q/K row order. Per head, llama.cpp stores rows as (j, a) with a in {0, 1}
    (rotary pairs adjacent); Hugging Face stores (a, j) (pairs half a head apart).
    w: [n_heads * head_dim, ...] (a weight or a bias) -> the same shape."""
    half = w.shape[0] // n_heads // 2
    return w.reshape(n_heads, half, 2, *w.shape[1:]).transpose(1, 2).reshape(w.shape).contiguous()


def _llama_rotary_heads(name: str, config: dict, rows: int) -> int | None:
    """How many heads' rows llama.cpp reordered in this tensor of `rows` rows (None: it did not);
    a head count that does not split the rows into heads of an even width (RoPE rotates pairs)
    is one clear error."""
    for proj, key in (("q_proj", "num_attention_heads"), ("k_proj", "num_key_value_heads")):
        if f".self_attn.{proj}." in name:
            n = config[key]
            if isinstance(n, int) and not isinstance(n, bool) and n > 0 and rows % (2 * n) == 0:
                return n
            raise ContextlensError(
                f"metadata {'llama.' + LLAMA_KEYS[key]!r} is {n!r}, which does not split the "
                f"{rows} rows of {name!r} into heads of an even width; the file is corrupt"
            )
    return None


def _llama_layout(name: str, w: torch.Tensor, config: dict) -> torch.Tensor:
    heads = _llama_rotary_heads(name, config, w.shape[0])
    return w if heads is None else unpermute_rotary(w, heads)


def _as_stored(name: str, w: torch.Tensor, config: dict) -> torch.Tensor:
    return w


def _gemma_layout(name: str, w: torch.Tensor, config: dict) -> torch.Tensor:
    """llama.cpp stores Gemma's norm weights plus one (it scales by w, Gemma by 1 + w)."""
    return w - 1 if name.endswith("norm.weight") else w


@dataclass(frozen=True)
class Architecture:
    """How one llama.cpp architecture maps onto its Hugging Face counterpart. Matrices come in
    nn.Linear's [out, in] orientation, as llama.cpp stores them (GPT-2's Conv1D included)."""

    config: Callable[[dict, set[str]], dict]  # (metadata, tensor names) -> Hugging Face config
    names: dict[str, str]  # llama.cpp tensor (less .weight/.bias) -> Hugging Face name
    layer_names: dict[str, str]  # the same inside layer blocks: "blk.{i}.<key>"
    layer_prefix: str  # the Hugging Face prefix of layer i
    keys: dict[str, str]  # Hugging Face config key -> metadata key, less "<architecture>."
    # (HF name, tensor, config) -> the tensor as Hugging Face has it (values; orientation kept)
    layout: Callable[[str, torch.Tensor, dict], torch.Tensor] = _as_stored
    # (HF name, config, rows) -> how many heads' rows llama.cpp reordered (None: it did not)
    rotary_heads: Callable[[str, dict, int], int | None] = lambda name, config, rows: None


DECODER_NAMES = {
    "token_embd": "model.embed_tokens",
    "output_norm": "model.norm",
    "output": "lm_head",
}
LLAMA_LAYER = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
QK_NORMS = {"attn_q_norm": "self_attn.q_norm", "attn_k_norm": "self_attn.k_norm"}
GEMMA2_LAYER = LLAMA_LAYER | {
    "post_attention_norm": "post_attention_layernorm",
    "ffn_norm": "pre_feedforward_layernorm",
    "post_ffw_norm": "post_feedforward_layernorm",
}
PHI3_LAYER = {
    "attn_norm": "input_layernorm",
    "attn_qkv": "self_attn.qkv_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_norm": "post_attention_layernorm",
    "ffn_up": "mlp.gate_up_proj",  # gate and up, fused
    "ffn_down": "mlp.down_proj",
}
DECODER_PREFIX = "model.layers.{i}."


def _decoder(config, layer_names: dict, keys: dict = WINDOW_KEYS, **kwargs) -> Architecture:
    return Architecture(config, DECODER_NAMES, layer_names, DECODER_PREFIX, keys, **kwargs)


ARCHITECTURES = {
    "llama": _decoder(
        _llama_config,
        LLAMA_LAYER,
        LLAMA_KEYS,
        layout=_llama_layout,
        rotary_heads=_llama_rotary_heads,
    ),
    "qwen2": _decoder(_qwen_config("qwen2"), LLAMA_LAYER),
    "qwen3": _decoder(_qwen_config("qwen3"), LLAMA_LAYER | QK_NORMS),
    "gemma2": _decoder(_gemma_config("gemma2", 2), GEMMA2_LAYER, GEMMA2_KEYS, layout=_gemma_layout),
    "gemma3": _decoder(
        _gemma_config("gemma3", 6), GEMMA2_LAYER | QK_NORMS, GEMMA2_KEYS, layout=_gemma_layout
    ),
    "phi3": _decoder(_phi3_config, PHI3_LAYER),
    "gpt2": Architecture(
        config=_gpt2_config,
        names={
            "token_embd": "transformer.wte",
            "position_embd": "transformer.wpe",
            "output_norm": "transformer.ln_f",
            "output": "lm_head",
        },
        layer_names={
            "attn_norm": "ln_1",
            "attn_qkv": "attn.c_attn",
            "attn_output": "attn.c_proj",
            "ffn_norm": "ln_2",
            "ffn_up": "mlp.c_fc",
            "ffn_down": "mlp.c_proj",
        },
        layer_prefix="transformer.h.{i}.",
        keys=GPT2_KEYS,
    ),
}


# DeepSeek-V2/V3 ("deepseek2"): multi-head latent attention and experts. The routed experts come
# stacked ([experts, rows, cols]) and kv_b also split (k_b, v_b); models.deepseek.regroup turns
# them into a checkpoint's per-expert and kv_b_proj tensors.
DEEPSEEK2_KEYS = {
    "vocab_size": "vocab_size",
    "hidden_size": "embedding_length",
    "intermediate_size": "feed_forward_length",
    "num_hidden_layers": "block_count",
    "num_attention_heads": "attention.head_count",
    "max_position_embeddings": "context_length",
    "rms_norm_eps": "attention.layer_norm_rms_epsilon",
    "qk_rope_head_dim": "rope.dimension_count",
    "kv_lora_rank": "attention.kv_lora_rank",
    "moe_intermediate_size": "expert_feed_forward_length",
    "n_routed_experts": "expert_count",
    "num_experts_per_tok": "expert_used_count",
    "first_k_dense_replace": "leading_dense_block_count",
}


def _deepseek2_config(meta: dict, tensor_names: set[str]) -> dict:
    """As DeepSeek's config.json says it; V3's router scores with a sigmoid (gating func 2)."""
    a = "deepseek2."
    config = {"model_type": "deepseek2", **_from_metadata(meta, "deepseek2", DEEPSEEK2_KEYS)}
    # the converter keeps the per-head widths under *_mla where it also writes MLA's own
    key = meta.get(a + "attention.key_length_mla", meta[a + "attention.key_length"])
    value = meta.get(a + "attention.value_length_mla", meta[a + "attention.value_length"])
    groups = meta.get(a + "expert_group_count", 1)
    config |= {
        "scoring_func": "sigmoid" if meta.get(a + "expert_gating_func") == 2 else "softmax",
        "q_lora_rank": meta.get(a + "attention.q_lora_rank") or None,
        "qk_nope_head_dim": key - config["qk_rope_head_dim"],
        "head_dim": config["qk_rope_head_dim"],  # as transformers says it: what RoPE turns
        "v_head_dim": value,
        "n_shared_experts": meta.get(a + "expert_shared_count", 0),
        "routed_scaling_factor": meta.get(a + "expert_weights_scale", 1.0),
        "norm_topk_prob": bool(meta.get(a + "expert_weights_norm", False)),
        "n_group": groups,
        "topk_group": meta.get(a + "expert_group_used_count", groups),
        "topk_method": "group_limited_greedy" if groups > 1 else "greedy",
        "rope_theta": meta.get(a + "rope.freq_base", 10000.0),
        "rope_interleave": True,  # llama.cpp rotates adjacent pairs, the weights as DeepSeek's
        "hidden_act": "silu",
        "tie_word_embeddings": "output.weight" not in tensor_names,
    }
    if meta.get(a + "rope.scaling.type", "none") == "yarn":
        mscale = meta[a + "rope.scaling.yarn_log_multiplier"] / 0.1  # written as 0.1·mscale
        config["rope_scaling"] = {
            "rope_type": "yarn",
            "factor": meta[a + "rope.scaling.factor"],
            "original_max_position_embeddings": meta[a + "rope.scaling.original_context_length"],
            "mscale": mscale,
            "mscale_all_dim": mscale,
        }
    return config | _special_ids(meta)


ARCHITECTURES["deepseek2"] = Architecture(
    config=_deepseek2_config,
    names={"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"},
    layer_names={
        "attn_norm": "input_layernorm",
        **{
            f"attn_{ours}": f"self_attn.{theirs}"
            for ours, theirs in (
                ("q", "q_proj"),
                ("q_a", "q_a_proj"),
                ("q_a_norm", "q_a_layernorm"),
                ("q_b", "q_b_proj"),
                ("kv_a_mqa", "kv_a_proj_with_mqa"),
                ("kv_a_norm", "kv_a_layernorm"),
                ("kv_b", "kv_b_proj"),
                ("k_b", "k_b_proj"),
                ("v_b", "v_b_proj"),
                ("output", "o_proj"),
            )
        },
        "ffn_norm": "post_attention_layernorm",
        "ffn_gate_inp": "mlp.gate",
        "exp_probs_b": "mlp.gate.e_score_correction",
        **{f"ffn_{p}": f"mlp.{p}_proj" for p in ("gate", "up", "down")},
        **{f"ffn_{p}_exps": f"mlp.experts.{p}_proj" for p in ("gate", "up", "down")},
        **{f"ffn_{p}_shexp": f"mlp.shared_experts.{p}_proj" for p in ("gate", "up", "down")},
    },
    layer_prefix="model.layers.{i}.",
    layout=lambda name, t, config: t,
    keys=DEEPSEEK2_KEYS,
)


MODEL_TYPES = {"gemma3_text": "gemma3"}  # Hugging Face model_type -> GGUF name, where they differ


def metadata_keys(model_type: str) -> dict[str, str]:
    """Hugging Face config key -> the full metadata key it is read from, to name it in errors."""
    architecture = MODEL_TYPES.get(model_type, model_type)
    return {hf: f"{architecture}.{key}" for hf, key in ARCHITECTURES[architecture].keys.items()}


def hf_name(arch: Architecture, name: str) -> str | None:
    """`blk.3.attn_q.weight` -> `model.layers.3.self_attn.q_proj.weight` (None if unknown)."""
    base, _, kind = name.rpartition(".")
    parts = base.split(".", 2)
    if len(parts) == 3 and parts[0] == "blk" and parts[2] in arch.layer_names:
        return f"{arch.layer_prefix.format(i=parts[1])}{arch.layer_names[parts[2]]}.{kind}"
    return f"{arch.names[base]}.{kind}" if base in arch.names else None


# ---- tokenizer ------------------------------------------------------------------------------


def byte_spelling() -> list[str]:
    """GPT-2's printable stand-in for each byte, the alphabet byte-level BPE vocabularies use."""
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    kept += range(ord("®"), ord("ÿ") + 1)
    extra = iter(range(256, 512))
    return [chr(b) if b in kept else chr(next(extra)) for b in range(256)]


# llama.cpp's `tokenizer.ggml.pre` names -> how text is split before BPE (llama-vocab.cpp).
# Each is what the model's own tokenizer.json does: the GPT-2 regex, with or without every digit
# split off first, or Llama 3's regex (digits up to three at a time), or Qwen2's (one at a time).
GPT2_SPLIT = ("gpt-2", "mpt", "olmo", "jais")
DIGITS_THEN_GPT2_SPLIT = ("smollm", "starcoder", "refact", "command-r", "codeshell", "exaone")
LLAMA3_SPLIT = ("llama-bpe", "llama3", "llama-v3", "dbrx", "smaug-bpe")
QWEN2_SPLIT = ("qwen2", "deepseek-r1-qwen", "stablelm2")
PRE_TOKENIZERS = GPT2_SPLIT + DIGITS_THEN_GPT2_SPLIT + LLAMA3_SPLIT + QWEN2_SPLIT


def _pre_tokenizer(name: str, source: Path | str):
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if name in GPT2_SPLIT:
        return byte_level
    if name in DIGITS_THEN_GPT2_SPLIT:
        return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    if name in LLAMA3_SPLIT:
        return regex_then_bytes(split_regex("{1,3}"))
    if name in QWEN2_SPLIT:
        return regex_then_bytes(split_regex(""))
    raise ContextlensError(
        f"{source}: pre-tokenizer {name!r} is not supported; supported: {', '.join(PRE_TOKENIZERS)}"
    )


def _strings(meta: dict, key: str, source: Path | str) -> list[str]:
    """The metadata list of strings under `key` (KeyError if absent)."""
    values = meta[key]
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ContextlensError(
            f"{source}: metadata {key!r} is not a list of strings; the file is corrupt"
        )
    return values


def _check_special_ids(meta: dict, n_tokens: int, source: Path | str) -> None:
    """The ids the tokenizer and generation use (BOS, EOS, end of turn or message, unknown) name
    tokens of the vocabulary."""
    for key in (f"tokenizer.ggml.{k}_token_id" for k in ("bos", "eos", "eot", "eom", "unknown")):
        i = meta.get(key)
        if i is not None and not (type(i) is int and 0 <= i < n_tokens):
            raise ContextlensError(
                f"{source}: metadata {key!r} is {i!r}, not a token of the {n_tokens} in the "
                "vocabulary; the file is corrupt"
            )


def _merges(meta: dict, source: Path | str) -> list[tuple[str, str]]:
    """BPE's merges, "a b" -> ("a", "b"), if the file has any."""
    if "tokenizer.ggml.merges" not in meta:
        return []
    merges = [tuple(m.split(" ", 1)) for m in _strings(meta, "tokenizer.ggml.merges", source)]
    bad = next((m[0] for m in merges if len(m) != 2), None)
    if bad is not None:
        raise ContextlensError(
            f"{source}: the BPE merge {bad!r} is not two tokens apart by a space; the file is "
            "corrupt"
        )
    return merges


def _bpe(vocab: dict[str, int], merges: list[tuple[str, str]], source: Path | str) -> models.BPE:
    try:
        return models.BPE(vocab, merges)
    except Exception as e:  # the tokenizers library raises a bare Exception on a bad merge
        raise ContextlensError(
            f"{source}: the BPE merges do not agree with the vocabulary ({e}); the file is corrupt"
        ) from None


TOKENIZER_MODELS = {  # `tokenizer.ggml.model` -> what it is
    "gpt2": "byte-level BPE, as in GPT-2, SmolLM2, Llama 3, Qwen",
    "llama": "SentencePiece BPE, as in Llama 2, Mistral, Gemma, Phi-3",
}


def _byte_level(meta: dict, tokens: list[str], source: Path | str) -> HFTokenizer:
    """Byte-level BPE: vocabulary in GPT-2's byte alphabet, the file's merges, its pre-tokenizer."""
    spelling = byte_spelling()
    alphabet = set(spelling)
    if set("".join(tokens)) <= alphabet:  # the usual case, without a loop over the vocabulary
        vocab = dict(zip(tokens, range(len(tokens)), strict=True))
    else:  # a token stored as plain text (some llama.cpp files do) is respelled in the alphabet
        vocab = {
            t if set(t) <= alphabet else "".join(spelling[b] for b in t.encode("utf-8")): i
            for i, t in enumerate(tokens)
        }
    tok = HFTokenizer(_bpe(vocab, _merges(meta, source), source))
    tok.pre_tokenizer = _pre_tokenizer(meta.get("tokenizer.ggml.pre", "gpt-2"), source)
    tok.decoder = decoders.ByteLevel()
    return tok


def _sentencepiece(meta: dict, tokens: list[str], source: Path | str) -> HFTokenizer:
    """SentencePiece BPE from the tokens and their scores (the file has no merges)."""
    scores = meta["tokenizer.ggml.scores"]
    if not isinstance(scores, list) or len(scores) != len(tokens):
        raise ContextlensError(
            f"{source}: metadata 'tokenizer.ggml.scores' is not one number per token; the file "
            "is corrupt"
        )
    unk = meta.get("tokenizer.ggml.unknown_token_id")
    add_space = meta.get("tokenizer.ggml.add_space_prefix", True)
    return sentencepiece_bpe(tokens, scores, None if unk is None else tokens[unk], add_space)


def _added_tokens(tok: HFTokenizer, tokens: list[str], types: list[int], byte_level: bool) -> None:
    """Control tokens (<|im_start|>, <s>, …) are matched whole and are special; user-defined ones
    are matched whole. In a byte-level vocabulary a "control" token outside the byte alphabet is
    a mislabel in the file and is left alone (as transformers does)."""
    types = np.asarray(types)
    alphabet = set(byte_spelling()) if byte_level else None

    def of_type(kind: TokenType) -> list[str]:
        return [tokens[i] for i in np.flatnonzero(types == kind)]

    control = [t for t in of_type(TokenType.CONTROL) if alphabet is None or set(t) <= alphabet]
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in control])
    vocab = tok.get_vocab()
    user = [t for t in of_type(TokenType.USER_DEFINED) if t in vocab]
    tok.add_tokens([AddedToken(t, normalized=False, special=False) for t in user])


def build_tokenizer(meta: dict, source: Path | str = "") -> Tokenizer:
    """The tokenizer the metadata describes (`tokenizer.ggml.model`: one of TOKENIZER_MODELS):
    vocabulary, merges or scores, control tokens as special tokens, pre-tokenizer, BOS/EOS
    (SentencePiece vocabularies add BOS unless the file says not to, as llama.cpp does), chat
    template."""
    kind = meta.get("tokenizer.ggml.model")
    if kind not in TOKENIZER_MODELS:
        supported = "; ".join(f"{k!r} ({what})" for k, what in TOKENIZER_MODELS.items())
        raise ContextlensError(
            f"{source}: tokenizer {kind!r} is not supported; supported: {supported}"
        )
    tokens = _strings(meta, "tokenizer.ggml.tokens", source)
    types = meta.get("tokenizer.ggml.token_type") or [TokenType.NORMAL] * len(tokens)
    if not isinstance(types, list) or len(types) != len(tokens):
        raise ContextlensError(
            f"{source}: {len(tokens)} tokens but {len(types)} token types; the file is corrupt"
        )
    _check_special_ids(meta, len(tokens), source)
    byte_level = kind == "gpt2"
    tok = (_byte_level if byte_level else _sentencepiece)(meta, tokens, source)
    _added_tokens(tok, tokens, types, byte_level)
    bos = meta.get("tokenizer.ggml.bos_token_id")
    eos = meta.get("tokenizer.ggml.eos_token_id")

    def wrap(which: str, i: int | None, default: bool) -> list[tuple[str, int]]:
        """The BOS or EOS token, if the file asks for it around every text."""
        wanted = meta.get(f"tokenizer.ggml.add_{which}_token", default) and i is not None
        return [(tok.id_to_token(i), i)] if wanted else []

    first, last = wrap("bos", bos, not byte_level), wrap("eos", eos, False)
    single = [t for t, _ in first] + ["$A:0"] + [t for t, _ in last]
    tok.post_processor = processors.TemplateProcessing(
        single=single, pair=[*single, "$B:1"], special_tokens=first + last
    )
    # generation ends at end-of-sequence, end-of-turn or end-of-message, as in llama.cpp
    ends = (meta.get(f"tokenizer.ggml.{k}_token_id") for k in ("eos", "eot", "eom"))
    return Tokenizer(
        tok,
        bos_id=bos,
        eos_ids=tuple(dict.fromkeys(i for i in ends if i is not None)),
        chat_template=meta.get("tokenizer.chat_template"),
    )


# ---- the whole file -------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredTensor:
    """A weight matrix kept as the file stores it (native mode), in nn.Linear's orientation:
    `shape` = [rows, cols] = [out, in]; `data` uint8 [stored rows, bytes per row] is a view of the
    memory-mapped file; `rows` int32 [rows] names the stored row behind each row (None: the same),
    which undoes llama.cpp's Q/K row order without copying."""

    kind: GGMLQuantizationType
    shape: tuple[int, int]
    data: torch.Tensor
    rows: torch.Tensor | None = None


def _native(t: TensorInfo, ours: str, arch: Architecture, config: dict):
    """A matrix in a block format stays as stored; vectors and float32 tensors become float32."""
    if len(t.shape) != 2 or t.kind == GGMLQuantizationType.F32:
        return arch.layout(ours, t.dequantize(), config)
    heads = arch.rotary_heads(ours, config, t.shape[0])
    rows = None if heads is None else unpermute_rotary(torch.arange(t.shape[0]), heads).int()
    return StoredTensor(t.kind, t.shape, torch.from_numpy(t.data), rows)


def read_gguf(
    path: Path, native: bool = False
) -> tuple[dict, dict[str, torch.Tensor | StoredTensor], Tokenizer]:
    """(Hugging Face config dict, tensors by Hugging Face name, tokenizer) of a GGUF file of one
    of the `ARCHITECTURES`.

    Float32 tensors with the values of a Hugging Face checkpoint, every matrix in nn.Linear's
    [out, in] orientation, e.g. `model.layers.0.self_attn.q_proj.weight` [n_heads * head_dim,
    d_model]; with native=True, every matrix stored in a block format (Q4_0, Q8_0, F16,
    K-quants, …) is a `StoredTensor`, nothing dequantised or copied; the rest as in exact mode."""
    gguf = open_gguf(path)
    meta = gguf.metadata
    name = meta.get("general.architecture")
    if not isinstance(name, str) or name not in ARCHITECTURES:
        raise ContextlensError(
            f"{path}: architecture {name!r} is not supported; supported: {', '.join(ARCHITECTURES)}"
        )
    arch = ARCHITECTURES[name]
    try:
        tokenizer = build_tokenizer(meta, path)  # first: it checks the tokens the config counts
        config = arch.config(meta, {t.name for t in gguf.tensors})
    except KeyError as e:
        raise ContextlensError(
            f"{path}: metadata {e} is missing; the file is incomplete or was not written by "
            "llama.cpp's converter"
        ) from None
    if "head_dim" in arch.keys:  # a Llama-like decoder: RoPE turns the whole head
        _check_rotary_width(meta, name, config, path)
    tensors = {}
    for t in gguf.tensors:
        ours = hf_name(arch, t.name)
        if ours is None:
            raise ContextlensError(
                f"{path}: tensor {t.name!r} has no place in a {name} model as contextlens reads "
                "it (an unsupported variant of the architecture)"
            )
        try:
            if native:
                tensors[ours] = _native(t, ours, arch, config)
            else:
                tensors[ours] = arch.layout(ours, t.dequantize(path), config)
        except ContextlensError as e:
            raise ContextlensError(f"{path}: {e}") from None
    return config, tensors, tokenizer
