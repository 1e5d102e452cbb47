#!/usr/bin/env python
"""Load a GGUF that ``polyadapt export --format gguf`` wrote in llama.cpp itself, and compare
its next-token predictions with the merged model's (transformers) on the same token ids.

The export already checks itself by reloading the GGUF with transformers; this runs the file
where users run it. llama-cpp-python is not a polyadapt dependency and has no wheel on PyPI:
build it from the sdist in a separate environment (a C++ compiler and CMake; ~10 minutes on
2 cores) and run this script with that environment's python, pointing ``--site-packages`` at
the checkout's virtual environment (torch, transformers and polyadapt's editable install)::

    python3 -m venv /tmp/llvenv && /tmp/llvenv/bin/pip install llama-cpp-python
    /tmp/llvenv/bin/python benchmarks/gguf_llamacpp.py --gguf RUN/exports/gguf-q8_0/*.gguf \\
        --merged RUN/exports/merged --site-packages .venv/lib/python3.11/site-packages

It scores the file exactly as the export's own check scores the transformers reload
(``polyadapt_text.export``: the same prompts, the merged model's fp32 logits as reference, the
same ``compare``), so the two sets of figures can be read side by side.
"""

from __future__ import annotations

import argparse
import json
import site
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any


class LlamaCppAsModel:
    """llama.cpp behind the one call ``compare`` makes of a model: ``model(ids).logits``."""

    def __init__(self, gguf: Path):
        from llama_cpp import Llama

        self.llm = Llama(model_path=str(gguf), logits_all=True, n_ctx=512, n_threads=2, verbose=False)

    def __call__(self, ids: Any) -> Any:
        import numpy as np
        import torch

        row = ids[0].tolist()
        self.llm.reset()
        self.llm.eval(row)
        return SimpleNamespace(logits=torch.from_numpy(np.array(self.llm.scores[: len(row)], dtype=np.float32))[None])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gguf", type=Path, nargs="+", required=True)
    parser.add_argument("--merged", type=Path, required=True, help="the merged export's folder")
    parser.add_argument("--site-packages", type=Path, help="site-packages holding torch, transformers and polyadapt")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.site_packages:
        site.addsitedir(str(args.site_packages))  # with its .pth files: polyadapt's editable install
    import torch
    from polyadapt_text.export import check_prompts, compare, reference_logits
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.merged)
    prompts = check_prompts(tokenizer)
    merged = AutoModelForCausalLM.from_pretrained(args.merged, dtype=torch.float32).eval()
    reference = reference_logits(merged, tokenizer, prompts)
    results = {}
    for gguf in args.gguf:
        start = time.perf_counter()
        results[gguf.name] = compare(reference, LlamaCppAsModel(gguf), tokenizer, prompts)
        results[gguf.name]["seconds"] = round(time.perf_counter() - start, 1)
        print(f"{gguf.name}: {json.dumps(results[gguf.name])}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
