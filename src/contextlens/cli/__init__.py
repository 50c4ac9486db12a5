"""`contextlens …`: the command line. Errors in the input print one line and exit with code 2;
a note (a text cut to fit the model, a picture without some glyphs) prints one `note: …` line.
"""

import io
import re
import sys
import warnings
from functools import partial

from ..errors import ContextlensError, Note
from . import (  # noqa: F401  (register commands)
    causal,
    context,
    contrast,
    core,
    decoder,
    kvcache,
    search,
    static,
    tour,
    train,
    web,
)
from .app import app

SURROGATE = re.compile("[\ud800-\udfff]")  # how Python keeps argument bytes that are not UTF-8


def check_utf8(argv: list[str]) -> None:
    """One clear error for a command-line argument that is not valid UTF-8."""
    for n, arg in enumerate(argv[1:], start=1):
        bad = SURROGATE.search(arg)
        if bad:
            code = ord(bad.group())
            what = f"byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else "a lone surrogate"
            raise ContextlensError(
                f"argument {n} is not valid UTF-8 ({what} at character {bad.start() + 1}); "
                "give the text in UTF-8, e.g. convert it with iconv -t UTF-8"
            )


def strict_stdin() -> None:
    """Read standard input (chat's messages) as UTF-8 that fails on bad bytes, whatever the
    locale, instead of passing them on as surrogates."""
    if isinstance(sys.stdin, io.TextIOWrapper):
        sys.stdin.reconfigure(encoding="utf-8", errors="strict")


def show_note(
    message, category, filename, lineno, file=None, line=None, *, default, seen: set[str]
) -> None:
    """A `Note` as one `note: …` line on stderr (once, however often it comes); other warnings
    as usual."""
    if issubclass(category, Note):
        if str(message) not in seen:
            seen.add(str(message))
            print(f"note: {message}", file=sys.stderr)
    else:
        default(message, category, filename, lineno, file, line)


def main() -> None:
    """Run the CLI; usage errors are typer's (exit 2), bad input is ours (one line, exit 2)."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", Note)
        warnings.showwarning = partial(show_note, default=warnings.showwarning, seen=set())
        try:
            check_utf8(sys.argv)
            strict_stdin()
            app()
        except ContextlensError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
