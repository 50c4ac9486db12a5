"""The fast paths of word vectors give the exact answers.

`most_similar` scans an int8 copy of the unit vectors and scores exactly only the rows that can
still be among the best; its ranking must be the one of scoring every row exactly (float64
cosines of the float32 vectors), equal cosines ranked by row. Checked on glove-50 over many
queries, with the int8 scan and with the float32 scan used without a C compiler, and on tables
built to defeat the scan (rows closer together than its int8 steps, repeated rows).
"""

from functools import cache

import numpy as np
import pytest
import torch

import contextlens as cl
from contextlens import static
from contextlens.nn import quant
from contextlens.nn.quant import dequantize
from contextlens.static import WordVectors


@pytest.fixture(scope="module")
def wv():
    return cl.load("glove-50")


@pytest.fixture(params=["int8", "float32"])
def scan(request, monkeypatch):
    """Each test runs with the int8 scan and with the float32 one (as without a C compiler)."""
    if request.param == "float32":
        monkeypatch.setattr(quant, "kernels", lambda: None)
    return request.param


def fresh(wv: WordVectors) -> WordVectors:
    """A table over the same rows with no scan copy made yet (it follows the `scan` fixture)."""
    return WordVectors(wv.words, wv.vectors, wv.name)


@cache
def float64_rows(wv: WordVectors) -> np.ndarray:
    return wv.unit.numpy().astype(np.float64)


def every_row(wv: WordVectors, query: torch.Tensor, k: int, exclude=(), r=None):
    """The k best of the first r rows by cosine, every row scored (float64 in numpy, rounded to
    float32); equal cosines: the earlier row first."""
    r = len(wv) if r is None else r
    scores = (float64_rows(wv)[:r] @ query.numpy().astype(np.float64)).astype(np.float32)
    scores[[i for i in exclude if i < r]] = -np.inf
    k = min(k, r - len(set(exclude)))
    kth = np.partition(scores, r - k)[r - k]  # the k-th best score
    rows = np.flatnonzero(scores >= kth)  # all rows that tie with it too
    order = rows[np.lexsort((rows, -scores[rows]))][:k]
    return [(wv.words[i], float(scores[i])) for i in order]


def query_of(positive: torch.Tensor, negative: torch.Tensor | None = None) -> torch.Tensor:
    """most_similar's query: the normalised mean of unit vectors `[p, d]` and negated `[m, d]`."""
    q = positive if negative is None else torch.cat([positive, -negative])
    return cl.metrics.normalize(q.sum(0) / len(q))  # [d]


def test_most_similar_is_the_exact_ranking_of_every_row(wv, scan):
    table = fresh(wv)
    words = wv.words[:20] + wv.words[1_000:200_000:10_000] + wv.words[-5:]  # 45 words
    for w in words:
        row = wv.row(w)
        assert table.most_similar(w, k=10) == every_row(wv, query_of(wv.unit[[row]]), 10, [row])
    for a, b, c in [("man", "king", "woman"), ("paris", "france", "rome"), ("go", "went", "see")]:
        ours = table.most_similar([b, c], [a], k=25)
        assert ours == every_row(
            wv, query_of(wv.get_unit([b, c]), wv.get_unit([a])), 25, wv.rows([a, b, c]).tolist()
        )
    for i, w in enumerate(wv.words[200:40_000:2_000]):  # restricted, k up to 100, raw vectors
        r, k = 5_000 + 1_000 * i, 1 + 5 * i
        assert table.most_similar(w, k=k, restrict_vocab=r) == every_row(
            wv, query_of(wv.get_unit([w])), k, [wv.row(w)], r
        ), w
        v = wv[w] + 0.5 * wv["the"]
        ours = table.similar_by_vector(v, k=k, restrict_vocab=r)
        assert ours == every_row(wv, query_of(cl.metrics.normalize(v)[None]), k, (), r)
    assert table.most_similar("king", k=1, restrict_vocab=3) == every_row(
        wv, query_of(wv.get_unit(["king"])), 1, (), 3
    )
    assert (table._scan is not None) == (scan == "int8")


def scan_misorders(table: WordVectors, query: torch.Tensor, k: int) -> bool:
    """Whether the scan's own scores would rank the k best differently from the exact ones."""
    approx, _ = table.scan_scores(query, len(table))
    by_scan = torch.sort(approx, descending=True, stable=True).indices[:k].tolist()
    return [table.words[i] for i in by_scan] != [w for w, _ in every_row(table, query, k)]


def test_rows_closer_than_the_int8_steps_are_ranked_exactly(scan):
    """400 rows within 1e-3 of one direction: the int8 scan cannot tell them apart."""
    g = torch.Generator().manual_seed(0)
    base = torch.randn(50, generator=g)
    near = base + 1e-3 * torch.randn(400, 50, generator=g)
    rest = torch.randn(5_000, 50, generator=g)
    vectors = torch.cat([rest[:2_000], near, rest[2_000:]])
    table = WordVectors([f"w{i}" for i in range(len(vectors))], vectors)
    query = query_of(cl.metrics.normalize(base)[None])
    ours = table.similar_by_vector(base, k=50)
    assert ours == every_row(table, query, 50)
    assert {w for w, _ in ours} <= {f"w{i}" for i in range(2_000, 2_400)}
    if scan == "int8":
        assert scan_misorders(table, query, 50)


def test_equal_cosines_rank_the_earlier_row_first(scan):
    g = torch.Generator().manual_seed(1)
    vectors = torch.randn(3_000, 50, generator=g)
    vectors[[2_900, 7, 1_500]] = vectors[42].clone()  # the same vector four times
    vectors[300] = 2 * vectors[42]  # and once longer: the same unit vector
    table = WordVectors([f"w{i}" for i in range(3_000)], vectors)
    top = table.most_similar("w1500", k=5, exclude_query=False)
    assert [w for w, _ in top] == ["w7", "w42", "w300", "w1500", "w2900"]
    assert len({s for _, s in top}) == 1 and top[0][1] == pytest.approx(1.0, abs=1e-6)
    assert [w for w, _ in table.most_similar("w7", k=3)] == ["w42", "w300", "w1500"]
    cosmul = table.most_similar_cosmul("w1500", k=5, exclude_query=False)
    assert [w for w, _ in cosmul] == ["w7", "w42", "w300", "w1500", "w2900"]


def test_int8_copy_stays_within_half_a_step(wv):
    table, step = static.int8_copy(wv.unit)
    copy = dequantize(table)[:, : wv.dim]
    error = (copy - wv.unit).abs().amax(1)  # [n]
    assert float(error.max()) <= step / 2 * (1 + 1e-4)
    assert float(error.max()) > step / 4  # the bound is not loose by much
    assert table.data.shape == (len(wv), 68)  # 2 blocks of 34 bytes instead of 200 bytes
