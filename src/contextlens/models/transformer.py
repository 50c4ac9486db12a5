"""One transformer, assembled from the shared blocks; architectures are configurations of it.

ids ─► token embedding (+ learned/sinusoidal positions) (+ token types) (→ norm)
    ─► n_layers × Block(attention, MLP)                  (RoPE applied inside attention)
    ─► (final norm) ─► hidden states ─► (LM head → logits)
"""

import math
from collections.abc import Callable
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
    Linear,
    Pass,
    RoPE,
    attention_mask,
    column_major,
    make_norm,
    sinusoidal_positions,
)
from ..nn.attention import Latent, LatentAttention, LatentCache, soft_cap
from ..nn.moe import MoE, MoEConfig
from ..nn.record import Recorder, at

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
    if not isinstance(name, str) or name not in HF_ACTIVATIONS:
        raise ContextlensError(
            f"activation {name!r} is not supported; supported: {', '.join(HF_ACTIVATIONS)}"
        )
    return HF_ACTIVATIONS[name]


def from_hf(hf: dict, keys: dict[str, str], defaults: dict) -> dict:
    """TransformerConfig fields from a Hugging Face config: field -> hf[key] for each field, key
    of `keys`; a key that is absent or null takes its value in `defaults`, if it has one there.
    A required key that is absent raises KeyError. Values are checked later, by `validate`."""
    return {
        field: defaults[key] if hf.get(key) is None and key in defaults else hf[key]
        for field, key in keys.items()
    }


COUNTS = {  # field -> what it counts; each must be a positive integer
    "vocab_size": "the vocabulary size",
    "d_model": "the width of the hidden states",
    "n_layers": "the number of layers",
    "n_heads": "the number of attention heads",
    "n_kv_heads": "the number of key/value heads",
    "d_ff": "the width of the MLP",
    "max_positions": "the most tokens the model takes",
}
POSITIVE_NUMBERS = ("norm_eps", "rope_theta")
OPTIONAL_POSITIVE = {  # field -> what it is; each is None or a finite number > 0
    "attn_scale": "the attention scores' scale",
    "attn_softcap": "the attention scores' soft cap",
    "logit_softcap": "the logits' soft cap",
    "embedding_scale": "the token rows' scale",
    "rope_local_theta": "the RoPE base of the sliding-window layers",
}
FLAGS = ("bias", "out_bias", "mlp_bias", "tie_lm_head", "qk_norm", "post_norms")


def is_int(value) -> bool:
    """An integer, not a bool (JSON's true is no count)."""
    return isinstance(value, int) and not isinstance(value, bool)


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
    norm: Literal["layernorm", "rmsnorm", "rmsnorm_plus_one"]
    norm_eps: float
    pre_norm: bool  # False: post-norm (BERT)
    activation: str  # key of nn.layers.ACTIVATIONS
    gated_mlp: bool  # SwiGLU
    causal: bool  # decoder: each token sees only itself and earlier tokens
    bias: bool = True  # biases in the attention's Q/K/V projection
    out_bias: bool = True  # a bias in the attention's output projection (Qwen2: none)
    mlp_bias: bool = True  # biases in the MLP projections
    rope_theta: float = 10000.0
    type_vocab_size: int = 0  # BERT's segment (token type) embeddings
    embedding_norm: bool = False  # BERT normalises the summed embeddings
    final_norm: bool = False  # pre-norm models normalise the last hidden state
    lm_head: bool = False
    tie_lm_head: bool = True
    declared_head_dim: int | None = None  # a head width the checkpoint states, if it does
    attn_scale: float | None = None  # None: head_dim^-½ (Gemma: query_pre_attn_scalar^-½)
    attn_softcap: float | None = None  # scores -> cap · tanh(scores / cap) (Gemma 2)
    logit_softcap: float | None = None  # the same for the logits (Gemma 2)
    embedding_scale: float | None = None  # token rows times this (Gemma: √d_model)
    qk_norm: bool = False  # a norm over each head's queries and keys before RoPE (Qwen3, Gemma 3)
    post_norms: bool = False  # a norm on each sublayer's output too (Gemma 2/3)
    sliding_window: int | None = None  # windowed layers see only this many latest positions
    window_layers: tuple[int, ...] | None = None  # the windowed layers (None: all, if a window)
    rope_local_theta: float | None = None  # RoPE base of the windowed layers (Gemma 3)
    latent: Latent | None = None  # multi-head latent attention's widths (DeepSeek)
    moe: MoEConfig | None = None  # mixture-of-experts MLPs (DeepSeek)

    @property
    def head_dim(self) -> int:
        return self.declared_head_dim or self.d_model // self.n_heads

    def windowed(self, layer: int) -> bool:
        """Whether `layer` attends through the sliding window."""
        if self.sliding_window is None:
            return False
        return self.window_layers is None or layer in self.window_layers

    def validate(self, name: Callable[[str], str] = repr) -> None:
        """Every value of the right type, in range and consistent with the others; else one
        ContextlensError naming the value as `name(field)` does (the checkpoint's own key)."""
        self._check_types(name)
        self._check_heads(name)

    def _bad(self, name: Callable[[str], str], field: str, expected: str) -> ContextlensError:
        return ContextlensError(f"{name(field)} is {getattr(self, field)!r}; expected {expected}")

    def _check_types(self, name: Callable[[str], str]) -> None:
        for field, meaning in COUNTS.items():
            value = getattr(self, field)
            if not is_int(value) or value <= 0:
                raise self._bad(name, field, f"a positive integer ({meaning})")
        if not is_int(self.type_vocab_size) or self.type_vocab_size < 0:
            raise self._bad(name, "type_vocab_size", "an integer ≥ 0 (the number of token types)")
        for field in POSITIVE_NUMBERS:
            value = getattr(self, field)
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise self._bad(name, field, "a number")
            if not math.isfinite(value) or value <= 0:
                raise self._bad(name, field, "a finite number > 0")
        for field in FLAGS:
            if not isinstance(getattr(self, field), bool):
                raise self._bad(name, field, "true or false")
        if self.declared_head_dim is not None and not (
            is_int(self.declared_head_dim) and self.declared_head_dim > 0
        ):
            raise self._bad(name, "declared_head_dim", "a positive integer (the head width)")
        for field, meaning in OPTIONAL_POSITIVE.items():
            value = getattr(self, field)
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if value is not None and not (ok and math.isfinite(value) and value > 0):
                raise self._bad(name, field, f"null or a finite number > 0 ({meaning})")
        window = self.sliding_window
        if window is not None and not (is_int(window) and window > 0):
            raise self._bad(name, "sliding_window", "null or a positive integer (positions)")

    def _check_heads(self, name: Callable[[str], str]) -> None:
        """Heads split the width evenly, key/value heads are shared by equal groups of query
        heads, and RoPE has pairs to rotate."""
        if self.declared_head_dim is None and self.d_model % self.n_heads:
            raise self._bad(name, "n_heads", f"a divisor of {name('d_model')} ({self.d_model})")
        if self.n_heads % self.n_kv_heads:
            raise self._bad(name, "n_kv_heads", f"a divisor of {name('n_heads')} ({self.n_heads})")
        if self.position == "rope" and self.head_dim % 2 and self.declared_head_dim:
            raise self._bad(name, "declared_head_dim", "an even width, for RoPE to rotate pairs")
        if self.position == "rope" and self.head_dim % 2:
            raise self._bad(
                name,
                "n_heads",
                f"a count that leaves heads of an even width for RoPE; {self.d_model} / "
                f"{self.n_heads} = {self.head_dim} is odd",
            )


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
            if cfg.position == "rope" and cfg.latent is None  # latent attention has its own
            else None
        )
        local_rope = rope
        if rope is not None and cfg.rope_local_theta is not None:  # Gemma 3's windowed layers
            local_rope = RoPE(cfg.head_dim, cfg.rope_local_theta, cfg.max_positions)
        self.blocks = nn.ModuleList(
            self._block(i, local_rope if cfg.windowed(i) else rope) for i in range(cfg.n_layers)
        )
        self.final_norm = make_norm(cfg.norm, d, cfg.norm_eps) if cfg.final_norm else None
        self.lm_head = Linear(d, cfg.vocab_size, bias=False) if cfg.lm_head else None
        if self.lm_head is not None and cfg.tie_lm_head:
            self.lm_head.weight = self.tok.weight
        self.register_load_state_dict_post_hook(Transformer._lay_out_weights)
        # empty, follows .to(): where and in what dtype activations live, whatever the weights
        # are (a quantised table has none to ask); on the CPU even while built on "meta"
        self.register_buffer("like", torch.empty(0, device="cpu"), persistent=False)

    def _block(self, i: int, rope: RoPE | None) -> Block:
        """Layer i as the config describes it."""
        cfg, d = self.cfg, self.cfg.d_model

        def norm(width: int = d) -> nn.Module:
            return make_norm(cfg.norm, width, cfg.norm_eps)

        attention = (
            self._latent_attention(i)
            if cfg.latent
            else Attention(
                d,
                cfg.n_heads,
                cfg.n_kv_heads,
                cfg.bias,
                rope,
                layer=i,
                head_dim=cfg.head_dim,
                out_bias=cfg.out_bias,
                scale=cfg.attn_scale,
                softcap=cfg.attn_softcap,
                window=cfg.sliding_window if cfg.windowed(i) else None,
                qk_norm=(norm(cfg.head_dim), norm(cfg.head_dim)) if cfg.qk_norm else None,
            )
        )
        routed = cfg.moe is not None and i >= cfg.moe.first_dense
        mlp = (
            MoE(d, cfg.moe, cfg.activation)
            if routed
            else MLP(d, cfg.d_ff, cfg.activation, cfg.gated_mlp, cfg.mlp_bias)
        )
        post = (norm(), norm()) if cfg.post_norms else None
        return Block(attention, mlp, norm(), norm(), pre=cfg.pre_norm, post=post)

    def _latent_attention(self, i: int) -> LatentAttention:
        """Multi-head latent attention for layer i; its RoPE (d_r wide) shared by all layers."""
        cfg, dims = self.cfg, self.cfg.latent
        ropes = self.__dict__.setdefault("_ropes", {})
        if "latent" not in ropes:
            ropes["latent"] = dims.rope(cfg.rope_theta, cfg.max_positions)
        q_norm = make_norm("rmsnorm", dims.q_rank, dims.norm_eps) if dims.q_rank else None
        kv_norm = make_norm("rmsnorm", dims.kv_rank, dims.norm_eps)
        return LatentAttention(
            cfg.d_model,
            cfg.n_heads,
            dims,
            ropes["latent"],
            q_norm,
            kv_norm,
            dims.scale,
            cfg.bias,
            i,
        )

    def use_latent_path(self, path: Literal["absorbed", "naive"]) -> None:
        """Which way multi-head latent attention computes: 'absorbed' (the default: W_UK folded
        into the queries, scored against the cached latent) or 'naive' (keys and values
        decompressed). Both give the same attention; other attention ignores this."""
        if path not in ("absorbed", "naive"):
            raise ContextlensError(f"latent path {path!r} is unknown; use 'absorbed' or 'naive'")
        for block in self.blocks:
            if isinstance(block.attn, LatentAttention):
                block.attn.absorbed = path == "absorbed"

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

    def embed(
        self, ids: torch.Tensor, positions: torch.Tensor, record: Recorder | None = None
    ) -> torch.Tensor:
        """The input embeddings that enter layer 1: ids [b, s], positions [s] -> [b, s, d].

        Their parts (token row, position, token type, sum, after the norm) go to `record` when
        it asks for embedding_parts.
        """
        parts = {"token": at(record, "token", 0, self._token_rows(ids))}
        if self.pos is not None:
            parts["position"] = self.pos(positions)
        if self.cfg.position == "sinusoidal":
            parts["position"] = self.sinusoids[positions]
        if self.types is not None:
            parts["token_type"] = self.types.weight[0]  # one segment: token type 0 everywhere
        x = parts["token"]
        for name in ("position", "token_type"):
            if name in parts:
                x = x + parts[name]
        parts["sum"] = x
        if self.emb_norm is not None:
            x = parts["normed"] = self.emb_norm(x)
        if record is not None:
            record.save_embedding_parts(parts)
        return x

    def _token_rows(self, ids: torch.Tensor) -> torch.Tensor:
        """ids [b, s] -> their rows of the token table [b, s, d], scaled if the family does."""
        rows = self.tok(ids)
        if self.cfg.embedding_scale is None:
            return rows
        return rows * torch.tensor(self.cfg.embedding_scale, dtype=rows.dtype)

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
        if record is not None:
            record.begin(self.cfg.n_layers)
        x = self.embed(ids.to(device), positions, record)
        mask = attention_mask(pad_mask, self.cfg.causal, s, start + s, x.dtype, device)
        window = self.cfg.sliding_window
        window_mask = (
            attention_mask(pad_mask, self.cfg.causal, s, start + s, x.dtype, device, window)
            if window is not None
            else None
        )
        step = (
            ids.shape == (1, 1)
            and isinstance(cache, KVCache)
            and record is None
            and x.dtype == torch.float32
            and device.type == "cpu"
            and not x.requires_grad
        )
        ctx = Pass(positions, mask, cache, record, window_mask=window_mask, step=step)
        for i, block in enumerate(self.blocks):
            if record is not None:
                x = at(record, "resid", i, x)
                record.save("hidden_states", i, x)
            x = block(x, ctx)
        if cache is not None:
            cache.length += s
        x = at(record, "resid", self.cfg.n_layers, x)
        if self.final_norm is not None:
            x = self.final_norm(x)
        if record is not None:
            record.save("hidden_states", self.cfg.n_layers, x)
        return x

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden [..., d] -> next-token logits [..., vocab]."""
        if self.lm_head is None:
            raise ValueError("this model has no language-model head")
        logits = self.lm_head(hidden)
        cap = self.cfg.logit_softcap
        return logits if cap is None else soft_cap(logits, cap)

    def new_cache(self, batch: int, max_len: int) -> KVCache | LatentCache:
        """An empty KV cache for `batch` sequences of up to `max_len` tokens, like the model's
        activations in dtype and device (with latent attention: the latents only)."""
        c = self.cfg
        if c.latent is not None:
            width = c.latent.kv_rank + c.latent.rope_dim
            return LatentCache(c.n_layers, batch, width, max_len, self.dtype, self.device)
        return KVCache(
            c.n_layers, batch, c.n_kv_heads, c.head_dim, max_len, self.dtype, self.device
        )
