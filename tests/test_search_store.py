"""The index's store on its own: staged documents stay invisible until published, publishing
replaces documents of the same name and bumps the generation, and the reads see only live rows;
shards count the chunks that use them and are forgotten when none does."""

import sqlite3

import pytest

from contextlens.errors import ContextlensError
from contextlens.io.documents import Document
from contextlens.search.chunking import Chunk
from contextlens.search.store import Store


def chunks_of(text: str) -> list[Chunk]:
    return [Chunk(text, 0, len(text), len(text.split()))]


def stage(store: Store, doc: Document) -> None:
    """Stage `doc` as one chunk at row 0 of a new shard."""
    shard = store.reserve_shard()
    with store.transaction(write=True):
        store.add_shard(shard, 1)
        store.insert_document(doc, chunks_of(doc.text), shard, 0, split=0)


def test_staged_published_replaced_and_removed(tmp_path):
    store = Store(tmp_path / "index.db")
    kettle = Document("a.txt", "the kettle boils water", {"path": "/notes/a.txt"})
    passport = Document("b.txt", "renew the passport in May", {"path": "/trips/b.txt"})
    stage(store, kettle)
    stage(store, passport)
    assert store.live_names() == [] and store.counts()["staged_documents"] == 2
    assert store.bm25(["kettle"], 5, None) == []  # staged rows are invisible to queries
    assert store.shards() == []  # so are their shards

    with store.transaction(write=True):
        assert store.publish([]) == 1
    assert sorted(store.live_names()) == ["a.txt", "b.txt"] and store.generation() == 1
    assert store.hashes(live=True) == {"a.txt": kettle.hash, "b.txt": passport.hash}
    assert store.shards() == [(1, 1, 1), (2, 1, 1)]
    ids, shards, rows = store.live_places()
    assert shards.tolist() == [1, 2] and rows.tolist() == [0, 0]
    (kettle_id, score), *rest = store.bm25(["kettle", "water"], 5, None)
    assert rest == [] and score > 0 and store.ids_at([(1, 0)]) == [kettle_id]
    assert store.chunks([kettle_id])[kettle_id][:5] == ("a.txt", 0, 0, 22, kettle.text)
    assert [a.tolist() for a in store.places({"path": "/trips/*"})] == [[2], [0]]

    newer = Document("a.txt", "the kettle is descaled", {"path": "/notes/a.txt"})
    stage(store, newer)
    stage(store, Document("c.txt", "left over"))
    with store.transaction(write=True):
        store.drop_staged("c.txt")
        assert store.publish(["b.txt"]) == 2
    assert store.live_names() == ["a.txt"] and store.hashes(live=False) == {}
    assert store.shards() == [(3, 1, 1)]  # 1, 2 and 4 have no chunk left: forgotten
    assert store.shard_numbers() == {3} and store.reserve_shard() == 5  # never given twice
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
