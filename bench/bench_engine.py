"""The engine: `trace` with every attention and hidden state vs transformers' eager
BertModel with output_attentions/output_hidden_states, and `embed` throughput on 2,000 real
sentences vs sentence-transformers `encode`. Same weights, same texts, same process.
Each trace is also set against its floor: the same model's linear layers alone, run on inputs
of the same length with the same kernels.

    .venv/bin/python bench/bench_engine.py
"""

import csv
import os
import sys
from pathlib import Path

import torch
from common import best_time, machine, matmul_ceiling, paired, write_section

import contextlens as cl
from contextlens.nn.quant import BLAS_ROWS, blas_block, blas_linear, kernels

ROOT = Path(__file__).resolve().parent.parent


def sentences(n: int) -> list[str]:
    """The first n distinct sentences of the STS Benchmark dev file (real text)."""
    with open(ROOT / "tests/data/stsb-dev.csv", encoding="utf-8") as f:
        rows = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        seen = dict.fromkeys(s for r in rows for s in (r[5], r[6]))
    return list(seen)[:n]


def block_linears(model: torch.nn.Module) -> list[torch.nn.Linear]:
    """The linear layers of the model's blocks, in order (the LM head and embeddings excluded)."""
    return [m for m in model.blocks.modules() if isinstance(m, torch.nn.Linear)]


def linear_floor(model: torch.nn.Module, rows: int, head: bool = False) -> float:
    """Best seconds to run every linear layer of the blocks (and the LM head if `head`) once on
    a random `[1, rows, in]` input: the matrix products a pass over `rows` tokens cannot avoid,
    with the kernels it uses."""
    layers = block_linears(model)
    layers += [model.lm_head] if head else []
    inputs = [torch.randn(1, rows, m.in_features, dtype=m.weight.dtype) for m in layers]

    def run():
        for m, x in zip(layers, inputs, strict=True):
            m(x)

    return best_time(run, repeat=10, warmup=2)


def other_kernel_floors(model: torch.nn.Module, rows: int) -> dict[str, float]:
    """`linear_floor` of the blocks with the other kernels at hand, weights `[in, out]` in
    memory: torch `x @ W` (MKL) and numpy (OpenBLAS) — what a change of kernel could gain at
    best. (Either sums in another order than F.linear, so hidden states would no longer match
    the reference's bit for bit.)"""
    layers = block_linears(model)
    weights = [m.weight.detach().t().contiguous() for m in layers]  # [in, out]
    inputs = [torch.randn(rows, w.shape[0]) for w in weights]
    np_pairs = [(x.numpy(), w.numpy()) for x, w in zip(inputs, weights, strict=True)]

    def torch_mm():
        for x, w in zip(inputs, weights, strict=True):
            x @ w

    def numpy_mm():
        for x, w in np_pairs:
            x @ w

    return {
        "torch x @ W[in,out]": best_time(torch_mm, repeat=10, warmup=2),
        "numpy x @ W[in,out]": best_time(numpy_mm, repeat=10, warmup=2),
    }


def blas_rows_table() -> list[str]:
    """quant.c's `cl_linear` (MKL's summation order) against `F.linear` on MiniLM's weight shapes
    by row count, on two threads and one: where `Linear` should hand products to it
    (`quant.BLAS_ROWS`). Each shape cycles through 16 weights (38-151 MB, over the 32 MB L3), so
    they come from memory as in a pass. Speed-up = F.linear's time / cl_linear's."""
    import torch.nn.functional as F

    from contextlens.nn import quant

    lib, shapes = quant.kernels(), ((384, 1152), (384, 1536), (1536, 384))
    before = torch.get_num_threads()
    head = "| rows | " + " | ".join(f"{k}→{n}, {t} thr." for t in (2, 1) for k, n in shapes)
    lines = [head + " |", "|---" * (1 + 2 * len(shapes)) + "|"]
    for m in (12, 16, 24, 32, 48, 64, 96, 128, 192):
        cells = []
        for threads in (2, 1):
            torch.set_num_threads(threads)
            for k, n in shapes:
                x, ws, b = torch.randn(m, k), [torch.randn(n, k) for _ in range(16)], torch.randn(n)

                def theirs(x=x, ws=ws, b=b):
                    for w in ws:
                        F.linear(x, w, b)

                def ours(x=x, ws=ws, b=b):
                    for w in ws:
                        quant.blas_linear(lib, x, w, b, 192)

                t_theirs, t_ours = (best_time(f, repeat=7, warmup=1) for f in (theirs, ours))
                cells.append(f"{t_theirs / t_ours:.2f}×")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    torch.set_num_threads(before)
    return lines


def op_floor(model: torch.nn.Module, batch: int, seq: int, probabilities: bool) -> float:
    """Best seconds for what every BERT layer computes besides its linear layers, each op alone
    with torch's kernel on inputs of `[batch, seq, ·]`: two residual adds, two LayerNorms, the
    GELU, and attention — `scaled_dot_product_attention`, or with `probabilities` (a trace
    returns them) softmax(q·kᵀ/√d + mask) then the product with v."""
    cfg = model.cfg
    d, heads = cfg.d_model, cfg.n_heads
    x, y = torch.randn(batch, seq, d), torch.randn(batch, seq, d)
    h = torch.randn(batch, seq, cfg.d_ff)
    q, k, v = (torch.randn(batch, heads, seq, d // heads) for _ in range(3))
    mask = torch.zeros(batch, 1, 1, seq)
    w, b = torch.ones(d), torch.zeros(d)
    F = torch.nn.functional

    def attention():
        if not probabilities:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        p = torch.softmax(q @ k.transpose(-1, -2) * (d // heads) ** -0.5 + mask, dim=-1)
        return p @ v

    def run():
        for _ in range(cfg.n_layers):
            for _ in range(2):
                F.layer_norm(x + y, (d,), w, b)
            F.gelu(h)
            attention()

    return best_time(run, repeat=10, warmup=2)


def one_off_and_loop(theirs, ours, repeat: int) -> tuple[tuple[float, float], ...]:
    """`paired` medians (theirs, ours) of one call a turn (a one-off call), then of 5 calls a
    turn (a loop over texts)."""
    return paired(theirs, ours, repeat), paired(theirs, ours, max(2, repeat // 5), run=5)


def flat_pass(lm, text: str):
    """A function running `lm`'s pass over `text` as one flat Python function: the same
    kernels in the same order as `trace` (cl_linear where it runs, torch's ops elsewhere), so
    the same hidden states and attentions bit for bit (checked here), with none of the
    modules, routing, recorder or hooks around them. Its time is what any pass driven from
    Python costs with these kernels; what `trace` takes beyond it is our structure.
    For post-norm BERT blocks (MiniLM)."""
    model, lib = lm.model, kernels()
    cfg = model.cfg
    ids = torch.tensor([lm.tokenize(text).ids])
    n, d, h, hd = ids.shape[1], cfg.d_model, cfg.n_heads, cfg.head_dim
    F = torch.nn.functional

    def product(layer):
        block = blas_block(n, layer.out_features, layer.in_features, layer.bias is not None)
        assert block is not None, "no verified order for this row count here"
        return layer.weight, layer.bias, block

    layers = [
        (*(product(m) for m in (b.attn.qkv, b.attn.out, b.mlp.up, b.mlp.down)), b.norm1, b.norm2)
        for b in model.blocks
    ]

    def run():
        hidden = torch.empty(cfg.n_layers + 1, 1, n, d)
        attentions = torch.empty(cfg.n_layers, 1, h, n, n)
        x = model.embed(ids, torch.arange(n))
        for i, (qkv, out, up, down, norm1, norm2) in enumerate(layers):
            hidden[i].copy_(x)
            q, k, v = blas_linear(lib, x, *qkv).view(1, n, 3, h, hd).permute(2, 0, 3, 1, 4)
            p = torch.softmax((q * hd**-0.5) @ k.transpose(-2, -1), -1, out=attentions[i])
            y = blas_linear(lib, (p @ v).transpose(1, 2).reshape(1, n, d), *out)
            x = F.layer_norm(x + y, (d,), norm1.weight, norm1.bias, norm1.eps)
            y = blas_linear(lib, F.gelu(blas_linear(lib, x, *up)), *down)
            x = F.layer_norm(x + y, (d,), norm2.weight, norm2.bias, norm2.eps)
        hidden[-1].copy_(x)
        return hidden, attentions

    hidden, attentions = run()
    t = lm.trace(text)
    assert torch.equal(hidden[:, 0], t.hidden_states)
    assert torch.equal(attentions[:, 0], t.attentions)
    return run


def floors_note(t_peer: float, floor: float, others: dict[str, float]) -> str:
    """The most a pass can gain over its peer with our exact kernels (the peer's time over the
    linear layers alone), and with the other kernels."""
    alt = ", ".join(f"{name} {t * 1e3:.2f} ms (≤ {t_peer / t:.2f}×)" for name, t in others.items())
    return f"bound with these kernels: {t_peer / floor:.2f}×; other kernels: {alt}"


def embed_floor(ours, texts: list[str], batch_size: int = 32) -> tuple[float, float, str]:
    """Seconds for the linear layers alone, and for the other ops alone (`op_floor`), on the
    padded batches `embed` runs (sorted by length, padded to the longest of each batch), each
    batch on one thread and T = torch's thread count of them side by side, as `embed` runs
    them: one thread's time over T (a perfect split). Also where the linear layers stand: their
    GFLOP/s on one thread against the one-thread fp32 matmul ceiling, measured here."""
    lengths = sorted(len(e.ids) for e in ours.tokenizer.encode(texts))
    batches = [lengths[i : i + batch_size] for i in range(0, len(lengths), batch_size)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    linear = sum(linear_floor(ours.model, max(b) * len(b)) for b in batches)
    ops = sum(op_floor(ours.model, len(b), max(b), probabilities=False) for b in batches)
    ceiling = matmul_ceiling()["torch_gflops"]
    torch.set_num_threads(threads)
    layers = block_linears(ours.model)
    flops = 2 * sum(max(b) * len(b) for b in batches) * sum(m.weight.numel() for m in layers)
    gflops = flops / linear / 1e9
    note = (
        f"{gflops:.0f} GFLOP/s on one thread = {gflops / ceiling:.0%} of the one-thread "
        f"matmul ceiling ({ceiling:.0f} GFLOP/s)"
    )
    return linear / threads, ops / threads, note


def seconds(t: float) -> str:
    return f"{t:.2f} s" if t >= 1 else f"{t * 1e3:.2f} ms"


def every_op_note(t_peer: float, linear: float, ops: float) -> str:
    """The bound once the other ops (`op_floor`) are counted too: a pass that ran each of its
    ops with torch's kernel and nothing else."""
    return (
        f"other ops alone {seconds(ops)}; every op alone {seconds(linear + ops)}: "
        f"bound {t_peer / (linear + ops):.2f}×"
    )


def load_note() -> str:
    """The load average when the run began: figures taken on a busy machine say so."""
    load = os.getloadavg()[0]
    busy = load > 0.5 * (os.cpu_count() or 1)
    return f"load average {load:.1f} on {os.cpu_count()} cores" + (
        " — a busy machine: timings are noisy, rerun on a quiet one" if busy else ""
    )


def main() -> None:
    torch.set_grad_enabled(False)
    from sentence_transformers import SentenceTransformer
    from transformers import AutoTokenizer, BertModel

    path = cl.io.catalog.CATALOG["minilm"].path()
    ours = cl.load("minilm")
    hf_tok = AutoTokenizer.from_pretrained(path)
    hf = BertModel.from_pretrained(path, attn_implementation="eager").eval()
    st = SentenceTransformer(str(path), device="cpu")
    note = load_note()
    ceiling = matmul_ceiling()

    base = " ".join(sentences(400))
    rows = []
    for n_tokens in (16, 128, 512):
        ids = hf_tok(base, add_special_tokens=False)["input_ids"][: n_tokens - 2]
        text = hf_tok.decode(ids)
        enc = hf_tok(text, return_tensors="pt")
        n = enc["input_ids"].shape[1]
        assert ours.tokenize(text).ids == enc["input_ids"][0].tolist()
        repeat = 30 if n <= 128 else 10

        def theirs(enc=enc):
            return hf(**enc, output_attentions=True, output_hidden_states=True)

        def mine(text=text):
            return ours.trace(text)

        (t_theirs, t_ours), (loop_theirs, loop_ours) = one_off_and_loop(theirs, mine, repeat)
        flat_note = ""
        if n in BLAS_ROWS:  # the flat pass multiplies with cl_linear only
            flat = flat_pass(ours, text)
            (f_theirs, f_ours), (lf_theirs, lf_ours) = one_off_and_loop(theirs, flat, repeat)
            flat_note = (
                f"; the same kernels in one flat Python function (same bits, no modules): "
                f"{f_ours * 1e3:.2f} ms, ≤ {f_theirs / f_ours:.2f}× "
                f"(5 a turn: ≤ {lf_theirs / lf_ours:.2f}×)"
            )
        floor = linear_floor(ours.model, n)
        ops = op_floor(ours.model, 1, n, probabilities=True)
        others = other_kernel_floors(ours.model, n)
        cfg = ours.model.cfg
        weights = sum(m.weight.numel() for m in block_linears(ours.model))
        flops = 2 * n * weights + 4 * cfg.n_layers * n * n * cfg.d_model  # products, attention
        rows.append(
            f"| trace, {n} tokens | {t_ours * 1e3:.2f} ms | {t_theirs * 1e3:.2f} ms | "
            f"**{t_theirs / t_ours:.2f}×** (5 a turn: {loop_theirs / loop_ours:.2f}×) | "
            f"{flops / t_ours / 1e9:.1f} GFLOP/s "
            f"({flops / t_ours / 1e9 / ceiling['torch_gflops']:.0%} of torch matmul); "
            f"linear layers alone {floor * 1e3:.2f} ms = {floor / t_ours:.0%} of our time; "
            f"{floors_note(t_theirs, floor, others)}; {every_op_note(t_theirs, floor, ops)}"
            f"{flat_note} |"
        )
        print(rows[-1], file=sys.stderr)

    blas_rows = blas_rows_table()
    print("\n".join(blas_rows), file=sys.stderr)
    texts = sentences(2000)
    t_st, t_ours = paired(
        lambda: st.encode(texts, batch_size=32), lambda: ours.embed(texts, batch_size=32), 3
    )
    floor, ops, standing = embed_floor(ours, texts)
    rows.append(
        f"| embed, 2,000 STS sentences, batch 32 | {len(texts) / t_ours:.0f} sentences/s | "
        f"{len(texts) / t_st:.0f} sentences/s | **{t_st / t_ours:.2f}×** | linear layers alone "
        f"on the same padded batches (one thread each, side by side) {floor:.2f} s = "
        f"{floor / t_ours:.0%} of our time, {standing}; bound "
        f"with these kernels: {t_st / floor:.2f}×; {every_op_note(t_st, floor, ops)} |"
    )
    print(rows[-1], file=sys.stderr)

    write_section(
        "engine",
        f"""## Engine: all-MiniLM-L6-v2

`.venv/bin/python bench/bench_engine.py` — {machine()}; {note}.
fp32 matmul ceiling measured in the same run (best of 30, 1024³):
torch {ceiling["torch_gflops"]:.0f} GFLOP/s, numpy {ceiling["numpy_gflops"]:.0f} GFLOP/s.
Peers: transformers `BertModel` (eager attention, `output_attentions=True,
output_hidden_states=True`) and sentence-transformers `encode`
(batch 32), same weights, same texts; medians of runs taken in turn with the peer's
(theirs, ours, theirs, …) after a warm-up, so the machine's drift in speed falls on both sides:
one call a turn, each starting where the other side left the caches (a one-off call), and for
traces also 5 calls a turn (a loop over texts: part of the weights is still in the L3 cache).
Speed-up = their time / our time (higher is better for us).

| what | contextlens | peer | speed-up | where it stands |
|---|---|---|---|---|
"""
        + "\n".join(rows)
        + """

"Linear layers alone" and the bounds use our own kernels: products of 12 to 96 rows (a
sentence's pass) run through quant.c's `cl_linear`, which sums in MKL's own order, so they
equal `F.linear` bit for bit (hidden states stay transformers'); more rows run through
`F.linear` itself, and `embed`'s padded batches (32 × their length) do. `cl_linear`'s
speed-up over `F.linear` (2 threads, then 1) by row count, MiniLM's shapes, weights read from
memory as in a pass (16 of each shape in turn):

"""
        + "\n".join(blas_rows),
    )


if __name__ == "__main__":
    main()
