"""SQLite rows: the schema, documents and chunks, their checks, and BM25 search through FTS5."""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import unicodedata
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa.errors import IndexCorruptError, IndexLockedError, QAError
from qa.modeltext import model_view
from qa.schema import Chunk, Document
from qa.store.files import DB_NAME, _fsync_dir, _rebuild_hint

_MAX_QUERY_TERMS = 64
# Lucene's English stop words (StopAnalyzer.ENGLISH_STOP_WORDS_SET), which Anserini's BM25 baselines
# also drop. Leaving them out of the query hardly changes the ranking (their IDF is near zero) but
# spares FTS5 from scoring nearly every row: on SQuAD it cut BM25 p50 from ~37 ms to ~2 ms.
_STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there "
    "these they this to was will with".split()
)
_SQL_BATCH = 500

_SCHEMA = """
CREATE TABLE manifest (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE documents (
    doc_id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    n_chars INTEGER NOT NULL,
    added_at TEXT NOT NULL
);
CREATE TABLE chunks (
    rowid INTEGER PRIMARY KEY,  -- the FAISS id of this chunk
    chunk_id TEXT NOT NULL UNIQUE,
    doc_id TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    char_start INTEGER NOT NULL,
    char_end INTEGER NOT NULL,
    text TEXT NOT NULL,
    model_text TEXT NOT NULL  -- what BM25 reads: the passage's view (qa.modeltext), no markup or hard wraps
);
CREATE INDEX chunks_by_doc ON chunks(doc_id, ordinal);
-- unicode61 splits on Unicode punctuation and separators in any script and folds case and
-- diacritics; porter then stems English words ("stripes" matches "stripe"), as Anserini's BM25
-- baselines do (with stop words dropped from queries: BM25 recall@5 on SQuAD 90.6 -> 92.2, see
-- eval/RETRIEVAL.md). Porter leaves non-ASCII words alone. unicode61 does not segment CJK: a run
-- of Chinese characters is one token, so BM25 only matches it whole. The trigram tokenizer would
-- match CJK substrings, but it ignores terms shorter than 3 characters ("AI", "UN") and makes the
-- index several times larger.
CREATE VIRTUAL TABLE chunks_fts USING fts5(
    model_text, content='chunks', content_rowid='rowid', tokenize='porter unicode61 remove_diacritics 2'
);
-- External-content FTS5 is kept in step by triggers, so every statement that changes chunks
-- (including ON DELETE CASCADE) changes the FTS rows in the same transaction.
CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, model_text) VALUES (new.rowid, new.model_text);
END;
CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, model_text) VALUES ('delete', old.rowid, old.model_text);
END;
CREATE TRIGGER chunks_au AFTER UPDATE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, model_text) VALUES ('delete', old.rowid, old.model_text);
    INSERT INTO chunks_fts(rowid, model_text) VALUES (new.rowid, new.model_text);
END;
"""


@dataclass(frozen=True, slots=True)
class ScoredChunk:
    """A chunk found by one search, with its rowid (the FAISS id) and its document's source."""

    rowid: int
    chunk: Chunk
    score: float  # higher is better: cosine for dense, negated FTS5 bm25() for BM25
    source: str = ""


def document_sha256(doc: Document) -> str:
    """The hash recorded for a document: sha256 of its UTF-8 text (what decides that it changed)."""
    return hashlib.sha256(doc.text.encode("utf-8", "surrogatepass")).hexdigest()


def build_fts_query(question: str) -> str:
    """Turn free text into a safe FTS5 query: every term quoted, all OR-ed together.

    Terms are the alphanumeric runs of the question (as unicode61 splits them), less English stop
    words unless the question has nothing else; a word made of several runs ("ISIS-K", "a:b") is
    also added as a quoted phrase, which rewards the exact sequence. Operators, column filters,
    prefixes and SQL are inert inside quotes. Returns "" when nothing searchable is left
    (punctuation, emoji).
    """
    text = unicodedata.normalize("NFC", question)
    words = [re.findall(r"[^\W_]+", word) for word in text.split()]
    keep_stop = all(run.casefold() in _STOP_WORDS for runs in words for run in runs)
    terms: list[str] = []
    seen: set[str] = set()

    def add(term: str) -> None:
        key = term.casefold()
        if key not in seen and len(terms) < _MAX_QUERY_TERMS:
            seen.add(key)
            terms.append('"' + term.replace('"', '""') + '"')

    for runs in words:
        for run in runs:
            if keep_stop or run.casefold() not in _STOP_WORDS:
                add(run)
        if len(runs) > 1:
            add(" ".join(runs))
    return " OR ".join(terms)


# ---- connections -----------------------------------------------------------------------------


def _connect(db_path: Path) -> sqlite3.Connection:
    # mode=rw: never create a database by accident when opening.
    uri = "file:" + urllib.parse.quote(str(db_path)) + "?mode=rw"
    conn = sqlite3.connect(uri, uri=True, timeout=10.0, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    # FULL: a commit is on disk before apply() deletes the previous FAISS file, even on power loss.
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:  # the transaction may already be gone
            pass


def _wrap_error(index_dir: Path, exc: sqlite3.Error) -> QAError:
    """The typed error for a failed SQLite statement: busy (another process) or damaged."""
    db = index_dir / DB_NAME
    text = str(exc)
    if "locked" in text or "busy" in text:
        return IndexLockedError(f"{db} is busy ({text}); another qa process is using it, try again")
    return IndexCorruptError(f"{db} is damaged or unreadable ({text}); {_rebuild_hint(index_dir)}")


@contextmanager
def _snapshot(conn: sqlite3.Connection, index_dir: Path) -> Iterator[None]:
    """A read transaction: every query inside sees one snapshot (WAL), whatever writers commit.

    SQLite errors inside come out as :func:`_wrap_error` makes them; a nested one joins the outer transaction.
    """
    nested = conn.in_transaction
    try:
        if not nested:
            conn.execute("BEGIN")
        yield
    except sqlite3.Error as exc:
        if not nested:
            _rollback(conn)
        raise _wrap_error(index_dir, exc) from exc
    except BaseException:
        if not nested:
            _rollback(conn)
        raise
    else:
        if not nested:
            conn.execute("COMMIT")


def _create_database(d: Path, manifest_rows: list[tuple[str, str]]) -> None:
    """Write the database of a new index as a temporary file, then rename it into place (it appears last)."""
    tmp = d / (DB_NAME + ".tmp")
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(str(tmp), isolation_level=None)
    try:
        # WAL lets readers keep reading while a writer commits; the mode is stored in the file.
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript("BEGIN;\n" + _SCHEMA)
        conn.executemany("INSERT INTO manifest (key, value) VALUES (?, ?)", manifest_rows)
        conn.execute("COMMIT")
    finally:
        conn.close()  # the last connection checkpoints and removes the WAL
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, d / DB_NAME)
    _fsync_dir(d)


# ---- batched statements ----------------------------------------------------------------------


def _select_in(conn: sqlite3.Connection, sql: str, values: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Run ``sql`` with its ``IN ({})`` filled by ``values``, in batches SQLite accepts; all rows."""
    rows: list[tuple[Any, ...]] = []
    for b in range(0, len(values), _SQL_BATCH):
        part = values[b : b + _SQL_BATCH]
        rows.extend(conn.execute(sql.format(",".join("?" * len(part))), part).fetchall())
    return rows


def _executemany_in(conn: sqlite3.Connection, sql: str, values: Sequence[Any]) -> None:
    for b in range(0, len(values), _SQL_BATCH):
        part = values[b : b + _SQL_BATCH]
        conn.execute(sql.format(",".join("?" * len(part))), part)


# ---- reading ---------------------------------------------------------------------------------


def _document_hashes(conn: sqlite3.Connection) -> dict[str, str]:
    rows = conn.execute("SELECT doc_id, sha256 FROM documents ORDER BY doc_id").fetchall()
    return {doc_id: sha for doc_id, sha in rows}


def _document_summaries(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT d.doc_id, d.title, d.source, d.n_chars, count(c.rowid) FROM documents d "
        "LEFT JOIN chunks c ON c.doc_id = d.doc_id GROUP BY d.doc_id ORDER BY d.doc_id"
    ).fetchall()
    return [{"doc_id": d, "title": t, "source": s, "chars": n, "passages": k} for d, t, s, n, k in rows]


def _get_document(conn: sqlite3.Connection, doc_id: str) -> Document | None:
    rows = conn.execute("SELECT doc_id, text, title, source FROM documents WHERE doc_id = ?", (doc_id,)).fetchall()
    return Document(*rows[0]) if rows else None


def _get_chunk(conn: sqlite3.Connection, rowid: int) -> Chunk | None:
    rows = conn.execute(
        "SELECT chunk_id, doc_id, char_start, char_end, text FROM chunks WHERE rowid = ?", (int(rowid),)
    ).fetchall()
    return Chunk(*rows[0]) if rows else None


def _chunks_of(conn: sqlite3.Connection, doc_id: str) -> list[Chunk]:
    rows = conn.execute(
        "SELECT chunk_id, doc_id, char_start, char_end, text FROM chunks WHERE doc_id = ? ORDER BY ordinal",
        (doc_id,),
    ).fetchall()
    return [Chunk(*r) for r in rows]


def _fetch(conn: sqlite3.Connection, rowids: Sequence[int]) -> dict[int, tuple[Chunk, str]]:
    """``{rowid: (chunk, its document's source)}`` for the rowids that exist."""
    rows = _select_in(
        conn,
        "SELECT c.rowid, c.chunk_id, c.doc_id, c.char_start, c.char_end, c.text, d.source "
        "FROM chunks c JOIN documents d ON d.doc_id = c.doc_id WHERE c.rowid IN ({})",
        list(rowids),
    )
    return {r[0]: (Chunk(*r[1:6]), r[6]) for r in rows}


def _chunk_rowids(conn: sqlite3.Connection) -> list[int]:
    """Every chunk rowid, ascending: the ids the FAISS file must hold."""
    return [r for (r,) in conn.execute("SELECT rowid FROM chunks ORDER BY rowid")]


def _stored_doc_ids(conn: sqlite3.Connection) -> list[str]:
    return [d for (d,) in conn.execute("SELECT doc_id FROM documents").fetchall()]


def _rowids_of(conn: sqlite3.Connection, doc_ids: Sequence[str]) -> list[int]:
    """The rowids of the chunks of these documents."""
    return [r for (r,) in _select_in(conn, "SELECT rowid FROM chunks WHERE doc_id IN ({})", doc_ids)]


def _search_bm25(conn: sqlite3.Connection, expr: str, k: int) -> list[ScoredChunk]:
    """The ``k`` best chunks for the FTS5 query ``expr`` (from :func:`build_fts_query`), best first."""
    # Rank inside FTS5 first and join only the k winners, not every matching row.
    sql = (
        "SELECT c.rowid, c.chunk_id, c.doc_id, c.char_start, c.char_end, c.text, d.source, f.s FROM "
        "(SELECT rowid, bm25(chunks_fts) AS s FROM chunks_fts WHERE chunks_fts MATCH ? "
        "ORDER BY s, rowid LIMIT ?) f "
        "JOIN chunks c ON c.rowid = f.rowid JOIN documents d ON d.doc_id = c.doc_id ORDER BY f.s, c.rowid"
    )
    rows = conn.execute(sql, (expr, int(k))).fetchall()
    return [ScoredChunk(r[0], Chunk(*r[1:6]), -float(r[7]), r[6]) for r in rows]


def _check_rows(conn: sqlite3.Connection, index_dir: Path) -> None:
    """Check SQLite's pages, chunks against documents, FTS5 against chunks, and every chunk's offsets."""
    db = index_dir / DB_NAME
    if (res := conn.execute("PRAGMA quick_check").fetchone()[0]) != "ok":
        raise IndexCorruptError(f"{db} failed its integrity check ({res}); {_rebuild_hint(index_dir)}")
    if conn.execute("PRAGMA foreign_key_check").fetchone() is not None:
        raise IndexCorruptError(f"{db} has chunks without a document; {_rebuild_hint(index_dir)}")
    try:
        conn.execute("INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('integrity-check', 1)")
    except sqlite3.Error as exc:
        raise IndexCorruptError(
            f"{db}: the BM25 index is out of step with the chunks ({exc}); {_rebuild_hint(index_dir)}"
        ) from exc
    bad = conn.execute(
        "SELECT c.chunk_id FROM chunks c JOIN documents d USING (doc_id) "
        "WHERE substr(d.text, c.char_start + 1, c.char_end - c.char_start) != c.text LIMIT 1"
    ).fetchone()
    if bad is not None:
        raise IndexCorruptError(f"{db}: chunk {bad[0]!r} does not slice out of its document")


# ---- writing (inside the caller's transaction) -----------------------------------------------


def _check_chunk_ids(conn: sqlite3.Connection, new_ids: list[str], touched: set[str]) -> None:
    """A new chunk id may only be taken already by a document this change replaces or deletes."""
    for chunk_id, doc_id in _select_in(conn, "SELECT chunk_id, doc_id FROM chunks WHERE chunk_id IN ({})", new_ids):
        if doc_id not in touched:
            raise ValueError(f"chunk id {chunk_id!r} already belongs to document {doc_id!r}")


def _write_rows(
    conn: sqlite3.Connection,
    touched: Sequence[str],
    docs: Sequence[Document],
    new_rows: Sequence[tuple[int, Document, int, Chunk]],
    now: str,
) -> tuple[int, int]:
    """Delete the ``touched`` documents, insert ``docs`` and their chunks ``(rowid, doc, ordinal, chunk)``.

    Returns:
        ``(n_documents, n_chunks)`` in the index afterwards.
    """
    _executemany_in(conn, "DELETE FROM chunks WHERE doc_id IN ({})", touched)
    _executemany_in(conn, "DELETE FROM documents WHERE doc_id IN ({})", touched)
    conn.executemany(
        "INSERT INTO documents (doc_id, source, title, text, sha256, n_chars, added_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(d.doc_id, d.source, d.title, d.text, document_sha256(d), len(d.text), now) for d in docs],
    )
    conn.executemany(
        "INSERT INTO chunks (rowid, chunk_id, doc_id, ordinal, char_start, char_end, text, model_text) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (i, c.chunk_id, d.doc_id, n, c.char_start, c.char_end, c.text, model_view(c.text, d.source).text)
            for i, d, n, c in new_rows
        ],
    )
    n_documents = conn.execute("SELECT count(*) FROM documents").fetchone()[0]
    n_chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
    return n_documents, n_chunks


def _delete_all_rows(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM chunks")
    conn.execute("DELETE FROM documents")
