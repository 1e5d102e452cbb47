"""Finding, loading and calling plugins.

Plugins come through the ``polyadapt`` entry-point group: first-party plugins exactly like
third-party ones. ``POLYADAPT_LOAD_PLUGINS`` limits which load, with three states (as in
``llm``): unset loads all; a comma-separated list loads only those (entry-point or
distribution names); an empty string loads none. ``POLYADAPT_TRACE=1`` logs every hook
call to stderr.

A plugin that fails to import, declares an unsupported plugin API range (module attribute
``POLYADAPT_API = ">=1,<2"``) or raises in ``polyadapt_tasks`` is recorded as *broken* with
its error; every other plugin keeps working.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from polyadapt import PLUGIN_API_VERSION, hookspecs
from polyadapt.errors import PluginError
from polyadapt.types import Task

ENTRY_POINT_GROUP = "polyadapt"
LOAD_PLUGINS_ENV = "POLYADAPT_LOAD_PLUGINS"
TRACE_ENV = "POLYADAPT_TRACE"


@dataclass
class PluginInfo:
    """What ``polyadapt plugins`` shows for one plugin."""

    name: str
    distribution: str | None = None
    version: str | None = None
    status: str = "ok"  # ok | broken
    error: str | None = None
    api: str | None = None
    tasks: list[str] = field(default_factory=list)


def _wanted_plugins() -> set[str] | None:
    """The names ``POLYADAPT_LOAD_PLUGINS`` allows, or None when every plugin may load."""
    raw = os.environ.get(LOAD_PLUGINS_ENV)
    if raw is None:
        return None
    return {name.strip() for name in raw.split(",") if name.strip()}


def check_api_compatibility(plugin_name: str, declared: Any) -> str | None:
    """Return an error message if ``declared`` (a version specifier) excludes this core's API."""
    if declared is None:
        return None
    try:
        spec = SpecifierSet(str(declared))
    except InvalidSpecifier:
        return (
            f"plugin {plugin_name!r} declares POLYADAPT_API = {declared!r}, which is not a "
            "version range; write it like '>=1,<2'"
        )
    if Version(PLUGIN_API_VERSION) not in spec:
        return (
            f"plugin {plugin_name!r} supports polyadapt plugin API {declared} but this core "
            f"implements {PLUGIN_API_VERSION}; install a version of the plugin made for "
            f"API {PLUGIN_API_VERSION} or a polyadapt core that matches"
        )
    return None


class PluginManager:
    """The loaded plugins, their tasks, and typed access to the hooks."""

    def __init__(self, *, load_entrypoints: bool = True, plugins: dict[str, Any] | None = None):
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self.tasks: dict[str, Task] = {}
        self.conflicts: list[str] = []
        if os.environ.get(TRACE_ENV):
            self.pm.trace.root.setwriter(sys.stderr.write)
            self.pm.enable_tracing()
        if load_entrypoints:
            self._load_entrypoints()
        for name, plugin in (plugins or {}).items():
            self.register(name, plugin)
        self._collect_tasks()

    # -- loading ------------------------------------------------------------------------

    def _load_entrypoints(self) -> None:
        wanted = _wanted_plugins()
        seen: set[str] = set()
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in seen:
                continue
            seen.add(ep.name)
            dist = ep.dist
            dist_name = dist.metadata["Name"] if dist is not None else None
            if wanted is not None and ep.name not in wanted and dist_name not in wanted:
                continue
            info = PluginInfo(
                name=ep.name,
                distribution=dist_name,
                version=dist.version if dist is not None else None,
            )
            self.infos[ep.name] = info
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken plugin must not break the others
                info.status, info.error = "broken", f"import failed: {type(exc).__name__}: {exc}"
                continue
            self._register_checked(ep.name, plugin, info)

    def register(self, name: str, plugin: Any, *, version: str | None = None) -> PluginInfo:
        """Register ``plugin`` (a module or object with hook functions) under ``name``."""
        info = PluginInfo(name=name, version=version)
        self.infos[name] = info
        self._register_checked(name, plugin, info)
        return info

    def _register_checked(self, name: str, plugin: Any, info: PluginInfo) -> None:
        declared = getattr(plugin, "POLYADAPT_API", None)
        info.api = str(declared) if declared is not None else None
        problem = check_api_compatibility(name, declared)
        if problem:
            info.status, info.error = "broken", problem
            return
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:  # e.g. a hook with a misspelt argument
            info.status, info.error = "broken", f"registration failed: {exc}"

    def _collect_tasks(self) -> None:
        for name, info in self.infos.items():
            plugin = self.pm.get_plugin(name)
            if plugin is None or not hasattr(plugin, "polyadapt_tasks"):
                continue
            try:
                declared = list(plugin.polyadapt_tasks() or [])
            except Exception as exc:
                info.status, info.error = "broken", f"polyadapt_tasks failed: {exc}"
                self.pm.unregister(name=name)
                continue
            for task in declared:
                if not isinstance(task, Task):
                    info.status = "broken"
                    info.error = f"polyadapt_tasks returned {type(task).__name__}, not a Task"
                    self.pm.unregister(name=name)
                    break
                if task.name in self.tasks:
                    owner = self.tasks[task.name].plugin
                    self.conflicts.append(
                        f"task {task.name!r} is declared by both {owner!r} and {name!r}; "
                        f"{owner!r} keeps it"
                    )
                    continue
                self.tasks[task.name] = Task(**{**task.__dict__, "plugin": name})
                info.tasks.append(task.name)

    # -- queries -------------------------------------------------------------------------

    @property
    def plugins(self) -> list[PluginInfo]:
        """Every plugin seen, loaded or broken, sorted by name."""
        return sorted(self.infos.values(), key=lambda info: info.name)

    def task(self, name: str) -> Task:
        """The task called ``name``; a :class:`PluginError` lists the known ones if absent."""
        try:
            return self.tasks[name]
        except KeyError:
            known = ", ".join(sorted(self.tasks)) or "none (no plugin is installed and loaded)"
            broken = [i for i in self.infos.values() if i.status != "ok"]
            hint = ""
            if broken:
                hint = " Broken plugins: " + "; ".join(f"{i.name}: {i.error}" for i in broken)
            raise PluginError(
                f"no installed plugin offers task {name!r}. Known tasks: {known}. "
                f"Install the plugin for it (polyadapt plugins install NAME).{hint}"
            ) from None

    # -- dispatch ------------------------------------------------------------------------

    def dispatch(self, hook_name: str, task: Task, **kwargs: Any) -> Any:
        """Call ``hook_name`` on the plugin that owns ``task`` only, and return its answer."""
        owner = self.pm.get_plugin(task.plugin)
        if owner is None:
            raise PluginError(f"plugin {task.plugin!r} that owns task {task.name!r} is not loaded")
        others = [p for p in self.pm.get_plugins() if p is not owner]
        caller = self.pm.subset_hook_caller(hook_name, remove_plugins=others)
        result = caller(**kwargs)
        if result is None:
            raise PluginError(
                f"plugin {task.plugin!r} declares task {task.name!r} but its {hook_name} "
                "hook returned nothing; the plugin must implement it"
            )
        return result


    # -- cross-cutting hooks (called on every plugin) -------------------------------------

    def scanners(self) -> list[Any]:
        """The governance scanners every plugin adds through ``polyadapt_scanners``.

        A plugin whose hook fails stops the caller with a :class:`PluginError` naming it:
        data must not pass with a scanner silently missing.
        """
        found: list[Any] = []
        for impl in self.pm.hook.polyadapt_scanners.get_hookimpls():
            try:
                added = list(impl.function() or [])
            except Exception as exc:
                raise PluginError(
                    f"plugin {impl.plugin_name!r}: polyadapt_scanners failed: {type(exc).__name__}: {exc}; "
                    "fix or disable the plugin (POLYADAPT_LOAD_PLUGINS)"
                ) from exc
            for scanner in added:
                if not callable(getattr(scanner, "scan", None)) or not getattr(scanner, "types", None):
                    raise PluginError(
                        f"plugin {impl.plugin_name!r}: polyadapt_scanners returned {scanner!r}, which "
                        "has no scan(text) method or no finding types"
                    )
            found.extend(added)
        return found

    def notify_run_event(self, event: dict) -> list[str]:
        """Give ``event`` to every plugin's ``polyadapt_run_event``; return the failures as warnings."""
        warnings = []
        for impl in self.pm.hook.polyadapt_run_event.get_hookimpls():
            try:
                impl.function(**{name: event for name in impl.argnames})
            except Exception as exc:  # a listener must never fail the run
                warnings.append(f"plugin {impl.plugin_name!r}: polyadapt_run_event failed: {type(exc).__name__}: {exc}")
        return warnings

    def loaded_plugins(self) -> list[dict[str, Any]]:
        """Name, distribution and version of every plugin that loaded (for run records)."""
        return [
            {"name": info.name, "distribution": info.distribution, "version": info.version}
            for info in self.plugins if info.status == "ok"
        ]


def installed_distribution_version(name: str) -> str | None:
    """The installed version of distribution ``name``, or None."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def get_plugin_manager() -> PluginManager:
    """A plugin manager with every entry-point plugin that ``POLYADAPT_LOAD_PLUGINS`` allows."""
    return PluginManager(load_entrypoints=True)
