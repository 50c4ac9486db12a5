"""Static word vectors vs gensim KeyedVectors on the same glove-50 matrix.

- the full Google analogy evaluation (questions-words.txt, restrict_vocab=300,000):
  `cl.evaluate_analogies` vs gensim `evaluate_word_analogies` (accuracy must match);
- `most_similar` latency for single words and for analogies (3CosAdd), and the one-time cost of
  the int8 copy its scan reads;
- loading a 400,000-word GloVe text file vs gensim `load_word2vec_format(no_header=True)`.

Run: `.venv/bin/python bench/bench_static.py` (about 4 minutes on 2 cores; `--quick` uses
2,000 questions and a 50,000-word file to check that the script works).
"""

import argparse
import tempfile
import time
from pathlib import Path

import torch
from bench_engine import load_note
from common import best_time, machine, matmul_ceiling, timeit, write_section
from gensim.models import KeyedVectors

import contextlens as cl
from contextlens.analysis.wordvectors import DATASETS, QUESTIONS, _block_maxima, _queries
from contextlens.static import WordVectors, load_vectors


def analogy_file(folder: Path, questions: int | None) -> Path:
    """questions-words.txt, or its first lines of every section when `questions` is given."""
    if questions is None:
        return DATASETS["analogies"]
    lines = DATASETS["analogies"].read_text().splitlines()
    sections = sum(line.startswith(":") for line in lines)
    keep, n = [], 0
    for line in lines:
        n = 0 if line.startswith(":") else n + 1
        if n <= questions // sections:
            keep.append(line)
    path = folder / "questions.txt"
    path.write_text("\n".join(keep) + "\n")
    return path


def scan_floor(wv: WordVectors, questions: int) -> float:
    """Seconds for the analogy evaluation's scoring products alone: `questions` random
    questions against the first 300,000 words, QUESTIONS at a time, as `_block_maxima` runs."""
    abc = torch.randint(0, 30_000, (QUESTIONS, 3))
    queries = _queries(wv.unit, abc, "3cosadd")
    return best_time(lambda: _block_maxima(wv.unit, 300_000, queries, "3cosadd"), 3, 1) * (
        questions / QUESTIONS
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes, to test the script")
    args = parser.parse_args()
    note = load_note()
    ceiling = matmul_ceiling()
    wv = cl.load("glove-50")
    kv = KeyedVectors(wv.dim)
    kv.add_vectors(wv.words, wv.vectors.numpy())
    wv.unit, kv.fill_norms()  # both keep unit lengths after the first call: time what follows
    t0 = time.perf_counter()
    wv.most_similar("king")  # makes the int8 copy of the unit vectors, once
    first = time.perf_counter() - t0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        questions = analogy_file(folder, 2_000 if args.quick else None)
        ours = cl.evaluate_analogies(wv, questions)
        theirs = [None]

        def gensim_eval():
            theirs[0] = kv.evaluate_word_analogies(str(questions))

        t_ours = timeit(lambda: cl.evaluate_analogies(wv, questions), repeat=2, warmup=0)
        t_eval = t_ours
        t_theirs = timeit(gensim_eval, repeat=1, warmup=0)
        score, _ = theirs[0]
        if score != ours.accuracy:
            raise SystemExit(f"accuracies differ: ours {ours.accuracy}, gensim {score}")
        floor = scan_floor(wv, ours.evaluated)
        rows.append(
            (
                f"Google analogies, {ours.evaluated:,} questions (accuracy {ours.accuracy:.4f} "
                "both)",
                f"{t_ours:.2f} s",
                f"{t_theirs:.2f} s",
                t_theirs / t_ours,
            )
        )
        cosmul = timeit(lambda: cl.evaluate_analogies(wv, questions, "3cosmul"), repeat=1, warmup=0)

        for label, query in (
            ("most_similar('king'), 400k words", (["king"], [])),
            ("most_similar(king − man + woman)", (["king", "woman"], ["man"])),
        ):
            t_ours = timeit(lambda q=query: wv.most_similar(*q), repeat=50)
            t_theirs = timeit(lambda q=query: kv.most_similar(*q), repeat=50)
            rows.append(
                (label, f"{t_ours * 1e3:.2f} ms", f"{t_theirs * 1e3:.2f} ms", t_theirs / t_ours)
            )

        n = 50_000 if args.quick else len(wv)
        text = folder / "glove.txt"
        WordVectors(wv.words[:n], wv.vectors[:n], "glove").save(text)
        t_ours = timeit(lambda: load_vectors(text), repeat=3, warmup=1)
        t_theirs = timeit(
            lambda: KeyedVectors.load_word2vec_format(str(text), no_header=True),
            repeat=1,
            warmup=0,
        )
        size = text.stat().st_size / 1e6
        rows.append(
            (
                f"load GloVe text, {n:,} words × 50 ({size:.0f} MB)",
                f"{t_ours:.2f} s",
                f"{t_theirs:.2f} s",
                t_theirs / t_ours,
            )
        )
    table = "\n".join(f"| {a} | {b} | {c} | **{x:.1f}×** |" for a, b, c, x in rows)
    write_section(
        "static",
        f"""## Static word vectors: glove-50 vs gensim KeyedVectors

`.venv/bin/python bench/bench_static.py{" --quick" if args.quick else ""}` — {machine()}; {note}.
fp32 matmul ceiling in the same run (1024³): torch {ceiling["torch_gflops"]:.0f} GFLOP/s,
numpy {ceiling["numpy_gflops"]:.0f} GFLOP/s. gensim 4.4 `KeyedVectors` holds the same
400,000 × 50 matrix; restrict_vocab=300,000 as gensim's default. Speed-up = gensim's time / ours.
The 3CosMul evaluation of the same questions (which gensim does not offer) took {cosmul:.2f} s.

Where the analogy evaluation stands: its scoring products alone (every question against
300,000 words, {2 * 300_000 * 50 * ours.evaluated / 1e9:.0f} GFLOP, in the same tiles) take
{floor:.2f} s = {2 * 300_000 * 50 * ours.evaluated / floor / 1e9:.0f} GFLOP/s, the rest of the
evaluation {max(t_eval - floor, 0):.2f} s; at the torch ceiling above the products alone would
take {2 * 300_000 * 50 * ours.evaluated / ceiling["torch_gflops"] / 1e9:.2f} s.
`most_similar` scans an int8 copy of the unit vectors (68 bytes a word instead of 200), then
scores exactly (float64, rounded to float32) only the words that can still be among the best,
so its answers are those of scoring every word exactly; making the copy cost {first:.2f} s
once, in the first call.

| what | contextlens | gensim | speed-up |
|---|---|---|---|
{table}
""",
    )
    print(table)


if __name__ == "__main__":
    main()
