"""contextlens: see and use what language models do with words — embeddings and attention.

import contextlens as cl
m = cl.load("minilm")
t = m.trace("The animal didn't cross the street because it was too wide.")
t.tokens, t.hidden_states.shape, t.attentions.shape
cl.cosine(*m.embed(["a sentence", "another"]))
"""

from .errors import ContextlensError
from .lm import LanguageModel
from .loader import load
from .metrics import (
    cosine,
    cosine_matrix,
    dot,
    euclidean,
    l1_norm,
    l2_norm,
    manhattan,
    normalize,
    softmax,
)
from .trace import Trace

__version__ = "0.1.0"

__all__ = [
    "ContextlensError",
    "LanguageModel",
    "Trace",
    "cosine",
    "cosine_matrix",
    "dot",
    "euclidean",
    "l1_norm",
    "l2_norm",
    "load",
    "manhattan",
    "normalize",
    "softmax",
]
