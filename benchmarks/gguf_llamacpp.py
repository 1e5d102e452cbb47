#!/usr/bin/env python
"""Load a GGUF that ``polyadapt export --format gguf`` wrote in llama.cpp itself, and compare
its next-token predictions with the merged model's (transformers) on the same token ids.

The export already checks itself by reloading the GGUF with transformers; this runs the file
where users run it. llama-cpp-python is not a polyadapt dependency and has no wheel on PyPI:
build it from the sdist in a separate environment (a C++ compiler and CMake; ~10 minutes on
2 cores) and run this script with that environment's python, pointing ``--polyadapt`` at the
checkout's virtual environment for transformers and torch::

    python3 -m venv /tmp/llvenv && /tmp/llvenv/bin/pip install llama-cpp-python
    /tmp/llvenv/bin/python benchmarks/gguf_llamacpp.py --gguf RUN/exports/gguf-q8_0/*.gguf \\
        --merged RUN/exports/merged --site-packages .venv/lib/python3.11/site-packages

Prints, per file: positions compared, top-1 agreement with the merged model, and the mean
absolute difference of the log-probabilities of the merged model's top token.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

PROMPTS = [
    "<|im_start|>user\nDoes my home policy cover a burst pipe in the kitchen?<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>user\nHow do I add a second driver to my car insurance?<|im_end|>\n<|im_start|>assistant\n",
    "The history of the printing press begins in the fifteenth century, when movable type made books "
    "cheaper to produce and spread literacy across Europe.",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n",
]


def merged_logprobs(folder: Path, ids: list[list[int]]):
    """Log-probabilities of the merged model (fp32) for every position of every prompt."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        return [torch.log_softmax(model(torch.tensor([row])).logits[0].float(), -1).numpy() for row in ids]


def llama_logprobs(gguf: Path, ids: list[list[int]]):
    """Log-probabilities llama.cpp computes from the GGUF for the same token ids."""
    import numpy as np
    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf), logits_all=True, n_ctx=512, n_threads=2, verbose=False)
    out = []
    for row in ids:
        llm.reset()
        llm.eval(row)
        scores = np.array(llm.scores[: len(row)], dtype=np.float64)
        scores -= scores.max(-1, keepdims=True)
        out.append(scores - np.log(np.exp(scores).sum(-1, keepdims=True)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gguf", type=Path, nargs="+", required=True)
    parser.add_argument("--merged", type=Path, required=True, help="the merged export's folder")
    parser.add_argument("--site-packages", type=Path, help="where transformers and torch are installed")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.site_packages:
        sys.path.append(str(args.site_packages))
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.merged)
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in PROMPTS]
    reference = merged_logprobs(args.merged, ids)
    results = {}
    for gguf in args.gguf:
        start = time.perf_counter()
        got = llama_logprobs(gguf, ids)
        same = total = 0
        diffs = []
        for ref, mine in zip(reference, got):
            top = ref.argmax(-1)
            same += int((mine.argmax(-1) == top).sum())
            total += len(top)
            diffs.extend(abs(ref[i, t] - mine[i, t]) for i, t in enumerate(top))
        results[gguf.name] = {
            "positions": total,
            "top1_agreement": round(same / total, 4),
            "mean_abs_logprob_diff_of_top": round(float(sum(diffs) / len(diffs)), 5),
            "seconds": round(time.perf_counter() - start, 1),
        }
        print(f"{gguf.name}: {json.dumps(results[gguf.name])}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
