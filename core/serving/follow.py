"""``polyadapt serve --registry``: serve the registry's active adapters and follow it.

Each adapter name routes to the servable key of its active version (``insurance@3``).
:class:`RegistryFollower` checks the registry at most every ``interval_s`` seconds (one
cheap query of its event counter) and, after a promotion or a rollback, re-routes the name:
the new version loads on its first request, a version loaded before is used at once, and
the base model is never reloaded.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from polyadapt.errors import PolyadaptError
from polyadapt.types import ServeSpec

if TYPE_CHECKING:  # pragma: no cover
    from polyadapt.lineage.registry import AdapterVersion
    from polyadapt.lineage.store import LineageStore
    from polyadapt.plugins import PluginManager
    from polyadapt.serving.app import ModelRegistry
    from polyadapt.types import Run


def version_key(version: AdapterVersion) -> str:
    """The servable's adapter key for one registry version: ``name@version``."""
    return f"{version.name}@{version.version}"


class RegistryFollower:
    """Keeps every served adapter name on its registry's active version."""

    def __init__(self, store: LineageStore, *, interval_s: float = 2.0):
        self.store = store
        self.interval_s = interval_s
        self._checked_at = float("-inf")
        self._seen_version: int | None = None
        self._lock = threading.Lock()

    def refresh(self, registry: ModelRegistry, *, force: bool = False) -> bool:
        """Re-route ``registry``'s adapter names if the registry changed; True if it did."""
        now = time.monotonic()
        if not force and now - self._checked_at < self.interval_s:
            return False
        with self._lock:
            self._checked_at = now
            current = self.store.registry_version()
            if current == self._seen_version and not force:
                return False
            self._seen_version = current
            active = self.store.active_adapters()
            for base_name, served in registry.bases.items():
                wanted = {v.name: v for v in active if v.base_model == base_name}
                for name, version in wanted.items():
                    key = version_key(version)
                    served.adapters[key] = Path(version.path)
                    served.routes[name] = key
                for name in [n for n in served.routes if n not in wanted]:
                    del served.routes[name]  # retired without a successor: no longer served
            return True


def registry_specs(pm: PluginManager, store: LineageStore) -> tuple[list[ServeSpec], dict[str, dict[str, str]]]:
    """One :class:`ServeSpec` per base among the registry's active adapters, and their routes."""
    from polyadapt.runner import load_run
    from polyadapt.serving.app import group_runs_by_base

    active = store.active_adapters()
    if not active:
        raise PolyadaptError(
            "the registry has no active adapter to serve; promote one with "
            "`polyadapt adapters promote NAME` (see `polyadapt adapters list`)"
        )
    runs: list[Run] = []
    versions: dict[Path, AdapterVersion] = {}
    for version in active:
        record = store.get_run(version.run_id)
        if record is None or not record.get("run_dir") or not Path(record["run_dir"]).is_dir():
            raise PolyadaptError(
                f"adapter {version.base_model}:{version.name}@{version.version}: its run folder "
                f"{(record or {}).get('run_dir')} is gone; restore it or roll back"
            )
        run, _ = load_run(pm, record["run_dir"])
        runs.append(run)
        versions[run.dir] = version
    specs: list[ServeSpec] = []
    routes: dict[str, dict[str, str]] = {}
    for base_name, group in group_runs_by_base(runs):
        first = group[0]
        adapters = {version_key(versions[r.dir]): Path(versions[r.dir].path) for r in group}
        routes[base_name] = {versions[r.dir].name: version_key(versions[r.dir]) for r in group}
        specs.append(
            ServeSpec(
                task=first.task,
                base_model=first.config.base_model.id,
                base_name=base_name,
                adapters=adapters,
                config=first.config,
            )
        )
    return specs, routes
