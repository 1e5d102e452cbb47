"""Opening and searching a built index: :func:`open_index` and :class:`Index`."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polyadapt.errors import ConfigError, PolyadaptError
from polyadapt.retrieval import fts
from polyadapt.retrieval.passage import Passage

if TYPE_CHECKING:  # pragma: no cover
    from polyadapt.retrieval.dense import Encoder

#: The folder of the state folder that holds the index files.
INDEX_FOLDER = "indexes"
SUFFIX = ".sqlite"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
#: How many candidates each ranking contributes to hybrid fusion, per passage asked for.
CANDIDATES_PER_RESULT = 5


def check_index_name(name: str) -> str:
    """``name`` when it can name an index (letters, digits, ``.``, ``_``, ``-``; a file name
    on every system), else a :class:`ConfigError` saying what is allowed."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name.endswith("."):
        raise ConfigError(
            f"index name {name!r}: use letters, digits, '.', '_' and '-' (at most 128, starting with a "
            "letter or digit), e.g. `handbook` or `docs-v2`"
        )
    return name


def indexes_dir(root: Path | None = None) -> Path:
    """The folder of index files under ``root`` (default: the project's state folder)."""
    if root is None:
        from polyadapt.lineage.state import state_dir

        root = state_dir()
    return Path(root) / INDEX_FOLDER


def index_path(name: str, root: Path | None = None) -> Path:
    """The file of index ``name`` under ``root`` (it may not exist yet)."""
    return indexes_dir(root) / f"{check_index_name(name)}{SUFFIX}"


def list_indexes(root: Path | None = None) -> list[str]:
    """The names of the indexes built under ``root`` (default: the state folder), sorted."""
    folder = indexes_dir(root)
    if not folder.is_dir():
        return []
    return sorted(p.name[: -len(SUFFIX)] for p in folder.glob(f"*{SUFFIX}") if not p.name.startswith("."))


class Index:
    """A built index, searched by :meth:`search`; :attr:`meta` holds what the build recorded.

    Each search opens the file afresh (read-only), so a rebuild, which renames a new file
    into place, is seen by the next search (its meta re-read) and never half-read. Safe to
    share between threads.
    """

    def __init__(self, name: str, path: Path):
        self.name = name
        self.path = path
        self._lock = threading.Lock()
        self._encoder: Encoder | None = None
        self._version: tuple[int, int] | None = None
        #: The Qdrant collection whose vector size was checked against the encoder's.
        self._checked_collection: str | None = None
        self.meta: dict[str, Any] = {}
        self._refresh()

    def _refresh(self) -> None:
        """Re-read the meta table when the file was replaced (a rebuild) since it was read."""
        try:
            stat = self.path.stat()
        except OSError:
            raise PolyadaptError(
                f"retrieval index {self.name!r}: its file {self.path} is gone (removed?); rebuild it with "
                f"`polyadapt index build {self.name} --from PATH...`"
            ) from None
        version = (stat.st_ino, stat.st_mtime_ns)
        with self._lock:
            if version == self._version:
                return
            conn = fts.open_read(self.path)
            try:
                meta = fts.read_meta(conn, self.path)
            finally:
                conn.close()
            if meta.get("embedding") != self.meta.get("embedding"):
                self._encoder = None  # another encoder (or none) since the last build
            if meta.get("vectors") != self.meta.get("vectors"):
                self._checked_collection = None
            self.meta, self._version = meta, version

    @property
    def dense(self) -> bool:
        """Whether the index holds dense vectors (searches are then hybrid)."""
        return bool(self.meta.get("embedding"))

    @property
    def vector_engine(self) -> str | None:
        """Where the dense vectors are: ``sqlite`` (the index file), ``qdrant``, or None."""
        if not self.dense:
            return None
        return str((self.meta.get("vectors") or {}).get("engine") or "sqlite")

    def search(self, query: str, k: int = 4) -> list[Passage]:
        """The ``k`` passages that best match ``query``, best first.

        BM25 over the FTS5 table; for an index built with embeddings, BM25 and the dense
        ranking fused by reciprocal rank fusion. Any text is a valid query: FTS5 operators
        and punctuation are neutralised; a query without a word finds nothing.
        """
        if k <= 0:
            return []
        self._refresh()
        conn = fts.open_read(self.path)
        try:
            if not self.dense:
                return [self._passage(row, score) for row, score in fts.bm25_search(conn, query, k)]
            from polyadapt.retrieval import dense

            pool = max(k * CANDIDATES_PER_RESULT, 20)
            lexical = fts.bm25_search(conn, query, pool)
            vector = self._query_encoder().encode([query])[0]
            if self.vector_engine == "qdrant":
                semantic = self._qdrant_nearest(conn, vector, pool)
            else:
                semantic = dense.nearest(conn, vector, pool)
            fused = dense.reciprocal_rank_fusion([[row.rowid for row, _ in lexical], [r for r, _ in semantic]])[:k]
            rows = fts.rows_by_id(conn, [rowid for rowid, _ in fused])
            return [self._passage(rows[rowid], score) for rowid, score in fused if rowid in rows]
        finally:
            conn.close()

    def _query_encoder(self) -> Encoder:
        with self._lock:
            if self._encoder is None:
                from polyadapt.retrieval.dense import Encoder

                model = str(self.meta["embedding"]["model"])
                if not Path(model).expanduser().is_dir():
                    raise PolyadaptError(
                        f"retrieval index {self.name!r}: its embedding model {model} (the --embed folder it was "
                        f"built with) no longer exists; restore it there, or rebuild the index with "
                        f"`polyadapt index build {self.name} --from PATH... --embed DIR`"
                    )
                self._encoder = Encoder.load(model, index=self.name)
            return self._encoder

    def _qdrant_nearest(self, conn: Any, vector: Any, limit: int) -> list[tuple[int, float]]:
        """The dense ranking from the index's Qdrant collection, checked against the file."""
        from polyadapt.retrieval import qdrant

        vectors = self.meta["vectors"]
        collection = str(vectors["collection"])
        location = qdrant.QdrantLocation.from_meta(vectors)
        if self._checked_collection != collection:
            dims = qdrant.collection_dims(location, collection, index=self.name)
            if dims != len(vector):
                raise PolyadaptError(
                    f"retrieval index {self.name!r}: its Qdrant collection {collection!r} holds {dims}-dim vectors, "
                    f"the encoder {self.meta['embedding']['model']} makes {len(vector)}-dim ones (the model folder "
                    f"changed?); rebuild the index with `polyadapt index build {self.name} --from PATH... --embed DIR "
                    "--vector-engine qdrant ...`"
                )
            self._checked_collection = collection
        found = qdrant.nearest(location, collection, vector, limit, index=self.name)
        stored = fts.rows_by_id(conn, [rowid for rowid, _, _ in found])
        for rowid, _, passage_id in found:
            row = stored.get(rowid)
            if row is None or row.passage_id != passage_id:
                raise PolyadaptError(
                    f"retrieval index {self.name!r}: its Qdrant collection {collection!r} does not match the index "
                    f"file (point {rowid} is passage {passage_id}, the file holds "
                    f"{row.passage_id if row else 'none'}); rebuild the index"
                )
        return [(rowid, score) for rowid, score, _ in found]

    @staticmethod
    def _passage(row: fts.Row, score: float) -> Passage:
        return Passage(passage_id=row.passage_id, text=row.text, source=row.source, score=score)


def open_index(name: str, root: Path | None = None) -> Index:
    """The index ``name`` built under ``root`` (the project's state folder by default).

    Raises :class:`ConfigError` naming the index, where it was looked for and how to list
    or build indexes when there is none of that name.
    """
    path = index_path(name, root)
    if not path.is_file():
        built = list_indexes(root)
        known = f"built indexes: {', '.join(built)}" if built else "no index is built yet"
        raise ConfigError(
            f"retrieval index {name!r} not found (looked for {path}; {known}); build it with "
            f"`polyadapt index build {name} --from PATH...` or see `polyadapt index list`"
        )
    return Index(name, path)
