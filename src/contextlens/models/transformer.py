"""One transformer, assembled from the shared blocks; architectures are configurations of it.

ids ─► token embedding (+ learned/sinusoidal positions) (+ token types) (→ norm)
    ─► n_layers × Block(attention, MLP)                  (RoPE applied inside attention)
    ─► (final norm) ─► hidden states ─► (LM head → logits)
"""

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ..errors import ContextlensError
from ..nn import (
    MLP,
    Attention,
    Block,
    KVCache,
    Pass,
    RoPE,
    attention_mask,
    column_major,
    make_norm,
    sinusoidal_positions,
)
from ..nn.record import Recorder

# Hugging Face `hidden_act` / `activation_function` names -> ours (nn.layers.ACTIVATIONS)
HF_ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
    "silu": "silu",
    "swish": "silu",
    "relu": "relu",
}


def hf_activation(name: str) -> str:
    """A Hugging Face activation name as one of ours; unknown names are a clear error."""
    if name not in HF_ACTIVATIONS:
        raise ContextlensError(
            f"activation {name!r} is not supported; supported: {', '.join(HF_ACTIVATIONS)}"
        )
    return HF_ACTIVATIONS[name]


@dataclass(frozen=True)
class TransformerConfig:
    architecture: str  # "bert", "llama", "gpt2": the family the weights come from
    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int  # < n_heads: grouped-query attention
    d_ff: int
    max_positions: int
    position: Literal["learned", "sinusoidal", "rope"]
    norm: Literal["layernorm", "rmsnorm"]
    norm_eps: float
    pre_norm: bool  # False: post-norm (BERT)
    activation: str  # key of nn.layers.ACTIVATIONS
    gated_mlp: bool  # SwiGLU
    causal: bool  # decoder: each token sees only itself and earlier tokens
    bias: bool = True  # biases in attention and MLP projections
    rope_theta: float = 10000.0
    type_vocab_size: int = 0  # BERT's segment (token type) embeddings
    embedding_norm: bool = False  # BERT normalises the summed embeddings
    final_norm: bool = False  # pre-norm models normalise the last hidden state
    lm_head: bool = False
    tie_lm_head: bool = True

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


def table(rows: int, d: int) -> nn.Embedding:
    """A lookup table `[rows, d]` whose values come from the checkpoint (no random init)."""
    return nn.Embedding.from_pretrained(torch.empty(rows, d), freeze=True)


class Transformer(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.tok = table(cfg.vocab_size, d)
        self.pos = table(cfg.max_positions, d) if cfg.position == "learned" else None
        if cfg.position == "sinusoidal":
            self.register_buffer(
                "sinusoids", sinusoidal_positions(cfg.max_positions, d), persistent=False
            )
        self.types = table(cfg.type_vocab_size, d) if cfg.type_vocab_size else None
        self.emb_norm = make_norm(cfg.norm, d, cfg.norm_eps) if cfg.embedding_norm else None
        rope = (
            RoPE(cfg.head_dim, cfg.rope_theta, cfg.max_positions)
            if cfg.position == "rope"
            else None
        )
        self.blocks = nn.ModuleList(
            Block(
                Attention(d, cfg.n_heads, cfg.n_kv_heads, cfg.bias, rope, layer=i),
                MLP(d, cfg.d_ff, cfg.activation, cfg.gated_mlp, cfg.bias),
                make_norm(cfg.norm, d, cfg.norm_eps),
                make_norm(cfg.norm, d, cfg.norm_eps),
                pre=cfg.pre_norm,
            )
            for i in range(cfg.n_layers)
        )
        self.final_norm = make_norm(cfg.norm, d, cfg.norm_eps) if cfg.final_norm else None
        self.lm_head = nn.Linear(d, cfg.vocab_size, bias=False) if cfg.lm_head else None
        if self.lm_head is not None and cfg.tie_lm_head:
            self.lm_head.weight = self.tok.weight
        self.register_load_state_dict_post_hook(Transformer._lay_out_weights)
        # empty, follows .to(): where and in what dtype activations live, whatever the weights
        # are (a quantised table has none to ask); on the CPU even while built on "meta"
        self.register_buffer("like", torch.empty(0, device="cpu"), persistent=False)

    @staticmethod
    def _lay_out_weights(model: "Transformer", _incompatible) -> None:
        """After loading: the LM head's weight in `[in, out]` memory order (see `column_major`).

        The head is the largest matrix a generation step reads; a tied head shares the token
        table, which then takes that order too (a lookup reads only a few rows). The blocks'
        weights keep the checkpoint's order, so hidden states match the reference's bit for
        bit where the same kernels run.
        """
        if model.lm_head is None:
            return
        owner = model.tok if model.cfg.tie_lm_head else model.lm_head
        owner.weight = nn.Parameter(column_major(owner.weight.detach()), requires_grad=False)
        if model.cfg.tie_lm_head:
            model.lm_head.weight = model.tok.weight

    @property
    def device(self) -> torch.device:
        return self.like.device

    @property
    def dtype(self) -> torch.dtype:
        """The dtype activations are computed in."""
        return self.like.dtype

    def embed(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """The input embeddings that enter layer 1: ids [b, s], positions [s] -> [b, s, d]."""
        x = self.tok(ids)
        if self.pos is not None:
            x = x + self.pos(positions)
        if self.cfg.position == "sinusoidal":
            x = x + self.sinusoids[positions]
        if self.types is not None:
            x = x + self.types.weight[0]  # one segment: token type 0 everywhere
        return self.emb_norm(x) if self.emb_norm is not None else x

    def forward(
        self,
        ids: torch.Tensor,
        pad_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        record: Recorder | None = None,
    ) -> torch.Tensor:
        """ids: [b, s] (pad_mask [b, k]: True for real tokens, k = cached + s) -> hidden [b, s, d].

        With a cache, the s new tokens continue the cached ones and the cache grows by s.
        Inputs may be on any device; the pass runs on the model's, in its dtype.
        """
        s = ids.shape[1]
        start = cache.length if cache is not None else 0
        if start + s > self.cfg.max_positions:
            raise ValueError(f"{start + s} positions exceed the model's {self.cfg.max_positions}")
        device = self.device
        positions = torch.arange(start, start + s, device=device)
        x = self.embed(ids.to(device), positions)
        mask = attention_mask(pad_mask, self.cfg.causal, s, start + s, x.dtype, device)
        ctx = Pass(positions, mask, cache, record)
        if record is not None:
            record.n_layers = self.cfg.n_layers
        for i, block in enumerate(self.blocks):
            if record is not None:
                record.save("hidden_states", i, x)
            x = block(x, ctx)
        if cache is not None:
            cache.length += s
        if self.final_norm is not None:
            x = self.final_norm(x)
        if record is not None:
            record.save("hidden_states", self.cfg.n_layers, x)
        return x

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden [..., d] -> next-token logits [..., vocab]."""
        if self.lm_head is None:
            raise ValueError("this model has no language-model head")
        return self.lm_head(hidden)

    def new_cache(self, batch: int, max_len: int) -> KVCache:
        """An empty KV cache for `batch` sequences of up to `max_len` tokens, like the model's
        activations in dtype and device."""
        c = self.cfg
        return KVCache(
            c.n_layers, batch, c.n_kv_heads, c.head_dim, max_len, self.dtype, self.device
        )
