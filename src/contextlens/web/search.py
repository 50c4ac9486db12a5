"""The search view's answers: one index, named when the server starts, searched with its own
model; each hit comes with the tokens that made it match (`contextlens.search.explain`)."""

import threading

from ..errors import ContextlensError
from ..search.index import Index, IndexSummary, SearchReport
from .models import NotFound, Registry


class ServedIndex:
    """An open index and the lock that serialises its SQLite connection across requests."""

    def __init__(self, name: str) -> None:
        self.index = Index.open(name)
        self.model = self.index.model_name
        self.lock = threading.Lock()

    def summary(self) -> IndexSummary:
        with self.lock:
            return self.index.summary()


def search(
    served: ServedIndex | None, registry: Registry, query: str, k: int, mode: str
) -> SearchReport:
    """The k best chunks for `query`, each with per-token contributions to its cosine."""
    if served is None:
        raise NotFound(
            "this server serves no index; start it with `contextlens serve --index NAME`"
        )
    if not query.strip():
        raise ContextlensError("the query is empty; give some words to search for")
    model = registry.language_model(served.model)
    with served.lock:
        return served.index.report(query, model, k, mode, explain=True)
