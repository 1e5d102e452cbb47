"""The text plugin's ``evaluate``: perplexity base vs adapted, and generated samples.

Two sets are scored: the held-out domain split (the gain) and general text (the
forgetting check); with ``evaluation.qa``, a question-answer set too
(:mod:`polyadapt_text.qa_eval`). The base is scored through the same PEFT model with the
adapter disabled, so one copy of the weights serves both.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import torch

from polyadapt.lora import inference_device
from polyadapt.modalities.records import RunData
from polyadapt.pretrained import refusing_unsafe_pickles
from polyadapt.training.trainer import evaluate_loss
from polyadapt.types import AdapterArtifact, EvalReport, MetricRow, Run
from polyadapt_text.data import Collator, build_examples, encode_prompt
from polyadapt_text.loss import CausalLMLoss, summed_loss
from polyadapt_text.model import load_base

EVAL_BATCH = 8


def perplexity(scorer: CausalLMLoss, examples: list, collate: Collator) -> float:
    """exp(mean token loss) of ``scorer`` over ``examples``."""
    if not examples:
        return float("nan")
    dev = next(scorer.parameters()).device
    mean = evaluate_loss(scorer, examples, collate, summed_loss, EVAL_BATCH, dev, contextlib.nullcontext)
    return math.exp(min(mean, 50.0))


def sample_prompts(run: Run, heldout: list[dict[str, Any]]) -> list[list[dict[str, str]] | str]:
    """The prompts to generate from: the config's, else the first held-out records'."""
    config = run.config.evaluation
    if config.samples:
        return [[{"role": "user", "content": prompt}] for prompt in config.samples]
    prompts: list[list[dict[str, str]] | str] = []
    for record in heldout[: config.num_samples]:
        if "messages" in record:
            first_reply = next(i for i, m in enumerate(record["messages"]) if m["role"] == "assistant")
            prompts.append(record["messages"][:first_reply])
        else:
            words = record["text"].split()
            prompts.append(" ".join(words[: max(4, len(words) // 3)]))
    return prompts


@torch.no_grad()
def generate(model: Any, tokenizer: Any, prompt: list[dict[str, str]] | str, max_new_tokens: int) -> str:
    """Greedy continuation of ``prompt`` (a chat or plain text)."""
    input_ids = torch.tensor([encode_prompt(tokenizer, prompt)], device=inference_device())
    output = model.generate(
        input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids),
        max_new_tokens=max_new_tokens,
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id,
    )
    return tokenizer.decode(output[0, input_ids.shape[1] :], skip_special_tokens=True).strip()


def evaluate(run: Run, adapter: AdapterArtifact, run_data: RunData) -> EvalReport:
    """Score base and adapted on ``run_data``'s held-out domain and general text."""
    from peft import PeftModel

    config = run.config
    base, tokenizer = load_base(config.base_model)
    with refusing_unsafe_pickles(adapter.path, what="adapter"):
        model = PeftModel.from_pretrained(base, str(adapter.path)).to(inference_device()).eval()
    scorer = CausalLMLoss(model)
    collate = Collator(tokenizer.pad_token_id)
    length, packing = config.training.max_length, config.training.packing
    sets = {
        ("domain (held-out)", "domain"): build_examples(tokenizer, run_data.heldout, length, packing),
        ("general", "general"): build_examples(tokenizer, run_data.general, length, packing),
    }
    rows = []
    for (name, role), examples in sets.items():
        if not examples:
            continue
        with model.disable_adapter():
            base_ppl = perplexity(scorer, examples, collate)
        rows.append(
            MetricRow(
                name, "perplexity", round(base_ppl, 4), round(perplexity(scorer, examples, collate), 4), role=role
            )
        )
    samples = []
    for prompt in sample_prompts(run, run_data.heldout):
        with model.disable_adapter():
            base_text = generate(model, tokenizer, prompt, config.evaluation.max_new_tokens)
        adapted_text = generate(model, tokenizer, prompt, config.evaluation.max_new_tokens)
        shown = prompt[-1]["content"] if isinstance(prompt, list) else prompt
        samples.append({"prompt": shown, "base": base_text, "adapted": adapted_text})
    if config.evaluation.qa is not None:  # fine-tune, retrieve, or both? (polyadapt_text.qa_eval)
        from polyadapt_text.qa_eval import qa_evaluation

        rows += qa_evaluation(run, model, tokenizer, run_data)
    return EvalReport(rows=rows, samples=samples)
