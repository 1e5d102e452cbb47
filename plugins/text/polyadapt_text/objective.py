"""What ``task_options.objective`` changes in a text (or code) run: which reader the domain
sets go through, and which examples and loss the shared trainer gets.

- ``sft`` reads text, instruction or chat records (:mod:`polyadapt.modalities.text`);
  preference pairs are refused with the option to set;
- ``dpo`` reads preference pairs (:mod:`polyadapt.modalities.preference`, scanned by
  governance like chats) and trains with :class:`polyadapt_text.dpo.PreferenceLoss`.

The general set (the forgetting check) stays plain text under both; replay data, which is
plain text, cannot be mixed into DPO and is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from polyadapt.errors import ConfigError, DataError
from polyadapt.lineage.metricgate import MetricGate

if TYPE_CHECKING:  # pragma: no cover
    from polyadapt.modalities.records import Dataset, RunData
    from polyadapt.training import TrainingJob
    from polyadapt.types import Run

PREFERENCE = "preference"
#: The promotion gate of a DPO run (on top of the policy's, whose forgetting threshold holds
#: the general perplexity): the adapter must move at least half the held-out pairs towards
#: their chosen answer (reward accuracy, whose base is 0) and must not rank fewer pairs right
#: than the base (preference accuracy).
DPO_GATE = MetricGate(improve={"reward accuracy": 0.5}, no_regress=("preference accuracy",), default=True)


def _wrong_objective(path: Path, role: str) -> ConfigError:
    return ConfigError(
        f"{path} (data.{role}) holds preference pairs (prompt, chosen, rejected) but task_options.objective "
        "is sft, which trains on text, instruction or chat records; set task_options.objective: dpo "
        "to train on the pairs"
    )


def load_dataset(run: Run, path: Path, role: str, objective: str) -> Dataset:
    """One data file of a text run, read as its role and the objective say (see module doc)."""
    from polyadapt.modalities.preference import load_preference_dataset
    from polyadapt.modalities.text import load_text_dataset

    data = run.config.data
    limit = data.max_record_chars
    if role not in ("train", "eval"):
        if role == "replay" and objective == "dpo":
            raise ConfigError(
                "data.replay mixes plain text into training, which task_options.objective: dpo cannot use "
                "(it trains on preference pairs); remove data.replay and data.replay_fraction, or use objective: sft"
            )
        return load_text_dataset(path, max_record_chars=limit)
    if objective == "dpo":
        if data.kind not in ("auto", PREFERENCE):
            raise ConfigError(
                f"task_options.objective is dpo but data.kind is {data.kind}: DPO trains on preference pairs; "
                "set data.kind: preference (records with prompt, chosen and rejected) or task_options.objective: sft"
            )
        return load_preference_dataset(path, data.format, max_record_chars=limit)
    if data.kind == PREFERENCE:
        raise _wrong_objective(path, role)
    try:
        return load_text_dataset(path, data.format, data.kind, max_record_chars=limit)
    except DataError:
        if data.kind == "auto" and _holds_preferences(path, data.format, limit):
            raise _wrong_objective(path, role) from None
        raise


def _holds_preferences(path: Path, declared_format: str, limit: int) -> bool:
    """Whether ``path`` reads as preference pairs (asked only once the text reader failed)."""
    from polyadapt.modalities.preference import load_preference_dataset

    try:
        load_preference_dataset(path, declared_format, max_record_chars=limit)
    except DataError:
        return False
    return True


def preference_job(run: Run, base: Any, model: Any, data: RunData) -> TrainingJob:
    """The shared trainer's job for ``objective: dpo``: pairs cut to ``training.max_length``,
    chosen and rejected collated into one batch, the DPO (or IPO) loss summed over pairs.

    ``facts``: ``train_pairs``, ``heldout_pairs`` and ``pairs_dropped`` (pairs whose prompt
    left no room for an answer).
    """
    from polyadapt.training import TrainingJob
    from polyadapt_text.dpo import PreferenceLoss
    from polyadapt_text.loss import summed_loss
    from polyadapt_text.preference import PreferenceCollator, build_pairs

    options, length = run.options, run.config.training.max_length
    train = build_pairs(base.tokenizer, data.train, length)
    heldout = build_pairs(base.tokenizer, data.heldout, length)
    dropped = len(data.train) + len(data.heldout) - len(train) - len(heldout)
    if not train:
        raise DataError(
            f"no training pair fits training.max_length ({length} tokens) with room for its answers; "
            "raise training.max_length or shorten the prompts"
        )
    run.say(f"preference pairs: {len(train)} training, {len(heldout)} held out (DPO, beta {options.dpo_beta})")
    return TrainingJob(
        model=PreferenceLoss(model, beta=options.dpo_beta, kind=options.dpo_loss),
        train_data=train,
        collate=PreferenceCollator(base.tokenizer.pad_token_id),
        loss=summed_loss,
        eval_data=heldout or None,
        facts={"train_pairs": len(train), "heldout_pairs": len(heldout), "pairs_dropped": dropped},
    )
