"""contextlens: see and use what language models do with words — embeddings and attention.

import contextlens as cl
m = cl.load("minilm")
t = m.trace("The animal didn't cross the street because it was too wide.")
t.tokens, t.hidden_states.shape, t.attentions.shape
cl.show(t)                       # in Jupyter: the head view, drawn inline
cl.cosine(*m.embed(["a sentence", "another"]))
lm = cl.load("smollm2", weights="native")   # a GGUF file's quantised weights kept as stored
"""

from .analysis.attention import attends_to, head_links, head_stats, rank_heads, rollout
from .analysis.context import nearest_words, occurrences, right_context
from .analysis.coref import CorefCase, probe
from .analysis.words import locate, words
from .analysis.wordvectors import evaluate_analogies, evaluate_word_pairs
from .errors import ContextlensError
from .lm import LanguageModel
from .loader import load, load_model
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
from .search import Engine, Hit, Index, embed_corpus, read_corpus
from .static import WordVectors, load_vectors
from .trace import Trace
from .word2vec import load_fasttext, train_word2vec

__version__ = "0.1.0"

__all__ = [
    "ContextlensError",
    "CorefCase",
    "attends_to",
    "evaluate_analogies",
    "evaluate_word_pairs",
    "head_links",
    "head_stats",
    "locate",
    "nearest_words",
    "occurrences",
    "probe",
    "rank_heads",
    "right_context",
    "rollout",
    "words",
    "Engine",
    "Hit",
    "Index",
    "embed_corpus",
    "read_corpus",
    "LanguageModel",
    "Trace",
    "WordVectors",
    "cosine",
    "cosine_matrix",
    "dot",
    "euclidean",
    "l1_norm",
    "l2_norm",
    "load",
    "load_model",
    "load_fasttext",
    "load_vectors",
    "manhattan",
    "normalize",
    "show",
    "softmax",
    "train_word2vec",
]


def __getattr__(name: str):
    """`cl.show(trace)` is the web layer's notebook view, imported on first use: the web layer
    brings FastAPI, which the rest of the library does not need."""
    if name == "show":
        from .web.notebook import show

        return show
    raise AttributeError(f"module 'contextlens' has no attribute {name!r}")
