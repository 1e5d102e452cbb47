"""The code-generation task: the text task's causal LM, adapted to repositories.

Loading the base (hub id, folder or GGUF), the LoRA targets, attaching LoRA and saving the
adapter are :class:`~polyadapt_text.task.TextGenerationTask`'s; this task reads
repositories instead of text files (:mod:`polyadapt_code.datasets`), trains on causal and
fill-in-the-middle samples (:mod:`polyadapt_code.data`), scores exact match and pass@k
(:mod:`polyadapt_code.evaluate`) and serves ``suffix`` on the core's ``/v1/completions``
(:mod:`polyadapt_code.serve`); it adds no routes of its own.

This module is imported when polyadapt starts (through the entry module), so it imports
nothing heavy: torch, transformers and peft are imported inside the methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from polyadapt_text.task import CausalBase, TextGenerationTask, trains_on_pairs

from polyadapt.lineage.metricgate import MetricGate
from polyadapt_code.options import CodeOptions

if TYPE_CHECKING:  # pragma: no cover
    from polyadapt.modalities.records import RunData
    from polyadapt.training import TrainingJob
    from polyadapt.types import AdapterArtifact, EvalReport, Run, Servable, ServeSpec

    from polyadapt_code.datasets import CodeRunData


class CodeGenerationTask(TextGenerationTask):
    """Causal + fill-in-the-middle LM adaptation on one or several code repositories."""

    name = "code-generation"
    modality = "code"
    description = (
        "Code LM on a repository (folder or git revision): causal + fill-in-the-middle, "
        "next-line/FIM exact match, sandboxed pass@k"
    )
    default_base = "HuggingFaceTB/SmolLM2-135M"
    options_model = CodeOptions
    record_noun = "files"
    data_fields = {
        "train": "The repository: a folder, or a local git repository read at task_options.revision (a branch, "
        "tag or commit, through git archive: the working tree is ignored); task_options.repositories adds more",
        "eval": "A second repository (a folder) whose files are the held-out set, less those that copy a training "
        "file; default: whole files of data.train split off by data.eval_fraction",
        "licence": "SPDX licence of data.train's files without an SPDX header; default: its LICENSE/COPYING file, "
        "else its package manifest",
        "format": "Not read: source files are chosen by extension (task_options.languages)",
        "kind": "Not read: each source file is one record",
        "max_record_chars": "Characters one line of the task set (task_options.tasks) or of a general/replay data "
        "file may hold; source files are bounded by task_options.max_file_bytes",
    }
    #: Lower perplexity alone does not make a better code model: pass@k (with a task set) and
    #: FIM exact match must not fall, and a warning says when they did not move.
    gate = MetricGate(no_regress=("pass@*", "FIM exact match"), default=True)

    def load_run_data(self, run: Run) -> CodeRunData:
        """The repositories' files, governed, de-duplicated (across repositories too) and
        split by file, and the general text (see :mod:`polyadapt_code.datasets`).

        The task set's sandbox is checked first, so that a machine without bubblewrap is
        told before training, not after it."""
        from polyadapt_code.datasets import load_code_data
        from polyadapt_code.evaluate import check_task_sandbox

        if trains_on_pairs(run):  # preference pairs, read as the text task reads them
            return super().load_run_data(run)
        check_task_sandbox(run)
        return load_code_data(run)

    def training_job(self, run: Run, base: CausalBase, model: Any, data: RunData) -> TrainingJob:
        """Causal and FIM samples of the training files (causal only for the held-out loss).

        ``facts``: the ``samples`` counts (``causal``, ``fim``, ``sequences``), which FIM
        sentinels were used (``fim_tokens``: ``native``, ``text fallback`` or None) and
        ``train_sequences``.
        """
        if trains_on_pairs(run):
            return super().training_job(run, base, model, data)
        from polyadapt.training import TrainingJob
        from polyadapt_text.data import Collator
        from polyadapt_text.loss import CausalLMLoss, summed_loss

        from polyadapt_code.data import build_code_examples
        from polyadapt_code.fim import fim_tokens

        options, training = run.options, run.config.training
        fim = fim_tokens(base.tokenizer, options.fim_fallback) if options.fim_rate > 0 else None
        shape = {"max_length": training.max_length, "packing": training.packing, "seed": training.seed}
        train, counts = build_code_examples(base.tokenizer, data.train, fim=fim, fim_rate=options.fim_rate, **shape)
        heldout, _ = build_code_examples(base.tokenizer, data.heldout, fim=None, fim_rate=0.0, **shape)
        run.say(f"samples: {counts['causal']} causal and {counts['fim']} FIM in {len(train)} sequences")
        facts = {
            "samples": counts,
            "fim_tokens": None if fim is None else ("native" if fim.native else "text fallback"),
            "train_sequences": len(train),
        }
        return TrainingJob(
            model=CausalLMLoss(model),
            train_data=train,
            collate=Collator(base.tokenizer.pad_token_id),
            loss=summed_loss,
            eval_data=heldout or None,
            facts=facts,
        )

    def evaluate(self, run: Run, adapter: AdapterArtifact, data: RunData) -> EvalReport:
        """Held-out perplexity, next-line and FIM exact match, general perplexity and pass@k,
        base vs adapted (see :mod:`polyadapt_code.evaluate`)."""
        if trains_on_pairs(run):
            return super().evaluate(run, adapter, data)
        from polyadapt_code.evaluate import evaluate

        return evaluate(run, adapter, data)

    def servable(self, spec: ServeSpec) -> Servable:
        """The text servable with fill-in-the-middle: ``suffix`` on ``/v1/completions`` (through
        vLLM with ``--engine vllm``)."""
        if spec.engine == "vllm":
            from polyadapt_code.serve import CodeVllmServable

            return CodeVllmServable(spec)
        from polyadapt_code.serve import CodeServable

        return CodeServable(spec)
