"""The data of one run: which sets a task trains and evaluates on, loaded the same way for
every task, and the two files every run folder gets about them.

:func:`load_run_data` is the default of :meth:`polyadapt.task.Task.load_run_data`: it asks
the task to read each set the config names (``task.load_dataset``), passes each through
governance (``run.admit``) before anything else sees it, and splits, mixes and caps them as
the config says. :func:`write_data_files` writes ``data_summary.json`` and
``quarantine.jsonl`` and tells the user what was loaded.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from polyadapt.modalities.records import Dataset, RunData, split_holdout

if TYPE_CHECKING:  # pragma: no cover
    from polyadapt.task import Task
    from polyadapt.types import Run

_T = TypeVar("_T")


def governed_set(
    run: Run, task: Task, role: str, path: Path | str, read: Callable[[Run, Path, str], Dataset] | None = None
) -> Dataset | None:
    """The set at ``path`` (``builtin``: the task's own, None when it ships none) read by
    ``read`` (default: ``task.load_dataset``) and admitted under ``role``.

    For a task's own :meth:`~polyadapt.task.Task.load_run_data` that reads some sets
    differently (a code task's general text, say).
    """
    read = read or task.load_dataset
    if path == "builtin":
        shipped = task.builtin_dataset(role)
        if shipped is None:
            return None
        builtin_path, licence = shipped
        return run.admit(read(run, Path(builtin_path), role), role=role, licence=licence)
    return run.admit(read(run, Path(path), role), role=role)


def replay_sample(pool: list[_T], train_size: int, fraction: float, seed: int) -> list[_T]:
    """Records of ``pool`` to mix into training so that they make up ``fraction`` of it
    (sampled with the run's seed; repeated when more are wanted than the pool holds)."""
    wanted = round(train_size * fraction / (1 - fraction))
    rng = random.Random(seed)
    if wanted <= len(pool):
        return rng.sample(pool, wanted)
    return [rng.choice(pool) for _ in range(wanted)]


def load_run_data(run: Run, task: Task) -> RunData:
    """Load, govern and split the run's data as its config says.

    ``data.train`` is read and admitted first; ``data.eval`` is the held-out domain set,
    else a seeded ``data.eval_fraction`` of train. ``data.general_eval`` (the forgetting
    check) and ``data.replay`` name a file, ``builtin`` (the task's own set, if it ships
    one) or ``none``. ``evaluation.qa`` (a question-answer set) is admitted under role
    ``qa`` and kept in ``sources`` for the task's evaluation. ``evaluation.max_examples``
    caps the evaluation sets.
    """
    config = run.config
    data = config.data
    train_set = governed_set(run, task, "train", data.train)
    assert train_set is not None  # data.train is never "builtin"
    sources = [train_set]
    if data.eval is not None:
        eval_set = governed_set(run, task, "eval", data.eval)
        assert eval_set is not None
        sources.append(eval_set)
        train, heldout = train_set.records, eval_set.records
    else:
        train, heldout = split_holdout(train_set.records, data.eval_fraction, config.training.seed)
    general = general_records(run, task, sources)
    replay: list[dict[str, Any]] = []
    if data.replay is not None and data.replay_fraction > 0:
        replay_set = governed_set(run, task, "replay", data.replay)
        if replay_set is not None:
            sources.append(replay_set)
            replay = replay_sample(replay_set.records, len(train), data.replay_fraction, config.training.seed)
    if config.evaluation.qa is not None:  # governed now, so a refused QA set costs no training
        from polyadapt.retrieval.qa import QA_ROLE, load_qa

        sources.append(run.admit(load_qa(config.evaluation.qa), role=QA_ROLE))
    cap = config.evaluation.max_examples
    if cap:
        heldout, general = heldout[:cap], general[:cap]
    return RunData(train=train, heldout=heldout, general=general, replay=replay, sources=sources)


def general_records(
    run: Run, task: Task, sources: list[Dataset], read: Callable[[Run, Path, str], Dataset] | None = None
) -> list[dict[str, Any]]:
    """The records of the forgetting check's general text (``data.general_eval``, role
    ``general``, read by ``read`` or the task), its dataset appended to ``sources``; none for
    ``general_eval: none``."""
    general_eval = run.config.data.general_eval
    general_set = None if general_eval == "none" else governed_set(run, task, "general", general_eval, read=read)
    if general_set is None:
        return []
    sources.append(general_set)
    return general_set.records


def write_data_files(run: Run, data: RunData, facts: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``data_summary.json`` (counts, hashes, what building the examples found) and
    ``quarantine.jsonl`` (every rejected record with its reason, never its content), and
    tell the user. Returns the summary."""
    summary = data.summary() | ({"examples": facts} if facts else {})
    run.write_json("data_summary.json", summary)
    rows = data.quarantine_rows()
    run.write_text("quarantine.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    noun = run.task.record_noun
    parts = [f"{summary['train_records']} training {noun}", f"{summary['heldout_records']} held out"]
    parts += [
        f"{summary[key]} {label}"
        for key, label in (("general_records", "general"), ("replay_records", "replay"))
        if summary[key]
    ]
    parts.append(f"{len(rows)} quarantined" + (f" (reasons in {run.dir / 'quarantine.jsonl'})" if rows else ""))
    run.say("data: " + ", ".join(parts))
    return summary
