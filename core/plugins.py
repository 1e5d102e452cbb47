"""Finding, loading and calling plugins.

Plugins come through the ``polyadapt`` entry-point group: first-party plugins exactly like
third-party ones. ``POLYADAPT_LOAD_PLUGINS`` limits which load, with three states (as in
``llm``): unset loads all; a comma-separated list loads only those (entry-point or
distribution names); an empty string loads none. ``POLYADAPT_TRACE=1`` logs every hook
call to stderr.

A plugin that fails to import, declares an unsupported plugin API range (module attribute
``POLYADAPT_API = ">=2,<3"``) or raises in ``polyadapt_tasks`` is recorded as *broken* with
its error; every other plugin keeps working.

The core's own implementations of ``polyadapt_adapt``, ``polyadapt_evaluate`` and
``polyadapt_serve`` (:mod:`polyadapt.builtin_hooks`) are registered first and cannot be
blocked; hook wrappers from any plugin run around them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any, Literal, cast, overload

import pluggy
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from polyadapt import PLUGIN_API_VERSION, builtin_hooks, hookspecs
from polyadapt.errors import PluginError
from polyadapt.task import Task

if TYPE_CHECKING:  # pragma: no cover
    from polyadapt.governance.scanners import Scanner
    from polyadapt.serving.routes import Route
    from polyadapt.types import AdapterArtifact, EvalReport, Run, Servable, ServeSpec

ENTRY_POINT_GROUP = "polyadapt"
LOAD_PLUGINS_ENV = "POLYADAPT_LOAD_PLUGINS"
TRACE_ENV = "POLYADAPT_TRACE"
#: Where a plugin author reads what changed between plugin API versions.
MIGRATION_GUIDE = "docs/migrating-to-plugin-api-2.md"


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


def check_api_compatibility(plugin_name: str, declared: object) -> str | None:
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
        if Version("1.0") in spec:
            return (
                f"plugin {plugin_name!r} was written for polyadapt plugin API 1.x (POLYADAPT_API = "
                f"{declared!r}); this core implements {PLUGIN_API_VERSION}, where a plugin returns Task "
                "objects and the core runs adapt, evaluate and serve. Upgrade the plugin, or migrate "
                f"it as {MIGRATION_GUIDE} in the polyadapt repository shows"
            )
        return (
            f"plugin {plugin_name!r} supports polyadapt plugin API {declared} but this core "
            f"implements {PLUGIN_API_VERSION}; install a version of the plugin made for "
            f"API {PLUGIN_API_VERSION} or a polyadapt core that matches"
        )
    return None


class PluginManager:
    """The loaded plugins, their tasks, and typed access to the hooks."""

    def __init__(self, *, load_entrypoints: bool = True, plugins: Mapping[str, object] | None = None):
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.pm.register(builtin_hooks, name=builtin_hooks.NAME)
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

    def register(self, name: str, plugin: object, *, version: str | None = None) -> PluginInfo:
        """Register ``plugin`` (a module or object with hook functions) under ``name``."""
        info = PluginInfo(name=name, version=version)
        self.infos[name] = info
        self._register_checked(name, plugin, info)
        return info

    def _register_checked(self, name: str, plugin: object, info: PluginInfo) -> None:
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
                if not isinstance(task, Task) or not task.name:
                    info.status = "broken"
                    info.error = (
                        f"polyadapt_tasks returned {task!r}, not a named polyadapt.task.Task (see {MIGRATION_GUIDE})"
                    )
                    self.pm.unregister(name=name)
                    break
                if task.name in self.tasks:
                    owner = self.tasks[task.name].plugin
                    self.conflicts.append(
                        f"task {task.name!r} is declared by both {owner!r} and {name!r}; {owner!r} keeps it"
                    )
                    continue
                task.plugin = name
                self.tasks[task.name] = task
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

    @overload
    def dispatch(self, hook_name: Literal["polyadapt_adapt"], task: Task, *, run: Run) -> AdapterArtifact: ...

    @overload
    def dispatch(
        self, hook_name: Literal["polyadapt_evaluate"], task: Task, *, run: Run, adapter: AdapterArtifact
    ) -> EvalReport: ...

    @overload
    def dispatch(self, hook_name: Literal["polyadapt_serve"], task: Task, *, spec: ServeSpec) -> Servable: ...

    def dispatch(self, hook_name: str, task: Task, **kwargs: object) -> object:
        """Call the run hook ``hook_name`` (``polyadapt_adapt``, ``_evaluate``, ``_serve``) for
        ``task`` and return its answer.

        Every plugin's hook wrappers run around the call; the core's implementation (which
        asks ``task``) answers unless a plugin's own implementation answers first.
        """
        if self.pm.get_plugin(task.plugin) is None:
            raise PluginError(f"plugin {task.plugin!r} that owns task {task.name!r} is not loaded")
        result = getattr(self.pm.hook, hook_name)(**kwargs)
        if result is None:
            raise PluginError(f"{hook_name} returned nothing for task {task.name!r} of plugin {task.plugin!r}")
        return result

    # -- cross-cutting hooks (called on every plugin) -------------------------------------

    def scanners(self) -> list[Scanner]:
        """The governance scanners every plugin adds through ``polyadapt_scanners``.

        A plugin whose hook fails stops the caller with a :class:`PluginError` naming it:
        data must not pass with a scanner silently missing.
        """
        found: list[Scanner] = []
        for impl in self.pm.hook.polyadapt_scanners.get_hookimpls():
            try:
                # checked below: scanners without scan() or types stop the caller
                added = list(cast("Iterable[Scanner]", impl.function() or []))
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

    def plugin_routes(self) -> list[tuple[list[Route], str]]:
        """The HTTP routes each plugin adds through ``polyadapt_routes``, with its name.

        A plugin whose hook fails stops the server's start with a :class:`PluginError`
        naming it.
        """
        found: list[tuple[list[Route], str]] = []
        for impl in self.pm.hook.polyadapt_routes.get_hookimpls():
            try:
                found.append((list(cast("Iterable[Route]", impl.function() or [])), impl.plugin_name))
            except Exception as exc:
                raise PluginError(
                    f"plugin {impl.plugin_name!r}: polyadapt_routes failed: {type(exc).__name__}: "
                    f"{exc}; fix or disable the plugin (POLYADAPT_LOAD_PLUGINS)"
                ) from exc
        return found

    def notify_run_event(self, event: dict[str, Any]) -> list[str]:
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
            for info in self.plugins
            if info.status == "ok"
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
