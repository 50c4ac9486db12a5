"""quant.c's thread pool: a product split into chunks over worker threads gives the same numbers
as on one thread (every output row is computed by one thread, the same way), stays correct when
two Python threads multiply at once or the process forks, and float32 weights (exact mode's
decoding step) multiply in place."""

import multiprocessing
import threading
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from gguf import GGMLQuantizationType
from test_native import matrix

from contextlens.io.gguf import StoredTensor
from contextlens.nn import quant
from contextlens.nn.layers import column_major

Q = GGMLQuantizationType
BIG = (1024, 512)  # 2^19 weights: above the bound where the pool opens


@pytest.fixture
def threads():
    """Torch's thread count (what the kernels use) set to 4 for the test, then restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(4)
    yield 4
    torch.set_num_threads(before)


def layer(kind: Q, portable: bool = False) -> tuple[quant.KernelCall, list[StoredTensor]]:
    """A fused layer of two parts, the first with its rows reordered: [1024 + 256, 512], and
    the parts (which must outlive the call)."""
    order = torch.randperm(BIG[0], generator=torch.Generator().manual_seed(0)).int()
    parts = [matrix(kind, BIG, 0, order), matrix(kind, (256, 512), 1)]
    return quant.KernelCall(quant.kernels(portable), parts), parts


@pytest.mark.parametrize("portable", [False, True], ids=["native-cpu", "portable-c"])
@pytest.mark.parametrize("kind", [Q.Q4_1, Q.Q8_0, Q.F16], ids=lambda k: k.name)
def test_pool_gives_the_one_thread_numbers(kind, portable, threads):
    call, _parts = layer(kind, portable)
    for m in (1, 5):
        x = torch.randn(m, 512)
        torch.set_num_threads(1)
        alone = call(x)
        torch.set_num_threads(threads)
        together = call(x)
        torch.testing.assert_close(together, alone, atol=0, rtol=0)
    assert len(pool_threads()) >= threads - 1  # the workers exist: the pool did run


def pool_threads() -> list[str]:
    """This process's threads that are quant.c's workers (by the name they give themselves)."""
    tasks = Path("/proc/self/task").glob("*/comm")
    return [t for t in tasks if t.read_text().strip() == "contextlens-mm"]


def test_two_python_threads_multiply_at_once(threads):
    """The web server may run two products at the same time: each gets its own answer."""
    layers = [layer(Q.Q4_1), layer(Q.Q8_0)]
    calls = [call for call, _parts in layers]
    inputs = [torch.randn(1, 512), torch.randn(3, 512)]
    want = [call(x) for call, x in zip(calls, inputs, strict=True)]
    wrong = []

    def repeat(i: int) -> None:
        for _ in range(200):
            if not torch.equal(calls[i](inputs[i]), want[i]):
                wrong.append(i)

    workers = [threading.Thread(target=repeat, args=(i,)) for i in (0, 1)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in workers)
    assert wrong == []


def product_in_child(queue) -> None:
    torch.set_num_threads(4)
    call, _parts = layer(Q.Q8_0)
    queue.put([call(torch.ones(m, 512)).sum().item() for m in (1, 3)])


def test_a_forked_child_multiplies_with_its_own_workers(threads):
    """Workers started before a fork do not exist in the child: it starts its own."""
    call, _parts = layer(Q.Q8_0)
    want = [call(torch.ones(m, 512)).sum().item() for m in (1, 3)]  # the parent's teams run
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=product_in_child, args=(queue,))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    assert queue.get(timeout=5) == want


@pytest.mark.parametrize("portable", [False, True], ids=["native-cpu", "portable-c"])
def test_float32_weights_multiply_in_place(portable, threads):
    """Float32 rows (any width, rows picked by index) against a float64 product; the weight is
    read where it lies, so changing it changes the next product."""
    w = torch.randn(700, 300)
    order = torch.randperm(700).int()
    part = StoredTensor(Q.F32, (700, 300), w, order)
    extra = torch.randn(9, 300)
    call = quant.KernelCall(quant.kernels(portable), [part, StoredTensor(Q.F32, (9, 300), extra)])
    full = torch.cat([w[order.long()], extra])
    for m in (1, 2, 7):
        x = torch.randn(m, 300)
        expected = (x.double() @ full.double().T).float()
        torch.testing.assert_close(call(x), expected, atol=1e-5 * full.abs().sum(1).max(), rtol=0)
    x = torch.randn(1, 300)
    extra.mul_(2)
    torch.testing.assert_close(call(x)[:, 700:], x @ extra.T, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("portable", [False, True], ids=["native-cpu", "portable-c"])
def test_column_major_float32_weights(portable, threads):
    """A float32 weight stored [in, out] (exact mode's LM head) is read in that order: the same
    product, for widths that are not whole vectors or groups of four."""
    w = column_major(torch.randn(1001, 301))
    call = quant.KernelCall(quant.kernels(portable), [StoredTensor(Q.F32, (1001, 301), w)])
    for m in (1, 3):
        x = torch.randn(m, 301)
        expected = (x.double() @ w.double().T).float()
        torch.testing.assert_close(call(x), expected, atol=1e-5 * w.abs().sum(1).max(), rtol=0)


def test_exact_linear_layers_run_one_row_through_the_kernel(smollm2, minilm, threads):
    """A float32 `Linear` given one row with no gradient to record (a decoding step) runs
    through quant.c — the tied, column-major LM head read in place, a block's row-major
    projection, a BERT projection with its bias — and gives torch's numbers up to summation
    order, on one thread or a team. Several rows (a text's pass) and products with a gradient
    to record stay torch's F.linear, bit for bit: the reference's own kernel."""
    layers = [smollm2.model.lm_head, smollm2.model.blocks[0].attn.qkv]
    layers += [minilm.model.blocks[0].mlp.up]
    for layer in layers:
        x = torch.randn(3, layer.in_features)
        want = F.linear(x, layer.weight, layer.bias)
        with torch.no_grad():
            one = layer(x[1])
            assert layer.__dict__.get("kernel_call") is not None
            torch.testing.assert_close(one, want[1], atol=1e-5 * want.abs().max(), rtol=0)
            torch.set_num_threads(1)
            assert torch.equal(layer(x[1]), one)
            torch.set_num_threads(threads)
            assert torch.equal(layer(x), want)
        assert layer(x[1].clone().requires_grad_()).grad_fn is not None


def test_kernels_join_torch_openmp_team_or_keep_their_own(tmp_path, monkeypatch, threads):
    """Where torch runs on libgomp, quant.c is linked against that very file (its products of
    several rows run on torch's team); without it, quant.c is built without OpenMP and its own
    pool runs them: the same numbers either way."""
    assert quant.torch_openmp() is not None  # torch's CPU wheels run on libgomp
    assert b"GOMP_parallel" in quant.built(quant.SOURCE, openmp=True).read_bytes()
    monkeypatch.setattr(quant, "torch_openmp", lambda: None)
    monkeypatch.setattr(quant, "_cache_dir", lambda: tmp_path)
    alone, workers = quant.kernels.__wrapped__(), len(pool_threads())
    assert b"GOMP_parallel" not in quant.built(quant.SOURCE, openmp=True).read_bytes()
    w, x = torch.randn(1024, 512), torch.randn(5, 512)
    calls = [
        quant.KernelCall(lib, [StoredTensor(Q.F32, (1024, 512), w)])
        for lib in (quant.kernels(), alone)
    ]
    assert torch.equal(calls[0](x), calls[1](x))
    for _ in range(200):  # a new worker names itself once it runs
        if len(pool_threads()) >= workers + threads - 1:  # the second library's own pool
            break
        time.sleep(0.01)
    assert len(pool_threads()) >= workers + threads - 1
