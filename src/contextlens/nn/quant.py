"""Linear layers and embedding tables over weights kept as a GGUF file stores them (native mode).

A `StoredTensor` is a matrix [out, in] in one of llama.cpp's block formats, still in the memory
map. `QuantLinear` multiplies with it directly:

    y = x · Wᵀ (+ b)     x [..., in] -> y [..., out],   W = concat(parts) along out

Q4_0, Q4_1, Q8_0, Q4_K, Q6_K, F16 and BF16 go through `quant.c` (compiled on first use with the
system's C compiler, cached; one call per layer, its parts included, its output rows split over
a pool of worker threads). Float32 weights go through it too in exact mode: a decoding step's
single rows (`linear_call`), and a sentence's 12-96 rows summed in MKL's own order (`cl_linear`,
`Linear`).
For the block formats each input row is quantised once per call to int16 blocks of 32 and
multiplied with integer dot products (AVX2 where the CPU has it, else portable C computing the
same sums), so a weight is read once per call, never stored wider, and never widened to float;
F16/BF16 blocks are widened to float32 in registers. Torch's own `_weight_int4pack_mm_for_cpu`
was measured first: without AVX-512 it runs a scalar loop, 20–40× slower than float32 here
(docs/gguf.md). Every other format (Q5_x, Q2_K, Q3_K, Q5_K, IQ*, …), and every format when no C
compiler is found, is dequantised one layer at a time at forward (the gguf package's numpy code)
and multiplied in float32; this is said once per format.
"""

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from functools import cache, lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from gguf import GGMLQuantizationType
from gguf.quants import dequantize as gguf_dequantize
from torch import nn

from ..errors import ContextlensError
from ..io.gguf import StoredTensor

Q = GGMLQuantizationType
KERNEL_FORMATS = {Q.F16, Q.BF16, Q.Q4_0, Q.Q4_1, Q.Q8_0, Q.Q4_K, Q.Q6_K}
SOURCE = Path(__file__).with_name("quant.c")
# up to this many input rows the fused kernel (on torch's OpenMP team) beats dequantise + BLAS
# here: with 64, a 66-token prompt read at 0.56x llama.cpp (SmolLM2) and 0.16x (1.17 B Q4_0),
# with 256 at 1.31x and 0.61x (bench/RESULTS.md, "Native weights", prompt tok/s)
FUSED_ROWS = 256
KERNEL_ROWS = 1  # rows a float32 `Linear` sends to quant.c: one (see `Linear`)
# input rows a float32 `Linear` sends to `cl_linear`: from 12, MKL's sgemm sums in the blocks of
# k cl_linear repeats (fewer: other orders); it is faster while the weights come from memory, as
# in a pass (2-3x at 16 rows, ~1.25x at 96, 0.95-1.16x at 128: bench_engine's rows table)
BLAS_ROWS = range(12, 97)
BLAS_BLOCKS = (192, 256, 384, 128, 96, 64, 512)  # the block lengths the probe tries, in turn


class NativeWeightsWarning(UserWarning):
    """A format without a native kernel: its layers are dequantised one at a time."""


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "contextlens" / "kernels"


def torch_openmp() -> Path | None:
    """The GNU OpenMP runtime (libgomp) torch's CPU threads run on, as loaded in this process;
    None where torch uses another runtime or none (then quant.c keeps to its own threads)."""
    maps = Path("/proc/self/maps")
    if not maps.exists():
        return None
    for line in maps.read_text().splitlines():
        path = Path(line.split()[-1]) if "/" in line else None
        if path is not None and path.name.startswith("libgomp") and ".so" in path.name:
            return path
    return None


def _compile(target: Path, portable: bool, source: Path, gomp: Path | None) -> bool:
    """Build `source` into `target` (with POSIX threads); False if no compiler.

    portable=True builds for the architecture's baseline (no -march=native): the scalar code.
    With `gomp` (torch's libgomp), the library is compiled with OpenMP and linked against that
    very file, so its parallel regions use torch's team of threads (`run_job` in quant.c);
    if that build fails, it is built without OpenMP.
    """
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    flags = [cc, "-O3", *([] if portable else ["-march=native"]), "-fPIC", "-pthread"]

    def ok(*args: str) -> bool:
        return subprocess.run([*flags, *args], capture_output=True).returncode == 0

    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        obj, built = Path(tmp) / "quant.o", Path(tmp) / target.name
        openmp = (
            gomp is not None
            and ok("-fopenmp", "-c", str(source), "-o", str(obj))
            and ok(
                "-shared", str(obj), str(gomp), f"-Wl,-rpath,{gomp.parent}", "-lm", "-o", str(built)
            )
        )
        if not openmp and not ok("-shared", str(source), "-lm", "-o", str(built)):
            return False
        os.replace(built, target)  # atomic: a concurrent build never sees half a file
    return True


def built(source: Path, portable: bool = False, openmp: bool = False) -> Path | None:
    """The library built from the C file `source`, compiled once per source, machine and (with
    `openmp`: linked against torch's libgomp where torch has one) OpenMP runtime, cached under
    the user's cache directory; None without a C compiler."""
    gomp = torch_openmp() if openmp else None
    key = hashlib.sha256(source.read_bytes() + platform.machine().encode())
    key.update(str(gomp).encode())
    cpu = Path("/proc/cpuinfo")
    if not portable and cpu.exists():  # -march=native: a library built elsewhere may not run
        flags = [line for line in cpu.read_text().splitlines() if line.startswith("flags")]
        key.update("".join(flags[:1]).encode())
    name = f"{source.stem}-portable" if portable else source.stem
    target = _cache_dir() / f"{name}-{key.hexdigest()[:16]}.so"
    if not target.exists() and not _compile(target, portable, source, gomp):
        return None
    return target


@cache
def kernels(portable: bool = False) -> ctypes.CDLL | None:
    """quant.c as a loaded library (`built`); None without a C compiler (then every format
    takes the dequantising path). portable=True: the scalar build every x86-64 (or other) CPU
    runs, for tests and comparison."""
    target = built(SOURCE, portable, openmp=True)
    if target is None:
        return None
    lib = ctypes.CDLL(str(target))
    p, i, f, n = ctypes.c_void_p, ctypes.c_int, ctypes.c_float, ctypes.c_long
    lib.cl_matmul.argtypes = [i, p, p, p, p, i, p, i, p, i, i, p, f, f, i]
    lib.cl_dequant.argtypes = [i, p, p, i, i, p, i]
    lib.cl_linear.argtypes = [p, i, i, p, n, p, p, i, i]
    lib.cl_rope.argtypes = [p, i, i, p, p, i]
    lib.cl_rope.restype = None
    lib.cl_attend_one.argtypes = [p, p, p, p, p, n, i, i, i, i, i, f, f, p]
    return lib


@cache
def _say_fallback(kind: Q, why: str) -> None:
    warnings.warn(
        f"{kind.name} weights {why}: those layers are dequantised to float32 one at a time at "
        "each forward (correct, slower)",
        NativeWeightsWarning,
        stacklevel=3,
    )


def _kernel_for(kind: Q) -> ctypes.CDLL | None:
    """The compiled kernels if they handle this format, else None (and say so once)."""
    if kind not in KERNEL_FORMATS:
        _say_fallback(kind, "have no native kernel")
        return None
    lib = kernels()
    if lib is None:
        _say_fallback(kind, "need a C compiler for their kernel and none was found")
    return lib


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def dequantize(w: StoredTensor, rows: torch.Tensor | None = None) -> torch.Tensor:
    """Rows of a stored matrix as float32: `rows` int [r] (None: all) -> [r, in]."""
    if rows is not None and w.rows is not None:
        rows = w.rows[rows]
    elif rows is None:
        rows = w.rows
    n, k = (w.shape[0] if rows is None else rows.numel()), w.shape[1]
    lib = _kernel_for(w.kind)
    if lib is not None:
        out = torch.empty(n, k)
        rows = None if rows is None else rows.to(torch.int32).contiguous()
        lib.cl_dequant(
            int(w.kind), _ptr(w.data), _ptr(rows), n, k, _ptr(out), torch.get_num_threads()
        )
        return out
    data = w.data.numpy() if rows is None else w.data.numpy()[rows.numpy()]
    return torch.from_numpy(gguf_dequantize(data, w.kind).reshape(n, k))


PREP_NONE, PREP_RMSNORM, PREP_SILU_MUL = 0, 1, 2  # how cl_matmul prepares its input rows
F32_COLUMNS = 1000  # cl_matmul's format for a float32 [out, in] weight stored column-major


def _format(part: StoredTensor) -> int:
    """cl_matmul's format code: the GGML type, or F32_COLUMNS for a float32 weight whose
    transpose is the contiguous one (its memory is [in, out])."""
    if part.kind == Q.F32 and not part.data.is_contiguous():
        return F32_COLUMNS
    return int(part.kind)


class KernelCall:
    """`cl_matmul` for the stacked parts of one layer, its fixed arguments built once:
    `call(x)` with x [m, in] float32 contiguous -> y [m, Σ out_i] float32, one C call.

    The input may be prepared in the same call: `prep=PREP_RMSNORM` normalises each row,
    x / √(mean(x²) + eps) · (offset + norm) with `norm` float32 [in]; `prep=PREP_SILU_MUL` takes
    x [m, 2·in] = gate | up and multiplies by silu(gate) · up. With `out` given the product is
    written there, or added to it with `accumulate` (a residual updated in place). The weights
    are read where they lie: their owner keeps them alive.
    """

    def __init__(self, lib: ctypes.CDLL, parts: list[StoredTensor]):
        rows = [None if p.rows is None else p.rows.to(torch.int32).contiguous() for p in parts]
        count = len(parts)
        self.keep = rows  # the row indices must outlive the pointers to them
        self.lib, self.fn, self.count, self.k = lib, lib.cl_matmul, count, parts[0].shape[1]
        self.kinds = [p.kind for p in parts]
        self.out = sum(p.shape[0] for p in parts)
        self.fmt = (ctypes.c_int * count)(*(_format(p) for p in parts))
        self.w = (ctypes.c_void_p * count)(*(p.data.data_ptr() for p in parts))
        self.rows = (ctypes.c_void_p * count)(*(_ptr(r) for r in rows))
        self.n = (ctypes.c_int * count)(*(p.shape[0] for p in parts))

    def __call__(
        self,
        x: torch.Tensor,
        out: torch.Tensor | None = None,
        prep: int = PREP_NONE,
        norm: torch.Tensor | None = None,
        eps: float = 0.0,
        offset: float = 0.0,
        accumulate: bool = False,
    ) -> torch.Tensor:
        m = x.numel() // (2 * self.k if prep == PREP_SILU_MUL else self.k)
        y = torch.empty(m, self.out) if out is None else out
        threads = torch.get_num_threads()
        fmt, w, rows, n = self.fmt, self.w, self.rows, self.n
        args = (x.data_ptr(), m, y.data_ptr(), threads, prep, _ptr(norm), eps, offset, accumulate)
        if self.fn(self.count, fmt, w, rows, n, self.k, *args):
            kinds = "+".join(k.name for k in self.kinds)
            raise ContextlensError(
                f"the native kernel cannot multiply {kinds} rows of width {self.k} (not whole "
                "blocks); load with weights='exact'"
            )
        return y

    def fused(
        self,
        x: torch.Tensor,
        norm: nn.Module | None = None,
        glu: bool = False,
        residual: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The product with its neighbours folded into the one C call, for float32 rows on the
        CPU (a decoding step): x [..., in] is first normalised by `norm` (an RMSNorm: its
        weight, eps and offset), or with `glu` x [..., 2·in] = gate | up becomes
        silu(gate) · up; with `residual` [..., out] the product is added into it in place and
        the residual returned, else a new [..., out]."""
        shape = (*x.shape[:-1], self.out)
        y = residual if residual is not None else x.new_empty(shape)
        if norm is not None:
            self(x, y, PREP_RMSNORM, norm.weight, norm.eps, norm.offset, residual is not None)
        else:
            self(x, y, PREP_SILU_MUL if glu else PREP_NONE, accumulate=residual is not None)
        return y


def linear_call(linear: nn.Linear) -> KernelCall | None:
    """`cl_matmul` over a float32 `nn.Linear`'s weight [out, in], read where it lies in either
    memory order (no copy, no second layout): exact mode's decoding step. Made once and kept on
    the module, made again if the weight moved; None without quant.c or for a weight that is
    not a float32 matrix on the CPU in one of the two orders."""
    w, call = linear.weight, linear.__dict__.get("kernel_call")
    if call is not None and call.w[0] == w.data_ptr() and (call.out, call.k) == w.shape:
        return call
    lib = kernels()
    if lib is None or w.dtype != torch.float32 or w.device.type != "cpu" or w.dim() != 2:
        return None
    if not (w.is_contiguous() or w.t().is_contiguous()):
        return None
    linear.kernel_call = KernelCall(lib, [StoredTensor(Q.F32, tuple(w.shape), w.detach())])
    return linear.kernel_call


def blas_linear(
    lib: ctypes.CDLL, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, block: int
) -> torch.Tensor:
    """`cl_linear`: x [..., in] @ w [out, in]ᵀ + b -> [..., out], float32, all contiguous on the
    CPU, every sum taken in blocks of `block` as MKL's sgemm takes it (see quant.c)."""
    k, n = w.shape[1], w.shape[0]
    m = x.numel() // k
    y = x.new_empty((*x.shape[:-1], n))
    threads = torch.get_num_threads()
    done = lib.cl_linear(x.data_ptr(), m, k, w.data_ptr(), n, _ptr(b), y.data_ptr(), block, threads)
    if done == -2:
        raise MemoryError(f"no memory for the transposed input of a [{m}, {k}] product")
    if done:
        raise ValueError(f"cl_linear cannot multiply [{m}, {k}] by [{n}, {k}] in blocks of {block}")
    return y


@lru_cache(maxsize=4)
def _probe_weights(out: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A random float32 weight [out, k] and bias [out] on the CPU, the same for every probe of
    this shape: a layer's own weight could hide the order (all zeros match every order)."""
    gen = torch.Generator().manual_seed(out * 100003 + k)
    return torch.randn(out, k, generator=gen), torch.randn(out, generator=gen)


_blas_blocks: dict[tuple, int | None] = {}


def blas_block(rows: int, out: int, k: int, bias: bool) -> int | None:
    """The block of k in which `F.linear` sums a float32 product of `rows` rows with a weight
    [out, k] (with a bias or not) on this machine with torch's current thread count and float32
    matmul precision, found on first use of each by comparing `cl_linear` with F.linear bit for
    bit on random operands: the order depends on the machine's BLAS and CPU, and on how MKL
    splits the product over threads (many threads can hand its small-row path a few rows each).
    None where no block length matches: then such products keep F.linear."""
    precision = torch.get_float32_matmul_precision()
    key = (torch.get_num_threads(), precision, rows, out, k, bias)
    if key not in _blas_blocks:
        lib, block = kernels(), None
        w, b = _probe_weights(out, k)
        b = b if bias else None
        gen = torch.Generator().manual_seed(rows)
        x = torch.randn(rows, k, generator=gen, dtype=torch.float32, device="cpu")
        with torch.no_grad():
            want = F.linear(x, w, b)
            for candidate in BLAS_BLOCKS if lib is not None else ():
                if torch.equal(blas_linear(lib, x, w, b, candidate), want):
                    block = candidate
                    break
        _blas_blocks[key] = block
    return _blas_blocks[key]


def untracked(x: torch.Tensor, module: nn.Module) -> bool:
    """Whether a product of x with the module's parameters has no gradient to record."""
    if not torch.is_grad_enabled():
        return True
    return not (x.requires_grad or any(p.requires_grad for p in module.parameters()))


class Linear(nn.Linear):
    """`nn.Linear` (y = x · Wᵀ + b, W [out, in]) with two faster routes for float32 products on
    the CPU with no gradient to record, both in quant.c:

    - a single row (a decoding step of any architecture, the LM head of the last position) runs
      through `linear_call`: the weight read once, where it lies, in either memory order, where
      MKL's sgemm reads a weight slowly for one row. It sums in another order than F.linear:
      a single row differs from it by rounding (the parity tests' tolerances).
    - 12 to 96 rows (a sentence's `trace`, a prompt) run through `cl_linear`, which takes every
      sum in the order MKL's sgemm takes it, so hidden states equal transformers' bit for bit,
      1.2-3× faster than F.linear at these sizes: used only where `blas_block` found that
      order for the layer's shape and the row count on this machine.

    Everything else (more rows, other dtypes and devices, products with a gradient) runs
    through `F.linear`, the reference's own kernel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [..., in] -> [..., out]
        y = self.kernel_product(x)
        return F.linear(x, self.weight, self.bias) if y is None else y

    def kernel_product(self, x: torch.Tensor) -> torch.Tensor | None:
        """x [..., in] · Wᵀ + b through quant.c -> [..., out]; None where neither route applies
        (then F.linear): not float32 on the CPU, a gradient to record, a row count neither
        route takes, no compiler, or (several rows) an order not verified on this machine.
        The checks a text's pass meets are the fewest and come first: between two products
        the interpreter runs with caches the weights just streamed through."""
        w, b = self.weight, self.bias
        if not (x.dtype == w.dtype == torch.float32 and x.is_cpu and w.is_cpu):
            return None
        if not (self.out_features and untracked(x, self)):
            return None
        rows = x.numel() // self.in_features
        if rows in BLAS_ROWS:
            # F.linear adds the bias last for a non-contiguous batch: only contiguous x here
            if not (x.is_contiguous() and w.is_contiguous()):
                return None
            if b is not None and not (b.dtype == torch.float32 and b.is_contiguous()):
                return None
            block = blas_block(rows, self.out_features, self.in_features, b is not None)
            return None if block is None else blas_linear(kernels(), x, w, b, block)
        if not 0 < rows <= KERNEL_ROWS:
            return None
        call = linear_call(self)
        if call is None:
            return None
        y = call(x.reshape(rows, self.in_features).contiguous())  # [rows, out]
        y = y if b is None else y.add_(b)
        return y.view(*x.shape[:-1], self.out_features)


class QuantLinear(nn.Module):
    """`nn.Linear` over stored weights: y = x · Wᵀ + b, W = the parts stacked along out.

    parts: StoredTensor [out_i, in] each (e.g. Q, K, V, or gate and up), bias [Σ out_i] or None.
    x [..., in] (any float dtype, on the CPU) -> [..., Σ out_i] in x's dtype.
    """

    def __init__(self, parts: list[StoredTensor], bias: torch.Tensor | None = None):
        super().__init__()
        k = parts[0].shape[1]
        if any(p.shape[1] != k for p in parts):
            raise ContextlensError("the stacked weights of one layer differ in input width")
        self.parts = parts
        self.in_features, self.out_features = k, sum(p.shape[0] for p in parts)
        self.bias = None if bias is None else nn.Parameter(bias, requires_grad=False)
        self.call: KernelCall | None = None  # made at the first product

    def extra_repr(self) -> str:
        kinds = "+".join(p.kind.name for p in self.parts)
        return f"in_features={self.in_features}, out_features={self.out_features}, {kinds}"

    def weight_float(self) -> torch.Tensor:
        """The whole weight dequantised: [out, in] float32 (one layer, for inspection)."""
        return torch.cat([dequantize(p) for p in self.parts])

    def kernel(self) -> KernelCall | None:
        """The fused product for these parts, or None when a part has no kernel."""
        if self.call is None:
            libs = [_kernel_for(p.kind) for p in self.parts]
            if any(lib is None for lib in libs):
                return None
            self.call = KernelCall(libs[0], self.parts)
        return self.call

    def fused(
        self,
        x: torch.Tensor,
        norm: nn.Module | None = None,
        glu: bool = False,
        residual: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`KernelCall.fused` for these weights (`kernel()` must exist), plus the bias."""
        y = self.kernel().fused(x, norm, glu, residual)
        if self.bias is not None:
            y += self.bias
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu":
            raise ContextlensError(
                "native (quantised) weights run on the CPU; load with weights='exact' to use "
                f"{x.device.type}"
            )
        x2 = x.reshape(-1, self.in_features).float().contiguous()  # [m, in]
        call = self.kernel() if x2.shape[0] <= FUSED_ROWS else None
        # without a kernel, one layer at a time: its float32 copy lives only for this product
        y = call(x2) if call is not None else F.linear(x2, self.weight_float())
        if self.bias is not None:
            y += self.bias
        return y.reshape(*x.shape[:-1], self.out_features).to(x.dtype)


class QuantEmbedding(nn.Module):
    """A lookup table over a stored [vocab, d] matrix: only the rows asked for are dequantised.

    ids [...] -> [..., d], in the model's dtype (an empty buffer follows `.to(dtype)`).
    """

    def __init__(self, table: StoredTensor):
        super().__init__()
        self.table = table
        self.num_embeddings, self.embedding_dim = table.shape
        self.register_buffer("like", torch.empty(0), persistent=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        flat = ids.reshape(-1).cpu()
        if flat.numel() and not 0 <= int(flat.min()) <= int(flat.max()) < self.num_embeddings:
            raise IndexError(f"token ids must lie in [0, {self.num_embeddings})")
        rows = dequantize(self.table, flat).reshape(*ids.shape, self.embedding_dim)
        return rows.to(self.like.dtype)

    @property
    def weight(self) -> torch.Tensor:
        """The whole table as float32 [vocab, d] (dequantised on each access)."""
        return dequantize(self.table)


__all__ = [
    "KernelCall",
    "Linear",
    "QuantEmbedding",
    "QuantLinear",
    "StoredTensor",
    "dequantize",
    "kernels",
    "linear_call",
]
