"""`contextlens kv-cache`: how big the KV cache is for MHA, GQA, MQA and MLA, with the formulas;
and the tour's section on what latent attention caches."""

import typer

from ..analysis import kvcache
from ..errors import ContextlensError
from .app import JSON_OPTION, app, console, emit_json, get_model, need_decoder, table
from .tour import explain, section


def _size(n: float) -> str:
    """Bytes in binary units: 70,272 B -> '68.6 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _context(n: int) -> str:
    return f"{n // 1024}k" if n % 1024 == 0 else str(n)


def show(r: kvcache.KVCacheReport) -> None:
    c = r.shape
    widths = f"d_h={c.head_dim:g}"
    if c.kv_rank is not None:
        widths = f"d_qk={c.key_dim}, d_v={c.value_dim} (d_h={c.head_dim:g}), d_c={c.kv_rank}, "
        widths += f"d_r={c.rope_dim}"
    console.print(
        f"[bold]{c.name}[/bold]: L={c.layers} layers, H={c.heads} heads, H_kv={c.kv_heads}, "
        f"{widths}, b={c.bytes_per_value} ({c.dtype}); it uses {r.native}"
    )
    table(
        None,
        ["variant", "formula", "B/token", *(_context(n) for n in r.contexts), f"× {r.native}"],
        [
            (
                v.name + (" ◀" if v.name == r.native else ""),
                f"{v.formula} = {v.numbers}",
                f"{v.bytes_per_token:,}",
                *(_size(v.bytes_at[n]) for n in r.contexts),
                f"{v.times_native:.3g}",
            )
            for v in r.variants
        ],
        {"B/token": "right", f"× {r.native}": "right"} | {_context(n): "right" for n in r.contexts},
    )


@app.command("kv-cache")
def kv_cache(
    model: str = typer.Argument(None, help="a model to load (catalog name or path)"),
    config: str = typer.Option(
        None,
        "--config",
        "-c",
        help=f"a config.json path, or one of: {', '.join(kvcache.NAMED)} (repeatable)",
    ),
    dtype: str = typer.Option(
        None, "--dtype", help=f"bytes per number from this dtype ({', '.join(kvcache.BYTES)})"
    ),
    context: list[int] = typer.Option(
        None, "--context", help="context lengths to size the cache for (repeatable)"
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """KV-cache bytes per token and per context length for MHA, GQA, MQA and MLA, with the
    formulas, for MODEL or a configuration; with neither, for the named real configurations."""
    if model is not None and config is not None:
        raise ContextlensError("give a MODEL or --config, not both")
    if model is not None:
        shapes = [kvcache.of_model(need_decoder(model, "kv-cache"), dtype)]
    elif config is not None:
        shapes = [kvcache.load_config(config, dtype)]
    else:
        shapes = [kvcache.load_config(name, dtype) for name in kvcache.NAMED]
    reports = [kvcache.report(s, context) for s in shapes]
    if as_json:
        return emit_json(reports if len(reports) > 1 else reports[0])
    for r in reports:
        show(r)


@section(55, "What the KV cache holds: grouped-query vs multi-head latent attention")
def tour_kv_cache() -> None:
    explain(
        "Generating token t+1 reuses every earlier token's keys and values, so they are kept: the "
        "KV cache. Its size per token is what limits long contexts."
    )
    for name in ("llama-3-8b", "deepseek-v3"):
        r = kvcache.report(kvcache.load_config(name), [131072])
        own = next(v for v in r.variants if v.name == r.native)
        mha = r.variants[0]
        console.print(
            f"  {name:12} {r.native}: {own.formula} = {own.numbers} = {own.bytes_per_token:,} "
            f"B/token ({_size(own.bytes_at[131072])} at 128k); MHA would be "
            f"{mha.bytes_per_token:,} B ({mha.times_native:.0f}×)",
            markup=False,
        )
    m = get_model("smollm2")
    demo = kvcache.latent_demo(m, "The animal didn't cross the street because it was too wide.")
    n = len(demo.tokens)
    w = demo.mla_widths
    console.print(
        f"  one sentence, {n} tokens, through smollm2 (GQA): its cache holds K and V "
        f"{demo.gqa_cache} = {demo.gqa_bytes:,} B",
        markup=False,
    )
    console.print(
        f"  an MLA layer of the same width (random, {w['heads']} heads, d_c={w['d_c']}, "
        f"d_r={w['d_r']}) would hold only c_KV and the RoPE key {demo.mla_cache} = "
        f"{demo.mla_bytes:,} B",
        markup=False,
    )
    top = sorted(range(n), key=lambda i: -demo.absorbed[i])[:3]
    shares = "  ".join(f"{demo.tokens[i]} {demo.naive[i]:.3f}/{demo.absorbed[i]:.3f}" for i in top)
    console.print(
        f"  its last token's attention, naive/absorbed: {shares}; largest difference over all "
        f"heads {demo.max_difference:.1e}",
        markup=False,
    )
    explain(
        "Absorbed: W_UK is folded into the query and W_UV applied after the weighted sum, so "
        "attention runs on the cached latent directly: the same weights, no keys decompressed."
    )
