"""The fast paths of word vectors give the exact answers.

`most_similar` and the 3CosAdd analogy evaluation (`WordVectors.best`) scan an int8 copy of the
unit vectors and score exactly only the rows that can still be among the best; their ranking
must be the one of scoring every row exactly (float64 cosines of the float32 vectors), equal
cosines ranked by row. Checked on glove-50 over many queries, with the int8 scan (AVX2 and the
portable scalar build) and with the float32 scan used without a C compiler, and on tables built
to defeat the scan (rows closer together than its int8 steps, repeated rows).
"""

from functools import cache

import numpy as np
import pytest
import torch

import contextlens as cl
from contextlens.analysis.wordvectors import cosadd_queries
from contextlens.nn import scan as int8
from contextlens.static import WordVectors


@pytest.fixture(scope="module")
def wv():
    return cl.load("glove-50")


@pytest.fixture(params=["int8", "float32"])
def scan(request, monkeypatch):
    """Each test runs with the int8 scan and with the float32 one (as without a C compiler)."""
    if request.param == "float32":
        monkeypatch.setattr(int8, "library", lambda: None)
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
    assert (table.scan is not None) == (scan == "int8")


def scan_scores(scanner: int8.Int8Scan, queries: torch.Tensor) -> torch.Tensor:
    """The int8 scan's own cosines of unit `queries` `[m, d]` with every row: `[m, n]` float64."""
    rows = scanner.table.transpose(1, 2).reshape(-1, 4 * scanner.quads).double() - 128
    q, _ = scanner._rounded(queries)
    scale = queries.double().abs().amax(1, keepdim=True) / int8.QUERY_MAX
    d, n = queries.shape[1], len(scanner.unit)
    return (q.double() * scale)[:, :d] @ (rows[:n, :d] * scanner.step).T


def scan_misorders(table: WordVectors, query: torch.Tensor, k: int) -> bool:
    """Whether the scan's own scores would rank the k best differently from the exact ones."""
    approx = scan_scores(table.scan, query[None])[0]
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
    scanner = wv.scan
    rows = scanner.table.transpose(1, 2).reshape(-1, 4 * scanner.quads)[: len(wv), : wv.dim]
    error = ((rows.double() - 128) * scanner.step - wv.unit.double()).abs()  # [n, d]
    assert float(error.max()) <= scanner.step / 2 * int8.ROW_ERROR
    assert float(error.max()) > scanner.step / 4  # the bound is not loose by much
    assert scanner.table[0].numel() == 8 * 52  # 8 rows of 52 bytes instead of 200


def test_scan_scores_stay_within_the_margin(wv):
    """Every scan score is within half the query's margin of the exact cosine, and the bound
    is not loose by more than a few times."""
    g = torch.Generator().manual_seed(2)
    queries = cl.metrics.normalize(torch.randn(40, wv.dim, generator=g))
    queries = torch.cat([queries, wv.unit[:40]])  # [80, d]: random and real
    error = (scan_scores(wv.scan, queries) - queries.double() @ wv.unit.double().T).abs()
    scale = queries.double().abs().amax(1) / int8.QUERY_MAX
    slack = wv.scan._rounded(queries)[1].double() * scale * wv.scan.step / 2  # [80]
    assert (error.amax(1) <= slack).all()
    assert (error.amax(1) > slack / 6).all()


def analogy_queries(wv: WordVectors, m: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """m random analogy questions among the 30,000 commonest words: queries `[m, d]`, a b c."""
    abc = torch.randint(0, 30_000, (m, 3), generator=torch.Generator().manual_seed(seed))
    return cosadd_queries(wv.unit, abc), abc


def test_many_queries_at_once_are_each_ranked_exactly(wv, scan):
    """`best` on 203 queries (threads over blocks of queries, a last block of 11) ranks each
    one as scoring every row would, and as asking for it alone does."""
    table = fresh(wv)
    queries, abc = analogy_queries(wv, 203, 3)
    rows, scores = table.best(queries, 5, abc, 300_000)
    for i in range(0, 203, 7):
        expected = every_row(wv, queries[i], 5, abc[i].tolist(), 300_000)
        ours = [(wv.words[r], s) for r, s in zip(rows[i].tolist(), scores[i].tolist(), strict=True)]
        assert ours == expected, i
        alone = table.best(queries[i : i + 1], 5, abc[i : i + 1], 300_000)
        assert torch.equal(alone[0], rows[i : i + 1]) and torch.equal(alone[1], scores[i : i + 1])


def test_queries_that_keep_more_rows_than_the_buffer_holds_are_scanned_again(wv, monkeypatch):
    """With room for 4 rows a query, most queries must be scanned again with more room."""
    monkeypatch.setattr(int8, "CAP", 4)
    queries, abc = analogy_queries(wv, 30, 4)
    calls = []
    call = int8.Int8Scan._call
    monkeypatch.setattr(
        int8.Int8Scan, "_call", lambda self, *a: calls.append(a[-1]) or call(self, *a)
    )
    rows, scores = wv.scan.best(queries, 1, abc, 50_000)
    assert calls[0] == 4 and calls[1] == 64  # the first call's room, then 16 times more
    for i in range(30):
        expected = every_row(wv, queries[i], 1, abc[i].tolist(), 50_000)
        assert [(wv.words[int(rows[i, 0])], float(scores[i, 0]))] == expected


def test_the_portable_scalar_kernel_gives_the_same_answers(wv):
    portable = int8.Int8Scan(int8.library(portable=True), wv.unit)
    queries, abc = analogy_queries(wv, 20, 5)
    for r, k in ((400_000, 10), (7_000, 3)):
        expected = wv.scan.best(queries, k, abc, r)
        ours = portable.best(queries, k, abc, r)
        assert torch.equal(ours[0], expected[0]) and torch.equal(ours[1], expected[1])


@pytest.mark.parametrize("dim", [1, 7, 130])
def test_any_width_is_ranked_exactly(scan, dim):
    """Widths that are not a multiple of the kernel's 4 values, and a table of 1,003 rows (not
    a multiple of its 16-row blocks)."""
    g = torch.Generator().manual_seed(dim)
    table = WordVectors([f"w{i}" for i in range(1_003)], torch.randn(1_003, dim, generator=g))
    for row in (0, 500, 1_002):
        query = table.unit[row]
        assert table.most_similar(f"w{row}", k=7) == every_row(table, query, 7, [row])
    assert len(table.most_similar("w3", k=2_000)) == 1_002
