"""`lineage runs` and `lineage abandon`: listing runs, and closing runs whose process was killed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer
from polyadapt.lineage import cli, liveness
from polyadapt.lineage import store as store_module
from polyadapt.lineage.cli import lineage_app
from polyadapt.lineage.environment import capture_environment
from polyadapt.lineage.liveness import process_identity, process_state
from polyadapt.lineage.store import LineageStore
from typer.testing import CliRunner

app = typer.Typer()
app.add_typer(lineage_app, name="lineage")
runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    """Tables as on a wide terminal: no wrapped cells to match across."""
    monkeypatch.setattr(cli.console, "width", 400)
    monkeypatch.setattr(cli.err_console, "width", 400)


@pytest.fixture
def clock(monkeypatch):
    """The store's clock, set by the test: ``clock("10:00:00")`` is the time of the next writes."""
    now = {"value": "2025-03-01T10:00:00.000Z"}
    monkeypatch.setattr(store_module, "_now", lambda: now["value"])

    def set_time(hms: str) -> None:
        now["value"] = f"2025-03-01T{hms}.000Z"

    return set_time


@pytest.fixture
def url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'lineage.db'}"


def _start(store: LineageStore, run_id: str, *, task: str = "text-generation", process: dict | None = None) -> None:
    environment = {"polyadapt": "0.1.0", "python": "3.11"}
    if process is not None:
        environment["process"] = process
    store.start_run(
        run_id,
        task=task,
        plugin=task.split("-")[0],
        config_hash="h",
        config={},
        seed=7,
        environment=environment,
        base_model="org/SmolLM2-135M",
    )


def _invoke(*args: str):
    return runner.invoke(app, ["lineage", *args])


def _listed(url: str, *options: str) -> list[dict]:
    result = _invoke("runs", "--json", "--db", url, *options)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.fixture
def three_runs(url, clock) -> str:
    """A completed text run (adapter, metrics), a failed code run, and a live text run."""
    with LineageStore(url) as store:
        clock("10:00:00")
        _start(store, "text-1", process=process_identity())
        store.register_adapter(
            "text-1", base_model="SmolLM2-135M", name="claims", path="/runs/text-1/adapter", weights_hash="a" * 64
        )
        clock("10:01:30")
        store.finish_run(
            "text-1",
            status="completed",
            metrics=[
                {"dataset": "builtin", "metric": "perplexity", "base": 30, "adapted": 31, "role": "general"},
                {"dataset": "eval.jsonl", "metric": "perplexity", "base": 20, "adapted": 12, "role": "domain"},
            ],
        )
        clock("11:00:00")
        _start(store, "code-1", task="code-generation", process=process_identity())
        clock("11:00:05")
        store.finish_run("code-1", status="failed", error="RuntimeError: out of memory")
        clock("12:00:00")
        _start(store, "text-2", process=process_identity())  # this test process: alive
    return url


def test_runs_are_listed_newest_first_and_filtered(three_runs):
    assert [run["run_id"] for run in _listed(three_runs)] == ["text-2", "code-1", "text-1"]
    assert [run["run_id"] for run in _listed(three_runs, "--limit", "2")] == ["text-2", "code-1"]
    assert [run["run_id"] for run in _listed(three_runs, "--status", "completed")] == ["text-1"]
    assert [run["run_id"] for run in _listed(three_runs, "--task", "text-generation")] == ["text-2", "text-1"]
    assert _listed(three_runs, "--task", "code-generation", "--status", "completed") == []


def test_runs_json_shape(three_runs):
    newest, failed, completed = _listed(three_runs)
    assert set(completed) == {
        "run_id",
        "task",
        "plugin",
        "status",
        "process_state",
        "host",
        "pid",
        "started",
        "finished",
        "duration_s",
        "base_model",
        "adapter",
        "domain_metric",
    }
    assert completed["status"] == "completed" and completed["process_state"] is None
    assert completed["duration_s"] == 90.0 and completed["adapter"] == "claims@1"
    assert completed["domain_metric"] == {
        "dataset": "eval.jsonl",
        "metric": "perplexity",
        "base": 20.0,
        "adapted": 12.0,
        "lower_is_better": True,
    }
    assert failed["status"] == "failed" and failed["adapter"] is None and failed["domain_metric"] is None
    assert failed["duration_s"] == 5.0
    assert newest["status"] == "running" and newest["process_state"] == "alive"
    assert newest["duration_s"] is None and newest["finished"] is None
    assert (newest["host"], newest["pid"]) == (socket.gethostname(), os.getpid())


def test_runs_table(three_runs):
    result = _invoke("runs", "--db", three_runs)
    assert result.exit_code == 0, result.output
    completed = next(line for line in result.output.splitlines() if "text-1" in line)
    for expected in ("completed", "2025-03-01 10:00", "1m 30s", "SmolLM2-135M", "claims@1", "perplexity 20 → 12"):
        assert expected in completed, expected
    live = next(line for line in result.output.splitlines() if "text-2" in line)
    assert "running" in live and "so far" in live and "process gone" not in live
    assert "process gone" not in result.output


def test_runs_with_nothing_to_show_and_a_bad_status(url):
    LineageStore(url).close()
    empty = _invoke("runs", "--status", "failed", "--db", url)
    assert empty.exit_code == 0 and "No runs recorded matching --status/--task" in empty.output
    bad = _invoke("runs", "--status", "done", "--db", url)
    assert bad.exit_code == 1 and bad.output.startswith("error:") and "'done' is not one of" in bad.output


def test_a_killed_run_shows_as_process_gone_and_is_abandoned(url):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with LineageStore(url) as store:
            _start(store, "killed", process=process_identity(child.pid))
        assert _listed(url)[0]["process_state"] == "alive"
    finally:
        child.kill()  # SIGKILL: the run never gets to record its end
        child.wait()
    [run] = _listed(url)
    assert run["status"] == "running" and run["process_state"] == "gone"
    table = _invoke("runs", "--db", url)
    assert "running (process gone)" in table.output and "lineage abandon RUN_ID" in table.output

    result = _invoke("abandon", "killed", "--reason", "OOM killer", "--db", url)
    assert result.exit_code == 0, result.output
    assert "interrupted: run killed" in result.output
    with LineageStore(url) as store:
        recorded = store.get_run("killed")
    assert recorded["status"] == "interrupted" and recorded["finished"]
    assert f"pid {child.pid}" in recorded["error"] and "was gone" in recorded["error"]
    assert recorded["error"].endswith("reason: OOM killer")
    assert "process gone" not in _invoke("runs", "--db", url).output


def test_abandon_refuses_a_live_process_unless_forced(url):
    with LineageStore(url) as store:
        _start(store, "live", process=process_identity())
    refused = _invoke("abandon", "live", "--db", url)
    assert refused.exit_code == 1 and refused.output.startswith("error:")
    assert "still running" in refused.output and f"kill {os.getpid()}" in refused.output
    assert "--force" in refused.output
    with LineageStore(url) as store:
        assert store.get_run("live")["status"] == "running"
    forced = _invoke("abandon", "live", "--force", "--db", url)
    assert forced.exit_code == 0, forced.output
    with LineageStore(url) as store:
        run = store.get_run("live")
    assert run["status"] == "interrupted" and "forced while its process" in run["error"]


def test_abandon_needs_force_for_other_hosts_and_unrecorded_processes(url):
    with LineageStore(url) as store:
        _start(store, "remote", process={"host": "gpu-node-7", "pid": 4242})
        _start(store, "old")  # recorded before runs kept their host and pid
    assert [run["process_state"] for run in _listed(url)] == ["unknown", "other-host"]
    remote = _invoke("abandon", "remote", "--db", url)
    assert remote.exit_code == 1 and "'gpu-node-7'" in remote.output and "--force" in remote.output
    old = _invoke("abandon", "old", "--db", url)
    assert old.exit_code == 1 and "recorded no host and process id" in old.output and "--force" in old.output
    assert _invoke("abandon", "remote", "--force", "--db", url).exit_code == 0
    with LineageStore(url) as store:
        assert store.get_run("remote")["status"] == "interrupted"
        assert store.get_run("old")["status"] == "running"


def test_abandon_refuses_a_finished_run_and_an_unknown_one(url):
    with LineageStore(url) as store:
        _start(store, "done", process={"host": socket.gethostname(), "pid": 999_999_999})
        store.finish_run("done", status="completed")
    refused = _invoke("abandon", "done", "--force", "--db", url)
    assert refused.exit_code == 1 and "'done' is completed, not running" in refused.output
    with LineageStore(url) as store:
        run = store.get_run("done")
    assert run["status"] == "completed" and run["error"] is None
    missing = _invoke("abandon", "nothing", "--db", url)
    assert missing.exit_code == 1 and "'nothing' is not in the lineage store" in missing.output
    assert "lineage runs" in missing.output


def test_a_reused_pid_and_a_zombie_read_as_gone():
    if not Path("/proc/self/stat").is_file():
        pytest.skip("process start times come from /proc (Linux)")
    me = process_identity()
    assert process_state(me) == liveness.ALIVE
    assert process_state(me | {"start_ticks": me["start_ticks"] + 1}) == liveness.GONE
    assert process_state(me | {"boot_id": "another-boot"}) == liveness.GONE
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    identity = process_identity(child.pid)
    try:
        deadline = time.monotonic() + 30
        while liveness._proc_stat(child.pid)[0] != "Z":  # exited, not yet reaped
            assert time.monotonic() < deadline, "the child did not exit"
            time.sleep(0.02)
        os.kill(child.pid, 0)  # signal 0 still finds the zombie: the state letter is what tells
        assert process_state(identity) == liveness.GONE
    finally:
        child.wait()


def test_a_run_records_its_host_and_process():
    process = capture_environment([])["process"]
    assert process["host"] == socket.gethostname() and process["pid"] == os.getpid()
    assert process_state(process) == liveness.ALIVE
    json.dumps(process)
