"""Attention and context summaries on a long (≈500-token) text: how long each summary
and picture takes, next to one transformers eager forward pass with output_attentions on the
same text (the peer), for minilm and smollm2. Ratio = ours / transformers' forward.

    .venv/bin/python bench/bench_context.py
"""

import json
import tempfile
from pathlib import Path

import torch
from common import machine, timeit, write_section

import contextlens as cl
from contextlens.analysis import attention as att
from contextlens.analysis import plots
from contextlens.analysis.words import words

ROOT = Path(__file__).resolve().parent.parent
N_TOKENS = 500


def long_text(model, n_tokens: int) -> str:
    """Real text (the WSC sentences, joined) cut to n_tokens tokens of `model`."""
    with open(ROOT / "tests/data/wsc-dev.jsonl", encoding="utf-8") as f:
        text = " ".join(json.loads(line)["text"] for line in f)
    e = model.tokenize(text, truncate=True, limit=n_tokens)
    real = [o for o, s in zip(e.offsets, e.special, strict=True) if not s]
    return text[: real[-1][1]]


def peer(name: str):
    """transformers' eager model on the same weights: a function text -> forward pass."""
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    path = cl.io.catalog.CATALOG[name].path()
    if path.suffix == ".gguf":
        kw = {"gguf_file": path.name}
        model = AutoModelForCausalLM.from_pretrained(path.parent, attn_implementation="eager", **kw)
        tok = AutoTokenizer.from_pretrained(path.parent, **kw)
    else:
        model = AutoModel.from_pretrained(path, attn_implementation="eager")
        tok = AutoTokenizer.from_pretrained(path)
    model.eval()

    def forward(text: str):
        enc = tok(text, return_tensors="pt")
        return model(**enc, output_attentions=True, output_hidden_states=True)

    return forward


def steps(m, text: str, out: Path) -> dict:
    """The summaries and pictures a user asks for on one long text."""
    t = m.trace(text)
    units = words(t)
    labels = [u.text for u in units]
    source = next(u for u in reversed(units) if u.text.isalpha())
    wa = att.word_attention(t.attentions, units)
    a = att.attends_to(t, (source.start, source.end))
    return {
        "trace (hidden states + attentions)": lambda: m.trace(text),
        "attends_to (per layer/head + rollout)": lambda: att.attends_to(
            t, (source.start, source.end)
        ),
        "head_stats": lambda: att.head_stats(t),
        "word-level attention [L, H, w, w]": lambda: att.word_attention(t.attentions, units),
        "heatmap picture (PNG)": lambda: plots.heatmap(
            wa.mean((0, 1)), labels, labels, "h", out / "h.png"
        ),
        "lines picture (PNG)": lambda: plots.lines(
            labels, a.row(), labels.index(source.text), "l", out / "l.png"
        ),
        "layer × head grid picture (PNG)": lambda: plots.grid(wa, labels, "g", out / "g.png"),
    }


def main() -> None:
    torch.set_grad_enabled(False)
    lines = [
        f"Machine: {machine()}. Command: `.venv/bin/python bench/bench_context.py`.",
        "",
        f"One real text of {N_TOKENS} tokens (WSC sentences joined). Each summary's median time, "
        "and its ratio to one transformers eager forward pass with output_attentions on the same "
        "text (the peer).",
        "",
        "| model | step | seconds | ours / transformers forward |",
        "|---|---|---:|---:|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("minilm", "smollm2"):
            m = cl.load(name)
            text = long_text(m, N_TOKENS)
            forward = peer(name)
            t_peer = timeit(lambda: forward(text), repeat=3)  # noqa: B023
            lines.append(f"| {name} | transformers forward (peer) | {t_peer:.3f} | 1.00 |")
            for step, fn in steps(m, text, Path(tmp)).items():
                t = timeit(fn, repeat=3)
                lines.append(f"| {name} | {step} | {t:.3f} | {t / t_peer:.2f} |")
                print(lines[-1], flush=True)
    write_section("context", "## Attention and context summaries\n\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
