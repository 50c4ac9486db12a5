"""Bad input: one clear sentence naming the problem and the fix, never a traceback."""

import json
import shutil

import pytest
import torch

import contextlens as cl
from contextlens import ContextlensError


def test_empty_text(minilm):
    for bad in ("", "   \n"):
        with pytest.raises(ContextlensError, match="text is empty"):
            minilm.trace(bad)
    with pytest.raises(ContextlensError, match=r"text is empty \(item 1\)"):
        minilm.embed(["fine", ""])
    with pytest.raises(ContextlensError, match="no texts given"):
        minilm.embed([])


def test_text_over_the_limit_names_it_and_truncate_works(minilm):
    long = "word " * 600
    with pytest.raises(ContextlensError, match="over minilm's limit of 512.*truncate=True"):
        minilm.trace(long)
    t = minilm.trace(long, truncate=True, attentions=False)
    assert len(t.ids) == 512 and t.tokens[0] == "[CLS]" and t.tokens[-1] == "[SEP]"
    with pytest.raises(ContextlensError, match="limit of 256"):  # the embedding model's length
        minilm.embed("word " * 300)


def test_unknown_model_lists_known_ones():
    with pytest.raises(ContextlensError, match="unknown model 'gpt-17'.*minilm, smollm2, glove-50"):
        cl.load("gpt-17")


def test_layer_out_of_range(minilm):
    with pytest.raises(
        ContextlensError, match=r"layer 9 is out of range; minilm has layers 0\.\.5"
    ):
        minilm.trace("hello", layers=[9])


@pytest.fixture
def model_copy(tmp_path, minilm_dir):
    d = tmp_path / "model"
    shutil.copytree(minilm_dir, d)
    return d


def test_missing_files(model_copy):
    (model_copy / "model.safetensors").unlink()
    with pytest.raises(ContextlensError, match=r"no \*\.safetensors file"):
        cl.load(model_copy)
    (model_copy / "config.json").unlink()
    with pytest.raises(ContextlensError, match="config.json is missing"):
        cl.load(model_copy)


def test_missing_tokenizer(model_copy):
    (model_copy / "tokenizer.json").unlink()
    with pytest.raises(ContextlensError, match="tokenizer.json"):
        cl.load(model_copy)


def test_corrupt_files(model_copy):
    weights = model_copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:10_000])  # cut short
    with pytest.raises(ContextlensError, match="corrupt or truncated"):
        cl.load(model_copy)
    (model_copy / "config.json").write_text("{not json")
    with pytest.raises(ContextlensError, match="not valid JSON"):
        cl.load(model_copy)


def test_wrong_architecture_and_shapes(model_copy):
    cfg = json.loads((model_copy / "config.json").read_text())
    (model_copy / "config.json").write_text(json.dumps({**cfg, "model_type": "mamba"}))
    with pytest.raises(ContextlensError, match="architecture 'mamba' is not supported"):
        cl.load(model_copy)
    (model_copy / "config.json").write_text(json.dumps({**cfg, "hidden_size": 768}))
    with pytest.raises(ContextlensError, match="has shape"):
        cl.load(model_copy)


def test_not_a_model(tmp_path):
    with pytest.raises(ContextlensError, match="not a model directory"):
        cl.load(tmp_path)


def test_metrics_bad_input():
    with pytest.raises(ContextlensError, match="different sizes"):
        cl.cosine([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ContextlensError, match="temperature must be > 0"):
        cl.softmax([1, 2], temperature=0)


def test_metrics_values_and_batch_shapes():
    torch.testing.assert_close(
        cl.softmax([3, 6, 7]), torch.tensor([0.0132, 0.2654, 0.7214]), atol=1e-4, rtol=0
    )
    assert cl.softmax([3, 6, 7], temperature=100).max() < 0.35  # hot: nearly uniform
    a, b = torch.randn(4, 5, 8), torch.randn(4, 5, 8)
    assert cl.cosine(a, b).shape == (4, 5)
    assert cl.cosine(a, b[0, 0]).shape == (4, 5)  # broadcast one vector against a batch
    assert cl.cosine([1, 0], [0, 1]).item() == 0
    assert cl.euclidean([0, 0], [3, 4]).item() == 5
    assert cl.manhattan([0, 0], [3, -4]).item() == 7
    assert cl.dot([1, 2], [3, 4]).item() == 11
    assert cl.l1_norm([3, -4]).item() == 7 and cl.l2_norm([3, 4]).item() == 5
    torch.testing.assert_close(cl.cosine_matrix(a[0], b[0]), cl.cosine(a[0][:, None], b[0][None]))
