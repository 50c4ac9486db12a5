"""What one forward pass should keep: opt-in per kind and per layer, so inference stays fast."""

from dataclasses import dataclass, field

import torch


@dataclass
class Recorder:
    """Ask for `hidden_states`, `attentions` and/or `qkv`, optionally for some `layers` only.

    The model calls `save_*`; what was not asked for is never materialised (attention weights not
    asked for let the fused kernel run). Layer i of hidden states is the input of block i;
    index n_layers is the final output.
    """

    hidden_states: bool = False
    attentions: bool = False
    qkv: bool = False
    layers: frozenset[int] | None = None  # None = every layer
    saved: dict[str, dict[int, torch.Tensor]] = field(default_factory=dict)

    def wants(self, kind: str, layer: int) -> bool:
        return getattr(self, kind) and (self.layers is None or layer in self.layers)

    def save(self, kind: str, layer: int, value: torch.Tensor) -> None:
        if self.wants(kind, layer):
            self.saved.setdefault(kind, {})[layer] = value

    def save_qkv(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
        if self.wants("qkv", layer):
            self.saved.setdefault("qkv", {})[layer] = torch.stack(
                (
                    q,
                    k.repeat_interleave(q.shape[1] // k.shape[1], dim=1),
                    v.repeat_interleave(q.shape[1] // v.shape[1], dim=1),
                )
            )  # [3, b, heads, s, hd]
