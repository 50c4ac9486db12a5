"""`contextlens …`: the command line. Errors in the input print one line and exit with code 2."""

import sys

from ..errors import ContextlensError
from . import context, core, decoder, search, static, tour, web  # noqa: F401  (register commands)
from .app import app


def main() -> None:
    """Run the CLI; usage errors are typer's (exit 2), bad input is ours (one line, exit 2)."""
    try:
        app()
    except ContextlensError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
