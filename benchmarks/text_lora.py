#!/usr/bin/env python3
"""LoRA training throughput, memory and quality: polyadapt against plain PEFT + transformers.

Trains the same model on the same data, in one run, three ways, each in its own
subprocess (so peak memory is per variant):

  (a) polyadapt: its own code path, as ``polyadapt adapt`` runs it: ``load_base`` (dtype
      auto), ``attach_lora``, ``build_examples`` with packing, ``CausalLMLoss`` and the
      shared ``train()`` with precision auto;
  (b) plain: PEFT + transformers ``Trainer`` as most users run it: fp32, one tokenized
      record per row truncated to the sequence length, ``DataCollatorForLanguageModeling
      (mlm=False)`` padding each batch to its longest row;
  (c) expert: the same ``Trainer`` tuned: packed sequences (concatenate + EOS, cut into
      full rows, ``default_data_collator``) and bf16 autocast (``bf16=True``).

All variants share model, LoRA (r=8, alpha=16, dropout 0, q/k/v/o), optimizer steps,
learning rate and schedule (cosine, 5% warm-up, AdamW, clip 1.0), sequence length, batch
size, seed and threads. The first ``--warmup`` steps are not timed; tokens/s counts
non-padding tokens only (attention-mask sum). After training every variant computes the
mean token loss on the same packed held-out sequences with the same function
(``polyadapt_text.loss.CausalLMLoss``): once in fp32 (the compared figure; polyadapt's bf16
base is upcast for it) and once in the variant's own training precision.

Data: ``{"text": ...}`` records; chat and instruction records (the default
examples/insurance data) are rendered with the model's chat template into plain text, so
all three variants train on the same documents through polyadapt's text path.

It also measures the machine's matmul peak (bf16 and fp32, same device and threads) for
model FLOP utilisation, and the time to switch LoRA adapters against loading the base again.

On a CPU shared with other jobs give ``--threads`` no more than the idle cores: OpenMP
threads that have to share a core run many times slower and the figures mean nothing.

    python benchmarks/text_lora.py --tiny                       # smoke run, seconds
    python benchmarks/text_lora.py --model ~/.cache/polyadapt/gguf/SmolLM2-135M-...  --steps 20
    python benchmarks/text_lora.py --model SmolLM2-135M-Instruct.Q4_1.gguf --device cuda \\
        --steps 40 --peak-tflops 989 --json-out bench.json

The last line of the output, ``BENCH_JSON {...}``, holds every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import measure  # benchmarks/measure.py: the helpers every benchmark shares
from measure import combine, matmul_peak
from measure import fmt as _fmt
from measure import memory as _memory
from measure import reset_train_peak as _reset_train_peak
from measure import sync as _sync

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT / "examples" / "insurance" / "train.jsonl"
DEFAULT_EVAL = ROOT / "examples" / "insurance" / "eval.jsonl"
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]
LORA_R, LORA_ALPHA = 8, 16
VARIANTS = {
    "a": "polyadapt (defaults)",
    "b": "Trainer plain (fp32, padded)",
    "c": "Trainer expert (packed, bf16 autocast)",
}
#: The issue's goals for (a) on CPU: tokens/s over the plain and the tuned Trainer, peak
#: memory (the process's peak RSS on CPU, max_memory_allocated on CUDA) over the plain one.
GOAL_OVER_PLAIN, GOAL_OVER_EXPERT, GOAL_MEMORY_OVER_PLAIN = 2.5, 1.5, 0.8
FLOP_FORMULA = (
    "FLOPs/step = (4*N_frozen + 6*N_lora) * tokens + 12 * L * d_attn * sum(row_len^2); "
    "N_frozen = weights of the base's linear layers incl. lm_head (forward 2N + backward "
    "through activations 2N, no weight grads), N_lora = adapter weights (fwd 2 + bwd 4), "
    "attention QK^T and AV forward+backward per token 12*L*d_attn*row_len (PaLM convention, "
    "not halved for the causal mask); tokens = non-padding tokens"
)


# ---------------------------------------------------------------------------------------
# Shared helpers (parent and workers)
# ---------------------------------------------------------------------------------------


def _setup_worker(spec: dict[str, Any]) -> None:
    import torch

    torch.set_num_threads(spec["threads"])
    import transformers

    transformers.logging.set_verbosity_error()


def _model_shape(peft_model: Any) -> dict[str, int]:
    """What the FLOP formula needs: frozen linear weights, adapter weights, layers, d_attn."""
    import torch

    inner = peft_model.get_base_model()
    n_frozen = sum(
        m.weight.numel() for name, m in inner.named_modules() if isinstance(m, torch.nn.Linear) and "lora_" not in name
    )
    n_lora = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    config = inner.config
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return {
        "n_frozen_linear": int(n_frozen),
        "n_lora": int(n_lora),
        "layers": int(config.num_hidden_layers),
        "d_attn": int(heads * head_dim),
    }


def _flops(shape: dict[str, int], tokens: int, sum_len_sq: int) -> float:
    per_token = 4 * shape["n_frozen_linear"] + 6 * shape["n_lora"]
    return float(per_token * tokens + 12 * shape["layers"] * shape["d_attn"] * sum_len_sq)


class _Counting:
    """Wraps a collate function; records non-padding tokens and sum(row_len^2) per batch."""

    def __init__(self, collate):
        self.collate, self.tokens, self.len_sq, self.slots = collate, [], [], []

    def __call__(self, rows):
        batch = self.collate(rows)
        lengths = batch["attention_mask"].sum(dim=1)
        self.tokens.append(int(lengths.sum()))
        self.len_sq.append(int((lengths * lengths).sum()))
        self.slots.append(int(batch["attention_mask"].numel()))
        return batch

    def window(self, first: int, last: int) -> tuple[int, int]:
        """Tokens and sum of squared row lengths of batches ``first..last-1``."""
        return sum(self.tokens[first:last]), sum(self.len_sq[first:last])


def heldout_loss(peft_model: Any, examples: list[Any], pad_id: int, batch_size: int, dtype: str) -> float:
    """Mean token loss on ``examples`` with CausalLMLoss; ``dtype`` fp32 or bf16 (autocast)."""
    import torch
    from polyadapt_text.data import Collator
    from polyadapt_text.loss import CausalLMLoss

    device = next(peft_model.parameters()).device
    wrapper, collate = CausalLMLoss(peft_model), Collator(pad_id)
    was_training = peft_model.training
    peft_model.eval()
    total, items = 0.0, 0
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16"):
        for start in range(0, len(examples), batch_size):
            batch = collate(examples[start : start + batch_size])
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            total += float(wrapper(batch))
            items += int(batch["num_items"])
    peft_model.train(was_training)
    return total / max(items, 1)


def _eval_examples(tokenizer: Any, spec: dict[str, Any]) -> list[Any]:
    from polyadapt_text.data import build_examples

    examples = build_examples(tokenizer, spec["heldout"], spec["seq"], packing=True)
    return examples[: spec["eval_seqs"]]


def _finish(spec, variant, model, tokenizer, counter, t_first, t_last, shape, own_dtype, extra) -> dict:
    """Eval in the variant's precision, memory, then fp32 eval; the worker's result."""
    warmup, steps = spec["warmup"], spec["steps"]
    tokens, len_sq = counter.window(warmup, steps)
    timed = t_last - t_first
    eval_examples = _eval_examples(tokenizer, spec)
    eval_own = heldout_loss(model, eval_examples, tokenizer.pad_token_id, spec["batch"], own_dtype)
    memory = _memory(spec["device"])
    model.float()  # fp32 eval: the same arithmetic for every variant
    eval_fp32 = heldout_loss(model, eval_examples, tokenizer.pad_token_id, spec["batch"], "fp32")
    flops = _flops(shape, tokens, len_sq)
    all_tokens = sum(counter.tokens[:steps])
    return {
        "variant": variant,
        "name": VARIANTS[variant],
        "timed_steps": steps - warmup,
        "timed_s": round(timed, 4),
        "timed_tokens": tokens,
        "tokens_per_s": round(tokens / timed, 2) if timed > 0 else None,
        "model_tflops_per_s": round(flops / timed / 1e12, 5) if timed > 0 else None,
        "trained_tokens": all_tokens,
        "pad_fraction": round(1 - all_tokens / max(sum(counter.slots[:steps]), 1), 4),
        "eval_loss_fp32": round(eval_fp32, 5),
        "eval_loss_own": round(eval_own, 5),
        "own_precision": own_dtype,
        "eval_sequences": len(eval_examples),
        **memory,
        **shape,
        **extra,
    }


# ---------------------------------------------------------------------------------------
# Variant (a): polyadapt's own path
# ---------------------------------------------------------------------------------------


def worker_polyadapt(spec: dict[str, Any]) -> dict[str, Any]:
    import torch
    from polyadapt.config import BaseModelConfig, LoraConfig, TrainingConfig
    from polyadapt.training import TrainingJob, train
    from polyadapt.training.precision import resolve_precision
    from polyadapt_text.data import Collator, build_examples
    from polyadapt_text.loss import CausalLMLoss, summed_loss
    from polyadapt.lora import attach_lora
    from polyadapt_text.model import load_base

    started = time.perf_counter()
    base, tokenizer = load_base(BaseModelConfig(id=spec["source"], dtype="auto"))
    weights_dtype = str(next(base.parameters()).dtype).replace("torch.", "")
    torch.manual_seed(spec["seed"])
    model = attach_lora(base, LoraConfig(r=LORA_R, alpha=LORA_ALPHA, dropout=0.0), TARGETS, task_type="CAUSAL_LM")
    load_s = time.perf_counter() - started
    shape = _model_shape(model)
    training = TrainingConfig(
        max_steps=spec["steps"],
        learning_rate=spec["lr"],
        batch_size=spec["batch"],
        max_length=spec["seq"],
        packing=True,
        seed=spec["seed"],
        precision="auto",
        schedule="cosine",
        warmup_ratio=0.05,
        log_every=1,
        gradient_checkpointing=spec.get("gradient_checkpointing", "auto"),
    )
    train_examples = build_examples(tokenizer, spec["train"], training.max_length, training.packing)
    eval_examples = build_examples(tokenizer, spec["heldout"], training.max_length, training.packing)
    counter = _Counting(Collator(tokenizer.pad_token_id))
    job = TrainingJob(
        model=CausalLMLoss(model),
        train_data=train_examples,
        collate=counter,
        loss=summed_loss,
        eval_data=eval_examples[: spec["eval_seqs"]] or None,
    )
    run_dir = Path(spec["work"]) / "run_a"
    _reset_train_peak(spec["device"])
    result = train(job, training, run_dir, progress=False)
    _sync(spec["device"])
    # the log's elapsed_s is taken after each optimizer step (the trainer syncs every step)
    elapsed = {r["step"]: r["elapsed_s"] for r in result.log}
    t_first = elapsed[spec["warmup"]] if spec["warmup"] else 0.0
    t_last = elapsed[spec["steps"]]
    precision = resolve_precision("auto")
    extra = {
        "weights_dtype": weights_dtype,
        "train_rows": len(train_examples),
        "final_train_loss": result.train_loss,
        "trainer_eval_loss": result.eval_loss,
        "load_s": round(load_s, 3),
        "gradient_checkpointing": result.gradient_checkpointing,
    }
    own = "bf16" if precision == "bf16" else "fp32"
    # the adapter is saved for the switch-time measurement
    model.save_pretrained(Path(spec["work"]) / "adapter_a", safe_serialization=True)
    return _finish(spec, "a", model, tokenizer, counter, t_first, t_last, shape, own, extra)


# ---------------------------------------------------------------------------------------
# Variants (b) and (c): PEFT + transformers Trainer
# ---------------------------------------------------------------------------------------


def _list_dataset(rows):
    import torch

    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return len(rows)

        def __getitem__(self, index):
            return rows[index]

    return Rows()


def worker_trainer(spec: dict[str, Any], variant: str) -> dict[str, Any]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForLanguageModeling,
        Trainer,
        TrainerCallback,
        TrainingArguments,
        default_data_collator,
    )

    device, seq, expert = spec["device"], spec["seq"], variant == "c"
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(spec["source"])
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(spec["source"], dtype=torch.float32)
    torch.manual_seed(spec["seed"])
    model = get_peft_model(
        model,
        LoraConfig(
            r=LORA_R,
            lora_alpha=LORA_ALPHA,
            lora_dropout=0.0,
            target_modules=TARGETS,
            task_type="CAUSAL_LM",
        ),
    )
    load_s = time.perf_counter() - started
    shape = _model_shape(model)
    texts = [r["text"] for r in spec["train"]]
    if expert:  # run_clm's group_texts: concatenate (EOS between documents), cut full rows
        flat: list[int] = []
        for text in texts:
            flat += tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        rows = [
            {"input_ids": flat[i : i + seq], "attention_mask": [1] * seq, "labels": flat[i : i + seq]}
            for i in range(0, len(flat) - seq + 1, seq)
        ]
        collate = default_data_collator
    else:  # one record per row, truncated; the collator pads and masks pads in the labels
        rows = [dict(tokenizer(text, truncation=True, max_length=seq)) for text in texts]
        collate = DataCollatorForLanguageModeling(tokenizer, mlm=False)
    counter = _Counting(collate)
    warmup, steps = spec["warmup"], spec["steps"]
    times: dict[int, float] = {}

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step in (warmup, steps):
                _sync(device)
                times[state.global_step] = time.perf_counter()

        def on_train_begin(self, args, state, control, **kwargs):
            _sync(device)
            times[0] = time.perf_counter()

    args = TrainingArguments(
        output_dir=str(Path(spec["work"]) / f"run_{variant}"),
        max_steps=steps,
        per_device_train_batch_size=spec["batch"],
        learning_rate=spec["lr"],
        lr_scheduler_type="cosine",
        warmup_steps=int(0.05 * steps),
        weight_decay=0.0,
        max_grad_norm=1.0,
        bf16=expert,
        use_cpu=device == "cpu",
        save_strategy="no",
        logging_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=spec["seed"],
        dataloader_num_workers=0,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=_list_dataset(rows),
        data_collator=counter,
        callbacks=[Clock()],
    )
    _reset_train_peak(device)
    output = trainer.train()
    extra = {
        "weights_dtype": "float32",
        "train_rows": len(rows),
        "final_train_loss": output.training_loss,
        "load_s": round(load_s, 3),
    }
    own = "bf16" if expert else "fp32"
    model = trainer.model
    return _finish(spec, variant, model, tokenizer, counter, times[warmup], times[steps], shape, own, extra)


# ---------------------------------------------------------------------------------------
# Machine peak and adapter switching
# ---------------------------------------------------------------------------------------


def worker_peak(spec: dict[str, Any]) -> dict[str, Any]:
    """Best measured dense matmul throughput (TFLOP/s) in bf16 and fp32."""
    return matmul_peak(spec["device"], spec["peak_seconds"])


def worker_switch(spec: dict[str, Any]) -> dict[str, Any]:
    """Adapter switch time against loading the base model again from disk."""
    import gc

    import torch
    from peft import PeftModel
    from polyadapt.config import BaseModelConfig, LoraConfig
    from polyadapt.lora import attach_lora
    from polyadapt_text.model import load_base

    device = spec["device"]
    config = BaseModelConfig(id=spec["source"], dtype="auto")
    work = Path(spec["work"])
    adapters = []
    # Two saved adapters: polyadapt's trained one (when variant a ran) and fresh ones.
    for index in range(2):
        path = work / f"switch_adapter_{index}"
        if index == 0 and (work / "adapter_a").is_dir():
            path = work / "adapter_a"
        else:
            base, _ = load_base(config)
            torch.manual_seed(index)
            model = attach_lora(base, LoraConfig(r=LORA_R, alpha=LORA_ALPHA), TARGETS, task_type="CAUSAL_LM")
            with torch.no_grad():
                for name, param in model.named_parameters():
                    if "lora_B" in name:
                        param.normal_(0, 0.01)
            model.save_pretrained(path, safe_serialization=True)
            del model, base
            gc.collect()
        adapters.append(path)

    def load_once() -> tuple[Any, float]:
        _sync(device)
        t0 = time.perf_counter()
        model, _ = load_base(config)
        model = model.to(device)
        _sync(device)
        return model, time.perf_counter() - t0

    base_times = []
    for _ in range(spec["switch_reps"]):
        model, seconds = load_once()
        base_times.append(seconds)
        del model
        gc.collect()
    base, _ = load_once()
    peft_model = PeftModel.from_pretrained(base, str(adapters[0]), adapter_name="one")
    peft_model.to(device)

    load_times = []
    for _ in range(spec["switch_reps"]):
        _sync(device)
        t0 = time.perf_counter()
        peft_model.load_adapter(str(adapters[1]), adapter_name="two")
        peft_model.set_adapter("two")
        _sync(device)
        load_times.append(time.perf_counter() - t0)
        peft_model.set_adapter("one")
        peft_model.delete_adapter("two")
    fast_times = []  # low_cpu_mem_usage: the new LoRA weights are made empty, not randomly initialised
    for _ in range(spec["switch_reps"]):
        _sync(device)
        t0 = time.perf_counter()
        peft_model.load_adapter(str(adapters[1]), adapter_name="two", low_cpu_mem_usage=True)
        peft_model.set_adapter("two")
        _sync(device)
        fast_times.append(time.perf_counter() - t0)
        peft_model.set_adapter("one")
        peft_model.delete_adapter("two")
    hotswap_times = []  # peft's hotswap_adapter: the new weights copied into adapter "one" in place
    try:
        from peft.utils.hotswap import hotswap_adapter

        for i in range(spec["switch_reps"]):
            _sync(device)
            t0 = time.perf_counter()
            hotswap_adapter(peft_model, str(adapters[(i + 1) % 2]), adapter_name="one", torch_device=device)
            _sync(device)
            hotswap_times.append(time.perf_counter() - t0)
        if spec["switch_reps"] % 2:  # back to the first adapter's weights
            hotswap_adapter(peft_model, str(adapters[0]), adapter_name="one", torch_device=device)
    except (ImportError, ValueError, RuntimeError) as exc:
        print(f"hotswap_adapter not timed: {exc}", file=sys.stderr)
    peft_model.load_adapter(str(adapters[1]), adapter_name="two")
    set_times = []
    for i in range(20):
        _sync(device)
        t0 = time.perf_counter()
        peft_model.set_adapter("one" if i % 2 else "two")
        _sync(device)
        set_times.append(time.perf_counter() - t0)
    return {
        "base_load_s": round(statistics.median(base_times), 4),
        "adapter_load_and_set_s": round(statistics.median(load_times), 5),
        "adapter_load_low_mem_and_set_s": round(statistics.median(fast_times), 5),
        "set_adapter_s": round(statistics.median(set_times), 7),
        "hotswap_adapter_s": round(statistics.median(hotswap_times), 5) if hotswap_times else None,
        "reps": spec["switch_reps"],
    }


# ---------------------------------------------------------------------------------------
# Parent: data, model, subprocesses, report
# ---------------------------------------------------------------------------------------

_PEOPLE = ["Ms Alvarez", "Mr Okafor", "the policyholder", "the insured", "Dr Lindqvist", "the tenant"]
_PERILS = ["storm damage", "a burst pipe", "theft of a bicycle", "a kitchen fire", "hail", "subsidence"]
_PRODUCTS = ["home contents policy", "buildings cover", "Solvanta rider", "travel policy", "motor policy"]
_CLAUSES = [
    "The deductible of {n} EUR applies per claim and is subtracted before any payment.",
    "Under the {p}, {who} reported {peril} on {d} March and asked for an adjuster.",
    "The underwriter reviewed the premium of {n} EUR and the coverage limit of {m} EUR.",
    "Claims for {peril} must be filed within {d} days, with photos and receipts attached.",
    "{who} disputed the loss adjuster's estimate, which valued the damage at {m} EUR.",
    "Exclusions: wear and tear, gradual deterioration and losses caused on purpose.",
    "The {p} renews automatically unless cancelled {d} days before the end of the term.",
    "A no-claims discount of {d} percent was applied to the renewal premium.",
    "After {peril}, the insurer paid {m} EUR less the deductible to {who}.",
    "Subrogation lets the insurer recover the {m} EUR it paid from the liable third party.",
]


def synthetic_records(count: int = 600, seed: int = 0) -> list[dict[str, str]]:
    """Insurance-domain documents of varied length (1 to 12 sentences)."""
    rng = random.Random(seed)
    records = []
    for _ in range(count):
        sentences = []
        for _ in range(rng.choice([1, 1, 2, 3, 4, 6, 8, 12])):
            sentences.append(
                rng.choice(_CLAUSES).format(
                    n=rng.randint(100, 900),
                    m=rng.randint(1000, 90000),
                    d=rng.randint(2, 60),
                    p=rng.choice(_PRODUCTS),
                    who=rng.choice(_PEOPLE),
                    peril=rng.choice(_PERILS),
                )
            )
        text = " ".join(sentences)
        records.append({"text": text[0].upper() + text[1:]})
    return records


def _read_records(path: Path, tokenizer: Any) -> list[dict[str, str]]:
    """Plain-text documents of ``path``; chat and instruction records are rendered with the
    tokenizer's chat template, so every variant trains on the same text documents."""
    from polyadapt.modalities.text import load_text_dataset
    from polyadapt_text.data import render_chat

    records = load_text_dataset(Path(path)).records
    return [r if "text" in r else {"text": render_chat(tokenizer, r["messages"])} for r in records]


def load_records(args, source: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """(train, held-out, description): the data file (and its eval file) or synthetic text."""
    from polyadapt.modalities.records import split_holdout

    path = args.data or (DEFAULT_DATA if DEFAULT_DATA.is_file() else None)
    eval_path = args.eval_data
    if path is None:
        records, label = synthetic_records(), "synthetic insurance sentences (600 records)"
    else:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(source)
        records = _read_records(path, tokenizer)
        label = f"{path} ({len(records)} records)"
        if eval_path is None and args.data is None and DEFAULT_EVAL.is_file():
            eval_path = DEFAULT_EVAL
        if eval_path is not None:
            heldout = _read_records(eval_path, tokenizer)
            return records, heldout, f"{label}; held-out {eval_path}"
    train, heldout = split_holdout(records, 0.1, args.seed)
    return train, heldout, f"{label}; held-out: 10% split"


def resolve_model(args, work: Path) -> str:
    if args.tiny:
        sys.path.insert(0, str(ROOT / "tests"))
        from tiny_models import build_tiny_llama

        return str(build_tiny_llama(work / "tiny_llama", hidden=args.tiny_hidden, layers=args.tiny_layers))
    if args.model is None:
        sys.exit("error: give --model PATH (a folder with config + safetensors, or a .gguf) or --tiny")
    from polyadapt.config import BaseModelConfig
    from polyadapt_text.model import model_source

    path = Path(args.model).expanduser()
    config = BaseModelConfig(id=str(path), gguf_file=str(path) if path.suffix == ".gguf" else None)
    source = model_source(config)  # a GGUF file is converted (once, cached) here, untimed
    if args.random_init:
        source = str(random_model(Path(source), work / "random_model", args.seed))
    return source


def random_model(source: Path, target: Path, seed: int) -> Path:
    """The architecture and tokenizer of ``source`` with random weights, saved to ``target``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(source), dtype=torch.float32)
    model.save_pretrained(target, safe_serialization=True)
    AutoTokenizer.from_pretrained(source).save_pretrained(target)
    return target


def run_worker(kind: str, spec_path: Path, work: Path, spec: dict[str, Any], timeout: int) -> dict[str, Any]:
    return measure.run_worker(__file__, kind, spec_path, work, spec, timeout)


def _combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One variant's figures over its repeats: the run of median tokens/s, the highest peaks."""
    return combine(runs, "tokens_per_s")


def report(spec, results, peak, switch, args) -> dict[str, Any]:
    threads = spec["threads"] if spec["device"] == "cpu" else "-"
    print()
    print(f"model   {spec['model_label']}")
    print(f"data    {spec['data_label']} ({len(spec['train'])} train / {len(spec['heldout'])} held-out records)")
    print(
        f"setup   device={spec['device']} threads={threads} seq={spec['seq']} batch={spec['batch']} "
        f"steps={spec['steps']} (first {spec['warmup']} untimed) lr={spec['lr']} "
        f"LoRA r={LORA_R} alpha={LORA_ALPHA} on {','.join(TARGETS)}"
    )
    print(
        f"peak    measured matmul: bf16 {peak['peak_bf16_tflops']:.3f} TFLOP/s, "
        f"fp32 {peak['peak_fp32_tflops']:.3f} TFLOP/s"
        + (f"; nominal {args.peak_tflops} TFLOP/s" if args.peak_tflops else "")
    )
    any_result = next(iter(results.values()))
    print(
        f"FLOPs   N_frozen={any_result['n_frozen_linear']:,} N_lora={any_result['n_lora']:,} "
        f"L={any_result['layers']} d_attn={any_result['d_attn']}"
    )
    print(f"        {FLOP_FORMULA}")
    print(
        "memory  peak = process peak (CPU: ru_maxrss incl. loading; CUDA: max_memory_allocated); "
        "train = peak since training started"
    )
    print(
        "MFU     model FLOP/s over the measured bf16 matmul peak (the machine's), and over the peak "
        "of the variant's own precision (fp32 for (b))"
    )
    print(
        "eval    mean token loss on the same packed held-out sequences with CausalLMLoss, in fp32 "
        "(own = in the variant's training precision)"
    )
    print()
    header = (
        f"{'variant':<42} | {'tok/s':>9} | {'peak GB':>7} | {'train GB':>8} | {'eval fp32':>9} | "
        f"{'eval own':>13} | {'MFU% bf16pk':>11} | {'MFU% own pk':>11}"
        + (f" | {'MFU% nominal':>12}" if args.peak_tflops else "")
        + f" | {'vs (b)':>6} | {'vs (c)':>6}"
    )
    print(header)
    print("-" * len(header))
    summary: dict[str, Any] = {}
    for key in ("a", "b", "c"):
        if key not in results:
            continue
        r = results[key]
        tflops = r["model_tflops_per_s"] or 0.0
        r["mfu_pct_bf16_peak"] = round(100 * tflops / peak["peak_bf16_tflops"], 3)
        r["mfu_pct_fp32_peak"] = round(100 * tflops / peak["peak_fp32_tflops"], 3)
        r["mfu_pct_own_peak"] = r["mfu_pct_bf16_peak"] if r["own_precision"] == "bf16" else r["mfu_pct_fp32_peak"]
        if args.peak_tflops:
            r["mfu_pct_nominal"] = round(100 * tflops / args.peak_tflops, 3)
        vs = {}
        for ref in ("b", "c"):
            if ref in results and results[ref]["tokens_per_s"] and r["tokens_per_s"]:
                vs[ref] = r["tokens_per_s"] / results[ref]["tokens_per_s"]
        row = (
            f"({key}) {r['name']:<38} | {_fmt(r['tokens_per_s'], '9.1f')} | {_fmt(r['peak_gb'], '7.3f')} | "
            f"{_fmt(r['train_peak_gb'], '8.3f')} | {r['eval_loss_fp32']:9.4f} | "
            f"{r['eval_loss_own']:7.4f} {r['own_precision']:>5} | {r['mfu_pct_bf16_peak']:11.2f} | "
            f"{r['mfu_pct_own_peak']:11.2f}"
            + (f" | {r['mfu_pct_nominal']:12.3f}" if args.peak_tflops else "")
            + f" | {_fmt(vs.get('b'), '5.2f')}x | {_fmt(vs.get('c'), '5.2f')}x"
        )
        print(row)
    print()
    for key, r in results.items():
        repeats = r["repeats_tokens_per_s"]
        if len(repeats) > 1:
            print(f"({key}) tok/s over {len(repeats)} repeats: {', '.join(f'{x:.1f}' for x in repeats)} (median shown)")
    for key, r in results.items():
        print(
            f"({key}) weights {r['weights_dtype']}, {r['train_rows']} training rows, "
            f"{r['timed_tokens']} tokens in {r['timed_s']:.2f} s timed, final train loss "
            f"{_fmt(r.get('final_train_loss'), '.4f')}, load {r['load_s']:.1f} s"
        )
    if "a" in results:
        a = results["a"]
        print()
        print(
            "goals for (a), polyadapt's defaults:"
            + (" (--tiny: overhead-dominated smoke run; the goals are for real models)" if args.tiny else "")
        )
        checks = []
        for ref, target in (("b", GOAL_OVER_PLAIN), ("c", GOAL_OVER_EXPERT)):
            if ref in results:
                ratio = a["tokens_per_s"] / results[ref]["tokens_per_s"]
                summary[f"a_over_{ref}_tokens_per_s"] = round(ratio, 3)
                checks.append((f"tokens/s a/{ref} = {ratio:.2f}x (goal >= {target}x)", ratio >= target))
                # Both count the same FLOPs per real token, so the goal needs (a) to run at target x
                # the peer's FLOP rate; above 100% of (a)'s measured matmul peak it cannot be met here.
                own_peak = peak["peak_bf16_tflops"] if a["own_precision"] == "bf16" else peak["peak_fp32_tflops"]
                needed = 100 * target * results[ref]["model_tflops_per_s"] / own_peak
                summary[f"a_mfu_needed_over_{ref}_pct"] = round(needed, 1)
                print(
                    f"  {target}x ({ref})'s tokens/s needs (a) at {needed:.0f}% of the measured "
                    f"{a['own_precision']} matmul peak (it reached {a['mfu_pct_own_peak']:.0f}%)"
                    + ("; above 100%: out of reach on this machine" if needed > 100 else "")
                )
        if "b" in results:
            b = results["b"]
            summary["a_over_b_peak_memory"] = round(a["peak_gb"] / b["peak_gb"], 3)
            checks.append(
                (
                    f"peak memory a/b = {a['peak_gb']:.3f}/{b['peak_gb']:.3f} GB = {a['peak_gb'] / b['peak_gb']:.2f}x "
                    f"(goal <= {GOAL_MEMORY_OVER_PLAIN}x)",
                    a["peak_gb"] <= GOAL_MEMORY_OVER_PLAIN * b["peak_gb"],
                )
            )
        for ref in ("b", "c"):
            if ref in results:
                delta = a["eval_loss_fp32"] - results[ref]["eval_loss_fp32"]
                summary[f"a_minus_{ref}_eval_loss"] = round(delta, 5)
                checks.append((f"eval loss a-{ref} = {delta:+.4f} (goal <= 0, 0.01 tolerance)", delta <= 0.01))
        for text, ok in checks:
            print(f"  [{'ok' if ok else 'MISS'}] {text}")
        # met only when every goal could be checked (all three variants ran)
        summary["goals_met"] = all(ok for _, ok in checks) if {"b", "c"} <= results.keys() else None
    if switch:
        print()
        ratio = switch["base_load_s"] / max(switch["adapter_load_and_set_s"], 1e-9)
        summary["base_load_over_adapter_load"] = round(ratio, 1)
        print(f"adapter switch, median of {switch['reps']} (base loaded, adapters saved on disk):")
        print(f"  PeftModel.load_adapter + set_adapter         {1000 * switch['adapter_load_and_set_s']:9.1f} ms")
        print(
            f"  the same with low_cpu_mem_usage=True         {1000 * switch['adapter_load_low_mem_and_set_s']:9.1f} ms"
        )
        if switch.get("hotswap_adapter_s") is not None:
            print(f"  peft hotswap_adapter (weights copied in place) {1000 * switch['hotswap_adapter_s']:7.1f} ms")
        print(f"  set_adapter, both adapters loaded            {1000 * switch['set_adapter_s']:9.2f} ms")
        print(
            f"  loading the base model again (load_base)     {1000 * switch['base_load_s']:9.1f} ms "
            f"= {ratio:.1f}x load_adapter + set_adapter"
        )
    payload = {
        "setup": {
            k: spec[k]
            for k in ("model_label", "data_label", "device", "threads", "seq", "batch", "steps", "warmup", "lr", "seed")
        }
        | {
            "lora": {"r": LORA_R, "alpha": LORA_ALPHA, "targets": TARGETS},
            "flop_formula": FLOP_FORMULA,
            "nominal_peak_tflops": args.peak_tflops,
        },
        "peak": peak,
        "variants": results,
        "switch": switch,
        "summary": summary,
    }
    return payload


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="folder with config.json + safetensors, or a .gguf file")
    parser.add_argument("--tiny", action="store_true", help="a tiny random Llama (smoke run)")
    parser.add_argument(
        "--random-init",
        action="store_true",
        help="use --model's config and tokenizer with random weights (where the weights "
        "are not at hand: speed and memory are the same; eval losses are not meaningful)",
    )
    parser.add_argument("--tiny-hidden", type=int, default=64)
    parser.add_argument("--tiny-layers", type=int, default=2)
    parser.add_argument(
        "--data",
        type=Path,
        help=f"jsonl of {{'text': ...}} records (chat records are "
        f"rendered with the chat template); default {DEFAULT_DATA} when present, else "
        "synthetic insurance sentences",
    )
    parser.add_argument(
        "--eval-data",
        type=Path,
        help="held-out records (default: the data's eval.jsonl for the default data, else a 10%% split of --data)",
    )
    parser.add_argument("--steps", type=int, default=12, help="optimizer steps per variant")
    parser.add_argument("--warmup", type=int, default=2, help="first steps left out of the timing")
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (CPU)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--variants", default="bca", help="which variants, in run order (default bca)")
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="run each variant this many times, interleaved; report the median tokens/s",
    )
    parser.add_argument("--eval-seqs", type=int, default=16, help="held-out packed sequences to evaluate")
    parser.add_argument("--no-switch", action="store_true", help="skip the adapter switch timing")
    parser.add_argument(
        "--gradient-checkpointing",
        choices=["auto", "true", "false"],
        default="auto",
        help="training.gradient_checkpointing for (a) (auto: polyadapt's rule, off at these sizes on CPU)",
    )
    parser.add_argument("--switch-reps", type=int, default=3)
    measure.add_run_arguments(parser)
    return parser.parse_args(argv)


def worker_main(args) -> None:
    spec = json.loads(args.spec.read_text())
    _setup_worker(spec)
    if spec["device"] == "cuda":
        import torch

        if not torch.cuda.is_available():
            sys.exit("error: --device cuda but torch sees no CUDA device")
    kind = args.worker
    if kind == "a":
        result = worker_polyadapt(spec)
    elif kind in ("b", "c"):
        result = worker_trainer(spec, kind)
    elif kind == "peak":
        result = worker_peak(spec)
    elif kind == "switch":
        result = worker_switch(spec)
    else:
        sys.exit(f"unknown worker {kind}")
    args.out.write_text(json.dumps(result))


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker_main(args)
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if not 0 <= args.warmup < args.steps:
        sys.exit("error: need 0 <= --warmup < --steps")
    if args.repeats < 1:
        sys.exit("error: --repeats must be at least 1")
    variants = [v for v in args.variants if v in VARIANTS]
    if not variants:
        sys.exit("error: --variants must name some of a, b, c")
    holder = None
    if args.work_dir:
        work = args.work_dir.resolve()
        work.mkdir(parents=True, exist_ok=True)
    else:
        holder = tempfile.TemporaryDirectory(prefix="polyadapt-bench-")
        work = Path(holder.name)
    try:
        source = resolve_model(args, work)
        train_records, heldout, data_label = load_records(args, source)
        spec = {
            "source": source,
            "model_label": "tiny random Llama (tests/tiny_models.py)"
            if args.tiny
            else f"{args.model}{' (random weights)' if args.random_init else ''}",
            "data_label": data_label,
            "train": train_records,
            "heldout": heldout,
            "device": args.device,
            "threads": args.threads,
            "seq": args.seq,
            "batch": args.batch,
            "steps": args.steps,
            "warmup": args.warmup,
            "lr": args.lr,
            "seed": args.seed,
            "eval_seqs": args.eval_seqs,
            "peak_seconds": args.peak_seconds,
            "switch_reps": args.switch_reps,
            "gradient_checkpointing": {"true": True, "false": False}.get(
                args.gradient_checkpointing, args.gradient_checkpointing
            ),
            "work": str(work),
        }
        spec_path = work / "spec.json"
        spec_path.write_text(json.dumps(spec))
        print(f"work dir {work}; model source {source}", file=sys.stderr)
        peak = run_worker("peak", spec_path, work, spec, args.timeout)
        print(f"  matmul peak: {peak}", file=sys.stderr)
        runs: dict[str, list[dict[str, Any]]] = {key: [] for key in variants}
        for repeat in range(args.repeats):  # interleaved, so a change in background load hits all
            for key in variants:
                r = run_worker(key, spec_path, work, spec, args.timeout)
                runs[key].append(r)
                print(
                    f"  ({key}) run {repeat + 1}/{args.repeats}: {r['tokens_per_s']} tok/s, peak {r['peak_gb']} GB, "
                    f"eval {r['eval_loss_fp32']} [{r['subprocess_s']} s]",
                    file=sys.stderr,
                )
        results = {key: _combine(runs[key]) for key in variants}
        switch = None if args.no_switch else run_worker("switch", spec_path, work, spec, args.timeout)
        payload = report(spec, results, peak, switch, args)
        line = json.dumps(payload, sort_keys=True)
        if args.json_out:
            args.json_out.write_text(line + "\n")
        print()
        print("BENCH_JSON " + line)
    finally:
        if holder is not None:
            holder.cleanup()


if __name__ == "__main__":
    main()
