"""`embed PATH… --out DIR` / `embed_corpus` in this process: files and folders to Parquet shards
of unit vectors, resumable shard by shard, with one-line errors for bad input."""

import json
from pathlib import Path

import gensim
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from contextlens.errors import ContextlensError
from contextlens.search import chunk_text, read_documents
from contextlens.search.corpus import embed_corpus, read_corpus

LEE = Path(gensim.__file__).parent / "test" / "test_data" / "lee_background.cor"


@pytest.fixture
def corpus(tmp_path) -> Path:
    folder = tmp_path / "docs"
    (folder / "news").mkdir(parents=True)
    for i, line in enumerate(LEE.read_text().splitlines()[:6]):
        (folder / "news" / f"lee{i}.txt").write_text(line)
    (folder / "garden.md").write_text("Tomatoes need full sun. Stake them as they grow.")
    rows = {"text": ["The night train to Vienna leaves at ten.", "Book a couchette."]}
    pq.write_table(
        pa.table(rows | {"id": ["t1", "t2"], "lang": ["en", "en"]}), folder / "t.parquet"
    )
    return folder


def vectors(table: pa.Table) -> np.ndarray:
    return np.stack(table.column("vector").to_numpy(zero_copy_only=False))


def test_shards_hold_every_chunk_with_its_unit_vector(corpus, minilm, tmp_path):
    out = tmp_path / "out"
    report = embed_corpus([corpus], out, minilm, shard_rows=4)
    assert report.documents == 9 and report.shards == -(-report.chunks // 4)
    assert report.embedded == report.shards and report.kept == 0
    table = read_corpus(out)
    assert table.column("id").to_pylist() == list(range(report.chunks))
    assert table.schema.field("vector").type == pa.list_(pa.float32(), 384)
    sources = table.column("source").to_pylist()
    assert f"{corpus / 't.parquet'}#t2" in sources and str(corpus / "garden.md") in sources
    chunks = table.column("chunk").to_pylist()
    expected = torch.nn.functional.normalize(minilm.embed(chunks), dim=-1).numpy()
    np.testing.assert_allclose(vectors(table), expected, atol=1e-6)
    docs, _ = read_documents([corpus])
    tokens = [
        c.n_tokens for d in docs for c in chunk_text(d.text, minilm.tokenizer, 200, 32).chunks
    ]
    assert table.column("tokens").to_pylist() == tokens
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and len(manifest["shards"]) == report.shards
    assert manifest["settings"]["model"] == "minilm" and manifest["settings"]["dim"] == 384


def test_an_interrupted_job_resumes_from_its_finished_shards(corpus, minilm, tmp_path):
    whole = embed_corpus([corpus], tmp_path / "whole", minilm, shard_rows=4)
    out = tmp_path / "out"

    def stop(done: int, total: int) -> None:
        if done >= 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        embed_corpus([corpus], out, minilm, shard_rows=4, progress=stop)
    finished = sorted(f.name for f in out.glob("*.parquet"))
    assert len(finished) == 2 and not [f for f in out.iterdir() if f.name.startswith(".")]
    assert not json.loads((out / "manifest.json").read_text())["complete"]
    with pytest.raises(ContextlensError, match="no finished embedding job"):
        read_corpus(out)
    mtimes = {n: (out / n).stat().st_mtime_ns for n in finished}

    report = embed_corpus([corpus], out, minilm, shard_rows=4)
    assert report.kept == 2 and report.embedded == whole.shards - 2
    assert all((out / n).stat().st_mtime_ns == t for n, t in mtimes.items())
    assert read_corpus(out).equals(read_corpus(tmp_path / "whole"))
    again = embed_corpus([corpus], out, minilm, shard_rows=4)
    assert again.embedded == 0 and again.kept == whole.shards


def test_a_changed_document_re_embeds_only_its_shards(corpus, minilm, tmp_path):
    out = tmp_path / "out"
    first = embed_corpus([corpus], out, minilm, shard_rows=4)
    (corpus / "garden.md").write_text("Water the basil every morning. Pinch off its flowers.")
    report = embed_corpus([corpus], out, "minilm", shard_rows=4)  # a name loads the model
    assert report.embedded == 1 and report.kept == first.shards - 1
    chunks = read_corpus(out).column("chunk").to_pylist()
    assert "Water the basil every morning. Pinch off its flowers." in chunks


def test_bad_inputs_are_one_clear_error(corpus, minilm, tmp_path, run_cli):
    out = tmp_path / "out"
    embed_corpus([corpus], out, minilm, shard_rows=4)
    with pytest.raises(ContextlensError, match=r"other settings \(shard_rows\); give --out a new"):
        embed_corpus([corpus], out, minilm, shard_rows=8)
    (tmp_path / "file").write_text("x")
    cases = {
        ("embed", corpus, "--out", tmp_path / "file"): "is a file; give --out a folder",
        ("embed", tmp_path / "nowhere", "--out", tmp_path / "o"): "does not exist; give a file",
        ("embed", corpus, "--out", tmp_path / "o", "--shard-rows", "0"): "--shard-rows must be",
        ("embed", corpus, "--out", tmp_path / "o", "--engine", "spark"): "use --engine local or",
        ("embed", corpus, "--out", tmp_path / "o", "--batch-size", "0"): "--batch-size) must be",
        ("embed", corpus, "--out", tmp_path / "o", "--overlap", "500"): "overlap (--overlap)",
        ("embed", corpus, "--out", tmp_path / "o", "-m", "glove-50"): "needs a transformer",
    }
    for args, message in cases.items():
        code, _, err = run_cli(*args)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert err.startswith("error: ") and message in err, err
    assert not (tmp_path / "o").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    pq.write_table(pa.table({"body": ["no text column here"]}), empty / "x.parquet")
    code, _, err = run_cli("embed", empty, "--out", tmp_path / "o")
    assert code == 2 and "no text to embed" in err and "1 files skipped" in err


def test_the_cli_writes_shards_and_reports_them(corpus, run_cli, tmp_path):
    out = tmp_path / "out"
    code, stdout, err = run_cli("embed", corpus, "--out", out, "--shard-rows", "4", "--json")
    assert code == 0, err
    report = json.loads(stdout)
    assert report["engine"] == "local" and report["embedded"] == report["shards"] >= 3
    assert report["out"] == str(out) and report["skipped"] == []
    code, stdout, _ = run_cli("embed", corpus, "--out", out, "--shard-rows", "4")
    assert code == 0 and "kept" in stdout and str(report["shards"]) in stdout
    code, stdout, _ = run_cli("embed", "still takes texts", "--json")
    assert code == 0 and len(json.loads(stdout)["embeddings"][0]) == 384
