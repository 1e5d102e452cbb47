#!/usr/bin/env python
"""GPU check of ``polyadapt serve --engine vllm``: the same requests through both engines.

Usage: python benchmarks/vllm_check.py [--base ID_OR_PATH] [--requests 48] [--max-tokens 32]
       [--batch 8] [--gpu-memory 0.5] [--workdir DIR] [--json-out PATH]

Needs a CUDA GPU and vllm (``pip install vllm`` in its own environment, with polyadapt
installed beside it): it stops with one line where either is missing. It has not been run in
this project, whose machines have no vLLM; whoever has such a machine runs it and reports
the figures.

``--base`` is a hub id, a model folder or a ``.gguf`` file (converted once, as a run config's
``base_model`` would be); the default is the SmolLM2-135M-Instruct GGUF of
``examples/fetch_smollm2.py`` in the polyadapt cache. Two LoRA adapters (r=8 on q/k/v/o, with
random non-zero weights, seeds 1 and 2) are saved beside it. Then, one engine after the other
(the first freed before the second starts):

* transformers: :class:`polyadapt_text.serve.TextServable`, as ``polyadapt serve`` holds it;
* vllm: :class:`polyadapt_text.vllm_engine.VllmServable` (``gpu_memory_utilization``
  ``--gpu-memory``, so that what the first engine left does not stop it).

Each answers ``--requests`` greedy completions, spread over the base and both adapters, in
batches of ``--batch`` (as the server's micro-batcher hands them over), after one untimed
warm-up batch; vllm also answers them all in one batch (its own scheduler at work). Printed:
load times, requests/s and generated tokens/s per engine, and how far the greedy outputs
agree: exact matches and the mean shared prefix in characters, per adapter. Both engines run
in the base's dtype (``auto``: bf16 on a GPU that has it), where kernels differ, so a greedy
path may part after a near-tie; a low match rate on the adapters alone would point at the
LoRA mapping.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

PROMPTS = [
    "The insurance policy covers",
    "Water boils at",
    "def fibonacci(n):",
    "The capital of France is",
    "Once upon a time,",
    "To reset your password,",
]
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_base() -> str:
    """The quickstart's SmolLM2 GGUF in the polyadapt cache, if it is there."""
    root = Path(os.environ.get("POLYADAPT_CACHE", Path.home() / ".cache" / "polyadapt"))
    path = root / "models" / GGUF
    if not path.is_file():
        sys.exit(f"no --base given and {path} is absent: run examples/fetch_smollm2.py, or pass --base")
    return str(path)


def save_adapters(source: str, folder: Path) -> dict[str, Path]:
    """Two LoRA adapters with random weights on the base at ``source``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    adapters = {}
    for name, seed in (("a", 1), ("b", 2)):
        target = folder / f"adapter-{name}"
        if not (target / "adapter_config.json").is_file():
            torch.manual_seed(seed)
            base = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
            config = LoraConfig(
                r=8,
                lora_alpha=16,
                target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                init_lora_weights=False,
                task_type="CAUSAL_LM",
            )
            model = get_peft_model(base, config)
            with torch.no_grad():  # random but small: the outputs change without turning to noise
                for parameter_name, parameter in model.named_parameters():
                    if "lora_B" in parameter_name:
                        parameter.mul_(0.05)
            model.save_pretrained(target)
            del model, base
        adapters[name] = target
    return adapters


def requests_for(count: int, max_tokens: int):
    """``count`` greedy completions spread over the base and adapters a and b."""
    from polyadapt.types import GenerationRequest

    adapters = [None, "a", "b"]
    return [
        GenerationRequest(prompt=PROMPTS[i % len(PROMPTS)], adapter=adapters[i % 3], max_tokens=max_tokens)
        for i in range(count)
    ]


def run_batches(servable, requests, batch: int) -> tuple[list, float]:
    """The results of ``requests`` answered ``batch`` at a time, and the seconds it took."""
    import torch

    results = []
    start = time.perf_counter()
    for first in range(0, len(requests), batch):
        results += servable.generate(requests[first : first + batch])
    torch.cuda.synchronize()
    return results, time.perf_counter() - start


def measure(name: str, make, requests, batch: int, one_batch: bool) -> dict:
    """Load an engine, warm it up, time the requests; free it."""
    import torch

    start = time.perf_counter()
    servable = make()
    loaded = time.perf_counter() - start
    start = time.perf_counter()
    servable.load_adapter("a", servable.spec.adapters["a"])
    servable.load_adapter("b", servable.spec.adapters["b"])
    adapters_s = time.perf_counter() - start
    run_batches(servable, requests[:batch], batch)  # warm-up
    results, seconds = run_batches(servable, requests, batch)
    tokens = sum(r.completion_tokens for r in results)
    figures = {
        "engine": name,
        "load_s": round(loaded, 2),
        "adapters_load_s": round(adapters_s, 3),
        "requests_per_s": round(len(requests) / seconds, 2),
        "tokens_per_s": round(tokens / seconds, 1),
        "texts": [r.text for r in results],
    }
    if one_batch:
        _, whole = run_batches(servable, requests, len(requests))
        figures["one_batch_tokens_per_s"] = round(tokens / whole, 1)
    del servable
    gc.collect()
    torch.cuda.empty_cache()
    return figures


def agreement(requests, first: list[str], second: list[str]) -> dict[str, dict[str, float]]:
    """Exact matches and mean shared prefix (characters) of two engines' texts, per adapter."""
    table: dict[str, dict[str, float]] = {}
    for adapter in (None, "a", "b"):
        pairs = [(x, y) for r, x, y in zip(requests, first, second) if r.adapter == adapter]
        prefixes = [len(os.path.commonprefix([x, y])) for x, y in pairs]
        table[adapter or "base"] = {
            "exact": sum(x == y for x, y in pairs) / len(pairs),
            "mean_shared_prefix": sum(prefixes) / len(prefixes),
            "mean_length": sum(len(x) for x, _ in pairs) / len(pairs),
        }
    return table


def main() -> None:
    """Parse the options, check the machine, run both engines and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", help="hub id, model folder or .gguf file (default: the quickstart's SmolLM2)")
    parser.add_argument("--requests", type=int, default=48)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--gpu-memory", type=float, default=0.5, help="vLLM's gpu_memory_utilization")
    parser.add_argument("--workdir", type=Path, default=Path("runs") / "vllm_check")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()

    from polyadapt.errors import PolyadaptError
    from polyadapt.serving.engines import check_engine

    try:
        check_engine([], "vllm")  # vllm imports and CUDA is there, or one line saying which is missing
    except PolyadaptError as exc:
        sys.exit(f"vllm_check: {exc}")
    import polyadapt_text
    from polyadapt_text.model import model_source
    from polyadapt_text.serve import TextServable
    from polyadapt_text.vllm_engine import VllmServable

    from polyadapt.config import BaseModelConfig
    from polyadapt.serving.settings import ServeSettings
    from polyadapt.types import ServeSpec

    base = args.base or default_base()
    config = BaseModelConfig(id=base)
    source = model_source(config)  # a .gguf base is converted (and cached) here
    args.workdir.mkdir(parents=True, exist_ok=True)
    adapters = save_adapters(source, args.workdir)
    spec = ServeSpec(task=polyadapt_text.TASK, base_model=base, base_name=config.display_name(), adapters=adapters)
    requests = requests_for(args.requests, args.max_tokens)
    settings = ServeSettings(engine="vllm", max_batch=args.batch)
    runs = [
        measure("transformers", lambda: TextServable(spec), requests, args.batch, one_batch=False),
        measure(
            "vllm",
            lambda: VllmServable(
                replace(spec, settings=settings), engine_args={"gpu_memory_utilization": args.gpu_memory}
            ),
            requests,
            args.batch,
            one_batch=True,
        ),
    ]
    report = {
        "base": base,
        "requests": args.requests,
        "max_tokens": args.max_tokens,
        "batch": args.batch,
        "engines": [{k: v for k, v in run.items() if k != "texts"} for run in runs],
        "agreement": agreement(requests, runs[0]["texts"], runs[1]["texts"]),
        "examples": [
            {"adapter": r.adapter, "prompt": r.prompt, "transformers": x, "vllm": y}
            for r, x, y in list(zip(requests, runs[0]["texts"], runs[1]["texts"]))[:3]
        ],
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.json_out:
        args.json_out.write_text(text + "\n")


if __name__ == "__main__":
    main()
