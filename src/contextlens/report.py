"""Analysis results are dataclasses ("reports"); `to_dict` turns one into the JSON-ready value
that the CLI's `--json` and the web API both return, so the two displays cannot drift.

Fields may hold numbers, strings, None, lists/tuples/dicts of those, nested reports, tensors and
numpy arrays (written as nested lists) and paths (written as strings).
"""

import dataclasses
from pathlib import Path

import numpy as np
import torch


def to_dict(value):
    """A report (or any value a report field may hold) as plain JSON data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_dict(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, torch.Tensor):
        return (
            value.detach().cpu().float().tolist() if value.is_floating_point() else value.tolist()
        )
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): to_dict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_dict(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
