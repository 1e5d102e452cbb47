"""The code task's ``evaluate``: base vs adapted on held-out files, general text and tasks.

Rows (base and adapted, one PEFT model with the adapter switched off for the base):

- ``held-out files`` ``perplexity`` (domain, lower is better): causal samples of the
  held-out files;
- ``held-out files`` ``next-line exact match`` (domain): for up to ``eval_lines`` lines
  drawn from held-out files (seeded), the text before the line (the last
  ``context_tokens`` tokens) is the prompt, **cut before its trailing whitespace** (the
  previous line's line break, any blank lines and the line's indentation): BPE code
  tokenizers (SmolLM2, StarCoder, GPT-2's) write a line break and the next line's
  indentation as one token (``"\n   "``), so a prompt ending in a bare ``"\n"`` token is
  one the model never saw in training and its continuations come back empty. The greedy
  continuation must start a new line (only blanks before its first line break, else the
  model went on with the previous line: a miss) and its first non-blank line, trailing
  blanks ignored, must equal the held-out line; indentation counts, the number of blank
  lines in between does not (:func:`probe_prompt`, :func:`continued_line`);
- ``held-out files`` ``FIM exact match`` (domain): the same prefix, and as FIM suffix the
  text after the line starting with the line's own line break (``"\n" + next lines``, so
  the suffix too starts as the tokenizer writes it); the generated middle is scored as the
  next-line continuation above. Skipped when the run has no FIM (``fim_fallback: off`` on
  a tokenizer without FIM tokens);
- ``general`` ``perplexity`` (general): the forgetting check, the text plugin's general set;
- ``tasks`` ``pass@k`` (``tasks_role``, higher is better): with ``task_options.tasks``,
  each task's prompt is completed ``samples_per_task`` times (greedy for 1) and the
  programs run in the sandbox (:mod:`polyadapt_code.sandbox`), never in this process.
  HumanEval-style prompts end in a docstring and a line break; for the same reason as
  above the prompt is sent without its trailing whitespace (:func:`task_prompt`) and the
  program is that prompt + the completion (which starts with the line break).

Generation goes through :class:`~polyadapt_code.serve.CodeServable`, so evaluation builds
prompts (FIM included) exactly as serving does.
"""

from __future__ import annotations

import random
from typing import Any

from polyadapt.modalities.records import RunData
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
from polyadapt_code.datasets import load_task_set
from polyadapt_code.serve import CodeServable

ADAPTED = "adapted"
BATCH = 16
#: Where a HumanEval completion ends (the usual stop sequences).
TASK_STOPS = ["\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\nassert "]


def tail_text(tokenizer: Any, text: str, budget: int) -> str:
    """The end of ``text`` that fits in ``budget`` tokens."""
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return text if len(offsets) <= budget else text[offsets[-budget][0] :]


def head_text(tokenizer: Any, text: str, budget: int) -> str:
    """The start of ``text`` that fits in ``budget`` tokens."""
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return text if len(offsets) <= budget else text[: offsets[budget][0]]


def line_probes(files: list[dict[str, Any]], count: int, seed: int) -> list[tuple[str, str, str]]:
    """Up to ``count`` (before, line, after) triples from ``files``: non-blank lines with
    at least one non-blank line before them, drawn reproducibly. ``line`` keeps its line
    break; ``before + line + after`` is the file."""
    candidates = []
    for record in files:
        lines = record["text"].splitlines(keepends=True)
        for index in range(1, len(lines)):
            before = "".join(lines[:index])
            if len(lines[index].strip()) >= 3 and before.strip():
                candidates.append((before, lines[index], "".join(lines[index + 1 :])))
    rng = random.Random(seed)
    rng.shuffle(candidates)
    return candidates[:count]


def probe_prompt(before: str) -> str:
    """The prompt for the line after ``before``: ``before`` without its trailing whitespace.

    The cut falls at the end of the previous non-blank line, so the prompt's last token is
    one the tokenizer also produces inside a file, and the line break with the target
    line's indentation (one token for BPE code tokenizers) is the model's to generate.
    """
    return before.rstrip()


def task_prompt(prompt: str) -> str:
    """A pass@k task prompt as sent to the model: without its trailing whitespace (see
    :func:`probe_prompt`); the program is this prompt + the completion."""
    return prompt.rstrip()


def line_break_and_rest(line: str) -> tuple[str, str]:
    """(the line without trailing blanks, the rest: its trailing blanks and line break)."""
    body = line.rstrip()
    return body, line[len(body) :]


def continued_line(completion: str) -> str | None:
    """The first non-blank line of a continuation of :func:`probe_prompt`'s prompt,
    without trailing blanks; None when the completion does not start a new line (text
    before its first line break: the model went on with the previous line) or has none."""
    head, newline, rest = completion.partition("\n")
    if not newline or head.strip():
        return None
    for candidate in rest.split("\n"):
        if candidate.strip():
            return candidate.rstrip()
    return None


def _shown(line: str | None, completion: str) -> str:
    """The line read from a completion, or the raw completion when none was read."""
    return line if line is not None else f"(no new line) {completion[:120]!r}"


def _answers(servable: CodeServable, requests: list[GenerationRequest]) -> list[str]:
    texts: list[str] = []
    for start in range(0, len(requests), BATCH):
        texts += [r.text for r in servable.generate(requests[start : start + BATCH])]
    return texts


def exact_match(
    servable: CodeServable, probes: list[tuple[str, str, str]], *, budget: int, max_tokens: int, fim: bool
) -> tuple[float, float, list[dict[str, str]]]:
    """(base, adapted) share of probes whose generated line equals the held-out line, and examples.

    Prompts come from :func:`probe_prompt` (and for FIM a suffix that starts with the line's
    own line break); answers are read with :func:`continued_line`. Generation stops at the
    first line break after the continuation's first non-blank character
    (``stop_after_content``): the line break and indent the model writes first do not count.
    """
    tokenizer = servable.tokenizer
    requests = []
    for before, line, after in probes:
        prompt = probe_prompt(before)
        if fim:
            rest = line_break_and_rest(line)[1]
            prefix, suffix = tail_text(tokenizer, prompt, budget // 2), head_text(tokenizer, rest + after, budget // 2)
        else:
            prefix, suffix = tail_text(tokenizer, prompt, budget), None
        for adapter in (None, ADAPTED):
            requests.append(
                GenerationRequest(
                    prompt=prefix,
                    suffix=suffix,
                    adapter=adapter,
                    max_tokens=max_tokens,
                    stop=["\n"],
                    stop_after_content=True,
                )
            )
    texts = _answers(servable, requests)
    hits = {None: 0, ADAPTED: 0}
    shown = []
    for index, (_, line, _) in enumerate(probes):
        base_line, adapted_line = (continued_line(texts[2 * index + i]) for i in (0, 1))
        target = line.rstrip()
        hits[None] += base_line == target
        hits[ADAPTED] += adapted_line == target
        shown.append(
            {
                "target": target,
                "base": _shown(base_line, texts[2 * index]),
                "adapted": _shown(adapted_line, texts[2 * index + 1]),
            }
        )
    n = max(len(probes), 1)
    return hits[None] / n, hits[ADAPTED] / n, shown


def pass_at_k_rows(run: Run, servable: CodeServable) -> tuple[list[MetricRow], dict[str, Any]]:
    """pass@k base vs adapted on the run's task set (programs run in the sandbox)."""
    from polyadapt_code.sandbox import score

    options = run.options
    tasks = [{**task, "prompt": task_prompt(task["prompt"])} for task in load_task_set(run, options.tasks)]
    n = options.samples_per_task
    greedy = n == 1
    results: dict[str, Any] = {}
    for adapter in (None, ADAPTED):
        requests = [
            GenerationRequest(
                prompt=task["prompt"],
                adapter=adapter,
                max_tokens=options.completion_tokens,
                stop=TASK_STOPS,
                temperature=0.0 if greedy else options.sample_temperature,
                seed=None if greedy else run.config.training.seed + sample,
            )
            for task in tasks
            for sample in range(n)
        ]
        texts = _answers(servable, requests)
        completions = [texts[i * n : (i + 1) * n] for i in range(len(tasks))]
        results[adapter or "base"] = score(
            tasks,
            completions,
            options.pass_k,
            timeout_s=options.timeout_s,
            memory_mb=options.memory_mb,
            max_processes=options.max_processes,
            sandbox=options.sandbox,
        )
    rows = [
        MetricRow(
            "tasks",
            f"pass@{k}",
            round(results["base"][f"pass@{k}"], 4),
            round(results[ADAPTED][f"pass@{k}"], 4),
            lower_is_better=False,
            role=options.tasks_role,
        )
        for k in options.pass_k
    ]
    return rows, {name: {"statuses": r["statuses"]} for name, r in results.items()}


def check_task_sandbox(run: Run) -> None:
    """With a task set, make sure its programs can run in ``task_options.sandbox`` (a
    ConfigError naming the fix when bwrap cannot run here) and warn when they run unisolated.
    Cheap after the first call (the probe is cached), so it runs before any generation."""
    if run.options.tasks is None:
        return
    from polyadapt_code.sandbox import check_sandbox

    warning = check_sandbox(run.options.sandbox)
    if warning:
        run.say(f"warning: {warning}")


def evaluate(run: Run, adapter: AdapterArtifact, data: RunData) -> EvalReport:
    """Score base and adapted on ``data``'s held-out files and general text, and on the task
    set (see the module docs)."""
    config, options = run.config, run.options
    check_task_sandbox(run)  # before the model loads: a missing bwrap is named at once
    spec = ServeSpec(
        task=run.task,
        base_model=config.base_model.id,
        base_name="base",
        adapters={ADAPTED: adapter.path},
        config=config,
    )
    servable = CodeServable(spec)
    servable.load_adapter(ADAPTED, adapter.path)
    tokenizer = servable.tokenizer
    collate = Collator(tokenizer.pad_token_id)
    scorer = CausalLMLoss(servable.model).eval()  # evaluate_loss restores this mode afterwards
    length, packing = config.training.max_length, config.training.packing
    rows: list[MetricRow] = []

    heldout_examples, _ = build_code_examples(
        tokenizer, data.heldout, max_length=length, packing=packing, fim=None, fim_rate=0.0, seed=config.training.seed
    )
    sets = [
        ("held-out files", "domain", heldout_examples),
        ("general", "general", build_examples(tokenizer, data.general, length, packing)),
    ]
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
    for metric, count, fim in (
        ("next-line exact match", options.eval_lines, False),
        ("FIM exact match", options.eval_fim, True),
    ):
        probes = line_probes(data.heldout, count, seed + (1 if fim else 0))
        if not probes or (fim and servable.fim is None):
            continue
        base_em, adapted_em, shown = exact_match(
            servable, probes, budget=budget, max_tokens=options.max_line_tokens, fim=fim
        )
        rows.append(
            MetricRow(
                "held-out files", metric, round(base_em, 4), round(adapted_em, 4), lower_is_better=False, role="domain"
            )
        )
        for item in shown[: config.evaluation.num_samples]:
            samples.append({"prompt": f"[{metric}] {item['target']}", "base": item["base"], "adapted": item["adapted"]})

    if options.tasks is not None:
        task_rows, statuses = pass_at_k_rows(run, servable)
        rows += task_rows
        samples.append(
            {"prompt": "[pass@k program outcomes]", "base": str(statuses["base"]), "adapted": str(statuses[ADAPTED])}
        )
    return EvalReport(rows=rows, samples=samples)
