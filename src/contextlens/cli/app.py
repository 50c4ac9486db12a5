"""The typer app every command module registers on, and the output helpers they share."""

import json
import sys
from enum import Enum
from functools import cache

import typer
from rich.console import Console
from rich.table import Table

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


def get_model(name: str):
    """Load a model once per process and weights mode (commands like `tour` use several)."""
    return _load(name, WEIGHTS["mode"])


@cache
def _load(name: str, weights: str):
    from ..loader import load

    return load(name, weights=weights)


def emit_json(data) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def table(title: str | None, columns: list[str], rows, justify: dict[str, str] | None = None):
    """A rich table; numeric columns right-aligned by `justify`."""
    t = Table(title=title, title_justify="left", header_style="bold")
    for c in columns:
        t.add_column(c, justify=(justify or {}).get(c, "left"))
    for r in rows:
        t.add_row(*[str(x) for x in r])
    console.print(t)
