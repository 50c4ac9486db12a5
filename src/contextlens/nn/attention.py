"""Scaled dot-product attention, written once for every architecture.

    scores  = Q · Kᵀ / √d_head          [b, heads, q, k]
    scores += mask                      (0 where allowed, a very negative number where not)
    weights = softmax(scores)           each row sums to 1
    out     = weights · V               [b, heads, q, d_head]

Grouped-query attention (n_kv_heads < n_heads) lets each key/value head serve
n_heads / n_kv_heads query heads. When the weights are not wanted the fused kernel
(`torch.nn.functional.scaled_dot_product_attention`) computes the same output without
materialising them.

What one forward pass shares with every layer — positions, mask, KV cache, recorder — travels
as one `Pass`; what belongs to a layer (its index) is fixed when the layer is built.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .positions import RoPE
from .record import Recorder, at


def attention_mask(
    pad_mask: torch.Tensor | None,
    causal: bool,
    q_len: int,
    k_len: int,
    dtype: torch.dtype,
    device: torch.device | str = "cpu",
) -> torch.Tensor | None:
    """Additive mask `[b or 1, 1, q, k]`: 0 where a query may look, dtype-min where it may not.

    pad_mask: `[b, k]`, True for real tokens. With causal=True the q queries are the last q of
    the k positions (a KV cache holds the first k - q), and each sees itself and what precedes it.
    Returns None when nothing is masked. The mask is made on `device`, in `dtype`.
    """
    allowed = None
    if causal and q_len > 1:
        q_pos = torch.arange(k_len - q_len, k_len, device=device)[:, None]  # [q, 1]
        allowed = (torch.arange(k_len, device=device)[None, :] <= q_pos)[None, None]  # [1,1,q,k]
    if pad_mask is not None and not bool(pad_mask.all()):
        keys = pad_mask[:, None, None, :].to(device=device, dtype=torch.bool)  # [b, 1, 1, k]
        allowed = keys if allowed is None else allowed & keys
    if allowed is None:
        return None
    zero = torch.zeros((), dtype=dtype, device=device)
    return torch.where(allowed, zero, torch.finfo(dtype).min)


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    need_weights: bool = False,
    weights_out: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """q: [b, h, q, d], k/v: [b, h_kv, k, d] -> (out [b, h, q, d], weights [b, h, q, k] | None).

    Grouped-query attention without copying keys/values: the `group` query heads that share a
    KV head are laid side by side as `group × q` query rows of that head. `weights_out`, if
    given, is where the weights are written (a recorder's slot).
    """
    b, h, s, d = q.shape
    h_kv = k.shape[1]
    group = h // h_kv
    q = q.reshape(b, h_kv, group * s, d)  # [b, h_kv, group·q, d]
    if mask is not None and group > 1 and mask.shape[-2] > 1:
        mask = mask.repeat(1, 1, group, 1)  # per-query rows: [b|1, 1, group·q, k]
    if not need_weights:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return out.reshape(b, h, s, d), None
    scores = (q * d**-0.5) @ k.transpose(-2, -1)  # [b, h_kv, group·q, k]
    if mask is not None:
        scores += mask
    if weights_out is not None:
        weights_out = weights_out.view(scores.shape)
    weights = torch.softmax(scores, dim=-1, out=weights_out)
    return (weights @ v).reshape(b, h, s, d), weights.view(b, h, s, -1)


class KVCache:
    """Keys and values of the tokens seen so far, per layer, so generation feeds one token a step.

    Tensors are preallocated in the model's dtype, on its device:
    `[b, n_kv_heads, max_len, head_dim]` per layer.
    """

    def __init__(
        self,
        n_layers: int,
        batch: int,
        n_kv_heads: int,
        head_dim: int,
        max_len: int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ):
        shape = (batch, n_kv_heads, max_len, head_dim)
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        self.length = 0  # positions filled (advanced by the model after every layer ran)

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        """Append k/v `[b, h_kv, s, d]`; return everything cached so far for this layer."""
        end = self.length + k.shape[2]
        self.k[layer][:, :, self.length : end] = k
        self.v[layer][:, :, self.length : end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]


@dataclass(frozen=True)
class Pass:
    """What every layer of one forward pass shares, made once per pass by the model.

    positions: `[s]` the new tokens' positions; mask: additive `[b|1, 1, s, k]` or None;
    cache: the KV cache the new keys/values join (None: no cache); record: what to keep.
    """

    positions: torch.Tensor
    mask: torch.Tensor | None = None
    cache: KVCache | None = None
    record: Recorder | None = None


class Attention(nn.Module):
    """Multi-head (or grouped-query) self-attention with one fused Q/K/V projection.

    `layer` is this attention's index in the model: where it reads/writes the cache and records.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        n_kv_heads: int,
        bias: bool,
        rope: RoPE | None = None,
        layer: int = 0,
    ):
        super().__init__()
        self.n_heads, self.n_kv_heads = n_heads, n_kv_heads
        self.head_dim = d_model // n_heads
        self.qkv = nn.Linear(d_model, (n_heads + 2 * n_kv_heads) * self.head_dim, bias=bias)
        self.out = nn.Linear(n_heads * self.head_dim, d_model, bias=bias)
        self.rope = rope
        self.layer = layer

    def forward(self, x: torch.Tensor, ctx: Pass) -> torch.Tensor:
        """x: [b, s, d_model] -> [b, s, d_model]; weights and q/k/v go to ctx.record if asked."""
        b, s, _ = x.shape
        hd, record = self.head_dim, ctx.record
        q, k, v = self.qkv(x).split(
            [self.n_heads * hd, self.n_kv_heads * hd, self.n_kv_heads * hd], dim=-1
        )
        q = q.view(b, s, self.n_heads, hd).transpose(1, 2)  # [b, h, s, hd]
        k = k.view(b, s, self.n_kv_heads, hd).transpose(1, 2)  # [b, h_kv, s, hd]
        v = v.view(b, s, self.n_kv_heads, hd).transpose(1, 2)  # [b, h_kv, s, hd]
        if self.rope is not None:
            q, k = self.rope(q, ctx.positions), self.rope(k, ctx.positions)
        if record is not None:
            record.save_qkv(self.layer, q, k, v)
        if ctx.cache is not None:
            k, v = ctx.cache.update(self.layer, k, v)
        slot = None
        if record is not None and record.wants("attentions", self.layer):
            slot = record.slot("attentions", self.layer, (b, self.n_heads, s, k.shape[2]), q)
        y, _ = attend(q, k, v, ctx.mask, slot is not None, slot)  # [b, h, s, hd]
        y = at(record, "heads", self.layer, y.transpose(1, 2))  # [b, s, h, hd]
        return at(record, "attn", self.layer, self.out(y.reshape(b, s, self.n_heads * hd)))
