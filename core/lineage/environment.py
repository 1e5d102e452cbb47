"""What a run ran on: software versions, the git commit, the hardware, model file hashes,
and the host and process that ran it (to tell a killed run from a running one).

Nothing here imports torch or the other heavy libraries: versions come from package
metadata, and GPUs are listed only when torch is already loaded (a training run has it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polyadapt import __version__
from polyadapt.lineage.liveness import process_identity

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Sequence
    from typing import TypeAlias

    from polyadapt.plugins import PluginInfo

    #: A loaded plugin as the environment record takes it: a ``PluginInfo`` or a dict with
    #: ``name``, ``distribution`` and ``version`` (``PluginManager.loaded_plugins()``).
    PluginEntry: TypeAlias = PluginInfo | dict[str, Any]

#: Libraries whose versions shape every adapter; absent ones are recorded as None. The
#: libraries each loaded plugin requires are recorded too (:func:`tracked_packages`).
TRACKED_PACKAGES = ("torch", "transformers", "peft", "accelerate", "safetensors", "tokenizers")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")
HASH_CACHE = "hash-cache.json"
_CHUNK = 1 << 20


def package_version(distribution: str) -> str | None:
    """The installed version of ``distribution``, or None (without importing it)."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def tracked_packages(plugins: Sequence[PluginEntry]) -> list[str]:
    """:data:`TRACKED_PACKAGES` plus the distributions the plugins' distributions require."""
    from packaging.requirements import InvalidRequirement, Requirement

    names = list(TRACKED_PACKAGES)
    for plugin in plugins:
        distribution = _plugin_entry(plugin)["distribution"]
        if not distribution:
            continue
        try:
            requirements = metadata.requires(distribution) or []
        except metadata.PackageNotFoundError:
            continue
        for line in requirements:
            try:
                requirement = Requirement(line)
            except InvalidRequirement:
                continue
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                names.append(requirement.name)
    return list(dict.fromkeys(names))


def _plugin_entry(plugin: Any) -> dict[str, Any]:
    get = plugin.get if isinstance(plugin, dict) else lambda key: getattr(plugin, key, None)
    return {"name": get("name"), "distribution": get("distribution"), "version": get("version")}


def git_state(cwd: Path | None = None) -> dict[str, Any] | None:
    """``{"commit", "dirty"}`` of the git repository around ``cwd``, or None outside one."""

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", *args],
            cwd=cwd or Path.cwd(),
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return None
        status = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip()) if status.returncode == 0 else None}


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _ram_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _gpus() -> list[dict[str, Any]]:
    torch = sys.modules.get("torch")
    if torch is None:
        return []
    try:
        if not torch.cuda.is_available():
            return []
        out = []
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            out.append(
                {
                    "name": props.name,
                    "memory_bytes": int(props.total_memory),
                    "capability": f"{props.major}.{props.minor}",
                }
            )
        return out
    except Exception:  # a broken driver must not fail the run record
        return []


def hardware() -> dict[str, Any]:
    """Platform, CPU model, cores, RAM and (when torch is loaded and CUDA is up) the GPUs."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_bytes": _ram_bytes(),
        "gpus": _gpus(),
    }
    torch = sys.modules.get("torch")
    if torch is not None and info["gpus"]:
        info["cuda"] = getattr(torch.version, "cuda", None)
    return info


def capture_environment(plugins: Sequence[PluginEntry], *, base_model: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run's environment record.

    ``plugins`` are the loaded plugins (dicts or objects with ``name``, ``distribution`` and
    ``version``, such as ``PluginManager.plugins``). ``base_model`` is what
    :func:`describe_base_model` returns, when known. ``process`` identifies this process
    (:func:`~polyadapt.lineage.liveness.process_identity`): call it in the run's own process.
    """
    env: dict[str, Any] = {
        "polyadapt": __version__,
        "python": platform.python_version(),
        "packages": {name: package_version(name) for name in tracked_packages(plugins)},
        "plugins": sorted((_plugin_entry(p) for p in plugins), key=lambda p: str(p["name"])),
        "git": git_state(),
        "hardware": hardware(),
        "process": process_identity(),
    }
    if base_model is not None:
        env["base_model"] = base_model
    return env


def describe_base_model(model_id: str, *, revision: str | None = None, path: Path | None = None) -> dict[str, Any]:
    """The base model's id, revision and the SHA-256 of its weight files (when ``path`` is local)."""
    files = hash_model_files(path) if path is not None and Path(path).exists() else {}
    return {"id": model_id, "revision": revision, "files": files}


# -- weight-file hashes -------------------------------------------------------------------


def _load_cache(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def hash_model_files(path: Path, *, cache_dir: Path | None = None) -> dict[str, str]:
    """SHA-256 of every weight file (``*.safetensors``, ``*.bin``, ``*.gguf``, ``*.pt``, ``*.pth``)
    in folder ``path`` (recursively, keyed by relative path) or of the single file ``path``.

    Hashes are cached in ``hash-cache.json`` in the state folder (or ``cache_dir``), keyed by
    the resolved path, size and modification time, so a large file is read once.
    """
    path = Path(path)
    if path.is_dir():
        files = {
            item.relative_to(path).as_posix(): item
            for item in sorted(path.rglob("*"))
            if item.suffix in WEIGHT_SUFFIXES and item.is_file()
        }
    elif path.is_file():
        files = {path.name: path}
    else:
        from polyadapt.errors import PolyadaptError

        raise PolyadaptError(f"{path}: no such model file or folder to hash")
    if cache_dir is None:
        from polyadapt.lineage.state import state_dir

        cache_dir = state_dir()
    cache_path = Path(cache_dir) / HASH_CACHE
    cache = _load_cache(cache_path)
    changed = False
    out: dict[str, str] = {}
    for name, item in files.items():
        real = item.resolve()
        stat = real.stat()
        key = f"{real}|{stat.st_size}|{stat.st_mtime_ns}"
        digest = cache.get(key)
        if digest is None:
            digest = _sha256(real)
            cache[key] = digest
            changed = True
        out[name] = digest
    if changed:
        from polyadapt.fileio import atomic_write_text

        latest = _load_cache(cache_path)  # keep what another process added meanwhile
        latest.update(cache)
        with contextlib.suppress(OSError):  # a read-only state folder only costs re-hashing
            atomic_write_text(cache_path, json.dumps(latest, indent=0, sort_keys=True))
    return out
