"""`contextlens train word2vec CORPUS… --out FILE`: word vectors trained from scratch, with a
progress bar, and the learning of chosen words tracked, tabled and drawn."""

from enum import Enum
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from ..analysis.learning import Learning, learning, plot_learning
from ..errors import ContextlensError
from ..word2vec import Settings, train_word2vec
from .app import JSON_OPTION, app, console, emit_json, table

train_app = typer.Typer(help="Train word vectors from your own text.", no_args_is_help=True)
app.add_typer(train_app, name="train")

Mode = Enum("Mode", {"skipgram": "skipgram", "cbow": "cbow"}, type=str)
DEFAULTS = Settings()


def _groups(track: list[str]) -> list[list[str]]:
    """`--track king,queen` → [["king", "queen"]], one group per option."""
    groups = [[w.strip() for w in t.split(",") if w.strip()] for t in track]
    short = next((t for t, g in zip(track, groups, strict=True) if len(g) < 2), None)
    if short is not None:
        raise ContextlensError(
            f"--track {short!r} names fewer than two words; give comma-separated words, "
            "e.g. --track king,queen"
        )
    return groups


class Bar:
    """The progress bar on stderr (words/s, loss, ETA), shown from the first trained block:
    a corpus refused while it is read leaves no half-drawn bar before its error line."""

    def __init__(self):
        self.bar: Progress | None = None

    def __call__(self, p) -> None:
        if self.bar is None:
            self.bar = Progress(
                TextColumn("training"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TextColumn("{task.fields[speed]:>9,.0f} words/s"),
                TextColumn("loss {task.fields[loss]:.3f}"),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task("training", total=p.total, speed=0, loss=0.0)
        self.bar.update(self.task, completed=p.words, speed=p.words_per_second, loss=p.loss)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


@train_app.command("word2vec")
def word2vec_command(
    corpus: list[Path] = typer.Argument(
        ..., help="text files: plain text, one sentence a line, or either as .gz"
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="where to save: .txt (GloVe), .vec (word2vec) or .bin"
    ),
    mode: Mode = typer.Option("skipgram", "--mode", help="skipgram or cbow"),
    dim: int = typer.Option(DEFAULTS.dim, "--dim", help="numbers per vector"),
    window: int = typer.Option(DEFAULTS.window, "--window", help="context words each side"),
    min_count: int = typer.Option(
        DEFAULTS.min_count, "--min-count", help="leave out words seen fewer times"
    ),
    negative: int = typer.Option(
        DEFAULTS.negative, "--negative", help="noise words per centre word"
    ),
    sample: float = typer.Option(
        DEFAULTS.sample, "--sample", help="subsample words more frequent than this (0: off)"
    ),
    alpha: float = typer.Option(DEFAULTS.alpha, "--alpha", help="starting learning rate"),
    epochs: int = typer.Option(DEFAULTS.epochs, "--epochs", help="passes over the corpus"),
    seed: int = typer.Option(DEFAULTS.seed, "--seed", help="same seed, same vectors"),
    workers: int = typer.Option(
        DEFAULTS.workers, "--workers", help="training threads (more than 1: faster, not repeatable)"
    ),
    keep_case: bool = typer.Option(False, "--keep-case", help="do not lower-case the corpus"),
    subwords: bool = typer.Option(
        False, "--subwords", help="fastText: words made of character n-grams too (--out a .bin)"
    ),
    minn: int = typer.Option(DEFAULTS.minn, "--minn", help="shortest n-gram (--subwords)"),
    maxn: int = typer.Option(DEFAULTS.maxn, "--maxn", help="longest n-gram (--subwords)"),
    bucket: int = typer.Option(
        DEFAULTS.bucket, "--bucket", help="rows the n-grams are hashed into (--subwords)"
    ),
    track: list[str] = typer.Option(
        [], "--track", help="comma-separated words whose cosines and neighbours are recorded"
    ),
    checkpoints: int = typer.Option(8, "--checkpoints", help="moments recorded for --track"),
    plot: Path | None = typer.Option(
        None, "--plot", help="draw the tracked words learning (.png or .svg; needs --track)"
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Train skip-gram or CBOW word vectors with negative sampling on CORPUS and save them;
    `neighbors`, `analogy` and `evaluate` then take the file with -m. With --subwords, a
    fastText model whose character n-grams give vectors to unseen and misspelt words."""
    groups = _groups(track)
    if plot and not groups:
        raise ContextlensError("--plot draws tracked words; add --track, e.g. --track king,queen")
    bar = Bar()
    try:
        run = train_word2vec(
            corpus,
            out,
            track=groups,
            checkpoints=checkpoints,
            progress=bar,
            mode=mode.value,
            dim=dim,
            window=window,
            min_count=min_count,
            negative=negative,
            sample=sample,
            alpha=alpha,
            epochs=epochs,
            seed=seed,
            workers=workers,
            lowercase=not keep_case,
            subwords=subwords,
            minn=minn,
            maxn=maxn,
            bucket=bucket,
        )
    finally:
        bar.close()
    report = learning(run, out)
    if plot:
        plot_learning(report, plot)
    if as_json:
        return emit_json(report)
    _show(report, plot)


def _show(r: Learning, plot: Path | None) -> None:
    console.print(
        escape(
            f"trained {r.mode} on {r.corpus_words:,} words × {r.epochs} epochs: "
            f"{r.vocabulary:,} words × {r.dim} in {r.seconds:.1f} s "
            f"({r.words_per_second:,} words/s)"
        )
    )
    console.print(escape(f"saved {r.out}"))
    if r.pairs:
        rows = [
            (f"{100 * p:.0f}%", *(f"{c.cosines[i]:+.3f}" for c in r.pairs))
            for i, p in enumerate(r.progress)
        ]
        names = [f"{c.a} · {c.b}" for c in r.pairs]
        table("cosine of tracked pairs", ["trained", *names], rows, dict.fromkeys(names, "right"))
        rows = [
            (escape(t.word), _listed(t.neighbours[0]), _listed(t.neighbours[-1])) for t in r.tracked
        ]
        table("nearest words", ["word", "at the random start", "at the end"], rows)
    if plot:
        console.print(escape(f"saved {plot}"))


def _listed(neighbours: list[tuple[str, float]]) -> str:
    return escape(", ".join(w for w, _ in neighbours))
