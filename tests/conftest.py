"""Shared fixtures: the real catalog models, loaded once per test session, and a CLI runner."""

import functools
import sys

import gguf
import pytest

import contextlens as cl
from contextlens.cli import main


@pytest.fixture(scope="session")
def minilm():
    return cl.load("minilm")


@pytest.fixture(scope="session")
def minilm_dir():
    return cl.io.catalog.CATALOG["minilm"].path()


@pytest.fixture
def run_cli(capsys, monkeypatch):
    """run_cli("tokens", "hi") -> (exit code, stdout, stderr), in this process."""

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["contextlens", *map(str, args)])
        try:
            main()
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture(scope="session")
def smollm2():
    return cl.load("smollm2")


@pytest.fixture(scope="session")
def smollm2_reference():
    """transformers' own reading of the same GGUF file: (model, tokenizer), eager attention."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = cl.io.catalog.CATALOG["smollm2"].path()
    # transformers parses the file three times (config, tensors, tokenizer: ~6 s each) and asks
    # gguf-py for the same tensor-name table once per submodule (397 times, 9 s); both depend
    # only on their arguments and are only read, so each is made once here
    made = gguf.GGUFReader, gguf.get_tensor_name_map
    gguf.GGUFReader, gguf.get_tensor_name_map = (functools.cache(f) for f in made)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path.parent, gguf_file=path.name, attn_implementation="eager"
        ).eval()
        return model, AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = made


@pytest.fixture(scope="session")
def smollm2_native():
    return cl.load("smollm2", weights="native")


@pytest.fixture(scope="session", params=["gpt2", "llama"])
def tiny_decoder(request, tmp_path_factory):
    """A tiny random GPT-2 or Llama (tests/tiny.py), saved and loaded once per session."""
    from tiny import save_tiny

    return cl.load(save_tiny(request.param, tmp_path_factory.mktemp(request.param)))
