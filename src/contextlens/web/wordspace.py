"""The word-space view's table: a served static word-vector table (`contextlens.load("glove-50")`,
a `WordVectors`); its reports are `contextlens.analysis.wordspace`'s."""

from ..errors import ContextlensError
from ..static import WordVectors


def table(registry, name: str) -> WordVectors:
    """The word-vector table `name` (a served model of kind static)."""
    wv = registry.get(name)
    if not isinstance(wv, WordVectors):
        raise ContextlensError(
            f"{name} is a transformer model; neighbours and analogies need a word-vector table "
            "such as glove-50 (serve it with --models … glove-50)"
        )
    return wv
