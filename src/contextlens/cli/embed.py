"""Embedding jobs from the command line: `embed PATH… --out DIR` (a corpus to Parquet shards) and
what it shares with `index build`: the engine options (this process or Ray) and the progress bar.
"""

from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..report import to_dict
from ..search.corpus import DEFAULT_SHARD_ROWS, embed_corpus
from ..search.engine import Engine
from .app import console, emit_json, need_transformer, table

OUT = typer.Option(
    None,
    "--out",
    help="write the embeddings of the files and folders given (.txt .md .html .jsonl .parquet) "
    "as Parquet shards in this folder; a rerun skips the shards already written",
)
ENGINE = typer.Option("local", "--engine", help="local (this process) or ray (a Ray cluster)")
ADDRESS = typer.Option(
    None, "--address", help="with --engine ray: a running cluster's host:port (default: start one)"
)
ACTORS = typer.Option(1, "--actors", help="with --engine ray: Ray actors, one model each")
BATCH = typer.Option(32, "--batch-size", help="chunks embedded per forward pass")
SHARD_ROWS = typer.Option(DEFAULT_SHARD_ROWS, "--shard-rows", help="chunks per Parquet shard")
CHUNK_TOKENS = typer.Option(
    None, "--chunk-tokens", help="tokens a chunk (default 200, at most the model's limit)"
)
OVERLAP = typer.Option(None, "--overlap", help="tokens of whole sentences shared (default 32)")
TEXT_FIELD = typer.Option("text", "--text-field", help="the text field of .jsonl/.parquet rows")
ID_FIELD = typer.Option(None, "--id-field", help="the id field of .jsonl/.parquet rows (_id, id)")


@contextmanager
def progress_bar(as_json: bool, verb: str = "embedding"):
    """A rich progress bar on stderr, shown from the first chunk done (never with --json);
    yields the callback `(done, total)` that moves it."""
    bar = Progress(
        TextColumn(verb),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("chunks"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=as_json,
    )
    tasks = []

    def update(done: int, total: int) -> None:
        if not tasks:
            bar.start()
            tasks.append(bar.add_task("embed", total=total))
        bar.update(tasks[0], completed=done, total=total)

    try:
        yield update
    finally:
        if tasks:
            bar.stop()


def write_corpus(paths: list[str], out: Path, model: str, engine: str, address: str | None,
                 actors: int, batch_size: int, shard_rows: int, chunk_tokens: int | None,
                 overlap: int | None, text_field: str, id_field: str | None,
                 as_json: bool) -> None:  # fmt: skip
    """`embed PATH… --out DIR`: embed the corpus to shards and show what was done."""
    run = Engine(engine, address, actors)
    m = need_transformer(model, "embed")
    with progress_bar(as_json) as callback:
        report = embed_corpus(
            paths, out, m, run, batch_size, shard_rows, chunk_tokens, overlap, text_field,
            id_field, progress=callback,
        )  # fmt: skip
    if as_json:
        return emit_json(report)
    rows = [(k, v) for k, v in to_dict(report).items() if k not in ("skipped", "out")]
    table(f"embeddings in {report.out}", ["", "value"], rows)
    for s in report.skipped:
        console.print(f"skipped {s.path}: {s.reason}", markup=False)
