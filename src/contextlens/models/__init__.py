"""Architectures: each is a configuration of `Transformer` plus a map from its checkpoint's
tensor names to ours. `build` turns (Hugging Face config, tensors) into a ready model.

An architecture module provides `config(hf_config) -> TransformerConfig`, `PREFIXES` (stripped
from checkpoint names), `WEIGHTS` and `LAYER_WEIGHTS` (our name -> checkpoint name(s); a list is
concatenated along dim 0, `{p}` stands for weight and bias), `LAYER_PREFIX`, and optionally
`transform(name, tensor)` for layout changes.

A tensor may also be an `io.gguf.StoredTensor` (native mode: a matrix kept in its file's block
format, already in nn.Linear's [out, in] orientation): its layer becomes an `nn.quant.QuantLinear`
(several stored matrices stacked along out, as Q, K, V are, stay separate parts of one layer) and
an embedding table a `QuantEmbedding`; a tied LM head shares the table's stored bytes.
"""

from types import ModuleType

import torch

from ..errors import ContextlensError
from . import bert, gpt2, llama
from .transformer import Transformer, TransformerConfig

ARCHITECTURES: dict[str, ModuleType] = {"bert": bert, "llama": llama, "gpt2": gpt2}


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
    for i in range(cfg.n_layers):
        layer = _expand(arch.LAYER_WEIGHTS, arch.LAYER_PREFIX.format(i=i))
        names.update({f"blocks.{i}.{k}": v for k, v in layer.items()})
    return names


def build(hf_config: dict, tensors: dict, source: str) -> Transformer:
    """A Transformer holding the checkpoint's weights (name -> tensor or StoredTensor). `source`
    names the files in errors."""
    kind = hf_config.get("model_type")
    if kind not in ARCHITECTURES:
        raise ContextlensError(
            f"{source}: architecture {kind!r} is not supported; supported: "
            f"{', '.join(ARCHITECTURES)}"
        )
    arch = ARCHITECTURES[kind]
    try:
        cfg = arch.config(hf_config)
    except KeyError as e:
        raise ContextlensError(f"{source}: the config lacks {e}; restore the file") from None
    except ContextlensError as e:
        raise ContextlensError(f"{source}: {e}") from None
    for prefix in arch.PREFIXES:
        tensors = {k.removeprefix(prefix): v for k, v in tensors.items()}
    transform = getattr(arch, "transform", lambda name, t: t)
    # not at module level: nn.quant brings the gguf package, slow to import
    from ..nn.quant import QuantEmbedding, QuantLinear, StoredTensor, dequantize

    with torch.device("meta"):  # no memory, no random init: the checkpoint supplies everything
        model = Transformer(cfg)
    wanted = model.state_dict()
    tied = {"lm_head.weight"} if cfg.lm_head and cfg.tie_lm_head else set()
    state, stored = {}, {}
    for ours, theirs in weight_names(arch, cfg).items():
        if ours not in wanted or ours in tied:
            continue  # a bias of a bias-free model; a head that shares the embedding
        missing = [t for t in theirs if t not in tensors]
        if missing:
            raise ContextlensError(
                f"{source}: weight {missing[0]!r} is missing; the file is incomplete or not "
                f"a {kind} checkpoint"
            )
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
    left = [k for k in wanted if k not in state and k not in stored and k not in tied]
    if left:
        raise ContextlensError(f"{source}: no weights for {left[0]!r}")
    model.load_state_dict(state, strict=False, assign=True)
    for ours, parts in stored.items():
        _use_stored(model, ours.removesuffix(".weight"), parts, state)
    if tied and isinstance(model.tok, QuantEmbedding):
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
