"""Fill-in-the-middle samples round-trip (native FIM tokens and the text fallback); pass@k
in the sandbox, bwrap and unisolated: correct and incorrect solutions counted, runaway
programs killed. Escape attempts are tests/test_code_sandbox_escapes.py's."""

from __future__ import annotations

import os
import random
import time
import warnings

import pytest
from code_helpers import module_text, tiny_fim_model
from polyadapt_code.data import build_code_examples, chunk_text
from polyadapt_code.fim import fim_tokens, from_psm, split_points, to_psm
from polyadapt_code.sandbox import UnisolatedWarning, bwrap_problem, pass_at_k, run_program, score


@pytest.fixture(scope="module")
def tokenizers(tiny_llama, tmp_path_factory):
    from transformers import AutoTokenizer

    native = AutoTokenizer.from_pretrained(tiny_fim_model(tiny_llama, tmp_path_factory.mktemp("fim") / "tiny-fim"))
    return {"native": native, "fallback": AutoTokenizer.from_pretrained(tiny_llama)}


@pytest.mark.parametrize("kind", ["native", "fallback"])
def test_fim_transform_round_trips(tokenizers, kind):
    tokenizer = tokenizers[kind]
    tokens = fim_tokens(tokenizer)
    assert tokens.native == (kind == "native")
    if kind == "native":
        assert len(tokens.prefix) == len(tokens.suffix) == len(tokens.middle) == 1
    rng = random.Random(0)
    for index in range(20):
        text = module_text(index)
        prefix, middle, suffix = split_points(text, rng)
        assert prefix + middle + suffix == text
        ids = to_psm(tokenizer, tokens, prefix, middle, suffix)
        assert ids[-1] == tokenizer.eos_token_id
        assert from_psm(tokenizer, tokens, ids) == (prefix, middle, suffix)


def test_fim_off_without_tokens(tokenizers):
    assert fim_tokens(tokenizers["fallback"], "off") is None
    assert fim_tokens(tokenizers["native"], "off").native  # native tokens are used regardless


def test_chunks_cover_the_file_and_samples_fit(tokenizers):
    tokenizer = tokenizers["native"]
    text = "".join(module_text(i) for i in range(6))
    chunks = chunk_text(tokenizer, text, 60)
    assert "".join(chunks) == text and len(chunks) > 3
    records = [{"path": "a.py", "text": text}]
    examples, counts = build_code_examples(
        tokenizer, records, max_length=64, packing=True, fim=fim_tokens(tokenizer), fim_rate=0.5, seed=1
    )
    assert counts["fim"] > 0 and counts["causal"] > 0
    assert all(len(e.input_ids) <= 64 and e.labels == e.input_ids for e in examples)
    again, _ = build_code_examples(
        tokenizer, records, max_length=64, packing=True, fim=fim_tokens(tokenizer), fim_rate=0.5, seed=1
    )
    assert [e.input_ids for e in again] == [e.input_ids for e in examples]


TASK = {
    "task_id": "t/0",
    "prompt": "def add(a, b):\n",
    "entry_point": "add",
    "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n",
}


def bwrap_or_skip() -> None:
    """Skip (locally) or fail (under CI, which installs bubblewrap) when bwrap cannot run here."""
    problem = bwrap_problem()
    if problem is not None:
        message = f"the bwrap sandbox cannot run here: {problem} (apt-get install bubblewrap)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI installs bubblewrap, so this is a regression")
        pytest.skip(message)


@pytest.fixture(params=["bwrap", "unisolated"])
def kind(request):
    """Each sandbox kind: bwrap (the default) and the unisolated opt-in (its warning silenced)."""
    if request.param == "bwrap":
        bwrap_or_skip()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnisolatedWarning)
        yield request.param


def test_pass_at_k_counts_correct_and_incorrect_solutions(kind):
    completions = [["    return a + b\n", "    return a - b\n", "    return a + b\n"]]
    result = score([TASK], completions, [1, 2], timeout_s=5, sandbox=kind)
    assert result["correct"] == [2] and result["statuses"] == {"passed": 2, "failed": 1}
    assert result["pass@1"] == pytest.approx(2 / 3)
    assert result["pass@2"] == pytest.approx(1.0)
    assert pass_at_k(5, 0, 1) == 0.0 and pass_at_k(5, 5, 3) == 1.0 and pass_at_k(4, 1, 2) == pytest.approx(0.5)


def test_a_program_that_exits_early_with_status_0_fails(kind):
    # a completion that leaves before the tests run must not count as passing
    early = ["    import sys\n    sys.exit(0)\n", "    import os\n    os._exit(0)\n", "    raise SystemExit\n"]
    result = score([TASK], [[*early, "    return a + b\n"]], [1], timeout_s=5, sandbox=kind)
    assert result["correct"] == [1] and result["statuses"] == {"passed": 1, "failed": 3}
    printing = run_program('print("lots of output " * 1000)\n', sandbox=kind)
    assert printing.passed  # output of its own does not hide the end marker


def test_runaway_programs_are_killed_by_the_limits(kind):
    started = time.monotonic()
    assert run_program("while True:\n    pass\n", timeout_s=1, sandbox=kind).status == "timeout"  # CPU limit
    assert run_program("import time\ntime.sleep(60)\n", timeout_s=1, sandbox=kind).status == "timeout"  # wall clock
    assert run_program("x = bytearray(4 << 30)\n", memory_mb=256, sandbox=kind).status == "memory"  # RLIMIT_AS
    assert time.monotonic() - started < 15
    hog = score([TASK], [["    while True:\n        pass\n"]], [1], timeout_s=1, sandbox=kind)
    assert hog["statuses"] == {"timeout": 1} and hog["pass@1"] == 0.0


def test_sandbox_has_no_network_and_runs_outside_this_process(kind, tmp_path):
    outcome = run_program("import socket\nsocket.create_connection(('127.0.0.1', 9))\n", sandbox=kind)
    assert outcome.status == "failed"
    marker = tmp_path / "marker"
    writes_marker = run_program(
        f"open({str(marker)!r}, 'w').write('x')\nimport os\nassert os.getpid() != {os.getpid()}\n", sandbox=kind
    )
    if kind == "bwrap":
        # Its own network namespace: 127.0.0.1 is the sandbox's loopback, where nothing listens;
        # this process's tmp folder does not exist in there (tests/test_code_sandbox_escapes.py).
        assert "ConnectionRefusedError" in outcome.detail or "unreachable" in outcome.detail
        assert writes_marker.status == "failed" and not marker.exists()
    else:
        # Unisolated: sockets are disabled in-process, but the host's files are the program's.
        assert "network access is disabled" in outcome.detail
        assert writes_marker.passed and marker.exists()


def test_the_walkthrough_task_set_is_sound():
    """Every task of examples/code/toolz_tasks.jsonl passes with its canonical solution and
    fails with a wrong one, so its pass@k measures the model, not a broken test."""
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "code" / "toolz_tasks.jsonl"
    tasks = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(tasks) >= 20 and len({t["task_id"] for t in tasks}) == len(tasks)
    bwrap_or_skip()
    right = score(tasks, [[t["canonical_solution"]] for t in tasks], [1], timeout_s=5)
    wrong = score(tasks, [["    return None\n"] for _ in tasks], [1], timeout_s=5)
    assert right["correct"] == [1] * len(tasks), [t["task_id"] for t, c in zip(tasks, right["correct"]) if not c]
    assert wrong["correct"] == [0] * len(tasks)
