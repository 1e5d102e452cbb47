"""The index file: passages in a SQLite FTS5 table (BM25, ``porter unicode61``), its facts in
a ``meta`` table and optional vectors beside them.

Users type questions, not FTS5 syntax: :func:`match_expression` turns any text into a query
FTS5 accepts (each word quoted, joined by ``OR``; BM25 ranks passages holding more and rarer
words first), so ``what's covered?`` or ``"unbalanced`` never raise a syntax error.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polyadapt.errors import PolyadaptError

#: Version of the index file's layout; an index with another one must be rebuilt.
FORMAT_VERSION = 1

_WORD = re.compile(r"\w+", re.UNICODE)

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE documents (
    doc_id INTEGER PRIMARY KEY, source TEXT NOT NULL, sha256 TEXT NOT NULL,
    bytes INTEGER NOT NULL, kind TEXT NOT NULL, passages INTEGER NOT NULL
);
CREATE VIRTUAL TABLE passages USING fts5(
    text, passage_id UNINDEXED, source UNINDEXED, doc_id UNINDEXED, tokenize = 'porter unicode61'
);
CREATE TABLE vectors (rowid INTEGER PRIMARY KEY, vector BLOB NOT NULL);
"""


@dataclass(frozen=True)
class Row:
    """One stored passage: its FTS rowid, id, governed text and source."""

    rowid: int
    passage_id: str
    text: str
    source: str


def match_expression(query: str) -> str | None:
    """``query`` as an FTS5 MATCH expression (every word quoted, ``OR``-joined); None when
    it holds no word at all (punctuation only), which matches nothing."""
    words = _WORD.findall(query.lower())
    if not words:
        return None
    unique = list(dict.fromkeys(words))[:64]
    return " OR ".join(f'"{word}"' for word in unique)


def create(path: Path) -> sqlite3.Connection:
    """A new, empty index file at ``path`` (which must not exist), open for writing."""
    conn = sqlite3.connect(path)
    try:
        conn.executescript(SCHEMA)
    except sqlite3.OperationalError as exc:
        conn.close()
        raise PolyadaptError(
            f"this Python's SQLite cannot build a full-text index ({exc}); it needs the FTS5 extension "
            "(most builds have it: use the Python from python.org, your distribution or conda)"
        ) from None
    return conn


def write_meta(conn: sqlite3.Connection, facts: dict[str, Any]) -> None:
    """Store ``facts`` (JSON-ready) in the meta table."""
    conn.executemany(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
        [(key, json.dumps(value, sort_keys=True)) for key, value in facts.items()],
    )


def add_passages(conn: sqlite3.Connection, rows: Iterable[tuple[str, str, str, int]]) -> None:
    """Insert passages ``(passage_id, text, source, doc_id)`` in order (rowids from 1)."""
    conn.executemany("INSERT INTO passages (passage_id, text, source, doc_id) VALUES (?, ?, ?, ?)", rows)


def open_read(path: Path) -> sqlite3.Connection:
    """The index file at ``path`` opened read-only."""
    try:
        return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
    except sqlite3.Error as exc:
        raise PolyadaptError(f"{path}: cannot open the retrieval index: {exc}") from None


def read_meta(conn: sqlite3.Connection, path: Path) -> dict[str, Any]:
    """The facts in the meta table; a :class:`PolyadaptError` naming ``path`` when it is not an index."""
    try:
        rows = conn.execute("SELECT key, value FROM meta").fetchall()
    except sqlite3.DatabaseError as exc:
        raise PolyadaptError(
            f"{path}: not a polyadapt retrieval index ({exc}); rebuild it with `polyadapt index build`"
        ) from None
    meta = {key: json.loads(value) for key, value in rows}
    if meta.get("format_version") != FORMAT_VERSION:
        raise PolyadaptError(
            f"{path}: index format {meta.get('format_version')!r}, this polyadapt reads {FORMAT_VERSION}; "
            "rebuild it with `polyadapt index build`"
        )
    return meta


def bm25_search(conn: sqlite3.Connection, query: str, limit: int) -> list[tuple[Row, float]]:
    """The ``limit`` best passages for ``query`` by BM25 with their scores (higher is better)."""
    expression = match_expression(query)
    if expression is None or limit <= 0:
        return []
    rows = conn.execute(
        "SELECT rowid, passage_id, text, source, bm25(passages) AS rank FROM passages "
        "WHERE passages MATCH ? ORDER BY rank LIMIT ?",
        (expression, limit),
    ).fetchall()
    return [(Row(rowid, pid, text, source), -float(rank)) for rowid, pid, text, source, rank in rows]


def rows_by_id(conn: sqlite3.Connection, rowids: list[int]) -> dict[int, Row]:
    """The passages with ``rowids``."""
    if not rowids:
        return {}
    marks = ",".join("?" * len(rowids))
    found = conn.execute(f"SELECT rowid, passage_id, text, source FROM passages WHERE rowid IN ({marks})", rowids)
    return {rowid: Row(rowid, pid, text, source) for rowid, pid, text, source in found}
