"""Native (quantised) weights against exact mode, transformers and llama.cpp, same files, one run.

1. Kernels: y = x · Wᵀ at SmolLM2's shapes, 1 and 16 rows: float32 `F.linear` and `x @ W[in,out]`,
   torch's int4/int8 weight-only kernels, and ours on Q4_0 / Q4_1 / Q8_0 / Q4_K / Q6_K blocks and
   float32 rows; then ours on one thread and on two, to show where the thread pool pays.
2. Where a native decode step's time goes (SmolLM2, one thread, CPU time): the whole step (the
   fused one, `Block.step`), the step with every quantised product replaced by an empty result
   (the Python/torch floor), and the LM head alone.
3. SmolLM2-135M Q4_1: load time, resident memory and greedy tok/s (128 new tokens, EOS ignored)
   for contextlens native, contextlens exact, transformers and llama.cpp (llama-cpp-python built
   from source with -DGGML_NATIVE=ON in its own environment, $LLAMA_PYTHON, default
   /work/benchenv/bin/python), each in a fresh process, all on torch's thread count, then all
   on one thread (exact mode only on the first), in alternating rounds; the best round of each
   is reported. One thread each is the steadier comparison on a shared machine, where a thread
   team waits for any member the OS has descheduled.
   Exact mode's ceiling: the float32 bytes a token reads over the memory bandwidth (copy and
   read) on 1 and 2 threads; then native and llama.cpp again on torch's thread count with one
   busy process competing for the cores.
4. A Llama-shaped ~1.2B-parameter Q4_0 file of random weights, written here with the gguf package
   (under $TMPDIR), as the stand-in for the 7B-class files that cannot be downloaded here:
   contextlens native against llama.cpp, alternating likewise.

The machine is shared: the load average (os.getloadavg) is recorded before and after.

    .venv/bin/python bench/bench_native.py            # everything (~20 min on 2 cores)
    .venv/bin/python bench/bench_native.py --quick    # 32 tokens, smaller synthetic model
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LLAMA_PYTHON = os.environ.get("LLAMA_PYTHON", "/work/benchenv/bin/python")
ROUNDS = 3  # alternating runs of every contender
PROMPT = "The history of France spans thousands of years, from prehistoric settlements to the"
PASSAGE = (  # a prompt to read before the first token (the prefill: several rows per product)
    "The river rose slowly through the night, and by morning the lower streets of the town were "
    "under water. Shopkeepers carried what they could to the upper floors while the ferry, which "
    "had not run for years, was pulled out of its shed and put back to work. Nobody could say "
    "when the water would fall again, so the"
)


def first_token_s(run) -> float:
    """Best of 3 seconds for `run()`: read PASSAGE and produce one token."""
    run()
    return min(timed(run) for _ in range(3))


# ---- workers: one contender in a fresh process, printing one JSON line ----------------------


def rss_mib() -> float:
    """Resident memory of this process now (file-mapped pages that were touched included)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def work_contextlens(path: str, weights: str, new_tokens: int) -> dict:
    import torch

    import contextlens as cl

    torch.set_grad_enabled(False)
    torch.set_num_threads(int(os.environ["BENCH_THREADS"]))
    before = rss_mib()
    t0 = time.perf_counter()
    lm = cl.load(path, weights=weights)
    load = time.perf_counter() - t0
    loaded = rss_mib()
    ids = lm.tokenize(PROMPT).ids
    list(lm.generate_ids(ids, 4, stop_at_eos=False))  # first use: kernels compiled or cached
    t0 = time.perf_counter()
    n = len(list(lm.generate_ids(ids, new_tokens, stop_at_eos=False)))
    gen = time.perf_counter() - t0
    passage = lm.tokenize(PASSAGE).ids
    first = first_token_s(lambda: list(lm.generate_ids(passage, 1, stop_at_eos=False)))
    return dict(load_s=load, rss_before=before, rss_loaded=loaded, rss_after=rss_mib(),
                tok_s=n / gen, prompt_tok_s=len(passage) / first)  # fmt: skip


def work_transformers(path: str, new_tokens: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_grad_enabled(False)
    torch.set_num_threads(int(os.environ["BENCH_THREADS"]))
    p = Path(path)
    before = rss_mib()
    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(p.parent, gguf_file=p.name).eval()
    load = time.perf_counter() - t0
    loaded = rss_mib()
    tokenizer = AutoTokenizer.from_pretrained(p.parent, gguf_file=p.name)
    ids = tokenizer(PROMPT, return_tensors="pt")
    kwargs = dict(do_sample=False, min_new_tokens=new_tokens, max_new_tokens=new_tokens)
    model.generate(**ids, **kwargs | dict(min_new_tokens=4, max_new_tokens=4))
    t0 = time.perf_counter()
    out = model.generate(**ids, **kwargs)
    gen = time.perf_counter() - t0
    n = out.shape[1] - ids["input_ids"].shape[1]
    passage = tokenizer(PASSAGE, return_tensors="pt")
    one = kwargs | dict(min_new_tokens=1, max_new_tokens=1)
    first = first_token_s(lambda: model.generate(**passage, **one))
    return dict(load_s=load, rss_before=before, rss_loaded=loaded, rss_after=rss_mib(),
                tok_s=n / gen, prompt_tok_s=passage["input_ids"].shape[1] / first)  # fmt: skip


def work_llama_cpp(path: str, new_tokens: int) -> dict:
    from llama_cpp import Llama

    before = rss_mib()
    t0 = time.perf_counter()
    threads = int(os.environ["BENCH_THREADS"])
    llm = Llama(
        model_path=path, n_ctx=512, n_threads=threads, n_threads_batch=threads, verbose=False
    )
    load = time.perf_counter() - t0
    loaded = rss_mib()
    ids = llm.tokenize(PROMPT.encode())

    def run(n: int, tokens: list[int] = ids) -> int:
        llm.reset()
        count = 0
        for _ in llm.generate(tokens, temp=0.0, top_k=1):  # greedy; EOS does not stop it
            count += 1
            if count == n:
                return count
        return count

    run(4)
    t0 = time.perf_counter()
    n = run(new_tokens)
    gen = time.perf_counter() - t0
    passage = llm.tokenize(PASSAGE.encode())
    first = first_token_s(lambda: run(1, passage))
    return dict(load_s=load, rss_before=before, rss_loaded=loaded, rss_after=rss_mib(),
                tok_s=n / gen, prompt_tok_s=len(passage) / first)  # fmt: skip


def work_step_profile(path: str, new_tokens: int) -> dict:
    """CPU ms per generated token on one thread: the whole step, the step with every quantised
    product replaced by an empty result of its shape (what Python and the torch ops between
    the products cost), and the LM head's product alone."""
    import torch

    import contextlens as cl
    from contextlens.nn import quant

    torch.set_grad_enabled(False)
    torch.set_num_threads(1)
    lm = cl.load(path, weights="native")
    ids = lm.tokenize(PROMPT).ids

    def per_token() -> float:
        list(lm.generate_ids(ids, 4, stop_at_eos=False))
        best = float("inf")
        for _ in range(3):
            t0 = time.process_time()
            list(lm.generate_ids(ids, new_tokens, stop_at_eos=False))
            best = min(best, (time.process_time() - t0) / new_tokens * 1e3)
        return best

    full = per_token()
    x = torch.randn(1, lm.model.cfg.d_model)
    head = lm.model.lm_head
    t0 = time.process_time()
    for _ in range(20):
        head(x)
    head_ms = (time.process_time() - t0) / 20 * 1e3

    def empty(self, x, out=None, *_, **__):  # the product's result left as it was, or zeros
        return torch.zeros(x.numel() // self.k, self.out) if out is None else out

    quant.KernelCall.__call__ = empty
    return dict(full_ms=full, floor_ms=per_token(), head_ms=head_ms)


def contender(kind: str, path: Path, new_tokens: int, threads: int) -> dict | str:
    """Run one worker on `threads` threads in a fresh process: its figures, or why it could
    not run."""
    python = LLAMA_PYTHON if kind == "llama.cpp" else sys.executable
    if kind == "llama.cpp" and not Path(python).exists():
        return f"no llama-cpp-python at {python} (set LLAMA_PYTHON)"
    env = os.environ | {
        "PYTHONPATH": str(Path(__file__).parents[1] / "src"),
        "BENCH_THREADS": str(threads),
    }
    cmd = [python, __file__, "--worker", kind, str(path), str(new_tokens)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        return f"failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else '?'}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def alternating(
    kinds: dict[str, tuple[str, int]], path: Path, new_tokens: int
) -> dict[str, dict | str]:
    """ROUNDS rounds of one run per contender (label -> worker kind, threads), in turn, so that
    a busy spell of the shared machine falls on all of them; each contender's best round (by
    tok/s), with every round's tok/s and the load average before it."""
    rounds: dict[str, list] = {label: [] for label in kinds}
    for _ in range(ROUNDS):
        for label, (kind, threads) in kinds.items():
            load = os.getloadavg()[0]
            result = contender(kind, path, new_tokens, threads)
            if isinstance(result, dict):
                result["load"] = load
            rounds[label].append(result)
    best = {}
    for label, results in rounds.items():
        ran = [r for r in results if isinstance(r, dict)]
        if not ran:
            best[label] = results[0]
            continue
        best[label] = max(ran, key=lambda r: r["tok_s"])
        best[label]["rounds"] = [r["tok_s"] for r in ran]
        best[label]["loads"] = [r["load"] for r in ran]
    return best


# ---- the synthetic model --------------------------------------------------------------------


SYNTHETIC = dict(d=2048, layers=16, heads=32, kv_heads=8, d_ff=8192)  # Llama-3.2-1B's shape
SYNTHETIC_QUICK = dict(d=1024, layers=8, heads=16, kv_heads=4, d_ff=4096)


def write_synthetic(path: Path, shape: dict, tokenizer_meta: dict) -> int:
    """A Llama GGUF whose matrices are random Q4_0 blocks (scales ~ 1/(4·√in)), norms ones and
    the tokenizer borrowed from SmolLM2. Written tensor by tensor; returns the parameter count."""
    import numpy as np
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFWriter

    q4 = GGMLQuantizationType.Q4_0
    d, ff, hd = shape["d"], shape["d_ff"], shape["d"] // shape["heads"]
    vocab = len(tokenizer_meta["tokenizer.ggml.tokens"])
    w = GGUFWriter(path, "llama")
    w.add_context_length(4096)
    w.add_embedding_length(d)
    w.add_block_count(shape["layers"])
    w.add_feed_forward_length(ff)
    w.add_head_count(shape["heads"])
    w.add_head_count_kv(shape["kv_heads"])
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(hd)
    w.add_rope_freq_base(500000.0)
    w.add_vocab_size(vocab)
    w.add_tokenizer_model(tokenizer_meta["tokenizer.ggml.model"])
    w.add_tokenizer_pre(tokenizer_meta["tokenizer.ggml.pre"])
    w.add_token_list(tokenizer_meta["tokenizer.ggml.tokens"])
    w.add_token_types(tokenizer_meta["tokenizer.ggml.token_type"])
    w.add_token_merges(tokenizer_meta["tokenizer.ggml.merges"])
    w.add_bos_token_id(tokenizer_meta["tokenizer.ggml.bos_token_id"])
    w.add_eos_token_id(tokenizer_meta["tokenizer.ggml.eos_token_id"])
    matrices = {"token_embd": (vocab, d), "output": (vocab, d)}
    for i in range(shape["layers"]):
        kv = shape["kv_heads"] * hd
        for name, dims in {"attn_q": (d, d), "attn_k": (kv, d), "attn_v": (kv, d),
                           "attn_output": (d, d), "ffn_gate": (ff, d), "ffn_up": (ff, d),
                           "ffn_down": (d, ff)}.items():  # fmt: skip
            matrices[f"blk.{i}.{name}"] = dims
    norms = ["output_norm"] + [f"blk.{i}.{n}" for i in range(shape["layers"])
                               for n in ("attn_norm", "ffn_norm")]  # fmt: skip
    per_block, block_bytes = GGML_QUANT_SIZES[q4]
    for name, (rows, cols) in matrices.items():
        nbytes = rows * cols // per_block * block_bytes
        w.add_tensor_info(f"{name}.weight", (rows, nbytes // rows), np.uint8, nbytes, q4)
    for name in norms:
        w.add_tensor_info(f"{name}.weight", (d,), np.float32, 4 * d)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    rng = np.random.default_rng(0)
    for rows, cols in matrices.values():
        blocks = rng.integers(0, 256, (rows * cols // per_block, block_bytes), dtype=np.uint8)
        scale = np.float16(1 / (4 * cols**0.5))
        blocks[:, :2] = np.frombuffer(scale.tobytes(), np.uint8)
        w.write_tensor_data(blocks.reshape(rows, -1))
    for _ in norms:
        w.write_tensor_data(np.ones(d, np.float32))
    w.close()
    return sum(r * c for r, c in matrices.values()) + d * len(norms)


# ---- kernels --------------------------------------------------------------------------------


def kernel_cells(k: int, n: int) -> dict:
    """name -> f(x) for every way of computing x [m, k] · Wᵀ with W [n, k]."""
    import torch
    import torch.nn.functional as F
    from gguf import GGML_QUANT_SIZES
    from gguf import GGMLQuantizationType as Q

    from contextlens.io.gguf import StoredTensor
    from contextlens.nn.quant import KernelCall, QuantLinear, kernels

    w = torch.randn(n, k) / k**0.5
    wt = w.T.contiguous()
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(
        torch.randint(0, 16, (n, k), dtype=torch.int32), 1
    )
    scales_zeros = torch.randn(k // 32, n, 2)
    q8 = torch.randint(-128, 127, (n, k), dtype=torch.int8)
    cells = {
        "fp32 F.linear": lambda x: F.linear(x, w),
        "fp32 x @ W[in,out]": lambda x: x @ wt,
        "torch int4pack": lambda x: torch.ops.aten._weight_int4pack_mm_for_cpu(
            x, packed, 32, scales_zeros
        ),
        "torch int8pack": lambda x: torch.ops.aten._weight_int8pack_mm(x, q8, w[:, 0]),
    }
    for kind in (Q.Q4_0, Q.Q4_1, Q.Q8_0, Q.Q4_K, Q.Q6_K):
        whole = k % GGML_QUANT_SIZES[kind][0] == 0  # K-quant rows are whole 256-value blocks
        cells[f"ours {kind.name}"] = QuantLinear([stored_matrix(w, kind)]) if whole else None
    cells["ours F32"] = KernelCall(kernels(), [StoredTensor(Q.F32, (n, k), w)])
    return cells


def stored_matrix(w, kind):
    """w [n, k] as the blocks of `kind`: quantised by the gguf package, or for the K-quants
    (which it cannot quantise) random blocks with scales ~ 1/(4·√k), the same bytes to read."""
    import numpy as np
    import torch
    from gguf import GGML_QUANT_SIZES, quants
    from gguf import GGMLQuantizationType as Q

    from contextlens.io.gguf import StoredTensor

    n, k = w.shape
    if kind not in (Q.Q4_K, Q.Q6_K):
        raw = np.ascontiguousarray(quants.quantize(w.numpy(), kind)).view(np.uint8)
        return StoredTensor(kind, (n, k), torch.from_numpy(raw.reshape(n, -1)))
    elems, size = GGML_QUANT_SIZES[kind]
    blocks = np.random.default_rng(0).integers(0, 256, (n * k // elems, size), dtype=np.uint8)
    scale = np.frombuffer(np.float16(1 / (4 * k**0.5)).tobytes(), np.uint8)
    for at in (0, 2) if kind == Q.Q4_K else (size - 2,):
        blocks[:, at : at + 2] = scale
    return StoredTensor(kind, (n, k), torch.from_numpy(blocks.reshape(n, -1)))


def kernel_rows() -> list[str]:
    import torch
    from common import best_time

    rows = []
    for k, n in ((576, 576), (576, 1536), (1536, 576), (576, 49152), (2048, 8192)):
        cells = kernel_cells(k, n)
        for m in (1, 16):
            x = torch.randn(m, k)
            repeat = 10 if n * k > 10**7 else 50
            ms = [
                "–"
                if f is None
                else f"{best_time(lambda f=f, x=x: f(x), repeat=repeat, warmup=3) * 1e3:.3f}"
                for f in cells.values()
            ]
            rows.append(f"| {k}→{n} | {m} | " + " | ".join(ms) + " |")
    header = "| W | rows | " + " | ".join(cells) + " |"
    return [header, "|" + "---|" * (len(cells) + 2), *rows]


def pool_rows() -> list[str]:
    """Where a second thread starts paying: ours Q4_1 and F32 at SmolLM2's shapes, 1 and 16
    rows, on one thread and on two, built with the pool opening at any size (PARALLEL_MIN 0)."""
    import re

    import torch
    from common import best_time
    from gguf import GGMLQuantizationType as Q

    from contextlens.io.gguf import StoredTensor
    from contextlens.nn import quant

    source = Path(tempfile.mkdtemp()) / "quant_unbounded.c"
    source.write_text(re.sub(r"#define PARALLEL_MIN .*", "#define PARALLEL_MIN 0",
                             quant.SOURCE.read_text()))  # fmt: skip
    lib = quant.ctypes.CDLL(str(quant.built(source)))
    lib.cl_matmul.argtypes = quant.kernels().cl_matmul.argtypes
    cells = ("Q4_1 1 thread", "Q4_1 2 threads", "F32 1 thread", "F32 2 threads")
    rows = ["| W | weights | rows | " + " | ".join(cells) + " |", "|---|---|---|---|---|---|---|"]
    before = torch.get_num_threads()
    for k, n in ((576, 192), (576, 576), (576, 960), (1536, 576), (576, 3072)):
        w = torch.randn(n, k) / k**0.5
        calls = [quant.KernelCall(lib, [p]) for p in
                 (stored_matrix(w, Q.Q4_1), StoredTensor(Q.F32, (n, k), w))]  # fmt: skip
        for m in (1, 16):
            x, cells = torch.randn(m, k), []
            for call in calls:
                for threads in (1, 2):
                    torch.set_num_threads(threads)
                    cells.append(best_time(lambda c=call, x=x: c(x), repeat=200, warmup=20))
            ms = " | ".join(f"{t * 1e3:.3f}" for t in cells)
            rows.append(f"| {k}→{n} | {n * k / 2**18:.1f}·2^18 | {m} | {ms} |")
    torch.set_num_threads(before)
    return rows


def bandwidth() -> dict[str, dict[int, float]]:
    """GB/s over 256 MiB of float32, best of 5, on 1 and on 2 threads: 'copy' counts the bytes
    read and written by a copy, 'read' the bytes a sum reads (a product streams its weights
    like this)."""
    import torch

    src, dst = torch.randn(2**26), torch.empty(2**26)
    work = {"copy": (lambda: dst.copy_(src), 2), "read": (lambda: src.sum(), 1)}
    before, out = torch.get_num_threads(), {name: {} for name in work}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for name, (fn, passes) in work.items():
            best = min(timed(fn) for _ in range(5))
            out[name][threads] = passes * src.numel() * 4 / best / 1e9
    torch.set_num_threads(before)
    return out


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# ---- the report -----------------------------------------------------------------------------


def table(results: dict, ref: str) -> list[str]:
    out = [
        "| | load | resident after load (Δ by load) | after generating | greedy tok/s | "
        f"tok/s ÷ {ref} | every round: tok/s (load average before) | prompt tok/s (the "
        f"passage read, to its first token) | ÷ {ref} |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    base = results.get(ref)
    for name, r in results.items():
        if isinstance(r, str):
            out.append(f"| {name} | {r} | | | | | | | |")
            continue
        ratio = f"{r['tok_s'] / base['tok_s']:.2f}" if isinstance(base, dict) else "–"
        prompt = (
            f"{r['prompt_tok_s'] / base['prompt_tok_s']:.2f}" if isinstance(base, dict) else "–"
        )
        rounds = ", ".join(
            f"{t:.1f} ({load:.1f})" for t, load in zip(r["rounds"], r["loads"], strict=True)
        )
        out.append(
            f"| {name} | {r['load_s']:.2f} s | {r['rss_loaded']:.0f} MiB "
            f"(+{r['rss_loaded'] - r['rss_before']:.0f}) | {r['rss_after']:.0f} MiB | "
            f"{r['tok_s']:.1f} | {ratio} | {rounds} | {r['prompt_tok_s']:.0f} | {prompt} |"
        )
    return out


def main(quick: bool) -> None:
    import torch
    from common import machine, matmul_ceiling, write_section

    import contextlens as cl
    from contextlens.io.gguf import open_gguf

    start_load = os.getloadavg()[0]
    new_tokens = 32 if quick else 128
    smollm2 = cl.io.catalog.CATALOG["smollm2"].path()
    lines = [f"Machine: {machine()}. Command: `.venv/bin/python bench/bench_native.py"
             f"{' --quick' if quick else ''}`.", ""]  # fmt: skip
    ceiling = matmul_ceiling()
    lines += [f"fp32 matmul ceiling in this run: torch {ceiling['torch_gflops']:.0f} GFLOP/s.", ""]
    lines += [
        "**Kernels** (ms, best of many; y = x · Wᵀ; K-quants need rows of whole 256-value "
        "blocks, so not at SmolLM2's width 576; 2048→8192 is the synthetic 1 B model's MLP):",
        "",
        *kernel_rows(),
        "",
        "**Where a second thread pays** (ms, best of 200; ours built with the pool opening at "
        "any size; quant.c opens it from 2^18 weights × rows):",
        "",
        *pool_rows(),
        "",
    ]

    step = contender("profile", smollm2, new_tokens // 2, 1)
    if isinstance(step, dict):
        lines += [
            "**Where a native decode step goes** (SmolLM2, one thread, CPU ms per token): "
            f"whole step {step['full_ms']:.1f}; with every quantised product replaced by an "
            f"empty result (Python and the torch ops between the products) {step['floor_ms']:.1f}; "
            f"the LM head's product (49152×576) alone {step['head_ms']:.2f}.",
            "",
        ]
    size = smollm2.stat().st_size / 2**20
    passage = len(cl.load(smollm2, weights="native").tokenize(PASSAGE).ids)
    threads = torch.get_num_threads()
    for n in sorted({threads, 1}, reverse=True):  # torch's thread count, and one thread
        where = f"{n} thread{'s' if n > 1 else ''}"
        kinds = {"contextlens native": ("native", n), "contextlens exact": ("exact", n),
                 "transformers": ("transformers", n), "llama.cpp": ("llama.cpp", n)}  # fmt: skip
        if n != threads:  # exact mode once, at torch's thread count
            del kinds["contextlens exact"]
        results = alternating(kinds, smollm2, new_tokens)
        lines += [f"**SmolLM2-135M-Instruct Q4_1** ({size:.0f} MiB file), {new_tokens} new "
                  f"tokens, every contender on {where}; prompt speed: a passage of {passage} "
                  "tokens read and its first token produced (best of 3):", ""]  # fmt: skip
        lines += table(results, "llama.cpp") + [""]
        for mode in ("native", "exact"):
            ours, peer = results.get(f"contextlens {mode}"), results["transformers"]
            if isinstance(ours, dict) and isinstance(peer, dict):
                ratio = ours["tok_s"] / peer["tok_s"]
                lines += [f"contextlens {mode} ÷ transformers on {where}: {ratio:.2f}.", ""]
    speed = bandwidth()
    weights = (
        sum(
            int(torch.tensor(t.shape).prod())
            for t in open_gguf(smollm2).tensors
            if len(t.shape) == 2
        )
        * 4
    )  # fmt: skip  (float32; the tied head reads the table)
    copy, read = speed["copy"], speed["read"]
    lines += [f"Exact mode reads {weights / 1e6:.0f} MB of float32 weights a token. Memory "
              f"bandwidth in this run: copy (read + written) {copy[1]:.1f} GB/s on 1 thread, "
              f"{copy[2]:.1f} on 2; read (a sum) {read[1]:.1f} GB/s on 1 thread, {read[2]:.1f} on "
              f"2: a ceiling of {read[1] * 1e9 / weights:.0f} / {read[2] * 1e9 / weights:.0f} "
              "tok/s for exact mode.", ""]  # fmt: skip
    busy = subprocess.Popen([sys.executable, "-c", "while 1: pass"])
    try:
        contested = alternating(
            {"contextlens native": ("native", threads), "llama.cpp": ("llama.cpp", threads)},
            smollm2,
            new_tokens,
        )
    finally:
        busy.kill()
        busy.wait()
    lines += [f"**The same on {threads} threads with one competing busy process** "
              "(`python -c 'while 1: pass'`):", "", *table(contested, "llama.cpp"), ""]  # fmt: skip

    shape = SYNTHETIC_QUICK if quick else SYNTHETIC
    path = Path(tempfile.gettempdir()) / f"contextlens-synthetic-{shape['d']}-q4_0.gguf"
    if not path.exists():
        partial = path.with_suffix(".part")
        write_synthetic(partial, shape, open_gguf(smollm2).metadata)
        partial.replace(path)
    gguf = open_gguf(path)
    params = sum(int(torch.tensor(t.shape).prod()) for t in gguf.tensors)
    size = path.stat().st_size / 2**20
    synthetic = alternating(
        {"contextlens native": ("native", threads), "llama.cpp": ("llama.cpp", threads)},
        path,
        new_tokens // 4,
    )
    lines += [f"**Synthetic Llama Q4_0**, {params / 1e9:.2f} B parameters ({shape}), "
              f"{size:.0f} MiB file, {new_tokens // 4} new tokens:", ""]  # fmt: skip
    lines += table(synthetic, "llama.cpp")
    lines += ["", f"Load average (1 min) at the start {start_load:.1f}, at the end "
              f"{os.getloadavg()[0]:.1f}."]  # fmt: skip
    print("\n".join(lines))
    write_section("native", "## Native weights (issue 12)\n\n" + "\n".join(lines))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        kind, path, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
        if kind == "llama.cpp":
            result = work_llama_cpp(path, n)
        elif kind == "profile":
            result = work_step_profile(path, n)
        elif kind == "transformers":
            result = work_transformers(path, n)
        else:
            result = work_contextlens(path, kind, n)
        print(json.dumps(result))
    else:
        sys.path.insert(0, str(Path(__file__).parent))
        main("--quick" in sys.argv)
