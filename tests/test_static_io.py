"""Word-vector files: each format round-trips and reads like gensim; bad files fail in one line."""

from pathlib import Path

import numpy as np
import pytest
import torch
from gensim.models import KeyedVectors
from test_static_hardening import error

import contextlens as cl
from contextlens.static import WordVectors, load_vectors

GENSIM_DATA = Path(__import__("gensim").__file__).parent / "test" / "test_data"


@pytest.fixture(scope="module")
def small():
    """The first 3,000 glove-50 words (quotes, commas and 's included) and their vectors."""
    wv = cl.load("glove-50")
    return WordVectors(wv.words[:3000], wv.vectors[:3000].clone(), "small")


@pytest.mark.parametrize(
    ("name", "fmt", "binary", "header"),
    [
        ("v.txt", "glove", False, False),
        ("v.vec", "word2vec", False, True),
        ("v.bin", "word2vec-binary", True, True),
    ],
)
def test_round_trip_and_gensim_agree(small, tmp_path, name, fmt, binary, header):
    path = tmp_path / name
    assert small.save(path) == fmt
    back = cl.load(path)  # the loader picks the reader by suffix and header
    assert back.words == small.words
    assert torch.equal(back.vectors, small.vectors)  # shortest float32 text round-trips exactly
    theirs = KeyedVectors.load_word2vec_format(str(path), binary=binary, no_header=not header)
    assert theirs.index_to_key == small.words
    np.testing.assert_array_equal(theirs.vectors, small.vectors.numpy())
    kv = KeyedVectors(small.dim)
    kv.add_vectors(small.words, small.vectors.numpy())
    gensim_file = tmp_path / f"gensim-{name}"
    kv.save_word2vec_format(str(gensim_file), binary=binary, write_header=header)
    assert torch.equal(load_vectors(gensim_file).vectors, small.vectors)
    assert list(tmp_path.glob(".*.tmp")) == []


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("test_glove.txt", {"no_header": True}),  # GloVe text
        ("lee_fasttext.vec", {}),  # fastText .vec: header, a space at the end of each row
        ("high_precision.kv.txt", {}),  # word2vec text
        ("euclidean_vectors.bin", {"binary": True}),  # word2vec binary
        ("poincare_vectors.bin", {"binary": True}),
    ],
)
def test_real_files_read_like_gensim(name, options):
    ours = load_vectors(GENSIM_DATA / name)
    theirs = KeyedVectors.load_word2vec_format(str(GENSIM_DATA / name), **options)
    assert ours.words == theirs.index_to_key
    np.testing.assert_array_equal(ours.vectors.numpy(), theirs.vectors)


def test_duplicate_words_keep_the_first_row(tmp_path):
    path = tmp_path / "dup.txt"
    path.write_text("a 1 2\nb 3 4\na 5 6\n")
    wv = load_vectors(path)
    assert wv.words == ["a", "b"] and wv["a"].tolist() == [1.0, 2.0]


def test_unknown_words_and_empty_queries(small):
    assert "'xyzzy' is not in the vocabulary of small" in error(small.most_similar, "xyzzy")
    assert torch.equal(small["The"], small["the"])  # an all-lower-case vocabulary folds case
    assert "'qqq'" in error(small.analogy, "the", "qqq", "of")
    assert "'nope'" in error(small.similarity, "the", "nope")
    assert "'nope'" in error(small.doesnt_match, ["the", "of", "nope"])
    assert "empty" in error(small.most_similar, [])
    assert "empty" in error(small.doesnt_match, [])
    assert "positive" in error(small.most_similar_cosmul, negative=["the"])
    assert "50 numbers" in error(small.similar_by_vector, [1.0, 2.0])
    assert "k must be" in error(small.most_similar, "the", k=0)
    assert "3cosadd or 3cosmul" in error(small.analogy, "the", "of", "a", method="cos")
    assert "euclidean" in error(small.distance, "the", "of", "hamming")
    assert "put + or −" in error(small.arithmetic, "the + + of")
    assert "ends with" in error(small.arithmetic, "the -")


def test_wrong_number_of_values(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("a 1 2 3\nb 4 5 6\nc 7 8\nd 1 1 1\n")
    assert "line 3 has 2 values, expected 3 (word 'c')" in error(load_vectors, path)
    path.write_text("3 2\na 1 2\nb 3 4 5\nc 5 6\n")
    assert "line 3 has 3 values, expected 2" in error(load_vectors, path)
    path.write_text("a 1 x\n")
    assert "'x' where a number should be" in error(load_vectors, path)
    path.write_text("3 2\na 1 2\nb 3 4\n")
    assert "the header says 3 words but the file has 2 rows" in error(load_vectors, path)
    path.write_text("2 3\na 1 2\n")
    assert "header says 3 dimensions" in error(load_vectors, path)


def test_binary_file_cut_short(small, tmp_path):
    path = tmp_path / "v.bin"
    small.save(path)
    data = path.read_bytes()
    cut = tmp_path / "cut.bin"
    cut.write_bytes(data[: len(data) // 2])
    assert "the file is truncated" in error(load_vectors, cut)  # found from its size alone
    assert "has room for 1,545 at most" in error(load_vectors, cut)
    cut.write_bytes(data[:-100])
    assert "ends inside word 3000 of 3000; it is truncated" in error(load_vectors, cut)
    cut.write_bytes(data + b"extra 1234")
    assert "follow the 3000 words" in error(load_vectors, cut)
    assert "fastText model" in error(load_vectors, GENSIM_DATA / "crime-and-punishment.bin")


def test_non_utf8_words(tmp_path):
    # a real file: fastText vectors whose line 150 starts with a byte that is not UTF-8
    real = GENSIM_DATA / "pang_lee_polarity_fasttext.vec"
    assert "line 150 is not valid UTF-8" in error(load_vectors, real)
    text = tmp_path / "latin1.txt"
    text.write_bytes("a 1 2\ncafé 3 4\n".encode("latin-1"))
    assert "line 2 is not valid UTF-8" in error(load_vectors, text)
    binary = tmp_path / "latin1.bin"
    vec = np.ones(2, dtype="<f4").tobytes()
    binary.write_bytes(b"2 2\na " + vec + "café ".encode("latin-1") + vec)
    assert "word 2 (b'caf\\xe9') is not valid UTF-8" in error(load_vectors, binary)


def test_saving_never_leaves_half_a_file(small, tmp_path):
    bad = WordVectors(["a", "b c"], torch.ones(2, 3))
    target = tmp_path / "bad.txt"
    assert "contains whitespace" in error(bad.save, target)
    assert "cannot tell the format" in error(small.save, tmp_path / "v.dat")
    assert "is not a folder" in error(small.save, tmp_path / "missing" / "v.txt")
    assert list(tmp_path.iterdir()) == []
    assert "[2, d] matrix" in error(WordVectors, ["a", "b"], torch.ones(3, 2))
