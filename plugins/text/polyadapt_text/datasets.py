"""Which records a text run trains and evaluates on, the same way in adapt and evaluate."""

from __future__ import annotations

import random
from importlib import resources
from pathlib import Path
from typing import Any

from polyadapt.modalities.records import Dataset, RunData, split_holdout
from polyadapt.modalities.text import load_text_dataset
from polyadapt.types import Run


def builtin_path(name: str) -> Path:
    """A text file shipped with the plugin (``general_eval`` or ``general_replay``)."""
    return Path(str(resources.files("polyadapt_text") / "data" / f"{name}.jsonl"))


#: The licence of the general-English sets shipped with the plugin (written for polyadapt).
BUILTIN_LICENCE = "CC0-1.0"


def _load_governed(run: Run, path: Path, role: str, data_format: str = "auto", kind: str = "auto",
                   builtin: bool = False) -> Dataset:
    """Load one text dataset and pass it through the run's governance gate."""
    loaded = load_text_dataset(path, data_format, kind)
    if builtin:
        return run.admit(loaded, role=role, licence=BUILTIN_LICENCE)
    return run.admit(loaded, role=role)


def load_run_data(run: Run) -> RunData:
    """Load, govern and split the run's data as its config says.

    Every set passes :meth:`polyadapt.types.Run.admit` (licence, consent, PII) before any
    record is tokenised.
    """
    config = run.config
    data = config.data
    train_set = _load_governed(run, data.train, "train", data.format, data.kind)
    sources = [train_set]
    if data.eval is not None:
        eval_set = _load_governed(run, data.eval, "eval", data.format, data.kind)
        sources.append(eval_set)
        train, heldout = train_set.records, eval_set.records
    else:
        train, heldout = split_holdout(train_set.records, data.eval_fraction, config.training.seed)
    general: list[dict[str, Any]] = []
    if data.general_eval != "none":
        builtin = data.general_eval == "builtin"
        path = builtin_path("general_eval") if builtin else Path(data.general_eval)
        general_set = _load_governed(run, path, "general", builtin=builtin)
        sources.append(general_set)
        general = general_set.records
    replay: list[dict[str, Any]] = []
    if data.replay is not None and data.replay_fraction > 0:
        builtin = data.replay == "builtin"
        path = builtin_path("general_replay") if builtin else Path(data.replay)
        replay_set = _load_governed(run, path, "replay", builtin=builtin)
        sources.append(replay_set)
        wanted = round(len(train) * data.replay_fraction / (1 - data.replay_fraction))
        rng = random.Random(config.training.seed)
        pool = replay_set.records
        if wanted <= len(pool):
            replay = rng.sample(pool, wanted)
        else:  # more replay wanted than there is: repeat it
            replay = [rng.choice(pool) for _ in range(wanted)]
    cap = config.evaluation.max_examples
    if cap:
        heldout, general = heldout[:cap], general[:cap]
    return RunData(train=train, heldout=heldout, general=general, replay=replay, sources=sources)
