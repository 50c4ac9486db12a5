"""Word-vector files and lookups under bad input: NaN or infinity in a row, sizes that do not
fit the file, rows read without bound, case and typos in words, bytes that are not UTF-8."""

import json
import math
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import contextlens as cl
from contextlens.errors import ContextlensError
from contextlens.static import WordVectors, load_vectors

CLI = Path(sys.executable).parent / "contextlens"


@pytest.fixture(scope="module")
def glove():
    return cl.load("glove-50")


@pytest.fixture(scope="module")
def small(glove):
    """The first 2,000 glove-50 words ("man" is among them) and their vectors."""
    return WordVectors(glove.words[:2000], glove.vectors[:2000].clone(), "small")


def error(fn, *args, **kwargs) -> str:
    """The one-line message of the ContextlensError that `fn(*args, **kwargs)` raises."""
    with pytest.raises(ContextlensError) as e:
        fn(*args, **kwargs)
    message = str(e.value)
    assert "\n" not in message
    return message


def with_bad_values(small, path: Path, values: dict[str, str]) -> Path:
    """`small` saved as text at `path`, the first number of each word's row set to its value."""
    small.save(path)
    lines = path.read_text(encoding="utf-8").split("\n")
    for word, value in values.items():
        i = small.row(word) + (path.suffix == ".vec")
        fields = lines[i].split(" ")
        lines[i] = " ".join([fields[0], value, *fields[2:]])
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


# -- rows holding NaN or infinity ------------------------------------------------------------


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "Infinity", "1e400"])
def test_text_row_with_nan_or_infinity_is_refused_with_its_line(small, tmp_path, value):
    path = with_bad_values(small, tmp_path / "v.txt", {"man": value})
    line = small.row("man") + 1
    message = error(load_vectors, path)
    assert f"line {line} (word 'man') holds NaN or infinity" in message
    assert "skip_bad_rows=True" in message and "--skip-bad-rows" in message


def test_line_numbers_count_the_header_and_blank_lines(small, tmp_path):
    path = with_bad_values(small, tmp_path / "v.vec", {"man": "nan"})
    line = small.row("man") + 2  # the header is line 1
    assert f"line {line} (word 'man')" in error(load_vectors, path)
    path.write_text(path.read_text(encoding="utf-8").replace("\n", "\n\n", 5))
    assert f"line {line + 5} (word 'man')" in error(load_vectors, path)
    glove_text = tmp_path / "v.txt"
    glove_text.write_text("\n\n" + "\n".join(path.read_text().split("\n")[1:]))
    assert f"line {line + 6} (word 'man')" in error(load_vectors, glove_text)


def test_binary_row_with_nan_is_refused_with_its_row(small, tmp_path):
    path = tmp_path / "v.bin"
    small.save(path)
    data = bytearray(path.read_bytes())
    start = data.index(b"\nman ") + len(b"\nman ")
    data[start + 8 : start + 12] = struct.pack("<f", math.nan)
    path.write_bytes(bytes(data))
    assert f"row {small.row('man') + 1} (word 'man') holds NaN" in error(load_vectors, path)
    wv = load_vectors(path, skip_bad_rows=True)
    assert "man" not in wv and len(wv) == len(small) - 1


def test_skip_bad_rows_leaves_them_out_and_says_how_many(small, tmp_path):
    path = with_bad_values(small, tmp_path / "v.txt", {"man": "nan", "woman": "-inf"})
    wv = load_vectors(path, skip_bad_rows=True)
    assert "man" not in wv and "woman" not in wv and len(wv) == len(small) - 2
    assert wv.notes == [
        f"v.txt: skipped 2 rows holding NaN or infinity, the first at line "
        f"{small.row('man') + 1} (word 'man')"
    ]
    theirs = [w for w, _ in small.most_similar("king", k=8) if w not in ("man", "woman")]
    assert [w for w, _ in wv.most_similar("king", k=5)] == theirs[:5]


def test_a_file_of_only_bad_rows_is_refused_even_when_skipping(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("a nan 1\nb 1 inf\n")
    assert "every row holds NaN or infinity" in error(load_vectors, path, skip_bad_rows=True)


def test_tables_and_queries_built_in_python_refuse_nan(small):
    vectors = torch.ones(3, 4)
    vectors[1, 2] = math.inf
    assert "row 2 (word 'b') of vectors holds NaN or infinity" in error(
        WordVectors, ["a", "b", "c"], vectors
    )
    assert "NaN or infinity" in error(small.similar_by_vector, [math.nan] * 50)


def test_cli_nan_rows(small, tmp_path, run_cli):
    path = with_bad_values(small, tmp_path / "v.txt", {"man": "nan"})
    code, out, err = run_cli("neighbors", "king", "-m", path)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "(word 'man') holds NaN or infinity" in err and "--skip-bad-rows" in err
    code, out, err = run_cli("neighbors", "king", "-m", path, "--skip-bad-rows", "--json")
    assert code == 0 and err == "note: v.txt: skipped 1 row holding NaN or infinity, " + (
        f"the first at line {small.row('man') + 1} (word 'man')\n"
    )
    assert "man" not in [n["word"] for n in json.loads(out)["neighbors"]]
    code, out, _ = run_cli("vectors", "king", "-m", path, "--skip-bad-rows", "--json")
    assert code == 0 and json.loads(out)["vectors"]["king"] == small["king"].tolist()
    code, _, err = run_cli("analogy", "man", "king", "woman", "-m", path, "--skip-bad-rows")
    assert code == 2 and "'man' is not in the vocabulary of" in err
    code, _, err = run_cli("evaluate", "simlex", "-m", path, "--skip-bad-rows")
    assert code == 0 and "skipped 1 row holding" in err
    code, _, err = run_cli("neighbors", "king", "-m", "minilm", "--skip-bad-rows")
    assert code == 2 and "contextual model" in err


# -- sizes, checked before anything is allocated --------------------------------------------


MEMORY_SCRIPT = """
import json, resource, sys
from contextlens.errors import ContextlensError
from contextlens.io.wordvectors import read_vectors

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

read_vectors(sys.argv[1])  # a small valid file: the readers' own start-up is not counted
before, messages = peak(), []
for path in sys.argv[2:]:
    try:
        read_vectors(path)
        messages.append("loaded")
    except ContextlensError as e:
        messages.append(str(e))
print(json.dumps({"grew_mb": peak() - before, "messages": messages}))
"""


def test_memory_stays_bounded_on_hostile_files(tmp_path):
    wide = "w " + "0 " * 2_000_000 + "\n"
    files = {
        "ok.txt": b"a 1 2\nb 3 4\n",
        "wide-first.txt": (wide + "b 1 2\n").encode(),
        "wide-later.txt": ("a 1 2\n" + wide).encode(),
        "many-dims.txt": ("w " + "0 " * 20_000 + "\n").encode(),
        "huge-count.bin": b"99999999999 50\n" + b"a " + bytes(200),
        "huge-dims.bin": b"2 2000000000\n" + b"a " + bytes(200),
        "huge-count.vec": b"99999999999 2\na 1 2\n",
        "blank-lines.txt": ("w " + "0 " * 1000 + "\n").encode() + b"\n" * 200_000,
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    run = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, *(str(tmp_path / n) for n in files)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    wide_first, wide_later, many, count_bin, dims_bin, count_vec, blank = result["messages"]
    assert "line 1 is longer than 1,048,576 bytes" in wide_first
    assert "line 2 is longer than 1,048,576 bytes" in wide_later
    assert "the first row has 20,000 values, more than the 16,384 dimensions" in many
    assert "the header says 99,999,999,999 words of 50 dimensions" in count_bin
    assert "(202 bytes) has room for 1 at most" in count_bin
    assert "2,000,000,000 dimensions" in dims_bin
    assert "the header says 99,999,999,999 words of 2 dimensions" in count_vec
    assert blank == "loaded"
    assert result["grew_mb"] < 300, result


def test_blank_lines_do_not_size_the_matrix(tmp_path):
    path = tmp_path / "blank.txt"
    path.write_bytes(("w " + "0 " * 1000 + "\n").encode() + b"\n" * 1_000_000)
    wv = load_vectors(path)
    assert (len(wv), wv.dim) == (1, 1000)
    assert wv.vectors.untyped_storage().nbytes() <= 4 * path.stat().st_size


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "is empty; a word2vec binary file starts with a `count dims` line"),
        (b"3 0\n", "the header says 3 words of 0 dimensions; both must be at least 1"),
        (b"3 -50\n" + bytes(100), "3 words of -50 dimensions; both must be at least 1"),
        (b"0 50\n", "0 words of 50 dimensions"),
        (b"1 2\n" + b"x" * 70_000 + bytes(8), "word 1 of 1 has no space within 65,536 bytes"),
        (b"one two\n", "the first line must be `count dims`"),
    ],
)
def test_bad_binary_headers(tmp_path, data, expected):
    path = tmp_path / "v.bin"
    path.write_bytes(data)
    assert expected in error(load_vectors, path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2 0\na\nb\n", "2 words of 0 dimensions"),
        ("2 -3\na 1 2 3\n", "2 words of -3 dimensions"),
        ("a \nb \n", "no word vectors found"),
        ("2 3\na 1 2 3 \nb 1 2 \n", "line 3 has 2 values, expected 3 (word 'b')"),  # .vec rows
        ("2 3\na 1 2 3 \nb 1 2 3 4 \n", "line 3 has 4 values, expected 3"),
        ("a 1 2\nb 1 zwei\n", "line 2 has 'zwei' where a number should be (word 'b')"),
        ("a 1 2\nb 1 " + "9" * 500 + "x\n", "where a number should be"),
    ],
)
def test_bad_text_files(tmp_path, text, expected):
    path = tmp_path / "v.vec"
    path.write_text(text)
    message = error(load_vectors, path)
    assert expected in message and len(message) < 400


def test_invalid_utf8_word_in_a_vec_file(tmp_path):
    path = tmp_path / "v.vec"
    path.write_bytes(b"2 2\nok 1 2 \ncaf\xe9 3 4 \n")
    assert "line 3 is not valid UTF-8 (invalid continuation byte at byte 3)" in error(
        load_vectors, path
    )


def test_repeated_words_keep_the_first_row_with_a_note(tmp_path, run_cli):
    path = tmp_path / "dup.txt"
    path.write_text("a 1 2\nb 3 4\na 5 6\nb 7 8\nc 9 9\nb 0 1\n")
    wv = load_vectors(path)
    assert wv.words == ["a", "b", "c"] and wv["b"].tolist() == [3.0, 4.0]
    assert wv.notes == [
        "left out 3 later rows of repeated words (the first: 'a'); each word keeps its first "
        "row, as gensim does"
    ]
    code, _, err = run_cli("vectors", "a", "-m", path)
    assert code == 0 and err.startswith("note: left out 3 later rows")
    assert WordVectors(["x", "x"], torch.eye(2)).notes[0].startswith("left out 1 later row of")


# -- the OOV share is a fraction -------------------------------------------------------------


def test_oov_is_a_fraction_everywhere(glove, tmp_path, run_cli):
    code, out, _ = run_cli("evaluate", "simlex", "--json")
    r = json.loads(out)
    assert code == 0 and "oov_ratio" not in r
    assert (r["oov"], r["oov_fraction"]) == (1, pytest.approx(1 / 999))
    lines = (Path(cl.__file__).parent / "data" / "questions-words.txt").read_text().split("\n")
    path = tmp_path / "questions.txt"
    path.write_text("\n".join(x for i, x in enumerate(lines) if x.startswith(":") or i % 40 == 0))
    subset = cl.evaluate_analogies(glove, path, restrict_vocab=20_000)
    d = cl.report.to_dict(subset.scores())
    assert "oov_ratio" not in d and 0 < d["oov_fraction"] == subset.oov_fraction < 1
    assert d["oov_fraction"] == d["oov"] / (d["oov"] + d["evaluated"])


def test_analogy_evaluation_on_a_tiny_vocabulary_matches_gensim(tmp_path):
    from gensim.models import KeyedVectors

    words = ["a", "b", "c", "d", "e", "f"]
    vectors = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    wv, kv = WordVectors(words, vectors), KeyedVectors(4)
    kv.add_vectors(words, vectors.numpy())
    path = tmp_path / "tiny.txt"
    path.write_text(": s\na b c d\nb c d e\na c e b\nf e d c\nc a b f\n")
    ours = cl.evaluate_analogies(wv, path)
    _, theirs = kv.evaluate_word_analogies(str(path))
    s = ours.sections[0]
    right = [q for q, ok in zip(s.questions, s.correct, strict=True) if ok]
    assert (right, len(s.questions)) == (theirs[0]["correct"], 5)
    three = WordVectors(words[:3], vectors[:3])
    path.write_text(": s\na b c a\n")
    result = cl.evaluate_analogies(three, path)  # no word is left to answer with
    assert (result.sections[0].answers, result.accuracy) == ([""], 0.0)


# -- lookups: case and typos -----------------------------------------------------------------


def test_capitalised_words_use_the_lowercase_form_of_a_lowercase_vocabulary(glove):
    assert "Paris" not in glove and glove.lookup("Paris") == "paris"
    assert glove.most_similar("Paris", k=5) == glove.most_similar("paris", k=5)
    assert torch.equal(glove["PARIS"], glove["paris"])
    assert glove.similarity("Paris", "France") == glove.similarity("paris", "france")
    answers = glove.analogy("Man", "King", "Woman", k=3)
    assert answers == glove.analogy("man", "king", "woman", k=3) and answers[0][0] == "queen"
    assert "king" not in [w for w, _ in glove.most_similar("King")]  # still left out


def test_mixed_case_vocabularies_do_not_fold():
    wv = WordVectors(["Apple", "apple", "the"], torch.eye(3))
    assert wv.lookup("Apple") == "Apple" and wv.row("apple") == 1
    assert "'THE' is not in the vocabulary of vectors (3 words); try 'the'" in error(wv.row, "THE")


def test_unknown_words_suggest_close_ones(glove):
    message = error(glove.most_similar, "kingg")
    assert message.startswith("'kingg' is not in the vocabulary of glove-50 (400,000 words)")
    assert message.endswith("did you mean 'king', 'kings', 'kinga'?")
    assert "did you mean 'queen'" in error(glove.__getitem__, "Qeuen")  # a swap, any case
    assert "did you mean" not in error(glove.most_similar, "qwxzvkj")
    assert "did you mean" not in error(glove.most_similar, "a" * 60)


def test_cli_lookups(glove, run_cli):
    code, out, err = run_cli("neighbors", "Paris", "-k", "3", "--json")
    assert code == 0 and json.loads(out)["word"] == "paris"
    assert err == (
        "note: 'Paris' is not in glove-50, whose words are all lower-case; using 'paris'\n"
    )
    code, out, err = run_cli("analogy", "Man", "King", "Woman")
    assert code == 0 and "man : king :: woman : queen" in out and err.count("note:") == 3
    code, out, _ = run_cli("vectors", "King", "--json")
    assert json.loads(out)["vectors"]["king"] == glove["king"].tolist()
    code, out, _ = run_cli("similarity", "Paris", "France", "-m", "glove-50", "--json")
    assert code == 0 and json.loads(out)["cosine"][0][1] == pytest.approx(
        glove.similarity("paris", "france"), abs=1e-6
    )
    code, _, err = run_cli("neighbors", "kingg")
    assert code == 2 and err.endswith("did you mean 'king', 'kings', 'kinga'?\n")


def test_rich_markup_in_words_is_printed_as_is(tmp_path, run_cli):
    path = tmp_path / "markup.txt"
    path.write_text("[/bold] 1 0\n[red]x 0.9 0.1\nplain 0 1\n[b]y 1 1\n")
    code, out, _ = run_cli("neighbors", "[/bold]", "-m", path)
    assert code == 0 and "[red]x" in out
    code, out, _ = run_cli("analogy", "plain", "[/bold]", "[red]x", "-m", path)
    assert code == 0 and "plain : [/bold] :: [red]x : [b]y" in out
    code, out, _ = run_cli("vectors", "[b]y", "-m", path)
    assert code == 0 and out == "[b]y [2] 1 1\n"
    code, _, err = run_cli("analogy", "plain", "[/bold]", "[red]x", "-m", path, "--skip-bad-rows")
    assert code == 0, err
    questions = tmp_path / "[i].txt"
    questions.write_text(": [/i]\nplain [/bold] [red]x [b]y\n")
    code, out, err = run_cli("evaluate", "analogies", questions, "-m", path)
    assert code == 0 and "analogies: [i].txt" in out and "│ [/i]" in out, err
    pairs = tmp_path / "[i]-pairs.txt"
    pairs.write_text("plain [b]y 1\n[/bold] [red]x 9\nplain [red]x 2\n")
    code, out, err = run_cli("evaluate", "simlex", pairs, "-m", path)
    assert code == 0 and out.startswith("SimLex-999 ([i]-pairs.txt, "), err
    three = tmp_path / "three.txt"
    three.write_text("[/bold] 1 0\n[red]x 0.9 0.1\nplain 0 1\n")
    code, _, err = run_cli("analogy", "plain", "[/bold]", "[red]x", "-m", three)
    assert code == 2 and "has no word besides 'plain', '[/bold]' and '[red]x'" in err


# -- command-line words that are not UTF-8 ---------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["neighbors", "caf\udce9"],
        ["analogy", "man", "caf\udce9", "woman"],
        ["vectors", "king", "caf\udce9"],
        ["similarity", "caf\udce9", "king", "-m", "glove-50"],
    ],
)
def test_cli_words_that_are_not_utf8(run_cli, args):
    code, out, err = run_cli(*args)
    assert code == 2 and out == "" and err.startswith("error: ") and err.count("\n") == 1
    assert "not valid UTF-8" in err and "0xe9" in err


def test_cli_words_that_are_not_utf8_from_a_real_shell():
    run = subprocess.run(
        [CLI, b"neighbors", b"caf\xe9"], capture_output=True, timeout=120, check=False
    )
    assert run.returncode == 2 and run.stdout == b""
    assert run.stderr.startswith(b"error: ") and run.stderr.count(b"\n") == 1
    assert b"not valid UTF-8" in run.stderr


def test_library_words_that_are_not_utf8(glove):
    message = error(glove.most_similar, "caf\udce9")
    assert message.startswith("'caf\\udce9' is not in the vocabulary of glove-50")


def test_each_typed_loader_loads_its_own_kind_and_names_the_other(glove, small, tmp_path):
    path = tmp_path / "small.txt"
    small.save(path)
    assert "load it with load_vectors('glove-50')" in error(cl.load_model, "glove-50")
    assert f"load it with load_vectors({str(path)!r})" in error(cl.load_model, path)
    assert "load it with load_model('minilm')" in error(cl.load_vectors, "minilm")
    named = cl.load_vectors("glove-50")
    assert named.name == "glove-50" and torch.equal(named.vectors, glove.vectors)
    assert cl.load_vectors(path).name == "small.txt"
    assert isinstance(cl.load(path), WordVectors)
