"""Architectures: each is a configuration of `Transformer` plus a map from its checkpoint's
tensor names to ours. `build` turns (Hugging Face config, tensors) into a ready model.

An architecture module provides `config(hf_config) -> TransformerConfig`, `KEYS` (our config
field -> the Hugging Face key it comes from, to name it in errors), `PREFIXES` (stripped from
checkpoint names), `WEIGHTS` and `LAYER_WEIGHTS` (our name -> checkpoint name(s); a list is
concatenated along dim 0, `{p}` stands for weight and bias), `LAYER_PREFIX`, `UNUSED` (the
checkpoint tensors it may hold and leave unused, as shell patterns) and optionally
`transform(name, tensor)` for layout changes and `layer_weights(cfg)` for a LAYER_WEIGHTS that
depends on the config (DeepSeek's experts), and `regroup(tensors, cfg)` for a file that stores
some tensors stacked or split otherwise than its checkpoint names (llama.cpp's DeepSeek).

`build` uses every tensor of the checkpoint and fills every parameter: a tensor left over, or
missing, means the config does not describe the file, and is an error.

A tensor may also be an `io.gguf.StoredTensor` (native mode: a matrix kept in its file's block
format, already in nn.Linear's [out, in] orientation): its layer becomes an `nn.quant.QuantLinear`
(several stored matrices stacked along out, as Q, K, V are, stay separate parts of one layer) and
an embedding table a `QuantEmbedding`; a tied LM head shares the table's stored bytes.
"""

import re
from collections.abc import Callable
from fnmatch import fnmatchcase
from types import ModuleType

import torch

from ..errors import ContextlensError
from . import bert, deepseek, gemma2, gemma3, gpt2, llama, mistral, phi3, qwen2, qwen3
from .transformer import Transformer, TransformerConfig

ARCHITECTURES: dict[str, ModuleType] = {"bert": bert, "llama": llama, "gpt2": gpt2}
ARCHITECTURES |= {"mistral": mistral, "qwen2": qwen2, "qwen3": qwen3, "phi3": phi3}
ARCHITECTURES |= {"gemma2": gemma2, "gemma3_text": gemma3}
ARCHITECTURES |= {"deepseek_v2": deepseek, "deepseek_v3": deepseek, "deepseek2": deepseek}
SHOWN = 3  # tensor names listed in an error before "… (n in all)"


def _expand(table: dict, prefix: str = "") -> dict[str, list[str]]:
    """Fill the {p} (weight/bias) placeholders: ours -> list of checkpoint names."""
    out = {}
    for ours, theirs in table.items():
        theirs = [theirs] if isinstance(theirs, str) else theirs
        for p in ("weight", "bias") if "{p}" in ours else ("",):
            out[ours.format(p=p)] = [prefix + t.format(p=p) for t in theirs]
    return out


def weight_names(arch: ModuleType, cfg: TransformerConfig) -> dict[str, list[str]]:
    """Our parameter name -> the checkpoint names it is made of, for every layer."""
    names = _expand(arch.WEIGHTS)
    table = arch.layer_weights(cfg) if hasattr(arch, "layer_weights") else arch.LAYER_WEIGHTS
    for i in range(cfg.n_layers):
        layer = _expand(table, arch.LAYER_PREFIX.format(i=i))
        names.update({f"blocks.{i}.{k}": v for k, v in layer.items()})
    return names


def _listed(names: list[str]) -> str:
    """'a', 'b', 'c' … (7 in all)"""
    shown = ", ".join(repr(n) for n in names[:SHOWN])
    return shown if len(names) <= SHOWN else f"{shown} … ({len(names)} in all)"


def _architecture(hf_config: dict, source: str) -> ModuleType:
    kind = hf_config.get("model_type")
    if not isinstance(kind, str) or kind not in ARCHITECTURES:
        raise ContextlensError(
            f"{source}: architecture {kind!r} is not supported; supported: "
            f"{', '.join(ARCHITECTURES)}"
        )
    return ARCHITECTURES[kind]


def _key_names(metadata_keys: dict[str, str] | None) -> Callable[[str], str]:
    """A config key as the user finds it: in config.json, or under its GGUF metadata name."""
    if metadata_keys is None:
        return lambda key: f"config.json {key!r}"
    return lambda key: f"metadata {metadata_keys.get(key, key)!r}"


def _config(
    arch: ModuleType, hf_config: dict, source: str, key: Callable[[str], str]
) -> TransformerConfig:
    """The checked configuration; any bad value is one error naming its key."""
    try:
        cfg = arch.config(hf_config)
        cfg.validate(lambda field: key(arch.KEYS.get(field, field)))
    except KeyError as e:
        raise ContextlensError(f"{source}: {key(e.args[0])} is missing; restore it") from None
    except ContextlensError as e:
        raise ContextlensError(f"{source}: {e}") from None
    return cfg


def _check_layers(
    arch: ModuleType, cfg: TransformerConfig, tensors: dict, source: str, n_layers_key: str
) -> None:
    """The checkpoint holds weights for as many layers as the config says."""
    pattern = re.compile(re.escape(arch.LAYER_PREFIX).replace(r"\{i\}", r"(\d+)"))
    found = {int(m[1]) for name in tensors if (m := pattern.match(name))}
    if found and max(found) + 1 != cfg.n_layers:
        raise ContextlensError(
            f"{source}: the checkpoint has {max(found) + 1} layers of weights but {n_layers_key} "
            f"says {cfg.n_layers}; make them agree"
        )


def _gather(
    arch: ModuleType,
    cfg: TransformerConfig,
    wanted: dict,
    tensors: dict,
    source: str,
    oriented: bool = False,
) -> tuple[dict[str, torch.Tensor], dict[str, list], set[str]]:
    """(our parameter name -> its float tensor, with the shape the config gives; our name -> the
    StoredTensors its layer keeps as stored; the checkpoint names used). A tied LM head is left
    out: it is the embedding. `oriented`: the matrices are in nn.Linear's orientation already,
    so the architecture's `transform` does not apply."""
    # not at module level: nn.quant brings the gguf package, slow to import
    from ..nn.quant import StoredTensor, dequantize

    def same(name: str, t: torch.Tensor) -> torch.Tensor:
        return t

    transform = same if oriented else getattr(arch, "transform", same)
    tied = {"lm_head.weight"} if cfg.lm_head and cfg.tie_lm_head else set()
    names = {k: v for k, v in weight_names(arch, cfg).items() if k in wanted and k not in tied}
    missing = [t for theirs in names.values() for t in theirs if t not in tensors]
    if missing:
        raise ContextlensError(
            f"{source}: weights missing from the checkpoint: {_listed(missing)}; the file is "
            f"incomplete or not a {cfg.architecture} checkpoint of this config"
        )
    unfilled = [k for k in wanted if k not in names and k not in tied]
    if unfilled:
        raise ContextlensError(f"{source}: no weights for {_listed(unfilled)}")
    state, stored = {}, {}
    for ours, theirs in names.items():
        parts = [tensors[t] for t in theirs]
        if all(isinstance(p, StoredTensor) for p in parts):
            shape = (sum(p.shape[0] for p in parts), parts[0].shape[1])
            stored[ours] = parts
        else:  # float tensors (a stored one among them is dequantised, already [out, in])
            parts = [
                dequantize(p) if isinstance(p, StoredTensor) else transform(t, p)
                for t, p in zip(theirs, parts, strict=True)
            ]
            state[ours] = torch.cat(parts) if len(parts) > 1 else parts[0]
            shape = tuple(state[ours].shape)
        if shape != wanted[ours].shape:
            raise ContextlensError(
                f"{source}: weight {theirs[0]!r} has shape {shape}, "
                f"expected {tuple(wanted[ours].shape)} from the config"
            )
    return state, stored, {t for theirs in names.values() for t in theirs}


def _as_float(t) -> torch.Tensor:
    from ..nn.quant import StoredTensor, dequantize

    return dequantize(t) if isinstance(t, StoredTensor) else t


def _tied_copy(arch: ModuleType, tensors: dict, embedding, source: str, tie_key: str) -> set[str]:
    """The checkpoint names of a tied LM head's copy, if the file holds one; it must equal the
    embedding it is tied to."""
    copies = [t for t in _expand(arch.WEIGHTS).get("lm_head.weight", []) if t in tensors]
    for name in copies:
        if not torch.equal(_as_float(tensors[name]), _as_float(embedding)):
            raise ContextlensError(
                f"{source}: {tie_key} is true but the checkpoint's {name!r} differs from the "
                "embedding; set it to false"
            )
    return set(copies)


def _check_all_used(arch: ModuleType, tensors: dict, used: set[str], source: str) -> None:
    """Every checkpoint tensor has a place, but for the architecture's documented leftovers."""
    left = [
        name
        for name in tensors
        if name not in used and not any(fnmatchcase(name, p) for p in arch.UNUSED)
    ]
    if left:
        raise ContextlensError(
            f"{source}: checkpoint tensors that the config leaves unused: {_listed(left)}; "
            "the config does not describe this file"
        )


def build(
    hf_config: dict,
    tensors: dict[str, torch.Tensor],
    source: str,
    metadata_keys: dict[str, str] | None = None,
) -> Transformer:
    """A Transformer holding the checkpoint's weights. `source` names the files in errors;
    `metadata_keys` (Hugging Face config key -> GGUF metadata key) names a GGUF file's values,
    and says that the tensors come from one: every matrix in nn.Linear's orientation already."""
    arch = _architecture(hf_config, source)
    key = _key_names(metadata_keys)
    cfg = _config(arch, hf_config, source, key)
    for prefix in arch.PREFIXES:
        tensors = {k.removeprefix(prefix): v for k, v in tensors.items()}
    if hasattr(arch, "regroup"):  # a file that stores some tensors split or stacked otherwise
        tensors = arch.regroup(tensors, cfg)
    _check_layers(arch, cfg, tensors, source, key(arch.KEYS["n_layers"]))
    with torch.device("meta"):  # no memory, no random init: the checkpoint supplies everything
        model = Transformer(cfg)
    gguf = metadata_keys is not None
    state, stored, used = _gather(arch, cfg, model.state_dict(), tensors, source, oriented=gguf)
    tied = cfg.lm_head and cfg.tie_lm_head
    if tied:
        embedding = state["tok.weight"] if "tok.weight" in state else stored["tok.weight"][0]
        used |= _tied_copy(arch, tensors, embedding, source, key(arch.KEYS["tie_lm_head"]))
    _check_all_used(arch, tensors, used, source)
    model.load_state_dict(state, strict=False, assign=True)
    for ours, parts in stored.items():
        _use_stored(model, ours.removesuffix(".weight"), parts, state)
    if tied and "tok.weight" in stored:
        from ..nn.quant import QuantLinear

        model.lm_head = QuantLinear([model.tok.table])  # the same stored bytes
    elif tied:
        model.lm_head.weight = model.tok.weight  # assign=True replaced the shared parameter
    return model.eval().requires_grad_(False)


def _use_stored(model: Transformer, name: str, parts: list, state: dict) -> None:
    """Put a QuantLinear (or, for a lookup table, a QuantEmbedding) where module `name` is."""
    from ..nn.quant import QuantEmbedding, QuantLinear

    parent, _, child = name.rpartition(".")
    old = model.get_submodule(name)
    if isinstance(old, torch.nn.Embedding):
        new = QuantEmbedding(parts[0])
    else:
        new = QuantLinear(parts, state.get(f"{name}.bias"))
    setattr(model.get_submodule(parent) if parent else model, child, new)


__all__ = ["ARCHITECTURES", "Transformer", "TransformerConfig", "build"]
