"""Search at scale: snapshots written a block at a time and read memory-mapped, the exact scan
over them with queries in groups (the same answers as one matrix product), on real minilm
embeddings."""

from pathlib import Path

import gensim
import numpy as np
import pytest
import torch

from contextlens.search import Index
from contextlens.search import build as build_module
from contextlens.search import vectors as vectors_module
from contextlens.search.vectors import exact_top, load_snapshot

LEE = Path(gensim.__file__).parent / "test" / "test_data" / "lee_background.cor"


@pytest.fixture(scope="module")
def embedded(minilm) -> tuple[np.ndarray, torch.Tensor]:
    """Unit embeddings of 90 Lee sentences `[90, 384]` and 5 queries `[5, 384]`."""
    lines = LEE.read_text().splitlines()[:20]
    sentences = [s for line in lines for s in line.split(". ") if s.strip()][:90]
    queries = ["bushfires", "cricket match", "the president", "a bank robbery", "rain"]
    unit = lambda x: torch.nn.functional.normalize(minilm.embed(x), dim=-1)  # noqa: E731
    return unit(sentences).numpy(), unit(queries)


@pytest.mark.parametrize("budget", [90, 200, 1 << 24])  # 1, 2 or all 5 queries a group
def test_the_grouped_scan_is_one_matrix_product(embedded, monkeypatch, budget):
    rows, queries = embedded
    monkeypatch.setattr(vectors_module, "SCORES_BUDGET", budget)
    full = queries @ torch.from_numpy(rows).T  # [5, 90]
    for k in (1, 10, 90, 200):
        scores, found = exact_top(rows, queries, k)
        top = full.topk(min(k, 90), dim=1)
        assert torch.equal(found, top.indices)
        torch.testing.assert_close(scores, top.values, atol=1e-6, rtol=0)
    allowed = torch.zeros(90, dtype=torch.bool)
    allowed[::9] = True  # 10 rows
    scores, found = exact_top(rows, queries, 20, allowed)
    assert found.shape == (5, 10) and allowed[found].all()
    assert torch.equal(found, full.masked_fill(~allowed, -torch.inf).topk(10, dim=1).indices)
    none = torch.zeros(90, dtype=torch.bool)
    assert exact_top(rows, queries, 5, none)[1].shape == (5, 0)


def test_the_index_writes_its_snapshot_in_blocks_and_maps_it(minilm, tmp_path, monkeypatch):
    folder = tmp_path / "docs"
    folder.mkdir()
    for i, line in enumerate(LEE.read_text().splitlines()[:8]):
        (folder / f"lee{i}.txt").write_text(line)
    monkeypatch.setattr(build_module, "BLOCK_ROWS", 3)  # many blocks for a handful of chunks
    ix = Index.create(tmp_path / "ix", minilm)
    generation = ix.build([folder], minilm).generation
    ids, mapped = load_snapshot(ix.path, generation)
    assert isinstance(mapped, np.memmap) and not mapped.flags.writeable
    live_ids, live = ix.store.live_vectors(384)
    assert ids.tolist() == live_ids.tolist() and mapped.tobytes() == live.tobytes()
    assert len(ids) > 3
    hits = ix.search("fires", k=3, mode="dense", model=minilm)
    assert isinstance(ix._vectors, np.memmap)  # searched in place, never read into memory whole
    q = torch.nn.functional.normalize(minilm.embed("fires"), dim=-1).numpy()
    best = np.argsort(-(live @ q))[:3]
    assert [h.chunk_id for h in hits] == live_ids[best].tolist()
