"""Decoders on SmolLM2-135M-Instruct in exact (fp32) mode, same GGUF file, same process:
load time, `trace` with every attention vs transformers eager with output_attentions, and greedy
generation of 128 new tokens vs transformers `generate` (KV cache on both sides). Each is set
against its floor: the model's linear layers alone, same kernels. Resident memory of each mode,
in fresh processes, is bench_native.py's.

    .venv/bin/python bench/bench_decoder.py
"""

import sys
import time

import torch
from bench_engine import floors_note, linear_floor, load_note, other_kernel_floors
from common import best_time, machine, matmul_ceiling, paired, write_section

import contextlens as cl

NEW_TOKENS = 128


def memory_bandwidth(mb: int = 512) -> float:
    """Measured GB/s of copying a large float32 array (read + write): the ceiling of a decoder
    step, which must read every weight once."""
    a = torch.empty(mb * 2**20 // 4)
    b = torch.empty_like(a)
    return 2 * a.numel() * 4 / best_time(lambda: b.copy_(a), repeat=10) / 1e9


def main() -> None:
    torch.set_grad_enabled(False)
    from transformers import AutoModelForCausalLM

    path = cl.io.catalog.CATALOG["smollm2"].path()
    note = load_note()
    t0 = time.perf_counter()
    ours = cl.load("smollm2", weights="exact")
    load_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    hf = AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, attn_implementation="eager"
    ).eval()
    load_hf = time.perf_counter() - t0
    ceiling = matmul_ceiling()
    bandwidth = memory_bandwidth()
    weight_bytes = sum(p.numel() for p in ours.model.parameters()) * 4
    size = path.stat().st_size
    rows = [
        f"| load the GGUF file ({size / 1e6:.0f} MB) | {load_ours:.2f} s | {load_hf:.2f} s | "
        f"**{load_hf / load_ours:.1f}×** | |"
    ]

    base = (
        "The history of France spans thousands of years, from prehistoric settlements to "
        "the modern republic. "
    ) * 40
    for n_tokens in (16, 128, 512):
        ids = ours.tokenize(base).ids[:n_tokens]
        text = ours.tokenizer.decode(ids)
        ids = ours.tokenize(text).ids
        x = torch.tensor([ids])
        repeat = 10 if len(ids) <= 128 else 5
        t_hf, t_ours = paired(
            lambda x=x: hf(x, output_attentions=True, output_hidden_states=True),
            lambda text=text: ours.trace(text),
            repeat,
        )
        floor = linear_floor(ours.model, len(ids))
        others = other_kernel_floors(ours.model, len(ids))
        flops = 2 * len(ids) * weight_bytes / 4
        rows.append(
            f"| trace, {len(ids)} tokens, all attentions + hidden states | {t_ours * 1e3:.1f} ms "
            f"| {t_hf * 1e3:.1f} ms | **{t_hf / t_ours:.2f}×** | "
            f"{flops / t_ours / 1e9:.0f} GFLOP/s in weight matmuls "
            f"({flops / t_ours / 1e9 / ceiling['torch_gflops']:.0%} of the matmul ceiling); "
            f"linear layers alone {floor * 1e3:.1f} ms = {floor / t_ours:.0%} of our time; "
            f"{floors_note(t_hf, floor, others)} |"
        )
        print(rows[-1], file=sys.stderr)

    prompt = ours.tokenize("The capital of France is").ids
    x = torch.tensor([prompt])

    def theirs():
        return hf.generate(
            x, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=2
        )

    def mine():
        return list(ours.generate_ids(prompt, NEW_TOKENS, 0.0, None, None, None, stop_at_eos=False))

    n_hf = theirs().shape[1] - len(prompt)
    n_ours = len(mine())
    t_hf, t_ours = paired(theirs, mine, repeat=3)
    tps_hf, tps_ours = n_hf / t_hf, n_ours / t_ours
    ceiling_tps = bandwidth * 1e9 / weight_bytes
    step_floor = linear_floor(ours.model, 1, head=True)
    rows.append(
        f"| greedy generation, {n_ours} new tokens (transformers: {n_hf}) | {tps_ours:.1f} tok/s "
        f"| {tps_hf:.1f} tok/s | **{tps_ours / tps_hf:.2f}×** | each step reads "
        f"{weight_bytes / 1e6:.0f} MB of fp32 weights: {ceiling_tps:.0f} tok/s at the measured "
        f"{bandwidth:.0f} GB/s copy bandwidth; we reach {tps_ours / ceiling_tps:.0%}. Linear "
        f"layers and head alone on one token: {1 / step_floor:.1f} steps/s = "
        f"{step_floor * tps_ours:.0%} of our step; bound with these kernels: "
        f"{1 / step_floor / tps_hf:.2f}×, at the copy bandwidth: {ceiling_tps / tps_hf:.2f}× |"
    )
    print(rows[-1], file=sys.stderr)

    write_section(
        "decoder",
        f"""## Decoder: SmolLM2-135M-Instruct from GGUF

`.venv/bin/python bench/bench_decoder.py` — {machine()}; {note}.
Ceilings measured in the same run: fp32 matmul (1024³) torch {ceiling["torch_gflops"]:.0f}
GFLOP/s, numpy {ceiling["numpy_gflops"]:.0f} GFLOP/s; memory copy {bandwidth:.0f} GB/s.
Peer: transformers `AutoModelForCausalLM.from_pretrained(dir, gguf_file=…)` (eager attention,
dequantised to fp32 like ours), same file, same prompts; `generate` with `do_sample=False` and
its KV cache vs our `generate_ids` (prefill once, one token per step). Medians of runs taken
in turn with the peer's (theirs, ours, theirs, …), so the machine's drift in speed falls on both
sides. Speed-up = their time / our time.

| what | contextlens | transformers | speed-up | where it stands |
|---|---|---|---|---|
"""
        + "\n".join(rows)
        + """

Exact mode keeps transformers' numbers: a trace of 12 to 96 tokens multiplies through quant.c's
`cl_linear`, which sums in MKL's own order (its hidden states equal transformers' bit for bit,
tests/test_blas_order.py), longer ones through `F.linear` itself; "linear layers alone" uses
the same kernels. A decoding step's products run in quant.c over the fp32 weights where they
lie (a single row sums in another order: the parity tests' tolerances).""",
    )


if __name__ == "__main__":
    main()
