"""What ``task_options.objective`` changes in a text (or code) run: which reader the domain
sets go through, and which examples and loss the shared trainer gets.

- ``sft`` reads text, instruction or chat records (:mod:`polyadapt.modalities.text`);
  preference pairs are refused with the option to set;
- ``dpo`` reads preference pairs (:mod:`polyadapt.modalities.preference`, scanned by
  governance like chats) and trains with :class:`polyadapt_text.dpo.PreferenceLoss`;
- ``simpo`` and ``orpo`` read the same pairs and train with
  :class:`polyadapt_text.dpo.ReferenceFreeLoss` (no reference forward pass).

The general set (the forgetting check) stays plain text under both; replay data, which is
plain text, cannot be mixed into preference tuning and is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from polyadapt.errors import ConfigError, DataError
from polyadapt.lineage.metricgate import MetricGate
from polyadapt_text.options import PREFERENCE_OBJECTIVES

if TYPE_CHECKING:  # pragma: no cover
    from polyadapt.modalities.records import Dataset, RunData
    from polyadapt.training import TrainingJob
    from polyadapt.types import Run

PREFERENCE = "preference"
#: How the run's messages spell each preference objective.
NAMES = {"dpo": "DPO", "simpo": "SimPO", "orpo": "ORPO"}
#: The promotion gate of a DPO run (on top of the policy's, whose forgetting threshold holds
#: the general perplexity): the adapter must move at least half the held-out pairs towards
#: their chosen answer (reward accuracy, whose base is 0) and must not rank fewer pairs right
#: than the base (preference accuracy).
DPO_GATE = MetricGate(improve={"reward accuracy": 0.5}, no_regress=("preference accuracy",), default=True)
#: The promotion gate of a SimPO or ORPO run: their rewards (SimPO's ``beta`` times the average
#: log-probability, ORPO's log-odds ratio) are not zero at the base, so the mean reward margin
#: must grow, and neither the reward accuracy (the pairs ranked right by average log-probability)
#: nor the preference accuracy (by summed log-probability) may fall.
REFERENCE_FREE_GATE = MetricGate(
    improve={"reward margin": 0.0}, no_regress=("reward accuracy", "preference accuracy"), default=True
)
#: Each preference objective's gate (see :meth:`polyadapt_text.task.TextGenerationTask.run_gate`).
OBJECTIVE_GATES = {"dpo": DPO_GATE, "simpo": REFERENCE_FREE_GATE, "orpo": REFERENCE_FREE_GATE}


def _wrong_objective(path: Path, role: str) -> ConfigError:
    return ConfigError(
        f"{path} (data.{role}) holds preference pairs (prompt, chosen, rejected) but task_options.objective "
        "is sft, which trains on text, instruction or chat records; set task_options.objective: dpo "
        "(or simpo, orpo) to train on the pairs"
    )


def load_dataset(run: Run, path: Path, role: str, objective: str) -> Dataset:
    """One data file of a text run, read as its role and the objective say (see module doc)."""
    from polyadapt.modalities.preference import load_preference_dataset
    from polyadapt.modalities.text import load_text_dataset

    data = run.config.data
    limit = data.max_record_chars
    if role not in ("train", "eval"):
        if role == "replay" and objective in PREFERENCE_OBJECTIVES:
            raise ConfigError(
                f"data.replay mixes plain text into training, which task_options.objective: {objective} cannot use "
                "(it trains on preference pairs); remove data.replay and data.replay_fraction, or use objective: sft"
            )
        return load_text_dataset(path, max_record_chars=limit)
    if objective in PREFERENCE_OBJECTIVES:
        if data.kind not in ("auto", PREFERENCE):
            raise ConfigError(
                f"task_options.objective is {objective} but data.kind is {data.kind}: {NAMES[objective]} trains "
                "on preference pairs; "
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


def preference_loss(options: Any, model: Any) -> tuple[Any, str]:
    """The loss module of a preference objective and how the run describes it: DPO's
    :class:`~polyadapt_text.dpo.PreferenceLoss` (with the reference pass), or SimPO's or
    ORPO's :class:`~polyadapt_text.dpo.ReferenceFreeLoss` (without)."""
    from polyadapt_text.dpo import PreferenceLoss, ReferenceFreeLoss

    if options.objective == "simpo":
        loss = ReferenceFreeLoss(model, "simpo", beta=options.simpo_beta, gamma=options.simpo_gamma)
        return loss, f"SimPO, beta {options.simpo_beta}, gamma {options.simpo_gamma}"
    if options.objective == "orpo":
        return ReferenceFreeLoss(model, "orpo", lam=options.orpo_lambda), f"ORPO, lambda {options.orpo_lambda}"
    return PreferenceLoss(model, beta=options.dpo_beta, kind=options.dpo_loss), f"DPO, beta {options.dpo_beta}"


def preference_job(run: Run, base: Any, model: Any, data: RunData) -> TrainingJob:
    """The shared trainer's job for ``objective: dpo``, ``simpo`` or ``orpo``: pairs cut to
    ``training.max_length``, chosen and rejected collated into one batch, the objective's loss
    (:func:`preference_loss`) summed over pairs.

    ``facts``: ``train_pairs``, ``heldout_pairs`` and ``pairs_dropped`` (pairs whose prompt
    left no room for an answer).
    """
    from polyadapt.training import TrainingJob
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
    loss, described = preference_loss(options, model)
    run.say(f"preference pairs: {len(train)} training, {len(heldout)} held out ({described})")
    return TrainingJob(
        model=loss,
        train_data=train,
        collate=PreferenceCollator(base.tokenizer.pad_token_id),
        loss=summed_loss,
        eval_data=heldout or None,
        facts={"train_pairs": len(train), "heldout_pairs": len(heldout), "pairs_dropped": dropped},
    )
