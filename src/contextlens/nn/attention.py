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

from ..errors import ContextlensError
from .positions import RoPE, YaRN, rotate_half, yarn_mscale
from .quant import Linear, kernels
from .record import Recorder, at


def attention_mask(
    pad_mask: torch.Tensor | None,
    causal: bool,
    q_len: int,
    k_len: int,
    dtype: torch.dtype,
    device: torch.device | str = "cpu",
    window: int | None = None,
) -> torch.Tensor | None:
    """Additive mask `[b or 1, 1, q, k]`: 0 where a query may look, dtype-min where it may not.

    pad_mask: `[b, k]`, True for real tokens. With causal=True the q queries are the last q of
    the k positions (a KV cache holds the first k - q), and each sees itself and what precedes it.
    A sliding `window` lets each query see only the `window` latest positions, itself included.
    Returns None when nothing is masked. The mask is made on `device`, in `dtype`.
    """
    allowed = None
    windowed = window is not None and k_len > window
    padded = pad_mask is not None and not bool(pad_mask.all())
    if not (causal and q_len > 1 or windowed or padded):
        return None  # one new token with nothing to hide (a decoding step): no mask to build
    q_pos = torch.arange(k_len - q_len, k_len, device=device)[:, None]  # [q, 1]
    k_pos = torch.arange(k_len, device=device)[None, :]  # [1, k]
    if causal and q_len > 1:
        allowed = (k_pos <= q_pos)[None, None]  # [1, 1, q, k]
    if windowed:
        near = (q_pos - k_pos < window)[None, None]  # [1, 1, q, k]
        allowed = near if allowed is None else allowed & near
    if padded:
        keys = pad_mask[:, None, None, :].to(device=device, dtype=torch.bool)  # [b, 1, 1, k]
        allowed = keys if allowed is None else allowed & keys
    zero = torch.zeros((), dtype=dtype, device=device)
    return torch.where(allowed, zero, torch.finfo(dtype).min)


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    need_weights: bool = False,
    weights_out: torch.Tensor | None = None,
    scale: float | None = None,
    softcap: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """q: [b, h, q, d], k: [b, h_kv, k, d], v: [b, h_kv, k, d_v]
    -> (out [b, h, q, d_v], weights [b, h, q, k] | None).

    Grouped-query attention without copying keys/values: the `group` query heads that share a
    KV head are laid side by side as `group × q` query rows of that head. `weights_out`, if
    given, is where the weights are written (a recorder's slot). Scores are scaled by `scale`
    (default 1/√d); with `softcap` they are squashed to softcap · tanh(scores / softcap) before
    the mask (Gemma 2), which the fused kernel cannot do.
    """
    b, h, s, d = q.shape
    scale = d**-0.5 if scale is None else scale
    h_kv = k.shape[1]
    group = h // h_kv
    if group > 1:
        q = q.reshape(b, h_kv, group * s, d)  # [b, h_kv, group·q, d]
        if mask is not None and mask.shape[-2] > 1:
            mask = mask.repeat(1, 1, group, 1)  # per-query rows: [b|1, 1, group·q, k]
    if not need_weights and softcap is None:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
        return out.reshape(b, h, s, -1), None
    scores = (q * scale) @ k.transpose(-2, -1)  # [b, h_kv, group·q, k]
    if softcap is not None:
        scores = soft_cap(scores, softcap)
    if mask is not None:
        scores += mask
    if weights_out is not None:
        weights_out = weights_out.view(scores.shape)
    weights = torch.softmax(scores, dim=-1, out=weights_out)
    out = (weights @ v).reshape(b, h, s, -1)
    return out, weights.view(b, h, s, -1) if need_weights else None


def soft_cap(x: torch.Tensor, cap: float) -> torch.Tensor:
    """cap · tanh(x / cap): x unchanged near 0, smoothly bounded to (-cap, cap)."""
    return cap * torch.tanh(x / cap)


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

    @property
    def nbytes(self) -> int:
        """Bytes allocated for every layer's keys and values."""
        return sum(t.nbytes for t in self.k + self.v)


class LatentCache:
    """Multi-head latent attention's cache: per layer only the compressed latent c_KV and the
    one-head RoPE key, side by side, `[b, 1, max_len, d_c + d_r]` in the model's dtype and on its
    device — what every head's keys and values are recomputed from."""

    def __init__(
        self,
        n_layers: int,
        batch: int,
        width: int,
        max_len: int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ):
        shape = (batch, 1, max_len, width)
        self.latent = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        self.length = 0  # positions filled (advanced by the model after every layer ran)

    def update(self, layer: int, latent: torch.Tensor) -> torch.Tensor:
        """Append latent `[b, 1, s, d_c + d_r]`; return everything cached so far for this layer."""
        end = self.length + latent.shape[2]
        self.latent[layer][:, :, self.length : end] = latent
        return self.latent[layer][:, :, :end]

    @property
    def nbytes(self) -> int:
        """Bytes allocated for every layer's latents."""
        return sum(t.nbytes for t in self.latent)


@dataclass(frozen=True)
class Pass:
    """What every layer of one forward pass shares, made once per pass by the model.

    positions: `[s]` the new tokens' positions; mask: additive `[b|1, 1, s, k]` or None;
    cache: the KV cache the new keys/values join (None: no cache); record: what to keep;
    window_mask: the mask of the layers with a sliding window; step: the pass is one decoding
    step — one new token of one sequence through a `KVCache`, float32 on the CPU, nothing
    recorded, no gradient — so blocks may run it as fused C calls (`Block.step`).
    """

    positions: torch.Tensor
    mask: torch.Tensor | None = None
    cache: KVCache | LatentCache | None = None
    record: Recorder | None = None
    window_mask: torch.Tensor | None = None
    step: bool = False


class Attention(nn.Module):
    """Multi-head (or grouped-query) self-attention with one fused Q/K/V projection.

    `layer` is this attention's index in the model: where it reads/writes the cache and records.
    Options some families need: a head width other than d_model / n_heads, no output bias where
    Q/K/V have one, a score `scale` and `softcap` (see `attend`), a sliding `window` (the pass's
    window_mask applies), and `qk_norm`: a norm each for queries and keys, per head, before RoPE.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        n_kv_heads: int,
        bias: bool,
        rope: RoPE | None = None,
        layer: int = 0,
        head_dim: int | None = None,
        out_bias: bool | None = None,
        scale: float | None = None,
        softcap: float | None = None,
        window: int | None = None,
        qk_norm: tuple[nn.Module, nn.Module] | None = None,
    ):
        super().__init__()
        self.n_heads, self.n_kv_heads = n_heads, n_kv_heads
        self.head_dim = head_dim or d_model // n_heads
        self.qkv = Linear(d_model, (n_heads + 2 * n_kv_heads) * self.head_dim, bias=bias)
        out_bias = bias if out_bias is None else out_bias
        self.out = Linear(n_heads * self.head_dim, d_model, bias=out_bias)
        self.rope = rope
        self.layer = layer
        self.scale, self.softcap, self.window = scale, softcap, window
        self.q_norm, self.k_norm = qk_norm or (None, None)

    def forward(self, x: torch.Tensor, ctx: Pass) -> torch.Tensor:
        """x: [b, s, d_model] -> [b, s, d_model]; weights and q/k/v go to ctx.record if asked."""
        b, s, _ = x.shape
        h, h_kv, hd, record = self.n_heads, self.n_kv_heads, self.head_dim, ctx.record
        heads = self.qkv(x).view(b, s, h + 2 * h_kv, hd).transpose(1, 2)  # [b, h + 2·h_kv, s, hd]
        q, k, v = heads.split([h, h_kv, h_kv], dim=1)  # [b, h, s, hd], k and v [b, h_kv, s, hd]
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if self.rope is not None:
            q, k = self.rope(q, ctx.positions), self.rope(k, ctx.positions)
        if record is not None:
            record.save_qkv(self.layer, q, k, v)
        if ctx.cache is not None:
            k, v = ctx.cache.update(self.layer, k, v)
        slot = None
        if record is not None and record.wants("attentions", self.layer):
            slot = record.slot("attentions", self.layer, (b, h, s, k.shape[2]), q)
        mask = ctx.window_mask if self.window else ctx.mask
        y, _ = attend(q, k, v, mask, slot is not None, slot, self.scale, self.softcap)
        y = at(record, "heads", self.layer, y.transpose(1, 2))  # [b, s, h, hd]
        return at(record, "attn", self.layer, self.out(y.reshape(b, s, h * hd)))

    def step(self, qkv: torch.Tensor, ctx: Pass) -> torch.Tensor:
        """`forward`'s attention for one decoding step in two C calls (quant.c): RoPE turns the
        new query and key heads, the key and value join ctx.cache, and every head attends over
        the cached positions (the latest `window` with a sliding window), scaled and soft-capped
        as `attend` does. qkv [1, 1, (h + 2·h_kv)·hd], the fused projection's output (turned in
        place) -> the heads' outputs [1, 1, h·hd], before the output projection."""
        lib, hd, h, h_kv = kernels(), self.head_dim, self.n_heads, self.n_kv_heads
        cache, pos = ctx.cache, ctx.cache.length
        q = qkv.data_ptr()
        if self.rope is not None:
            row = pos * hd * self.rope.cos.element_size()
            interleaved = self.rope.rotate is not rotate_half
            cos, sin = self.rope.cos.data_ptr() + row, self.rope.sin.data_ptr() + row
            lib.cl_rope(q, h + h_kv, hd, cos, sin, interleaved)
        k, v = q + h * hd * qkv.element_size(), q + (h + h_kv) * hd * qkv.element_size()
        keys, values = cache.k[self.layer], cache.v[self.layer]  # [1, h_kv, max_len, hd]
        lo = max(0, pos + 1 - self.window) if self.window else 0
        scale = hd**-0.5 if self.scale is None else self.scale
        y = qkv.new_empty(1, 1, h * hd)
        stride = keys.shape[2]
        args = (keys.data_ptr(), values.data_ptr(), stride, h, h_kv, hd, lo, pos + 1, scale)
        if lib.cl_attend_one(q, k, v, *args, self.softcap or 0.0, y.data_ptr()):
            raise MemoryError("no memory for one token's attention scores")
        return y


@dataclass(frozen=True)
class Latent:
    """The widths of multi-head latent attention (DeepSeek-V2, §2.1).

    kv_rank d_c: the compressed key/value latent c_KV, all that is cached besides the RoPE key;
    rope_dim d_r: the decoupled RoPE key, one head shared by every query head;
    nope_dim: each head's query/key width without position; v_dim: each head's value width;
    q_rank: the low-rank query's width (None: a plain query projection).
    """

    kv_rank: int
    rope_dim: int
    nope_dim: int
    v_dim: int
    q_rank: int | None = None
    interleaved: bool = False  # RoPE pairs adjacent channels (V2, V3's rope_interleave)
    yarn: YaRN | None = None  # RoPE scaled for a longer context
    norm_eps: float = 1e-6  # of the q and c_KV norms

    @property
    def qk_dim(self) -> int:
        return self.nope_dim + self.rope_dim

    @property
    def scale(self) -> float:
        """What scores are multiplied by: 1/√(nope + rope), times YaRN's mscale² if scaled."""
        mscale = yarn_mscale(self.yarn.factor, self.yarn.mscale_all_dim) if self.yarn else 1.0
        return self.qk_dim**-0.5 * mscale**2

    def rope(self, theta: float, max_positions: int) -> RoPE:
        """The RoPE of the decoupled key and queries (d_r wide), shared by all layers."""
        if self.yarn is None:
            return RoPE(self.rope_dim, theta, max_positions, self.interleaved)
        inv_freq = self.yarn.inv_freq(self.rope_dim, theta)
        return RoPE(
            self.rope_dim,
            theta,
            max_positions,
            self.interleaved,
            inv_freq,
            self.yarn.attention_factor,
        )


def dense_weight(linear: nn.Module) -> torch.Tensor:
    """A linear layer's weight `[out, in]` as a float tensor (a stored one dequantised)."""
    return linear.weight_float() if hasattr(linear, "weight_float") else linear.weight


class LatentAttention(nn.Module):
    """Multi-head latent attention (MLA, DeepSeek-V2/V3): keys and values come from one small
    latent per token, so the cache holds d_c + d_r numbers per token and layer.

        q        = q_b(norm(q_a(x))) (or q(x))        [b, h, s, nope + rope]: q^C | q^R
        c, k^R   = kv_a(x) split, c = norm(c)          [b, 1, s, d_c], [b, 1, s, d_r]
        q^R, k^R rotated by RoPE (k^R: one head shared by all heads)
        naive:    k^C | v = kv_b(c) per head,  k = k^C | k^R,  attention(q, k, v)
        absorbed: q̃ = W_UKᵀ q^C,  attention(q̃ | q^R, c | k^R, c) · W_UVᵀ  (never decompresses)

    Both paths give the same weights and output; `absorbed` picks one (the cache is the same).
    Norms are given (nn.layers builds them); `scale` multiplies the scores.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        dims: Latent,
        rope: RoPE,
        q_norm: nn.Module | None,
        kv_norm: nn.Module,
        scale: float,
        bias: bool = False,
        layer: int = 0,
    ):
        super().__init__()
        self.n_heads, self.dims, self.scale, self.layer = n_heads, dims, scale, layer
        q_out = n_heads * dims.qk_dim
        if dims.q_rank is None:
            self.q = Linear(d_model, q_out, bias=False)
        else:
            self.q_a = Linear(d_model, dims.q_rank, bias=bias)
            self.q_norm = q_norm
            self.q_b = Linear(dims.q_rank, q_out, bias=False)
        self.kv_a = Linear(d_model, dims.kv_rank + dims.rope_dim, bias=bias)
        self.kv_norm = kv_norm
        self.kv_b = Linear(dims.kv_rank, n_heads * (dims.nope_dim + dims.v_dim), bias=False)
        self.out = Linear(n_heads * dims.v_dim, d_model, bias=bias)
        self.rope = rope
        self.absorbed = True

    def queries(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """x [b, s, d_model] -> q [b, h, s, nope + rope], its RoPE part rotated."""
        b, s, _ = x.shape
        q = self.q(x) if self.dims.q_rank is None else self.q_b(self.q_norm(self.q_a(x)))
        q = q.view(b, s, self.n_heads, self.dims.qk_dim).transpose(1, 2)
        q_nope, q_rope = q.split([self.dims.nope_dim, self.dims.rope_dim], dim=-1)
        return torch.cat((q_nope, self.rope(q_rope, positions)), dim=-1)

    def latent(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """x [b, s, d_model] -> what is cached: c_KV | k^R, [b, 1, s, d_c + d_r]."""
        c, k_rope = self.kv_a(x)[:, None].split([self.dims.kv_rank, self.dims.rope_dim], dim=-1)
        return torch.cat((self.kv_norm(c), self.rope(k_rope, positions)), dim=-1)

    def forward(self, x: torch.Tensor, ctx: Pass) -> torch.Tensor:
        """x: [b, s, d_model] -> [b, s, d_model]; the weights go to ctx.record if asked."""
        b, s, _ = x.shape
        record = ctx.record
        if record is not None and record.wants("qkv", self.layer):
            raise ContextlensError(
                "q/k/v are not recorded for multi-head latent attention (its keys and values "
                "have different widths); trace with qkv=False"
            )
        q, latent = self.queries(x, ctx.positions), self.latent(x, ctx.positions)
        if ctx.cache is not None:
            latent = ctx.cache.update(self.layer, latent)  # [b, 1, k, d_c + d_r]
        slot = None
        if record is not None and record.wants("attentions", self.layer):
            slot = record.slot("attentions", self.layer, (b, self.n_heads, s, latent.shape[2]), q)
        path = self.attend_absorbed if self.absorbed else self.attend_naive
        y = path(q, latent, ctx.mask, slot)  # [b, h, s, v_dim]
        y = at(record, "heads", self.layer, y.transpose(1, 2))  # [b, s, h, v_dim]
        return at(record, "attn", self.layer, self.out(y.reshape(b, s, -1)))

    def attend_naive(self, q, latent, mask, slot) -> torch.Tensor:
        """Decompress every head's keys and values from the latent, then attend as usual.
        q [b, h, s, nope + rope], latent [b, 1, k, d_c + d_r] -> [b, h, s, v_dim]."""
        dims, h = self.dims, self.n_heads
        c, k_rope = latent.split([dims.kv_rank, dims.rope_dim], dim=-1)
        b, _, k_len, _ = c.shape
        kv = self.kv_b(c).view(b, k_len, h, dims.nope_dim + dims.v_dim).transpose(1, 2)
        k_nope, v = kv.split([dims.nope_dim, dims.v_dim], dim=-1)  # [b, h, k, ·]
        k = torch.cat((k_nope, k_rope.expand(-1, h, -1, -1)), dim=-1)
        return attend(q, k, v, mask, slot is not None, slot, self.scale)[0]

    def attend_absorbed(self, q, latent, mask, slot) -> torch.Tensor:
        """Fold W_UK into the query and W_UV after the weighted sum: one shared 'head' of
        width d_c + d_r is attended by all query heads (as multi-query attention).
        q [b, h, s, nope + rope], latent [b, 1, k, d_c + d_r] -> [b, h, s, v_dim]."""
        dims = self.dims
        w = dense_weight(self.kv_b).view(self.n_heads, dims.nope_dim + dims.v_dim, dims.kv_rank)
        w_uk, w_uv = w.split([dims.nope_dim, dims.v_dim], dim=1)  # [h, nope, d_c], [h, v, d_c]
        q_nope, q_rope = q.split([dims.nope_dim, dims.rope_dim], dim=-1)
        q_latent = torch.cat((q_nope @ w_uk.to(q.dtype), q_rope), dim=-1)  # [b, h, s, d_c + d_r]
        c = latent[..., : dims.kv_rank]  # the values, before W_UV: [b, 1, k, d_c]
        y, _ = attend(q_latent, latent, c, mask, slot is not None, slot, self.scale)
        return y @ w_uv.to(q.dtype).transpose(1, 2)  # [b, h, s, d_c] -> [b, h, s, v_dim]
