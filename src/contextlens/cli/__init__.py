"""`contextlens …`: the command line. Errors in the input print one line and exit with code 2."""

import sys

import click

from ..errors import ContextlensError
from . import context, core, decoder, search, static, tour  # noqa: F401  (register commands)
from .app import app


def main() -> None:
    try:
        app(standalone_mode=False)
    except ContextlensError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except click.exceptions.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except click.ClickException as e:  # usage errors: unknown option, missing argument …
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
