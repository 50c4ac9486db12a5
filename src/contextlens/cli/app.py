"""The typer app every command module registers on, and the output helpers they share."""

import json
import sys
from enum import Enum
from functools import cache

import typer
from rich.console import Console
from rich.table import Table

from ..errors import ContextlensError
from ..lm import LanguageModel
from ..report import to_dict
from ..static import WordVectors

app = typer.Typer(
    name="contextlens",
    help="See and use what language models do with words: embeddings and attention.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
evaluate_app = typer.Typer(help="Standard evaluations on real data.", no_args_is_help=True)
app.add_typer(evaluate_app, name="evaluate")

console = Console(highlight=False)

MODEL_OPTION = typer.Option("minilm", "--model", "-m", help="catalog name or path to a model")
TEXT = typer.Argument(..., help="the text (over the model's limit: its first tokens, with a note)")
JSON_OPTION = typer.Option(False, "--json", help="print machine-readable JSON instead of tables")


WEIGHTS = {"mode": "exact"}  # set by --weights before any command runs
Weights = Enum("Weights", {"exact": "exact", "native": "native"}, type=str)


@app.callback()
def options(
    weights: Weights = typer.Option(
        "exact",
        "--weights",
        help="How a GGUF model (smollm2, any .gguf) holds its weights, for every command. exact "
        "(the default everywhere): dequantised to float32, the reference numerics the parity "
        "tests check, so layers, heads and probabilities are the model's own. native: kept as "
        "the file stores them (Q4/Q8/F16), about the file's size in memory and faster "
        "generation; use it for models too large for float32.",
    ),
) -> None:
    WEIGHTS["mode"] = weights.value


def get_model(name: str) -> LanguageModel | WordVectors:
    """Load a model once per process and weights mode (commands like `tour` use several)."""
    return _load(name, WEIGHTS["mode"])


@cache
def _load(name: str, weights: str) -> LanguageModel | WordVectors:
    from ..loader import load

    return load(name, weights=weights)


def need_transformer(name: str, command: str) -> LanguageModel:
    """The model `name` if it is a transformer (tokens, layers, attention); else one clear error
    naming the models that fit `command`."""
    m = get_model(name)
    if not isinstance(m, LanguageModel):
        raise ContextlensError(
            f"{m.name} is a static word-vector table; `{command}` needs a transformer such as "
            "minilm or smollm2 (-m minilm)"
        )
    return m


def need_decoder(name: str, command: str) -> LanguageModel:
    """The model `name` if it is a decoder with an LM head; else one clear error."""
    m = get_model(name)
    if not isinstance(m, LanguageModel):
        raise ContextlensError(
            f"{m.name} is a static word-vector table; `{command}` needs a decoder such as "
            "smollm2 (-m smollm2)"
        )
    m.require_decoder(f"`{command}`")
    return m


def emit_json(data) -> None:
    """`data` — a report (`report.to_dict` makes it plain data, as the web API does) or plain
    data — as JSON on stdout; NaN or infinity (which JSON cannot hold) is an error instead."""
    try:
        text = json.dumps(to_dict(data), ensure_ascii=False, indent=2, allow_nan=False)
    except ValueError:
        raise ContextlensError(
            "the result holds NaN or infinity, which JSON cannot carry; run without --json to "
            "see it"
        ) from None
    sys.stdout.write(text + "\n")


def table(title: str | None, columns: list[str], rows, justify: dict[str, str] | None = None):
    """A rich table; numeric columns right-aligned by `justify`."""
    t = Table(title=title, title_justify="left", header_style="bold")
    for c in columns:
        t.add_column(c, justify=(justify or {}).get(c, "left"))
    for r in rows:
        t.add_row(*[str(x) for x in r])
    console.print(t)
