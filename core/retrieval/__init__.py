"""Retrieval: local indexes over documents, and their passages added to chat requests.

``polyadapt index build NAME --from PATH...`` reads documents (text, Markdown,
reStructuredText, HTML, PDF text), cuts them into passages, governs every passage like
training data (licence, PII and secret redaction, counts recorded, never values) and stores
them in a SQLite FTS5 index (BM25) in the project's state folder, optionally with dense
vectors from a small local encoder. The pieces:

- :mod:`~polyadapt.retrieval.passage`: :class:`Passage`, one search result;
- :mod:`~polyadapt.retrieval.documents`: reading files and folders into documents;
- :mod:`~polyadapt.retrieval.chunking`: documents into paragraph-aware passages;
- :mod:`~polyadapt.retrieval.fts`: the SQLite index file and its query sanitising;
- :mod:`~polyadapt.retrieval.dense`: optional embeddings and reciprocal rank fusion;
- :mod:`~polyadapt.retrieval.qdrant`: Qdrant as the vector engine (``--vector-engine qdrant``);
- :mod:`~polyadapt.retrieval.usage`: which index a run used, by root hash (run.json, lineage);
- :mod:`~polyadapt.retrieval.build`: :func:`build_index` (governance, lineage, atomic write);
- :mod:`~polyadapt.retrieval.index`: :func:`open_index` and :class:`Index` (search);
- :mod:`~polyadapt.retrieval.prompting`: :func:`with_passages`, the passages as chat messages;
- :mod:`~polyadapt.retrieval.cli`: the ``polyadapt index`` commands.

Importing this package is cheap: the submodules load on first use of their names.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Passage": "passage",
    "open_index": "index",
    "Index": "index",
    "list_indexes": "index",
    "index_path": "index",
    "build_index": "build",
    "with_passages": "prompting",
}

__all__ = list(_EXPORTS)  # noqa: PLE0605


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'polyadapt.retrieval' has no attribute {name!r}")
    return getattr(importlib.import_module(f"polyadapt.retrieval.{module}"), name)
