"""`to_dict`: one report, the same plain data for the CLI's --json and the web API."""

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from contextlens.report import to_dict


@dataclass
class Inner:
    name: str
    scores: torch.Tensor


@dataclass
class Outer:
    path: Path
    inner: list[Inner]
    table: dict = field(default_factory=dict)
    ids: torch.Tensor | None = None
    arr: np.ndarray | None = None


def test_nested_reports_become_plain_json():
    r = Outer(
        Path("a/b"),
        [Inner("x", torch.tensor([0.5, 1.5], dtype=torch.bfloat16))],
        {1: (np.float32(2.5), None)},
        torch.tensor([[1, 2]]),
        np.arange(3),
    )
    d = to_dict(r)
    assert d == {
        "path": "a/b",
        "inner": [{"name": "x", "scores": [0.5, 1.5]}],
        "table": {"1": [2.5, None]},
        "ids": [[1, 2]],
        "arr": [0, 1, 2],
    }
    assert json.loads(json.dumps(d)) == d
