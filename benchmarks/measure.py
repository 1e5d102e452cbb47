"""Measurement helpers shared by the benchmarks (text_lora.py, image_lora.py, speech_lora.py).

Each benchmark runs every variant in its own subprocess (``run_worker``), so peak memory
is per variant; a worker resets the high-water mark before training
(``reset_train_peak``) and reads it after (``memory``). ``matmul_peak`` measures the
machine's dense matmul throughput for model FLOP utilisation. Heavy imports happen inside
the functions, so the parent process stays light.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

_CUDA_PEAK_BEFORE_TRAINING = 0


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every variant-comparing benchmark takes: MFU peak, where runs and figures
    go, the subprocess timeout, and the hidden ones a worker subprocess is started with."""
    parser.add_argument("--peak-tflops", type=float, help="nominal peak TFLOP/s of the device, for MFU")
    parser.add_argument("--peak-seconds", type=float, default=1.0, help="seconds per matmul peak sample")
    parser.add_argument("--work-dir", type=Path, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--json-out", type=Path, help="also write the JSON figures to this file")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per subprocess")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)


def sync(device: str) -> None:
    """Wait for queued device work (CUDA), so a clock reading means what it says."""
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def reset_train_peak(device: str) -> None:
    """Start a fresh high-water mark for the training phase."""
    import torch

    global _CUDA_PEAK_BEFORE_TRAINING
    if device == "cuda":
        _CUDA_PEAK_BEFORE_TRAINING = torch.cuda.max_memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    try:  # Linux: writing 5 to clear_refs resets VmHWM (the peak resident set size)
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def memory(device: str) -> dict[str, float | None]:
    """Peak memory in GB: the process' (ru_maxrss / max_memory_allocated) and since the reset."""
    import resource

    import torch

    if device == "cuda":
        train_peak = torch.cuda.max_memory_allocated()
        return {
            "peak_gb": round(max(train_peak, _CUDA_PEAK_BEFORE_TRAINING) / 1e9, 3),
            "train_peak_gb": round(train_peak / 1e9, 3),
            "host_peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 3),
        }
    hwm = None
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                hwm = round(int(line.split()[1]) / 1e6, 3)
    except OSError:
        pass
    return {
        "peak_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 3),
        "train_peak_gb": hwm,
    }


def _cpu_bf16_probe(n: int = 1024) -> tuple[bool, float]:
    """(slow, bf16 TFLOP/s): one n x n bf16 matmul against fp32 on this CPU. Without bf16 units
    (AVX2 only) bf16 runs >10x slower than fp32 and a 2048 matmul takes minutes."""
    import torch

    timings = {}
    for dtype in (torch.float32, torch.bfloat16):
        a = torch.randn(n, n).to(dtype)
        if dtype == torch.float32:
            torch.matmul(a, a)  # warm-up (fp32 only: a slow bf16 one costs seconds)
        t0 = time.perf_counter()
        torch.matmul(a, a)
        timings[dtype] = time.perf_counter() - t0
    slow = timings[torch.bfloat16] > 10 * timings[torch.float32]
    return slow, 2 * n**3 / timings[torch.bfloat16] / 1e12


def matmul_peak(device: str, seconds: float = 1.0) -> dict[str, float]:
    """Best measured dense matmul throughput (TFLOP/s) in bf16 and fp32."""
    import torch

    sizes = [8192] if device == "cuda" else [1024, 2048]
    result: dict[str, float] = {}
    for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        best = 0.0
        if device == "cpu" and dtype == torch.bfloat16:
            slow, probed = _cpu_bf16_probe()
            if slow:  # no bf16 units: the probe's reading is the figure (the loop would take minutes)
                result["bf16_emulated"] = 1.0
                result[f"peak_{name}_tflops"] = round(probed, 4)
                continue
        for n in sizes:
            a = torch.randn(n, n, device=device).to(dtype)
            b = torch.randn(n, n, device=device).to(dtype)
            for _ in range(2):
                torch.matmul(a, b)
            sync(device)
            for _ in range(3):
                reps, t0 = 0, time.perf_counter()
                while True:
                    torch.matmul(a, b)
                    reps += 1
                    if reps % 4 == 0 or device == "cpu":
                        sync(device)
                        if time.perf_counter() - t0 > seconds:
                            break
                elapsed = time.perf_counter() - t0
                best = max(best, 2 * n**3 * reps / elapsed / 1e12)
        result[f"peak_{name}_tflops"] = round(best, 4)
    return result


def worker_env(threads: int, device: str) -> dict[str, str]:
    """The environment of a worker: fixed thread counts, offline, quiet; CPU hides CUDA."""
    env = dict(os.environ)
    env.update(
        {
            "OMP_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads),
            "TOKENIZERS_PARALLELISM": "false",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "TRANSFORMERS_VERBOSITY": "error",
        }
    )
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def run_worker(
    script: Path | str, kind: str, spec_path: Path, work: Path, spec: dict[str, Any], timeout: int
) -> dict[str, Any]:
    """Run ``script --worker kind --spec spec_path --out ...`` in a subprocess; its JSON result.

    The worker's output goes to ``work/log_<kind>.txt``; a failed worker stops the
    benchmark with the log's tail.
    """
    out = work / f"result_{kind}.json"
    log = work / f"log_{kind}.txt"
    out.unlink(missing_ok=True)
    command = [
        sys.executable,
        str(Path(script).resolve()),
        "--worker",
        kind,
        "--spec",
        str(spec_path),
        "--out",
        str(out),
    ]
    started = time.perf_counter()
    with log.open("w") as handle:
        proc = subprocess.run(
            command,
            check=False,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=worker_env(spec["threads"], spec["device"]),
            timeout=timeout,
        )
    if proc.returncode != 0 or not out.is_file():
        tail = log.read_text()[-3000:]
        raise SystemExit(f"error: worker {kind} failed (exit {proc.returncode}); log {log}:\n{tail}")
    result = json.loads(out.read_text())
    result["subprocess_s"] = round(time.perf_counter() - started, 2)
    return result


def combine(runs: list[dict[str, Any]], rate: str) -> dict[str, Any]:
    """One variant's figures over its repeats: the run of median ``rate``, the highest peaks."""
    ranked = sorted(runs, key=lambda r: r[rate] or 0.0)
    result = dict(ranked[(len(ranked) - 1) // 2])
    for key in ("peak_gb", "train_peak_gb"):
        values = [r[key] for r in runs if r.get(key) is not None]
        result[key] = max(values) if values else None
    result[f"repeats_{rate}"] = [r[rate] for r in runs]
    return result


def fmt(value: Any, spec: str) -> str:
    """``value`` formatted, or ``-`` when it is missing."""
    return "-" if value is None else format(value, spec)
