"""The speech plugin's ``adapt``: audio → LoRA on Whisper → shared trainer → saved adapter."""

from __future__ import annotations

import json

from polyadapt.distributed import is_main_process
from polyadapt.fileio import atomic_directory
from polyadapt.training import TrainingJob, train
from polyadapt.types import AdapterArtifact, Run
from polyadapt_speech.data import WhisperLoss, build_examples, collate, load_run_data, options_of, summed_loss
from polyadapt_speech.model import attach_lora, count_parameters, load_whisper


def adapt(run: Run) -> AdapterArtifact:
    """Train and save a LoRA adapter for ``run`` (see ``polyadapt_adapt``)."""
    config, options = run.config, options_of(run)
    run_data = load_run_data(run)
    summary = run_data.summary()
    run.write_json("data_summary.json", summary)
    quarantined = run_data.quarantine_rows()
    run.write_text("quarantine.jsonl", "".join(json.dumps(q) + "\n" for q in quarantined))
    run.say(
        f"data: {summary['train_records']} training clips ({summary['train_audio_s']} s), "
        f"{summary['heldout_records']} held out, {summary['general_records']} general, "
        f"{summary['replay_records']} replay, {len(quarantined)} quarantined"
        + (f" (reasons in {run.dir / 'quarantine.jsonl'})" if quarantined else "")
    )

    run.say(f"loading whisper base {config.base_model.id}")
    base = load_whisper(config.base_model)
    model = attach_lora(base, config.lora, options.lora_on)
    train_examples = build_examples(base, run_data.train + run_data.replay, options)
    eval_examples = build_examples(base, run_data.heldout, options)
    job = TrainingJob(
        model=WhisperLoss(model, options.spec_augment),
        train_data=train_examples,
        collate=collate,
        loss=summed_loss,
        eval_data=eval_examples or None,
    )
    trainable, total = count_parameters(model)
    run.say(f"LoRA on the {options.lora_on}: {trainable:,} trainable of {total:,} parameters")
    result = train(job, config.training, run.dir, resume=run.resume)

    if is_main_process():
        with atomic_directory(run.adapter_dir) as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
    return AdapterArtifact(
        path=run.adapter_dir,
        base_model=config.base_model.id,
        trainable_parameters=trainable,
        total_parameters=total,
        train_metrics=result.to_dict() | {"train_clips": len(train_examples)},
    )
