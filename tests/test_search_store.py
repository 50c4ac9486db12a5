"""The index's store on its own: staged documents stay invisible until published, publishing
replaces documents of the same name and bumps the generation, and the reads see only live rows."""

import sqlite3

import numpy as np
import pytest

from contextlens.errors import ContextlensError
from contextlens.io.documents import Document
from contextlens.search.chunking import Chunk
from contextlens.search.store import Store


def chunks_of(text: str) -> list[Chunk]:
    return [Chunk(text, 0, len(text), len(text.split()))]


def stage(store: Store, doc: Document, vector: list[float]) -> None:
    with store.transaction(write=True):
        store.insert_document(doc, chunks_of(doc.text), np.array([vector]), split=0)


def test_staged_published_replaced_and_removed(tmp_path):
    store = Store(tmp_path / "index.db")
    kettle = Document("a.txt", "the kettle boils water", {"path": "/notes/a.txt"})
    passport = Document("b.txt", "renew the passport in May", {"path": "/trips/b.txt"})
    stage(store, kettle, [1.0, 0.0])
    stage(store, passport, [0.0, 1.0])
    assert store.live_names() == [] and store.counts()["staged_documents"] == 2
    assert store.bm25(["kettle"], 5, None) == []  # staged rows are invisible to queries

    with store.transaction(write=True):
        assert store.publish([]) == 1
    assert sorted(store.live_names()) == ["a.txt", "b.txt"] and store.generation() == 1
    assert store.hashes(live=True) == {"a.txt": kettle.hash, "b.txt": passport.hash}
    ids, vectors = store.live_vectors(2)
    assert vectors.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    (kettle_id, score), *rest = store.bm25(["kettle", "water"], 5, None)
    assert rest == [] and score > 0
    assert store.chunks([kettle_id])[kettle_id][:5] == ("a.txt", 0, 0, 22, kettle.text)
    assert store.chunk_ids({"path": "/trips/*"}) == {int(ids[1])}

    newer = Document("a.txt", "the kettle is descaled", {"path": "/notes/a.txt"})
    stage(store, newer, [0.5, 0.75])
    stage(store, Document("c.txt", "left over"), [1.0, 0.0])
    with store.transaction(write=True):
        store.drop_staged("c.txt")
        assert store.publish(["b.txt"]) == 2
    assert store.live_names() == ["a.txt"] and store.hashes(live=False) == {}
    assert store.live_vectors(2)[1].tolist() == [[0.5, 0.75]]
    counts = store.counts()
    assert (counts["documents"], counts["chunks"], counts["tokens"]) == (1, 1, 4)
    assert [d["name"] for d in store.documents()] == ["a.txt"]
    assert store.live_texts() == [newer.text]
    store.close()


def test_a_failed_transaction_leaves_nothing(tmp_path):
    store = Store(tmp_path / "index.db")
    with pytest.raises(RuntimeError), store.transaction(write=True):
        store.set_meta(generation=5)
        raise RuntimeError("killed")
    assert store.meta() == {} and store.generation() == 0
    store.close()


def test_a_database_of_other_tables_is_refused(tmp_path):
    with sqlite3.connect(tmp_path / "other.db") as db:
        db.execute("CREATE TABLE people(name TEXT)")
    with pytest.raises(ContextlensError, match="not a usable contextlens index"):
        Store(tmp_path / "other.db")
