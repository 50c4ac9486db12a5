"""Tokenizers rebuilt from GGUF metadata — Llama 3's and Qwen2's pre-tokenizers over byte-level
BPE, and SentencePiece BPE (Llama 2, Mistral, Gemma, Phi-3) — against transformers' tokenizers
made from the same vocabulary."""

import json
from itertools import accumulate

import pytest
from gguf import TokenType
from tiny import CORPUS
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from tokenizers.implementations import SentencePieceBPETokenizer

from contextlens import ContextlensError
from contextlens.io.gguf import build_tokenizer

MIXED = [
    "Hello world! It's 2026: 1234567 apples cost $3.14, don't they?",
    "naïve café déjà vu — Ελληνικά, Привет",
    "東京タワー and 北京 🙂👍🏽 emoji",
    "spaces  inside,\ttabs\nnew lines\r\nand   runs    of    blanks",
    "code: for (i = 0; i < 10; i++) { x += y**2; }",
]
TRAIN = (
    CORPUS
    + [
        "Hello world! It's a test: 12 123 1234 apples cost $3, they don't.",
        "naïve café déjà vu — Ελληνικά, Привет, 東京 and 北京",
        "spaces  inside,\ttabs\nnew lines and   runs of blanks; for (i = 0; i < 10; i++)",
    ]
    * 10
)  # 🙂, 👍🏽, タワー are never seen: SentencePiece spells them in bytes


@pytest.fixture(scope="module")
def byte_bpe() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A byte-level BPE vocabulary whose merges cross digits, letters and spaces freely, so that
    the pre-tokenizer decides the pieces."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    trainer = trainers.BpeTrainer(
        vocab_size=600, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(TRAIN, trainer)
    spec = json.loads(tok.to_str())["model"]
    return spec["vocab"], [tuple(m) for m in spec["merges"]]


def byte_level_metadata(vocab: dict[str, int], merges, pre: str) -> dict:
    tokens = sorted(vocab, key=vocab.get)
    return {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": pre,
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": [TokenType.NORMAL] * len(tokens),
        "tokenizer.ggml.merges": [" ".join(m) for m in merges],
    }


def ids(tok, text: str) -> list[int]:
    return tok.encode([text])[0].ids


def test_qwen2_pre_tokenizer_equals_transformers_qwen2(byte_bpe):
    from transformers import Qwen2Tokenizer

    vocab, merges = byte_bpe
    ours = build_tokenizer(byte_level_metadata(vocab, merges, "qwen2"))
    ref = Qwen2Tokenizer(vocab=vocab, merges=merges)
    for text in MIXED:
        assert ids(ours, text) == ref(text, add_special_tokens=False)["input_ids"], text
    digits = ours.encode(["1234567"])[0].tokens
    assert digits == list("1234567")  # Qwen2 takes digits one at a time


def test_llama3_pre_tokenizer_equals_transformers_gguf_tokenizer(byte_bpe, tmp_path):
    from gguf import GGUFWriter
    from transformers import AutoTokenizer

    vocab, merges = byte_bpe
    meta = byte_level_metadata(vocab, merges, "llama-bpe")
    path = tmp_path / "llama3-vocab.gguf"
    w = GGUFWriter(path, "llama")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("llama-bpe")
    w.add_token_list(meta["tokenizer.ggml.tokens"])
    w.add_token_types(meta["tokenizer.ggml.token_type"])
    w.add_token_merges(meta["tokenizer.ggml.merges"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.close()
    ours = build_tokenizer(meta)
    ref = AutoTokenizer.from_pretrained(tmp_path, gguf_file=path.name)
    for text in MIXED:
        assert ids(ours, text) == ref(text, add_special_tokens=False)["input_ids"], text
    pieces = ours.encode(["1234567"])[0].tokens
    assert {3, 6, 7} <= set(accumulate(map(len, pieces)))  # Llama 3 takes up to three digits


# ---- SentencePiece ----------------------------------------------------------------------------

SPECIALS = ["<unk>", "<s>", "</s>"]
BYTES = [f"<0x{b:02X}>" for b in range(256)]


@pytest.fixture(scope="module")
def spm() -> tuple[list[str], list[float], list[int], list[tuple[str, str]]]:
    """A SentencePiece BPE vocabulary laid out as llama.cpp writes Llama 2's: <unk>, <s>, </s>,
    the 256 byte tokens, then the pieces, each scored minus its rank; and its merges."""
    sp = SentencePieceBPETokenizer()
    sp.train_from_iterator(TRAIN, vocab_size=500, min_frequency=2, show_progress=False)
    spec = json.loads(sp.to_str())["model"]
    pieces = sorted(spec["vocab"], key=spec["vocab"].get)
    tokens = SPECIALS + BYTES + pieces
    scores = [0.0] * (len(SPECIALS) + len(BYTES)) + [-float(i) for i in range(len(pieces))]
    types = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL] + [TokenType.BYTE] * 256
    types += [TokenType.NORMAL] * len(pieces)
    return tokens, scores, types, [tuple(m) for m in spec["merges"]]


def spm_metadata(spm, add_space_prefix: bool = True) -> dict:
    tokens, scores, types, _ = spm
    return {
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.scores": scores,
        "tokenizer.ggml.token_type": types,
        "tokenizer.ggml.unknown_token_id": 0,
        "tokenizer.ggml.bos_token_id": 1,
        "tokenizer.ggml.eos_token_id": 2,
        "tokenizer.ggml.add_space_prefix": add_space_prefix,
    }


def test_sentencepiece_equals_transformers_llama_tokenizer(spm):
    from transformers import LlamaTokenizer

    tokens, _, _, merges = spm
    ours = build_tokenizer(spm_metadata(spm))
    ref = LlamaTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=merges)
    for text in MIXED:
        got = ids(ours, text)
        assert got[0] == 1  # BOS: llama.cpp adds it to SentencePiece vocabularies by default
        assert got[1:] == ref(text, add_special_tokens=False)["input_ids"], text
        assert ours.decode(got, skip_special_tokens=True) == text
    emoji = ours.encode(["🙂"])[0].tokens
    assert emoji == ["<s>", "▁", "<0xF0>", "<0x9F>", "<0x99>", "<0x82>"]  # byte fallback


def test_sentencepiece_without_space_prefix_equals_transformers_gemma_tokenizer(spm):
    from transformers import GemmaTokenizer

    tokens, _, _, merges = spm
    ours = build_tokenizer(spm_metadata(spm, add_space_prefix=False))
    ref = GemmaTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=merges)
    for text in MIXED:
        got = ids(ours, text)[1:]
        assert got == ref(text, add_special_tokens=False)["input_ids"], text
        assert ours.decode(got) == text


def test_special_tokens_are_matched_whole(spm):
    ours = build_tokenizer(spm_metadata(spm))
    enc = ours.encode(["Hello</s><s>world"])[0]
    assert "</s>" in enc.tokens and enc.tokens.count("<s>") == 2
    assert [enc.special[i] for i, t in enumerate(enc.tokens) if t in ("<s>", "</s>")] == [True] * 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tokenizer.ggml.model": "t5"}, "tokenizer 't5' is not supported; supported: 'gpt2'"),
        ({"tokenizer.ggml.scores": [0.0]}, "'tokenizer.ggml.scores' is not one number per token"),
        ({"tokenizer.ggml.unknown_token_id": 10**6}, "'tokenizer.ggml.unknown_token_id' is"),
    ],
)
def test_bad_sentencepiece_metadata_is_one_clear_error(spm, change, message):
    with pytest.raises(ContextlensError) as e:
        build_tokenizer(spm_metadata(spm) | change, "x.gguf")
    assert message in str(e.value) and "\n" not in str(e.value)


def test_an_unknown_pre_tokenizer_names_the_supported_ones(byte_bpe):
    with pytest.raises(ContextlensError, match="pre-tokenizer 'tekken' is not supported; .*qwen2"):
        build_tokenizer(byte_level_metadata(*byte_bpe, "tekken"))
