"""fastText `.bin` models: the reader, the n-gram hashing, and vectors for known and unknown
words, against gensim's `load_facebook_vectors` on the models gensim ships for its own tests
(copied to tests/data: two of the old layout without a magic number, one of the new)."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from gensim.models.fasttext import ft_hash_bytes, ft_ngram_hashes, load_facebook_vectors

import contextlens as cl
from contextlens.errors import ContextlensError
from contextlens.io.fasttext import fnv1a, layout, ngrams, read_fasttext
from contextlens.word2vec import SubwordVectors

DATA = Path(__file__).parent / "data"
MODELS = ["lee_fasttext.bin", "lee_fasttext_new.bin", "non_ascii_fasttext.bin"]
UNSEEN = ["nightz", "governmnet", "Прывітанне", "übergrößenträger", "x", "日本語", "🙂ok"]


@pytest.mark.parametrize("name", MODELS)
def test_vectors_equal_gensim(name):
    theirs = load_facebook_vectors(str(DATA / name))
    ours = cl.load(DATA / name)
    assert isinstance(ours, SubwordVectors)
    assert ours.words == theirs.index_to_key
    known = np.abs(ours.vectors.numpy() - theirs.vectors).max()
    assert known < 1e-6
    for word in UNSEEN:
        assert word not in ours
        assert np.abs(ours[word].numpy() - theirs[word]).max() < 1e-6, word


def test_layout_tells_fasttext_from_word2vec(tmp_path):
    assert layout(DATA / "lee_fasttext.bin") == "old"
    assert layout(DATA / "lee_fasttext_new.bin") == "new"
    w2v = tmp_path / "vectors.bin"
    cl.WordVectors(["a", "b"], np.eye(2, dtype=np.float32)).save(w2v)
    assert layout(w2v) is None
    loaded = cl.load(w2v)
    assert not isinstance(loaded, SubwordVectors) and loaded.words == ["a", "b"]


def test_hash_and_ngrams_match_fasttext():
    # bytes ≥ 0x80 are sign-extended before the xor, as fastText's signed char makes them
    for text in [b"<night>", "<über>".encode(), "日本".encode(), b"\xff\x80", b""]:
        assert fnv1a(text) == ft_hash_bytes(text)
    for word in ["night", "über", "日本語", "a"]:
        grams = ngrams(word, 3, 6)
        assert [fnv1a(g) % 2000000 for g in grams] == ft_ngram_hashes(word, 3, 6, 2000000)
    assert b"<" not in ngrams("ab", 1, 2) and b"<a" in ngrams("ab", 1, 2)


def test_neighbours_and_similarity_of_misspelt_words(run_cli):
    model = str(DATA / "lee_fasttext_new.bin")
    theirs = load_facebook_vectors(model)
    ours = cl.load(model)
    expected = [w for w, _ in theirs.most_similar("governmnet", topn=5)]
    assert [w for w, _ in ours.most_similar("governmnet", k=5)] == expected
    assert ours.similarity("governmnet", "government") == pytest.approx(
        float(theirs.similarity("governmnet", "government")), abs=1e-5
    )
    code, out, err = run_cli("neighbors", "governmnet", "-m", model, "-k", "5", "--json")
    assert code == 0, err
    assert [n["word"] for n in __import__("json").loads(out)["neighbors"]] == expected
    code, out, err = run_cli("similarity", "governmnet", "government", "-m", model)
    assert code == 0 and "cosine similarity" in out


def test_truncated_and_foreign_files_are_one_line_errors(tmp_path, run_cli):
    data = (DATA / "lee_fasttext_new.bin").read_bytes()
    for cut in (6, 60, 200, len(data) // 2, len(data) - 3):
        short = tmp_path / f"cut{cut}.bin"
        short.write_bytes(data[:cut])
        with pytest.raises(ContextlensError, match="truncated|not a fastText|ends early"):
            read_fasttext(short)
    code, out, err = run_cli("neighbors", "night", "-m", str(tmp_path / "cut200.bin"))
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    other = tmp_path / "other.bin"
    other.write_bytes(b"\x00" * 64)
    with pytest.raises(ContextlensError, match="not a fastText model"):
        read_fasttext(other)
    bad = tmp_path / "future.bin"
    bad.write_bytes(data[:4] + (99).to_bytes(4, "little") + data[8:])
    with pytest.raises(ContextlensError, match="version 99"):
        read_fasttext(bad)


def test_copy_loads_under_any_name(tmp_path):
    copy = tmp_path / "model.bin"
    shutil.copy(DATA / "non_ascii_fasttext.bin", copy)
    wv = cl.load(copy)
    assert wv.name == str(copy) and len(wv) == 171 and "který" in wv


@pytest.mark.parametrize("name", ["lee_fasttext.bin", "lee_fasttext_new.bin"])
def test_load_vectors_on_fasttext_names_loaders_that_work(name):
    path = str(DATA / name)
    with pytest.raises(ContextlensError) as caught:
        cl.load_vectors(path)
    message = str(caught.value)
    assert "fastText model" in message and "\n" not in message
    for call in (f"load_fasttext({path!r})", f"load({path!r})"):
        assert call in message
        assert isinstance(eval(call, vars(cl)), SubwordVectors)
