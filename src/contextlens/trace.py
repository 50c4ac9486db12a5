"""The trace: everything one forward pass computed for one text, ready to look at."""

from dataclasses import dataclass

import torch


@dataclass
class Trace:
    """One text through the model.

    hidden_states: `[n_layers + 1, seq, d_model]` — [0] the input embeddings (token + position,
        after the embedding norm if the model has one), [i] the output of layer i: the
        contextual embeddings. None if not recorded.
    attentions: `[n_layers, n_heads, seq, seq]` — row q is how token q spreads its attention
        over the tokens (each row sums to 1; above the diagonal is 0 for decoders).
    qkv: `[n_layers, 3, n_heads, seq, head_dim]` — queries, keys (after RoPE, if any) and values.
    layers: which layers the tensors hold, when only some were asked for (else all).
    """

    text: str
    tokens: list[str]
    ids: list[int]
    offsets: list[tuple[int, int]]  # each token's character span in `text`
    special: list[bool]  # [CLS], [SEP], <s> …: added by the tokenizer, not from the text
    hidden_states: torch.Tensor | None = None
    attentions: torch.Tensor | None = None
    qkv: torch.Tensor | None = None
    layers: list[int] | None = None
    model: str = ""

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        shapes = ", ".join(
            f"{k}={list(v.shape)}"
            for k, v in (
                ("hidden_states", self.hidden_states),
                ("attentions", self.attentions),
                ("qkv", self.qkv),
            )
            if v is not None
        )
        return f"Trace({self.model}: {len(self)} tokens, {shapes})"
