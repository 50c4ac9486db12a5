"""What one forward pass should keep: opt-in per kind and per layer, so inference stays fast."""

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

Edit = Callable[[torch.Tensor], torch.Tensor] | torch.Tensor

POINTS = {  # the named points of a pass that can be kept or replaced, with their shapes
    "token": "the token-embedding rows, before positions are added (layer 0 only) [b, s, d]",
    "resid": "the residual stream entering block i (i = n_layers: the last block's output, "
    "before the final norm) [b, s, d]",
    "heads": "each head's output, before the output projection [b, s, heads, head_dim]",
    "attn": "the attention output, after the output projection [b, s, d]",
    "mlp": "the MLP output [b, s, d]",
}


@dataclass
class Recorder:
    """Ask for `hidden_states`, `attentions`, `qkv` and/or `embedding_parts`, optionally for some
    `layers` only.

    What was not asked for is never materialised (attention weights not asked for let the fused
    kernel run). What was asked for is written straight into one stacked tensor per kind —
    `saved["attentions"]`: `[n_recorded, b, heads, q, k]` — so nothing is copied afterwards;
    it has the dtype and device of what the model computed.
    Hidden-state layer i is the input of block i; index n_layers is the final output.
    Embedding parts are kept as `saved["embedding.token"]` … `[b, s, d]`.

    Hooks: the pass calls `point(name, layer, x)` at each of `POINTS`. `edits[(name, layer)]`
    replaces what flows on from there (a tensor broadcast to x's shape, or a function of x);
    the points named in `keep` are kept, as they flow on, in `points[(name, layer)]`.
    """

    hidden_states: bool = False
    attentions: bool = False
    qkv: bool = False
    embedding_parts: bool = False
    layers: frozenset[int] | None = None  # None = every layer
    saved: dict[str, torch.Tensor] = field(default_factory=dict)
    n_layers: int = 0  # set by the model when the pass begins
    edits: dict[tuple[str, int], Edit] = field(default_factory=dict)
    keep: frozenset[str] = frozenset()
    points: dict[tuple[str, int], torch.Tensor] = field(default_factory=dict)
    hooked: bool = field(default=False, init=False)  # set by `begin`: any point edited or kept
    index: dict[int, int] = field(default_factory=dict, init=False)  # by `begin`: layer -> slot

    def begin(self, n_layers: int) -> None:
        """Called by the model as the pass begins: what the pass asks of every layer is worked
        out once here, not at each point (between two products the interpreter runs with caches
        the weights just streamed through, and every lookup there costs)."""
        self.n_layers = n_layers
        self.hooked = bool(self.edits or self.keep)
        self.index = {layer: i for i, layer in enumerate(self.recorded("hidden_states"))}

    def wants(self, kind: str, layer: int) -> bool:
        return getattr(self, kind) and (self.layers is None or layer in self.layers)

    def recorded(self, kind: str) -> list[int]:
        """The layers `kind` is kept for, in order (hidden states have one more: the output)."""
        n = self.n_layers + (kind == "hidden_states")
        return [i for i in range(n) if self.layers is None or i in self.layers]

    def slot(
        self, kind: str, layer: int, shape: tuple[int, ...], like: torch.Tensor
    ) -> torch.Tensor:
        """The view of the stacked tensor where `kind` at `layer` goes (allocated on first use,
        with `like`'s dtype and device)."""
        stack = self.saved.get(kind)
        if stack is None:
            stack = self.saved[kind] = like.new_empty((len(self.recorded(kind)), *shape))
        return stack[self.index[layer]]

    def save(self, kind: str, layer: int, value: torch.Tensor) -> None:
        if self.wants(kind, layer):
            self.slot(kind, layer, tuple(value.shape), value).copy_(value)

    def save_qkv(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
        """Queries, keys, values (KV heads repeated to match query heads): [3, b, h, s, hd]."""
        if self.wants("qkv", layer):
            group = q.shape[1] // k.shape[1]
            slot = self.slot("qkv", layer, (3, *q.shape), q)
            slot[0].copy_(q)
            for i, x in ((1, k), (2, v)):
                slot[i].copy_(x if group == 1 else x.repeat_interleave(group, dim=1))

    def save_embedding_parts(self, parts: dict[str, torch.Tensor]) -> None:
        """The parts of the input embedding, each broadcast to the sum's `[b, s, d]`: token,
        position (absent for RoPE), token_type (absent without type embeddings), sum and normed
        (absent without an embedding norm)."""
        if self.embedding_parts:
            shape = parts["sum"].shape
            for name, value in parts.items():
                self.saved[f"embedding.{name}"] = value.expand(shape).clone()

    def point(self, name: str, layer: int, x: torch.Tensor) -> torch.Tensor:
        """`x` at point `name` of `layer`, replaced if an edit asks; kept if `keep` names it."""
        edit = self.edits.get((name, layer))
        if edit is not None:
            x = edit(x) if callable(edit) else edit.to(x).expand_as(x)
        if name in self.keep and (self.layers is None or layer in self.layers):
            self.points[(name, layer)] = x
        return x


def at(record: Recorder | None, name: str, layer: int, x: torch.Tensor) -> torch.Tensor:
    """`record.point(name, layer, x)`, or `x` itself in a pass that records nothing or edits
    and keeps no point."""
    return x if record is None or not record.hooked else record.point(name, layer, x)
