"""Commands: index build|add|remove|info|list, search, ask, evaluate retrieval."""

import tempfile
import warnings
from dataclasses import fields
from pathlib import Path

import typer

from ..errors import ContextlensError, Truncated
from ..io.retrieval import read_qrels, read_queries
from ..search import (
    DEFAULT_MODE,
    Index,
    answer,
    evaluate,
    explain,
    judged,
    list_indexes,
)
from ..search.corpus import Job
from ..search.engine import Engine
from ..search.index import IndexBuilt, Removed
from .app import JSON_OPTION, MODEL_OPTION, app, console, emit_json, evaluate_app, get_model, table
from .embed import (
    ACTORS,
    ADDRESS,
    BATCH,
    CHUNK_TOKENS,
    ENGINE,
    ID_FIELD,
    OVERLAP,
    TEXT_FIELD,
    progress_bar,
)
from .tour import explain as say
from .tour import section

index_app = typer.Typer(help="Build and manage search indexes.", no_args_is_help=True)
app.add_typer(index_app, name="index")

INDEX = typer.Option(..., "--index", "-i", help="index name (under $CONTEXTLENS_HOME) or a path")
PATHS = typer.Argument(
    ..., help="files or folders (.txt .md .html .jsonl .parquet, SMART collections)"
)
QUERY_MODEL = typer.Option(None, "--model", "-m", help="the index's model (checked if given)")


def _run_build(paths, index, model, chunk_tokens=None, overlap=None, text_field="text",
               id_field=None, batch=32, quiet=False, add=False, engine=None):  # fmt: skip
    """Build (or add to) an index with a progress bar, in this process or on Ray (`engine`);
    returns (index, report)."""
    m = get_model(model)
    ix = Index.open(index) if add else Index.create(index, m, chunk_tokens, overlap)
    run = ix.add if add else ix.build
    try:
        with progress_bar(quiet) as callback:
            report = run(
                [str(p) for p in paths], m, text_field=text_field, id_field=id_field,
                batch_size=batch, progress=callback, engine=engine,
            )  # fmt: skip
    except BaseException:
        ix.discard()  # a failed first build leaves the folder as it was
        raise
    return ix, report


def _show_build(ix: Index, report, as_json: bool) -> None:
    built = IndexBuilt(**vars(report), index=str(ix.path))
    if as_json:
        return emit_json(built)
    counts = [f.name for f in fields(built) if f.name not in ("skipped", "index")]
    rows = [(name, getattr(built, name)) for name in counts]
    table(f"index {built.index}", ["", "count"], rows, {"count": "right"})
    for s in built.skipped:
        console.print(f"skipped {s.path}: {s.reason}", markup=False)


def _build_from_shards(folder: Path, index: str, model: str | None, as_json: bool) -> None:
    """`index build --from-shards DIR`: take an embedding job's chunks and vectors as they are,
    with the model and chunk settings it recorded."""
    job = Job.open(folder)
    settings = job.settings
    if model is not None and model != settings["model"]:
        raise ContextlensError(
            f"the job in {folder} was embedded with {settings['model']}, not {model}; leave out -m"
        )
    m = get_model(settings["model"])
    ix = Index.create(index, m, settings["chunk_tokens"], settings["overlap"])
    try:
        with progress_bar(as_json, "indexing") as callback:
            report = ix.build_from_shards(folder, progress=callback)
    except BaseException:
        ix.discard()
        raise
    _show_build(ix, report, as_json)


@index_app.command("build")
def build(
    paths: list[Path] = typer.Argument(
        None, help="files or folders (.txt .md .html .jsonl .parquet, SMART collections)"
    ),
    index: str = INDEX,
    from_shards: Path = typer.Option(
        None,
        "--from-shards",
        help="instead of PATHS: the --out folder of a finished `embed` job, indexed without "
        "embedding again",
    ),
    model: str = typer.Option(None, "--model", "-m", help="model name or path (default minilm)"),
    chunk_tokens: int = CHUNK_TOKENS,
    overlap: int = OVERLAP,
    text_field: str = TEXT_FIELD,
    id_field: str = ID_FIELD,
    batch_size: int = BATCH,
    engine: str = ENGINE,
    address: str = ADDRESS,
    actors: int = ACTORS,
    as_json: bool = JSON_OPTION,
) -> None:
    """Index the documents under PATHS (only new or changed ones are embedded; gone ones are
    removed; an interrupted build resumes). Without --chunk-tokens/--overlap an existing index
    keeps its settings. With --engine ray the chunks are embedded on a Ray cluster; the index
    still changes in one transaction at the end. With --from-shards DIR the chunks and vectors
    of an `embed --out DIR` job are indexed as they are."""
    if from_shards is not None:
        if paths:
            raise ContextlensError("give PATHS or --from-shards, not both")
        return _build_from_shards(from_shards, index, model, as_json)
    if not paths:
        raise ContextlensError(
            "no paths given; name the files or folders to index (or --from-shards)"
        )
    model = model or "minilm"
    run = Engine(engine, address, actors)
    args = (chunk_tokens, overlap, text_field, id_field, batch_size, as_json)
    _show_build(*_run_build(paths, index, model, *args, engine=run), as_json)


@index_app.command("add")
def add(
    paths: list[Path] = PATHS,
    index: str = INDEX,
    text_field: str = TEXT_FIELD,
    id_field: str = ID_FIELD,
    batch_size: int = BATCH,
    engine: str = ENGINE,
    address: str = ADDRESS,
    actors: int = ACTORS,
    as_json: bool = JSON_OPTION,
) -> None:
    """Add or update the documents under PATHS, keeping the rest of the index."""
    run = Engine(engine, address, actors)
    model = Index.open(index).model_name
    args = (None, None, text_field, id_field, batch_size, as_json)
    _show_build(*_run_build(paths, index, model, *args, add=True, engine=run), as_json)


@index_app.command("remove")
def remove(
    documents: list[str] = typer.Argument(..., help="document names, files or folders"),
    index: str = INDEX,
    as_json: bool = JSON_OPTION,
) -> None:
    """Remove documents (a folder removes everything under it)."""
    ix = Index.open(index)
    r = Removed(str(ix.path), ix.remove(documents))
    if as_json:
        return emit_json(r)
    console.print(f"removed {r.removed} document{'s' * (r.removed != 1)}")


@index_app.command("info")
def info(index: str = INDEX, as_json: bool = JSON_OPTION) -> None:
    """What an index holds and how it was made."""
    r = Index.open(index).details(files=True)
    if as_json:
        return emit_json(r)
    shown = [f.name for f in fields(r) if f.name != "files"]
    table(None, ["", "value"], [(name, getattr(r, name)) for name in shown])


@index_app.command("list")
def list_(as_json: bool = JSON_OPTION) -> None:
    """The indexes under $CONTEXTLENS_HOME/indexes (default ~/.cache/contextlens/indexes)."""
    infos = [Index(p).details() for p in list_indexes()]
    if as_json:
        return emit_json(infos)
    rows = [(Path(r.path).name, r.model, r.documents, r.chunks) for r in infos]
    table(None, ["index", "model", "documents", "chunks"], rows)


def _where(pairs: list[str] | None) -> dict[str, str] | None:
    if not pairs:
        return None
    bad = [p for p in pairs if "=" not in p]
    if bad:
        raise ContextlensError(f"--where {bad[0]!r} is not key=value (globs allowed: path=*.md)")
    return dict(p.split("=", 1) for p in pairs)


def _open(index: str, model: str | None):
    ix = Index.open(index)
    m = get_model(model or ix.model_name)
    ix.check_model(m)
    return ix, m


def _snippet(text: str, n: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


@app.command()
def search(
    query: str = typer.Argument(..., help="what to look for"),
    index: str = INDEX,
    k: int = typer.Option(5, "-k", help="how many chunks"),
    mode: str = typer.Option(DEFAULT_MODE, "--mode", help="dense | bm25 | hybrid"),
    where: list[str] = typer.Option(None, "--where", help="metadata filter key=glob (repeatable)"),
    ann: bool = typer.Option(None, "--ann/--exact", help="HNSW graph or exact scan (auto)"),
    why: bool = typer.Option(False, "--explain", help="the tokens that made each hit match"),
    model: str = QUERY_MODEL,
    as_json: bool = JSON_OPTION,
) -> None:
    """Search an index by meaning (dense), by words (bm25) or both (hybrid)."""
    ix, m = _open(index, model)
    r = ix.report(query, m, k, mode, _where(where), ann, explain=why)
    if as_json:
        return emit_json(r.hits)
    if not r.hits:
        console.print("no matches")
    for h in r.hits:
        console.print(f"[bold]{h.rank}.[/bold] {h.score:.4f}  {h.document} (chunk {h.position})")
        console.print(f"   {_snippet(h.text)}", markup=False)
        if h.explain:
            e = h.explain
            top = ", ".join(f"{t} {c:+.3f}" for t, c in e.top("chunk", 8))
            qtop = ", ".join(f"{t} {c:+.3f}" for t, c in e.top("query", 5))
            console.print(f"   cosine {e.score:.4f} = Σ token shares; chunk: {top}", markup=False)
            console.print(f"   query: {qtop}", markup=False)


@app.command()
def ask(
    question: str = typer.Argument(..., help="the question"),
    index: str = INDEX,
    k: int = typer.Option(4, "-k", help="how many chunks to give the model"),
    model: str = typer.Option(None, "--model", "-m", help="a decoder that answers (smollm2)"),
    show_prompt: bool = typer.Option(False, "--show-prompt", help="print the prompt"),
    max_new_tokens: int = typer.Option(200, "--max-new-tokens", help="answer length limit"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Retrieve the chunks that answer QUESTION; with a decoder (-m smollm2), answer from them
    citing the chunks as [1], [2], …"""
    if max_new_tokens < 1:
        raise ContextlensError(f"--max-new-tokens must be 1 or more (got {max_new_tokens})")
    ix, encoder = _open(index, None)
    hits = ix.search(question, k=k, model=encoder)
    result = answer(question, hits, get_model(model) if model else None, max_new_tokens)
    if as_json:
        return emit_json(result)
    if show_prompt:
        shown = result.prompt or "\n\n".join(
            f"{m['role']}: {m['content']}" for m in result.messages
        )
        console.print(shown, markup=False)
        console.print()
    if result.text is not None:
        console.print(result.text, markup=False)
        console.print()
    for h in hits:
        console.print(f"[{h.rank}] {h.document} (chunk {h.position})", markup=False)
        if result.text is None:
            console.print(f"    {_snippet(h.text, 400)}", markup=False)


@evaluate_app.command("retrieval")
def evaluate_retrieval(
    index: str = INDEX,
    queries: Path = typer.Option(..., "--queries", help="queries (BEIR jsonl, TSV or SMART)"),
    qrels: Path = typer.Option(..., "--qrels", help="judgements (BEIR TSV, TREC or SMART)"),
    depth: int = typer.Option(100, "--depth", help="documents ranked per query (recall@depth)"),
    corpus: list[Path] = typer.Option(
        None, "--corpus", help="build or update the index from these files first"
    ),
    model: str = MODEL_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """recall@10/@depth, MRR@10, nDCG@10 and QPS for dense, BM25 and hybrid; ANN vs exact.
    With --corpus the index is built first (only what changed), so one command does it all."""
    if depth < 10:
        raise ContextlensError(f"--depth must be at least 10 (got {depth})")
    asked, judgements = read_queries(queries), read_qrels(qrels)
    judged(asked, judgements)  # before a build that may take minutes
    if corpus:
        _run_build(corpus, index, model, quiet=as_json)
    ix, m = _open(index, None)
    with warnings.catch_warnings():
        warnings.simplefilter("once", Truncated)  # a long query is embedded in every mode
        result = evaluate(ix, m, asked, judgements, depth)
    if as_json:
        return emit_json(result)
    metrics = list(next(iter(result.modes.values())))
    rows = [
        (mode, *(f"{v:.1f}" if name == "qps" else f"{v:.4f}" for name, v in r.items()))
        for mode, r in result.modes.items()
    ]
    right = {c: "right" for c in metrics}
    table(f"{result.index}: {result.queries} queries", ["mode", *metrics], rows, right)
    a = result.ann
    if a is None:
        return console.print("ANN (HNSW): not measured, the graphs exceed the ANN memory budget")
    console.print(
        f"ANN (HNSW) recall@10 vs exact: {a['recall@10_vs_exact']:.4f}, {a['qps']:.1f} QPS"
    )


@section(70, "Semantic search over your own documents")
def _tour() -> None:
    notes = {
        "kitchen.txt": "Preheat the oven to 200 degrees. Roast the vegetables for forty minutes.",
        "travel.txt": "The night train to Vienna leaves at ten. Book a couchette in advance.",
        "garden.md": "Tomatoes need full sun and regular watering. Stake them as they grow.",
    }
    m = get_model("minilm")
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in notes.items():
            (Path(tmp) / name).write_text(text)
        ix = Index.create(Path(tmp) / "index", m)
        report = ix.build([tmp], m)
        say(f"Indexed {report.documents} notes as {report.chunks} chunks of ≤ 200 tokens.")
        query = "how long do I cook carrots"
        hits = ix.search(query, k=3, mode="dense", model=m)
        say(f"Dense search for {query!r} (cosine of mean-pooled minilm vectors):")
        for h in hits:
            console.print(f"  {h.score:.3f}  {Path(h.document).name}", markup=False)
        e = explain(m, query, hits[0].text)
        top = ", ".join(f"{t} {c:+.3f}" for t, c in e.top("chunk", 5))
        say(
            f"No word is shared, yet {Path(hits[0].document).name} wins. The cosine splits into "
            f"one share per token of the chunk; the biggest: {top} (they sum to {e.score:.3f})."
        )
        ix.close()
