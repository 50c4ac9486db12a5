"""`cl_linear` (quant.c): float32 products of 12 to 96 rows summed in the order MKL's sgemm sums
them, so a sentence's pass is faster than with F.linear and still equals it bit for bit."""

import pytest
import torch
import torch.nn.functional as F

from contextlens.nn import quant

# k around the block of 192: one block, two halves (193..383), blocks of 192 and a last one
WIDTHS = [1, 100, 191, 192, 193, 200, 301, 383, 384, 385, 400, 577, 1000, 1536]
ROWS = [12, 13, 16, 17, 25, 40, 64, 100]


@pytest.fixture(params=[1, 2, 4], ids=lambda n: f"{n}-threads")
def threads(request):
    """Torch's thread count (F.linear's and the kernel's) for the test, then restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


def test_probe_finds_mkl_block_for_model_shapes(threads, minilm, smollm2):
    """On the CI machines (x86-64 AVX2, torch's MKL) every layer shape of both models, at the
    row counts cl_linear takes, sums in blocks of 192: if the probe stopped finding it, a
    sentence's pass would silently fall back to F.linear."""
    layers = [m for m in minilm.model.blocks[0].modules() if isinstance(m, torch.nn.Linear)]
    layers += [m for m in smollm2.model.blocks[0].modules() if isinstance(m, torch.nn.Linear)]
    for layer in layers:
        for rows in (12, 13, 37, 96):
            shape = (layer.out_features, layer.in_features, layer.bias is not None)
            assert quant.blas_block(rows, *shape) == 192, (layer, rows)


def test_an_order_the_probe_cannot_match_keeps_f_linear(monkeypatch):
    """Where no candidate block reproduces F.linear (here: only 256 is offered), the probe says
    so and the layer runs F.linear; a zero weight (every order gives zeros) cannot fool it."""
    monkeypatch.setattr(quant, "_blas_blocks", {})
    monkeypatch.setattr(quant, "BLAS_BLOCKS", (256,))
    layer = quant.Linear(400, 48)
    x = torch.randn(16, 400)
    with torch.no_grad():
        torch.nn.init.zeros_(layer.weight)
        assert torch.equal(layer(x), F.linear(x, layer.weight, layer.bias))
    assert quant.blas_block(16, 48, 400, True) is None
    monkeypatch.setattr(quant, "BLAS_BLOCKS", (256, 192))
    monkeypatch.setattr(quant, "_blas_blocks", {})
    assert quant.blas_block(16, 48, 400, True) == 192


@pytest.mark.parametrize("portable", [False, True], ids=["native-cpu", "portable-c"])
@pytest.mark.parametrize("threads", [1, 2], indirect=True, ids=lambda n: f"{n}-threads")
def test_products_equal_f_linear_bit_for_bit(threads, portable):
    """Any width and row count from 12 rows, narrow weights included, at this machine's thread
    counts; the scalar C build (fmaf chains) gives the same bits as the AVX2 one."""
    lib = quant.kernels(portable)
    gen = torch.Generator().manual_seed(threads)
    for k in WIDTHS:
        for m in ROWS if k % 2 else ROWS[::3]:
            n = 37 if k % 3 else 64
            x, w, b = (torch.randn(*s, generator=gen) for s in ((m, k), (n, k), (n,)))
            for bias in (b, None):
                got = quant.blas_linear(lib, x, w, bias, 192)
                assert torch.equal(got, F.linear(x, w, bias)), (m, k, n, bias is None)


def counted(monkeypatch) -> list:
    """The row counts of the `blas_linear` calls `Linear` makes from now on (probes included:
    warm the probe's cache first)."""
    calls, real = [], quant.blas_linear

    def blas_linear(lib, x, *rest):
        calls.append(x.numel() // x.shape[-1])
        return real(lib, x, *rest)

    monkeypatch.setattr(quant, "blas_linear", blas_linear)
    return calls


def test_linear_layers_route_sentence_rows_through_it(smollm2, minilm, monkeypatch):
    """12 to 96 rows with no gradient go through cl_linear (bias or not), once per product, and
    equal F.linear bit for bit; fewer or more rows, or a gradient to record, stay F.linear."""
    layers = [smollm2.model.blocks[0].attn.qkv, minilm.model.blocks[0].mlp.up]
    cases = ((11, False), (12, True), (40, True), (96, True), (97, False))
    for layer in layers:  # the probe's first use of each shape and row count
        for rows, _ in cases:
            quant.blas_block(rows, layer.out_features, layer.in_features, layer.bias is not None)
    calls = counted(monkeypatch)
    for layer in layers:
        for rows, routed in cases:
            x = torch.randn(1, rows, layer.in_features)
            with torch.no_grad():
                calls.clear()
                assert torch.equal(layer(x), F.linear(x, layer.weight, layer.bias))
                assert calls == ([rows] if routed else []), (layer, rows)
        calls.clear()
        assert layer(x[:, :20].clone().requires_grad_()).grad_fn is not None
        assert calls == []


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
def test_batches_views_and_odd_layers_equal_f_linear(minilm, monkeypatch):
    """A batch [2, 8, in] routes as 16 rows; a non-contiguous batch (for which F.linear adds the
    bias last) keeps F.linear; a float64 weight fails as F.linear does; a float32 model under a
    float64 default dtype works; a layer with no outputs gives an empty result."""
    layer = minilm.model.blocks[0].mlp.up
    for rows in (16, 20):
        quant.blas_block(rows, layer.out_features, layer.in_features, True)
    calls = counted(monkeypatch)
    wide = torch.randn(2, 8, 2 * layer.in_features)
    with torch.no_grad():
        for x, routed in ((wide[..., : layer.in_features].contiguous(), True),
                          (wide[..., : layer.in_features], False)):  # fmt: skip
            calls.clear()
            assert torch.equal(layer(x), F.linear(x, layer.weight, layer.bias))
            assert calls == ([16] if routed else [])
        double = quant.Linear(layer.in_features, 8, dtype=torch.float64)
        with pytest.raises(RuntimeError):
            double(torch.randn(16, layer.in_features))
        before = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        try:
            x = torch.randn(20, layer.in_features, dtype=torch.float32)
            assert torch.equal(layer(x), F.linear(x, layer.weight, layer.bias))
        finally:
            torch.set_default_dtype(before)
        assert quant.Linear(384, 0)(torch.randn(16, 384)).shape == (16, 0)


def test_sentence_pass_is_f_linear_bit_for_bit(minilm, smollm2, smollm2_reference, monkeypatch):
    """A sentence's pass through cl_linear gives exactly the hidden states it gives through
    F.linear; for SmolLM2 those are exactly transformers' own."""
    text = "The animal didn't cross the street because it was too wide."
    calls = counted(monkeypatch)
    fast = [minilm.trace(text).hidden_states, smollm2.trace(text).hidden_states]
    assert all(h.shape[1] in quant.BLAS_ROWS for h in fast)
    assert len(calls) >= 4 * 6 + 4 * 30  # every layer's products of both models
    calls.clear()
    monkeypatch.setattr(quant, "BLAS_ROWS", range(0))
    slow = [minilm.trace(text).hidden_states, smollm2.trace(text).hidden_states]
    assert all(torch.equal(a, b) for a, b in zip(fast, slow, strict=True)) and not calls
    ref, tok = smollm2_reference
    with torch.no_grad():
        out = ref(torch.tensor([tok(text)["input_ids"]]), output_hidden_states=True)
    assert torch.equal(fast[1], torch.stack(out.hidden_states)[:, 0])
