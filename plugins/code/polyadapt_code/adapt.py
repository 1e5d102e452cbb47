"""The code plugin's ``adapt``: repository → governed files → samples → shared trainer → adapter."""

from __future__ import annotations

import json

from polyadapt.distributed import is_main_process
from polyadapt.fileio import atomic_directory
from polyadapt.training import TrainingJob, train
from polyadapt.types import AdapterArtifact, Run
from polyadapt_text.data import Collator
from polyadapt_text.loss import CausalLMLoss, summed_loss
from polyadapt_text.model import attach_lora, count_parameters, load_base

from polyadapt_code.data import build_code_examples
from polyadapt_code.datasets import load_code_data, options_of
from polyadapt_code.fim import fim_tokens


def adapt(run: Run) -> AdapterArtifact:
    """Train and save a LoRA adapter for ``run`` (see ``polyadapt_adapt``)."""
    config, options = run.config, options_of(run)
    data = load_code_data(run)
    run.write_text("quarantine.jsonl", "".join(json.dumps(q) + "\n" for q in data.quarantine_rows()))
    skipped = len(data.quarantine_rows())
    run.say(f"data: {len(data.train)} training files, {len(data.heldout)} held out, {skipped} skipped"
            + (f" (reasons in {run.dir / 'quarantine.jsonl'})" if skipped else ""))

    run.say(f"loading base model {config.base_model.id}")
    base, tokenizer = load_base(config.base_model)
    model = attach_lora(base, config.lora)
    fim = fim_tokens(tokenizer, options.fim_fallback) if options.fim_rate > 0 else None
    training = config.training
    train_examples, counts = build_code_examples(
        tokenizer, data.train, max_length=training.max_length, packing=training.packing, fim=fim,
        fim_rate=options.fim_rate, seed=training.seed,
    )
    eval_examples, _ = build_code_examples(
        tokenizer, data.heldout, max_length=training.max_length, packing=training.packing, fim=None,
        fim_rate=0.0, seed=training.seed,
    )
    summary = data.summary() | {"samples": counts,
                                "fim_tokens": None if fim is None else ("native" if fim.native else "text fallback")}
    run.write_json("data_summary.json", summary)
    job = TrainingJob(model=CausalLMLoss(model), train_data=train_examples, collate=Collator(tokenizer.pad_token_id),
                      loss=summed_loss, eval_data=eval_examples or None)
    trainable, total = count_parameters(model)
    run.say(f"LoRA: {trainable:,} trainable of {total:,} parameters; {counts['causal']} causal and "
            f"{counts['fim']} FIM samples in {len(train_examples)} sequences")
    result = train(job, training, run.dir, resume=run.resume)
    if is_main_process():
        with atomic_directory(run.adapter_dir) as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
    return AdapterArtifact(
        path=run.adapter_dir, base_model=config.base_model.id, trainable_parameters=trainable,
        total_parameters=total, train_metrics=result.to_dict() | {"train_sequences": len(train_examples), **counts},
    )
