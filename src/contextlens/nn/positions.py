"""Where a token sits: learned tables, the original sinusoids, and rotary embeddings (RoPE).

Learned and sinusoidal positions are *added* to the token embeddings once, before layer 1.
RoPE is applied inside attention instead: it rotates each query and key by an angle that grows
with the position, so that q·k depends only on how far apart the two tokens are.
"""

import torch
from torch import nn


def sinusoidal_positions(n_positions: int, d_model: int, base: float = 10000.0) -> torch.Tensor:
    """The Transformer paper's table (Vaswani et al. 2017, §3.5): `[n_positions, d_model]`.

    PE[pos, 2i] = sin(pos / base^(2i/d)),  PE[pos, 2i+1] = cos(pos / base^(2i/d)).
    """
    f64 = dict(dtype=torch.float64, device="cpu")  # CPU even while a model is built on "meta"
    pos = torch.arange(n_positions, **f64)[:, None]  # [p, 1]
    freq = base ** (-torch.arange(0, d_model, 2, **f64) / d_model)  # [d/2]
    table = torch.zeros(n_positions, d_model, **f64)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: d_model // 2])
    return table.float()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """[x1, x2] -> [-x2, x1] on the last axis (the two halves are the rotation's pairs)."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class RoPE(nn.Module):
    """Rotary position embedding (Su et al. 2021), half-split pairing as in Hugging Face Llama.

    Channel i and i + head_dim/2 form a pair rotated by angle pos · theta^(-2i/head_dim).
    cos/sin tables are precomputed for `max_positions` positions.
    """

    def __init__(self, head_dim: int, theta: float, max_positions: int):
        super().__init__()
        cpu = "cpu"  # even while a model is built on the "meta" device (see models.build)
        channels = torch.arange(0, head_dim, 2, device=cpu).float()
        inv_freq = 1.0 / (theta ** (channels / head_dim))  # [hd/2]
        angles = torch.arange(max_positions, device=cpu).float()[:, None] * inv_freq  # [p, hd/2]
        angles = torch.cat((angles, angles), dim=-1)  # [p, hd]
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """x: [b, heads, s, hd], positions: [s] -> rotated x, same shape."""
        cos, sin = self.cos[positions], self.sin[positions]  # [s, hd]
        return x * cos + rotate_half(x) * sin


def rope_angle(position: int, pair: int, head_dim: int, theta: float) -> float:
    """The angle RoPE turns channel pair `pair` by at `position` (for tests and explanations)."""
    return position * theta ** (-2 * pair / head_dim)


__all__ = ["RoPE", "rope_angle", "rotate_half", "sinusoidal_positions"]
