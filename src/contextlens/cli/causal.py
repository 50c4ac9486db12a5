"""Commands about what moves a prediction: lens (the logit lens), attribute (gradient and direct
logit attributions) and patch (activation patching and head ablation)."""

from pathlib import Path

import typer
from rich.text import Text

from ..analysis import attribution as attr
from ..analysis import lens as ln
from ..analysis import patching
from ..errors import ContextlensError
from .app import JSON_OPTION, app, console, emit_json, need_transformer, table

DECODER = typer.Option("smollm2", "--model", "-m", help="a decoder: catalog name or path")
PLOT = typer.Option(None, "--plot", help="save a picture to this .png or .svg file")
TARGET = typer.Option(None, "--target", help="one token, e.g. ' Paris' (default: the prediction)")


def _saved(plot: Path | None) -> None:
    if plot:
        console.print(f"saved {plot}")


# ── lens ───────────────────────────────────────────────────────────────────────────────────
@app.command("lens")
def lens_command(
    text: str = typer.Argument(..., help="the text whose next token is read"),
    model: str = DECODER,
    k: int = typer.Option(5, "-k", help="how many tokens per layer"),
    target: str | None = TARGET,
    position: int = typer.Option(-1, "--position", help="read after this token (-1: the last)"),
    plot: Path | None = PLOT,
    as_json: bool = JSON_OPTION,
) -> None:
    """The logit lens: the next token read from every layer through the final norm and LM
    head — where the answer appears and when it takes over."""
    m = need_transformer(model, "lens")
    r = ln.logit_lens(m, text, k, target, position)
    if as_json:
        return emit_json(r)
    table(
        f"logit lens after {r.tokens[r.position]!r} ({m.name}); layer 0 = the embedding",
        ["layer", f"top {k}", f"p({r.target!r})", "rank"],
        [
            (
                row.layer,
                "  ".join(f"{c.token!r} {c.probability:.2f}" for c in row.top),
                f"{row.target_probability:.3f}",
                row.target_rank,
            )
            for row in r.layers
        ],
        {"layer": "right", f"p({r.target!r})": "right", "rank": "right"},
    )
    where = (
        f"{r.target!r} enters the top {k} at layer {r.appears}"
        if r.appears is not None
        else f"{r.target!r} never enters the top {k}"
    )
    if r.takes_over is not None:
        where += f" and leads from layer {r.takes_over} on"
    console.print(where)
    if plot:
        ln.lens_picture(r, plot)
    _saved(plot)


# ── attribute ──────────────────────────────────────────────────────────────────────────────
def _coloured(tokens: list[attr.TokenScore]) -> Text:
    """The tokens, green where integrated gradients push the output up, red where down."""
    top = max((abs(t.integrated_gradients) for t in tokens), default=0) or 1
    out = Text()
    for t in tokens:
        share = t.integrated_gradients / top
        colour = (
            f"rgb(0,{int(90 + 150 * share)},0)"
            if share > 0
            else f"rgb({int(90 - 150 * share)},0,0)"
        )
        out.append(f" {t.token} ", style=f"bold white on {colour}" if abs(share) > 0.2 else "")
    return out


def _show(r: attr.AttributionReport) -> None:
    table(
        f"{r.output} ({r.model}): {r.value:.4f}",
        ["#", "token", "saliency", "input×grad", "integrated grad"],
        [
            (
                i,
                repr(t.token),
                f"{t.saliency:.4f}",
                f"{t.input_x_gradient:+.4f}",
                f"{t.integrated_gradients:+.4f}",
            )
            for i, t in enumerate(r.tokens)
        ],
        {c: "right" for c in ("#", "saliency", "input×grad", "integrated grad")},
    )
    console.print(_coloured(r.tokens))
    console.print(
        f"[dim]integrated gradients, {r.steps} steps from a baseline of {r.baseline} "
        f"(f = {r.baseline_value:.4f} there): they sum to f(x) − f(baseline) = "
        f"{r.value - r.baseline_value:.4f} with a gap of {r.completeness_gap:+.2e}[/dim]"
    )


def _show_direct(d: attr.DirectLogitAttribution, k: int, plot: Path | None) -> None:
    parts = sorted(d.parts, key=lambda p: -abs(p.logit))[:k]
    console.print(
        f"logit of {d.target!r} after {d.tokens[d.position]!r} ({d.model}) = {d.logit:.4f}: "
        f"{len(d.parts)} parts (embedding, each head, each MLP …) that sum to {d.total:.4f}"
    )
    table(
        f"the {k} largest",
        ["part", "logit"],
        [(p.name, f"{p.logit:+.4f}") for p in parts],
        {"logit": "right"},
    )
    if plot:
        ln.signed_map(
            d.heads,
            [str(i) for i in range(len(d.heads))],
            [str(h) for h in range(len(d.heads[0]))],
            f"{d.model}: each head's direct share of logit({d.target!r})",
            plot,
            ("head", "layer"),
            "logit",
        )


def _hit_text(index: str, query: str, hit: int) -> tuple[str, str]:
    """(the index's model name, the text of the hit-th dense result for query)."""
    from ..search import Index

    ix = Index.open(index)
    hits = ix.search(query, k=hit, mode="dense")
    if len(hits) < hit:
        raise ContextlensError(f"the search gave {len(hits)} hits; give --hit 1 to {len(hits)}")
    return ix.model_name, hits[hit - 1].text


@app.command("attribute")
def attribute_command(
    text: str = typer.Argument(..., help="the text (or, with --index, the query)"),
    model: str | None = typer.Option(
        None, "--model", "-m", help="default: smollm2 for the next token, minilm with --with"
    ),
    other: str | None = typer.Option(None, "--with", help="attribute the cosine with this text"),
    index: str | None = typer.Option(None, "--index", help="attribute a dense search hit's score"),
    hit: int = typer.Option(1, "--hit", help="with --index: which hit (1 = the best)"),
    target: str | None = TARGET,
    log_prob: bool = typer.Option(False, "--log-prob", help="the log-probability, not the logit"),
    direct: bool = typer.Option(
        False, "--direct", help="split the logit by head and MLP (direct logit attribution)"
    ),
    steps: int = typer.Option(attr.DEFAULT_STEPS, "--steps", help="integrated-gradient steps"),
    top: int = typer.Option(12, "--top", "-k", help="with --direct: how many parts to list"),
    plot: Path | None = typer.Option(None, "--plot", help="with --direct: the layer × head map"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Which input tokens move an output: the next token's logit (decoders), the cosine of two
    texts (--with), or a search hit's score (--index); saliency, input × gradient and
    integrated gradients. --direct splits the logit into embedding, heads and MLPs."""
    if plot and not direct:
        raise ContextlensError("--plot draws the layer × head map of --direct; add --direct")
    if other is not None or index is not None:
        if index is not None:
            name, other = _hit_text(index, text, hit)
            model = model or name
        m = need_transformer(model or "minilm", "attribute")
        what = "search score" if index is not None else "cosine"
        s = attr.attribute_similarity(m, text, other, steps, what)
        if as_json:
            return emit_json(s)
        console.print(f"cosine {s.cosine:.4f} ({m.name})")
        _show(s.a)
        _show(s.b)
        return
    m = need_transformer(model or "smollm2", "attribute")
    if direct:
        d = attr.direct_logit_attribution(m, text, target)
        if as_json:
            return emit_json(d)
        _show_direct(d, top, plot)
        return _saved(plot)
    r = attr.attribute_next_token(m, text, target, log_prob, steps)
    if as_json:
        return emit_json(r)
    _show(r)


# ── patch ──────────────────────────────────────────────────────────────────────────────────
def parse_heads(values: list[str]) -> list[tuple[int, int]]:
    """--ablate 3.1 --ablate 5.0 -> [(3, 1), (5, 0)]."""
    out = []
    for v in values:
        try:
            layer, head = (int(x) for x in v.split("."))
        except ValueError:
            raise ContextlensError(
                f"--ablate {v!r}: write a head as LAYER.HEAD, e.g. 3.1"
            ) from None
        out.append((layer, head))
    return out


def _show_patch(r: patching.PatchReport, plot: Path | None) -> None:
    console.print(
        f"{r.metric}: clean {r.clean_value:.4f}, corrupted {r.corrupted_value:.4f} ({r.model}); "
        f"the texts differ at {', '.join(repr(r.tokens[i]) for i in r.differs)}"
    )
    cols = [str(h) for h in range(len(r.restored[0]))] if r.site == "heads" else r.tokens
    flat = [(v, i, j) for i, row in enumerate(r.restored) for j, v in enumerate(row)]
    best = sorted(flat, reverse=True)[:10]
    table(
        f"{r.site} patched in: share restored",
        ["layer", "head" if r.site == "heads" else "token", "restored"],
        [(i, cols[j] if r.site == "heads" else repr(cols[j]), f"{v:+.3f}") for v, i, j in best],
        {"layer": "right", "restored": "right"},
    )
    if plot:
        ln.signed_map(
            r.restored,
            [str(i) for i in range(len(r.restored))],
            cols,
            f"{r.model}: {r.site} patched from {r.clean[:40]!r} into {r.corrupted[:40]!r}",
            plot,
            ("head" if r.site == "heads" else "position", "layer"),
            "share of the difference restored",
        )


@app.command("patch")
def patch_command(
    clean: str = typer.Argument(..., help="the clean text (with --ablate: the text)"),
    corrupted: str | None = typer.Argument(None, help="the corrupted text, of as many tokens"),
    model: str = DECODER,
    site: str = typer.Option("resid", "--site", help="resid | attn | mlp | heads"),
    target: str | None = TARGET,
    foil: str | None = typer.Option(
        None, "--foil", help="the other token (default: the corrupted run's)"
    ),
    ablate: list[str] = typer.Option(
        None, "--ablate", help="ablate a head LAYER.HEAD (repeatable)"
    ),
    mode: str = typer.Option("zero", "--mode", help="with --ablate: zero | mean"),
    plot: Path | None = PLOT,
    as_json: bool = JSON_OPTION,
) -> None:
    """Activation patching: copy one layer × position (or one head) of the clean run into the
    corrupted one and see how much of the output it restores. --ablate zeroes heads instead
    (or sets them to their mean, --mode mean)."""
    m = need_transformer(model, "patch")
    if ablate:
        a = patching.ablate(m, clean, parse_heads(ablate), mode, target)
        if as_json:
            return emit_json(a)
        heads = ", ".join(f"{i}.{h}" for i, h in a.heads)
        if a.target is None:
            what = f"{mode}-ablating {heads}"
            console.print(f"cosine of the embedding with the original after {what}: {a.after:.4f}")
            return
        change = f"p({a.target!r}) {a.before:.4f} → {a.after:.4f}"
        console.print(f"{change} after {mode}-ablating {heads} ({m.name})")
        table(
            None,
            ["before", "p", "after", "p "],
            [
                (repr(b[0]), f"{b[1]:.3f}", repr(c[0]), f"{c[1]:.3f}")
                for b, c in zip(a.top_before, a.top_after, strict=True)
            ],
            {"p": "right", "p ": "right"},
        )
        return
    if corrupted is None:
        raise ContextlensError("give the corrupted text after the clean one, or heads to --ablate")
    r = patching.patch(m, clean, corrupted, site, target, foil)
    if as_json:
        return emit_json(r)
    _show_patch(r, plot)
    _saved(plot)
