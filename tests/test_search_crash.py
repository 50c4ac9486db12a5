"""An indexing process killed part-way (SIGKILL) leaves the last good index, readable and
consistent, and the next build resumes; readers during a write see the old or the new index."""

import fcntl
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import gensim
import numpy as np
import pytest

from contextlens.errors import ContextlensError
from contextlens.search import Index
from contextlens.search.vectors import load_mask

LEE = Path(gensim.__file__).parent / "test" / "test_data" / "lee_background.cor"
OLD, NEW = 10, 24  # documents before, and added by the interrupted build

WRITER = """
import json, sys
import contextlens as cl
from contextlens.search import Index
from contextlens.search.vectors import load_mask
m = cl.load("minilm")
r = Index.create(sys.argv[1], m).build([sys.argv[2]], m, commit_every=8, batch_size=8)
print(json.dumps({"embedded": r.embedded, "resumed": r.resumed, "unchanged": r.unchanged}))
"""


def write_docs(folder: Path, lines: list[str], first: int) -> None:
    for i, line in enumerate(lines, start=first):
        (folder / f"lee{i:03d}.txt").write_text(line)


def check_consistent(path: Path) -> int:
    """Every chunk has its document, a row of a shard file that exists and its BM25 row; every
    document has chunks; each shard's count of used rows is right; no two chunks share a row;
    the generation's live mask, if written, marks exactly the live chunks' rows. Returns the
    staged documents."""
    db = sqlite3.connect(path / "index.db")
    one = lambda sql: db.execute(sql).fetchone()[0]  # noqa: E731
    assert one("SELECT count(*) FROM chunks WHERE doc NOT IN (SELECT id FROM documents)") == 0
    assert one("SELECT count(*) FROM documents d WHERE NOT EXISTS "
               "(SELECT 1 FROM chunks c WHERE c.doc = d.id)") == 0  # fmt: skip
    assert one("SELECT count(*) FROM chunks_fts") == one("SELECT count(*) FROM chunks")
    assert (
        one("SELECT count(*) FROM (SELECT 1 FROM chunks GROUP BY shard, row HAVING count(*) > 1)")
        == 0
    )
    shards = db.execute(
        "SELECT s.id, s.rows, s.used, s.generation, (SELECT count(*) FROM chunks c "
        "WHERE c.shard = s.id), (SELECT max(row) FROM chunks c WHERE c.shard = s.id) FROM shards s"
    ).fetchall()
    for shard, rows, used, _, counted, last in shards:
        assert used == counted and (last is None or last < rows)
        assert np.load(path / f"shard-{shard}.npy", mmap_mode="r").shape == (rows, 384)
    assert one("SELECT count(*) FROM chunks WHERE shard NOT IN (SELECT id FROM shards)") == 0
    generation = json.loads(one("SELECT value FROM meta WHERE key = 'generation'"))
    published = [s for s in shards if s[3] is not None and s[2] > 0]
    numbers = np.array(sorted(s[0] for s in published))
    mask = load_mask(path, generation, numbers, sum(s[1] for s in published))
    if mask is not None:
        live = db.execute(
            "SELECT c.shard, c.row FROM chunks c JOIN documents d ON c.doc = d.id AND d.live = 1"
        ).fetchall()
        sizes = [rows for _, rows, *_ in sorted(published)]
        first = dict(zip(numbers.tolist(), np.cumsum([0, *sizes[:-1]]).tolist(), strict=True))
        expected = np.zeros(len(mask), dtype=bool)
        expected[[first[s] + r for s, r in live]] = True
        assert np.array_equal(mask, expected)
    staged = one("SELECT count(*) FROM documents WHERE live = 0")
    db.close()
    return staged


def visible_documents(path: Path, minilm) -> frozenset[str]:
    """The documents of every chunk one dense search returns (all of them): one read."""
    hits = Index.open(path).search("news", k=100_000, mode="dense", model=minilm)
    return frozenset(Path(h.document).name for h in hits)


def staged_count(path: Path) -> int:
    try:
        with sqlite3.connect(path / "index.db", timeout=5) as db:
            return db.execute("SELECT count(*) FROM documents WHERE live = 0").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def writer(index: Path, folder: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(index), str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def indexed(minilm, tmp_path: Path) -> tuple[Path, Path]:
    """(folder, index): the first OLD Lee documents in `folder`, built into `index`."""
    folder, index = tmp_path / "docs", tmp_path / "index"
    folder.mkdir()
    write_docs(folder, LEE.read_text().splitlines()[:OLD], 0)
    Index.create(index, minilm).build([folder], minilm)
    return folder, index


def grow(folder: Path) -> None:
    """Add the next NEW Lee documents to `folder`."""
    write_docs(folder, LEE.read_text().splitlines()[OLD : OLD + NEW], OLD)


def test_killed_build_keeps_the_last_index_and_resumes(minilm, tmp_path):
    folder, index = indexed(minilm, tmp_path)
    old = visible_documents(index, minilm)
    assert len(old) == OLD
    grow(folder)
    new = frozenset(p.name for p in folder.iterdir())

    proc = writer(index, folder)  # killed once it has committed 8 staged documents
    deadline = time.time() + 240
    while staged_count(index) < 8:
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() < deadline, "the writer did not get going"
        assert visible_documents(index, minilm) == old  # staged documents stay invisible
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    staged = check_consistent(index)
    assert 8 <= staged < NEW
    assert visible_documents(index, minilm) == old
    assert Index.open(index).info()["documents"] == OLD

    proc = writer(index, folder)  # resumes; a reader keeps searching meanwhile
    seen = []
    while proc.poll() is None:
        seen.append(visible_documents(index, minilm))
        time.sleep(0.2)
    seen.append(visible_documents(index, minilm))
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    report = json.loads(out.splitlines()[-1])
    assert report["unchanged"] == OLD and report["resumed"] == staged
    assert report["embedded"] == NEW - staged
    assert set(seen) <= {old, new} and seen[0] == old and seen[-1] == new
    assert check_consistent(index) == 0
    assert Index.open(index).info()["documents"] == OLD + NEW


def test_one_writer_at_a_time(minilm, tmp_path):
    """A second writer is refused with a clear error while the first holds the lock."""
    folder = tmp_path / "docs"
    folder.mkdir()
    write_docs(folder, LEE.read_text().splitlines()[:1], 0)
    ix = Index.create(tmp_path / "index", minilm)
    with open(ix.path / "write.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with pytest.raises(ContextlensError, match="being written by another process"):
            ix.build([folder], minilm)
    assert ix.build([folder], minilm).embedded == 1


PAUSED_WRITER = """
import sys, time
import contextlens as cl
from contextlens.search import Index, build
write_shard = build.write_shard
def written_then_paused(*args, **kwargs):
    write_shard(*args, **kwargs)
    print("written", flush=True)
    time.sleep(600)
build.write_shard = written_then_paused
m = cl.load("minilm")
ix = Index.open(sys.argv[1])
if sys.argv[2] == "build":
    ix.build([sys.argv[3]], m, commit_every=8, batch_size=8)
else:
    ix.remove(sys.argv[3:])
"""


def killed_after_a_shard(*args: str) -> None:
    """Run PAUSED_WRITER with `args`; SIGKILL it once it has written its first shard file
    (renamed into place, not yet in any transaction)."""
    proc = subprocess.Popen([sys.executable, "-c", PAUSED_WRITER, *args], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    line = proc.stdout.readline()
    assert line.strip() == "written", proc.stderr.read()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def orphans(path: Path) -> set[str]:
    """Shard files no database row names."""
    with sqlite3.connect(path / "index.db") as db:
        known = {f"shard-{r[0]}.npy" for r in db.execute("SELECT id FROM shards")}
    return {f.name for f in path.glob("shard-*.npy")} - known


def test_killed_between_writing_a_shard_and_staging_it(minilm, tmp_path):
    folder, index = indexed(minilm, tmp_path)
    old = visible_documents(index, minilm)
    grow(folder)

    killed_after_a_shard(str(index), "build", str(folder))
    assert len(orphans(index)) == 1  # the file is there, no transaction names it
    assert check_consistent(index) == 0
    assert visible_documents(index, minilm) == old

    report = Index.open(index).build([folder], minilm)
    assert report.embedded == NEW and report.unchanged == OLD
    assert orphans(index) == set() and check_consistent(index) == 0
    assert visible_documents(index, minilm) == frozenset(p.name for p in folder.iterdir())


def test_killed_during_compaction(minilm, tmp_path):
    folder, index = indexed(minilm, tmp_path)
    gone = [str(folder / f"lee{i:03d}.txt") for i in range(7)]  # most rows of the shard
    left = frozenset(f"lee{i:03d}.txt" for i in range(7, OLD))

    killed_after_a_shard(str(index), "remove", *gone)  # published, then killed compacting
    (killed,) = orphans(index)
    assert check_consistent(index) == 0
    assert visible_documents(index, minilm) == left
    ix = Index.open(index)
    (sparse, rows, used), *_ = ix.store.shards()
    assert used < rows / 2  # not compacted yet

    assert ix.add([folder / "lee009.txt"], minilm).unchanged == 1  # the next write finishes
    assert not (index / killed).exists() and check_consistent(index) == 0
    assert all(used == rows for _, rows, used in ix.store.shards())
    assert orphans(index) == {f"shard-{sparse}.npy"}  # kept for readers until the next write
    assert visible_documents(index, minilm) == left
