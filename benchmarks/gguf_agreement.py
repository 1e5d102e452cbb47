#!/usr/bin/env python3
"""Agreement of each GGUF type with the merged model, on SmolLM2-135M-Instruct.

Adapts SmolLM2-135M (the GGUF from ``examples/fetch_smollm2.py``) for a few steps on the
insurance example, then exports the run with ``polyadapt export --format gguf`` once per
``--quant`` type and prints what the export's own check measured: top-1 agreement with the
merged model over every position of the check prompts, max and mean |Δlogit|, and the size of
the file. The check thresholds are lowered to 0 here only to see every figure (a refused type
would print nothing); the exports themselves are thrown away.

    .venv/bin/python benchmarks/gguf_agreement.py [--types f16,q8_0,q4_0] [--steps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    """Adapt, export each type, print one JSON line per type."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--types", default="f16,q8_0,q5_1,q5_0,q4_1,q4_0")
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()

    import polyadapt_text
    import polyadapt_text.export as text_export

    from polyadapt import runner
    from polyadapt.config import load_config
    from polyadapt.export import export_run
    from polyadapt.plugins import PluginManager

    gguf = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "fetch_smollm2.py")], capture_output=True, text=True, check=True
    ).stdout.strip()
    pm = PluginManager(load_entrypoints=False, plugins={"text": polyadapt_text})
    with tempfile.TemporaryDirectory(prefix="gguf-agreement-") as scratch:
        os.environ["POLYADAPT_HOME"] = str(Path(scratch) / "state")
        data = {}  # a slice of the insurance chats: the adapter only has to change the model a little
        for split, rows in (("train", 32), ("eval", 4)):
            lines = (ROOT / "examples" / "insurance" / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
            data[split] = Path(scratch) / f"{split}.jsonl"
            data[split].write_text("\n".join(lines[:rows]) + "\n", encoding="utf-8")
        config = load_config(
            ROOT / "configs" / "text-smollm2-insurance.yaml",
            [
                f"base_model.id={gguf}",
                f"data.train={data['train']}",
                f"data.eval={data['eval']}",
                "data.general_eval=none",
                "data.replay=null",
                "base_model.dtype=float32",
                f"training.max_steps={args.steps}",
                "training.max_length=128",
                "training.precision=fp32",
                "evaluation.enabled=false",
                f"output.dir={scratch}/runs",
            ],
        )
        run, _, _ = runner.adapt(pm, config)
        text_export.MIN_TOP1 = dict.fromkeys(text_export.MIN_TOP1, 0.0)  # see every figure
        for quant in args.types.split(","):
            start = time.perf_counter()
            result = export_run(pm, run.dir, "gguf", quant=quant, out=Path(scratch) / quant, record=False)
            figures = result.facts["verification"]
            size = sum((result.path / name).stat().st_size for name in result.files if name.endswith(".gguf"))
            print(
                json.dumps(
                    {
                        "quant": quant,
                        "top1_agreement": figures["top1_agreement"],
                        "max_abs_diff": figures["max_abs_diff"],
                        "mean_abs_diff": figures["mean_abs_diff"],
                        "positions": figures["positions"],
                        "tensor_types": result.facts["tensor_types"],
                        "file_mb": round(size / 2**20, 1),
                        "seconds": round(time.perf_counter() - start, 1),
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
