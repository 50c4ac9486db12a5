"""Qwen2, Qwen3, Mistral, Gemma 2, Gemma 3 and Phi-3 from GGUF: the tiny random models of
test_families written the way llama.cpp's convert_hf_to_gguf.py writes them (gguf's own tensor
name map and metadata keys, its changes to the weights), and read back."""

import json

import numpy as np
import pytest
import torch
from gguf import (
    MODEL_ARCH_NAMES,
    GGMLQuantizationType,
    GGUFWriter,
    get_tensor_name_map,
    quants,
)
from safetensors.torch import load_file
from test_families import save_family
from tiny import finish, gguf_vocab, write_bpe_vocab

import contextlens as cl
from contextlens import ContextlensError

Q = GGMLQuantizationType
GGUF_ARCH = {  # our family -> the llama.cpp architecture its converter writes
    "qwen2": "qwen2",
    "qwen3": "qwen3",
    "mistral": "llama",  # llama.cpp converts Mistral as Llama, and keeps no window for it
    "gemma2": "gemma2",
    "gemma3": "gemma3",
    "phi3": "phi3",
}
GGUF_CAN_SAY = {  # what a GGUF file cannot say, set so that both files describe one model
    "qwen2": dict(use_sliding_window=False),  # llama.cpp writes no window for Qwen2
    "mistral": dict(sliding_window=None),
    "gemma2": dict(query_pre_attn_scalar=24),  # llama.cpp scales by the head width
    "gemma3": dict(query_pre_attn_scalar=24),
}
IDS = torch.tensor([[5, 17, 120, 33, 250, 9, 64, 64, 201, 11, 3, 77, 150, 42, 299, 1]])


def permute(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """llama.cpp's LlamaModel.permute: rotary pairs (i, i + d/2) -> adjacent rows."""
    return w.reshape(n_heads, 2, w.shape[0] // n_heads // 2, *w.shape[1:]).swapaxes(1, 2)


def converted(name: str, t: torch.Tensor, arch: str, cfg: dict) -> torch.Tensor:
    """What convert_hf_to_gguf.py does to one tensor before writing it."""
    if arch == "llama" and name.endswith(("q_proj.weight", "k_proj.weight")):
        heads = cfg["num_attention_heads" if "q_proj" in name else "num_key_value_heads"]
        return permute(t, heads).reshape(t.shape)
    if arch.startswith("gemma") and name.endswith("norm.weight"):
        return t + 1  # llama.cpp scales by w, Gemma by 1 + w
    return t


def write_metadata(w: GGUFWriter, arch: str, cfg: dict, tokenizer: dict) -> None:
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    rope = cfg["rope_parameters"]
    w.add_rope_freq_base(rope.get("full_attention", rope)["rope_theta"])
    if cfg.get("head_dim") is not None:
        w.add_key_length(cfg["head_dim"])
        w.add_value_length(cfg["head_dim"])
    if arch == "phi3":
        w.add_rope_dimension_count(cfg["hidden_size"] // cfg["num_attention_heads"])
    if arch in ("gemma2", "gemma3", "phi3"):
        w.add_sliding_window(cfg["sliding_window"] or 0)
    if arch == "gemma2":
        w.add_attn_logit_softcapping(cfg["attn_logit_softcapping"])
    if arch.startswith("gemma"):
        w.add_final_logit_softcapping(cfg["final_logit_softcapping"])
    if arch == "gemma3":
        w.add_rope_freq_base_swa(rope["sliding_attention"]["rope_theta"])
        w.add_sliding_window_pattern([t == "sliding_attention" for t in cfg["layer_types"]])
    pre = {"llama": "llama-bpe", "qwen2": "qwen2", "qwen3": "qwen2"}.get(arch, "gpt-2")
    write_bpe_vocab(w, *gguf_vocab(tokenizer), pre=pre)


def write_gguf(hf_dir, path, family: str, kind: Q = Q.F32, *, name_as=None, extra=()):
    """The HF model in `hf_dir` as llama.cpp's converter writes it; matrices stored as `kind`;
    `name_as` another architecture name to write, `extra` tensor names to add."""
    arch = GGUF_ARCH[family]
    cfg = json.loads((hf_dir / "config.json").read_text())
    tokenizer = json.loads((hf_dir / "tokenizer.json").read_text())
    w = GGUFWriter(path, name_as or arch)
    w.arch = arch  # the metadata keys stay those of `arch`
    write_metadata(w, arch, cfg, tokenizer)
    names = get_tensor_name_map(
        next(a for a, n in MODEL_ARCH_NAMES.items() if n == arch), cfg["num_hidden_layers"]
    )
    for name in extra:
        w.add_tensor(name, np.ones(8, np.float32))
    for name, t in load_file(hf_dir / "model.safetensors").items():
        if name == "lm_head.weight" and cfg["tie_word_embeddings"]:
            continue  # llama.cpp writes no copy of a tied head
        base, suffix = name.rsplit(".", 1)
        data = converted(name, t, arch, cfg).contiguous().numpy()
        if t.ndim == 2 and kind != Q.F32:
            w.add_tensor(
                f"{names.get_name(base)}.{suffix}", quants.quantize(data, kind), raw_dtype=kind
            )
        else:
            w.add_tensor(f"{names.get_name(base)}.{suffix}", data)
    finish(w)
    return path


@pytest.fixture(scope="module", params=list(GGUF_ARCH))
def family(request, tmp_path_factory):
    """(family, its HF directory, its GGUF file with float32 weights)."""
    name = request.param
    d = save_family(name, tmp_path_factory.mktemp(name), **GGUF_CAN_SAY.get(name, {}))
    return name, d, write_gguf(d, d / f"{name}.gguf", name)


def logits(lm) -> torch.Tensor:
    """The model's logits for IDS, [s, vocab] (ids, not text: the two files' tokenizers split
    text their own way)."""
    return lm.model.logits(lm.model(IDS))[0]


def test_exact_weights_give_the_hf_directory_model(family):
    name, d, path = family
    from_gguf, from_hf = cl.load(path), cl.load(d)
    ours = from_gguf.model.state_dict()
    for key, value in from_hf.model.state_dict().items():
        if name.startswith("gemma") and "norm" in key:  # stored as 1 + w: the scale Gemma uses
            assert torch.equal(1 + ours[key], 1 + value), key
        else:  # bit for bit
            assert torch.equal(ours[key], value), key
    assert torch.equal(logits(from_gguf), logits(from_hf))
    a, b = from_gguf.model.cfg, from_hf.model.cfg
    for field in ("n_heads", "n_kv_heads", "head_dim", "norm", "attn_scale", "qk_norm"):
        assert getattr(a, field) == getattr(b, field), field
    for field in ("sliding_window", "attn_softcap", "logit_softcap", "rope_local_theta"):
        assert getattr(a, field) == getattr(b, field), field
    assert [a.windowed(i) for i in range(2)] == [b.windowed(i) for i in range(2)]


@pytest.mark.parametrize("kind", [Q.F16, Q.Q8_0], ids=lambda k: k.name)
def test_native_weights_follow_the_exact_ones(family, kind, tmp_path):
    name, d, _ = family
    path = write_gguf(d, tmp_path / f"{name}-{kind.name}.gguf", name, kind)
    native, exact = cl.load(path, weights="native"), cl.load(path)
    assert type(native.model.blocks[0].attn.qkv).__name__ == "QuantLinear"
    got, want, original = logits(native), logits(exact), logits(cl.load(d))
    scale = original.abs().max()
    if kind == Q.F16:  # widened to float32: the same values as exact mode, summed otherwise
        torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
        assert (got - original).abs().max() < 0.01 * scale  # what 16-bit weights cost
    else:  # int8 blocks of weights and of activations: up to 8% here
        assert (got - want).abs().max() < 0.15 * scale
        assert (got - original).abs().max() < 0.15 * scale


def test_gpt2_and_llama_still_load():
    """SmolLM2 (llama, llama.cpp's Q/K order) is a real file: it loads and predicts Paris."""
    lm = cl.load("smollm2")
    assert lm.next_token_probs("The capital of France is", k=1)[0][0] == " Paris"


def test_an_unsupported_family_or_tensor_is_one_line_naming_what_is(tmp_path):
    d = save_family("phi3", tmp_path / "phi3")
    cases = {
        "architecture 'mamba' is not supported; supported: llama, qwen2, qwen3, gemma2, gemma3, "
        "phi3, gpt2": dict(name_as="mamba"),
        "tensor 'rope_factors_long.weight' has no place in a phi3 model": dict(
            extra=["rope_factors_long.weight"]
        ),
    }
    for i, (message, change) in enumerate(cases.items()):
        path = write_gguf(d, tmp_path / f"bad{i}.gguf", "phi3", **change)
        with pytest.raises(ContextlensError) as e:
            cl.load(path)
        assert message in str(e.value) and "\n" not in str(e.value)
