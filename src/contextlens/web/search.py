"""The search view's answers: one index, named when the server starts, searched with its own
model; each hit comes with the tokens that made it match (`contextlens.search.explain`)."""

import threading
from dataclasses import asdict

from ..errors import ContextlensError
from .models import NotFound, Registry


class ServedIndex:
    """An open index and the lock that serialises its SQLite connection across requests."""

    def __init__(self, name: str) -> None:
        from ..search import Index

        self.name = name
        self.index = Index.open(name)
        self.model = self.index.model_name
        self.lock = threading.Lock()

    def summary(self) -> dict:
        with self.lock:
            info = self.index.info()
        return {"name": self.index.path.name, "model": self.model} | {
            k: info[k] for k in ("documents", "chunks")
        }


def search(served: ServedIndex | None, registry: Registry, query: str, k: int, mode: str) -> dict:
    """The k best chunks for `query`, each with per-token contributions to its cosine."""
    from ..search import explain

    if served is None:
        raise NotFound(
            "this server serves no index; start it with `contextlens serve --index NAME`"
        )
    if not query.strip():
        raise ContextlensError("the query is empty; give some words to search for")
    model = registry.language_model(served.model)
    with served.lock:
        hits = served.index.search(query, k=k, mode=mode, model=model)
    return {
        "index": served.name,
        "query": query,
        "mode": mode,
        "hits": [asdict(h) | {"explain": asdict(explain(model, query, h.text))} for h in hits],
    }
