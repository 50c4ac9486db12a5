"""The index's SQLite database (WAL): documents, chunks and where their vectors are, shards,
BM25 text, settings.

Every change is a transaction, so a killed process leaves the last committed state. A build
writes its new documents *staged* (`live = 0`, invisible to queries) in small commits that a
rerun resumes from, then publishes them in one transaction that also bumps `generation`:
readers see the old index or the new one, never a mix. A chunk's vector is row `row` of shard
`shard` (a file of `vectors`); `shards` counts the chunks that use each shard's rows and names
the generation that published it (NULL while its chunks are staged).
"""

import json
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from ..errors import ContextlensError
from .vectors import is_vector_file

FILES = ("index.db", "index.db-wal", "index.db-shm", "index.db-journal", "write.lock")
TABLES = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents(
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, hash TEXT NOT NULL, metadata TEXT NOT NULL,
    live INTEGER NOT NULL, split INTEGER NOT NULL, UNIQUE(name, live));
CREATE TABLE IF NOT EXISTS shards(
    id INTEGER PRIMARY KEY, rows INTEGER NOT NULL, used INTEGER NOT NULL, generation INTEGER);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(text, tokenize='porter unicode61');
"""
CHUNKS = """CREATE TABLE IF NOT EXISTS {name}(
    id INTEGER PRIMARY KEY, doc INTEGER NOT NULL REFERENCES documents(id),
    position INTEGER NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL,
    n_tokens INTEGER NOT NULL, text TEXT NOT NULL, shard INTEGER NOT NULL, row INTEGER NOT NULL)"""
CHUNK_INDEXES = (
    "CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc)",
    "CREATE INDEX IF NOT EXISTS chunks_place ON chunks(shard, row)",
    "CREATE TRIGGER IF NOT EXISTS chunks_ai AFTER INSERT ON chunks BEGIN "
    "INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER IF NOT EXISTS chunks_ad AFTER DELETE ON chunks BEGIN "
    "DELETE FROM chunks_fts WHERE rowid = old.id; END",
)


def is_index_file(name: str) -> bool:
    """A file an index writes in its folder: the database, its lock, shards, graphs, masks."""
    return name in FILES or is_vector_file(name)


_LIVE_CHUNKS = "chunks c JOIN documents d ON c.doc = d.id AND d.live = 1"


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit: `with store.transaction()`).
    Refuses a file that is not a contextlens index rather than adding tables to it."""
    try:
        db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and "meta" not in tables:
            db.close()
            raise sqlite3.DatabaseError("it holds other tables")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(TABLES)
        if not _has_blob_vectors(db):
            db.execute(CHUNKS.format(name="chunks"))
            for statement in CHUNK_INDEXES:
                db.execute(statement)
    except sqlite3.DatabaseError as e:
        raise ContextlensError(
            f"{path} is not a usable contextlens index ({e}); give --index a new folder "
            "or an index's"
        ) from None
    return db


def _has_blob_vectors(db: sqlite3.Connection) -> bool:
    """Whether the chunks table is the first format's, with each vector as a BLOB."""
    return "vector" in {r[1] for r in db.execute("PRAGMA table_info(chunks)")}


class Transaction:
    """`with store.transaction():` BEGIN … COMMIT, or ROLLBACK on an exception."""

    def __init__(self, db: sqlite3.Connection, write: bool):
        self.db, self.write = db, write

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE" if self.write else "BEGIN")

    def __exit__(self, kind, value, tb) -> None:
        self.db.execute("ROLLBACK" if kind else "COMMIT")


def _where_sql(where: dict[str, str] | None) -> tuple[str, list[str]]:
    """` AND …` conditions (and their parameters) matching document metadata `key=glob`."""
    if not where:
        return "", []
    sql = "".join(" AND CAST(json_extract(d.metadata, ?) AS TEXT) GLOB ?" for _ in where)
    return sql, [x for k, v in where.items() for x in (f'$."{k}"', str(v))]


class Store:
    """The database of the index at `path`: every statement the index runs is a method here.
    Reads and writes that must agree run inside one `transaction()`."""

    def __init__(self, path: Path):
        self.db = connect(path)

    def transaction(self, write: bool = False) -> Transaction:
        return Transaction(self.db, write)

    def close(self) -> None:
        self.db.close()

    # ── settings ────────────────────────────────────────────────────────────────────────────
    def meta(self) -> dict:
        return {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM meta")}

    def set_meta(self, **values) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
            [(k, json.dumps(v)) for k, v in values.items()],
        )

    def generation(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return json.loads(row[0]) if row else 0

    # ── writing ─────────────────────────────────────────────────────────────────────────────
    def hashes(self, live: bool) -> dict[str, str]:
        """Document name -> content hash, of the live documents or of the staged ones."""
        return dict(self.db.execute("SELECT name, hash FROM documents WHERE live = ?", (live,)))

    def reserve_shard(self) -> int:
        """A shard number never given before (its own transaction: a killed writer leaves a gap,
        never a number used twice)."""
        with self.transaction(write=True):
            shard = self.meta().get("next_shard", 1)
            self.set_meta(next_shard=shard + 1)
        return shard

    def add_shard(self, shard: int, rows: int, generation: int | None = None) -> None:
        """Record shard `shard` of `rows` rows, staged (None) or published in `generation`."""
        self.db.execute(
            "INSERT INTO shards(id, rows, used, generation) VALUES (?, ?, 0, ?)",
            (shard, rows, generation),
        )

    def insert_document(self, doc, chunks, shard: int, row: int, split: int) -> None:
        """One staged document with its chunks, whose vectors are rows `row`, `row + 1`, … of
        shard `shard`."""
        cur = self.db.execute(
            "INSERT INTO documents(name, hash, metadata, live, split) VALUES (?, ?, ?, 0, ?)",
            (doc.name, doc.hash, json.dumps(doc.metadata, ensure_ascii=False), split),
        )
        self.db.executemany(
            "INSERT INTO chunks(doc, position, start, end, n_tokens, text, shard, row) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (cur.lastrowid, i, c.start, c.end, c.n_tokens, c.text, shard, row + i)
                for i, c in enumerate(chunks)
            ],
        )
        self.db.execute("UPDATE shards SET used = used + ? WHERE id = ?", (len(chunks), shard))

    def drop_staged(self, name: str) -> None:
        """Delete the staged (not yet published) document `name` and its chunks."""
        self._delete_documents("live = 0 AND name = ?", (name,))

    def _delete_documents(self, where: str, params: Iterable = ()) -> int:
        """Delete the documents matching `where` (SQL on `documents`) and their chunks."""
        ids = [r[0] for r in self.db.execute(f"SELECT id FROM documents WHERE {where}", params)]
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            marks = ",".join("?" * len(part))
            used = self.db.execute(
                f"SELECT shard, count(*) FROM chunks WHERE doc IN ({marks}) GROUP BY shard", part
            ).fetchall()
            self.db.executemany(
                "UPDATE shards SET used = used - ? WHERE id = ?", [(n, s) for s, n in used]
            )
            self.db.execute(f"DELETE FROM chunks WHERE doc IN ({marks})", part)
            self.db.execute(f"DELETE FROM documents WHERE id IN ({marks})", part)
        return len(ids)

    def publish(self, remove: list[str]) -> int:
        """Make the staged documents live, replacing live ones of the same name and removing
        the live documents named in `remove`; shards no chunk uses any more are forgotten (their
        files deleted by the next writer). Returns the new generation."""
        self.db.execute("CREATE TEMP TABLE IF NOT EXISTS gone(name TEXT PRIMARY KEY)")
        self.db.execute("DELETE FROM gone")
        self.db.executemany("INSERT OR IGNORE INTO gone VALUES (?)", [(n,) for n in remove])
        self._delete_documents(
            "live = 1 AND (name IN (SELECT name FROM gone) "
            "OR name IN (SELECT name FROM documents WHERE live = 0))",
        )
        self.db.execute("UPDATE documents SET live = 1 WHERE live = 0")
        return self.next_generation()

    def next_generation(self) -> int:
        """Publish the staged shards and forget the ones no chunk uses: a new generation."""
        generation = self.generation() + 1
        self.db.execute("UPDATE shards SET generation = ? WHERE generation IS NULL", (generation,))
        self.db.execute("DELETE FROM shards WHERE used = 0")
        self.set_meta(generation=generation)
        return generation

    def move(self, chunks: np.ndarray, shard: int) -> None:
        """Give `chunks` (ids `[rows]`, in order) rows 0, 1, … of the new shard `shard`, taking
        them out of the shards they were in (a compaction; then `next_generation`)."""
        rows = len(chunks)
        self.add_shard(shard, rows)
        self.db.execute("CREATE TEMP TABLE IF NOT EXISTS moved(id INTEGER PRIMARY KEY, row INT)")
        self.db.execute("DELETE FROM moved")
        self.db.executemany("INSERT INTO moved VALUES (?, ?)", enumerate_rows(chunks))
        self.db.execute(
            "UPDATE shards SET used = used - (SELECT count(*) FROM chunks c JOIN moved m "
            "ON m.id = c.id WHERE c.shard = shards.id) WHERE id IN "
            "(SELECT DISTINCT c.shard FROM chunks c JOIN moved m ON m.id = c.id)"
        )
        self.db.execute(
            "UPDATE chunks SET shard = ?, row = (SELECT m.row FROM moved m WHERE m.id = chunks.id)"
            " WHERE id IN (SELECT id FROM moved)",
            (shard,),
        )
        self.db.execute("UPDATE shards SET used = ? WHERE id = ?", (rows, shard))

    # ── the first format: vectors as BLOBs ──────────────────────────────────────────────────
    def has_blob_vectors(self) -> bool:
        return _has_blob_vectors(self.db)

    def blob_vectors(self, dim: int, rows: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(chunk ids, vectors `[≤ rows, d]`) of the live chunks of a first-format index, by
        chunk id, a block at a time."""
        sql = f"SELECT c.id, c.vector FROM {_LIVE_CHUNKS} ORDER BY c.id"
        cursor = self.db.execute(sql)
        while block := cursor.fetchmany(rows):
            ids = np.fromiter((r[0] for r in block), dtype=np.int64, count=len(block))
            vectors = np.frombuffer(b"".join(r[1] for r in block), dtype=np.float32)
            yield ids, vectors.reshape(-1, dim)

    def drop_blob_vectors(self, shards: list[tuple[int, np.ndarray]]) -> int:
        """Move a first-format index to shards in one transaction: the chunks table without its
        BLOBs, each live chunk at its row of the given shards (shard, chunk ids `[rows]` in
        order); staged documents are dropped (the next build embeds them again). Returns the
        new generation."""
        self.db.execute("CREATE TEMP TABLE place(id INTEGER PRIMARY KEY, shard INT, row INT)")
        for shard, ids in shards:
            self.add_shard(shard, len(ids))
            self.db.execute("UPDATE shards SET used = ? WHERE id = ?", (len(ids), shard))
            placed = ((i, shard, r) for i, r in enumerate_rows(ids))
            self.db.executemany("INSERT INTO place VALUES (?, ?, ?)", placed)
        self.db.execute(CHUNKS.format(name="chunks_sharded"))
        self.db.execute(
            "INSERT INTO chunks_sharded SELECT c.id, c.doc, c.position, c.start, c.end, "
            "c.n_tokens, c.text, p.shard, p.row FROM chunks c JOIN place p ON p.id = c.id"
        )
        self.db.execute("DROP TABLE chunks")
        self.db.execute("ALTER TABLE chunks_sharded RENAME TO chunks")
        for statement in CHUNK_INDEXES:
            self.db.execute(statement)
        self.db.execute("DELETE FROM documents WHERE live = 0")
        self.db.execute("DELETE FROM chunks_fts WHERE rowid NOT IN (SELECT id FROM chunks)")
        self.db.execute("DROP TABLE place")
        return self.next_generation()

    # ── reading ─────────────────────────────────────────────────────────────────────────────
    def live_names(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT name FROM documents WHERE live = 1")]

    def live_texts(self) -> list[str]:
        """The texts of the live chunks, in chunk-id order."""
        return [r[0] for r in self.db.execute(f"SELECT c.text FROM {_LIVE_CHUNKS} ORDER BY c.id")]

    def shards(self) -> list[tuple[int, int, int]]:
        """The published shards that live chunks use: (shard, rows, rows used), by shard."""
        sql = "SELECT id, rows, used FROM shards WHERE generation IS NOT NULL AND used > 0"
        return self.db.execute(sql + " ORDER BY id").fetchall()

    def shard_numbers(self) -> set[int]:
        """Every shard the database knows, staged ones included."""
        return {r[0] for r in self.db.execute("SELECT id FROM shards")}

    def shard_chunks(self, shard: int) -> tuple[np.ndarray, np.ndarray]:
        """(chunk ids, rows) of the live chunks in shard `shard`, by row."""
        rows = self.db.execute(
            f"SELECT c.id, c.row FROM {_LIVE_CHUNKS} WHERE c.shard = ? ORDER BY c.row", (shard,)
        ).fetchall()
        return _columns(rows, 2)

    def live_places(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(chunk ids, shards, rows) of every live chunk, by chunk id."""
        sql = f"SELECT c.id, c.shard, c.row FROM {_LIVE_CHUNKS} ORDER BY c.id"
        return _columns(self.db.execute(sql).fetchall(), 3)

    def ids_at(self, places: list[tuple[int, int]]) -> list[int]:
        """The chunk ids at (shard, row) `places`."""
        sql = "SELECT id FROM chunks WHERE shard = ? AND row = ?"
        return [self.db.execute(sql, p).fetchone()[0] for p in places]

    def counts(self) -> dict[str, int]:
        """Live documents, chunks, tokens and split sentences, and staged documents."""
        docs, split = self.db.execute(
            "SELECT count(*), coalesce(sum(split), 0) FROM documents WHERE live = 1"
        ).fetchone()
        chunks, tokens = self.db.execute(
            f"SELECT count(*), coalesce(sum(c.n_tokens), 0) FROM {_LIVE_CHUNKS}"
        ).fetchone()
        staged = self.db.execute("SELECT count(*) FROM documents WHERE live = 0").fetchone()[0]
        return {
            "documents": docs,
            "chunks": chunks,
            "tokens": tokens,
            "split_sentences": split,
            "staged_documents": staged,
        }

    def documents(self) -> list[dict]:
        """The live documents by name: name, number of chunks, metadata."""
        rows = self.db.execute(
            "SELECT d.name, count(c.id), d.metadata FROM documents d JOIN chunks c ON c.doc = d.id "
            "WHERE d.live = 1 GROUP BY d.id ORDER BY d.name"
        )
        return [{"name": n, "chunks": c, "metadata": json.loads(m)} for n, c, m in rows]

    def places(self, where: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
        """(shards, rows) of the live chunks whose document metadata match every `key=glob` of
        `where`."""
        sql, params = _where_sql(where)
        rows = self.db.execute(f"SELECT c.shard, c.row FROM {_LIVE_CHUNKS} WHERE 1{sql}", params)
        return _columns(rows.fetchall(), 2)

    def bm25(
        self, words: list[str], k: int, where: dict[str, str] | None
    ) -> list[tuple[int, float]]:
        """The k live chunks (id, BM25 score) best matching any of `words`, best first, among
        those whose document metadata match `where`."""
        match = " OR ".join(f'"{w}"' for w in dict.fromkeys(words))
        sql, params = _where_sql(where)
        rows = self.db.execute(
            "SELECT c.id, -bm25(chunks_fts) FROM chunks_fts "
            f"JOIN {_LIVE_CHUNKS} AND c.id = chunks_fts.rowid "
            f"WHERE chunks_fts MATCH ?{sql} ORDER BY bm25(chunks_fts) LIMIT ?",
            [match, *params, k],
        )
        return [(int(i), float(s)) for i, s in rows]

    def chunks(self, ids: list[int]) -> dict[int, tuple]:
        """Chunk id -> (document name, position, start, end, text, metadata dict)."""
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.db.execute(
            "SELECT c.id, d.name, c.position, c.start, c.end, c.text, d.metadata "
            f"FROM {_LIVE_CHUNKS} WHERE c.id IN ({marks})",
            ids,
        )
        return {r[0]: (*r[1:6], json.loads(r[6])) for r in rows}


def enumerate_rows(ids: np.ndarray) -> Iterator[tuple[int, int]]:
    """(chunk id, row) for chunk ids `[rows]` placed at rows 0, 1, …"""
    return ((int(i), r) for r, i in enumerate(ids))


def _columns(rows: list[tuple], n: int) -> tuple[np.ndarray, ...]:
    """The `n` integer columns of SQL result `rows`, as int64 arrays."""
    table = np.array(rows, dtype=np.int64).reshape(-1, n)
    return tuple(table[:, j].copy() for j in range(n))
