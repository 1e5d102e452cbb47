#!/usr/bin/env python3
"""Peak memory of one training step: full logits + cross-entropy against polyadapt's fused,
chunked loss (``polyadapt_text.loss.CausalLMLoss``), same model, same batch, fp32.

Each loss runs in its own subprocess; the figure is the rise of the process's peak resident
set size (VmHWM, reset after the model is loaded and the batch built) over one forward +
backward, and, on CUDA, of ``max_memory_allocated``. The full-logits path is what
transformers computes (``model(...).logits`` then ``F.cross_entropy`` on their float copy):
it holds a batch x length x vocabulary fp32 tensor, its log-softmax and their gradients.

    python benchmarks/chunked_loss_memory.py --model ~/.cache/polyadapt/gguf/SmolLM2-135M-Instruct.Q4_1-...
    python benchmarks/chunked_loss_memory.py --tiny        # smoke run

The last line, ``BENCH_JSON {...}``, holds the figures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _hwm_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def worker(model_path: str, kind: str, batch: int, seq: int, threads: int) -> dict:
    """One forward + backward with ``kind`` (full or fused); memory rise in bytes."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    sys.path.insert(0, str(ROOT / "plugins" / "text"))
    from polyadapt_text.loss import CausalLMLoss

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    model.requires_grad_(False)
    model = get_peft_model(
        model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
    )
    vocab = model.get_base_model().config.vocab_size
    ids = torch.randint(0, vocab, (batch, seq))
    batch_dict = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}
    wrapper = CausalLMLoss(model)
    baseline = _rss_bytes()
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := current RSS
    if kind == "full":
        logits = model(input_ids=ids, attention_mask=batch_dict["attention_mask"]).logits
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].float().reshape(-1, vocab), ids[:, 1:].reshape(-1), reduction="sum"
        )
    else:
        loss = wrapper(batch_dict)
    loss.backward()
    peak = _hwm_bytes()
    return {
        "kind": kind,
        "loss_per_token": float(loss) / (batch * (seq - 1)),
        "rise_bytes": peak - baseline,
        "vocab": vocab,
        "full_logits_fp32_bytes": batch * seq * vocab * 4,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="folder with config.json + safetensors")
    parser.add_argument("--tiny", action="store_true", help="a tiny random Llama (smoke run)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.model, args.worker, args.batch, args.seq, args.threads)))
        return
    holder = None
    model = args.model
    if args.tiny:
        holder = tempfile.TemporaryDirectory()
        sys.path.insert(0, str(ROOT / "tests"))
        from tiny_models import build_tiny_llama

        model = str(build_tiny_llama(Path(holder.name) / "tiny"))
    if not model:
        sys.exit("error: give --model PATH or --tiny")
    model = str(Path(model).expanduser())
    results = {}
    for kind in ("full", "fused"):
        command = [sys.executable, __file__, "--model", model, "--worker", kind]
        command += ["--batch", str(args.batch), "--seq", str(args.seq), "--threads", str(args.threads)]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        results[kind] = json.loads(out)
    full, fused = results["full"], results["fused"]
    print(f"model {model}, batch {args.batch} x {args.seq} tokens, vocabulary {full['vocab']}, fp32, CPU")
    print(f"one batch's full fp32 logits: {full['full_logits_fp32_bytes'] / 1e6:.0f} MB")
    for kind, r in results.items():
        rise, per_token = r["rise_bytes"] / 1e6, r["loss_per_token"]
        print(f"  {kind:<6} peak RSS rise over forward+backward {rise:8.0f} MB  loss/token {per_token:.5f}")
    print(f"  fused/full: {fused['rise_bytes'] / max(full['rise_bytes'], 1):.2f}x")
    print("BENCH_JSON " + json.dumps({"batch": args.batch, "seq": args.seq, **{k: v for k, v in results.items()}}))
    if holder is not None:
        holder.cleanup()


if __name__ == "__main__":
    main()
