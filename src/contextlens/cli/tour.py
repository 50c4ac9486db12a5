"""`contextlens tour`: the pipeline walked on real models, one short section at a time.

Command modules register their sections with `@section(order, title)`; the tour runs them in
order, each under its title and its docstring (what the section shows), when it has one.
"""

import inspect
from collections.abc import Callable

from rich.rule import Rule

from .app import app, console

SECTIONS: list[tuple[int, str, Callable[[], None]]] = []


def section(order: int, title: str):
    """Register `fn` as a tour section; lower `order` runs first."""

    def register(fn: Callable[[], None]) -> Callable[[], None]:
        SECTIONS.append((order, title, fn))
        return fn

    return register


def explain(text: str) -> None:
    console.print(f"[dim]{text}[/dim]")


@app.command()
def tour() -> None:
    """Walk the pipeline on the real models: tokens, vectors, attention, similarity, prediction."""
    for number, (_, title, fn) in enumerate(sorted(SECTIONS, key=lambda s: s[0]), start=1):
        console.print(Rule(f"[bold]{number}. {title}[/bold]", align="left"))
        if fn.__doc__:
            explain(" ".join(inspect.cleandoc(fn.__doc__).splitlines()))
        fn()
        console.print()
