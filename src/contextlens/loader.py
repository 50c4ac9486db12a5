"""`load(name_or_path)`: the one entry point from a catalog name or a path to a ready model."""

from pathlib import Path

import torch

from .errors import ContextlensError
from .io.catalog import resolve
from .io.hf import read_hf_dir, read_json
from .io.tokenizer import Tokenizer
from .lm import LanguageModel, Pooling
from .models import build


def _pooling(directory: Path, max_positions: int) -> Pooling:
    """sentence-transformers' modules.json / 1_Pooling / sentence_bert_config.json, if present."""
    modules_file = directory / "modules.json"
    if not modules_file.exists():
        return Pooling()  # mean over tokens, up to the model's positions
    modules = read_json(modules_file)
    mode, normalize = "mean", False
    for m in modules:
        kind = m.get("type", "").rsplit(".", 1)[-1]
        if kind == "Pooling":
            cfg = read_json(directory / m["path"] / "config.json")
            for key, name in (
                ("cls_token", "cls"),
                ("max_tokens", "max"),
                ("mean_tokens", "mean"),
                ("lasttoken", "last"),
            ):
                if cfg.get(f"pooling_mode_{key}"):
                    mode = name
        elif kind == "Normalize":
            normalize = True
    st = directory / "sentence_bert_config.json"
    max_length = read_json(st).get("max_seq_length") if st.exists() else None
    return Pooling(mode, normalize, min(max_length or max_positions, max_positions))


def _ids(value) -> tuple[int, ...]:
    """An id or a list of ids (config.json allows both) as a tuple."""
    return () if value is None else tuple(value) if isinstance(value, list) else (value,)


def load_hf_dir(directory: Path, name: str) -> LanguageModel:
    hf_config, tensors = read_hf_dir(directory)
    model = build(hf_config, tensors, source=str(directory))
    tok_config = directory / "tokenizer_config.json"
    template = read_json(tok_config).get("chat_template") if tok_config.exists() else None
    if (directory / "chat_template.jinja").exists():  # where transformers 5 saves it
        template = (directory / "chat_template.jinja").read_text(encoding="utf-8")
    tokenizer = Tokenizer.from_file(
        directory / "tokenizer.json",
        bos_id=(_ids(hf_config.get("bos_token_id")) or (None,))[0],
        eos_ids=_ids(hf_config.get("eos_token_id")),
        chat_template=template if isinstance(template, str) else None,
    )
    return LanguageModel(name, model, tokenizer, _pooling(directory, model.cfg.max_positions))


def load_gguf(path: Path, name: str, weights: str) -> LanguageModel:
    from .io.gguf import read_gguf

    hf_config, tensors, tokenizer = read_gguf(path, native=weights == "native")
    model = build(hf_config, tensors, source=str(path))
    return LanguageModel(name, model, tokenizer, Pooling())


WEIGHTS = ("exact", "native")


def _place(lm: LanguageModel, device, dtype) -> LanguageModel:
    return lm if device is None and dtype is None else lm.to(device, dtype)


def load(name_or_path: str | Path, weights: str = "exact", device=None, dtype=None):
    """A catalog name (`minilm`, `smollm2`, `glove-50`) or a path to a model directory or file.

    device ("cpu", "cuda", "cuda:1") and dtype (torch.float32, bfloat16, float16) place a
    transformer model once loaded (`LanguageModel.to`); native weights run on the CPU only.

    weights: how a GGUF file's quantised matrices are held. "exact" (the default) dequantises
    them to float32 once at load: the reference numerics every parity test checks, at 4 bytes a
    parameter. "native" keeps them as the file stores them (memory-mapped, Q4_0/Q4_1/Q8_0/F16/BF16
    multiplied directly, other formats dequantised a layer at a time): about the file's size in
    memory, a fraction of a second to load, faster generation, outputs close to but not equal to
    exact mode (docs/gguf.md measures how close). Hugging Face directories hold float weights
    already; for them both modes are the same."""
    if weights not in WEIGHTS:
        raise ContextlensError(f"weights={weights!r} is not a mode; use 'exact' or 'native'")
    if weights == "native" and device is not None and torch.device(device).type != "cpu":
        raise ContextlensError(
            f"native (quantised) weights run on the CPU; for device={device!r} load with "
            "weights='exact'"
        )
    path, entry = resolve(name_or_path)
    name = entry.name if entry else str(name_or_path)
    if (entry and entry.kind == "static") or path.suffix in (".txt", ".vec", ".bin"):
        from .static import load_vectors  # issue 4: word-vector tables

        return load_vectors(path, name)
    if path.suffix == ".gguf":
        return _place(load_gguf(path, name, weights), device, dtype)
    if path.is_dir() and (path / "config.json").exists():
        return _place(load_hf_dir(path, name), device, dtype)
    if path.is_dir():
        raise ContextlensError(
            f"{path} is not a model directory: config.json is missing (a Hugging Face model "
            "directory needs config.json, *.safetensors and tokenizer.json)"
        )
    raise ContextlensError(f"{path}: unrecognised model file; give a model directory")
