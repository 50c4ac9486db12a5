"""all-MiniLM-L6-v2 from scratch vs transformers' BertModel and sentence-transformers."""

import pytest
import torch

TEXTS = [
    "The animal didn't cross the street because it was too wide.",
    "Hi",
    "Wait... what?! (Really) -- yes: 100% [sure]; #1 @home & co.",
    "Déjà vu: naïve café owners in São Paulo say „straße“ — 東京 と 北京 🙂 ünïcödé.",
    " ".join(["Attention lets every token look at every other token, layer after layer."] * 30),
]


@pytest.fixture(scope="module")
def reference(minilm_dir):
    from transformers import AutoTokenizer, BertModel

    tok = AutoTokenizer.from_pretrained(minilm_dir)
    model = BertModel.from_pretrained(minilm_dir, attn_implementation="eager").eval()
    return tok, model


def test_token_ids_equal_transformers(minilm, reference):
    tok, _ = reference
    for text in TEXTS:
        assert minilm.tokenize(text).ids == tok(text)["input_ids"], text
    assert len(minilm.tokenize(TEXTS[-1]).ids) > 400  # the long text really is long


@pytest.mark.parametrize("text", TEXTS)
def test_hidden_states_and_attentions_equal_bertmodel(minilm, reference, text):
    _, model = reference
    t = minilm.trace(text)
    with torch.no_grad():
        out = model(torch.tensor([t.ids]), output_hidden_states=True, output_attentions=True)
    theirs_h = torch.stack(out.hidden_states)[:, 0]  # [7, s, 384]
    theirs_a = torch.stack(out.attentions)[:, 0]  # [6, 12, s, s]
    assert t.hidden_states.shape == theirs_h.shape == (7, len(t.ids), 384)
    assert t.attentions.shape == theirs_a.shape == (6, 12, len(t.ids), len(t.ids))
    torch.testing.assert_close(t.hidden_states, theirs_h, atol=1e-4, rtol=0)
    torch.testing.assert_close(t.attentions, theirs_a, atol=1e-4, rtol=0)
    torch.testing.assert_close(t.attentions.sum(-1), torch.ones(6, 12, len(t.ids)))


def test_padded_batch_equals_bertmodel(minilm, reference):
    tok, model = reference
    texts = TEXTS[:4]
    traces = minilm.trace(texts)
    batch = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**batch, output_hidden_states=True, output_attentions=True)
    for b, t in enumerate(traces):
        n = len(t.ids)
        h = torch.stack(out.hidden_states)[:, b, :n]
        a = torch.stack(out.attentions)[:, b, :, :n, :n]
        torch.testing.assert_close(t.hidden_states, h, atol=1e-4, rtol=0)
        torch.testing.assert_close(t.attentions, a, atol=1e-4, rtol=0)
        # and the same as running the text alone
        alone = minilm.trace(t.text)
        torch.testing.assert_close(t.hidden_states, alone.hidden_states, atol=1e-5, rtol=0)


def test_embed_equals_sentence_transformers(minilm, minilm_dir):
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(minilm_dir), device="cpu")
    texts = TEXTS[:4] + ["a sentence", "another", "The capital of France is Paris."] * 5
    theirs = st.encode(texts, convert_to_tensor=True)
    ours = minilm.embed(texts, batch_size=8)
    assert ours.shape == (len(texts), 384)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    # a text over the 256 tokens it was trained with: truncated the same way when asked
    long = TEXTS[-1]
    torch.testing.assert_close(
        minilm.embed(long, truncate=True),
        st.encode(long, convert_to_tensor=True),
        atol=1e-5,
        rtol=0,
    )
    torch.testing.assert_close(minilm.embed("a sentence"), ours[4], atol=1e-6, rtol=0)


def test_recording_is_opt_in(minilm):
    t = minilm.trace(TEXTS[0], hidden_states=False, attentions=False)
    assert t.hidden_states is None and t.attentions is None
    t = minilm.trace(TEXTS[0], attentions=True, hidden_states=False, layers=[2, 5], qkv=True)
    full = minilm.trace(TEXTS[0], qkv=True)
    assert t.attentions.shape[0] == 2 and t.layers == [2, 5]
    torch.testing.assert_close(t.attentions, full.attentions[[2, 5]])
    assert full.qkv.shape == (6, 3, 12, len(full.ids), 32)
    q, k = full.qkv[0, 0], full.qkv[0, 1]  # the recorded Q and K give the recorded weights
    torch.testing.assert_close(
        (q @ k.transpose(-1, -2) / 32**0.5).softmax(-1), full.attentions[0], atol=1e-5, rtol=0
    )
