"""``polyadapt export RUN --format F``: a run's adapter in another format, whole or absent.

The core resolves the run and its adapter, checks the format against the task's
:attr:`~polyadapt.task.Task.export_formats`, hands the task an empty temporary folder
(:meth:`~polyadapt.task.Task.export` writes the files), hashes every file written, puts
``export.json`` beside them and renames the folder into place; the export is recorded in
the lineage store (the adapter's weights hash → each file's SHA-256, the task's checks).
What a format means (merged weights, GGUF, an image LoRA file) is the task's business:
nothing here names a modality.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polyadapt.errors import ConfigError, PolyadaptError

if TYPE_CHECKING:  # pragma: no cover
    from polyadapt.plugins import PluginManager

#: The record every export folder holds beside the files (not itself hashed).
EXPORT_RECORD = "export.json"
#: Where exports go when ``--out`` is not given: ``RUN/exports/FORMAT[-QUANT]``.
EXPORTS_FOLDER = "exports"
_CHUNK = 1 << 20


@dataclass
class ExportResult:
    """What :func:`export_run` wrote and recorded."""

    path: Path
    format: str
    run_id: str
    adapter_hash: str
    options: dict[str, Any] = field(default_factory=dict)
    #: relative path -> SHA-256 of every file the task wrote
    files: dict[str, str] = field(default_factory=dict)
    #: the task's facts (verification figures, types written)
    facts: dict[str, Any] = field(default_factory=dict)
    #: the lineage store's id of the record (None when not recorded)
    record_id: int | None = None

    @property
    def size_bytes(self) -> int:
        """The exported files' total size."""
        return sum((self.path / name).stat().st_size for name in self.files)


def default_target(run_dir: Path, fmt: str, quant: str | None) -> Path:
    """``RUN/exports/FORMAT`` (``FORMAT-QUANT`` with ``--quant``)."""
    return Path(run_dir) / EXPORTS_FOLDER / (f"{fmt}-{quant}" if quant else fmt)


def file_hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder``, keyed by its relative POSIX path, sorted."""
    out: dict[str, str] = {}
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file() and not path.is_symlink():
            digest = hashlib.sha256()
            with open(path, "rb") as handle:
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
            out[path.relative_to(folder).as_posix()] = digest.hexdigest()
    return out


def check_target(target: Path, adapter_dir: Path) -> None:
    """Refuse a ``--out`` that would replace something that is not an earlier export."""
    target = Path(target).resolve()
    adapter_dir = Path(adapter_dir).resolve()
    if target == adapter_dir or adapter_dir in target.parents or target in adapter_dir.parents:
        raise ConfigError(f"--out {target}: that is (or holds, or is inside) the run's adapter folder; choose another")
    if target.is_file() or target.is_symlink():
        raise ConfigError(f"--out {target}: a file is there; an export is a folder, choose another path")
    if target.is_dir() and any(target.iterdir()) and not (target / EXPORT_RECORD).is_file():
        raise ConfigError(
            f"--out {target}: the folder exists and holds no earlier export ({EXPORT_RECORD}); "
            "choose a new or empty folder (an earlier export there is replaced)"
        )


def export_run(
    pm: PluginManager,
    run_dir: Path | str,
    fmt: str,
    *,
    quant: str | None = None,
    out: Path | str | None = None,
    notify: Any = None,
    db: str | None = None,
    record: bool = True,
) -> ExportResult:
    """Export the adapter of the finished run in ``run_dir`` as ``fmt`` (see the module doc).

    :param quant: ``--quant`` (what it means is the task's; refused by formats without one).
    :param out: the export folder (default :func:`default_target`); an earlier export there
        is replaced whole, anything else there is refused.
    :param db: the lineage database URL (default: ``$POLYADAPT_DB_URL`` or the state folder).
    :param record: record the export in the lineage store.
    """
    from polyadapt import __version__
    from polyadapt.fileio import atomic_directory, atomic_write_text
    from polyadapt.lineage.provenance import weights_hash
    from polyadapt.lineage.state import utc_stamp
    from polyadapt.runner import load_run

    run, adapter = load_run(pm, run_dir, notify=notify)
    task = run.task
    formats = dict(task.export_formats)
    if fmt not in formats:
        listed = "; ".join(f"{name}: {what}" for name, what in formats.items())
        raise ConfigError(f"--format {fmt!r}: task {task.name!r} exports {', '.join(formats)} ({listed})")
    target = Path(out) if out is not None else default_target(run.dir, fmt, quant)
    check_target(target, adapter.path)
    adapter_hash = weights_hash(adapter.path)
    options = {"quant": quant} if quant else {}
    run.say(f"export: {run.id} as {fmt}" + (f" ({quant})" if quant else "") + f" into {target}")
    with atomic_directory(target) as tmp:
        facts = task.export(run, adapter, fmt, dict(options), tmp) or {}
        files = file_hashes(tmp)
        if not files:
            raise PolyadaptError(f"task {task.name!r} wrote no file for --format {fmt}")
        result = ExportResult(
            path=target.resolve(),
            format=fmt,
            run_id=run.id,
            adapter_hash=adapter_hash,
            options=options,
            files=files,
            facts=facts,
        )
        document = {
            "format": fmt,
            "options": options,
            "run_id": run.id,
            "task": task.name,
            "base_model": run.config.base_model.id,
            "adapter_weights_hash": adapter_hash,
            "files": files,
            "facts": facts,
            "polyadapt_version": __version__,
            "created": utc_stamp(),
        }
        atomic_write_text(tmp / EXPORT_RECORD, json.dumps(document, indent=2, sort_keys=True, default=str) + "\n")
        if record:  # last: a failure to record leaves no unrecorded export behind
            from polyadapt.lineage.store import LineageStore

            with LineageStore.open(db) as store:
                result.record_id = store.record_export(
                    run.id,
                    adapter_hash=adapter_hash,
                    fmt=fmt,
                    options=options,
                    path=str(result.path),
                    files=files,
                    facts=json.loads(json.dumps(facts, default=str)),
                )
    return result
