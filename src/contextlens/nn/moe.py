"""DeepSeek's mixture of experts: each token goes through a few of many small MLPs (the routed
experts, chosen per token by a router) plus a few that every token goes through (the shared
experts), instead of one wide MLP.

    scores   = router(x)                   softmax (V2) or sigmoid (V3) over the experts
    choose   = scores (+ correction bias)   the top `top_k`, only from the best `topk_group` of
                                            `n_group` expert groups
    weights  = scores of the chosen (normalised to sum 1 if asked) × routed_scaling_factor
    out      = Σ weights · expert(x) + shared(x)
"""

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from .attention import dense_weight
from .layers import MLP
from .quant import Linear


@dataclass(frozen=True)
class MoEConfig:
    n_experts: int  # routed experts
    top_k: int  # experts per token
    d_ff: int  # each expert's MLP width (moe_intermediate_size)
    n_shared: int  # shared experts, run as one MLP n_shared times as wide
    scoring: Literal["softmax", "sigmoid"]  # V2: softmax, V3: sigmoid
    group_score: Literal["max", "top2"]  # a group's rank: its best score (V2), best two (V3)
    n_group: int = 1  # expert groups (1: no group limit)
    topk_group: int = 1  # groups a token may choose from
    norm_topk_prob: bool = False  # renormalise the chosen weights to sum to 1
    routed_scaling_factor: float = 1.0
    correction_bias: bool = False  # V3's e_score_correction_bias (used to choose, not weigh)
    first_dense: int = 0  # the first layers keep a dense MLP (first_k_dense_replace)


class Router(nn.Module):
    """Which experts each token goes to, and with what weight (in float32, as DeepSeek does)."""

    def __init__(self, d_model: int, cfg: MoEConfig):
        super().__init__()
        self.cfg = cfg
        self.proj = Linear(d_model, cfg.n_experts, bias=False)
        if cfg.correction_bias:
            self.register_buffer("bias", torch.zeros(cfg.n_experts))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [n, d] -> (weights [n, top_k] float32, experts [n, top_k])."""
        cfg = self.cfg
        logits = x.float() @ dense_weight(self.proj).float().t()  # [n, E]
        scores = logits.softmax(-1) if cfg.scoring == "softmax" else logits.sigmoid()
        choice = scores + self.bias if cfg.correction_bias else scores
        choice = choice.masked_fill(~self.allowed_groups(choice), float("-inf"))
        experts = choice.topk(cfg.top_k, dim=-1).indices  # [n, top_k]
        weights = scores.gather(-1, experts)
        if cfg.norm_topk_prob:
            weights = weights / (weights.sum(-1, keepdim=True) + 1e-20)
        return weights * cfg.routed_scaling_factor, experts

    def allowed_groups(self, choice: torch.Tensor) -> torch.Tensor:
        """choice [n, E] -> [n, E] True for the experts of each token's best `topk_group`
        groups."""
        cfg = self.cfg
        grouped = choice.view(choice.shape[0], cfg.n_group, -1)  # [n, groups, E / groups]
        if cfg.group_score == "max":
            rank = grouped.max(-1).values
        else:
            rank = grouped.topk(2, dim=-1).values.sum(-1)
        best = rank.topk(cfg.topk_group, dim=-1).indices  # [n, topk_group]
        allowed = torch.zeros_like(rank, dtype=torch.bool).scatter_(1, best, True)
        return allowed[:, :, None].expand_as(grouped).reshape_as(choice)


class MoE(nn.Module):
    """Routed experts (gated MLPs of width d_ff) plus shared experts; a drop-in for `MLP`."""

    def __init__(self, d_model: int, cfg: MoEConfig, activation: str):
        super().__init__()
        self.router = Router(d_model, cfg)
        self.experts = nn.ModuleList(
            MLP(d_model, cfg.d_ff, activation, gated=True, bias=False) for _ in range(cfg.n_experts)
        )
        self.shared = MLP(d_model, cfg.d_ff * cfg.n_shared, activation, gated=True, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [b, s, d] -> [b, s, d]
        flat = x.reshape(-1, x.shape[-1])  # [n, d]
        weights, experts = self.router(flat)  # [n, top_k]
        out = torch.zeros_like(flat)
        for e in experts.unique().tolist():  # each expert once, on the tokens that chose it
            token, slot = (experts == e).nonzero(as_tuple=True)
            y = self.experts[e](flat[token]) * weights[token, slot, None]
            out.index_add_(0, token, y.to(out.dtype))
        return out.view_as(x) + self.shared(x)
