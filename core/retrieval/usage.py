"""Which index a run used, by content: the index's root hash recorded beside its name.

A run config's ``retrieval: {index, k}`` names an index by name only, and an index can be
rebuilt over other documents under the same name. So the runner records, where a run uses
an index, :func:`index_reference` (name, ``k``, the passage manifest's root hash, the
documents' root hash, counts, vector engine):

- when the run starts, in ``run.json`` (``retrieval``) and in the lineage store as the
  run's dataset of role :data:`RUN_ROLE` (its root hash is the passage manifest the build
  recorded, so ``polyadapt lineage diff`` shows a rebuilt index as changed data);
- when its evaluation asked the QA set with retrieved passages, in ``metrics.json``
  (``retrieval``) and in the lineage store under role :data:`QA_ROLE`.

An index that does not exist (yet) is recorded by name with ``root_hash: null`` and a note;
it stops nothing here (serving and QA evaluation refuse a missing index themselves).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from polyadapt.errors import PolyadaptError

if TYPE_CHECKING:  # pragma: no cover
    from polyadapt.config import RunConfig
    from polyadapt.types import MetricRow

#: The lineage role of the index a run config's ``retrieval`` section names.
RUN_ROLE = "retrieval"
#: The lineage role of the index the QA evaluation searched.
QA_ROLE = "qa_retrieval"
#: How a linked index's source reads in the lineage store: ``index:NAME``.
SOURCE_PREFIX = "index:"


def index_reference(name: str, k: int, root: Path | None = None) -> dict[str, Any]:
    """Index ``name`` as a run records it: name, ``k``, root hashes, passages, build time
    and vector engine; ``root_hash`` None (with ``missing``) when it is not built."""
    from polyadapt.retrieval.index import open_index

    try:
        index = open_index(name, root)
    except PolyadaptError as exc:
        return {"index": name, "k": k, "root_hash": None, "missing": str(exc)}
    meta = index.meta
    return {
        "index": name,
        "k": k,
        "root_hash": meta.get("root_hash"),
        "documents_root_hash": meta.get("documents_root_hash"),
        "passages": meta.get("passages"),
        "built": meta.get("built"),
        "vector_engine": index.vector_engine,
    }


def run_reference(config: RunConfig, root: Path | None = None) -> dict[str, Any] | None:
    """:func:`index_reference` of the index ``config.retrieval`` names; None without one."""
    retrieval = getattr(config, "retrieval", None)
    if retrieval is None:
        return None
    return index_reference(retrieval.index, retrieval.k, root)


def searched_in_evaluation(rows: list[MetricRow]) -> bool:
    """Whether an evaluation's rows hold answers given with retrieved passages."""
    from polyadapt.retrieval.qa import QA_RETRIEVAL_DATASET

    return any(row.dataset == QA_RETRIEVAL_DATASET for row in rows)


def evaluation_reference(
    before: dict[str, Any] | None, after: dict[str, Any] | None, rows: list[MetricRow]
) -> dict[str, Any] | None:
    """The index an evaluation searched, from :func:`run_reference` taken ``before`` and
    ``after`` it: None when no row used retrieval; ``changed_during_evaluation`` when the
    index was rebuilt meanwhile (its answers may mix the two builds)."""
    if after is None or not searched_in_evaluation(rows):
        return None
    if before is not None and before.get("root_hash") != after.get("root_hash"):
        return after | {"changed_during_evaluation": True, "root_hash_before": before.get("root_hash")}
    return after


def lineage_source(reference: dict[str, Any]) -> str:
    """The source a linked index shows in the lineage store: ``index:NAME``."""
    return f"{SOURCE_PREFIX}{reference['index']}"


def describe(reference: dict[str, Any]) -> str:
    """One line for the user: ``index handbook (root 1a2b...; k 4)`` or that it is missing."""
    if reference.get("root_hash") is None:
        return f"retrieval index {reference['index']}: not built yet, recorded by name only"
    return f"retrieval index {reference['index']}: root hash {str(reference['root_hash'])[:16]}, k {reference['k']}"
