"""The Ray engine on a real local Ray cluster (loopback, 2 CPUs, a small object store), started
once for the module: the same vectors and the same index as in this process, no loss when an
actor is killed mid-job, one-line errors without Ray or without a cluster at --address."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import gensim
import numpy as np
import psutil
import pyarrow.parquet as pq
import pytest
import ray

from contextlens.errors import ContextlensError
from contextlens.search import Index
from contextlens.search.corpus import embed_corpus, read_corpus
from contextlens.search.engine import Engine

LEE = Path(gensim.__file__).parent / "test" / "test_data" / "lee_background.cor"


@pytest.fixture(scope="module", autouse=True)
def cluster():
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=200 * 1024**2,
        log_to_driver=False,
        logging_level="ERROR",
    )
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("lee")
    for i, line in enumerate(LEE.read_text().splitlines()[:8]):
        (folder / f"lee{i:02d}.txt").write_text(line)
    return folder


@pytest.fixture(scope="module")
def local(corpus, minilm, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local")
    embed_corpus([corpus], out, minilm, shard_rows=4)
    return out


def vectors(table) -> np.ndarray:
    return np.stack(table.column("vector").to_numpy(zero_copy_only=False))


def test_ray_gives_the_local_vectors(corpus, local, minilm, tmp_path):
    report = embed_corpus([corpus], tmp_path, minilm, Engine("ray", actors=2), shard_rows=4)
    assert report.engine == "ray" and report.embedded == report.shards > 2
    ours, theirs = read_corpus(tmp_path), read_corpus(local)
    for column in ("id", "source", "position", "start", "end", "chunk"):
        assert ours.column(column).to_pylist() == theirs.column(column).to_pylist()
    np.testing.assert_allclose(vectors(ours), vectors(theirs), atol=1e-6)


def test_ray_builds_the_local_index(corpus, minilm, tmp_path):
    built = {}
    for engine in ("local", "ray"):
        ix = Index.create(tmp_path / engine, minilm)
        report = ix.build([corpus], minilm, engine=Engine(engine, actors=2), commit_every=16)
        assert report.embedded == 8 and report.generation == 1
        built[engine] = ix
    (ids_a, va), (ids_b, vb) = (ix.vectors() for ix in built.values())
    texts_a, texts_b = (ix.store.live_texts() for ix in built.values())
    assert texts_a == texts_b and len(ids_a) == len(ids_b)
    np.testing.assert_allclose(va, vb, atol=1e-6)
    hits = [
        ix.search("bushfires in Sydney", k=5, mode="dense", model=minilm) for ix in built.values()
    ]
    assert [h.text for h in hits[0]] == [h.text for h in hits[1]]


def embedder_processes() -> list[psutil.Process]:
    """The Ray worker processes that hold an `Embedder` actor (Ray names them after it)."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        if any("Embedder" in part for part in p.info["cmdline"] or ()):
            found.append(p)
    return found


def test_a_killed_actor_loses_nothing(corpus, local, minilm, tmp_path):
    killed = []

    def kill_one(done: int, total: int) -> None:
        if done >= 4 and not killed:  # the first shard is written: one actor dies mid-job
            victims = embedder_processes()
            assert victims, "no Embedder actor process found"
            os.kill(victims[0].pid, signal.SIGKILL)
            killed.append(victims[0].pid)

    engine = Engine("ray", actors=2)
    try:
        embed_corpus(
            [corpus], tmp_path, minilm, engine, batch_size=4, shard_rows=4, progress=kill_one
        )
    except ContextlensError as e:  # Ray gave up on the job: the rerun resumes it
        assert "run the same command again to resume" in str(e)
        report = embed_corpus([corpus], tmp_path, minilm, engine, shard_rows=4)
        assert report.kept >= 1
    assert killed
    ours, theirs = read_corpus(tmp_path), read_corpus(local)
    assert ours.column("chunk").to_pylist() == theirs.column("chunk").to_pylist()
    np.testing.assert_allclose(vectors(ours), vectors(theirs), atol=1e-6)
    assert sorted(f.name for f in tmp_path.iterdir()) == sorted(
        f.name for f in local.iterdir()
    )  # whole shards and the manifest, no temporary files
    assert all(pq.read_metadata(f).num_rows > 0 for f in tmp_path.glob("*.parquet"))


def test_without_ray_installed_is_one_line(corpus, tmp_path, run_cli, monkeypatch):
    blocked = "sys.modules['ray'] = None  # `import ray` fails as if Ray were not installed"
    code = "\n".join(["import sys", blocked, "from contextlens.cli import main", "main()"])
    args = ["embed", str(corpus), "--out", str(tmp_path / "out"), "--engine", "ray"]
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    message = (
        "error: --engine ray needs Ray, which is not installed; pip install "
        "'contextlens[ray]', or leave out --engine to embed in this process"
    )
    assert done.returncode == 2 and done.stderr.splitlines() == [message], done.stderr
    monkeypatch.setitem(sys.modules, "ray", None)
    code, _, err = run_cli("index", "build", corpus, "--index", tmp_path / "ix", "--engine", "ray")
    assert code == 2 and err.splitlines() == [message]
    assert not (tmp_path / "out").exists() and not (tmp_path / "ix").exists()


def test_an_unreachable_address_is_one_line(corpus, tmp_path, run_cli):
    for command in (["embed", corpus, "--out", tmp_path / "out"],
                    ["index", "build", corpus, "--index", tmp_path / "ix"]):  # fmt: skip
        code, _, err = run_cli(*command, "--engine", "ray", "--address", "127.0.0.1:9")
        assert code == 2
        (line,) = err.splitlines()
        assert line.startswith("error: no Ray cluster answers at 127.0.0.1:9 (")
        assert "`ray start --head`" in line and "leave out --address" in line
        code, _, err = run_cli(*command, "--address", "127.0.0.1:9")
        assert code == 2
        assert err.splitlines() == [
            "error: --address is the address of a Ray cluster; add --engine ray"
        ]
    assert not any(tmp_path.iterdir())
