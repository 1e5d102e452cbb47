"""Evaluation of a preference run: does the adapter prefer the chosen answers, and did it forget?

On the held-out pairs, with one copy of the weights (the base is the adapter disabled):

- ``preference accuracy``: the share of pairs whose chosen answer the model gives a higher
  log-probability than the rejected one, base against adapted;
- ``reward accuracy``: the share of pairs whose implicit reward ``beta * (policy - reference)``
  is higher for the chosen answer (TRL's ``rewards/accuracies``); the base's reward is zero
  for every answer, so its accuracy is 0;
- ``reward margin``: the mean of ``beta * ((pc - rc) - (pr - rr))`` (base: 0);
- ``DPO loss``: the held-out preference loss (reported only);

plus the general-text perplexity of :mod:`polyadapt_text.evaluate` (the forgetting check,
role ``general``) and a few generated samples.

A SimPO or ORPO run has no reference model, and its rewards are its own
(:func:`reference_free_rows`): SimPO's ``beta`` times an answer's average log-probability,
ORPO's log-odds ratio of the chosen answer over the rejected one. Both are measured at the
base (the adapter disabled) and adapted: ``reward accuracy`` (the share of pairs whose chosen
answer gets the higher reward, i.e. the higher average log-probability), ``reward margin``
(the mean of SimPO's ``beta * (ac - ar)``, or of ORPO's log-odds ratio) and the objective's
loss (``SimPO loss``, ``ORPO loss``: reported only), next to the same ``preference accuracy``
and the same forgetting check. :data:`polyadapt_text.objective.OBJECTIVE_GATES`
holds the promotion gate these rows are meant for, per objective.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from polyadapt.lora import inference_device
from polyadapt.modalities.records import RunData
from polyadapt.pretrained import refusing_unsafe_pickles
from polyadapt.types import AdapterArtifact, EvalReport, MetricRow, Run
from polyadapt_text.data import Collator, build_examples
from polyadapt_text.dpo import PairScores, PreferenceLoss, log_odds_ratios, orpo_losses, pair_losses, simpo_losses
from polyadapt_text.evaluate import EVAL_BATCH, generate, perplexity
from polyadapt_text.loss import CausalLMLoss
from polyadapt_text.model import load_base
from polyadapt_text.preference import PreferenceCollator, PreferenceExample, build_pairs

DATASET = "preference pairs (held-out)"
#: The loss row of a reference-free objective.
LOSS_NAMES = {"simpo": "SimPO loss", "orpo": "ORPO loss"}


@torch.no_grad()
def score_pairs(scorer: PreferenceLoss, pairs: list[PreferenceExample], collate: PreferenceCollator) -> PairScores:
    """Adapted and reference log-probabilities of every pair, batch by batch."""
    device = next(scorer.parameters()).device
    parts: list[PairScores] = []
    for start in range(0, len(pairs), EVAL_BATCH):
        batch = collate(pairs[start : start + EVAL_BATCH])
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        parts.append(scorer.scores(batch))
    fields = PairScores.__dataclass_fields__
    return PairScores(**{name: torch.cat([getattr(p, name).cpu().float() for p in parts]) for name in fields})


def preference_rows(scores: PairScores, beta: float, kind: str) -> list[MetricRow]:
    """The held-out pair metrics (see the module doc), base against adapted."""
    base_acc = (scores.ref_chosen > scores.ref_rejected).float().mean().item()
    adapted_acc = (scores.policy_chosen > scores.policy_rejected).float().mean().item()
    chosen_reward = beta * (scores.policy_chosen - scores.ref_chosen)
    rejected_reward = beta * (scores.policy_rejected - scores.ref_rejected)
    reward_acc = (chosen_reward > rejected_reward).float().mean().item()
    margin = (chosen_reward - rejected_reward).mean().item()
    zero = torch.zeros_like(scores.ref_chosen)
    at_base = PairScores(zero, zero, zero, zero, scores.chosen_tokens, scores.rejected_tokens)
    base_loss = pair_losses(at_base, beta, kind).mean().item()
    adapted_loss = pair_losses(scores, beta, kind).mean().item()
    return [
        MetricRow(DATASET, "preference accuracy", round(base_acc, 4), round(adapted_acc, 4), False, "domain"),
        MetricRow(DATASET, "reward accuracy", 0.0, round(reward_acc, 4), False, "domain"),
        MetricRow(DATASET, "reward margin", 0.0, round(margin, 4), False, "domain"),
        MetricRow(DATASET, "DPO loss", round(base_loss, 4), round(adapted_loss, 4), True, "other"),
    ]


def reference_free_rows(scores: PairScores, options: Any) -> list[MetricRow]:
    """The held-out pair metrics of a ``simpo`` or ``orpo`` run (``options.objective``; see the
    module doc), base (``scores.ref_*``: the adapter disabled) against adapted (``scores.policy_*``)."""
    objective = options.objective

    def averages(chosen: torch.Tensor, rejected: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return chosen / scores.chosen_tokens.clamp(min=1), rejected / scores.rejected_tokens.clamp(min=1)

    measured = {}
    for side, (chosen, rejected) in {
        "base": averages(scores.ref_chosen, scores.ref_rejected),
        "adapted": averages(scores.policy_chosen, scores.policy_rejected),
    }.items():
        if objective == "simpo":
            rewards = options.simpo_beta * (chosen - rejected)
            loss = simpo_losses(chosen, rejected, options.simpo_beta, options.simpo_gamma)
        else:
            rewards = log_odds_ratios(chosen, rejected)
            loss = orpo_losses(chosen, rejected, options.orpo_lambda)
        measured[side] = [(rewards > 0).float().mean().item(), rewards.mean().item(), loss.mean().item()]
    base, adapted = measured["base"], measured["adapted"]
    return [
        MetricRow(
            DATASET,
            "preference accuracy",
            round((scores.ref_chosen > scores.ref_rejected).float().mean().item(), 4),
            round((scores.policy_chosen > scores.policy_rejected).float().mean().item(), 4),
            False,
            "domain",
        ),
        MetricRow(DATASET, "reward accuracy", round(base[0], 4), round(adapted[0], 4), False, "domain"),
        MetricRow(DATASET, "reward margin", round(base[1], 4), round(adapted[1], 4), False, "domain"),
        MetricRow(DATASET, LOSS_NAMES[objective], round(base[2], 4), round(adapted[2], 4), True, "other"),
    ]


def _prompt_shown(prompt: list[dict[str, str]]) -> str:
    return prompt[-1]["content"]


def evaluate_preferences(run: Run, adapter: AdapterArtifact, run_data: RunData) -> EvalReport:
    """Preference and reward accuracy on ``run_data``'s held-out pairs, general perplexity and
    samples (held-out prompts, or ``evaluation.samples``), base against adapted."""
    from peft import PeftModel

    config, options = run.config, run.options
    base, tokenizer = load_base(config.base_model)
    with refusing_unsafe_pickles(adapter.path, what="adapter"):
        model = PeftModel.from_pretrained(base, str(adapter.path)).to(inference_device()).eval()
    rows: list[MetricRow] = []
    pairs = build_pairs(tokenizer, run_data.heldout, config.training.max_length)
    if pairs and options.objective != "dpo":  # simpo, orpo: both sides scored, each objective's rewards
        scores = score_pairs(PreferenceLoss(model), pairs, PreferenceCollator(tokenizer.pad_token_id))
        rows += reference_free_rows(scores, options)
    elif pairs:
        scorer = PreferenceLoss(model, beta=options.dpo_beta, kind=options.dpo_loss)
        scores = score_pairs(scorer, pairs, PreferenceCollator(tokenizer.pad_token_id))
        rows += preference_rows(scores, options.dpo_beta, options.dpo_loss)
    general = build_examples(tokenizer, run_data.general, config.training.max_length, config.training.packing)
    if general:
        scorer_lm, collate = CausalLMLoss(model), Collator(tokenizer.pad_token_id)
        with model.disable_adapter():
            base_ppl = perplexity(scorer_lm, general, collate)
        adapted_ppl = perplexity(scorer_lm, general, collate)
        if not (math.isnan(base_ppl) or math.isnan(adapted_ppl)):
            rows.append(MetricRow("general", "perplexity", round(base_ppl, 4), round(adapted_ppl, 4), role="general"))
    prompts: list[Any] = [[{"role": "user", "content": text}] for text in config.evaluation.samples]
    prompts = prompts or [record["prompt"] for record in run_data.heldout[: config.evaluation.num_samples]]
    samples = []
    for prompt in prompts:
        with model.disable_adapter():
            base_text = generate(model, tokenizer, prompt, config.evaluation.max_new_tokens)
        adapted_text = generate(model, tokenizer, prompt, config.evaluation.max_new_tokens)
        samples.append({"prompt": _prompt_shown(prompt), "base": base_text, "adapted": adapted_text})
    return EvalReport(rows=rows, samples=samples)
