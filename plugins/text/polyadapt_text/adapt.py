"""The text plugin's ``adapt``: data → LoRA on the base → shared trainer → saved adapter."""

from __future__ import annotations

import json

from polyadapt.distributed import is_main_process
from polyadapt.fileio import atomic_directory
from polyadapt.training import TrainingJob, train
from polyadapt.types import AdapterArtifact, Run
from polyadapt_text.data import Collator, build_examples
from polyadapt_text.datasets import load_run_data
from polyadapt_text.loss import CausalLMLoss, summed_loss
from polyadapt_text.model import attach_lora, count_parameters, load_base


def adapt(run: Run) -> AdapterArtifact:
    """Train and save a LoRA adapter for ``run`` (see ``polyadapt_adapt``)."""
    config = run.config
    run_data = load_run_data(run)
    summary = run_data.summary()
    run.write_json("data_summary.json", summary)
    rejected = sum(d["quarantined"] for d in summary["datasets"])
    run.say(
        f"data: {summary['train_records']} training records, {summary['heldout_records']} held out, "
        f"{summary['replay_records']} replay, {rejected} quarantined"
        + (f" (reasons in {run.dir / 'quarantine.jsonl'})" if rejected else "")
    )
    run.write_text("quarantine.jsonl", "".join(json.dumps(q) + "\n" for q in run_data.quarantine_rows()))

    run.say(f"loading base model {config.base_model.id}")
    base, tokenizer = load_base(config.base_model)
    model = attach_lora(base, config.lora)
    training = config.training
    train_examples = build_examples(tokenizer, run_data.train + run_data.replay, training.max_length, training.packing)
    eval_examples = build_examples(tokenizer, run_data.heldout, training.max_length, training.packing)
    job = TrainingJob(
        model=CausalLMLoss(model),
        train_data=train_examples,
        collate=Collator(tokenizer.pad_token_id),
        loss=summed_loss,
        eval_data=eval_examples or None,
    )
    trainable, total = count_parameters(model)
    run.say(f"LoRA: {trainable:,} trainable of {total:,} parameters; {len(train_examples)} training sequences")
    result = train(job, training, run.dir, resume=run.resume)

    if is_main_process():
        with atomic_directory(run.adapter_dir) as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
    return AdapterArtifact(
        path=run.adapter_dir,
        base_model=config.base_model.id,
        trainable_parameters=trainable,
        total_parameters=total,
        train_metrics=result.to_dict() | {"train_sequences": len(train_examples)},
    )
