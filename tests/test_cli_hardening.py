"""Bad and edge input across the CLI: bytes that are not UTF-8, texts over the model's limit,
non-finite numbers, the wrong kind of model, words inside unsegmented text, data files that are
not regular files, and numeric options out of range. Each gets one line (or one note)."""

import ast
import json
import math
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny import save_tiny

import contextlens as cl
from contextlens.errors import Truncated

SRC = Path(cl.__file__).parent
DATA = Path(__file__).parent / "data"
CLI = [sys.executable, "-c", "from contextlens.cli import main; main()"]
ANIMAL = "The animal didn't cross the street because it was too wide."
BANK = ["I sat on the bank of the river.", "I deposited cash at the bank."]
LONG = "word " * 300  # 302 tokens with [CLS] and [SEP]: over minilm's 256 for embeddings


def one_error(result: tuple[int, str, str], message: str) -> None:
    code, out, err = result
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err, err


def strict_json(text: str):
    """JSON as the standard has it: NaN and Infinity are not allowed."""
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))


@pytest.fixture(scope="module")
def tiny_decoder(tmp_path_factory) -> Path:
    """A random Llama with a context of 32 tokens, so prompts overflow it cheaply (RoPE: the
    weights do not depend on the context length)."""
    d = save_tiny("llama", tmp_path_factory.mktemp("llama32"))
    config = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 32}))
    return d


# ── 1. arguments and standard input that are not UTF-8 ─────────────────────────────────────
def utf8_env() -> dict:
    return {**os.environ, "LC_ALL": "C.UTF-8"}


def test_argument_bytes_that_are_not_utf8_get_one_line():
    r = subprocess.run(
        [*CLI, b"tokens", b"caf\xe9"], capture_output=True, timeout=120, env=utf8_env()
    )
    assert (r.returncode, r.stdout) == (2, b"")
    assert r.stderr.decode() == (
        "error: argument 2 is not valid UTF-8 (byte 0xe9 at character 4); give the text in "
        "UTF-8, e.g. convert it with iconv -t UTF-8\n"
    )


@pytest.mark.parametrize(
    "args",
    [
        ("embed", "ok", "caf\udce9"),
        ("similarity", "ok", "caf\udce9"),
        ("next", "caf\udce9"),
        ("generate", "caf\udce9"),
        ("chat", "--message", "caf\udce9"),
        ("attention", "a café", "--from", "caf\udce9"),
        ("neighbors", "caf\udce9"),
        ("search", "caf\udce9", "--index", "notes"),
        ("evaluate", "sts", "caf\udce9.csv"),
    ],
)
def test_every_command_refuses_arguments_that_are_not_utf8(run_cli, args):
    """In-process: Python hands undecodable argument bytes over as these surrogates."""
    n = next(i for i, a in enumerate(args, start=1) if "\udce9" in a)
    one_error(run_cli(*args), f"argument {n} is not valid UTF-8 (byte 0xe9 at character")


def test_chat_input_that_is_not_utf8_gets_one_line(tiny_decoder):
    r = subprocess.run(
        [*CLI, "chat", "-n", "4", "-m", str(tiny_decoder)],
        input=b"caf\xe9\n",
        capture_output=True,
        timeout=300,
        env=utf8_env(),
    )
    assert r.returncode == 2
    assert r.stderr.decode() == (
        "error: the input is not valid UTF-8 (byte 0xe9); give UTF-8 text, e.g. convert it "
        "with iconv -t UTF-8\n"
    )


# ── 2. texts over the model's limit ─────────────────────────────────────────────────────────
def test_truncate_true_cuts_and_warns_with_the_numbers(minilm):
    with pytest.warns(Truncated) as caught:
        v = minilm.embed(LONG, truncate=True)
    assert [str(w.message) for w in caught] == [
        "text is 302 tokens, over minilm's limit of 256; used the first 256"
    ]
    first = minilm.embed("word " * 254)  # [CLS] + 254 words + [SEP]: the 256 kept
    torch.testing.assert_close(v, first, atol=1e-5, rtol=0)
    with pytest.warns(
        Truncated, match="^text is 8 tokens, over minilm's limit of 5; used the last"
    ):
        e = minilm.tokenize("one two three four five six", truncate=True, limit=5, keep="last")
    assert e.tokens == ["[CLS]", "four", "five", "six", "[SEP]"]


def test_cli_embeds_long_texts_with_one_note(run_cli):
    code, out, err = run_cli("embed", LONG, "short", "--json")
    assert code == 0 and len(strict_json(out)["embeddings"]) == 2
    assert err == "note: text 1 is 302 tokens, over minilm's limit of 256; used the first 256\n"
    code, out, err = run_cli("similarity", "short", LONG, "--json")
    assert code == 0 and -1 <= strict_json(out)["cosine"][0][1] <= 1
    assert err == "note: text 2 is 302 tokens, over minilm's limit of 256; used the first 256\n"
    code, out, err = run_cli("tokens", "word " * 600, "--json")
    assert code == 0 and len(strict_json(out)["tokens"]) == 512
    assert err == "note: text is 602 tokens, over minilm's limit of 512; used the first 512\n"
    code, out, err = run_cli("attention", "word " * 600, "--layer", "0", "--json")
    assert code == 0 and err.startswith("note: text is 602 tokens") and err.count("\n") == 1


def test_a_decoder_prompt_over_the_context_keeps_its_last_tokens(run_cli, tiny_decoder):
    m = cl.load(tiny_decoder)
    prompt = "The capital of France is Paris. " * 6
    ids = m.tokenize(prompt, limit=10_000).ids
    assert len(ids) > 32
    code, out, err = run_cli("next", prompt, "-m", tiny_decoder, "-k", "3", "--json")
    assert code == 0
    assert err == (
        f"note: text is {len(ids)} tokens, over {tiny_decoder}'s limit of 32; used the last 32\n"
    )
    with torch.inference_mode():
        hidden = m.model(torch.tensor([ids[-32:]]))
        best = m.model.logits(hidden[0, -1]).topk(3).indices.tolist()
    top = [t["text"] for t in strict_json(out)["candidates"]]
    assert top == [m.tokenizer.decode([i]) for i in best]
    code, out, err = run_cli("generate", prompt, "-m", tiny_decoder, "-n", "4", "--json")
    assert code == 0 and isinstance(strict_json(out)["text"], str)
    assert err == (
        f"note: text is {len(ids)} tokens, over {tiny_decoder}'s limit of 28 (32 less 4 new "
        "tokens); used the last 28\n"
    )
    one_error(
        run_cli("generate", "hi", "-m", tiny_decoder, "-n", "32"),
        "max_new_tokens must be ≥ 1 and below",
    )


def test_every_option_named_in_a_message_exists():
    """Hints name options (`--occurrence`, `--from-occurrence` …): each must be a real one."""
    from typer.main import get_command

    from contextlens.cli.app import app

    real: set[str] = set()

    def walk(command) -> None:
        for p in command.params:
            real.update(p.opts + p.secondary_opts)
        for sub in getattr(command, "commands", {}).values():
            walk(sub)

    walk(get_command(app))
    files = ["lm.py", "errors.py", "metrics.py", "sampling.py", "trace.py"]
    files += [f"cli/{n}.py" for n in ("__init__", "app", "core", "decoder", "context", "tour")]
    files += [
        f"analysis/{n}.py"
        for n in ("words", "attention", "context", "sts", "coref", "wic", "plots")
    ]
    named = set()
    for f in files:
        for node in ast.walk(ast.parse((SRC / f).read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                named.update(re.findall(r"(?<![\w-])--[a-z][a-z-]*", node.value))
    assert {"--occurrence", "--from-occurrence", "--top"} <= named
    assert named <= real, named - real


# ── 3. cosine stays within [-1, 1] ──────────────────────────────────────────────────────────
def test_cosine_of_a_vector_and_itself_is_never_above_one(run_cli):
    vs = torch.randn(64, 384, generator=torch.Generator().manual_seed(0))
    assert cl.cosine(vs, vs).max() == 1.0 and cl.cosine(vs, -vs).min() == -1.0
    assert cl.cosine_matrix(vs, vs).max() == 1.0
    code, out, _ = run_cli("similarity", "Hello world.", "Hello world.", "--json")
    assert code == 0 and 0.9999 < strict_json(out)["cosine"][0][1] <= 1.0  # 1.0000001 unclamped


# ── 4. data files ───────────────────────────────────────────────────────────────────────────
@pytest.fixture
def no_hang():
    """A FIFO opened for reading blocks forever: turn that into a failure after 60 s."""

    def stop(*_):
        raise TimeoutError("the command blocked")

    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def test_data_files_must_be_regular_files(run_cli, tmp_path, no_hang):
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    fifo_says = f"{fifo} is not a regular file (a FIFO, socket or device); give"
    for args, message in [
        (("evaluate", "sts", fifo), f"{fifo_says} an STS Benchmark file"),
        (("evaluate", "sts", tmp_path), f"{tmp_path} is a folder; give an STS Benchmark file"),
        (("evaluate", "sts", tmp_path / "no.csv"), "no.csv does not exist; give an STS"),
        (("evaluate", "coref", fifo, "--format", "gap"), f"{fifo_says} a coreference data file"),
        (("evaluate", "wic", fifo, fifo), f"{fifo_says} a WiC data file"),
    ]:
        one_error(run_cli(*args), message)


def test_sts_rows_that_are_wrong_name_their_line(run_cli, tmp_path):
    good = "main\tf\t2012\t{}\t{}\tA man plays a guitar.\tA man is playing guitar."
    for rows, message in [
        (
            [good.format(1, 5), "main\tf\t2012\t2\thigh\tA b.\tC d."],
            "x.csv:2: the score (field 5) ",
        ),
        ([good.format(1, 5), good.format(2, "nan")], "x.csv:2: the score (field 5) is 'nan', not"),
        ([good.format(1, 5), "", "too\tfew"], "x.csv:3: 2 tab-separated fields, expected 7"),
        ([good.format(1, 5), "main\tf\t2012\t2\t1\t \tC d."], "x.csv:2: sentence 1 (field 6) is"),
        ([good.format(n, 3) for n in range(4)], "all pairs have the same score"),
    ]:
        f = tmp_path / "x.csv"
        f.write_text("\n".join(rows) + "\n")
        one_error(run_cli("evaluate", "sts", f), message)


# ── 5. softmax and JSON ─────────────────────────────────────────────────────────────────────
def test_softmax_of_extreme_scores(run_cli):
    for args, scores, probs in [
        (("1e39", "1"), [1e39, 1.0], [1.0, 0.0]),
        (("inf", "1", "inf"), ["inf", 1.0, "inf"], [0.5, 0.0, 0.5]),
        (("--", "-inf", "1"), ["-inf", 1.0], [0.0, 1.0]),
    ]:
        code, out, _ = run_cli("softmax", "--json", *args)  # options before --
        r = strict_json(out)
        assert code == 0 and r["scores"] == scores and r["probabilities"] == probs, r
        code, out, _ = run_cli("softmax", *args)
        assert code == 0 and f"{max(probs):.4f}" in out
    exact = cl.softmax(torch.tensor([1e300, 0.0], dtype=torch.float64))
    assert exact.tolist() == [1.0, 0.0] and exact.dtype == torch.float64
    assert cl.softmax([1, 2], temperature=1e-300).tolist() == [0.0, 1.0]


@pytest.mark.parametrize(
    "args, message",
    [
        (("nan", "1"), "the scores contain NaN"),
        (("--", "-inf", "-inf"), "every score is -inf"),
        (("1", "2", "-t", "0"), "temperature must be > 0 and finite (got 0.0)"),
        (("1", "2", "-t", "-1"), "temperature must be > 0 and finite (got -1.0)"),
        (("1", "2", "-t", "nan"), "temperature must be > 0 and finite (got nan)"),
        (("1", "2", "-t", "inf"), "temperature must be > 0 and finite (got inf)"),
    ],
)
def test_softmax_refuses_what_has_no_answer(run_cli, args, message):
    for json_flag in ((), ("--json",)):
        result = run_cli("softmax", *json_flag, *args)
        one_error(result, message)
        assert result[1] == ""


def test_json_output_never_holds_nan(capsys):
    from contextlens.cli.app import emit_json

    with pytest.raises(cl.ContextlensError, match="NaN or infinity, which JSON cannot carry"):
        emit_json({"spearman": math.nan})
    assert capsys.readouterr().out == ""


# ── 6. the wrong kind of model ──────────────────────────────────────────────────────────────
@pytest.mark.parametrize(
    "args",
    [("next", "hi"), ("generate", "hi"), ("chat", "--message", "hi")],
)
def test_decoder_commands_name_the_models_that_fit(run_cli, args):
    one_error(
        run_cli(*args, "-m", "glove-50"),
        f"glove-50 is a static word-vector table; `{args[0]}` needs a decoder such as smollm2 "
        "(-m smollm2)",
    )
    one_error(run_cli(*args, "-m", "minilm"), f"minilm is an encoder; `{args[0]}` needs a decoder")


@pytest.mark.parametrize(
    "args",
    [
        ("tokens", "hi"),
        ("embed", "hi"),
        ("attention", ANIMAL),
        ("heads", ANIMAL),
        ("shift", "bank", *BANK),
        ("coref", ANIMAL, "--pronoun", "it", "--candidates", "animal,street"),
        ("evaluate", "sts", DATA / "stsb-dev.csv"),
        ("evaluate", "coref", DATA / "wsc-dev.jsonl"),
    ],
)
def test_contextual_commands_refuse_a_static_model(run_cli, args):
    command = " ".join(str(a) for a in args[: 2 if args[0] == "evaluate" else 1])
    one_error(
        run_cli(*args, "-m", "glove-50"),
        f"glove-50 is a static word-vector table; `{command}` needs a transformer such as "
        "minilm or smollm2 (-m minilm)",
    )


def test_similarity_still_takes_static_word_vectors(run_cli):
    code, out, _ = run_cli("similarity", "king", "queen", "-m", "glove-50", "--json")
    assert code == 0 and strict_json(out)["cosine"][0][1] == pytest.approx(0.784, abs=1e-3)


# ── 7. a word inside text written without spaces, emoji, combining marks ───────────────────
def test_attention_from_a_word_inside_unsegmented_text(run_cli, tmp_path):
    pic = tmp_path / "beijing.png"
    code, out, err = run_cli(
        "attention", "我爱北京天安门", "--from", "北京", "--json", "--plot", pic
    )
    r = strict_json(out)
    assert code == 0 and pic.stat().st_size > 3000
    assert err == "" or (  # without a Chinese font: one note, not a warning per character
        err.startswith("note: the font has no glyphs for ") and err.count("\n") == 1
    )
    assert (r["source"]["text"], r["source"]["start"], r["source"]["end"]) == ("北京", 2, 4)
    assert len(r["source"]["tokens"]) == 2  # minilm: one token per character
    code, out, _ = run_cli(
        "attention", "我爱北京天安门", "--from", "北京", "-m", "smollm2", "--json"
    )
    r = strict_json(out)
    assert code == 0 and r["source"]["text"] == "北京" and len(r["source"]["tokens"]) == 4  # bytes
    one_error(
        run_cli("attention", ANIMAL, "--from", "anim"),
        "'anim' is not a word of the text: it is only part of a token there; choose whole "
        "tokens, such as 'animal' (characters 4..10; see `contextlens tokens`)",
    )


def test_attention_from_an_emoji_and_a_word_with_a_combining_mark(run_cli):
    text = "I love 🍕 and 🍕 too"
    one_error(run_cli("attention", text, "--from", "🍕"), "'🍕' occurs 2 times (characters")
    code, out, _ = run_cli("attention", text, "--from", "🍕", "--occurrence", "2", "--json")
    r = strict_json(out)
    assert code == 0 and (r["source"]["text"], r["source"]["start"]) == ("🍕", 13)
    cafe = "cafe\u0301"  # é as e + a combining acute accent
    code, out, _ = run_cli("attention", f"the {cafe} was open", "--from", cafe, "--json")
    r = strict_json(out)
    assert code == 0 and r["source"]["text"] == cafe and len(r["source"]["tokens"]) == 1


# ── 9. numeric options ──────────────────────────────────────────────────────────────────────
@pytest.mark.parametrize(
    "args, message",
    [
        (("embed", "hi", "--show", "0"), "--show must be ≥ 1 (got 0)"),
        (("next", "hi", "-k", "-1"), "k must be ≥ 1 (got -1)"),
        (("next", "hi", "-t", "nan"), "temperature must be > 0 and finite (got nan)"),
        (("next", "hi", "-t", "inf"), "temperature must be > 0 and finite (got inf)"),
        (("generate", "hi", "-n", "-1"), "max_new_tokens must be ≥ 1 and below smollm2's"),
        (("generate", "hi", "-n", "9000"), "context of 8192 tokens (got 9000)"),
        (("generate", "hi", "-t", "nan"), "temperature must be ≥ 0 and finite (got nan)"),
        (("generate", "hi", "-t", "-1"), "temperature must be ≥ 0 and finite (got -1.0)"),
        (("generate", "hi", "--top-k", "0"), "top_k must be ≥ 1 (got 0)"),
        (("generate", "hi", "--top-p", "0"), "top_p must be in (0, 1] (got 0.0)"),
        (("generate", "hi", "--top-p", "nan"), "top_p must be in (0, 1] (got nan)"),
        (("generate", "hi", "--seed", "-1"), "seed must be a whole number in 0..2**64-1"),
        (("chat", "--message", "hi", "-n", "0"), "max_new_tokens must be ≥ 1"),
        (("attention", ANIMAL, "--layer", "-1"), "layer -1 is out of range"),
        (("attention", ANIMAL, "--head", "-1"), "head -1 is out of range"),
        (("attention", ANIMAL, "--top", "0"), "--top must be ≥ 1 (got 0)"),
        (
            ("attention", ANIMAL, "--from", "it", "--occurrence", "0"),
            "'it' occurs 1 time(s); occurrence must be 1..1 (got --occurrence 0)",
        ),
        (("heads", ANIMAL, "--top", "0"), "--top must be ≥ 1 (got 0)"),
        (
            ("heads", ANIMAL, "--from", "the", "--to", "it"),
            "choose one with --from-occurrence 1..2",
        ),
        (
            ("heads", ANIMAL, "--from", "it", "--to", "the", "--to-occurrence", "3"),
            "occurrence must be 1..2 (got --to-occurrence 3)",
        ),
        (("shift", "bank", *BANK, "--neighbours", "0"), "--neighbours must be ≥ 1 (got 0)"),
        (("shift", "bank", *BANK, "--groups", "0"), "--groups must be ≥ 1 (got 0)"),
        (
            ("coref", ANIMAL, "--pronoun", "it", "--candidates", "animal,street", "--head", "6.0"),
            "layer 6 is out of range",
        ),
        (
            ("coref", ANIMAL, "--pronoun", "it", "--candidates", "animal,street", "--head", "0.12"),
            "head 12 is out of range",
        ),
        (
            ("evaluate", "coref", DATA / "wsc-dev.jsonl", "--batch-size", "0"),
            "--batch-size must be ≥ 1 (got 0)",
        ),
        (("evaluate", "coref", DATA / "wsc-dev.jsonl", "--limit", "0"), "--limit must be ≥ 1"),
        (
            (
                "evaluate",
                "wic",
                DATA / "wic/dev.data.txt",
                DATA / "wic/dev.gold.txt",
                "--limit",
                "3",
            ),
            "--limit must be ≥ 4 (got 3)",
        ),
    ],
)
def test_numeric_options_out_of_range_get_one_line(run_cli, args, message):
    one_error(run_cli(*args), message)
