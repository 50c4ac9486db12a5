"""Building blocks shared by every architecture: positions, attention, norms, MLPs, blocks."""

from .attention import Attention, KVCache, Pass, attend, attention_mask
from .layers import MLP, Block, RMSNorm, column_major, make_norm
from .positions import RoPE, rope_angle, rotate_half, sinusoidal_positions
from .quant import Linear

__all__ = [
    "MLP",
    "Attention",
    "Block",
    "KVCache",
    "Linear",
    "Pass",
    "RMSNorm",
    "RoPE",
    "attend",
    "attention_mask",
    "column_major",
    "make_norm",
    "rope_angle",
    "rotate_half",
    "sinusoidal_positions",
]
