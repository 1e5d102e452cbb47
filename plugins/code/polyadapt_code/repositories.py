"""The repositories of a code run with several (``task_options.repositories``): where each
comes from, its label (the prefix of its paths), and how their files are merged and summed
up. :mod:`polyadapt_code.datasets` reads, governs and de-duplicates them.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from polyadapt.errors import DataError
from polyadapt.fileio import portable_path
from polyadapt.modalities.code import ORIGINS, SCANNED_FIELDS, is_git_repository, require_files
from polyadapt.modalities.records import Dataset
from polyadapt.types import Run

from polyadapt_code.options import CodeOptions, CodeRepository


@dataclass(frozen=True)
class RepositorySource:
    """One repository a run reads: where, at which revision, under which licence.

    ``config_field`` is the config field that names it (for errors), ``label`` the prefix
    of its paths when the run reads several.
    """

    path: Path
    revision: str | None
    licence: str | None
    config_field: str
    label: str = ""

    @property
    def licence_field(self) -> str:
        """The config field ``licence`` comes from."""
        return "data.licence" if self.config_field == "data.train" else f"{self.config_field}.licence"


def run_repositories(run: Run, options: CodeOptions) -> list[RepositorySource]:
    """``data.train`` (with ``task_options.revision`` and ``data.licence``), then each of
    ``task_options.repositories``, each labelled uniquely."""
    data = run.config.data
    first = RepositorySource(Path(data.train).expanduser(), options.revision, data.licence, "data.train")
    sources = [first]
    sources += [_further_repository(i, entry) for i, entry in enumerate(options.repositories)]
    labels = unique_labels([source.path for source in sources])
    return [replace(source, label=label) for source, label in zip(sources, labels)]


def _further_repository(index: int, entry: Path | CodeRepository) -> RepositorySource:
    field_name = f"task_options.repositories[{index}]"
    if isinstance(entry, CodeRepository):
        return RepositorySource(entry.path.expanduser(), entry.revision, entry.licence, field_name)
    return RepositorySource(Path(entry).expanduser(), None, None, field_name)


def unique_labels(paths: list[Path]) -> list[str]:
    """Each path's folder name (as written, links not followed), with ``-2``, ``-3``... added
    where an earlier one took it."""
    taken: set[str] = set()
    labels = []
    for path in paths:
        name = Path(os.path.abspath(path)).name or "repository"
        label, number = name, 1
        while label in taken:
            number += 1
            label = f"{name}-{number}"
        taken.add(label)
        labels.append(label)
    return labels


def check_repository(source: RepositorySource) -> None:
    """A :class:`DataError` naming ``source.config_field`` when it cannot be read as configured."""
    if not source.path.is_dir():
        raise DataError(
            f"{source.config_field}: {source.path} is not a folder; give a repository's folder (a "
            "relative path resolves against the run config's folder) or remove the entry"
        )
    if source.revision is not None and not is_git_repository(source.path):
        raise DataError(
            f"{source.config_field}: {source.path} is not a git repository, so revision "
            f"{source.revision!r} cannot be read; give the folder of a git repository, or leave "
            "revision out to read the folder as it is"
        )


def emptied_by_licence(source: RepositorySource, loaded: Dataset) -> bool:
    """Whether ``loaded`` has no file because the policy refused every usable file's licence
    (the repository is then dropped); a :class:`DataError` when it has none for other reasons."""
    if loaded.records:
        return False
    if not any(q.reason.startswith("licence:") for q in loaded.quarantined):
        try:
            require_files(loaded)
        except DataError as exc:
            raise DataError(f"{source.config_field}: {exc}") from None
    return True


def prefixed(dataset: Dataset, label: str) -> Dataset:
    """``dataset`` with ``label/`` before every record's and quarantined file's path."""
    records = [{**record, "path": f"{label}/{record['path']}"} for record in dataset.records]
    quarantined = [replace(item, source=f"{label}/{item.source}") for item in dataset.quarantined]
    return replace(dataset, records=records, quarantined=quarantined)


def merged(datasets: list[Dataset], source: Path) -> Dataset:
    """One code dataset of the records and quarantined files of ``datasets``, in order."""
    return Dataset(
        source=source,
        kind="code",
        scanned_fields=SCANNED_FIELDS,
        origins=ORIGINS,
        records=[record for dataset in datasets for record in dataset.records],
        quarantined=[item for dataset in datasets for item in dataset.quarantined],
        lines=[line for dataset in datasets for line in dataset.lines],
    )


def repository_entry(source: RepositorySource, loaded: Dataset, final: Dataset, dropped: bool) -> dict[str, Any]:
    """The summary of one repository: where it came from, its licence, files seen and kept."""
    report = loaded.report.to_dict()  # type: ignore[attr-defined]
    prefix = f"{source.label}/"
    skipped = Counter(q.reason.split(":")[0] for q in final.quarantined if q.source.startswith(prefix))
    return {
        "label": source.label,
        "field": source.config_field,
        "source": portable_path(loaded.source),
        "revision": source.revision,
        **report,
        "files_kept": sum(record["path"].startswith(prefix) for record in final.records),
        "skipped": dict(sorted(skipped.items())),
        "dropped": "the policy refuses every usable file's licence" if dropped else None,
    }
