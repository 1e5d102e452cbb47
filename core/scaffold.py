"""``polyadapt plugin new``: write a ready plugin distribution from the template.

The template lies in ``polyadapt/templates/plugin/`` (package data). Every file ends in
``.tmpl`` and is rendered with :class:`string.Template` (``$name``, ``$dist``,
``$module``, ``$task``, ``$task_class``, ``$modality``, ``$api``, ``$requirement``; ``$$``
is a dollar); ``__module__`` in a path becomes the module name. The result is a plugin
API 2 plugin for causal language models (text, code, or a modality of the plugin's own
whose records are text): a :class:`polyadapt.task.Task` subclass that answers only what is
its own (the base, the training examples and loss, the evaluation) while the core runs
every step of the run. It installs with pip, passes its own tests as generated, and its
``example.yaml`` runs offline on a tiny model that ``python -m <module>.tiny`` builds.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from polyadapt import PLUGIN_API_VERSION, __version__
from polyadapt.errors import PolyadaptError

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
#: Modalities whose models are not causal language models: the template cannot serve them.
NOT_TEXT_SHAPED = {"speech", "image"}


@dataclass(frozen=True)
class PluginNames:
    """The names one plugin goes by."""

    name: str  # entry-point name, shown by `polyadapt plugins`
    dist: str  # distribution name (pip install ...)
    module: str  # import name of the module with the hooks
    task: str
    modality: str

    @property
    def task_class(self) -> str:
        """The name of the plugin's Task subclass: ``support-replies`` -> ``SupportRepliesTask``."""
        return "".join(part.capitalize() for part in self.task.split("-")) + "Task"

    @classmethod
    def make(cls, name: str, task: str | None = None, modality: str = "text") -> PluginNames:
        short = name.strip().lower().removeprefix("polyadapt-").removeprefix("polyadapt_").replace("_", "-")
        if not NAME_PATTERN.match(short):
            raise PolyadaptError(
                f"plugin name {name!r}: use lower-case letters, digits and single dashes, "
                "starting with a letter (e.g. 'support-chat')"
            )
        task = task or short
        if not NAME_PATTERN.match(task):
            raise PolyadaptError(f"--task {task!r}: use lower-case letters, digits and dashes (e.g. 'support-replies')")
        if modality in NOT_TEXT_SHAPED:
            raise PolyadaptError(
                f"--modality {modality}: the template makes a causal-LM plugin (text, code, or a "
                "modality of your own whose records are text); speech and image templates come "
                "with those plugins"
            )
        if not NAME_PATTERN.match(modality):
            raise PolyadaptError(f"--modality {modality!r}: use lower-case letters, digits and dashes")
        return cls(
            name=short,
            dist=f"polyadapt-{short}",
            module=f"polyadapt_{short.replace('-', '_')}",
            task=task,
            modality=modality,
        )


def api_range() -> str:
    """The ``POLYADAPT_API`` a new plugin declares: this core's major API version."""
    major = int(PLUGIN_API_VERSION.split(".")[0])
    return f">={major},<{major + 1}"


def template_root():
    """The folder of the plugin template (package data)."""
    return resources.files("polyadapt") / "templates" / "plugin"


def _walk(node, prefix: str = ""):
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        relative = f"{prefix}{child.name}"
        if child.is_dir():
            yield from _walk(child, relative + "/")
        elif child.name.endswith(".tmpl"):
            yield relative, child


def render(names: PluginNames) -> dict[str, str]:
    """The files of the new plugin: relative path -> content."""
    major, minor = __version__.split(".")[:2]
    values = {
        "name": names.name,
        "dist": names.dist,
        "module": names.module,
        "task": names.task,
        "task_class": names.task_class,
        "modality": names.modality,
        "api": api_range(),
        "requirement": f"polyadapt>={major}.{minor}",
    }
    files = {}
    for relative, source in _walk(template_root()):
        path = relative.removesuffix(".tmpl").replace("__module__", names.module)
        files[path] = string.Template(source.read_text(encoding="utf-8")).substitute(values)
    return files


def new_plugin(name: str, *, task: str | None = None, modality: str = "text", directory: Path | None = None) -> Path:
    """Write a new plugin distribution into ``directory`` (default ``./polyadapt-NAME``)."""
    names = PluginNames.make(name, task, modality)
    target = Path(directory) if directory is not None else Path(names.dist)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise PolyadaptError(f"{target} already exists and is not empty; choose another --dir")
    files = render(names)
    for relative, content in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    return target
