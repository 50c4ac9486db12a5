"""Where a token sits: learned tables, the original sinusoids, and rotary embeddings (RoPE).

Learned and sinusoidal positions are *added* to the token embeddings once, before layer 1.
RoPE is applied inside attention instead: it rotates each query and key by an angle that grows
with the position, so that q·k depends only on how far apart the two tokens are.
"""

import math
from dataclasses import dataclass

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
    interleaved=True pairs channels 2i and 2i+1 instead (DeepSeek's original layout).
    `inv_freq` [hd/2], if given, replaces theta^(-2i/head_dim) (YaRN's, see `YaRN`), and `scale`
    multiplies cos and sin. cos/sin tables are precomputed for `max_positions` positions.
    """

    def __init__(
        self,
        head_dim: int,
        theta: float,
        max_positions: int,
        interleaved: bool = False,
        inv_freq: torch.Tensor | None = None,
        scale: float = 1.0,
    ):
        super().__init__()
        cpu = "cpu"  # even while a model is built on the "meta" device (see models.build)
        if inv_freq is None:
            channels = torch.arange(0, head_dim, 2, device=cpu).float()
            inv_freq = 1.0 / (theta ** (channels / head_dim))  # [hd/2]
        angles = torch.arange(max_positions, device=cpu).float()[:, None] * inv_freq  # [p, hd/2]
        if interleaved:
            angles = angles.repeat_interleave(2, dim=-1)  # [p, hd]: a0 a0 a1 a1 …
        else:
            angles = torch.cat((angles, angles), dim=-1)  # [p, hd]: a0 a1 … a0 a1 …
        self.rotate = rotate_pairs if interleaved else rotate_half
        self.register_buffer("cos", angles.cos() * scale, persistent=False)
        self.register_buffer("sin", angles.sin() * scale, persistent=False)

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """x: [b, heads, s, hd], positions: [s] -> rotated x, same shape."""
        cos, sin = self.cos[positions], self.sin[positions]  # [s, hd]
        return x * cos + self.rotate(x) * sin


def rotate_pairs(x: torch.Tensor) -> torch.Tensor:
    """(x0, x1, x2, x3, …) -> (-x1, x0, -x3, x2, …): adjacent channels are the pairs."""
    return torch.stack((-x[..., 1::2], x[..., 0::2]), dim=-1).flatten(-2)


def yarn_mscale(factor: float, mscale: float = 1.0) -> float:
    """YaRN's magnitude correction for a context stretched `factor` times: 0.1·m·ln(factor) + 1."""
    return 1.0 if factor <= 1 else 0.1 * mscale * math.log(factor) + 1.0


@dataclass(frozen=True)
class YaRN:
    """YaRN rope scaling (Peng et al. 2023) as DeepSeek-V2/V3 configure it.

    Channels that turn fewer than `beta_slow` times over the `original_max` positions trained on
    are slowed down `factor` times (interpolated), those turning more than `beta_fast` times are
    kept, and a linear ramp blends the ones between. cos/sin are scaled by
    mscale(factor, mscale) / mscale(factor, mscale_all_dim).
    """

    factor: float
    original_max: int
    beta_fast: float = 32.0
    beta_slow: float = 1.0
    mscale: float = 1.0
    mscale_all_dim: float = 0.0

    def inv_freq(self, head_dim: int, theta: float) -> torch.Tensor:
        """[head_dim / 2] rotation speeds (radians per position)."""
        channels = torch.arange(0, head_dim, 2, device="cpu").float()  # CPU even on "meta"
        wavelengths = theta ** (channels / head_dim)  # [hd/2]
        extrapolated, interpolated = 1.0 / wavelengths, 1.0 / (self.factor * wavelengths)

        def channel(turns: float) -> float:  # the channel pair that turns `turns` times
            return (
                head_dim
                * math.log(self.original_max / (turns * 2 * math.pi))
                / (2 * math.log(theta))
            )

        low = max(math.floor(channel(self.beta_fast)), 0)
        high = min(math.ceil(channel(self.beta_slow)), head_dim - 1)
        ramp = (channels / 2 - low) / max(high - low, 0.001)
        keep = 1 - ramp.clamp(0, 1)  # 1: extrapolate (fast channels), 0: interpolate
        return interpolated * (1 - keep) + extrapolated * keep

    @property
    def attention_factor(self) -> float:
        """What cos and sin are multiplied by."""
        if self.mscale and self.mscale_all_dim:
            return yarn_mscale(self.factor, self.mscale) / yarn_mscale(
                self.factor, self.mscale_all_dim
            )
        return yarn_mscale(self.factor)


def rope_angle(position: int, pair: int, head_dim: int, theta: float) -> float:
    """The angle RoPE turns channel pair `pair` by at `position` (for tests and explanations)."""
    return position * theta ** (-2 * pair / head_dim)


__all__ = [
    "RoPE",
    "YaRN",
    "rope_angle",
    "rotate_half",
    "rotate_pairs",
    "sinusoidal_positions",
    "yarn_mscale",
]
