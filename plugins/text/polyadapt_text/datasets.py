"""Which records a text run trains and evaluates on, the same way in adapt and evaluate."""

from __future__ import annotations

import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from polyadapt.config import RunConfig
from polyadapt.modalities.records import Dataset, split_holdout
from polyadapt.modalities.text import load_text_dataset


def builtin_path(name: str) -> Path:
    """A text file shipped with the plugin (``general_eval`` or ``general_replay``)."""
    return Path(str(resources.files("polyadapt_text") / "data" / f"{name}.jsonl"))


@dataclass
class RunData:
    """The records of one run: training, held-out domain, general (forgetting check), replay."""

    train: list[dict[str, Any]]
    heldout: list[dict[str, Any]]
    general: list[dict[str, Any]]
    replay: list[dict[str, Any]]
    sources: list[Dataset]

    def summary(self) -> dict[str, Any]:
        return {
            "train_records": len(self.train),
            "heldout_records": len(self.heldout),
            "general_records": len(self.general),
            "replay_records": len(self.replay),
            "datasets": [source.summary() for source in self.sources],
        }


def load_run_data(config: RunConfig) -> RunData:
    """Load, validate and split the run's data as its config says."""
    data = config.data
    train_set = load_text_dataset(data.train, data.format, data.kind)
    sources = [train_set]
    if data.eval is not None:
        eval_set = load_text_dataset(data.eval, data.format, data.kind)
        sources.append(eval_set)
        train, heldout = train_set.records, eval_set.records
    else:
        train, heldout = split_holdout(train_set.records, data.eval_fraction, config.training.seed)
    general: list[dict[str, Any]] = []
    if data.general_eval != "none":
        path = builtin_path("general_eval") if data.general_eval == "builtin" else Path(data.general_eval)
        general_set = load_text_dataset(path, "auto", "auto")
        sources.append(general_set)
        general = general_set.records
    replay: list[dict[str, Any]] = []
    if data.replay is not None and data.replay_fraction > 0:
        path = builtin_path("general_replay") if data.replay == "builtin" else Path(data.replay)
        replay_set = load_text_dataset(path, "auto", "auto")
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


def quarantine_rows(run_data: RunData) -> list[dict[str, Any]]:
    """Every rejected record of every source, with its reason (never its content)."""
    return [item.to_dict() for source in run_data.sources for item in source.quarantined]
