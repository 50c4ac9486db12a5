"""The web explorer: an HTTP API mirroring the Python API, and a page that draws it.

`contextlens serve` starts it; `create_app(models)` builds the FastAPI app (tests use it
directly); `notebook.show(trace)` draws a trace's head view inline in Jupyter from the same
front-end code.
"""

from .app import create_app
from .notebook import show

__all__ = ["create_app", "show"]
