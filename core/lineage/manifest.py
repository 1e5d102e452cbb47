"""Dataset manifests: what a run trained or evaluated on, by content hash.

A manifest holds one SHA-256 per record (over the normalised record: sorted keys, UTF-8, no
whitespace; :func:`polyadapt.modalities.records.record_hash`) and a root hash over them in
order (== ``Dataset.fingerprint()``). Hashes depend on content only: the same data gives
the same root hash on any machine, under any folder or file name. The manifest also names
the source file (its name and size, never its folder: absolute paths differ per machine and
may hold user names), counts, the quarantine summary and the governance summary; none of it
holds record content.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from polyadapt.modalities.records import Dataset, record_hash

MANIFEST_VERSION = 1


def quarantine_summary(dataset: Dataset) -> dict[str, Any]:
    """How many records were rejected, by reason (the text before the first ``:``)."""
    reasons: dict[str, int] = {}
    for item in dataset.quarantined:
        key = item.reason.split(":")[0]
        reasons[key] = reasons.get(key, 0) + 1
    return {"records": len(dataset.quarantined), "reasons": dict(sorted(reasons.items()))}


def root_hash(record_hashes: list[str]) -> str:
    """The root hash over ordered record hashes (the same as ``Dataset.fingerprint()``)."""
    digest = hashlib.sha256()
    for item in record_hashes:
        digest.update(item.encode())
    return digest.hexdigest()


def build_manifest(dataset: Dataset, *, role: str, governance: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest of ``dataset`` used as ``role`` (``train``, ``eval``, ``general_eval``...).

    ``governance`` is the governance summary (``GovernedDataset.summary``): counts and
    finding types only. The manifest is JSON-ready.
    """
    hashes = [record_hash(record) for record in dataset.records]
    source = Path(dataset.source)
    try:
        size = source.stat().st_size if source.is_file() else None
    except OSError:
        size = None
    return {
        "manifest_version": MANIFEST_VERSION,
        "role": role,
        "kind": dataset.kind,
        "root_hash": root_hash(hashes),
        "records": len(hashes),
        "record_hashes": hashes,
        "source": {"name": source.name, "bytes": size},
        "quarantine": quarantine_summary(dataset),
        "governance": governance,
        **({"licensing": dataset.licensing} if dataset.licensing else {}),
    }


def manifest_summary(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest without its per-record hashes (for run folders, events and displays)."""
    return {key: value for key, value in manifest.items() if key != "record_hashes"}
