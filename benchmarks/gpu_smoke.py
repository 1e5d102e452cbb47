"""GPU smoke check: the shared trainer (fp32 and precision auto, i.e. bf16 autocast on
CUDA), evaluation and mixed-adapter serving on the device, with the tiny test model.

    python benchmarks/gpu_smoke.py        # from the repository root; prints what it checked
"""

import json, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, "tests")
import torch
from conftest import domain_text, write_jsonl, make_config
from tiny_models import build_tiny_llama
from polyadapt import runner
from polyadapt.config import load_config
from polyadapt.plugins import PluginManager
import polyadapt_text
from polyadapt.types import GenerationRequest, ServeSpec

root = Path(tempfile.mkdtemp(prefix="polyadapt-gpu-smoke-"))
model = build_tiny_llama(root / "tiny")
data = {
    "train": write_jsonl(root / "train.jsonl", [{"text": t} for t in domain_text(80, 1)]),
    "eval": write_jsonl(root / "eval.jsonl", [{"text": t} for t in domain_text(16, 2)]),
    "general": write_jsonl(root / "general.jsonl", [{"text": "Water boils at one hundred degrees."}] * 4),
}
pm = PluginManager(load_entrypoints=False, plugins={"text": polyadapt_text})
print("cuda:", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
results = {}
for name, precision in (("fp32", "fp32"), ("auto", "auto")):
    d = root / name
    d.mkdir(exist_ok=True)
    cfg = load_config(make_config(d, model, data, precision=precision, max_steps=30, checkpoint_every=10))
    t = time.perf_counter()
    run, adapter, report = runner.adapt(pm, cfg)
    dom = next(r for r in report.rows if r.dataset.startswith("domain"))
    results[name] = {
        "precision": adapter.train_metrics["precision"],
        "domain_base": dom.base,
        "domain_adapted": dom.adapted,
        "seconds": round(time.perf_counter() - t, 2),
    }
print(json.dumps(results, indent=1))
assert results["auto"]["precision"] == ("bf16" if torch.cuda.is_available() else results["auto"]["precision"])
assert all(r["domain_adapted"] < r["domain_base"] / 2 for r in results.values()), results
spec = ServeSpec(
    task=pm.task("text-generation"),
    base_model=str(model),
    base_name="tiny",
    adapters={"a": root / "fp32/runs/test-run/adapter", "b": root / "auto/runs/test-run/adapter"},
)
servable = polyadapt_text.polyadapt_serve(spec)
reqs = [GenerationRequest(prompt="The Solvanta rider", adapter=a, max_tokens=8) for a in (None, "a", "b")]
for r in reqs:
    if r.adapter:
        servable.load_adapter(r.adapter, spec.adapters[r.adapter])
mixed = [x.text for x in servable.generate(reqs)]
single = [servable.generate([r])[0].text for r in reqs]
print("mixed batch:", mixed)
print("one by one :", single)
print("mixed == single:", mixed == single)
print("GPU SMOKE OK")
