"""Models in bfloat16 / float16 and on other devices: everything a pass makes follows the model.

Tolerances against the same model in float32 (measured margins in brackets):
- minilm, bfloat16: every hidden state's cosine ≥ 0.999 [0.99987], attention weights within
  0.05 [0.015], sentence embeddings' cosine ≥ 0.999 [0.99994];
- minilm, float16: cosine ≥ 0.9995 [0.99995], attention within 0.02 [0.007], embeddings ≥ 0.9999;
- smollm2, bfloat16: the same top-1 next token for every text, the same 16 greedy tokens;
- tiny Llama (random weights), both: logits within 5% (bf16) / 1% (fp16) of their largest value.
"""

import pytest
import torch
import torch.nn.functional as F
from tiny import save_tiny

import contextlens as cl
from contextlens import ContextlensError
from contextlens.lm import available_devices, resolve_device, resolve_dtype

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "A bank by the river.",
    "Attention is all you need, they said, and it was.",
]
LOOSE = {  # dtype -> (hidden-state cosine, attention abs, embedding cosine)
    torch.bfloat16: (0.999, 0.05, 0.999),
    torch.float16: (0.9995, 0.02, 0.9999),
}


@pytest.fixture(scope="module")
def minilm_fp32():
    m = cl.load("minilm")
    return m.trace(TEXTS, qkv=True), m.embed(TEXTS)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_encoder_trace_and_embed_in_half_precision(minilm_fp32, dtype):
    ref_traces, ref_emb = minilm_fp32
    m = cl.load("minilm").to(dtype=dtype)
    assert m.dtype == dtype and m.device.type == "cpu"
    traces = m.trace(TEXTS, qkv=True)
    cos_min, att_tol, emb_min = LOOSE[dtype]
    for ref, t in zip(ref_traces, traces, strict=True):
        assert {t.hidden_states.dtype, t.attentions.dtype, t.qkv.dtype} == {dtype}
        cos = F.cosine_similarity(t.hidden_states.float(), ref.hidden_states, dim=-1)
        assert cos.min() >= cos_min
        assert (t.attentions.float() - ref.attentions).abs().max() <= att_tol
        torch.testing.assert_close(  # each row is still a distribution
            t.attentions.float().sum(-1), torch.ones(t.attentions.shape[:-1]), atol=2e-2, rtol=0
        )
    emb = m.embed(TEXTS)
    assert emb.dtype == torch.float32
    assert F.cosine_similarity(emb, ref_emb).min() >= emb_min


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    return save_tiny("llama", tmp_path_factory.mktemp("llama"))


@pytest.mark.parametrize("dtype,tol", [(torch.bfloat16, 0.05), (torch.float16, 0.01)])
def test_decoder_cache_logits_and_generation_in_half_precision(tiny_llama, dtype, tol):
    prompts = ["The capital of France is", "attention attention"]
    ref = cl.load(tiny_llama).next_token_logits(prompts)
    m = cl.load(tiny_llama).to(dtype=dtype)
    cache = m.model.new_cache(1, 8)
    assert {t.dtype for t in cache.k + cache.v} == {dtype}
    logits = m.next_token_logits(prompts)
    assert logits.dtype == torch.float32
    assert (logits - ref).abs().max() <= tol * ref.abs().max()
    t = m.trace(prompts[0])
    assert t.hidden_states.dtype == dtype and t.attentions.triu(1).abs().max() == 0
    ids = m.tokenize(prompts[0]).ids
    new = list(m.generate_ids(ids, 12, stop_at_eos=False))
    assert len(new) == 12
    assert new[0] == int(logits[0].argmax())  # the first step is the prompt's own prediction
    sampled = [list(m.generate_ids(ids, 6, temperature=0.8, seed=3)) for _ in range(2)]
    assert sampled[0] == sampled[1]


def test_smollm2_in_bfloat16_predicts_and_generates_like_float32():
    m = cl.load("smollm2")
    prompts = ["The capital of France is", "def fibonacci(n):\n    if n < 2:\n        return n"]
    ref_top = m.next_token_logits(TEXTS).argmax(-1)
    ref_gen = [list(m.generate_ids(m.tokenize(p).ids, 8, stop_at_eos=False)) for p in prompts]
    m.to(dtype=torch.bfloat16)
    assert torch.equal(m.next_token_logits(TEXTS).argmax(-1), ref_top)
    for p, ref in zip(prompts, ref_gen, strict=True):
        assert list(m.generate_ids(m.tokenize(p).ids, 8, stop_at_eos=False)) == ref
    t = m.trace(prompts[0])
    assert t.hidden_states.dtype == torch.bfloat16 and t.attentions.shape[0] == 30


def test_to_cuda_works_where_cuda_exists_and_names_what_does_otherwise():
    m = cl.load("minilm")
    if torch.cuda.is_available():
        t = m.to(device="cuda").trace("hello world")
        assert t.hidden_states.device.type == "cuda"
    else:
        with pytest.raises(ContextlensError, match=r"'cuda'.*available here: cpu$"):
            m.to(device="cuda")
        assert m.device.type == "cpu"  # nothing moved
    missing = f"cuda:{torch.cuda.device_count()}"  # one past the last GPU: never there
    with pytest.raises(ContextlensError, match="available here: cpu"):
        resolve_device(missing)


@pytest.mark.parametrize("bad", ["tpu", "gpu0", 3.5])
def test_unknown_devices_are_one_line_errors(bad):
    with pytest.raises(ContextlensError, match="unknown device") as e:
        resolve_device(bad)
    assert "\n" not in str(e.value) and "cpu" in str(e.value)
    assert available_devices()[0] == "cpu"


def test_dtypes_by_object_or_name_and_the_rest_refused():
    assert resolve_dtype(torch.bfloat16) is torch.bfloat16
    assert resolve_dtype("bf16") is torch.bfloat16
    assert resolve_dtype("torch.float16") is torch.float16
    assert resolve_dtype("float32") is torch.float32
    for bad in ("int8", torch.int8, torch.float64):
        with pytest.raises(ContextlensError, match="float32, bfloat16, float16"):
            resolve_dtype(bad)
