"""From a catalog name or a path to a ready model: `load_model` gives a `LanguageModel`,
`load_vectors` a `WordVectors`, and `load` whichever the name or file holds."""

import contextlib
import ctypes
import gc
from pathlib import Path
from typing import Literal, overload

import torch

from .errors import ContextlensError
from .io import fasttext
from .io.catalog import resolve
from .io.hf import read_config, read_hf_dir, read_json
from .io.tokenizer import Tokenizer
from .lm import LanguageModel, Pooling
from .models import build
from .models.transformer import is_int
from .static import WordVectors, holds_vectors, load_vectors
from .word2vec import load_fasttext


def _is_module(entry) -> bool:
    return isinstance(entry, dict) and all(isinstance(entry.get(k), str) for k in ("type", "path"))


def _modules(path: Path) -> list[dict]:
    """sentence-transformers' modules.json: a list of {"type": …, "path": …} objects."""
    modules = read_json(path)
    if not isinstance(modules, list) or not all(_is_module(m) for m in modules):
        raise ContextlensError(
            f'{path} is not a list of modules ([{{"type": …, "path": …}}, …]); restore the file'
        )
    return modules


def _max_length(path: Path) -> int | None:
    """sentence_bert_config.json's max_seq_length, if the file is there and sets it."""
    value = read_config(path).get("max_seq_length") if path.exists() else None
    if value is not None and not (is_int(value) and value > 0):
        raise ContextlensError(
            f"{path}: 'max_seq_length' is {value!r}; expected a positive integer (the most "
            "tokens the embedding model reads)"
        )
    return value


def _pooling(directory: Path, max_positions: int) -> Pooling:
    """sentence-transformers' modules.json / 1_Pooling / sentence_bert_config.json, if present."""
    modules_file = directory / "modules.json"
    if not modules_file.exists():
        return Pooling()  # mean over tokens, up to the model's positions
    mode, normalize = "mean", False
    for m in _modules(modules_file):
        kind = m["type"].rsplit(".", 1)[-1]
        if kind == "Pooling":
            cfg = read_config(directory / m["path"] / "config.json")
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
    max_length = _max_length(directory / "sentence_bert_config.json")
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
    tokenizer.check_fits(model.cfg.vocab_size, str(directory / "tokenizer.json"))
    return LanguageModel(name, model, tokenizer, _pooling(directory, model.cfg.max_positions))


def load_gguf(path: Path, name: str, weights: str = "exact") -> LanguageModel:
    from .io.gguf import metadata_keys, read_gguf

    hf_config, tensors, tokenizer = read_gguf(path, native=weights == "native")
    model = build(hf_config, tensors, str(path), metadata_keys(hf_config["model_type"]))
    tokenizer.check_fits(model.cfg.vocab_size, str(path))
    del tensors
    if weights == "native":
        _release_freed_heap()
    return LanguageModel(name, model, tokenizer, Pooling())


def _release_freed_heap() -> None:
    """Give the heap freed after reading a GGUF header (its vocabulary and merges parsed into
    Python strings, ~15 MB for SmolLM2) back to the OS where the C library can (glibc), so that
    native mode stays near the file's size in memory."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: this process reuses it
        ctypes.CDLL("libc.so.6").malloc_trim(0)


WEIGHTS = ("exact", "native")


def _check_mode(weights: str, device) -> None:
    if weights not in WEIGHTS:
        raise ContextlensError(f"weights={weights!r} is not a mode; use 'exact' or 'native'")
    if weights == "native" and device is not None and torch.device(device).type != "cpu":
        raise ContextlensError(
            f"native (quantised) weights run on the CPU; for device={device!r} load with "
            "weights='exact'"
        )


def _load_model(path: Path, name: str, weights: str, device, dtype) -> LanguageModel:
    _check_mode(weights, device)
    if path.suffix == ".gguf":
        lm = load_gguf(path, name, weights)
    elif path.is_dir() and (path / "config.json").exists():
        lm = load_hf_dir(path, name)
    elif path.is_dir():
        raise ContextlensError(
            f"{path} is not a model directory: config.json is missing (a Hugging Face model "
            "directory needs config.json, *.safetensors and tokenizer.json)"
        )
    else:
        raise ContextlensError(f"{path}: unrecognised model file; give a model directory")
    return lm if device is None and dtype is None else lm.to(device, dtype)


def load_model(
    name_or_path: str | Path, weights: str = "exact", device=None, dtype=None
) -> LanguageModel:
    """A transformer from a catalog name (`minilm`, `smollm2`), a Hugging Face model directory
    or a GGUF file; `load` says what weights, device and dtype mean."""
    path, entry = resolve(name_or_path)
    name = entry.name if entry else str(name_or_path)
    if holds_vectors(path, entry):
        raise ContextlensError(
            f"{name} is a table of word vectors, not a transformer; load it with "
            f"load_vectors({name!r})"
        )
    return _load_model(path, name, weights, device, dtype)


@overload
def load(
    name_or_path: Literal["minilm", "smollm2"], weights: str = ..., device=..., dtype=...
) -> LanguageModel: ...
@overload
def load(
    name_or_path: Literal["glove-50"], weights: str = ..., device=..., dtype=...
) -> WordVectors: ...
@overload
def load(
    name_or_path: str | Path, weights: str = ..., device=..., dtype=...
) -> LanguageModel | WordVectors: ...
def load(
    name_or_path: str | Path, weights: str = "exact", device=None, dtype=None
) -> LanguageModel | WordVectors:
    """A catalog name (`minilm`, `smollm2`, `glove-50`) or a path to a model directory or file.

    device ("cpu", "cuda", "cuda:1") and dtype (torch.float32, bfloat16, float16) place a
    transformer model once loaded (`LanguageModel.to`); native weights run on the CPU only.

    weights: how a GGUF file's quantised matrices are held. "exact" (the default) dequantises
    them to float32 once at load: the reference numerics every parity test checks, at 4 bytes a
    parameter. "native" keeps them as the file stores them (memory-mapped, Q4_0/Q4_1/Q8_0/F16/BF16
    multiplied directly, other formats dequantised a layer at a time): about the file's size in
    memory, a fraction of a second to load, faster generation, outputs close to but not equal to
    exact mode (docs/gguf.md measures how close). Hugging Face directories hold float weights
    already; for them both modes are the same. Word-vector tables take none of these; a fastText
    model `.bin` (told from a word2vec binary by its header) loads as subword vectors."""
    path, entry = resolve(name_or_path)
    name = entry.name if entry else str(name_or_path)
    if path.suffix == ".bin" and fasttext.layout(path):
        return load_fasttext(path, name)
    if holds_vectors(path, entry):
        return load_vectors(path, name)
    return _load_model(path, name, weights, device, dtype)
