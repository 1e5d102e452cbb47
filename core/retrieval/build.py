"""Building an index: documents read, cut into passages, governed like training data, hashed
into lineage and written to the index file atomically.

Governance is the one runs use (:func:`polyadapt.governance.engine.govern_dataset`): the
licence declared for the documents is checked against the policy's licence rules as a run's
``data.licence`` is, and every passage goes through the policy's redactor (PII and secret
scanners, built-in and from plugins), so the index stores governed text only; a passage the
policy drops is left out, one it refuses stops the build. The counts (kept, redacted,
dropped, findings by type) are shown and recorded, never a value.

The index file is written to a temporary name in the same folder and renamed over the old
one: a search sees the old index or the new one, never a half-built file. With the Qdrant
vector engine (:mod:`polyadapt.retrieval.qdrant`) the vectors go to a new collection first,
which the new file names; the old build's collection is dropped once the file is in place,
and the new one when the build fails.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polyadapt.errors import DataError
from polyadapt.retrieval import fts
from polyadapt.retrieval.chunking import DEFAULT_CHUNK_WORDS, MAX_CHUNK_WORDS, MIN_CHUNK_WORDS, chunk_document
from polyadapt.retrieval.documents import Reading, read_documents
from polyadapt.retrieval.index import check_index_name, index_path, indexes_dir

if TYPE_CHECKING:  # pragma: no cover
    from polyadapt.governance.policy import Policy
    from polyadapt.governance.redact import Redactor
    from polyadapt.retrieval.qdrant import QdrantLocation

#: The governance "modality" and role index passages are checked under (the policy's
#: ``consent.required`` may name ``documents``).
MODALITY = "documents"
ROLE = "index"
#: Where dense vectors can go: the index file itself (default) or a Qdrant collection.
VECTOR_ENGINES = ("sqlite", "qdrant")


@dataclass
class BuildResult:
    """What a build made: the index's name and file, counts, hashes and governance summary."""

    name: str
    path: Path
    documents: int
    passages: int
    root_hash: str
    documents_root_hash: str
    governance: dict[str, Any]
    licence: str | None
    embedding: dict[str, Any] | None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    hidden: int = 0
    other_types: int = 0
    #: Where the dense vectors are: ``{"engine": "sqlite"}`` or Qdrant's collection and location.
    vectors: dict[str, Any] | None = None

    def lines(self) -> list[str]:
        """What to tell the user, one line each (counts only, never a value)."""
        gov = self.governance
        out = [
            f"index {self.name}: {self.documents} document(s), {self.passages} passage(s) -> {self.path}",
            f"governance (policy {gov.get('policy')}, licence {self.licence or 'none declared'}): "
            f"{gov.get('kept', 0)} kept, {gov.get('redacted', 0)} redacted, {gov.get('dropped', 0)} dropped"
            + (
                "; findings: " + ", ".join(f"{k} {v}" for k, v in gov["findings_by_type"].items())
                if gov.get("findings_by_type")
                else ""
            ),
            f"root hash {self.root_hash} (documents {self.documents_root_hash})",
        ]
        if self.embedding:
            out.append(f"dense vectors: {self.embedding['dims']} dims from {self.embedding['model']}")
        if self.vectors and self.vectors.get("engine") == "qdrant":
            where = self.vectors.get("url") or self.vectors.get("path")
            out.append(f"vector engine: qdrant, collection {self.vectors['collection']} at {where}")
        if self.hidden or self.other_types:
            out.append(f"passed over: {self.hidden} hidden file(s), {self.other_types} file(s) of other types")
        out += [f"skipped {source}: {reason}" for source, reason in self.skipped]
        return out


def _policy(policy: Policy | Path | str | None) -> Policy:
    from polyadapt.governance.policy import Policy, load_policy

    return policy if isinstance(policy, Policy) else load_policy(policy)


def _redactor(policy: Policy, root: Path) -> Redactor:
    """The policy's redactor with every plugin's scanners, keyed by the project key (as runs)."""
    from polyadapt.governance.redact import Redactor, load_or_create_key
    from polyadapt.governance.scanners import builtin_scanners
    from polyadapt.plugins import get_plugin_manager

    return Redactor(policy, [*builtin_scanners(policy), *get_plugin_manager().scanners()], load_or_create_key(root))


def passage_id(source: str, text: str) -> str:
    """A passage's id: 16 hex digits of SHA-256 over its source and governed text."""
    return hashlib.sha256(f"{source}\n{text}".encode()).hexdigest()[:16]


def _check_chunk_words(chunk_words: int) -> int:
    if not MIN_CHUNK_WORDS <= chunk_words <= MAX_CHUNK_WORDS:
        from polyadapt.errors import ConfigError

        raise ConfigError(
            f"--chunk-words {chunk_words}: passages must hold {MIN_CHUNK_WORDS} to {MAX_CHUNK_WORDS} words "
            f"(default {DEFAULT_CHUNK_WORDS})"
        )
    return chunk_words


def _check_licence(policy: Policy, licence: str | None, name: str) -> None:
    """The policy's licence check of training data, its advice worded for an index build."""
    from polyadapt.errors import GovernanceError
    from polyadapt.governance.engine import check_licence

    try:
        check_licence(policy, licence, f"index {name}")
    except GovernanceError as exc:
        message = str(exc).replace("the data declares", "the documents declare")
        for verb in ("set", "fix"):
            message = message.replace(f"{verb} `data.licence` in the run config", f"{verb} --licence")
        raise GovernanceError(message) from None


def build_index(
    name: str,
    paths: list[Path | str],
    *,
    root: Path | None = None,
    licence: str | None = None,
    policy: Policy | Path | str | None = None,
    embed: Path | str | None = None,
    chunk_words: int = DEFAULT_CHUNK_WORDS,
    record_lineage: bool = True,
    vector_engine: str = "sqlite",
    qdrant: QdrantLocation | None = None,
) -> BuildResult:
    """Build (or rebuild, replacing it atomically) the index ``name`` over ``paths``.

    :param root: the state folder (default: the project's, ``.polyadapt/``).
    :param licence: the documents' SPDX licence expression, checked like ``data.licence``.
    :param policy: a :class:`Policy`, a policy file, or None for the strict default.
    :param embed: a local transformers encoder folder: passages also get dense vectors
        (mean pooled) and searches become hybrid.
    :param chunk_words: about how many words a passage holds.
    :param record_lineage: record the index in the lineage store (its database under
        ``root``, or ``$POLYADAPT_DB_URL``).
    :param vector_engine: where the dense vectors go: ``sqlite`` (the index file) or
        ``qdrant`` (a collection at ``qdrant``, a :class:`~polyadapt.retrieval.qdrant.QdrantLocation`).
    :raises GovernanceError: the licence is refused or a passage holds what the policy refuses.
    :raises DataError: no usable document, a named file unusable, a missing library.
    """
    from polyadapt.governance.engine import govern_dataset
    from polyadapt.lineage.manifest import build_manifest, root_hash
    from polyadapt.lineage.state import state_dir, utc_stamp
    from polyadapt.modalities.records import Dataset, Origins

    check_index_name(name)
    _check_chunk_words(chunk_words)
    _check_vector_engine(vector_engine, embed, qdrant)
    if vector_engine == "qdrant" and qdrant is not None:
        from polyadapt.retrieval.qdrant import connect

        connect(qdrant, name)  # an unreachable server fails before documents are read and encoded
    root = Path(root) if root is not None else state_dir()
    chosen = _policy(policy)
    _check_licence(chosen, licence, name)  # before reading anything
    if not paths:
        raise DataError(f"index {name}: no documents given; name files or folders with --from")
    reading: Reading = read_documents(list(paths))
    if not reading.documents:
        detail = "; ".join(f"{s}: {r}" for s, r in reading.skipped[:5]) or "no .txt/.md/.rst/.html/.pdf file found"
        raise DataError(f"index {name}: no usable document under {', '.join(map(str, paths))} ({detail})")

    records: list[dict[str, Any]] = []
    anchors: list[tuple[int, str]] = []
    for doc_id, document in enumerate(reading.documents):
        for chunk in chunk_document(document, chunk_words):
            records.append({"text": chunk.text, "file": document.source})
            anchors.append((doc_id, document.source + chunk.anchor()))
    dataset = Dataset(
        source=Path(str(paths[0])),
        kind="documents",
        records=records,
        scanned_fields=("text",),
        origins=Origins("file"),
    )
    governed = govern_dataset(
        dataset, policy=chosen, redactor=_redactor(chosen, root), modality=MODALITY, licence=licence, role=ROLE
    )
    kept = iter(governed.dataset.records)
    rows: list[tuple[str, str, str, int]] = []
    per_document = [0] * len(reading.documents)
    for decision in governed.decisions:
        if decision.action == "dropped":
            continue
        doc_id, source = anchors[decision.index]
        text = next(kept)["text"]
        rows.append((passage_id(source, text), text, source, doc_id))
        per_document[doc_id] += 1

    manifest = build_manifest(governed.dataset, role=ROLE, governance=governed.summary)
    documents = [
        {"source": d.source, "sha256": d.sha256, "bytes": d.bytes, "kind": d.kind, "passages": per_document[i]}
        for i, d in enumerate(reading.documents)
    ]
    documents_root = root_hash([d.sha256 for d in reading.documents])
    embedding = None
    vectors = None
    if embed is not None:
        from polyadapt.retrieval.dense import Encoder

        encoder = Encoder.load(embed, index=name)
        vectors = encoder.encode([text for _, text, _, _ in rows])
        embedding = {"model": encoder.reference, "dims": int(vectors.shape[1]) if len(rows) else 0}
    meta = {
        "format_version": fts.FORMAT_VERSION,
        "name": name,
        "built": utc_stamp(),
        "licence": governed.summary.get("licence"),
        "policy": chosen.name,
        "chunk_words": chunk_words,
        "root_hash": manifest["root_hash"],
        "documents_root_hash": documents_root,
        "documents": documents,
        "passages": len(rows),
        "governance": governed.summary,
        "skipped": [{"source": s, "reason": r} for s, r in reading.skipped],
        "embedding": embedding,
        "vectors": None if embedding is None else {"engine": "sqlite"},
    }
    path = index_path(name, root)
    previous = _previous_vectors(path)
    if vectors is not None and vector_engine == "qdrant":
        assert qdrant is not None  # checked by _check_vector_engine
        from polyadapt.retrieval import qdrant as engine

        collection = engine.new_collection_name(name)
        meta["vectors"] = {"engine": "qdrant", "collection": collection, **qdrant.to_meta()}
        engine.write_collection(qdrant, collection, vectors, [row[0] for row in rows], index=name)
        try:
            _write_index(path, meta, documents, rows, None)
        except BaseException:
            engine.drop_collection(qdrant, collection, index=name, quiet=True)
            raise
    else:
        _write_index(path, meta, documents, rows, vectors)
    _drop_previous(name, previous, meta["vectors"])
    if record_lineage:
        _record(root, name, path, meta, manifest)
    return BuildResult(
        name=name,
        path=path,
        documents=len(documents),
        passages=len(rows),
        root_hash=manifest["root_hash"],
        documents_root_hash=documents_root,
        governance=governed.summary,
        licence=governed.summary.get("licence"),
        embedding=embedding,
        skipped=reading.skipped,
        hidden=reading.hidden,
        other_types=reading.other_types,
        vectors=meta["vectors"],
    )


def _check_vector_engine(engine: str, embed: Path | str | None, qdrant: QdrantLocation | None) -> None:
    """A :class:`ConfigError` for a vector engine the build cannot use."""
    from polyadapt.errors import ConfigError

    if engine not in VECTOR_ENGINES:
        raise ConfigError(f"--vector-engine {engine!r}: use one of {', '.join(VECTOR_ENGINES)}")
    if engine == "qdrant" and embed is None:
        raise ConfigError("--vector-engine qdrant stores dense vectors: give the encoder folder with --embed DIR")
    if engine == "qdrant" and qdrant is None:
        raise ConfigError("--vector-engine qdrant: give --qdrant-url URL or --qdrant-path DIR")
    if engine != "qdrant" and qdrant is not None:
        raise ConfigError("--qdrant-url and --qdrant-path need --vector-engine qdrant")


def _previous_vectors(path: Path) -> dict[str, Any] | None:
    """The ``vectors`` the index file at ``path`` records now (None without one or without vectors)."""
    if not path.is_file():
        return None
    try:
        conn = fts.open_read(path)
        try:
            vectors = fts.read_meta(conn, path).get("vectors")
        finally:
            conn.close()
    except Exception:  # noqa: BLE001 - an unreadable old file is replaced whatever it held
        return None
    return vectors if isinstance(vectors, dict) else None


def _drop_previous(name: str, previous: dict[str, Any] | None, current: dict[str, Any] | None) -> None:
    """Drop the Qdrant collection of the build just replaced (unless the new file names it)."""
    if not previous or previous.get("engine") != "qdrant":
        return
    if current and current.get("collection") == previous.get("collection"):
        return
    from polyadapt.retrieval import qdrant as engine

    location = engine.QdrantLocation.from_meta(previous)
    if not engine.drop_collection(location, previous["collection"], index=name, quiet=True):
        import warnings

        warnings.warn(
            f"index {name}: the previous build's Qdrant collection {previous['collection']!r} "
            f"({location.describe()}) was not dropped; delete it there if it remains",
            stacklevel=3,
        )


def _write_index(
    path: Path,
    meta: dict[str, Any],
    documents: list[dict[str, Any]],
    rows: list[tuple[str, str, str, int]],
    vectors: Any,
) -> None:
    """Write the index file to a temporary name beside ``path``, then rename it into place."""
    folder = indexes_dir(path.parent.parent)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    os.unlink(tmp)  # SQLite creates the file itself
    try:
        conn = fts.create(Path(tmp))
        try:
            with conn:
                fts.write_meta(conn, meta)
                conn.executemany(
                    "INSERT INTO documents (doc_id, source, sha256, bytes, kind, passages) VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (i, d["source"], d["sha256"], d["bytes"], d["kind"], d["passages"])
                        for i, d in enumerate(documents)
                    ],
                )
                fts.add_passages(conn, rows)
                if vectors is not None:
                    conn.executemany(
                        "INSERT INTO vectors (rowid, vector) VALUES (?, ?)",
                        [(i + 1, vectors[i].tobytes()) for i in range(len(rows))],
                    )
                conn.execute("INSERT INTO passages(passages) VALUES ('optimize')")
        finally:
            conn.close()
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _record(root: Path, name: str, path: Path, meta: dict[str, Any], manifest: dict[str, Any]) -> None:
    """Record the index (its manifest and facts, no text) in the lineage store under ``root``."""
    from polyadapt.fileio import portable_path
    from polyadapt.lineage.state import DB_FILE, DB_URL_ENV
    from polyadapt.lineage.store import LineageStore

    url = None if os.environ.get(DB_URL_ENV) else f"sqlite:///{root / DB_FILE}"
    facts = {
        key: meta[key]
        for key in ("licence", "policy", "chunk_words", "documents", "governance", "embedding", "vectors")
    }
    with LineageStore.open(url) as store:
        store.record_dataset(manifest)
        store.record_index(
            name,
            root_hash=manifest["root_hash"],
            documents_root_hash=meta["documents_root_hash"],
            passages=meta["passages"],
            path=portable_path(path),
            facts=facts,
        )
