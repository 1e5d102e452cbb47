"""Shared fixtures: a tiny Llama saved to disk, domain data, and run configs.

The state folder and the tiny model come from polyadapt's own pytest plugin
(``polyadapt.testing``, the one plugin authors use), so both test suites share them.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DOMAIN_TERMS = ["Solvanta rider", "Marlowe deductible", "Quintrel premium", "Brackwater peril"]


def domain_text(n: int, seed: int = 0) -> list[str]:
    """Repetitive insurance jargon a random model cannot predict and LoRA learns quickly."""
    import random

    rng = random.Random(seed)
    frames = [
        "The {a} covers the {b} when the claim is filed.",
        "Every {a} includes a {b} for the policyholder.",
        "Ask the underwriter about the {a} and the {b}.",
    ]
    out = []
    for _ in range(n):
        a, b = rng.sample(DOMAIN_TERMS, 2)
        out.append(rng.choice(frames).format(a=a, b=b))
    return out


@pytest.fixture(autouse=True)
def project_state(polyadapt_state, monkeypatch) -> Path:
    """Each test gets its own state folder (lineage store, project key), never the checkout's.

    Licences are read by the light fallback: ScanCode takes seconds to start, and a fresh
    state folder per test would start it cold in every code test. The tests of ScanCode
    itself (tests/test_code_licences_scancode.py) switch it back on."""
    monkeypatch.setenv("POLYADAPT_SCANCODE", "off")
    return polyadapt_state


@pytest.fixture(scope="session")
def tiny_llama(tiny_text_model) -> Path:
    """Folder of a tiny random Llama + tokenizer (loaded through from_pretrained in tests)."""
    return tiny_text_model


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory) -> Path:
    """A tiny random BERT encoder folder (a retrieval index's ``--embed``)."""
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from polyadapt.testing.models import build_tokenizer

    folder = tmp_path_factory.mktemp("encoder")
    tokenizer = build_tokenizer(folder)
    config = transformers.BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    transformers.BertModel(config).save_pretrained(folder)
    return folder


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def text_data(tmp_path) -> dict[str, Path]:
    """Plain-text domain train/eval files and a general set."""
    return {
        "train": write_jsonl(tmp_path / "data" / "train.jsonl", [{"text": t} for t in domain_text(80, 1)]),
        "eval": write_jsonl(tmp_path / "data" / "eval.jsonl", [{"text": t} for t in domain_text(16, 2)]),
        "general": write_jsonl(
            tmp_path / "data" / "general.jsonl",
            [{"text": "Water boils at one hundred degrees Celsius at sea level."}] * 4,
        ),
    }


@pytest.fixture
def chat_data(tmp_path) -> Path:
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"What does the {a} cover?"},
                {"role": "assistant", "content": f"The {a} covers the {b}."},
            ]
        }
        for a, b in zip(DOMAIN_TERMS * 10, DOMAIN_TERMS[1:] * 10 + DOMAIN_TERMS[:1] * 10)
    ]
    return write_jsonl(tmp_path / "data" / "chat.jsonl", rows)


def make_config(tmp_path: Path, model: Path, data: dict[str, Path], **training) -> Path:
    """Write a run config for the tiny model and return its path."""
    import yaml

    settings = {
        "max_steps": 30,
        "batch_size": 4,
        "learning_rate": 5e-3,
        "max_length": 64,
        "precision": "fp32",
        "warmup_ratio": 0.0,
        "seed": 7,
    }
    settings.update(training)
    config = {
        "task": "text-generation",
        "base_model": {"id": str(model), "dtype": "float32"},
        "data": {
            "train": str(data["train"]),
            "eval": str(data["eval"]),
            "general_eval": str(data["general"]),
            "licence": "CC0-1.0",
        },
        "lora": {"r": 8, "alpha": 16},
        "training": settings,
        "evaluation": {"num_samples": 1, "max_new_tokens": 8},
        "output": {"dir": str(tmp_path / "runs"), "name": "test-run"},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def pip_install_into(site: Path, source: Path) -> Path:
    """pip-install the distribution at ``source`` (no dependencies) into the folder ``site``,
    which a subprocess then puts on PYTHONPATH (see :func:`site_environment`)."""
    import subprocess

    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(source),
        ],
        check=True,
    )
    return site


def site_environment(site: Path) -> dict[str, str]:
    """The environment of a subprocess that sees the plugins installed in ``site`` (every one of
    them: POLYADAPT_LOAD_PLUGINS unset)."""
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("POLYADAPT_LOAD_PLUGINS", None)
    return env


#: How long a load may take before a test calls it hung (a FIFO read blocks forever).
HANG_S = 20


def without_hanging(call, *args: Any, **kwargs: Any) -> Any:
    """``call(*args, **kwargs)`` in a thread; the test fails if it is still running after HANG_S."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(HANG_S)
    if thread.is_alive():
        pytest.fail(f"the load still runs after {HANG_S} s: it blocked on a file")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
