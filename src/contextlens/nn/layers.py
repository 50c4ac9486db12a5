"""Norms, feed-forward networks, the transformer block (pre-norm or post-norm), and how linear
weights are laid out in memory."""

import torch
import torch.nn.functional as F
from torch import nn

from .attention import Attention, Pass
from .quant import Linear, kernels, linear_call
from .record import at


def column_major(weight: torch.Tensor) -> torch.Tensor:
    """A linear weight `[out, in]` with the same values, stored in `[in, out]` memory order.

    `F.linear(x, w)` multiplies by `wᵀ`; with this layout `wᵀ` is contiguous, so the matrix
    product streams the weight row by row instead of gathering it with a stride — on CPUs the
    difference between being limited by memory bandwidth and being limited by the access
    pattern when a few rows (a short text, one generated token) meet a large weight. Shape,
    values and dtype are unchanged; a weight already in this order is returned as is.
    """
    return (
        weight if weight.dim() != 2 or weight.t().is_contiguous() else weight.t().contiguous().t()
    )


class RMSNorm(nn.Module):
    """x / sqrt(mean(x²) + eps) · weight, computed in float32 (Zhang & Sennrich 2019).

    offset=1 scales by (1 + weight) instead, in float32 before casting back (Gemma stores the
    scale less one, so that zeros are the identity).
    """

    def __init__(self, d: int, eps: float, offset: float = 0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps, self.offset = eps, offset

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [..., d] -> [..., d]
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        if self.offset:
            return (x32 * (self.offset + self.weight.float())).to(x.dtype)
        return self.weight * x32.to(x.dtype)


def make_norm(kind: str, d: int, eps: float) -> nn.Module:
    """'layernorm' (mean/variance, weight and bias), 'rmsnorm' (scale only) or
    'rmsnorm_plus_one' (scale by 1 + weight: Gemma)."""
    if kind == "layernorm":
        return nn.LayerNorm(d, eps=eps)
    return RMSNorm(d, eps, offset=1.0 if kind == "rmsnorm_plus_one" else 0.0)


ACTIVATIONS = {
    "gelu": F.gelu,  # exact, erf-based (BERT)
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),  # GPT-2's "gelu_new"
    "silu": F.silu,  # Llama
    "relu": F.relu,
}


class MLP(nn.Module):
    """The position-wise feed-forward network: up-project, activate, down-project.

    gated=False: down(act(up(x)))                (BERT, GPT-2: GELU)
    gated=True:  down(act(gate(x)) * up(x))      (Llama: SwiGLU, act = SiLU)
    The gate and up projections are stored as one matrix `up` of twice the width.
    """

    def __init__(self, d_model: int, d_ff: int, activation: str, gated: bool, bias: bool):
        super().__init__()
        self.gated = gated
        self.act = ACTIVATIONS[activation]
        self.up = Linear(d_model, d_ff * (2 if gated else 1), bias=bias)
        self.down = Linear(d_ff, d_model, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [b, s, d] -> [b, s, d]
        h = self.up(x)  # [b, s, d_ff] or [b, s, 2·d_ff]
        if self.gated:
            gate, up = h.chunk(2, dim=-1)
            return self.down(self.act(gate) * up)
        return self.down(self.act(h))


class Block(nn.Module):
    """One transformer layer: attention then MLP, each with a residual connection and a norm.

    pre-norm  (GPT-2, Llama): x = x + attn(norm1(x));  x = x + mlp(norm2(x))
    post-norm (BERT):         x = norm1(x + attn(x));  x = norm2(x + mlp(x))
    `post` norms (Gemma 2/3) also normalise each sublayer's output before it joins the residual:
                              x = x + post[0](attn(norm1(x)));  x = x + post[1](mlp(norm2(x)))
    """

    def __init__(
        self,
        attn: Attention,
        mlp: MLP,
        norm1: nn.Module,
        norm2: nn.Module,
        pre: bool,
        post: tuple[nn.Module, nn.Module] | None = None,
    ):
        super().__init__()
        self.attn, self.mlp, self.norm1, self.norm2, self.pre = attn, mlp, norm1, norm2, pre
        self.post_attn_norm, self.post_mlp_norm = post or (nn.Identity(), nn.Identity())
        self.fusable: bool | None = None  # whether `step` applies, found at the first step

    def forward(self, x: torch.Tensor, ctx: Pass) -> torch.Tensor:
        """x: [b, s, d] -> [b, s, d]."""
        if ctx.step and self.can_step():
            return self.step(x, ctx)
        layer = self.attn.layer
        if self.pre:
            x = x + self.post_attn_norm(self.attn(self.norm1(x), ctx))
            return x + at(ctx.record, "mlp", layer, self.post_mlp_norm(self.mlp(self.norm2(x))))
        x = self.norm1(x + self.attn(x, ctx))
        return self.norm2(x + at(ctx.record, "mlp", layer, self.mlp(x)))

    def can_step(self) -> bool:
        """Whether a decoding step can run as `step`: a pre-norm block of RMSNorms (no post
        norms), attention without per-head norms, a SiLU-gated MLP, quant.c compiled, and
        every projection either over stored weights it multiplies or a float32 `nn.Linear`
        (exact mode: the same C calls over float32 weights). Other blocks take the general
        path."""
        if self.fusable is None:
            attn, mlp, plain = self.attn, self.mlp, nn.Identity
            self.fusable = (
                self.pre
                and isinstance(self.post_attn_norm, plain)
                and isinstance(self.post_mlp_norm, plain)
                and all(isinstance(n, RMSNorm) for n in (self.norm1, self.norm2))
                and isinstance(attn, Attention)
                and attn.q_norm is None
                and isinstance(mlp, MLP)
                and mlp.gated
                and mlp.act is F.silu
                and kernels() is not None
                and all(steppable(p) for p in (attn.qkv, attn.out, mlp.up, mlp.down))
            )
        return self.fusable

    def step(self, x: torch.Tensor, ctx: Pass) -> torch.Tensor:
        """`forward` for one decoding step, the residual x [1, 1, d] updated in place: norm1
        then the Q/K/V product, RoPE and attention over the cache in C (`Attention.step`), the
        output projection added into x, norm2 then the gate/up product, SiLU(gate)·up then the
        down projection, added into x. Each product and its neighbours are one C call
        (`project`)."""
        attn, mlp = self.attn, self.mlp
        heads = attn.step(project(attn.qkv, x, norm=self.norm1), ctx)
        project(attn.out, heads, residual=x)
        return project(mlp.down, project(mlp.up, x, norm=self.norm2), glu=True, residual=x)


def steppable(linear: nn.Module) -> bool:
    """Whether `project` can run this projection: stored weights with a quant.c kernel, or a
    float32 `nn.Linear`."""
    if isinstance(linear, nn.Linear):
        return linear.weight.dtype == torch.float32
    return getattr(linear, "kernel", lambda: None)() is not None


def project(
    linear: nn.Module,
    x: torch.Tensor,
    norm: RMSNorm | None = None,
    glu: bool = False,
    residual: torch.Tensor | None = None,
) -> torch.Tensor:
    """linear(prepared x) for one decoding step: x [..., in] normalised by `norm` first, or
    with `glu` x [..., 2·in] = gate | up turned into silu(gate) · up; with `residual`
    [..., out] the product is added into it in place and the residual returned. All of it is
    one C call, over stored weights (`QuantLinear.fused`) or a float32 `nn.Linear`'s weight
    where it lies (`linear_call`); a float32 weight the kernel cannot read runs as torch ops."""
    if not isinstance(linear, nn.Linear):
        return linear.fused(x, norm=norm, glu=glu, residual=residual)
    call = linear_call(linear)
    if call is not None:
        y = call.fused(x, norm, glu, residual)
        return y if linear.bias is None else y.add_(linear.bias)
    if norm is not None:
        x = norm(x)
    if glu:
        gate, up = x.chunk(2, dim=-1)
        x = F.silu(gate).mul_(up)
    y = linear(x)
    return y if residual is None else residual.add_(y)
