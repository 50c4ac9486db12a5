"""`contextlens serve`: the web explorer on http://127.0.0.1:8000 (loopback unless told)."""

import typer

from ..errors import ContextlensError
from .app import app, console

DEFAULT_MODELS = "minilm,smollm2,glove-50"


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="address to bind; 0.0.0.0 opens it to the network"),
    port: int = typer.Option(8000, help="port to listen on"),
    models: str = typer.Option(
        DEFAULT_MODELS, "--models", help="comma-separated catalog names or paths to serve"
    ),
    index: str = typer.Option(
        None, "--index", "-i", help="a search index to serve (name or path; see `index build`)"
    ),
) -> None:
    """Start the web explorer: tokens, attention, context, next token, word space (and search
    with --index) views, on loopback unless --host says otherwise."""
    import uvicorn

    from ..web import create_app

    names = [m.strip() for m in models.split(",") if m.strip()]
    if not 0 < port < 65536:
        raise ContextlensError(f"port {port} is out of range; choose 1..65535")
    web = create_app(names, index=index, host=host)
    what = ", ".join(web.state.registry.names) + (f" and index {index}" if index else "")
    console.print(f"contextlens: serving {what} on http://{host}:{port}/")
    uvicorn.run(web, host=host, port=port, log_level="warning")
