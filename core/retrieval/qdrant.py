"""Qdrant as the vector engine of an index: dense vectors in a Qdrant collection instead of the
index file, for users who outgrow one machine.

``polyadapt index build NAME --from PATH --embed DIR --vector-engine qdrant`` with
``--qdrant-url URL`` (a Qdrant server; its API key is read from ``$QDRANT_API_KEY``, or the
variable ``--qdrant-api-key-env`` names, at every use and never stored) or
``--qdrant-path DIR`` (qdrant-client's embedded local mode: a folder, one process at a time).
The index file keeps the passages, BM25, governance and hashes; it records the engine, the
collection and the location (:class:`QdrantLocation`, never a secret), so searches query the
collection and fuse its ranking with BM25 as the embedded dense path does.

Atomic rebuilds: every build writes a new collection, ``NAME-<UTC stamp>-<random>``
(:func:`new_collection_name`), then renames the new index file (which names it) into place;
only then is the previous build's collection dropped. A build that fails drops the collection
it was writing. A search therefore always reads a file and the collection that file names.

Points are the passages' FTS rowids (1, 2, ...) with payload ``{"passage_id": ...}``; a
search checks the payload against the passage the index file holds under that rowid, so a
collection that belongs to another build is an error, never wrong passages.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from polyadapt.errors import ConfigError, PolyadaptError

#: The value of ``--vector-engine`` (and the index meta's ``vectors.engine``) for Qdrant.
ENGINE = "qdrant"
#: The environment variable the server's API key is read from unless another is named.
DEFAULT_API_KEY_ENV = "QDRANT_API_KEY"
#: Points sent to Qdrant per request while building.
UPSERT_BATCH = 256
#: Seconds a request to a Qdrant server may take.
TIMEOUT_S = 10
INSTALL_HINT = "pip install 'polyadapt[retrieval]' (or pip install qdrant-client)"

_clients: dict[str, Any] = {}
#: Local mode's client is not made for threads: calls to one folder are taken in turn.
_local_locks: dict[str, threading.Lock] = {}
_clients_lock = threading.Lock()


@dataclass(frozen=True)
class QdrantLocation:
    """Where a Qdrant collection lives: a server ``url`` or a local ``path`` (one of them).

    ``api_key_env`` names the environment variable a server's API key is read from; the
    key itself is never stored.
    """

    url: str | None = None
    path: str | None = None
    api_key_env: str = DEFAULT_API_KEY_ENV

    @classmethod
    def from_options(cls, url: str | None, path: Path | str | None, api_key_env: str | None = None) -> QdrantLocation:
        """The location ``--qdrant-url`` or ``--qdrant-path`` names (a path made absolute);
        :class:`ConfigError` unless exactly one is given or when the URL holds a password."""
        if (url is None) == (path is None):
            raise ConfigError(
                "--vector-engine qdrant: give --qdrant-url URL (a Qdrant server) or --qdrant-path DIR "
                "(a local folder, qdrant-client's embedded mode), exactly one"
            )
        env = api_key_env or DEFAULT_API_KEY_ENV
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(f"--qdrant-url {url!r}: give an http(s) URL such as http://localhost:6333")
            if parts.password or parts.username:
                raise ConfigError(
                    f"--qdrant-url: leave credentials out of the URL (it is recorded in the index); put the API key "
                    f"in ${env} instead"
                )
            return cls(url=urlunsplit(parts._replace(fragment="")).rstrip("/"), api_key_env=env)
        return cls(path=str(Path(str(path)).expanduser().resolve()), api_key_env=env)

    @classmethod
    def from_meta(cls, vectors: dict[str, Any]) -> QdrantLocation:
        """The location an index's meta (``vectors``) records."""
        return cls(url=vectors.get("url"), path=vectors.get("path"), api_key_env=vectors.get("api_key_env") or "")

    def to_meta(self) -> dict[str, Any]:
        """What the index records of the location (no secret)."""
        if self.url is not None:
            return {"url": self.url, "api_key_env": self.api_key_env}
        return {"path": self.path}

    def describe(self) -> str:
        """The location in words: ``server http://...`` or ``local folder /...``."""
        return f"server {self.url}" if self.url is not None else f"local folder {self.path}"

    def key(self) -> str:
        """The key a client is shared under within this process."""
        return f"url:{self.url}" if self.url is not None else f"path:{self.path}"


def _qdrant() -> Any:
    try:
        import qdrant_client
    except ModuleNotFoundError:
        raise PolyadaptError(f"the qdrant vector engine needs qdrant-client: {INSTALL_HINT}") from None
    return qdrant_client


def _unreachable(location: QdrantLocation, index: str, exc: BaseException) -> PolyadaptError:
    """The error for a failed request to the Qdrant of ``location``."""
    from qdrant_client.http.exceptions import UnexpectedResponse

    if location.url is None:
        return PolyadaptError(f"index {index}: Qdrant {location.describe()}: {exc}")
    if isinstance(exc, UnexpectedResponse) and exc.status_code in (401, 403):
        return PolyadaptError(
            f"index {index}: the Qdrant server {location.url} refused the request ({exc.status_code}); set its API "
            f"key in ${location.api_key_env or DEFAULT_API_KEY_ENV}"
        )
    if isinstance(exc, UnexpectedResponse):
        return PolyadaptError(
            f"index {index}: the Qdrant server {location.url} answered {exc.status_code} {exc.reason_phrase}"
        )
    return PolyadaptError(
        f"index {index}: cannot reach the Qdrant server at {location.url} ({exc}); start it (e.g. "
        "`docker run -p 6333:6333 qdrant/qdrant`), check the URL, or build with --qdrant-path DIR for a local folder"
    )


def connect(location: QdrantLocation, index: str) -> Any:
    """A qdrant-client for ``location``, shared within the process (local mode allows one
    client per folder); for a server, checked to answer first."""
    qdrant_client = _qdrant()
    with _clients_lock:
        client = _clients.get(location.key())
        if client is not None:
            return client
        if location.path is not None:
            try:
                Path(location.path).mkdir(parents=True, exist_ok=True)
                client = qdrant_client.QdrantClient(path=location.path)
                _local_locks[location.key()] = threading.Lock()
            except (RuntimeError, OSError) as exc:
                raise PolyadaptError(
                    f"index {index}: cannot open the local Qdrant folder {location.path} ({exc}); local mode serves "
                    "one process at a time: stop the other one (a server?), or use a Qdrant server (--qdrant-url)"
                ) from None
        else:
            api_key = os.environ.get(location.api_key_env) if location.api_key_env else None
            client = qdrant_client.QdrantClient(
                url=location.url, api_key=api_key or None, timeout=TIMEOUT_S, check_compatibility=False
            )
            try:
                client.get_collections()
            except Exception as exc:  # noqa: BLE001 - transport errors vary (httpx, qdrant's wrappers)
                client.close()
                raise _unreachable(location, index, exc) from None
        _clients[location.key()] = client
        return client


def close_all() -> None:
    """Close every client this process opened (local folders are unlocked)."""
    with _clients_lock:
        for client in _clients.values():
            client.close()
        _clients.clear()
        _local_locks.clear()


def new_collection_name(index: str) -> str:
    """A fresh collection name for a build of ``index``: ``NAME-<UTC stamp>-<6 hex>``."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{index}-{stamp}-{secrets.token_hex(3)}"


def _call(location: QdrantLocation, index: str, action: Any) -> Any:
    """``action(client)`` with transport errors turned into :class:`PolyadaptError`."""
    client = connect(location, index)
    try:
        with _local_locks.get(location.key()) or contextlib.nullcontext():
            return action(client)
    except PolyadaptError:
        raise
    except Exception as exc:  # noqa: BLE001 - qdrant-client raises many types
        raise _unreachable(location, index, exc) from None


def write_collection(
    location: QdrantLocation, collection: str, vectors: Any, passage_ids: Sequence[str], *, index: str
) -> None:
    """Create ``collection`` (cosine) holding ``vectors`` as points 1..n with their passage ids;
    on any failure the collection is dropped again before the error is raised."""
    _qdrant()  # the one-line error when qdrant-client is missing
    from qdrant_client import models

    dims = int(vectors.shape[1]) if len(vectors.shape) == 2 else 0

    def write(client: Any) -> None:
        client.create_collection(
            collection, vectors_config=models.VectorParams(size=max(dims, 1), distance=models.Distance.COSINE)
        )
        for start in range(0, len(passage_ids), UPSERT_BATCH):
            points = [
                models.PointStruct(id=i + 1, vector=vectors[i].tolist(), payload={"passage_id": passage_ids[i]})
                for i in range(start, min(start + UPSERT_BATCH, len(passage_ids)))
            ]
            client.upsert(collection, points=points, wait=True)

    try:
        _call(location, index, write)
    except BaseException:
        drop_collection(location, collection, index=index, quiet=True)
        raise


def drop_collection(location: QdrantLocation, collection: str, *, index: str, quiet: bool = False) -> bool:
    """Delete ``collection``: True once it is gone (or was never there); with ``quiet`` a
    failure returns False instead of raising."""
    try:
        return bool(
            _call(
                location,
                index,
                lambda client: not client.collection_exists(collection) or client.delete_collection(collection),
            )
        )
    except PolyadaptError:
        if quiet:
            return False
        raise


def collection_dims(location: QdrantLocation, collection: str, *, index: str) -> int:
    """The vector size of ``collection``; a :class:`PolyadaptError` naming the index when it is gone."""

    def dims(client: Any) -> int:
        if not client.collection_exists(collection):
            raise PolyadaptError(
                f"index {index}: its Qdrant collection {collection!r} is missing from {location.describe()} (dropped, "
                f"or another Qdrant?); rebuild it with `polyadapt index build {index} --from PATH... --embed DIR "
                "--vector-engine qdrant ...`"
            )
        vectors = client.get_collection(collection).config.params.vectors
        return int(vectors.size)

    return int(_call(location, index, dims))


def nearest(
    location: QdrantLocation, collection: str, query: Any, limit: int, *, index: str
) -> list[tuple[int, float, str | None]]:
    """The ``limit`` points most similar to ``query``: ``(rowid, cosine, passage_id)``, best first."""
    if limit <= 0:
        return []

    def search(client: Any) -> Any:
        return client.query_points(collection, query=[float(x) for x in query], limit=limit, with_payload=True)

    try:
        found = _call(location, index, search)
    except PolyadaptError:
        collection_dims(location, collection, index=index)  # a missing collection says so
        raise
    return [(int(p.id), float(p.score), (p.payload or {}).get("passage_id")) for p in found.points]
