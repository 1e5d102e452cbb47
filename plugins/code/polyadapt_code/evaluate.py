"""The code plugin's ``evaluate``: base vs adapted on held-out files, general text and tasks.

Rows (base and adapted, one PEFT model with the adapter switched off for the base):

- ``held-out files`` ``perplexity`` (domain, lower is better): causal samples of the
  held-out files;
- ``held-out files`` ``next-line exact match`` (domain): for up to ``eval_lines`` lines
  drawn from held-out files (seeded), the text before the line (the last
  ``context_tokens`` tokens) is the prompt; the greedy completion's first line must equal
  the line (trailing blanks ignored, indentation counts);
- ``held-out files`` ``FIM exact match`` (domain): the same with the text after the line as
  FIM suffix: the generated middle's first line must equal the line. Skipped when the
  run has no FIM (``fim_fallback: off`` on a tokenizer without FIM tokens);
- ``general`` ``perplexity`` (general): the forgetting check, the text plugin's general set;
- ``tasks`` ``pass@k`` (``tasks_role``, higher is better): with ``task_options.tasks``,
  each task's prompt is completed ``samples_per_task`` times (greedy for 1) and the
  programs run in the sandbox (:mod:`polyadapt_code.sandbox`), never in this process.

Generation goes through :class:`~polyadapt_code.serve.CodeServable`, so evaluation builds
prompts (FIM included) exactly as serving does.
"""

from __future__ import annotations

import random
from typing import Any

from polyadapt.types import (
    AdapterArtifact,
    EvalReport,
    GenerationRequest,
    MetricRow,
    Run,
    ServeSpec,
)
from polyadapt_text.data import Collator, build_examples
from polyadapt_text.evaluate import perplexity
from polyadapt_text.loss import CausalLMLoss

from polyadapt_code.data import build_code_examples
from polyadapt_code.datasets import load_code_data, load_task_set, options_of
from polyadapt_code.serve import CodeServable

ADAPTED = "adapted"
BATCH = 16
#: Where a HumanEval completion ends (the usual stop sequences).
TASK_STOPS = ["\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\nassert "]


def tail_text(tokenizer: Any, text: str, budget: int) -> str:
    """The end of ``text`` that fits in ``budget`` tokens."""
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return text if len(offsets) <= budget else text[offsets[-budget][0]:]


def head_text(tokenizer: Any, text: str, budget: int) -> str:
    """The start of ``text`` that fits in ``budget`` tokens."""
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return text if len(offsets) <= budget else text[: offsets[budget][0]]


def line_probes(files: list[dict[str, Any]], count: int, seed: int) -> list[tuple[str, str, str]]:
    """Up to ``count`` (before, line, after) triples from ``files``: non-blank lines with
    at least one line before them, drawn reproducibly."""
    candidates = []
    for record in files:
        lines = record["text"].splitlines(keepends=True)
        for index in range(1, len(lines)):
            if len(lines[index].strip()) >= 3:
                candidates.append(("".join(lines[:index]), lines[index], "".join(lines[index + 1:])))
    rng = random.Random(seed)
    rng.shuffle(candidates)
    return candidates[:count]


def _answers(servable: CodeServable, requests: list[GenerationRequest]) -> list[str]:
    texts: list[str] = []
    for start in range(0, len(requests), BATCH):
        texts += [r.text for r in servable.generate(requests[start : start + BATCH])]
    return texts


def exact_match(servable: CodeServable, probes: list[tuple[str, str, str]], *, budget: int, max_tokens: int,
                fim: bool) -> tuple[float, float, list[dict[str, str]]]:
    """(base, adapted) share of probes whose generated line equals the held-out line, and examples."""
    tokenizer = servable.tokenizer
    requests = []
    for before, _, after in probes:
        if fim:
            prefix, suffix = tail_text(tokenizer, before, budget // 2), head_text(tokenizer, after, budget // 2)
        else:
            prefix, suffix = tail_text(tokenizer, before, budget), None
        for adapter in (None, ADAPTED):
            requests.append(GenerationRequest(prompt=prefix, suffix=suffix, adapter=adapter, max_tokens=max_tokens,
                                              stop=["\n"]))
    texts = _answers(servable, requests)
    hits = {None: 0, ADAPTED: 0}
    shown = []
    for index, (_, line, _) in enumerate(probes):
        base_text, adapted_text = texts[2 * index], texts[2 * index + 1]
        target = line.rstrip()
        hits[None] += base_text.rstrip() == target
        hits[ADAPTED] += adapted_text.rstrip() == target
        shown.append({"target": target, "base": base_text, "adapted": adapted_text})
    n = max(len(probes), 1)
    return hits[None] / n, hits[ADAPTED] / n, shown


def pass_at_k_rows(run: Run, servable: CodeServable) -> tuple[list[MetricRow], dict[str, Any]]:
    """pass@k base vs adapted on the run's task set (programs run in the sandbox)."""
    from polyadapt_code.sandbox import score

    options = options_of(run)
    tasks = load_task_set(run, options.tasks)
    n = options.samples_per_task
    greedy = n == 1
    results: dict[str, Any] = {}
    for adapter in (None, ADAPTED):
        requests = [
            GenerationRequest(prompt=task["prompt"], adapter=adapter, max_tokens=options.completion_tokens,
                              stop=TASK_STOPS, temperature=0.0 if greedy else options.sample_temperature,
                              seed=None if greedy else run.config.training.seed + sample)
            for task in tasks for sample in range(n)
        ]
        texts = _answers(servable, requests)
        completions = [texts[i * n : (i + 1) * n] for i in range(len(tasks))]
        results[adapter or "base"] = score(tasks, completions, options.pass_k, timeout_s=options.timeout_s,
                                           memory_mb=options.memory_mb)
    rows = [
        MetricRow("tasks", f"pass@{k}", round(results["base"][f"pass@{k}"], 4),
                  round(results[ADAPTED][f"pass@{k}"], 4), lower_is_better=False, role=options.tasks_role)
        for k in options.pass_k
    ]
    return rows, {name: {"statuses": r["statuses"]} for name, r in results.items()}


def evaluate(run: Run, adapter: AdapterArtifact) -> EvalReport:
    """Score base and adapted (see the module docs and ``polyadapt_evaluate``)."""
    config, options = run.config, options_of(run)
    data = load_code_data(run)
    spec = ServeSpec(task=run.task, base_model=config.base_model.id, base_name="base",
                     adapters={ADAPTED: adapter.path}, config=config)
    servable = CodeServable(spec)
    servable.load_adapter(ADAPTED, adapter.path)
    tokenizer = servable.tokenizer
    collate = Collator(tokenizer.pad_token_id)
    scorer = CausalLMLoss(servable.model).eval()  # evaluate_loss restores this mode afterwards
    length, packing = config.training.max_length, config.training.packing
    rows: list[MetricRow] = []

    heldout_examples, _ = build_code_examples(tokenizer, data.heldout, max_length=length, packing=packing,
                                              fim=None, fim_rate=0.0, seed=config.training.seed)
    sets = [("held-out files", "domain", heldout_examples),
            ("general", "general", build_examples(tokenizer, data.general, length, packing))]
    for name, role, examples in sets:
        if not examples:
            continue
        with servable.use_adapter(None):
            base_ppl = perplexity(scorer, examples, collate)
        with servable.use_adapter(ADAPTED):
            adapted_ppl = perplexity(scorer, examples, collate)
        rows.append(MetricRow(name, "perplexity", round(base_ppl, 4), round(adapted_ppl, 4), role=role))

    budget = options.context_tokens or length
    samples: list[dict[str, Any]] = []
    seed = config.training.seed
    for metric, count, fim in (("next-line exact match", options.eval_lines, False),
                               ("FIM exact match", options.eval_fim, True)):
        probes = line_probes(data.heldout, count, seed + (1 if fim else 0))
        if not probes or (fim and servable.fim is None):
            continue
        base_em, adapted_em, shown = exact_match(servable, probes, budget=budget,
                                                 max_tokens=options.max_line_tokens, fim=fim)
        rows.append(MetricRow("held-out files", metric, round(base_em, 4), round(adapted_em, 4),
                              lower_is_better=False, role="domain"))
        for item in shown[: config.evaluation.num_samples]:
            samples.append({"prompt": f"[{metric}] {item['target']}", "base": item["base"], "adapted": item["adapted"]})

    if options.tasks is not None:
        task_rows, statuses = pass_at_k_rows(run, servable)
        rows += task_rows
        samples.append({"prompt": "[pass@k program outcomes]", "base": str(statuses["base"]),
                        "adapted": str(statuses[ADAPTED])})
    return EvalReport(rows=rows, samples=samples)
