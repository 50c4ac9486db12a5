"""Commands for static word vectors: neighbors, analogy, vectors, evaluate analogies|wordsim|…"""

import sys
from functools import cache
from pathlib import Path

import typer
from rich.markup import escape

from ..analysis import wordspace as space
from ..analysis.wordvectors import DATASETS, compare_analogies, evaluate_word_pairs, word_rows
from ..errors import ContextlensError
from ..io.catalog import resolve
from ..io.wordvectors import SUFFIX_FORMAT
from ..static import WordVectors, load_vectors
from .app import JSON_OPTION, app, console, emit_json, evaluate_app, get_model, table
from .tour import explain, section

STATIC_MODEL = typer.Option(
    "glove-50", "--model", "-m", help="word vectors: catalog name or a .txt/.vec/.bin file"
)
TOP = typer.Option(10, "--top", "-k", help="how many words to list")
RESTRICT = typer.Option(
    300_000, "--restrict-vocab", help="use only the first N (most frequent) words"
)
SKIP_BAD_ROWS = typer.Option(
    False, "--skip-bad-rows", help="leave out rows holding NaN or infinity (a note counts them)"
)


def note(message: str) -> None:
    """`message` as one `note: …` line on stderr (stdout stays tables or JSON)."""
    print(f"note: {message}", file=sys.stderr)


def word_vectors(name: str, skip_bad_rows: bool = False) -> WordVectors:
    """The static model `name` (its load notes printed), or a clear error for a contextual one."""
    m = _skipping_bad_rows(name) if skip_bad_rows else get_model(name)
    if not isinstance(m, WordVectors):
        raise _contextual(name)
    for message in m.notes:
        note(message)
    return m


def _contextual(name: str) -> ContextlensError:
    return ContextlensError(
        f"{name} is a contextual model; this command needs static word vectors "
        "(-m glove-50 or a .txt/.vec/.bin file)"
    )


@cache
def _skipping_bad_rows(name: str) -> WordVectors:
    """The word vectors `name`, without their rows that hold NaN or infinity."""
    path, entry = resolve(name)
    if (entry.kind != "static") if entry else (path.suffix not in SUFFIX_FORMAT):
        raise _contextual(name)
    return load_vectors(path, entry.name if entry else name, skip_bad_rows=True)


def note_lowercased(wv: WordVectors, given: list[str], used: list[str]) -> None:
    """A note for each word of `given` that the table spells lower-case in `used`."""
    for word, u in zip(given, used, strict=True):
        if u != word:
            note(f"{word!r} is not in {wv.name}, whose words are all lower-case; using {u!r}")


def _show_ranked(title: str, scored: list[space.Scored], score: str) -> None:
    rows = [(i, escape(s.word), f"{s.score:.4f}") for i, s in enumerate(scored, 1)]
    table(escape(title), ["#", "word", score], rows)


@app.command()
def neighbors(
    word: str = typer.Argument(..., help="a word of the vocabulary"),
    model: str = STATIC_MODEL,
    k: int = TOP,
    skip_bad_rows: bool = SKIP_BAD_ROWS,
    as_json: bool = JSON_OPTION,
) -> None:
    """The K words whose vectors are closest to WORD's (cosine similarity)."""
    wv = word_vectors(model, skip_bad_rows)
    r = space.neighbours(wv, word, k)
    note_lowercased(wv, [word], [r.word])
    if as_json:
        return emit_json(r)
    _show_ranked(f"nearest to {r.word!r} ({wv.name})", r.neighbors, "cosine")


@app.command()
def analogy(
    a: str = typer.Argument(..., help="A in 'A is to B as C is to ?'"),
    b: str = typer.Argument(..., help="B"),
    c: str = typer.Argument(..., help="C"),
    model: str = STATIC_MODEL,
    k: int = typer.Option(5, "--top", "-k", help="the answer and this many − 1 runners-up"),
    method: str = typer.Option("3cosadd", "--method", help="3cosadd (B − A + C) or 3cosmul"),
    skip_bad_rows: bool = SKIP_BAD_ROWS,
    as_json: bool = JSON_OPTION,
) -> None:
    """A is to B as C is to ?: the words nearest B − A + C, leaving out A, B and C."""
    wv = word_vectors(model, skip_bad_rows)
    r = space.analogy(wv, a, b, c, k, method)
    note_lowercased(wv, [a, b, c], [r.a, r.b, r.c])
    if as_json:
        return emit_json(r)
    best = r.answers[0]
    console.print(
        escape(f"{r.a} : {r.b} :: {r.c} : ")
        + f"[bold]{escape(best.word)}[/bold]   "
        + escape(f"({method} {best.score:.4f}, {wv.name})")
    )
    if len(r.answers) > 1:
        _show_ranked("runners-up", r.answers[1:], method)


@app.command()
def vectors(
    words: list[str] = typer.Argument(..., help="one or more words"),
    model: str = STATIC_MODEL,
    skip_bad_rows: bool = SKIP_BAD_ROWS,
    as_json: bool = JSON_OPTION,
) -> None:
    """The raw numbers of each word's vector."""
    wv = word_vectors(model, skip_bad_rows)
    used = [wv.lookup(w) for w in words]
    note_lowercased(wv, words, used)
    r = word_rows(wv, used)
    if as_json:
        return emit_json(r)
    for word, row in r.vectors.items():
        numbers = " ".join(f"{x:.5g}" for x in row.tolist())
        console.print(f"[bold]{escape(word)}[/bold] {escape(f'[{r.dim}]')}", numbers)


@evaluate_app.command("analogies")
def evaluate_analogies_command(
    file: Path = typer.Argument(DATASETS["analogies"], help="analogy file (questions-words.txt)"),
    model: str = STATIC_MODEL,
    restrict_vocab: int = RESTRICT,
    skip_bad_rows: bool = SKIP_BAD_ROWS,
    as_json: bool = JSON_OPTION,
) -> None:
    """Google analogies: accuracy per section with 3CosAdd and 3CosMul side by side."""
    wv = word_vectors(model, skip_bad_rows)
    r = compare_analogies(wv, file, restrict_vocab)
    if as_json:
        return emit_json(r)
    add, mul = r.methods["3cosadd"], r.methods["3cosmul"]
    rows = [
        (escape(s.section), s.evaluated, f"{s.accuracy:.1%}", f"{t.accuracy:.1%}")
        for s, t in zip(add.sections, mul.sections, strict=True)
    ]
    rows.append(("all", add.evaluated, f"{add.accuracy:.1%}", f"{mul.accuracy:.1%}"))
    table(
        escape(f"analogies: {Path(file).name}, {r.model}, first {restrict_vocab:,} words"),
        ["section", "questions", "3CosAdd", "3CosMul"],
        rows,
        {"questions": "right", "3CosAdd": "right", "3CosMul": "right"},
    )
    console.print(f"[dim]{add.oov} questions skipped (a word outside the vocabulary)[/dim]")


def _word_pairs(kind: str, file: Path, wv: WordVectors, restrict_vocab: int, as_json: bool) -> None:
    r = evaluate_word_pairs(wv, file, restrict_vocab)
    if as_json:
        return emit_json(r)
    console.print(
        escape(f"{kind} ({Path(file).name}, {r.model}): ")
        + f"Spearman [bold]{r.spearman:.4f}[/bold]   "
        f"Pearson {r.pearson:.4f}   {r.pairs} pairs, {r.oov} skipped "
        f"({r.oov_fraction:.1%} out of vocabulary)"
    )


def _pairs_command(kind: str, title: str) -> None:
    """Register `evaluate KIND [FILE]` for a word-pair similarity set."""

    def command(
        file: Path = typer.Argument(DATASETS[kind], help=f"{title} file (word1 word2 score)"),
        model: str = STATIC_MODEL,
        restrict_vocab: int = RESTRICT,
        skip_bad_rows: bool = SKIP_BAD_ROWS,
        as_json: bool = JSON_OPTION,
    ) -> None:
        _word_pairs(title, file, word_vectors(model, skip_bad_rows), restrict_vocab, as_json)

    command.__doc__ = (
        f"{title}: Spearman/Pearson of cosine vs human scores, and the share of pairs skipped."
    )
    evaluate_app.command(kind)(command)


for _kind, _title in (("wordsim", "WordSim-353"), ("simlex", "SimLex-999"), ("men", "MEN")):
    _pairs_command(_kind, _title)


@section(40, "Static word vectors: king − man + woman ≈ queen")
def tour_static() -> None:
    """GloVe gives every word one fixed vector (400,000 words × 50 numbers). Directions carry
    meaning: the offset man → king is close to woman → queen."""
    wv = word_vectors("glove-50")
    (word, score), *rest = wv.analogy("man", "king", "woman", k=4)
    console.print(
        f"  king − man + woman ≈ [bold]{word}[/bold] ({score:.3f}); then "
        + ", ".join(f"{w} ({s:.3f})" for w, s in rest)
    )
    for a, b in (("king", "queen"), ("king", "apple")):
        console.print(f"  cosine({a}, {b}) = {wv.similarity(a, b):+.3f}")
    explain("king and queen point the same way; apple points elsewhere.")
