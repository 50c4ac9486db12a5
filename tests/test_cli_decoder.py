"""Decoder commands: next, generate, chat — with smollm2, --json, and bad inputs (exit 2)."""

import json


def test_next_puts_paris_first(run_cli):
    code, out, _ = run_cli("next", "The capital of France is", "-k", "3", "--json")
    top = json.loads(out)["candidates"]
    assert code == 0 and top[0]["text"] == " Paris" and len(top) == 3
    code, out, _ = run_cli("next", "The capital of France is", "-k", "3")
    assert code == 0 and "' Paris'" in out


def test_generate_streams_the_greedy_text(run_cli, smollm2):
    expected = smollm2.generate("The capital of France is", max_new_tokens=10)
    code, out, _ = run_cli("generate", "The capital of France is", "-n", "10")
    assert code == 0 and out == expected + "\n"
    code, out, _ = run_cli(
        "generate", "The capital of France is", "-n", "10", "-t", "0.7", "--seed", "3", "--json"
    )
    assert code == 0 and json.loads(out)["text"] == smollm2.generate(
        "The capital of France is", max_new_tokens=10, temperature=0.7, seed=3
    )


def test_chat_one_shot(run_cli):
    code, out, _ = run_cli(
        "chat", "--message", "What is the capital of France?", "-n", "16", "--json"
    )
    reply = json.loads(out)
    assert code == 0 and "Paris" in reply["reply"]
    assert [m["role"] for m in reply["messages"]] == ["user", "assistant"]


def test_decoder_bad_inputs(run_cli):
    cases = [
        (("generate", "hi", "-n", "0"), "max_new_tokens must be ≥ 1"),
        (("generate", "hi", "-t", "1", "--top-p", "1.5"), "top_p must be in (0, 1]"),
        (("next", "hi", "-k", "0"), "k must be ≥ 1"),
        (("next", "The capital", "-m", "minilm"), "minilm is an encoder"),
        (("generate", ""), "text is empty"),
    ]
    for args, message in cases:
        code, _, err = run_cli(*args)
        assert code == 2 and message in err and err.count("\n") == 1, (args, err)
