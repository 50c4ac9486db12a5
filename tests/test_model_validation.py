"""A model whose config, tensors or tokenizer disagree is refused at load with one line naming
the file, the value and what is expected: corrupt copies of the real MiniLM directory, and small
Llama checkpoints (Hugging Face and GGUF) made here."""

import json
import math
import shutil

import numpy as np
import pytest
import torch
from gguf import GGUFWriter, TokenType
from safetensors.torch import load_file, save_file
from tiny import save_tiny

import contextlens as cl
from contextlens import ContextlensError
from contextlens.io.gguf import byte_spelling


def refused(path, *parts: str) -> str:
    """cl.load(path) fails with one line that holds each of `parts`; the message."""
    with pytest.raises(ContextlensError) as e:
        cl.load(path)
    message = str(e.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, message
    return message


def cli_refuses(run_cli, *args: str, match: str) -> None:
    code, out, err = run_cli(*args)
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert match in err


def edit_json(path, change) -> None:
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


# ---- MiniLM's directory ---------------------------------------------------------------------


@pytest.fixture
def minilm_copy(tmp_path, minilm_dir):
    """The installed MiniLM directory, copied to be edited; the weights are linked."""
    d = shutil.copytree(minilm_dir, tmp_path / "minilm", ignore=lambda *_: ["model.safetensors"])
    (d / "model.safetensors").symlink_to(minilm_dir / "model.safetensors")
    return d


CONFIG_CASES = [  # config.json key, bad value, what the error says is expected
    ("hidden_size", "384", "a positive integer"),
    ("num_hidden_layers", True, "a positive integer"),
    ("num_attention_heads", 0, "a positive integer"),
    ("num_attention_heads", 7, "a divisor of config.json 'hidden_size' (384)"),
    ("intermediate_size", 1536.0, "a positive integer"),
    ("max_position_embeddings", -1, "a positive integer"),
    ("vocab_size", None, "a positive integer"),
    ("type_vocab_size", -2, "an integer ≥ 0"),
    ("layer_norm_eps", -1, "a finite number > 0"),
    ("layer_norm_eps", math.nan, "a finite number > 0"),
    ("layer_norm_eps", "1e-12", "a number"),
]


@pytest.mark.parametrize(("key", "value", "expected"), CONFIG_CASES)
def test_each_bad_config_value_names_file_key_value_and_expectation(
    minilm_copy, key, value, expected
):
    edit_json(minilm_copy / "config.json", lambda c: c | {key: value})
    message = refused(minilm_copy, f"config.json '{key}' is ")
    assert message.startswith(f"{minilm_copy}: ")
    assert f"is {value!r}; expected {expected}" in message


def test_a_missing_config_key_is_named(minilm_copy):
    edit_json(
        minilm_copy / "config.json",
        lambda c: {k: v for k, v in c.items() if k != "num_attention_heads"},
    )
    refused(minilm_copy, "config.json 'num_attention_heads' is missing; restore it")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("[1, 2]", "holds a JSON array, not an object"),
        ('"bert"', "holds a JSON string, not an object"),
        ("null", "holds a JSON null, not an object"),
        ('{"model_type": "bert",', "is not valid JSON"),
    ],
)
def test_config_json_must_be_one_object(minilm_copy, content, match):
    (minilm_copy / "config.json").write_text(content)
    refused(minilm_copy, match)


@pytest.mark.parametrize("layers", [3, 8])
def test_layer_count_must_match_the_weights(minilm_copy, layers):
    edit_json(minilm_copy / "config.json", lambda c: c | {"num_hidden_layers": layers})
    refused(
        minilm_copy,
        f"the checkpoint has 6 layers of weights but config.json 'num_hidden_layers' says "
        f"{layers}; make them agree",
    )


def test_every_tensor_is_used_but_berts_documented_leftovers(minilm_copy):
    """MiniLM's file holds BERT's pooler and position_ids, which contextlens does not use; a
    masked-word head may come too. Anything else left over is an error."""
    extra = minilm_copy / "extra.safetensors"
    save_file({"cls.predictions.bias": torch.zeros(30522)}, extra)
    assert len(cl.load(minilm_copy).embed(["fine"])[0]) == 384
    save_file({f"encoder.layer.0.adapter{i}.weight": torch.zeros(2) for i in range(5)}, extra)
    refused(
        minilm_copy,
        "checkpoint tensors that the config leaves unused: 'encoder.layer.0.adapter0.weight', ",
        " … (5 in all); the config does not describe this file",
    )


def test_wordpiece_vocabulary_needs_its_unknown_token(minilm_copy):
    def drop_unk(t):
        del t["model"]["vocab"]["[UNK]"]
        t["added_tokens"] = [a for a in t["added_tokens"] if a["content"] != "[UNK]"]
        return t

    edit_json(minilm_copy / "tokenizer.json", drop_unk)
    refused(minilm_copy, "tokenizer.json: the unknown-token stand-in '[UNK]' is not in")


def test_tokenizer_ids_must_be_rows_of_the_embedding(minilm_copy):
    def add_token(t):
        t["model"]["vocab"]["newword"] = 30522
        return t

    edit_json(minilm_copy / "tokenizer.json", add_token)
    refused(
        minilm_copy,
        "the tokenizer gives ids up to 30522 but the model's embedding has 30522 rows",
    )


@pytest.mark.parametrize(
    ("file", "change", "message"),
    [
        ("modules.json", lambda m: {"0": m[0]}, "modules.json is not a list of modules"),
        ("modules.json", lambda m: [m[0] | {"path": None}, *m[1:]], "is not a list of modules"),
        ("1_Pooling/config.json", lambda c: [c], "config.json holds a JSON array, not an object"),
        ("sentence_bert_config.json", lambda c: c | {"max_seq_length": "256"}, "'256'; expected"),
        ("sentence_bert_config.json", lambda c: c | {"max_seq_length": 0}, "is 0; expected a"),
    ],
)
def test_sentence_transformers_files(minilm_copy, file, change, message):
    edit_json(minilm_copy / file, change)
    refused(minilm_copy, message)


def test_cli_refuses_a_config_that_disagrees(minilm_copy, minilm, run_cli):
    """Before: 0.91 instead of 0.68 with 3 layers, and nan with a negative epsilon, exit 0."""
    args = ("similarity", "a cat", "a dog", "--model", minilm_copy)
    edit_json(minilm_copy / "config.json", lambda c: c | {"num_hidden_layers": 3})
    cli_refuses(run_cli, *args, match="6 layers of weights")
    edit_json(minilm_copy / "config.json", lambda c: c | {"num_hidden_layers": 6})
    edit_json(minilm_copy / "config.json", lambda c: c | {"layer_norm_eps": -1})
    cli_refuses(run_cli, *args, match="'layer_norm_eps' is -1; expected a finite number > 0")
    edit_json(minilm_copy / "config.json", lambda c: c | {"layer_norm_eps": 1e-12})
    code, out, _ = run_cli(*args)
    assert code == 0 and f"{cl.cosine(*minilm.embed(['a cat', 'a dog'])):.4f}" in out


# ---- a small Llama, as transformers saves it ------------------------------------------------


@pytest.fixture(scope="module")
def llama_saved(tmp_path_factory):
    return save_tiny("llama", tmp_path_factory.mktemp("llama"))


@pytest.fixture
def llama_dir(tmp_path, llama_saved):
    return shutil.copytree(llama_saved, tmp_path / "llama")


def edit_tensors(directory, change) -> None:
    path = directory / "model.safetensors"
    save_file(change(load_file(path)), path)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("num_key_value_heads", 0, "is 0; expected a positive integer"),
        ("num_key_value_heads", 3, "is 3; expected a divisor of config.json"),
        ("head_dim", 0, "is 0; expected a positive integer (the head width)"),
        ("rope_theta", 0, "is 0; expected a finite number > 0"),
        ("rope_theta", math.inf, "is inf; expected a finite number > 0"),
        ("rms_norm_eps", [1e-6], "is [1e-06]; expected a number"),
        ("attention_bias", "false", "is 'false'; expected true or false"),
        ("tie_word_embeddings", 0, "is 0; expected true or false"),
        ("rope_parameters", "default", "rope_parameters is 'default'; expected an object"),
    ],
)
def test_llama_config_values(llama_dir, key, value, message):
    edit_json(llama_dir / "config.json", lambda c: c | {key: value})
    refused(llama_dir, f"config.json '{key}' " if key != "rope_parameters" else "", message)


def test_rope_needs_heads_of_an_even_width(llama_dir):
    edit_json(
        llama_dir / "config.json", lambda c: c | {"num_attention_heads": 64, "head_dim": None}
    )
    refused(
        llama_dir,
        "config.json 'num_attention_heads' is 64; expected a count that leaves heads of an even "
        "width for RoPE; 64 / 64 = 1 is odd",
    )


def test_missing_tensors_are_all_named(llama_dir):
    gone = ["model.layers.0.self_attn.q_proj.weight", "model.layers.2.mlp.up_proj.weight"]
    edit_tensors(llama_dir, lambda t: {k: v for k, v in t.items() if k not in gone})
    refused(
        llama_dir,
        "weights missing from the checkpoint: 'layers.0.self_attn.q_proj.weight', "
        "'layers.2.mlp.up_proj.weight'; the file is incomplete",
    )


def test_rotary_frequencies_may_be_left_over_but_nothing_else(llama_dir):
    before = cl.load(llama_dir).next_token_logits("attention")
    edit_tensors(
        llama_dir, lambda t: t | {"model.layers.1.self_attn.rotary_emb.inv_freq": torch.ones(8)}
    )
    torch.testing.assert_close(cl.load(llama_dir).next_token_logits("attention"), before)
    edit_tensors(llama_dir, lambda t: t | {"model.layers.1.mlp.up_proj.bias": torch.ones(160)})
    refused(llama_dir, "leaves unused: 'layers.1.mlp.up_proj.bias';")


def test_a_tied_head_may_be_stored_only_as_a_copy_of_the_embedding(llama_dir):
    """The file has its own LM head; a config saying it is tied to the embedding is wrong."""
    edit_json(llama_dir / "config.json", lambda c: c | {"tie_word_embeddings": True})
    refused(
        llama_dir,
        "config.json 'tie_word_embeddings' is true but the checkpoint's 'lm_head.weight' "
        "differs from the embedding; set it to false",
    )
    edit_tensors(
        llama_dir, lambda t: t | {"lm_head.weight": t["model.embed_tokens.weight"].clone()}
    )
    m = cl.load(llama_dir)
    assert m.model.lm_head.weight is m.model.tok.weight


def test_special_token_ids_must_be_tokens(llama_dir):
    edit_json(llama_dir / "config.json", lambda c: c | {"eos_token_id": [0, 99999]})
    refused(llama_dir, "the EOS token id 99999 is not a token of the tokenizer")
    edit_json(llama_dir / "config.json", lambda c: c | {"eos_token_id": 0, "bos_token_id": "0"})
    refused(llama_dir, "the BOS token id '0' is not a token of the tokenizer")


# ---- GGUF: a small Llama written here ------------------------------------------------------

TOKENS = [*byte_spelling(), "Ġt", "he", "Ġthe", "<|endoftext|>"]
MERGES = ["Ġ t", "h e", "Ġt he"]
END = len(TOKENS) - 1
LLAMA = {  # metadata (less "llama."): 2 layers, width 32, 4 query heads and 2 key/value heads
    "block_count": 2,
    "context_length": 64,
    "embedding_length": 32,
    "feed_forward_length": 48,
    "attention.head_count": 4,
    "attention.head_count_kv": 2,
    "rope.dimension_count": 8,
    "rope.freq_base": 10000.0,
    "attention.layer_norm_rms_epsilon": 1e-5,
}


def llama_tensors(rng) -> dict[str, np.ndarray]:
    """llama.cpp name -> random weights, [out, in], with LLAMA's shapes."""
    d, kv, ff = 32, 16, 48
    shapes = {"token_embd.weight": (len(TOKENS), d), "output_norm.weight": (d,)}
    for i in range(2):
        shapes |= {
            f"blk.{i}.{name}.weight": shape
            for name, shape in {
                "attn_norm": (d,),
                "attn_q": (d, d),
                "attn_k": (kv, d),
                "attn_v": (kv, d),
                "attn_output": (d, d),
                "ffn_norm": (d,),
                "ffn_gate": (ff, d),
                "ffn_up": (ff, d),
                "ffn_down": (d, ff),
            }.items()
        }
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}


def write_llama(path, merges=MERGES, bos=END, **metadata):
    """A small Llama GGUF; `metadata` replaces LLAMA's values."""
    writer = GGUFWriter(path, "llama")
    for key, value in (LLAMA | metadata).items():
        add = writer.add_float32 if isinstance(value, float) else writer.add_uint32
        add(f"llama.{key}", value)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    writer.add_token_list(TOKENS)
    writer.add_token_types([TokenType.NORMAL] * END + [TokenType.CONTROL])
    writer.add_token_merges(merges)
    writer.add_bos_token_id(bos)
    writer.add_eos_token_id(END)
    for name, data in llama_tensors(np.random.default_rng(0)).items():
        writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_the_small_llama_gguf_loads(tmp_path):
    m = cl.load(write_llama(tmp_path / "ok.gguf"))
    assert m.model.cfg.n_layers == 2 and m.model.cfg.n_kv_heads == 2
    assert torch.isfinite(m.next_token_logits("the the")).all()


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        (
            {"block_count": 0},
            "metadata 'llama.block_count' is 0; expected a positive integer (the number of layers)",
        ),
        (
            {"block_count": 1},
            "the checkpoint has 2 layers of weights but metadata 'llama.block_count' says 1",
        ),
        (
            {"attention.head_count": 0},
            "metadata 'llama.attention.head_count' is 0, which does not split the 32 rows of "
            "'model.layers.0.self_attn.q_proj.weight' into heads of an even width",
        ),
        ({"attention.head_count": 3}, "'llama.attention.head_count' is 3, which does not split"),
        ({"attention.head_count_kv": 0}, "'llama.attention.head_count_kv' is 0, which does not"),
        (
            {"attention.head_count": 8},
            "metadata 'llama.rope.dimension_count' is 8; expected metadata "
            "'llama.embedding_length' / metadata 'llama.attention.head_count' = 4",
        ),
        ({"rope.freq_base": math.nan}, "metadata 'llama.rope.freq_base' is nan; expected a"),
        ({"attention.layer_norm_rms_epsilon": 0.0}, "rms_epsilon' is 0.0; expected a finite"),
        ({"context_length": 0}, "metadata 'llama.context_length' is 0; expected a positive"),
    ],
)
def test_gguf_metadata_that_disagrees_with_the_tensors(tmp_path, metadata, message):
    path = write_llama(tmp_path / "bad.gguf", **metadata)
    assert refused(path, message).startswith(f"{path}: ")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(bos=END + 1), "metadata 'tokenizer.ggml.bos_token_id' is 260, not a token of"),
        (dict(merges=["Ġ t", "he"]), "the BPE merge 'he' is not two tokens apart by a space"),
        (dict(merges=["Ġ t", "h x"]), "the BPE merges do not agree with the vocabulary"),
    ],
)
def test_gguf_tokenizer_that_disagrees_with_itself(tmp_path, kwargs, message):
    refused(write_llama(tmp_path / "bad.gguf", **kwargs), message)


def flip_vocabulary_byte(source, target, token: bytes) -> None:
    """Copy `source` with the first byte of `token`, in the vocabulary, made invalid UTF-8."""
    data = bytearray(source.read_bytes())
    at = data.index(token)
    data[at] = 0xFF
    target.write_bytes(data)


def test_cli_refuses_corrupt_gguf_files(tmp_path, run_cli):
    """Before: `next` answered " is" with probability 1.0 from a file with no layers, and a
    flipped byte in the vocabulary raised UnicodeDecodeError."""
    path = write_llama(tmp_path / "no-layers.gguf", block_count=0)
    cli_refuses(run_cli, "next", "the", "--model", path, match="'llama.block_count' is 0")
    flipped = tmp_path / "flipped.gguf"
    flip_vocabulary_byte(write_llama(tmp_path / "ok.gguf"), flipped, "Ġthe".encode())
    cli_refuses(
        run_cli,
        "next",
        "the",
        "--model",
        flipped,
        match="metadata 'tokenizer.ggml.tokens' holds text that is not UTF-8",
    )
