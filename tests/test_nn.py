"""The shared building blocks against their formulas, and fused vs explicit attention."""

import math

import pytest
import torch

from contextlens.nn import (
    MLP,
    Attention,
    KVCache,
    Pass,
    RMSNorm,
    RoPE,
    attend,
    attention_mask,
    column_major,
    rope_angle,
    sinusoidal_positions,
)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("heads,kv_heads", [(4, 4), (6, 2)])
def test_fused_and_explicit_attention_agree(causal, padded, heads, kv_heads):
    torch.manual_seed(0)
    b, s, d = 3, 11, 16
    q = torch.randn(b, heads, s, d)
    k, v = torch.randn(b, kv_heads, s, d), torch.randn(b, kv_heads, s, d)
    pad = torch.ones(b, s, dtype=torch.bool)
    if padded:
        pad[1, 7:] = False
        pad[2, 4:] = False
    mask = attention_mask(pad, causal, s, s, torch.float32)
    fused, none = attend(q, k, v, mask, need_weights=False)
    explicit, weights = attend(q, k, v, mask, need_weights=True)
    assert none is None
    torch.testing.assert_close(fused, explicit, atol=1e-5, rtol=0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(b, heads, s), atol=1e-6, rtol=0)
    if causal:
        assert weights.triu(1).abs().max() == 0
    if padded:
        assert weights[2, :, :, 4:].abs().max() == 0  # padding gets no attention


def test_explicit_attention_is_the_formula():
    torch.manual_seed(1)
    q, k, v = torch.randn(1, 1, 4, 8), torch.randn(1, 1, 4, 8), torch.randn(1, 1, 4, 8)
    out, w = attend(q, k, v, need_weights=True)
    scores = q[0, 0] @ k[0, 0].T / math.sqrt(8)
    expected_w = torch.exp(scores) / torch.exp(scores).sum(-1, keepdim=True)
    torch.testing.assert_close(w[0, 0], expected_w)
    torch.testing.assert_close(out[0, 0], expected_w @ v[0, 0])


def test_grouped_query_heads_share_keys():
    """Query heads 0–2 use KV head 0 and heads 3–5 use KV head 1 (Hugging Face's repeat_kv)."""
    torch.manual_seed(2)
    q, k, v = torch.randn(1, 6, 5, 4), torch.randn(1, 2, 5, 4), torch.randn(1, 2, 5, 4)
    _, w = attend(q, k, v, need_weights=True)
    for h in range(6):
        _, alone = attend(
            q[:, h : h + 1], k[:, h // 3 : h // 3 + 1], v[:, h // 3 : h // 3 + 1], need_weights=True
        )
        torch.testing.assert_close(w[:, h], alone[:, 0])


def test_sinusoidal_positions_match_the_paper():
    table = sinusoidal_positions(50, 16)
    for pos in (0, 1, 7, 49):
        for i in range(8):
            angle = pos / 10000 ** (2 * i / 16)
            assert table[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


def test_rope_rotates_each_pair_by_its_angle():
    hd, theta = 8, 10000.0
    rope = RoPE(hd, theta, max_positions=64)
    x = torch.randn(1, 1, 1, hd)
    for pos in (0, 3, 17):
        y = rope(x, torch.tensor([pos]))[0, 0, 0]
        for i in range(hd // 2):
            a = rope_angle(pos, i, hd, theta)
            x1, x2 = x[0, 0, 0, i].item(), x[0, 0, 0, i + hd // 2].item()
            assert y[i].item() == pytest.approx(x1 * math.cos(a) - x2 * math.sin(a), abs=1e-5)
            assert y[i + hd // 2].item() == pytest.approx(
                x1 * math.sin(a) + x2 * math.cos(a), abs=1e-5
            )


def test_rope_scores_depend_only_on_distance():
    rope = RoPE(16, 10000.0, max_positions=128)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)

    def score(m: int, n: int) -> float:
        return (rope(q, torch.tensor([m])) * rope(k, torch.tensor([n]))).sum().item()

    assert score(10, 4) == pytest.approx(score(60, 54), abs=1e-4)
    assert score(10, 4) != pytest.approx(score(10, 5), abs=1e-4)


def test_rmsnorm_formula():
    x = torch.randn(3, 10)
    n = RMSNorm(10, eps=1e-6)
    with torch.no_grad():
        n.weight.copy_(torch.linspace(0.5, 2, 10))
    expected = x / torch.sqrt((x**2).mean(-1, keepdim=True) + 1e-6) * n.weight
    torch.testing.assert_close(n(x), expected)


def test_swiglu_is_gate_times_up():
    mlp = MLP(8, 12, "silu", gated=True, bias=False)
    x = torch.randn(2, 8)
    gate, up = mlp.up.weight[:12], mlp.up.weight[12:]
    expected = mlp.down(torch.nn.functional.silu(x @ gate.T) * (x @ up.T))
    torch.testing.assert_close(mlp(x), expected)


def test_kv_cache_matches_full_attention():
    torch.manual_seed(3)
    rope = RoPE(8, 10000.0, 32)
    attn = Attention(32, 4, 2, bias=False, rope=rope).eval()
    x = torch.randn(1, 9, 32)
    full = attn(x, Pass(torch.arange(9), attention_mask(None, True, 9, 9, torch.float32)))
    cache = KVCache(1, 1, 2, 8, 16)
    mask = attention_mask(None, True, 5, 5, torch.float32)
    first = attn(x[:, :5], Pass(torch.arange(5), mask, cache))
    cache.length = 5
    steps = [first]
    for i in range(5, 9):
        steps.append(attn(x[:, i : i + 1], Pass(torch.arange(i, i + 1), None, cache)))
        cache.length += 1
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=0)


def test_column_major_keeps_values_and_shape_and_changes_only_the_layout():
    w = torch.randn(6, 4)
    c = column_major(w)
    assert c.shape == w.shape and torch.equal(c, w)
    assert c.t().is_contiguous() and not c.is_contiguous()
    assert column_major(c) is c  # already in [in, out] order: no copy
    x = torch.randn(3, 4)
    torch.testing.assert_close(torch.nn.functional.linear(x, c), x @ w.T)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_cache_and_mask_take_the_dtype_asked_for(dtype):
    cache = KVCache(2, 1, 2, 8, 16, dtype=dtype)
    assert {t.dtype for t in cache.k + cache.v} == {dtype}
    mask = attention_mask(None, True, 4, 4, dtype)
    assert mask.dtype == dtype and mask[0, 0, 0, 1] == torch.finfo(dtype).min
