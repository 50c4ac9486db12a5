"""The causal methods (logit lens, attributions, patching, ablation) against one forward pass of
the same model on the same text, in the same process; the machine's fp32 matmul ceiling and its
load are measured in the same run. Prints a markdown section for RESULTS.md.

    nice -n 10 .venv/bin/python bench/bench_causal.py

Exact (fp32) weights, the default; each method is timed as the fastest of 3 calls after one
(the forward pass: of 10), so other jobs on a shared machine inflate the figures least.
"""

import os
import sys

import torch
from common import best_time, machine, matmul_ceiling

import contextlens as cl
from contextlens.analysis import attribution as attr
from contextlens.analysis import coref, lens, patching
from contextlens.io.benchmarks import CorefCase

PROMPT, ITALY = "The capital of France is", "The capital of Italy is"
TIRED = "The animal didn't cross the street because it was too tired."
WIDE = "The animal didn't cross the street because it was too wide."
OTHER = "The animal was too tired to walk."
COREF = CorefCase(
    "The developer argued with the designer because she did not like the design.",
    "she",
    ("The developer", "the designer"),
)


def forward(m, text: str):
    ids = torch.tensor([m.tokenize(text).ids])

    def run():
        with torch.inference_mode():
            m.model(ids)

    return run


def fmt_load(load: tuple[float, float, float]) -> str:
    return "/".join(f"{x:.1f}" for x in load)


def rows(m, text: str, methods: dict) -> list[tuple[str, float, float]]:
    """(method, seconds, seconds / one forward pass) for each method on `text`."""
    one = best_time(forward(m, text), repeat=10, warmup=2)
    out = [("one forward pass", one, 1.0)]
    for name, fn in methods.items():
        t = best_time(fn, repeat=3, warmup=1)
        out.append((name, t, t / one))
        print(f"{name}: {t:.3f} s, {t / one:.1f}× one forward", file=sys.stderr, flush=True)
    return out


def coref_ablation(m):
    """`evaluate coref`'s causal method on one WinoBias sentence: 1 + 2 rows in one pass."""
    s = coref.probe(m, COREF)
    return lambda: coref.with_influence(m, [COREF.text], [s])


def main() -> None:
    load_before = os.getloadavg()
    ceiling = matmul_ceiling()
    smollm2, minilm = cl.load("smollm2"), cl.load("minilm")
    n_layers, n_heads = smollm2.config.n_layers, smollm2.config.n_heads
    decoder = rows(
        smollm2,
        PROMPT,
        {
            "logit lens (every layer × position, top 5)": lambda: lens.logit_lens(smollm2, PROMPT),
            "direct logit attribution": lambda: attr.direct_logit_attribution(smollm2, PROMPT),
            "saliency and input × gradient (one gradient pass)": lambda: attr.attribute_next_token(
                smollm2, PROMPT, " Paris", steps=1
            ),
            f"gradients, {attr.DEFAULT_STEPS}-step integrated gradients": lambda: (
                attr.attribute_next_token(smollm2, PROMPT, " Paris")
            ),
            f"patching, residual stream ({n_layers} layers × 5 positions)": lambda: patching.patch(
                smollm2, PROMPT, ITALY
            ),
            f"patching, heads ({n_layers} × {n_heads})": lambda: patching.patch(
                smollm2, PROMPT, ITALY, site="heads"
            ),
            "zero-ablating 2 heads": lambda: patching.ablate(smollm2, PROMPT, [(23, 4), (29, 1)]),
            "coreference candidate ablation (one WinoBias sentence)": coref_ablation(smollm2),
        },
    )
    encoder = rows(
        minilm,
        TIRED,
        {
            "similarity attribution, both sides, one gradient pass": lambda: (
                attr.attribute_similarity(minilm, TIRED, OTHER, 1)
            ),
            f"similarity attribution, both sides, {attr.DEFAULT_STEPS} steps": lambda: (
                attr.attribute_similarity(minilm, TIRED, OTHER)
            ),
            "patching, residual stream (6 layers × 16 positions)": lambda: patching.patch(
                minilm, TIRED, WIDE
            ),
            "patching, heads (6 × 12)": lambda: patching.patch(minilm, TIRED, WIDE, site="heads"),
            "zero-ablating 2 heads": lambda: patching.ablate(minilm, TIRED, [(1, 2), (3, 1)]),
            "coreference candidate ablation (one WinoBias sentence)": coref_ablation(minilm),
        },
    )
    load_after = os.getloadavg()
    lines = [
        "## Causal methods: cost per forward pass",
        "",
        f"`nice -n 10 .venv/bin/python bench/bench_causal.py` — exact (fp32) weights, fastest of "
        f"3 calls after one; {machine()}; fp32 matmul ceiling "
        f"{ceiling['torch_gflops']:.0f} GFLOP/s (torch) / {ceiling['numpy_gflops']:.0f} "
        f"(numpy), measured in the same run. Load average {fmt_load(load_before)} before, "
        f"{fmt_load(load_after)} after (2 cores): above 1 other jobs inflate the seconds, and "
        "the ratios, taken in one run, are the figure to read.",
        "",
    ]
    for title, table in ((f"smollm2, {PROMPT!r}", decoder), (f"minilm, {TIRED!r}", encoder)):
        lines += [f"{title}:", "", "| method | seconds | × one forward |", "|---|---:|---:|"]
        lines += [f"| {name} | {t:.3f} | {ratio:.1f} |" for name, t, ratio in table]
        lines.append("")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
