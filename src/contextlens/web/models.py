"""The models a server serves: each loaded once, on first use, and shared by every request.

Traces are cached (a few, least recently used) because the page asks several questions of the
same text: the head view, another head, the step-by-step numbers of one query.
"""

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

from ..analysis import embedding as emb
from ..analysis.embedding import CatalogModel
from ..errors import ContextlensError
from ..io.catalog import CATALOG
from ..lm import LanguageModel
from ..trace import Trace


class NotFound(ContextlensError):
    """A model or file the server does not have (answered with 404)."""


class UnknownModel(NotFound):
    """A request named a model this server does not serve."""


class Registry:
    """name → loaded model, for the names given at start-up only.

    `loads` counts real loads per name (a test checks each model is loaded once).
    """

    def __init__(
        self, names: Sequence[str], loader: Callable | None = None, cache_size: int = 4
    ) -> None:
        if not names:
            raise ContextlensError("no models to serve; name at least one with --models")
        from ..loader import load

        self.names = list(dict.fromkeys(names))
        self._load = loader or load
        self._models: dict[str, object] = {}
        self._locks = {n: threading.Lock() for n in self.names}
        self.loads = dict.fromkeys(self.names, 0)
        self._traces: OrderedDict[tuple, Trace] = OrderedDict()
        self._traces_lock = threading.Lock()
        self.cache_size = cache_size

    def kind(self, name: str) -> str:
        """encoder / decoder / static from the catalog without loading (else load and ask)."""
        if name in CATALOG:
            return CATALOG[name].kind
        model = self.get(name)
        return model.kind if isinstance(model, LanguageModel) else "static"

    def described(self) -> list[CatalogModel]:
        """The served models as `contextlens models` describes them; one loaded by path is
        described by its path."""
        catalog = {m.name: m for m in emb.catalog()}
        return [
            catalog.get(n) or CatalogModel(n, self.kind(n), "loaded by path", "", True, n)
            for n in self.names
        ]

    def get(self, name: str):
        if name not in self._locks:
            raise UnknownModel(
                f"unknown model {name!r}; this server serves: {', '.join(self.names)}"
            )
        with self._locks[name]:
            if name not in self._models:
                self._models[name] = self._load(name)
                self.loads[name] += 1
            return self._models[name]

    def language_model(self, name: str) -> LanguageModel:
        """A transformer model (not word vectors)."""
        model = self.get(name)
        if not isinstance(model, LanguageModel):
            raise ContextlensError(
                f"{name} is a table of word vectors; this view needs a transformer model "
                f"({', '.join(n for n in self.names if self.kind(n) != 'static')})"
            )
        return model

    def trace(self, name: str, text: str, qkv: bool = False) -> Trace:
        """A full trace (embedding parts, hidden states, attentions, and q/k/v when asked) of
        `text`, cached: every view of the same text reads the same pass."""
        key = (name, text, qkv)
        with self._traces_lock:
            if key in self._traces:
                self._traces.move_to_end(key)
                return self._traces[key]
        trace = self.language_model(name).trace(text, qkv=qkv, embedding_parts=True)
        with self._traces_lock:
            self._traces[key] = trace
            while len(self._traces) > self.cache_size:
                self._traces.popitem(last=False)
        return trace
