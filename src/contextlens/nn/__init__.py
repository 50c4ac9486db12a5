"""Building blocks shared by every architecture: positions, attention, norms, MLPs, blocks."""

from .attention import Attention, KVCache, attend, attention_mask
from .layers import MLP, Block, RMSNorm, make_norm
from .positions import RoPE, rope_angle, rotate_half, sinusoidal_positions

__all__ = [
    "MLP",
    "Attention",
    "Block",
    "KVCache",
    "RMSNorm",
    "RoPE",
    "attend",
    "attention_mask",
    "make_norm",
    "rope_angle",
    "rotate_half",
    "sinusoidal_positions",
]
