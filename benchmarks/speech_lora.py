#!/usr/bin/env python3
"""Whisper LoRA training speed and memory: polyadapt against a plain peft loop.

Trains the same Whisper on the same clips and batches, in one run, two ways, each in its
own subprocess (so peak memory is per variant):

  (a) polyadapt: its own code path, as ``polyadapt adapt`` runs it: ``load_whisper``,
      ``attach_lora`` (encoder + decoder attention), ``build_examples`` (log-mel +
      start-of-transcript tokens), ``WhisperLoss`` and the shared ``train()``;
  (b) plain: openai-whisper + peft as most users write it: ``whisper.load_model``,
      ``get_peft_model`` on ``query/key/value/out``, a hand-written loop (AdamW, cosine
      schedule with warm-up, clip 1.0, mean token cross-entropy after the prompt).

Both: LoRA r=8, alpha=16, dropout 0, the same steps, batch size, learning rate, seed,
threads, precision (``--precision``: fp32, or bf16 autocast for both; polyadapt's
``precision: auto`` picks bf16 on CUDA and on CPUs with AMX/AVX512-BF16, where tiny.en's
steps measured 1.5x faster than fp32; a tiny random model's, bound by op count, slower) and
the same batches: polyadapt's examples are laid out so that its trainer's shuffle deals the
plain loop's batches, step for step (batches of its own have other padded lengths: other
work, and in bf16 new oneDNN kernels for every length not seen before). One difference is
left, glibc's: the trainer lets go of a step's tensors when the step ends, glibc trims the
freed top of the heap and the next step faults it back in (tiny.en, batch 8: ~50k page
faults, 1-2% of a step), while the plain loop's last ``logits`` stay alive into the next
step and pin the heap; ``MALLOC_TRIM_THRESHOLD_=1073741824 MALLOC_MMAP_THRESHOLD_=33554432``
in the environment stops the trimming. Steps are timed from the
start of one step's forward pass to the next one's (steps/s over the steps after
``--warmup``; so the trainer's set-up and its closing work, logs and loss plot, are left out); peak memory is the process' resident
high-water mark during training (CPU; the allocator's peak on CUDA). The last line,
``BENCH_JSON {...}``, holds every figure.

The figures are only as good as the machine is quiet: with more OpenMP threads than idle
cores every small kernel waits on a descheduled thread (measured: tiny model 2.6 s a step
at 2 threads on a busy 2-core box, 0.12 s at 1), and a load change between the two
variants' runs moved the ratio from 1.0 to 0.54. ``--repeats N`` runs the variants interleaved
(a b, b a, ...) and shows each one's median run; use ``--threads`` at most the idle cores.

    python benchmarks/speech_lora.py --tiny                          # smoke run, seconds
    python benchmarks/speech_lora.py --model ~/.cache/polyadapt/models/whisper-tiny.en-ct2 \\
        --data examples/speech/data/train --steps 6 --batch 8           # the real tiny.en

``--model`` is anything ``base_model.id`` takes (a whisper .pt, a CTranslate2 folder:
converted once, untimed, before the workers start). ``--data`` is an audio folder (default:
tones labelled with insurance sentences, enough to time a step).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import measure  # benchmarks/measure.py: the helpers every benchmark shares  # noqa: E402
from measure import memory, reset_train_peak  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = {"a": "polyadapt (attach_lora + shared trainer)", "b": "plain peft loop"}
LORA_R, LORA_ALPHA = 8, 16


def _records(spec: dict[str, Any]) -> list[dict[str, Any]]:
    from polyadapt.modalities.audio import load_audio_dataset

    return load_audio_dataset(Path(spec["data"])).records


def _order(spec: dict[str, Any], count: int) -> list[list[int]]:
    """The clip indices of every step (the same for both variants)."""
    import random

    rng = random.Random(spec["seed"])
    return [[rng.randrange(count) for _ in range(spec["batch"])] for _ in range(spec["steps"])]


def _dealt_as_plain(spec: dict[str, Any], examples: list[Any]) -> list[Any]:
    """``examples`` drawn as :func:`_order` draws them, placed where the trainer's epoch-0
    shuffle picks them: its batch ``k`` is then the plain loop's step ``k``."""
    from polyadapt.training.trainer import _Batches

    draws = [examples[i] for step in _order(spec, len(examples)) for i in step]
    shuffle = [i for batch in _Batches(len(draws), spec["batch"], spec["seed"], 0, 1).epoch_batches(0) for i in batch]
    laid_out: list[Any] = [None] * len(draws)
    for position, index in enumerate(shuffle):
        laid_out[index] = draws[position]
    return laid_out


def worker_polyadapt(spec: dict[str, Any]) -> dict[str, Any]:
    import torch
    from polyadapt.config import BaseModelConfig, LoraConfig, TrainingConfig
    from polyadapt.training import TrainingJob, train
    from polyadapt_speech.data import WhisperLoss, build_examples, collate, summed_loss
    from polyadapt.lora import attach_lora
    from polyadapt_speech.model import load_whisper, lora_target_pattern
    from polyadapt_speech.options import SpeechOptions

    torch.manual_seed(spec["seed"])  # as `polyadapt adapt` does; the same LoRA init as the plain loop's
    base = load_whisper(BaseModelConfig(id=spec["model"]))
    lora = LoraConfig(r=LORA_R, alpha=LORA_ALPHA, dropout=0.0)
    model = attach_lora(base, lora, lora_target_pattern(lora, "both"))
    records = _records(spec)
    examples = build_examples(base, records, SpeechOptions(language="en"))
    ordered = _dealt_as_plain(spec, examples)
    stamps: list[float] = []
    losses: list[tuple[torch.Tensor, torch.Tensor]] = []  # (summed loss, target tokens) per step
    widths: list[int] = []

    class Timed(WhisperLoss):
        def forward(self, mel, tokens, labels):
            stamps.append(time.perf_counter())
            loss = super().forward(mel, tokens, labels)
            losses.append((loss.detach(), (labels != -100).sum()))
            widths.append(tokens.shape[1])
            return loss

    job = TrainingJob(model=Timed(model), train_data=ordered, collate=collate, loss=summed_loss)
    config = TrainingConfig(
        max_steps=spec["steps"],
        batch_size=spec["batch"],
        learning_rate=spec["lr"],
        warmup_ratio=0.1,
        precision=spec["precision"],
        seed=spec["seed"],
        log_every=10**6,
    )
    reset_train_peak(spec["device"])
    with tempfile.TemporaryDirectory() as run_dir:
        start = time.perf_counter()
        train(job, config, Path(run_dir), progress=False)
        end = time.perf_counter()
    expected = [[examples[i] for i in step] for step in _order(spec, len(examples))]  # the plain loop's batches
    if widths != [max(len(e["tokens"]) for e in b) - 1 for b in expected] or [int(n) for _, n in losses] != [
        sum(len(e["tokens"]) - e["prefix"] for e in b) for b in expected
    ]:
        raise SystemExit("error: polyadapt's trainer did not train the plain loop's batches")
    # the mean of the steps' mean token losses, as the plain loop reports (TrainingResult.train_loss is the last step's)
    train_loss = sum(float(s) / max(int(n), 1) for s, n in losses) / len(losses)
    return {
        "stamps": stamps,
        "train_loss": train_loss,
        "peak_gb": memory(spec["device"])["train_peak_gb"],
        "wall_s": round(end - start, 2),
    }


def worker_plain(spec: dict[str, Any]) -> dict[str, Any]:
    import math

    import torch
    import torch.nn.functional as F
    import whisper
    from peft import LoraConfig, get_peft_model
    from polyadapt.modalities.audio import load_waveform

    torch.manual_seed(spec["seed"])
    device = spec["device"]
    from polyadapt.config import BaseModelConfig
    from polyadapt_speech.model import checkpoint_path

    model = whisper.load_model(checkpoint_path(BaseModelConfig(id=spec["model"])), device=device).float()
    model = get_peft_model(
        model,
        LoraConfig(r=LORA_R, lora_alpha=LORA_ALPHA, lora_dropout=0.0, target_modules=["query", "key", "value", "out"]),
    )
    tokenizer = whisper.tokenizer.get_tokenizer(
        model.is_multilingual, num_languages=model.num_languages, language="en", task="transcribe"
    )
    prompt = list(tokenizer.sot_sequence_including_notimestamps)
    clips = []
    for record in _records(spec):
        samples = whisper.pad_or_trim(torch.as_tensor(load_waveform(record)), model.dims.n_audio_ctx * 2 * 160)
        mel = whisper.log_mel_spectrogram(samples, model.dims.n_mels)
        clips.append((mel, prompt + tokenizer.encode(" " + record["text"].strip()) + [tokenizer.eot]))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=spec["lr"], weight_decay=0.0)
    warm = max(1, int(0.1 * spec["steps"]))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: (
            (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, spec["steps"] - warm)))
        ),
    )
    model.train()
    autocast = torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=spec["precision"] == "bf16")
    stamps, losses = [], []
    reset_train_peak(device)
    start = time.perf_counter()
    for step in _order(spec, len(clips)):
        stamps.append(time.perf_counter())
        batch = [clips[i] for i in step]
        mels = torch.stack([m for m, _ in batch]).to(device)
        length = max(len(t) for _, t in batch)
        tokens = torch.full((len(batch), length), tokenizer.eot, dtype=torch.long)
        labels = torch.full((len(batch), length), -100, dtype=torch.long)
        for row, (_, seq) in enumerate(batch):
            tokens[row, : len(seq)] = torch.tensor(seq)
            labels[row, len(prompt) - 1 : len(seq) - 1] = torch.tensor(seq[len(prompt) :])
        with autocast:
            logits = model(mels, tokens[:, :-1].to(device))
            loss = F.cross_entropy(logits.flatten(0, 1).float(), labels[:, :-1].flatten().to(device), ignore_index=-100)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    end = time.perf_counter()
    return {
        "stamps": stamps,
        "train_loss": sum(losses) / len(losses),
        "peak_gb": memory(device)["train_peak_gb"],
        "wall_s": round(end - start, 2),
    }


def timed_worker(kind: str, spec_path: Path, work: Path, spec: dict[str, Any], timeout: int) -> dict[str, Any]:
    """One variant in its own process (:func:`measure.run_worker`), with its steps/s."""
    data = measure.run_worker(__file__, kind, spec_path, work, spec, timeout)
    steps = data.pop("stamps")
    warm = spec["warmup"]
    timed = steps[-1] - steps[warm] if len(steps) > warm + 1 else 0.0
    data["steps_per_s"] = round((len(steps) - 1 - warm) / timed, 4) if timed > 0 else None
    return data


def make_tiny(work: Path) -> tuple[str, str]:
    """A tiny random whisper and an audio folder of tones with insurance transcripts."""
    sys.path.insert(0, str(ROOT / "tests"))
    from polyadapt_speech.testing import build_tiny_whisper
    from speech_helpers import audio_folder, sentences

    return (
        str(build_tiny_whisper(work / "tiny-whisper.pt")),
        str(audio_folder(work / "clips", sentences(16, 1), seconds=2.0)),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="a tiny random whisper and tones (smoke run)")
    parser.add_argument("--model", help="whisper .pt, CTranslate2 folder or whisper name")
    parser.add_argument("--data", help="audio folder (metadata + clips); default: tones")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=1, help="first steps not timed")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        default=max(1, min(2, os.cpu_count() or 1)),
        help="torch/OpenMP threads per worker; at most the idle cores",
    )
    parser.add_argument(
        "--precision",
        choices=["fp32", "bf16"],
        default="fp32",
        help="both variants: fp32, or bf16 autocast (what polyadapt's auto picks on AMX CPUs)",
    )
    parser.add_argument("--repeats", type=int, default=1, help="runs per variant, interleaved; the median is shown")
    parser.add_argument("--device", default="cuda" if os.environ.get("CUDA_VISIBLE_DEVICES") else "cpu")
    parser.add_argument("--timeout", type=int, default=3600)
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        import torch

        spec = json.loads(args.spec.read_text())
        torch.set_num_threads(spec["threads"])
        result = worker_polyadapt(spec) if args.worker == "a" else worker_plain(spec)
        args.out.write_text(json.dumps(result))
        return
    if not 0 <= args.warmup < args.steps:
        sys.exit("error: need 0 <= --warmup < --steps")
    with tempfile.TemporaryDirectory(prefix="polyadapt-speech-bench-") as tmp:
        work = Path(tmp)
        if args.tiny:
            model, data = make_tiny(work)
        else:
            if not args.model:
                sys.exit("error: give --model (a whisper .pt or CTranslate2 folder) or --tiny")
            from polyadapt.config import BaseModelConfig
            from polyadapt_speech.model import checkpoint_path

            model = args.model
            checkpoint_path(BaseModelConfig(id=str(Path(model).expanduser())))  # convert once, untimed
            data = args.data or make_tiny(work)[1]
        spec = {
            "model": str(Path(model).expanduser()),
            "data": str(data),
            "steps": args.steps,
            "warmup": args.warmup,
            "batch": args.batch,
            "lr": args.lr,
            "seed": args.seed,
            "threads": args.threads,
            "device": args.device,
            "precision": args.precision,
        }
        spec_path = work / "spec.json"
        spec_path.write_text(json.dumps(spec))
        runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in VARIANTS}
        for repeat in range(max(1, args.repeats)):  # interleaved, so a change in background load hits both
            order = list(VARIANTS) if repeat % 2 == 0 else list(reversed(VARIANTS))
            for kind in order:
                r = timed_worker(kind, spec_path, work, spec, args.timeout)
                runs[kind].append(r)
                print(
                    f"  ({kind}) {VARIANTS[kind]} run {repeat + 1}: {r['steps_per_s']} steps/s, peak {r['peak_gb']} GB, "
                    f"train loss {r['train_loss']:.4f} [{r['subprocess_s']} s]",
                    file=sys.stderr,
                )
        results = {kind: measure.combine(runs[kind], "steps_per_s") for kind in VARIANTS}
    a, b = results["a"], results["b"]
    ratio = {
        "steps_per_s": round(a["steps_per_s"] / b["steps_per_s"], 3) if a["steps_per_s"] and b["steps_per_s"] else None,
        "peak_gb": round(a["peak_gb"] / b["peak_gb"], 3) if a["peak_gb"] and b["peak_gb"] else None,
    }
    print()
    print(f"model {spec['model']}  data {spec['data']}")
    print(
        f"batch {args.batch}, {args.steps} steps ({args.warmup} untimed), LoRA r={LORA_R} on encoder+decoder "
        f"attention, {args.precision}, {args.threads} threads, {args.device}"
        + (f", median of {args.repeats} interleaved runs" if args.repeats > 1 else "")
    )
    print(f"{'variant':44} {'steps/s':>9} {'peak GB':>9}")
    for kind, label in VARIANTS.items():
        print(f"{label:44} {results[kind]['steps_per_s']!s:>9} {results[kind]['peak_gb']!s:>9}")
    print(f"{'ratio polyadapt / plain':44} {ratio['steps_per_s']!s:>9} {ratio['peak_gb']!s:>9}")
    payload = {"spec": spec, "results": results, "ratio": ratio}
    line = json.dumps(payload, sort_keys=True)
    if args.json_out:
        args.json_out.write_text(line + "\n")
    print("BENCH_JSON " + line)


if __name__ == "__main__":
    main()
