"""`contextlens contrast WORD SENTENCE…`: a static table's one neighbour list for a word beside a
transformer's neighbours for it in each sentence."""

import typer
from rich.markup import escape

from ..analysis.contrast import Contrast, contrast
from .app import JSON_OPTION, app, console, emit_json, need_transformer, table
from .static import word_vectors


@app.command("contrast")
def contrast_command(
    word: str = typer.Argument(..., help="a word that means different things, e.g. bank"),
    sentences: list[str] = typer.Argument(..., help="two or more sentences that use the word"),
    model: str = typer.Option("minilm", "--model", "-m", help="the contextual model"),
    static: str = typer.Option(
        "glove-50", "--static", "-s", help="the static word vectors: catalog name or a file"
    ),
    k: int = typer.Option(8, "--top", "-k", help="neighbours listed for each"),
    layer: int | None = typer.Option(
        None, "--layer", help="the contextual model's layer (default: the last)"
    ),
    candidates: int = typer.Option(
        3000, "--candidates", help="common words of the static table the contextual lists rank"
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Static against contextual: WORD's single static neighbour list beside its contextual
    neighbours in each SENTENCE."""
    wv = word_vectors(static)
    lm = need_transformer(model, "contrast")
    report = contrast(word, sentences, wv, lm, k, layer, candidates)
    if as_json:
        return emit_json(report)
    _show(report)


def _show(r: Contrast) -> None:
    rows = [(escape(f"{r.static_model} (static, any sentence)"), _listed(r.static))]
    rows += [
        (escape(f"{r.contextual_model}: {s.sentence}"), _listed(s.neighbours)) for s in r.sentences
    ]
    table(escape(f"nearest words to {r.word!r}"), ["where", "neighbours"], rows)
    console.print(
        escape(
            f"contextual lists: layer {r.layer} of {r.contextual_model}, ranked among "
            f"{r.candidates:,} common words of {r.static_model}, each read alone by the model"
        ),
        style="dim",
    )


def _listed(neighbours: list[tuple[str, float]]) -> str:
    return escape(", ".join(w for w, _ in neighbours))
