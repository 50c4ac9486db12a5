"""Native weights: GGUF matrices multiplied as stored. The kernels against the dequantised
product for every format they handle, the per-layer fallback for the others, and SmolLM2's Q4_1
file in native mode against exact mode on held-out prose (Cranfield abstracts)."""

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, quants

import contextlens as cl
from contextlens import ContextlensError
from contextlens.io.catalog import CATALOG
from contextlens.io.gguf import StoredTensor
from contextlens.nn import quant
from contextlens.nn.quant import NativeWeightsWarning, QuantEmbedding, QuantLinear

Q = GGMLQuantizationType
CRANFIELD = Path(__file__).parent / "data" / "cranfield" / "cran.all.1400"
PROMPTS = [
    "The capital of France is",
    "Once upon a time, in a small village,",
    "def fibonacci(n):",
    "The three most important inventions of the 20th century are",
]


def stored(w: np.ndarray, kind: Q, rows: torch.Tensor | None = None) -> StoredTensor:
    """A float matrix [out, in] quantised by the gguf package, as a GGUF file would hold it."""
    raw = quants.quantize(w, kind)
    data = torch.from_numpy(np.ascontiguousarray(raw).view(np.uint8).reshape(w.shape[0], -1))
    return StoredTensor(kind, w.shape, data, rows)


def random_blocks(kind: Q, shape: tuple[int, int], seed: int) -> StoredTensor:
    """Random super-blocks of a K-quant (the gguf package cannot quantise to them) with sane
    float16 scales: Q4_K/Q5_K's d and dmin at bytes 0 and 2, Q6_K's d at its last two bytes."""
    rng = np.random.default_rng(seed)
    elems, size = GGML_QUANT_SIZES[kind]
    blocks = rng.integers(0, 256, (shape[0] * shape[1] // elems, size), dtype=np.uint8)
    for at in (0, 2) if kind != Q.Q6_K else (size - 2,):
        scales = rng.uniform(1e-3, 0.1, len(blocks)).astype(np.float16)
        blocks[:, at : at + 2] = scales.view(np.uint8).reshape(-1, 2)
    return StoredTensor(kind, shape, torch.from_numpy(blocks.reshape(shape[0], -1)))


def matrix(kind: Q, shape: tuple[int, int], seed: int, rows=None) -> StoredTensor:
    if kind in (Q.Q4_K, Q.Q6_K):
        return StoredTensor(kind, shape, random_blocks(kind, shape, seed).data, rows)
    w = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return stored(w, kind, rows)


def reference(w: StoredTensor) -> torch.Tensor:
    """The gguf package's dequantisation, rows in stored order put into logical order."""
    values = quants.dequantize(w.data.numpy(), w.kind).reshape(w.shape)
    values = torch.from_numpy(np.require(values, np.float32, ["C"]))
    return values if w.rows is None else values[w.rows.long()]


def int16_blocks(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x [..., in] as the kernels quantise activations: per block of 32, d = max|x| / 32767 and
    q = x · (1/d) rounded to nearest even -> (d·q [..., in], d per value [..., in])."""
    blocks = x.reshape(*x.shape[:-1], -1, 32)
    d = blocks.abs().amax(-1, keepdim=True) / 32767
    q = torch.round(blocks * torch.where(d > 0, 1 / d, 0))
    return (q * d).reshape(x.shape), d.expand_as(blocks).reshape(x.shape)


BLOCK_FORMATS = sorted(quant.KERNEL_FORMATS - {Q.F16, Q.BF16})


@pytest.mark.parametrize("portable", [False, True], ids=["native-cpu", "portable-c"])
@pytest.mark.parametrize("kind", sorted(quant.KERNEL_FORMATS), ids=lambda k: k.name)
def test_kernels_equal_the_dequantised_product(kind, portable):
    """Both builds of quant.c (this CPU's SIMD, and the scalar C any CPU runs): block formats
    multiply the int16-quantised activations exactly, F16/BF16 the float32 ones."""
    lib = quant.kernels(portable)
    assert lib is not None  # a C compiler is part of the set-up here
    order = torch.randperm(48, generator=torch.Generator().manual_seed(0)).int()
    parts = [matrix(kind, (48, 512), 0, order), matrix(kind, (16, 512), 1)]
    w = torch.cat([reference(p) for p in parts])  # [64, 512]
    call = quant.KernelCall(lib, parts)
    for m in (1, 3, 8, 9, quant.FUSED_ROWS):
        x = torch.randn(m, 512)
        xq = x if kind in (Q.F16, Q.BF16) else int16_blocks(x)[0]
        expected = (xq.double() @ w.double().T).float()
        torch.testing.assert_close(call(x), expected, atol=1e-5 * w.abs().sum(1).max(), rtol=0)
    torch.testing.assert_close(quant.dequantize(parts[0]), w[:48], atol=0, rtol=0)


@pytest.mark.parametrize("kind", BLOCK_FORMATS, ids=lambda k: k.name)
def test_integer_activations_stay_within_their_rounding_bound(kind):
    """Rounding x to int16 moves each value by at most half its block's step d, so
    |y - x·Wᵀ| ≤ Σ_j |W_cj| · d_j / 2; on Gaussian data the error is far inside that bound."""
    w = matrix(kind, (64, 512), 2)
    layer = QuantLinear([w])
    x = torch.randn(16, 512)
    exact = (x.double() @ reference(w).double().T).float()
    error = (layer(x) - exact).abs()
    bound = int16_blocks(x)[1] @ reference(w).abs().T / 2
    assert bool((error <= bound * (1 + 1e-4) + 1e-5).all())
    assert float(error.norm() / exact.norm()) < 1e-4


def test_quant_linear_layers_bias_and_dtype():
    """One fused call for stacked parts, the bias added, the BLAS path above FUSED_ROWS rows."""
    parts = [matrix(Q.Q4_1, (48, 96), 3), matrix(Q.Q8_0, (16, 96), 4)]
    bias = torch.randn(64)
    layer = QuantLinear(parts, bias)
    w = torch.cat([reference(p) for p in parts])
    x = torch.randn(2, 5, 96)
    torch.testing.assert_close(layer(x), int16_blocks(x)[0] @ w.T + bias, atol=1e-4, rtol=1e-5)
    x = torch.randn(quant.FUSED_ROWS + 1, 96)  # dequantised layer, float32 activations
    torch.testing.assert_close(layer(x), x @ w.T + bias, atol=1e-4, rtol=1e-5)
    assert layer(x.bfloat16()).dtype == torch.bfloat16


def test_embedding_rows_and_bad_ids():
    table = stored(np.random.default_rng(1).standard_normal((40, 64)).astype(np.float32), Q.Q8_0)
    emb = QuantEmbedding(table)
    ids = torch.tensor([[3, 0, 39], [7, 7, 1]])
    torch.testing.assert_close(emb(ids), reference(table)[ids], atol=0, rtol=0)
    for bad in (40, -1):
        with pytest.raises(IndexError, match=r"\[0, 40\)"):
            emb(torch.tensor([bad]))


def test_a_format_without_kernel_falls_back_per_layer_and_says_so_once():
    """Q5_K (in Q4_K_M files next to Q4_K and Q6_K): dequantised a layer at a time."""
    w = random_blocks(Q.Q5_K, (8, 512), 2)
    layer = QuantLinear([w])
    x = torch.randn(3, 512)
    quant._say_fallback.cache_clear()
    with pytest.warns(NativeWeightsWarning, match="Q5_K weights have no native kernel"):
        y = layer(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layer(x)  # said once
    torch.testing.assert_close(y, x @ reference(w).T, atol=1e-4, rtol=1e-5)


# ---- SmolLM2, native against exact ----------------------------------------------------------


@pytest.fixture(scope="module")
def native():
    return cl.load("smollm2", weights="native")


def held_out_ids(lm, n: int) -> list[int]:
    """The first n tokens of the Cranfield abstracts (their .W sections), joined as paragraphs."""
    sections = CRANFIELD.read_text().split("\n.I ")[:20]
    texts = [" ".join(s.split("\n.W\n", 1)[1].split()) for s in sections if "\n.W\n" in s]
    ids = lm.tokenize("\n\n".join(texts)).ids
    assert len(ids) >= n
    return ids[:n]


def test_native_mode_holds_the_file_as_stored(native):
    layer = native.model.blocks[0].attn.qkv
    assert isinstance(layer, QuantLinear) and [p.kind for p in layer.parts] == [Q.Q4_1] * 3
    assert isinstance(native.model.tok, QuantEmbedding) and native.model.tok.table.kind == Q.Q8_0
    assert native.model.lm_head.parts[0].data.data_ptr() == native.model.tok.table.data.data_ptr()


def test_native_agrees_with_exact_on_held_out_prose(native, smollm2):
    """Top-1 next token on 2,048 tokens in 64-token windows (the fused kernels' sizes), and the
    mean KL divergence exact ‖ native, printed for docs/gguf.md."""
    ids = torch.tensor(held_out_ids(smollm2, 2048)).view(8, 4, 64)
    agree, kl = [], []
    with torch.no_grad():
        for windows in ids:  # [4, 64]: exact mode takes four at once (the same numbers)
            exact = torch.log_softmax(smollm2.model.logits(smollm2.model(windows)), -1)
            ours = torch.cat([native.model.logits(native.model(w[None])) for w in windows])
            ours = torch.log_softmax(ours, -1)
            agree.append((exact.argmax(-1) == ours.argmax(-1)).float().mean())
            kl.append((exact.exp() * (exact - ours)).sum(-1).mean())
    top1, mean_kl = float(torch.stack(agree).mean()), float(torch.stack(kl).mean())
    print(f"native vs exact on 2,048 tokens: top-1 agreement {top1:.4f}, mean KL {mean_kl:.2e}")
    assert top1 >= 0.97
    assert mean_kl < 1e-3


def test_native_greedy_continuations_equal_exact(native, smollm2):
    for prompt in PROMPTS:
        assert native.generate(prompt, max_new_tokens=16) == smollm2.generate(
            prompt, max_new_tokens=16
        )


MODEL_MEMORY = """
import sys
import contextlens as cl

path = sys.argv[1]


def anonymous() -> int:  # heap and other private memory, bytes
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024


def of_file() -> int:  # pages of the model file mapped into this process, bytes
    total, inside = 0, False
    for line in open("/proc/self/smaps"):
        head = line.split()
        if "-" in head[0] and len(head) >= 5 and ":" in head[3]:
            inside = len(head) >= 6 and head[5] == path
        elif inside and head[0] == "Rss:":
            total += int(head[1]) * 1024
    return total


before = anonymous()
lm = cl.load(path, weights="native")
loaded = anonymous() - before + of_file()
lm.generate("The capital of France is", max_new_tokens=4)
print(loaded, anonymous() - before + of_file())
"""


def test_native_load_keeps_memory_near_the_file_size():
    """In a fresh process: the memory the model holds after load and a first generation — the
    private memory they added plus the model file's mapped pages — is ≤ 1.5× the file. (Pages
    of torch's own libraries that a first product maps are the library's, not the model's, and
    how many of them show depends on the page cache.)"""
    path = CATALOG["smollm2"].path()
    out = subprocess.run(
        [sys.executable, "-c", MODEL_MEMORY, str(path)], capture_output=True, text=True, check=True
    )
    loaded, used = map(int, out.stdout.split())
    size = path.stat().st_size
    mib = 2**20
    print(f"model memory: {loaded / mib:.0f} MiB after load, {used / mib:.0f} MiB after generating")
    assert used <= 1.5 * size


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_native_weights_with_half_precision_activations(dtype):
    lm = cl.load("smollm2", weights="native", dtype=dtype)
    assert lm.generate("The capital of France is", max_new_tokens=2).startswith(" Paris")
    t = lm.trace("The capital of France is")
    assert t.hidden_states.dtype == t.attentions.dtype == dtype


def test_bad_mode_and_device(native):
    with pytest.raises(ContextlensError, match="native .* run on the CPU; for device='cuda' load"):
        cl.load("smollm2", weights="native", device="cuda")
    with pytest.raises(ContextlensError, match="weights='fp8' is not a mode; use 'exact' or"):
        cl.load("smollm2", weights="fp8")
    with pytest.raises(ContextlensError, match="native .* weights run on the CPU"):
        native.model.blocks[0].attn.qkv(torch.zeros(1, 576, device="meta"))


def test_cli_weights_option(run_cli):
    code, out, _ = run_cli("--weights", "native", "generate", "The capital of France is", "-n", "3")
    assert code == 0 and "Paris" in out
    code, _, err = run_cli("--weights", "fp8", "generate", "x")
    assert code == 2 and "fp8" in err
