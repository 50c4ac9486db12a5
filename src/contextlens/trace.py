"""The trace: everything one forward pass computed for one text, ready to look at."""

from dataclasses import dataclass

import torch


@dataclass
class EmbeddingParts:
    """What the input embedding is made of, each `[seq, d_model]`.

    token: the token's row of the embedding matrix.
    position: its position vector, learned or sinusoidal; None for RoPE (which rotates queries
        and keys inside attention instead) and models without positions.
    token_type: the segment embedding (type 0) for models that have one, else None.
    sum: token + position + token_type.
    normed: the sum after the embedding norm, None if the model has none; what enters layer 1
        is `normed` if present, else `sum`.
    """

    token: torch.Tensor
    sum: torch.Tensor
    position: torch.Tensor | None = None
    token_type: torch.Tensor | None = None
    normed: torch.Tensor | None = None

    @property
    def input(self) -> torch.Tensor:
        """The input embedding that enters layer 1 `[seq, d_model]`."""
        return self.sum if self.normed is None else self.normed


@dataclass
class Trace:
    """One text through the model.

    hidden_states: `[n_layers + 1, seq, d_model]` — [0] the input embeddings (token + position,
        after the embedding norm if the model has one), [i] the output of layer i: the
        contextual embeddings. None if not recorded.
    attentions: `[n_layers, n_heads, seq, seq]` — row q is how token q spreads its attention
        over the tokens (each row sums to 1; above the diagonal is 0 for decoders).
    qkv: `[n_layers, 3, n_heads, seq, head_dim]` — queries, keys (after RoPE, if any) and values.
    embedding_parts: the parts of the input embedding (see `EmbeddingParts`), None if not
        recorded.
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
    embedding_parts: EmbeddingParts | None = None
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
