"""Which files a code run trains and evaluates on: the task's ``load_run_data``, read once
per run (the core keeps it for the evaluation) as a :class:`CodeRunData`.

The order matters for governance:

1. :func:`polyadapt.modalities.code.load_repository` reads the repository and quarantines
   vendored, generated, minified, binary, oversize files and files whose licence the
   policy refuses (``task_options.licence_action``);
2. ``run.admit(files, role="train")``: the policy's secret and PII scanners run on every
   file's content. What happens to a file with a secret is the policy's ``pii.secret``
   action: the strict default refuses the run, ``drop`` drops the file, ``redact`` keeps
   the file with ``<SECRET_1>`` in place of the value (``configs/policies/code.yaml``).
   Nothing below sees a raw secret;
3. exact and near duplicates are removed (:func:`~polyadapt.modalities.code.deduplicate`);
4. whole files are split into train and held-out (``data.eval_fraction``, seeded), unless
   ``data.eval`` names a second repository, which is admitted as ``eval``; its files that
   copy a training file (exactly or nearly) are then quarantined, so nothing held out was
   trained on.

The ``train`` manifest covers the governed repository before de-duplication and the split
(as the text plugin's covers train and held-out when it splits); ``data_summary.json``
(written by the core from :meth:`CodeRunData.summary`) lists which paths went where.

Several repositories (``task_options.repositories``, after ``data.train``): each is read
by step 1 on its own (its own licence: ``licence:`` of its entry, else its LICENSE file or
package manifest; ``data.licence`` is ``data.train``'s only), and every path is prefixed
with the repository's label, its folder name (``billing/src/util.py``; ``billing-2`` for a
second folder named ``billing``), so paths never collide and a quarantine row says which
repository a file came from. A repository whose every usable file the policy's licence
rules refuse is dropped (listed in the summary, its files in ``quarantine.jsonl``); one
with no source file at all is an error. Then all files go through step 2 together, in
**one** ``run.admit(role="train")``: the ``train`` manifest is then still everything the
run may train on, over all repositories (one admit per repository would make each
replace the last). Step 3 runs over the union in repository order, so a module copied
into a later repository is the one dropped, its reason naming the first copy with its
repository's label; step 4 splits the union. ``data_summary.json``'s ``repositories``
lists each repository (label, source, licence and where it came from, files seen and
kept). A run without ``repositories`` is unchanged: no prefix, no ``repositories`` list.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from polyadapt.errors import DataError, GovernanceError
from polyadapt.modalities.code import (
    IngestOptions,
    combined_licence,
    deduplicate,
    load_repository,
    split_by_file,
)
from polyadapt.modalities.code_licences import INSTALL_HINT, LicenceEngine, licence_engine
from polyadapt.modalities.records import Dataset, RunData
from polyadapt.modalities.text import load_text_dataset
from polyadapt.types import Run

from polyadapt_code.options import CodeOptions
from polyadapt_code.repositories import (
    RepositorySource,
    check_repository,
    emptied_by_licence,
    merged,
    prefixed,
    repository_entry,
    run_repositories,
)


@dataclass
class CodeRunData(RunData):
    """The files of one code run (``train``, ``heldout``) and the general text for the
    forgetting check, with what ``data_summary.json`` says about the repositories."""

    #: ``data.train``'s ingestion report (its licence and where it came from, files seen).
    repository: dict[str, Any] = field(default_factory=dict)
    #: One entry per repository when the run reads several (``task_options.repositories``).
    repositories: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The core's counts and datasets, plus the files' paths and the repositories."""
        summary = super().summary() | {
            "train_files": len(self.train),
            "heldout_files": len(self.heldout),
            "repository": self.repository,
            "train_paths": [r["path"] for r in self.train],
            "heldout_paths": [r["path"] for r in self.heldout],
        }
        if self.repositories:
            summary["repositories"] = self.repositories
        return summary


def ingest_options(options: CodeOptions) -> IngestOptions:
    """What :func:`~polyadapt.modalities.code.load_repository` keeps, from the task options."""
    return IngestOptions(
        languages=tuple(options.languages) if options.languages else None,
        max_file_bytes=options.max_file_bytes,
        max_line_length=options.max_line_length,
        exclude=tuple(options.exclude),
    )


def run_licence_engine(run: Run, options: CodeOptions) -> LicenceEngine:
    """The run's licence engine (``task_options.licence_engine``); with ``auto`` and no
    ScanCode, the fallback, and the run says so."""
    engine = licence_engine(options.licence_engine)
    if engine.name == "fallback" and options.licence_engine == "auto":
        run.say(f"licences: read by the light fallback (licence wording only), not ScanCode: {INSTALL_HINT}")
    return engine


def _admitted_repository(
    run: Run, path: Path, role: str, options: CodeOptions, revision: str | None, engine: LicenceEngine
) -> Dataset:
    loaded = load_repository(
        path,
        revision=revision,
        options=ingest_options(options),
        repository_licence=run.config.data.licence,
        policy=run.gate.policy if run.gate else None,
        licence_action=options.licence_action,
        licence_engine=engine,
        min_licence_score=options.licence_min_score,
    )
    report = loaded.report.to_dict()  # type: ignore[attr-defined]
    governed = run.admit(loaded, role=role, licence=combined_licence(loaded.records))
    deduplicated = deduplicate(governed, threshold=options.near_duplicate_threshold, shingle_size=options.shingle_size)
    deduplicated.report = report  # type: ignore[attr-defined]
    return deduplicated


def _loaded_repository(run: Run, source: RepositorySource, options: CodeOptions, engine: LicenceEngine) -> Dataset:
    """Step 1 for one of several repositories; paths not prefixed yet, possibly no file."""
    try:
        return load_repository(
            source.path,
            revision=source.revision,
            options=ingest_options(options),
            repository_licence=source.licence,
            policy=run.gate.policy if run.gate else None,
            licence_action=options.licence_action,
            allow_empty=True,
            licence_field=source.licence_field,
            licence_engine=engine,
            min_licence_score=options.licence_min_score,
        )
    except (DataError, GovernanceError) as exc:
        raise type(exc)(f"{source.config_field}: {exc}") from None


def _admitted_repositories(
    run: Run, sources: list[RepositorySource], options: CodeOptions, engine: LicenceEngine
) -> tuple[Dataset, list[dict[str, Any]]]:
    """Steps 1-3 over several repositories (see the module docs): the de-duplicated union
    of their governed files, and one summary entry per repository."""
    for source in sources[1:]:
        check_repository(source)  # a bad entry fails before anything is read
    loaded = [_loaded_repository(run, source, options, engine) for source in sources]
    dropped = [emptied_by_licence(source, dataset) for source, dataset in zip(sources, loaded)]
    for source in (source for source, gone in zip(sources, dropped) if gone):
        run.say(
            f"repository {source.label} ({source.config_field}) dropped: the policy refuses the "
            "licence of every usable file (reasons in quarantine.jsonl)"
        )
    union = merged(
        [prefixed(dataset, source.label) for source, dataset in zip(sources, loaded)],
        source=Path(" + ".join(source.label for source in sources)),
    )
    union.licensing = {
        "repositories": [{"label": source.label, **dataset.licensing} for source, dataset in zip(sources, loaded)]
    }
    if not union.records:
        raise DataError(
            "data.train and task_options.repositories: no usable source file in any repository; "
            "see the skip reasons in quarantine.jsonl"
        )
    governed = run.admit(union, role="train", licence=combined_licence(union.records))
    rank = {source.label: index for index, source in enumerate(sources)}
    deduplicated = deduplicate(
        governed,
        threshold=options.near_duplicate_threshold,
        shingle_size=options.shingle_size,
        key=lambda record: (rank[record["path"].split("/", 1)[0]], record["path"]),
    )
    entries = [
        repository_entry(source, dataset, deduplicated, gone) for source, dataset, gone in zip(sources, loaded, dropped)
    ]
    deduplicated.report = loaded[0].report.to_dict()  # type: ignore[attr-defined]
    return deduplicated, entries


def without_training_copies(train: Dataset, held: Dataset, options: CodeOptions) -> Dataset:
    """``held`` without the files that duplicate (exactly or nearly) a training file, each
    quarantined with the training file it copies: a held-out file the model trained on
    would score its memory, not what it learnt."""
    tagged = merged([prefixed(train, "data.train"), prefixed(held, "data.eval")], source=held.source)
    checked = deduplicate(
        tagged,
        threshold=options.near_duplicate_threshold,
        shingle_size=options.shingle_size,
        key=lambda record: (not record["path"].startswith("data.train/"), record["path"]),
    )
    kept = {record["path"].split("/", 1)[1] for record in checked.records if record["path"].startswith("data.eval/")}
    copies = [
        replace(item, source=item.source.split("/", 1)[1])
        for item in checked.quarantined[len(tagged.quarantined) :]
        if item.source.startswith("data.eval/")
    ]
    records = [record for record in held.records if record["path"] in kept]
    lines = [line for record, line in zip(held.records, held.lines) if record["path"] in kept] if held.lines else []
    trimmed = replace(held, records=records, lines=lines, quarantined=[*held.quarantined, *copies])
    if hasattr(held, "report"):
        trimmed.report = held.report  # type: ignore[attr-defined]
    return trimmed


def load_code_data(run: Run) -> CodeRunData:
    """Load, govern, de-duplicate and split the run's repositories (see the module docs);
    :meth:`polyadapt_code.task.CodeGenerationTask.load_run_data`."""
    config, options = run.config, run.options
    data = config.data
    repositories: list[dict[str, Any]] = []
    engine = run_licence_engine(run, options)
    if options.repositories:
        repo, repositories = _admitted_repositories(run, run_repositories(run, options), options, engine)
    else:
        repo = _admitted_repository(run, Path(data.train), "train", options, options.revision, engine)
    sources = [repo]
    if data.eval is not None:
        held_out = _admitted_repository(run, Path(data.eval), "eval", options, None, engine)
        held = without_training_copies(repo, held_out, options)
        sources.append(held)
        train, heldout = repo.records, held.records
    else:
        train, heldout = split_by_file(repo.records, data.eval_fraction, config.training.seed)
    from polyadapt.rundata import general_records

    # general text is plain text whatever this task reads its own data as
    general = general_records(
        run,
        run.task,
        sources,
        read=lambda _run, path, _role: load_text_dataset(path, max_record_chars=data.max_record_chars),
    )
    cap = config.evaluation.max_examples
    if cap:
        general = general[:cap]
    return CodeRunData(
        train=train,
        heldout=heldout,
        general=general,
        sources=sources,
        repository=repo.report,
        repositories=repositories,
    )  # type: ignore[attr-defined]


def load_task_set(run: Run, path: Path) -> list[dict[str, Any]]:
    """A HumanEval-format task set, admitted under role ``tasks`` (prompts and tests scanned)."""
    from polyadapt.errors import DataError
    from polyadapt.modalities.records import Quarantined
    from polyadapt.modalities.tabular import ParseFailure, read_records

    options = run.options
    dataset = Dataset(source=Path(path), kind="tasks", scanned_fields=("prompt", "test"))
    fields = ("task_id", "prompt", "test", "entry_point")
    try:
        rows = read_records(Path(path), "jsonl", max_record_chars=run.config.data.max_record_chars)
    except DataError as exc:
        raise DataError(f"task_options.tasks: {exc}") from None
    for index, (number, task) in enumerate(rows):
        if isinstance(task, ParseFailure):
            dataset.quarantined.append(Quarantined(str(path), index, str(task), number))
            continue
        if not isinstance(task, dict):
            dataset.quarantined.append(
                Quarantined(str(path), index, f"not an object: got {type(task).__name__}", number)
            )
            continue
        missing = [k for k in fields if not isinstance(task.get(k), str)]
        if missing:
            dataset.quarantined.append(Quarantined(str(path), index, f"missing fields: {', '.join(missing)}", number))
            continue
        dataset.records.append({k: task[k] for k in fields})
        dataset.lines.append(number)
    if not dataset.records:
        raise DataError(f"{path}: no task with task_id, prompt, test and entry_point")
    licence = options.tasks_licence or run.config.data.licence
    return run.admit(dataset, role="tasks", licence=licence).records
