"""Helpers behind the ``polyadapt.testing`` fixtures; usable without pytest too.

- :func:`make_plugin_manager`: a plugin manager holding only the plugins a test names;
- :class:`PolyadaptRunner`: writes a run config and runs it through the real pipeline
  (:func:`polyadapt.runner.adapt`: config validation, governance, lineage, dispatch to the
  owning plugin, registry, evaluation) and returns a :class:`RunResult`.

Nothing here imports torch; the runner imports what the plugin under test imports.
"""

from __future__ import annotations

import copy
import json
import os
import traceback
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from typing import TypeAlias

    from polyadapt.plugins import PluginManager

    #: Which plugins a test run may use (see :meth:`PolyadaptRunner.__call__`).
    PluginChoice: TypeAlias = PluginManager | Mapping[str, object] | str | Iterable[str] | None

#: What :class:`PolyadaptRunner` fills into a run config the test leaves out: a few fp32
#: steps on small batches, one short sample; fast and the same on every machine.
TEST_DEFAULTS: dict[str, Any] = {
    "training": {"max_steps": 3, "batch_size": 2, "max_length": 64, "precision": "fp32", "warmup_ratio": 0.0},
    "evaluation": {"num_samples": 1, "max_new_tokens": 4},
}


def write_jsonl(path: Path | str, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write ``rows`` as JSON lines to ``path`` (folders made as needed); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(dict(row)) + "\n" for row in rows))
    return path


def make_plugin_manager(*entry_points: str, strict: bool = True, **plugins: object) -> PluginManager:
    """A :class:`polyadapt.plugins.PluginManager` holding only the plugins named.

    :param entry_points: names of *installed* plugins (entry-point or distribution
        names), loaded through the ``polyadapt`` entry-point group exactly as the CLI
        loads them: the ``POLYADAPT_API`` check included.
    :param plugins: ``name=module_or_object`` to register without installing.
    :param strict: raise :class:`polyadapt.errors.PluginError` when a named plugin is not
        installed, is broken (import error, API mismatch, failing ``polyadapt_tasks``) or
        declares a task another one owns. Pass ``False`` to inspect such plugins.
    """
    from polyadapt.errors import PluginError
    from polyadapt.plugins import LOAD_PLUGINS_ENV, PluginManager

    saved = os.environ.get(LOAD_PLUGINS_ENV)
    os.environ[LOAD_PLUGINS_ENV] = ",".join(entry_points)
    try:
        pm = PluginManager(load_entrypoints=bool(entry_points), plugins=plugins)
    finally:
        if saved is None:
            os.environ.pop(LOAD_PLUGINS_ENV, None)
        else:
            os.environ[LOAD_PLUGINS_ENV] = saved
    if strict:
        found = set(pm.infos) | {info.distribution for info in pm.infos.values() if info.distribution}
        problems = [
            f"{name}: not installed (no entry point in group 'polyadapt')" for name in entry_points if name not in found
        ]
        problems += [f"{info.name}: {info.error}" for info in pm.plugins if info.status != "ok"]
        problems += pm.conflicts
        if problems:
            raise PluginError("plugin_manager: " + "; ".join(problems))
    return pm


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``extra`` deep-merged over ``base`` (a new dict; mappings merge, anything else replaces)."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(dict(out[key]), value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


@dataclass
class RunResult:
    """How one ``polyadapt adapt`` went: what it returned or raised, and its run folder.

    Like pytester's and tox's results, assert on it with :meth:`assert_success` (or
    :meth:`assert_failure`), then look at what the run wrote.
    """

    config_path: Path
    dir: Path
    run: Any = None
    adapter: Any = None
    report: Any = None
    error: BaseException | None = None
    traceback: str = ""
    messages: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def record(self) -> dict[str, Any]:
        """``run.json``: status, config hash, environment, provenance (empty if not written)."""
        return self._json("run.json") or {}

    @property
    def metrics(self) -> dict[str, Any]:
        """``metrics.json``: ``{"metrics": [...], "samples": [...]}`` (empty if not written)."""
        return self._json("metrics.json") or {}

    def decisions(self, role: str = "train") -> list[dict[str, Any]]:
        """The governance decisions for the dataset admitted as ``role``, one per record."""
        path = self.dir / "governance" / f"{role}.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def findings(self, role: str = "train") -> Counter:
        """Finding counts by type over the ``role`` dataset, e.g. ``{"email": 3}``."""
        counts: Counter = Counter()
        for decision in self.decisions(role):
            counts.update(decision.get("findings", {}))
        return counts

    def _json(self, name: str) -> Any:
        path = self.dir / name
        return json.loads(path.read_text()) if path.is_file() else None

    def _describe(self) -> str:
        lines = [f"run folder: {self.dir}", f"config: {self.config_path}"]
        status = self.record.get("status")
        if status:
            lines.append(f"run.json status: {status}")
        if self.messages:
            lines.append("progress messages:")
            lines += [f"  > {message}" for message in self.messages[-15:]]
        if self.error is not None:
            lines.append(f"error: {type(self.error).__name__}: {self.error}")
            if self.traceback:
                lines.append(self.traceback.rstrip())
        return "\n".join(lines)

    def assert_success(self) -> RunResult:
        """Fail the test, showing the error, its traceback and the progress, unless the run completed."""
        __tracebackhide__ = True
        if self.error is not None:
            raise AssertionError("the polyadapt run failed\n" + self._describe())
        status = self.record.get("status")
        if status != "completed":
            raise AssertionError(f"the polyadapt run ended with status {status!r}\n" + self._describe())
        return self

    def assert_failure(self, match: str | None = None, error: type[BaseException] | None = None) -> RunResult:
        """Fail the test unless the run raised (an ``error`` whose message contains ``match``)."""
        __tracebackhide__ = True
        if self.error is None:
            raise AssertionError("the polyadapt run succeeded but a failure was expected\n" + self._describe())
        if error is not None and not isinstance(self.error, error):
            raise AssertionError(f"expected {error.__name__}, got\n" + self._describe())
        if match is not None and match not in str(self.error):
            raise AssertionError(f"the error does not contain {match!r}\n" + self._describe())
        return self


class PolyadaptRunner:
    """Runs ``polyadapt adapt`` in-process through the real pipeline (``polyadapt_run`` fixture).

    Each call writes the config it runs to ``root/run-<n>.yaml`` and validates it as the
    CLI does, so a mistake in the config is a :class:`ConfigError` in the result. Runs go
    to ``root/runs/``.
    """

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.count = 0

    def __call__(
        self,
        config: Mapping[str, Any] | str | Path,
        *,
        plugins: PluginChoice = None,
        overrides: Iterable[str] = (),
        resume: bool = False,
        defaults: bool = True,
    ) -> RunResult:
        """Adapt as ``config`` says and return the :class:`RunResult` (never raises for a failed run).

        :param config: a mapping (``base_model`` may be a path string), YAML text, or a
            config file (a :class:`~pathlib.Path`). What it leaves out is filled in:
            :data:`TEST_DEFAULTS` (unless ``defaults=False``), ``base_model.dtype:
            float32`` and ``output.name: run-<n>``. Runs are written under this runner's
            folder: a mapping's own ``output.dir`` is kept, a file's is not. Relative paths
            resolve against a file's folder, else against the current directory.
        :param plugins: which plugins the run may use: a ``PluginManager``; a mapping
            ``{name: module}``; a list of installed plugin names; or None for every
            installed plugin (as ``polyadapt adapt`` does).
        :param overrides: ``KEY=VALUE`` strings, as ``polyadapt adapt --set`` takes.
        :param resume: continue the newest unfinished run of this config (``--resume``).
        """
        import yaml

        from polyadapt import runner
        from polyadapt.config import parse_config

        self.count += 1
        self.root.mkdir(parents=True, exist_ok=True)
        name = f"run-{self.count}"
        base_dir = Path.cwd()
        if isinstance(config, str) and "\n" not in config and config.endswith((".yaml", ".yml")):
            config = Path(config)
        if isinstance(config, Path):
            base_dir = config.resolve().parent
            data = yaml.safe_load(config.read_text())
            if isinstance(data, dict) and isinstance(data.get("output"), dict):
                data["output"].pop("dir", None)
        else:
            data = yaml.safe_load(config) if isinstance(config, str) else _jsonable(config)
        if not isinstance(data, dict):
            raise TypeError("polyadapt_run: config must be a mapping, YAML text or a config file Path")
        if isinstance(data.get("base_model"), str):
            data["base_model"] = {"id": data["base_model"]}
        if isinstance(data.get("base_model"), dict):
            data["base_model"].setdefault("dtype", "float32")
        data = _merge({"output": {"dir": str(self.root / "runs"), "name": name}}, data)
        if defaults:
            data = _merge(TEST_DEFAULTS, data)
        config_path = self.root / f"{name}.yaml"
        config_path.write_text(yaml.safe_dump(data, sort_keys=False))

        result = RunResult(config_path=config_path, dir=Path(data["output"]["dir"]) / str(data["output"]["name"]))
        try:
            run_config = parse_config(config_path.read_text(), str(config_path), list(overrides), base_dir=base_dir)
            result.dir = Path(run_config.output.dir) / (run_config.output.name or name)
            pm = self._plugin_manager(plugins)
            result.run, result.adapter, result.report = runner.adapt(
                pm, run_config, resume=resume, notify=result.messages.append
            )
            result.dir = result.run.dir
        except Exception as exc:  # the result carries it; assert_success shows it
            result.error = exc
            result.traceback = traceback.format_exc()
        return result

    @staticmethod
    def _plugin_manager(plugins: PluginChoice) -> PluginManager:
        from polyadapt.plugins import PluginManager, get_plugin_manager

        if plugins is None:
            return get_plugin_manager()
        if isinstance(plugins, PluginManager):
            return plugins
        if isinstance(plugins, Mapping):
            return make_plugin_manager(**plugins)
        if isinstance(plugins, str):
            return make_plugin_manager(plugins)
        return make_plugin_manager(*plugins)
