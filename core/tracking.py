"""One run's lineage: the store's run record, its datasets and adapter, OpenLineage events.

The runner calls :class:`RunTracker` at the run's milestones; it writes nothing under the
processes of a multi-process run other than the main one.
"""

from __future__ import annotations

import datetime as _dt
import warnings
from typing import TYPE_CHECKING, Any

from polyadapt.distributed import is_main_process
from polyadapt.errors import PolyadaptError
from polyadapt.types import Run

if TYPE_CHECKING:  # pragma: no cover
    from polyadapt.config import RunConfig
    from polyadapt.lineage.openlineage import OpenLineageEmitter
    from polyadapt.lineage.registry import AdapterVersion
    from polyadapt.lineage.store import LineageStore
    from polyadapt.plugins import PluginManager


def now() -> str:
    """The current time, ISO 8601 with the UTC offset."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def base_model_record(config: RunConfig) -> dict[str, Any]:
    """The base model's id, revision and the SHA-256 of its weight files when they are local."""
    from pathlib import Path

    from polyadapt.lineage.environment import hash_model_files

    base = config.base_model
    record: dict[str, Any] = {
        "id": base.id,
        "revision": base.revision,
        "gguf_file": base.gguf_file,
        "name": base.display_name(),
        "weight_hashes": {},
    }
    local = Path(base.id).expanduser()
    if base.gguf_file and Path(base.gguf_file).expanduser().is_file():
        local = Path(base.gguf_file).expanduser()
    if local.exists():
        record["weight_hashes"] = hash_model_files(local)
    return record


class RunTracker:
    """Records ``run`` in the lineage store and sends its OpenLineage events."""

    def __init__(self, pm: PluginManager, run: Run, store: LineageStore | None = None):
        self.pm, self.run = pm, run
        self.active = is_main_process()
        self._store = store
        self._emitter: OpenLineageEmitter | None = None
        self.job_name = f"{run.task.name}/{run.config.output.adapter_name or run.task.name}"

    @property
    def store(self) -> LineageStore:
        """The lineage store (opened on first use: SQLite in the state folder by default)."""
        if self._store is None:
            from polyadapt.lineage.store import LineageStore

            self._store = LineageStore.open()
        return self._store

    # -- milestones ------------------------------------------------------------------------

    def check_new(self) -> None:
        """Refuse a fresh run whose id the store already holds: its lineage would be overwritten.

        That happens when a run folder with a fixed ``output.name`` was deleted and the run is
        started again; a resumed run continues its own record.
        """
        if not self.active or self.run.resume:
            return
        known = self.store.get_run(self.run.id)
        if known is not None:
            raise PolyadaptError(
                f"run id {self.run.id!r} is already in the lineage store (recorded at "
                f"{known.get('run_dir')}, status {known.get('status')}); choose another output.name, "
                "or leave it unset for a fresh name"
            )

    def started(self, environment: dict[str, Any], base_model: dict[str, Any]) -> None:
        """The run began: its record in the store and a START event."""
        if not self.active:
            return
        config = self.run.config
        self.store.start_run(
            self.run.id,
            task=self.run.task.name,
            plugin=self.run.task.plugin,
            config_hash=config.hash(),
            config=config.model_dump(mode="json"),
            seed=config.training.seed,
            environment=environment | {"base_model": base_model},
            base_model=base_model["name"],
            run_dir=str(self.run.dir),
            datasets={},
        )
        self._event("START")

    def dataset_admitted(self, role: str, manifest: dict[str, Any]) -> None:
        """A dataset passed governance: its manifest joins the store, linked to the run."""
        if self.active:
            self.store.record_dataset(manifest)
            self.store.link_dataset(self.run.id, role, manifest["root_hash"])

    def index_used(self, role: str, reference: dict[str, Any] | None) -> None:
        """The run used a retrieval index (:mod:`polyadapt.retrieval.usage`): linked to the run
        as its dataset of ``role`` by root hash (nothing for an index not built)."""
        if not self.active or not reference or reference.get("root_hash") is None:
            return
        from polyadapt.retrieval.usage import lineage_source

        try:
            self.store.link_dataset(self.run.id, role, reference["root_hash"], source=lineage_source(reference))
        except PolyadaptError as exc:
            self.run.say(f"warning: the retrieval index is not linked in the lineage store: {exc}")

    def adapter_saved(self, *, name: str, base_model: str, weights_hash: str) -> AdapterVersion | None:
        """The adapter is on disk: a new candidate version in the registry."""
        if not self.active:
            return None
        return self.store.register_adapter(
            self.run.id,
            base_model=base_model,
            name=name,
            path=str(self.run.adapter_dir),
            weights_hash=weights_hash,
        )

    def evaluated(self, metrics: list[dict[str, Any]]) -> None:
        """Evaluation rows (base vs adapted) for the promotion gate.

        A run the store does not know (recorded in another store) keeps its metrics.json;
        the user is told the registry cannot gate on them.
        """
        if not self.active:
            return
        try:
            self.store.record_metrics(self.run.id, metrics)
        except PolyadaptError as exc:
            self.run.say(f"warning: metrics not recorded in the lineage store: {exc}")

    def finished(self, status: str, *, error: str | None = None, adapter: dict[str, Any] | None = None) -> None:
        """The run ended: status in the store and a COMPLETE or FAIL event."""
        if not self.active:
            return
        self.store.finish_run(self.run.id, status=status, error=error)
        self._event("COMPLETE" if status == "completed" else "FAIL", error=error, adapter=adapter)

    # -- events -----------------------------------------------------------------------------

    def _event(self, event_type: str, *, error: str | None = None, adapter: dict[str, Any] | None = None) -> None:
        from polyadapt.lineage.openlineage import OpenLineageEmitter, run_event

        gate = self.run.gate
        inputs = list(gate.manifests.values()) if gate is not None else []
        outputs = [adapter] if adapter else []
        event = run_event(
            event_type, run_id=self.run.id, job_name=self.job_name, inputs=inputs, outputs=outputs, error=error
        )
        target = self.run.config.lineage.openlineage
        if target:
            if self._emitter is None:
                self._emitter = OpenLineageEmitter(target)
            self._emitter.emit(event)
        for problem in self.pm.notify_run_event(event):
            warnings.warn(problem, stacklevel=2)
            self.run.say(f"warning: {problem}")
