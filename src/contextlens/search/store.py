"""The index's SQLite database (WAL): documents, chunks with their vectors, BM25 text, settings.

Every change is a transaction, so a killed process leaves the last committed state. A build
writes its new documents *staged* (`live = 0`, invisible to queries) in small commits that a
rerun resumes from, then publishes them in one transaction that also bumps `generation`:
readers see the old index or the new one, never a mix.
"""

import json
import sqlite3
from pathlib import Path

import numpy as np

from ..errors import ContextlensError
from .vectors import is_snapshot_file

FILES = ("index.db", "index.db-wal", "index.db-shm", "index.db-journal", "write.lock")
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents(
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, hash TEXT NOT NULL, metadata TEXT NOT NULL,
    live INTEGER NOT NULL, split INTEGER NOT NULL, UNIQUE(name, live));
CREATE TABLE IF NOT EXISTS chunks(
    id INTEGER PRIMARY KEY, doc INTEGER NOT NULL REFERENCES documents(id),
    position INTEGER NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL,
    n_tokens INTEGER NOT NULL, text TEXT NOT NULL, vector BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(text, tokenize='porter unicode61');
CREATE TRIGGER IF NOT EXISTS chunks_ai AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text); END;
CREATE TRIGGER IF NOT EXISTS chunks_ad AFTER DELETE ON chunks BEGIN
    DELETE FROM chunks_fts WHERE rowid = old.id; END;
"""


def is_index_file(name: str) -> bool:
    """A file an index writes in its folder: the database, its lock, vector snapshots."""
    return name in FILES or is_snapshot_file(name)


LIVE_CHUNKS = "chunks c JOIN documents d ON c.doc = d.id AND d.live = 1"


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit: `with transaction(db)`).
    Refuses a file that is not a contextlens index rather than adding tables to it."""
    try:
        db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and "meta" not in tables:
            db.close()
            raise sqlite3.DatabaseError("it holds other tables")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(SCHEMA)
    except sqlite3.DatabaseError as e:
        raise ContextlensError(
            f"{path} is not a usable contextlens index ({e}); give --index a new folder "
            "or an index's"
        ) from None
    return db


class transaction:
    """`with transaction(db):` BEGIN … COMMIT, or ROLLBACK on an exception."""

    def __init__(self, db: sqlite3.Connection, write: bool = False):
        self.db, self.write = db, write

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE" if self.write else "BEGIN")
        return self.db

    def __exit__(self, kind, value, tb) -> None:
        self.db.execute("ROLLBACK" if kind else "COMMIT")


def get_meta(db: sqlite3.Connection) -> dict:
    return {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM meta")}


def set_meta(db: sqlite3.Connection, **values) -> None:
    db.executemany(
        "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
        [(k, json.dumps(v)) for k, v in values.items()],
    )


def insert_document(db: sqlite3.Connection, doc, chunks, vectors: np.ndarray, split: int) -> None:
    """One staged document with its chunks and their vectors `[n_chunks, d]` float32."""
    cur = db.execute(
        "INSERT INTO documents(name, hash, metadata, live, split) VALUES (?, ?, ?, 0, ?)",
        (doc.name, doc.hash, json.dumps(doc.metadata, ensure_ascii=False), split),
    )
    db.executemany(
        "INSERT INTO chunks(doc, position, start, end, n_tokens, text, vector) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (cur.lastrowid, i, c.start, c.end, c.n_tokens, c.text, v.tobytes())
            for i, (c, v) in enumerate(zip(chunks, vectors.astype(np.float32), strict=True))
        ],
    )


def delete_documents(db: sqlite3.Connection, where: str, params=()) -> int:
    """Delete the documents matching `where` (SQL on `documents`) and their chunks."""
    ids = [r[0] for r in db.execute(f"SELECT id FROM documents WHERE {where}", params)]
    for i in range(0, len(ids), 500):
        part = ids[i : i + 500]
        marks = ",".join("?" * len(part))
        db.execute(f"DELETE FROM chunks WHERE doc IN ({marks})", part)
        db.execute(f"DELETE FROM documents WHERE id IN ({marks})", part)
    return len(ids)


def publish(db: sqlite3.Connection, remove: list[str]) -> int:
    """Make the staged documents live, replacing live ones of the same name and removing the
    live documents named in `remove`; returns the new generation."""
    db.execute("CREATE TEMP TABLE IF NOT EXISTS gone(name TEXT PRIMARY KEY)")
    db.execute("DELETE FROM gone")
    db.executemany("INSERT OR IGNORE INTO gone VALUES (?)", [(n,) for n in remove])
    delete_documents(
        db,
        "live = 1 AND (name IN (SELECT name FROM gone) "
        "OR name IN (SELECT name FROM documents WHERE live = 0))",
    )
    db.execute("UPDATE documents SET live = 1 WHERE live = 0")
    generation = get_meta(db).get("generation", 0) + 1
    set_meta(db, generation=generation)
    return generation


def live_vectors(db: sqlite3.Connection, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(chunk ids `[n]` int64, vectors `[n, d]` float32) of the live index, in chunk-id order."""
    rows = db.execute(f"SELECT c.id, c.vector FROM {LIVE_CHUNKS} ORDER BY c.id").fetchall()
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    data = bytearray()  # writable, so that torch can share it without copying
    for r in rows:
        data += r[1]
    return ids, np.frombuffer(data, dtype=np.float32).reshape(-1, dim)
