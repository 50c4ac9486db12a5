"""Hugging Face–format model directories: config.json + *.safetensors (+ tokenizer.json)."""

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from ..errors import ContextlensError

JSON_TYPES = {
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ContextlensError(f"{path} is missing; a model directory needs it") from None
    except OSError as e:
        raise ContextlensError(f"{path} cannot be read ({e.strerror}); restore the file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ContextlensError(f"{path} is not valid JSON ({e}); restore the file") from None


def read_safetensors(directory: Path) -> dict[str, torch.Tensor]:
    """All tensors of the directory's *.safetensors files (one file or shards), as float32."""
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise ContextlensError(
            f"no *.safetensors file in {directory}; a model directory needs its weights"
        )
    tensors: dict[str, torch.Tensor] = {}
    for f in files:
        try:
            tensors.update(load_file(f))
        except (SafetensorError, OSError, ValueError) as e:
            raise ContextlensError(
                f"{f} is corrupt or truncated ({e}); reinstall or re-download it"
            ) from None
    return {k: v.float() for k, v in tensors.items()}


def read_config(path: Path) -> dict:
    """A model's config.json: one JSON object of settings."""
    config = read_json(path)
    if not isinstance(config, dict):
        raise ContextlensError(
            f"{path} holds a JSON {JSON_TYPES.get(type(config), 'value')}, not an object "
            "({…} of settings); restore the file"
        )
    return config


def read_hf_dir(directory: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(config.json as a dict, tensors by their Hugging Face names)."""
    return read_config(directory / "config.json"), read_safetensors(directory)
