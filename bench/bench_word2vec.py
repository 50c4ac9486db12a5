"""word2vec training: contextlens (PyTorch, batched) against gensim's Word2Vec (Cython) on the
same corpus and settings, in one run: words/s, FLOPs per word against the machine's fp32 matmul
ceiling and its row gather/scatter rate (the two limits a step could meet), and the quality of the
vectors (Spearman on WordSim-353 / SimLex-999 pairs in both vocabularies, nearest neighbours
shared with gensim, beside how many two gensim seeds share), averaged over 3 seeds. Prints the
markdown of the word2vec section of RESULTS.md (pasted there by hand: other sections belong
to other benchmarks).

Corpus: gensim's test corpora lee_background.cor (news) + head500.noblanks.cor (stemmed
Wikipedia), 391,381 words as io/corpus.py splits them; skip-gram and CBOW, d=100, window 5,
5 negatives, min_count 5, sample 1e-3, 5 epochs (gensim's defaults).

Quality is averaged over 3 seeds with 2 workers each (gensim and ours); one seed with 1 worker
gives our repeatable single-thread speed. Run: `.venv/bin/python bench/bench_word2vec.py`
(about 15 minutes on a busy 2-core machine; `--quick` trains 1 epoch and 1 seed; `--speed`
5 epochs and 1 seed, for the speed rows in a few minutes).
"""

import argparse
import os
import time
from pathlib import Path

import gensim
import numpy as np
import torch
import torch.nn.functional as F
from common import best_time, machine, matmul_ceiling
from gensim.models import Word2Vec
from scipy.stats import spearmanr

import contextlens as cl
from contextlens.analysis.wordvectors import DATASETS
from contextlens.io import corpus

GENSIM_DATA = Path(gensim.__file__).parent / "test" / "test_data"
FILES = [GENSIM_DATA / "lee_background.cor", GENSIM_DATA / "head500.noblanks.cor"]
DIM, WINDOW, NEGATIVE = 100, 5, 5


def pairs() -> list[tuple[str, str, float]]:
    out = []
    for name in ("wordsim", "simlex"):
        for line in DATASETS[name].read_text().splitlines():
            f = line.split()
            if len(f) >= 3 and f[2][0].isdigit():
                out.append((f[0].lower(), f[1].lower(), float(f[2])))
    return out


def flops_per_word(mode: str, examples: int, words: int) -> float:
    """Multiply-adds × 2 per corpus word: per example, the true word and k noise words each
    take a dot product, an update of the input and an update of their own row (3 · 2d each;
    sharing the noise words of a centre saves gathers, not arithmetic); CBOW adds the window's
    mean and the update of each context word (~2 · (window + 1) · d)."""
    per_example = 3 * 2 * DIM * (1 + NEGATIVE)
    if mode == "cbow":
        per_example += 2 * (WINDOW + 1) * DIM
    return per_example * examples / words


def shared(wv, kv) -> float:
    """Mean share of the 10 nearest words of 200 frequent words that both tables agree on."""
    agree = [
        len({w for w, _ in wv.most_similar(x, k=10)} & {w for w, _ in kv.most_similar(x, topn=10)})
        for x in kv.index_to_key[50:250]
    ]
    return float(np.mean(agree)) / 10


def row_rate(rows: int = 10_000, batch: int = 8192) -> float:
    """Best rows/s of one thread gathering and scatter-adding random rows of a [10k, d] table
    (F.embedding + index_add_), the two memory operations every step is made of."""
    torch.set_num_threads(1)
    table = torch.randn(rows, DIM)
    ids = torch.randint(rows, (batch,))
    return 2 * batch / best_time(lambda: table.index_add_(0, ids, F.embedding(ids, table)))


def shared_kv(kv, other) -> float:
    """`shared` between two gensim tables (two seeds): how far chance alone moves neighbours."""
    agree = [
        len(
            {w for w, _ in kv.most_similar(x, topn=10)}
            & {w for w, _ in other.most_similar(x, topn=10)}
        )
        for x in other.index_to_key[50:250]
    ]
    return float(np.mean(agree)) / 10


def _or_dash(value: float) -> str:
    return "—" if np.isnan(value) else f"{value:.2f}"


def mean(rows: list[dict], key: str) -> float:
    values = [r[key] for r in rows if r[key] is not None]
    return float(np.mean(values)) if values else float("nan")


def run(mode: str, epochs: int, seeds: list[int], sentences, human) -> list[dict]:
    rows, previous = [], (None, None)
    for workers in (1, 2):
        for seed in seeds if workers == 2 else seeds[:1]:
            load = os.getloadavg()[0]
            t = time.perf_counter()
            g = Word2Vec(sentences, sg=int(mode == "skipgram"), vector_size=DIM, window=WINDOW,
                         negative=NEGATIVE, epochs=epochs, workers=2, seed=seed)  # fmt: skip
            gensim_wps = g.corpus_total_words * epochs / (time.perf_counter() - t)
            ours = cl.train_word2vec(FILES, mode=mode, dim=DIM, window=WINDOW, negative=NEGATIVE,
                                     epochs=epochs, seed=seed, workers=workers)  # fmt: skip
            wv = ours.vectors
            both = [
                (a, b, s) for a, b, s in human if a in wv and b in wv and a in g.wv and b in g.wv
            ]
            score = [s for *_, s in both]
            other_seed = previous[0] not in (None, seed)
            self_shared = shared_kv(previous[1], g.wv) if other_seed else None
            rows.append({
                "mode": mode, "workers": workers, "seed": seed, "load": load,
                "ours_wps": ours.words_per_second, "gensim_wps": gensim_wps,
                "examples": ours.examples / (ours.corpus_words * epochs),
                "flops": flops_per_word(mode, ours.examples, ours.corpus_words * epochs),
                "ours_rho": spearmanr([wv.similarity(a, b) for a, b, _ in both], score)[0],
                "gensim_rho": spearmanr([g.wv.similarity(a, b) for a, b, _ in both], score)[0],
                "pairs": len(both), "shared": shared(wv, g.wv),
                "self_shared": self_shared,
            })  # fmt: skip
            previous = (seed, g.wv)
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="1 epoch, 1 seed")
    parser.add_argument("--speed", action="store_true", help="5 epochs, 1 seed: the speed rows")
    args = parser.parse_args()
    epochs, seeds = (1, [1]) if args.quick else (5, [1]) if args.speed else (5, [1, 2, 3])
    flag = " --quick" if args.quick else " --speed" if args.speed else ""
    sentences = list(corpus.sentences(FILES))
    human = pairs()
    ceiling = matmul_ceiling()
    gather = row_rate()
    rows = []
    for mode in ("skipgram", "cbow"):
        rows += run(mode, epochs, seeds, sentences, human)
    lines = [
        f"`.venv/bin/python bench/bench_word2vec.py{flag}` · "
        f"{machine()} · fp32 matmul ceiling {ceiling['torch_gflops']:.0f} GFLOP/s (torch), "
        f"random row gather + scatter-add {gather / 1e6:.1f} M rows/s of d={DIM} on one "
        "thread · "
        f"load average {min(r['load'] for r in rows):.1f}–{max(r['load'] for r in rows):.1f} "
        "on 2 cores: the machine was shared and busy, so speeds move from run to run; each "
        "ratio pairs runs made back to back.",
        "",
        f"Corpus: lee_background.cor + head500.noblanks.cor, {sum(map(len, sentences)):,} "
        f"words; d={DIM}, window {WINDOW}, {NEGATIVE} negatives, min_count 5, sample 1e-3, "
        f"{epochs} epochs; seeds {seeds} (ours with 1 worker: seed 1); gensim "
        f"{gensim.__version__} with workers=2.",
        "",
        "| mode | our workers | ours words/s | gensim words/s | ratio | GFLOP/s (% of ceiling) "
        "| Spearman ours / gensim (pairs) | top-10 shared with gensim (gensim seed vs seed) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for mode in ("skipgram", "cbow"):
        for workers in (1, 2):
            rs = [r for r in rows if r["mode"] == mode and r["workers"] == workers]
            ours, theirs = mean(rs, "ours_wps"), mean(rs, "gensim_wps")
            gflops = ours * mean(rs, "flops") / 1e9
            lines.append(
                f"| {mode} | {workers} | {ours:,.0f} | {theirs:,.0f} | {ours / theirs:.2f}× | "
                f"{gflops:.1f} ({100 * gflops / ceiling['torch_gflops']:.0f}%) | "
                f"{mean(rs, 'ours_rho'):.3f} / {mean(rs, 'gensim_rho'):.3f} ({rs[0]['pairs']}) | "
                f"{mean(rs, 'shared'):.2f} ({_or_dash(mean(rs, 'self_shared'))}) |"
            )
    for mode in ("skipgram", "cbow"):
        rs = [r for r in rows if r["mode"] == mode]
        lines.append(
            f"- {mode}: {mean(rs, 'flops'):,.0f} FLOPs per corpus word (after subsampling "
            f"and reduced windows), {mean(rs, 'examples'):.2f} examples per word."
        )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
