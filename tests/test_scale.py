"""Search at scale, on real minilm embeddings: vectors in immutable shards read memory-mapped
(adding a document writes only its rows, removing one writes none), the live mask, compaction
of mostly dead and of many small shards, orphans of a killed writer swept, the first format's
indexes upgraded, the exact scan in query groups and over masked shards, the ANN memory budget,
and an index built from an embedding job's shards."""

import json
import shutil
import sqlite3
from pathlib import Path

import gensim
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from contextlens.errors import ContextlensError
from contextlens.search import Index, embed_corpus, evaluate, read_corpus
from contextlens.search import vectors as vectors_module
from contextlens.search.vectors import Part, exact_top, load_mask, top

LEE = Path(gensim.__file__).parent / "test" / "test_data" / "lee_background.cor"


@pytest.fixture(scope="module")
def embedded(minilm) -> tuple[np.ndarray, torch.Tensor]:
    """Unit embeddings of 90 Lee sentences `[90, 384]` and 5 queries `[5, 384]`."""
    lines = LEE.read_text().splitlines()[:20]
    sentences = [s for line in lines for s in line.split(". ") if s.strip()][:90]
    queries = ["bushfires", "cricket match", "the president", "a bank robbery", "rain"]
    unit = lambda x: torch.nn.functional.normalize(minilm.embed(x), dim=-1)  # noqa: E731
    return unit(sentences).numpy(), unit(queries)


def lee_folder(path: Path, n: int, first: int = 0) -> Path:
    path.mkdir(exist_ok=True)
    for i, line in enumerate(LEE.read_text().splitlines()[first : first + n], start=first):
        (path / f"lee{i:03d}.txt").write_text(line)
    return path


def shard_files(index: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted(index.glob("shard-*.npy"))}


def exact_ids(ix: Index, minilm, query: str, k: int) -> list[int]:
    """The k best live chunk ids by a plain matrix product over `Index.vectors()`."""
    ids, vectors = ix.vectors()
    q = torch.nn.functional.normalize(minilm.embed(query), dim=-1).numpy()
    return ids[np.argsort(-(vectors @ q), kind="stable")[:k]].tolist()


@pytest.mark.parametrize("budget", [90, 200, 1 << 24])  # 1, 2 or all 5 queries a group
def test_the_grouped_scan_is_one_matrix_product(embedded, monkeypatch, budget):
    rows, queries = embedded
    monkeypatch.setattr(vectors_module, "SCORES_BUDGET", budget)
    full = queries @ torch.from_numpy(rows).T  # [5, 90]
    for k in (1, 10, 90, 200):
        scores, found = exact_top(rows, queries, k)
        best = full.topk(min(k, 90), dim=1)
        assert torch.equal(found, best.indices)
        torch.testing.assert_close(scores, best.values, atol=1e-6, rtol=0)
    allowed = torch.zeros(90, dtype=torch.bool)
    allowed[::9] = True  # 10 rows
    scores, found = exact_top(rows, queries, 20, allowed)
    assert found.shape == (5, 10) and allowed[found].all()
    assert torch.equal(found, full.masked_fill(~allowed, -torch.inf).topk(10, dim=1).indices)
    none = torch.zeros(90, dtype=torch.bool)
    assert exact_top(rows, queries, 5, none)[1].shape == (5, 0)


def test_masked_shards_give_the_top_of_their_live_rows(embedded):
    """Three shards, two with dead rows: `top` is the top-k of the live rows alone."""
    rows, queries = embedded
    live = np.ones(90, dtype=bool)
    live[[3, 17, 40, 41, 42, 88]] = False
    cuts = [(0, 30), (30, 60), (60, 90)]
    parts = [Part(s, rows[a:b], None if live[a:b].all() else live[a:b]) for s, (a, b) in
             zip((7, 8, 9), cuts, strict=True)]  # fmt: skip
    scores, shards, found = top(parts, queries, 10)
    first = {7: 0, 8: 30, 9: 60}
    flat = torch.tensor([[first[s] for s in row] for row in shards.tolist()]) + found
    expected = (queries @ torch.from_numpy(rows).T).masked_fill(~torch.from_numpy(live), -1e9)
    assert torch.equal(flat, expected.topk(10, dim=1).indices)
    assert live[flat].all()


def test_adding_writes_only_new_rows_and_removing_writes_none(minilm, tmp_path):
    source = lee_folder(tmp_path / "docs", 8)
    ix = Index.create(tmp_path / "ix", minilm)
    ix.build([source], minilm)
    before = shard_files(ix.path)
    assert len(before) == 1
    lee_folder(source, 1, first=8)
    report = ix.add([source / "lee008.txt"], minilm)
    after = shard_files(ix.path)
    new = set(after) - set(before)
    assert {k: after[k] for k in before} == before  # old shards untouched
    assert len(new) == 1 and np.load(ix.path / new.pop()).shape == (report.chunks, 384)
    dead = next(d["chunks"] for d in ix.documents() if d["name"].endswith("lee002.txt"))
    ix.remove([str(source / "lee002.txt")])
    assert shard_files(ix.path) == after  # no vector written
    live = load_mask(ix.path, ix.generation, *_shards_and_rows(ix))
    assert live is not None and (~live).sum() == dead
    assert exact_ids(ix, minilm, "fires", 5) == [
        h.chunk_id for h in ix.search("fires", k=5, mode="dense", model=minilm, ann=False)
    ]
    assert all("lee002" not in h.document for h in ix.search("fires", k=50, mode="dense"))


def _shards_and_rows(ix: Index) -> tuple[np.ndarray, int]:
    shards = ix.store.shards()
    return np.array([s for s, _, _ in shards]), sum(rows for _, rows, _ in shards)


def test_mostly_dead_and_many_small_shards_are_compacted(minilm, tmp_path, monkeypatch):
    source = lee_folder(tmp_path / "docs", 12)
    ix = Index.create(tmp_path / "ix", minilm)
    monkeypatch.setattr(vectors_module, "MAX_SMALL_SHARDS", 100)  # keep a shard a commit
    ix.build([source], minilm, commit_every=1)
    assert len(ix.store.shards()) == 12
    monkeypatch.setattr(vectors_module, "MAX_SMALL_SHARDS", 8)
    ix.build([source], minilm)  # nothing to embed; settles: more than 8 small shards
    assert len(ix.store.shards()) == 1
    first = ix.store.shards()[0]
    ix.remove([str(source / f"lee{i:03d}.txt") for i in range(7)])  # most of its rows
    (shard, rows, used), *rest = ix.store.shards()
    assert rest == [] and rows == used and shard > first[0] and used < first[1]
    assert (ix.path / f"shard-{first[0]}.npy").exists()  # a reader may still be on it ...
    lee_folder(source, 1, first=20)
    ix.add([source / "lee020.txt"], minilm)
    assert not (ix.path / f"shard-{first[0]}.npy").exists()  # ... until the next write
    hits = ix.search("the president", k=5, mode="dense", model=minilm, ann=False)
    assert [h.chunk_id for h in hits] == exact_ids(ix, minilm, "the president", 5)


def test_a_killed_writers_files_are_deleted_by_the_next_write(minilm, tmp_path):
    source = lee_folder(tmp_path / "docs", 3)
    ix = Index.create(tmp_path / "ix", minilm)
    ix.build([source], minilm)
    ix.remove([str(source / "lee000.txt")])  # generation 2: live-1 is kept for its readers
    kept = sorted(f.name for f in ix.path.iterdir())
    left = ["shard-99.npy", "hnsw-99.bin", ".shard-100.npy.x1y2.tmp", "live-0.npz"]
    for name in left:
        (ix.path / name).write_bytes(b"left by a killed writer")
    (ix.path / "shard-99.txt").write_text("not ours")
    assert ix.search("fires", k=2, mode="dense", model=minilm)  # readers ignore them
    assert ix.add([source / "lee001.txt"], minilm).unchanged == 1  # a write with nothing new
    assert sorted(f.name for f in ix.path.iterdir()) == sorted([*kept, "shard-99.txt"])


FIRST_FORMAT = """
CREATE TABLE chunks(
    id INTEGER PRIMARY KEY, doc INTEGER NOT NULL REFERENCES documents(id),
    position INTEGER NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL,
    n_tokens INTEGER NOT NULL, text TEXT NOT NULL, vector BLOB NOT NULL);
CREATE INDEX chunks_doc ON chunks(doc);
CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text); END;
CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN
    DELETE FROM chunks_fts WHERE rowid = old.id; END;
"""


def first_format(ix: Index) -> tuple[list[str], list[int]]:
    """Turn the index `ix` into the first format (vectors as BLOBs, snapshot files) as that
    version wrote it, with one staged document; returns its documents' names and chunk ids."""
    ids, vectors = ix.vectors()
    names = sorted(d["name"] for d in ix.documents())
    ix.close()
    db = sqlite3.connect(ix.path / "index.db", isolation_level=None)
    rows = db.execute("SELECT id, doc, position, start, end, n_tokens, text FROM chunks").fetchall()
    by_id = dict(zip(ids.tolist(), vectors, strict=True))
    db.executescript(
        "DROP TABLE chunks; DROP TABLE shards; DELETE FROM chunks_fts; "
        "DELETE FROM meta WHERE key = 'next_shard';" + FIRST_FORMAT
    )
    db.executemany(
        "INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(*r, by_id[r[0]].tobytes()) for r in rows],
    )
    doc = db.execute("INSERT INTO documents(name, hash, metadata, live, split) "
                     "VALUES ('staged.txt', 'h', '{}', 0, 0)").lastrowid  # fmt: skip
    db.execute("INSERT INTO chunks VALUES (NULL, ?, 0, 0, 4, 1, 'half', ?)",
               (doc, vectors[0].tobytes()))  # fmt: skip
    db.close()
    for f in ix.path.iterdir():
        if f.name.startswith(("shard-", "live-", "hnsw-")):
            f.unlink()
    np.save(ix.path / "vectors-1.npy", vectors)
    np.save(ix.path / "ids-1.npy", ids)
    return names, ids.tolist()


def test_an_index_of_the_first_format_is_upgraded_once_on_open(minilm, tmp_path):
    source = lee_folder(tmp_path / "docs", 6)
    ix = Index.create(tmp_path / "ix", minilm)
    ix.build([source], minilm)
    expected = [h.chunk_id for h in ix.search("fires", k=5, mode="dense", model=minilm)]
    _, vectors = ix.vectors()
    names, ids = first_format(ix)
    db = sqlite3.connect(ix.path / "index.db")
    assert "vector" in {r[1] for r in db.execute("PRAGMA table_info(chunks)")}
    db.close()

    upgraded = Index.open(ix.path)
    assert not upgraded.store.has_blob_vectors()
    assert sorted(d["name"] for d in upgraded.documents()) == names
    assert upgraded.details().staged_documents == 0  # the staged document was dropped
    got_ids, got = upgraded.vectors()
    assert got_ids.tolist() == ids and got.tobytes() == vectors.tobytes()
    assert [
        h.chunk_id for h in upgraded.search("fires", k=5, mode="dense", model=minilm)
    ] == expected
    assert upgraded.search("fires", k=3, mode="bm25")  # the BM25 rows came along
    files = sorted(f.name for f in ix.path.iterdir())
    assert not any(f.startswith(("vectors-", "ids-")) for f in files)
    db = sqlite3.connect(ix.path / "index.db")
    assert db.execute("SELECT count(*) FROM chunks_fts").fetchone()[0] == len(ids)
    db.close()
    assert upgraded.build([source], minilm).embedded == 0  # nothing to embed again


def test_the_ann_memory_budget_decides_and_is_said(minilm, tmp_path, monkeypatch):
    source = lee_folder(tmp_path / "docs", 10)
    monkeypatch.setattr(vectors_module, "ANN_THRESHOLD", 10)
    monkeypatch.setenv("CONTEXTLENS_ANN_MEMORY_GB", "0.000001")  # 1 kB: no graph fits
    ix = Index.create(tmp_path / "ix", minilm)
    ix.build([source], minilm)
    assert "over the ANN memory budget of 1e-06 GB" in ix.details().search
    assert not list(ix.path.glob("hnsw-*.bin"))  # no graph built
    exact = [h.chunk_id for h in ix.search("fires", k=5, mode="dense", model=minilm)]
    assert exact == exact_ids(ix, minilm, "fires", 5)
    with pytest.raises(ContextlensError, match="over the ANN memory budget.*--exact"):
        ix.search("fires", k=5, mode="dense", model=minilm, ann=True)
    judged = {"q": "bushfires near Sydney"}, {"q": {str(source / "lee000.txt"): 1.0}}
    assert evaluate(ix, minilm, *judged, depth=10, modes=("dense",)).ann is None

    monkeypatch.setenv("CONTEXTLENS_ANN_MEMORY_GB", "1")
    ix.build([source], minilm)  # settles: now the graphs fit, so they are built
    assert ix.details().search.startswith("HNSW graphs")
    assert len(list(ix.path.glob("hnsw-*.bin"))) == len(ix.store.shards())
    ix.remove([str(source / "lee000.txt"), str(source / "lee001.txt")])
    fresh = Index.open(ix.path)
    hits = fresh.search("fires", k=10, mode="dense", model=minilm)  # the graphs, dead rows hidden
    assert all(not h.document.endswith(("lee000.txt", "lee001.txt")) for h in hits)
    agree = len({h.chunk_id for h in hits} & set(exact_ids(fresh, minilm, "fires", 10)))
    assert agree >= 9
    assert evaluate(fresh, minilm, *judged, depth=10, modes=("dense",)).ann is not None


def test_an_index_from_an_embedding_jobs_shards(minilm, tmp_path, run_cli):
    source = lee_folder(tmp_path / "docs", 12)
    embed_corpus([source], tmp_path / "job", minilm, shard_rows=5)
    job = read_corpus(tmp_path / "job")
    ix = Index.create(tmp_path / "ix", minilm)
    report = ix.build_from_shards(tmp_path / "job")
    assert (report.embedded, report.chunks) == (12, job.num_rows)
    ids, vectors = ix.vectors()
    assert (
        vectors.tobytes() == np.stack(job.column("vector").to_numpy(zero_copy_only=False)).tobytes()
    )
    assert ix.store.live_texts() == job.column("chunk").to_pylist()
    built = Index.create(tmp_path / "built", minilm)
    built.build([source], minilm)  # the same chunks as embedding the files here
    assert built.store.live_texts() == ix.store.live_texts()
    assert built.details().tokens == ix.details().tokens
    assert ix.build_from_shards(tmp_path / "job").unchanged == 12  # a rerun has nothing to do

    code, out, err = run_cli("index", "build", "--from-shards", tmp_path / "job", "--index",
                             tmp_path / "cli", "--json")  # fmt: skip
    assert code == 0 and json.loads(out)["chunks"] == job.num_rows, err
    other = Index.create(tmp_path / "other", minilm, chunk_tokens=100)
    with pytest.raises(ContextlensError, match="other settings than the index.*chunk_tokens"):
        other.build_from_shards(tmp_path / "job")
    old = tmp_path / "old-job"  # shards of an earlier version, without token counts
    shutil.copytree(tmp_path / "job", old)
    first = old / "part-00000.parquet"
    pq.write_table(pq.read_table(first).drop_columns(["tokens"]), first)
    for args, message in [
        (["--from-shards", old], "no tokens); run `contextlens embed PATH… --out NEW` again"),
        ([source, "--from-shards", tmp_path / "job"], "not both"),
        (["--from-shards", source], "no finished embedding job"),
        (["--from-shards", tmp_path / "job", "-m", "glove-50"], "leave out -m"),
        ([], "no paths given"),
    ]:
        code, _, err = run_cli("index", "build", *args, "--index", tmp_path / "bad")
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "bad").exists()


def test_a_missing_shard_is_one_clear_error(minilm, tmp_path):
    ix = Index.create(tmp_path / "ix", minilm)
    ix.build([lee_folder(tmp_path / "docs", 2)], minilm)
    next(ix.path.glob("shard-*.npy")).unlink()
    with pytest.raises(ContextlensError, match="missing or damaged.*build it again into a new"):
        Index.open(ix.path).search("fires", k=2, mode="dense", model=minilm)
