"""fastText-style subword vectors trained by the word2vec trainer (`subwords=True`): the
n-gram rows each word is made of, the saved `.bin` as gensim reads it, vectors for unseen words
from their n-grams, and the command line."""

import json
from collections import Counter

import numpy as np
import pytest
from gensim.models import FastText
from gensim.models.fasttext import ft_ngram_hashes, load_facebook_vectors
from test_word2vec import purity, two_topics

import contextlens as cl
from contextlens.errors import ContextlensError
from contextlens.io import corpus
from contextlens.word2vec import Settings, SubwordVectors, Vocabulary, subword_rows

BUCKET = 2000
UNSEEN = ["horsee", "trucks", "übercar", "日本"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A skip-gram subword run on the two-topic corpus, saved as a fastText `.bin`."""
    folder = tmp_path_factory.mktemp("subwords")
    text = two_topics(folder / "topics.txt", 1500)
    out = folder / "topics.bin"
    run = cl.train_word2vec(
        text, out, dim=16, epochs=3, min_count=1, sample=0, subwords=True, bucket=BUCKET
    )
    return text, out, run


def test_each_word_is_made_of_the_ngram_buckets_gensim_gives_it(tmp_path):
    text = two_topics(tmp_path / "topics.txt", 200)
    sentences = list(corpus.sentences([text])) + [["über", "日本語"]]
    theirs = FastText(min_count=1, bucket=BUCKET, vector_size=8)
    theirs.build_vocab(sentences)
    vocab = Vocabulary(corpus.count_words([text]) + Counter(["über", "日本語"]), 1)
    rows, lengths = subword_rows(vocab.words, Settings(subwords=True, bucket=BUCKET))
    n = len(vocab.words)
    assert len(rows) == lengths.sum()
    for i, (word, start) in enumerate(zip(vocab.words, np.cumsum(lengths) - lengths, strict=True)):
        used = rows[start : start + lengths[i]]
        expected = theirs.wv.buckets_word[theirs.wv.key_to_index[word]]
        assert used[0] == i and sorted(used[1:] - n) == sorted(expected.tolist()), word


def test_saved_model_is_what_gensim_loads(trained):
    _, out, run = trained
    theirs = load_facebook_vectors(str(out))
    ours = cl.load(out)
    assert isinstance(ours, SubwordVectors) and ours.words == theirs.index_to_key
    assert np.abs(ours.vectors.numpy() - theirs.vectors).max() < 1e-6
    assert np.array_equal(ours.vectors.numpy(), run.vectors.vectors.numpy())
    for word in UNSEEN:
        assert word not in ours
        assert np.abs(ours[word].numpy() - theirs[word]).max() < 1e-6, word


def test_vectors_are_means_of_their_rows(trained):
    model = trained[2].vectors.model
    for word in UNSEEN:
        grams = model.ngram_matrix[ft_ngram_hashes(word, 3, 6, BUCKET)]
        assert np.allclose(trained[2].vectors[word].numpy(), grams.mean(0), atol=1e-6)
    i = model.words.index("horse")
    own = np.vstack(
        [model.word_rows[i], model.ngram_matrix[ft_ngram_hashes("horse", 3, 6, BUCKET)]]
    )
    assert np.allclose(trained[2].vectors["horse"].numpy(), own.mean(0), atol=1e-6)


def test_subwords_learn_and_place_misspelt_words(trained, run_cli):
    _, out, run = trained
    assert purity(run.vectors) > 0.9
    assert run.vectors.most_similar("horsee", k=1)[0][0] == "horse"
    code, stdout, err = run_cli("neighbors", "trucks", "-m", out, "-k", "3", "--json")
    assert code == 0, err
    assert "truck" in [n["word"] for n in json.loads(stdout)["neighbors"]]


def test_command_line_and_bad_output_name(tmp_path, run_cli):
    text = two_topics(tmp_path / "topics.txt", 300)
    out = tmp_path / "m.bin"
    code, stdout, err = run_cli(
        "train", "word2vec", text, "-o", out, "--subwords", "--bucket", "500", "--dim", "8",
        "--min-count", "1", "--mode", "cbow", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(stdout)["out"] == str(out) and isinstance(cl.load(out), SubwordVectors)
    code, stdout, err = run_cli("train", "word2vec", text, "-o", tmp_path / "m.vec", "--subwords")
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert "--out a .bin" in err and not (tmp_path / "m.vec").exists()
    with pytest.raises(ContextlensError, match="--maxn"):
        cl.train_word2vec(text, subwords=True, minn=5, maxn=4)
