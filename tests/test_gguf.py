"""GGUF files: SmolLM2's Q4_1 file read by us and by transformers (config, every tensor, token
ids), each dequantisation type on small files written with gguf.GGUFWriter, a GPT-2 file written
the way llama.cpp's converter writes one, and bad files."""

import numpy as np
import pytest
import torch
from gguf import (
    GGML_QUANT_SIZES,
    MODEL_ARCH,
    GGMLQuantizationType,
    GGUFWriter,
    get_tensor_name_map,
    quants,
)
from tiny import finish, write_bpe_vocab

import contextlens as cl
from contextlens import ContextlensError
from contextlens.io.catalog import CATALOG
from contextlens.io.gguf import byte_spelling, read_gguf, read_tensors, unpermute_rotary

Q = GGMLQuantizationType
SMOLLM2 = CATALOG["smollm2"].path()

TEXTS = [
    "The capital of France is",
    "Hello, world! It's they'll WE'RE (nested [brackets]) & a/b; x=y+1?",
    "Numbers: 0 7 42 123456789 3.14159 1,000,000 -17 2024-11-22 x2 v1.2.3",
    "Déjà vu — naïve café, 東京, Москва, ﷺ, 🙂👍🏽 🇫🇷",
    "   leading spaces, internal    runs,\ttabs\t\tand trailing   ",
    "line one\nline two\n\n\nthree blank\r\nwindows\n",
    "def f(x):\n    return x ** 2  # square\n",
    "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n"
    "<|im_start|>assistant\n",
    "<|endoftext|>two<|endoftext|> <repo_name>glued<file_sep>",
    "",
    " ",
]


@pytest.fixture(scope="module")
def smollm2_file():
    return read_gguf(SMOLLM2)


# ---- SmolLM2 against transformers -----------------------------------------------------------


def test_config_equals_transformers(smollm2_file, smollm2_reference):
    config = smollm2_file[0]
    ref = smollm2_reference[0].config  # what transformers read from the same file
    theirs = ref.to_dict() | ref.rope_parameters  # transformers 5 keeps rope_theta in there
    assert config == {k: theirs[k] for k in config}
    assert config["num_key_value_heads"] == 3 and config["max_position_embeddings"] == 8192


def test_every_tensor_equals_transformers(smollm2_file, smollm2_reference):
    tensors = smollm2_file[1]
    theirs = smollm2_reference[0].state_dict()
    # the file has no output.weight: the LM head is the embedding (transformers ties it)
    assert set(theirs) - set(tensors) == {"lm_head.weight"} and set(tensors) <= set(theirs)
    assert torch.equal(theirs["lm_head.weight"], tensors["model.embed_tokens.weight"])
    for name, t in tensors.items():
        assert t.dtype == torch.float32 and t.is_contiguous(), name
        torch.testing.assert_close(t, theirs[name], atol=0, rtol=0, msg=name)


@pytest.mark.parametrize("add_special_tokens", [True, False])
def test_token_ids_equal_transformers(smollm2_file, smollm2_reference, add_special_tokens):
    tok, ref = smollm2_file[2], smollm2_reference[1]
    for text in TEXTS:
        ours = tok.tok.encode(text, add_special_tokens=add_special_tokens)
        theirs = ref(text, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
        assert ours.ids == theirs["input_ids"], text
        assert ours.offsets == [tuple(o) for o in theirs["offset_mapping"]], text
        assert tok.decode(ours.ids) == ref.decode(theirs["input_ids"]) == text
    assert [e.ids for e in tok.encode(TEXTS)] == ref(TEXTS)["input_ids"]


def test_digits_are_split_off_first_as_in_llama_cpp(smollm2_file):
    """llama.cpp's "smollm" pre-tokenizer (like SmolLM2's own tokenizer.json: Digits, then
    ByteLevel) cuts every digit out before the GPT-2 regex, so a run of spaces before a digit
    stays one piece. transformers' GGUF tokenizer skips that step and gives "Ġ", "Ġ", "1" here."""
    enc = smollm2_file[2].encode(["a  1\n\n2 345"])[0]
    assert enc.tokens == ["a", "ĠĠ", "1", "ĊĊ", "2", "Ġ", "3", "4", "5"]


def test_special_tokens_and_chat_template(smollm2_file, smollm2_reference):
    tok, ref = smollm2_file[2], smollm2_reference[1]
    assert (tok.bos_id, tok.eos_ids) == (1, (2,))  # <|im_start|>, <|im_end|>
    assert tok.chat_template == ref.chat_template and "<|im_start|>" in tok.chat_template
    assert tok.encode(["<|im_end|>"])[0].ids == [2]
    assert tok.vocab_size == 49152


def test_rotary_unpermute_inverts_llama_cpp_permute():
    """llama.cpp's converter (convert_hf_to_gguf.py, LlamaModel.permute), written out here."""

    def permute(w: torch.Tensor, n_heads: int) -> torch.Tensor:
        return w.reshape(n_heads, 2, w.shape[0] // n_heads // 2, *w.shape[1:]).swapaxes(1, 2)

    for n_heads, shape in ((9, (576, 576)), (3, (192, 576)), (3, (192,))):
        w = torch.randn(shape)
        assert torch.equal(unpermute_rotary(permute(w, n_heads).reshape(shape), n_heads), w)
    w = torch.arange(8.0)  # one head of 8: llama.cpp pairs rows (0,1), (2,3)…; HF pairs (0,4)…
    assert unpermute_rotary(w, 1).tolist() == [0, 2, 4, 6, 1, 3, 5, 7]


# ---- dequantisation, one type at a time -----------------------------------------------------


def write_tensor(path, data: np.ndarray, kind: GGMLQuantizationType, arch: str = "test"):
    writer = GGUFWriter(path, arch)
    writer.add_tensor("w", data, raw_dtype=None if kind == Q.F32 else kind)
    finish(writer)


def transformers_dequantize(raw: np.ndarray, kind: GGMLQuantizationType) -> torch.Tensor:
    """transformers' own torch dequantiser: a second implementation of the block formats."""
    from transformers.integrations.gguf.dequant import dequantize

    return dequantize(torch.from_numpy(raw.reshape(-1).copy()), int(kind))


ROUND_TRIP = {  # type -> the worst error allowed, as a fraction of the block's largest |x|
    Q.F32: 0,
    Q.F16: 2**-10,
    Q.BF16: 2**-7,
    Q.Q8_0: 1 / 127,
    Q.Q4_0: 1 / 7,
    Q.Q4_1: 2 / 15,
}


@pytest.mark.parametrize("kind", ROUND_TRIP, ids=lambda k: k.name)
def test_quantise_write_read_round_trip(tmp_path, kind):
    x = np.random.default_rng(0).standard_normal((6, 256)).astype(np.float32)
    raw = quants.quantize(x, kind)
    write_tensor(tmp_path / "t.gguf", raw, kind)
    got = read_tensors(tmp_path / "t.gguf")["w"]
    assert got.shape == (6, 256) and got.dtype == torch.float32
    if kind in (Q.Q8_0, Q.Q4_0, Q.Q4_1):
        ref = transformers_dequantize(raw, kind).reshape(6, 256)
    else:
        ref = torch.from_numpy(x).to(
            {Q.F32: torch.float32, Q.F16: torch.float16}.get(kind, torch.bfloat16)
        )
    torch.testing.assert_close(got, ref.float(), atol=1e-6, rtol=0)
    blocks = np.abs(x).reshape(-1, 32).max(axis=1, keepdims=True)
    error = np.abs(got.numpy() - x).reshape(-1, 32)
    assert (error <= ROUND_TRIP[kind] * blocks).all()


K_QUANT_SCALES = {  # byte offsets of each block's float16 super-scales (ggml-common.h)
    Q.Q2_K: (80, 82),
    Q.Q3_K: (108,),
    Q.Q4_K: (0, 2),
    Q.Q5_K: (0, 2),
    Q.Q6_K: (208,),
}


@pytest.mark.parametrize("kind", K_QUANT_SCALES, ids=lambda k: k.name)
def test_k_quants_equal_transformers_dequantiser(tmp_path, kind):
    """The gguf package cannot quantise to K-quants: random blocks with sane scales instead."""
    rng = np.random.default_rng(1)
    elems, size = GGML_QUANT_SIZES[kind]
    raw = rng.integers(0, 256, (3, 2 * size), dtype=np.uint8)
    blocks = raw.reshape(-1, size)
    for at in K_QUANT_SCALES[kind]:
        scale = rng.uniform(1e-3, 0.1, len(blocks)).astype(np.float16)
        blocks[:, at : at + 2] = scale.view(np.uint8).reshape(-1, 2)
    write_tensor(tmp_path / "t.gguf", raw, kind)
    got = read_tensors(tmp_path / "t.gguf")["w"]
    assert got.shape == (3, 2 * elems)
    ref = transformers_dequantize(raw, kind).reshape(3, 2 * elems)
    torch.testing.assert_close(got, ref, atol=1e-6, rtol=1e-6)


def test_a_type_the_gguf_package_cannot_dequantise_is_named(tmp_path):
    write_tensor(tmp_path / "t.gguf", np.zeros((2, 40), np.uint8), Q.Q8_1)
    with pytest.raises(ContextlensError, match="tensor 'w' is stored as Q8_1"):
        read_tensors(tmp_path / "t.gguf")


# ---- GPT-2, written as llama.cpp's converter writes it --------------------------------------

GPT2_TOKENS = [*byte_spelling(), "Ġt", "he", "Ġthe", "<|endoftext|>"]
GPT2_MERGES = ["Ġ t", "h e", "Ġt he"]
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def write_gpt2(path, model, *, arch="gpt2", tokenizer="gpt2", drop=(), extra=()):
    """A GGUF of an HF GPT-2 model, named by gguf's own HF -> llama.cpp tensor map, Conv1D
    weights transposed to [out, in] and the LM head written out, as convert_hf_to_gguf.py does."""
    cfg = model.config
    writer = GGUFWriter(path, arch)
    for key, value in {
        "block_count": cfg.n_layer,
        "context_length": cfg.n_positions,
        "embedding_length": cfg.n_embd,
        "feed_forward_length": 4 * cfg.n_embd,
        "attention.head_count": cfg.n_head,
    }.items():
        if key not in drop:
            writer.add_uint32(f"{arch}.{key}", value)
    writer.add_float32(f"{arch}.attention.layer_norm_epsilon", cfg.layer_norm_epsilon)
    write_bpe_vocab(writer, GPT2_TOKENS, GPT2_MERGES, len(GPT2_TOKENS) - 1, model=tokenizer)
    writer.add_add_bos_token(True)
    names = get_tensor_name_map(MODEL_ARCH.GPT2, cfg.n_layer)
    for name, t in model.state_dict().items():
        base, kind = name.rsplit(".", 1)
        if names.get_name(base) is not None:
            t = t.T if name.endswith(CONV1D) else t
            writer.add_tensor(f"{names.get_name(base)}.{kind}", t.contiguous().numpy())
    for name in extra:
        writer.add_tensor(name, np.zeros(4, np.float32))
    finish(writer)
    return path


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    """(transformers model with random weights, its GGUF file)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    end = len(GPT2_TOKENS) - 1
    config = GPT2Config(
        vocab_size=end + 1,
        n_positions=1024,
        n_embd=16,
        n_layer=2,
        n_head=2,
        bos_token_id=end,
        eos_token_id=end,
    )
    model = GPT2LMHeadModel(config).eval()
    for p in model.parameters():  # not the init's zeros and ones: every tensor must tell
        p.data.normal_(0, 0.5)
    return model, write_gpt2(tmp_path_factory.mktemp("gpt2") / "tiny-gpt2.gguf", model)


def test_gpt2_tensors_are_those_of_the_hf_checkpoint(gpt2):
    from transformers import AutoModelForCausalLM

    model, path = gpt2
    config, tensors, _ = read_gguf(path)
    assert config["model_type"] == "gpt2"
    assert (config["n_layer"], config["n_embd"], config["n_head"], config["n_positions"]) == (
        2,
        16,
        2,
        1024,
    )
    ref = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name).state_dict()
    original = model.state_dict()
    assert set(tensors) == set(original)
    for name, t in tensors.items():
        t = t.T if name.endswith(CONV1D) else t  # ours [out, in], Conv1D's [in, out]
        assert torch.equal(t, original[name]) and torch.equal(t, ref[name]), name
    assert tensors["transformer.h.0.attn.c_attn.weight"].shape == (48, 16)  # nn.Linear's


def test_gpt2_tokenizer_equals_transformers_and_adds_bos(gpt2):
    from transformers import AutoTokenizer

    path = gpt2[1]
    tok = read_gguf(path)[2]
    ref = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    for text in ["the then  the\n", "Zürich 42 <|endoftext|>the", ""]:
        ids = tok.encode([text])[0].ids
        assert ids == ref(text)["input_ids"] and ids[0] == len(GPT2_TOKENS) - 1
        assert (
            tok.tok.encode(text, add_special_tokens=False).ids
            == ref(text, add_special_tokens=False)["input_ids"]
        )


def test_gpt2_gguf_loads_and_predicts_as_transformers(gpt2):
    model, path = gpt2
    lm = cl.load(path)
    text = "the then  Zürich"
    ids = lm.tokenize(text).ids
    assert ids[0] == len(GPT2_TOKENS) - 1  # BOS: the file says add_bos_token
    with torch.no_grad():
        theirs = model(torch.tensor([ids])).logits[0, -1]
    torch.testing.assert_close(lm.next_token_logits(text), theirs, atol=1e-4, rtol=0)


# ---- bad files ------------------------------------------------------------------------------


def test_missing_empty_and_foreign_files(tmp_path):
    with pytest.raises(ContextlensError, match="does not exist"):
        read_gguf(tmp_path / "absent.gguf")
    for content in (b"", b"GG", b"PK\x03\x04 a zip file, say" * 10):
        (tmp_path / "x.gguf").write_bytes(content)
        with pytest.raises(ContextlensError, match="is not a GGUF file"):
            read_gguf(tmp_path / "x.gguf")


def test_truncated_files(tmp_path, gpt2):
    data = gpt2[1].read_bytes()
    for cut in (8, 100, len(data) // 2, len(data) - 200):
        (tmp_path / "cut.gguf").write_bytes(data[:cut])
        with pytest.raises(ContextlensError, match="truncated or corrupt"):
            read_gguf(tmp_path / "cut.gguf")
    with SMOLLM2.open("rb") as f:  # SmolLM2 cut inside its first tensor
        (tmp_path / "cut.gguf").write_bytes(f.read(3_000_000))
    with pytest.raises(ContextlensError, match="truncated or corrupt"):
        read_gguf(tmp_path / "cut.gguf")


def test_unsupported_architecture_tokenizer_tensor_and_missing_metadata(tmp_path, gpt2):
    model = gpt2[0]
    cases = [
        (dict(arch="mamba"), "architecture 'mamba' is not supported"),
        (dict(tokenizer="t5"), "tokenizer 't5' is not supported"),
        (dict(extra=["rope_freqs.weight"]), "tensor 'rope_freqs.weight' has no place"),
        (dict(drop=["block_count"]), "metadata 'gpt2.block_count' is missing"),
    ]
    for i, (kwargs, message) in enumerate(cases):
        path = write_gpt2(tmp_path / f"bad{i}.gguf", model, **kwargs)
        with pytest.raises(ContextlensError, match=message):
            read_gguf(path)
