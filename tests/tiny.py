"""Small random-weight models saved by transformers, for architectures whose real weights are not
available offline here (the loading code under test is the real one)."""

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

import contextlens as cl

CORPUS = [
    "The capital of France is Paris. The animal didn't cross the street because it was tired.",
    "Attention lets every token look at every other token, layer after layer.",
    "Numbers like 3.14 and 2026, punctuation!? and naïve café déjà vu — all welcome.",
] * 20


def byte_bpe_tokenizer(vocab_size: int = 300) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS, trainer)
    return tok


SMALL = {  # the tiny shapes of each kind, beside the vocabulary and the special tokens
    "gpt2": {"n_positions": 128, "n_embd": 64, "n_layer": 3, "n_head": 4},
    "llama": {
        "hidden_size": 64,
        "intermediate_size": 160,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 128,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
    },
}


def save_tiny(kind: str, directory: Path, **overrides) -> Path:
    """Save a random `kind` ("gpt2" or "llama") model + tokenizer.json; returns the directory."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    classes = {"gpt2": (GPT2Config, GPT2LMHeadModel), "llama": (LlamaConfig, LlamaForCausalLM)}
    config_class, model_class = classes[kind]
    torch.manual_seed(0)
    tok = byte_bpe_tokenizer()
    special = {"vocab_size": tok.get_vocab_size(), "bos_token_id": 0, "eos_token_id": 0}
    model = model_class(config_class(**SMALL[kind] | special | overrides))
    with torch.no_grad():  # random init is tiny; widen it so layers actually mix tokens
        for p in model.parameters():
            if p.ndim == 2:
                p.normal_(0, 0.2)
    return save(model, tok, directory)


def save(model, tok: Tokenizer, directory: Path) -> Path:
    """`model` (transformers') and `tok` as tokenizer.json in `directory`; returns it."""
    model.save_pretrained(directory, safe_serialization=True)
    tok.save(str(directory / "tokenizer.json"))
    return directory


def load_pair(directory: Path):
    """(ours, transformers' with eager attention) of the model saved in `directory`."""
    from transformers import AutoModelForCausalLM

    ref = AutoModelForCausalLM.from_pretrained(directory, attn_implementation="eager").eval()
    return cl.load(directory), ref


def gguf_vocab(tokenizer: dict) -> tuple[list[str], list[str]]:
    """The tokens (in id order) and merges ("a b") of a tokenizer.json's BPE model."""
    vocab, merges = tokenizer["model"]["vocab"], tokenizer["model"]["merges"]
    return sorted(vocab, key=vocab.get), [m if isinstance(m, str) else " ".join(m) for m in merges]


def write_bpe_vocab(
    w, tokens: list[str], merges: list[str], control: int = 0, pre: str = "gpt-2", model="gpt2"
) -> None:
    """A byte-level BPE vocabulary as llama.cpp's converter writes it to the GGUFWriter `w`; the
    token `control` is the one control token, beginning and end of text."""
    from gguf import TokenType

    types = [TokenType.NORMAL] * len(tokens)
    types[control] = TokenType.CONTROL
    w.add_tokenizer_model(model)
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(control)
    w.add_eos_token_id(control)


def finish(w) -> None:
    """Write the GGUFWriter `w`'s header, metadata and tensors, and close its file."""
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def assert_pass_equals_transformers(m, ref, prompt: str, atol: float = 1e-4):
    """Our trace of `prompt` against the transformers model `ref` (eager): every hidden state,
    every attention weight and the next-token logits within `atol`. Returns the trace."""
    t = m.trace(prompt)
    with torch.no_grad():
        out = ref(torch.tensor([t.ids]), output_hidden_states=True, output_attentions=True)
    torch.testing.assert_close(
        t.hidden_states, torch.stack(out.hidden_states)[:, 0], atol=atol, rtol=0
    )
    torch.testing.assert_close(t.attentions, torch.stack(out.attentions)[:, 0], atol=atol, rtol=0)
    torch.testing.assert_close(m.next_token_logits(prompt), out.logits[0, -1], atol=atol, rtol=0)
    return t


def reference_greedy(ref, ids: list[int], n: int = 32, **options) -> list[int]:
    """The n tokens transformers' `generate` picks greedily after `ids`, never stopping early
    (`options`: more `generate` arguments, e.g. pad_token_id)."""
    with torch.no_grad():
        out = ref.generate(
            torch.tensor([ids]), max_new_tokens=n, do_sample=False, eos_token_id=None, **options
        )
    return out[0, len(ids) :].tolist()
