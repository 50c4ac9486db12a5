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
    """On the CI machines (x86-64 AVX2, torch's MKL) every layer of both models, at every row
    count cl_linear takes, sums in blocks of 192: if the probe stopped finding it, a sentence's
    pass would silently fall back to F.linear. A product split over 4 threads so that MKL's
    small-row path gets 3 rows each (a narrow weight) is found not to match and keeps F.linear."""
    layers = [m for m in minilm.model.blocks[0].modules() if isinstance(m, torch.nn.Linear)]
    layers += [m for m in smollm2.model.blocks[0].modules() if isinstance(m, torch.nn.Linear)]
    for layer in layers:
        for rows in (12, 13, 37, 96):
            assert quant.blas_block(layer.weight, layer.bias, rows) == 192, (layer, rows)
    narrow = torch.randn(37, 400)
    assert quant.blas_block(narrow, None, 12) == (None if threads == 4 else 192)


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


def test_linear_layers_route_sentence_rows_through_it(smollm2, minilm, monkeypatch):
    """12 to 96 rows with no gradient go through cl_linear (bias or not) and equal F.linear bit
    for bit; fewer or more rows, or a gradient to record, stay F.linear."""
    calls = []
    real = quant.blas_linear
    monkeypatch.setattr(quant, "blas_linear", lambda *a: calls.append(a[1].shape) or real(*a))
    layers = [smollm2.model.blocks[0].attn.qkv, minilm.model.blocks[0].mlp.up]
    for layer in layers:
        for rows, routed in ((11, False), (12, True), (40, True), (96, True), (97, False)):
            x = torch.randn(1, rows, layer.in_features)
            with torch.no_grad():
                before = len(calls)
                assert torch.equal(layer(x), F.linear(x, layer.weight, layer.bias))
                assert (len(calls) > before) == routed, (layer, rows)
        before = len(calls)
        assert layer(x[:, :20].clone().requires_grad_()).grad_fn is not None
        assert len(calls) == before


def test_sentence_pass_is_f_linear_bit_for_bit(minilm, smollm2, smollm2_reference, monkeypatch):
    """A sentence's pass through cl_linear gives exactly the hidden states it gives through
    F.linear; for SmolLM2 those are exactly transformers' own."""
    text = "The animal didn't cross the street because it was too wide."
    fast = [minilm.trace(text).hidden_states, smollm2.trace(text).hidden_states]
    assert all(h.shape[1] in quant.BLAS_ROWS for h in fast)
    monkeypatch.setattr(quant, "BLAS_ROWS", range(0))
    slow = [minilm.trace(text).hidden_states, smollm2.trace(text).hidden_states]
    assert all(torch.equal(a, b) for a, b in zip(fast, slow, strict=True))
    ref, tok = smollm2_reference
    with torch.no_grad():
        out = ref(torch.tensor([tok(text)["input_ids"]]), output_hidden_states=True)
    assert torch.equal(fast[1], torch.stack(out.hidden_states)[:, 0])
