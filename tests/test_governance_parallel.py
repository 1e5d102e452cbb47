"""Scanning a dataset in worker processes gives what one process gives, and knows when not to."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from polyadapt.errors import ConfigError
from polyadapt.governance import parallel
from polyadapt.governance.findings import Finding
from polyadapt.governance.policy import Policy
from polyadapt.governance.redact import Redactor
from polyadapt.governance.scanners import pattern_scanners

TEXTS = [
    f"Record {i}: mail ana.lopez{i}@example.org or call +44 20 7946 0{i % 1000:03d}; "
    f"card 4111 1111 1111 1111, ship to 221B Baker St, London NW1 6XE. AWS_SECRET_ACCESS_KEY="
    f"Zq8vR2mT4kW9xB7nL3pF6hJ1sD5gY0cA/eUiOo{i % 10}Q"
    for i in range(40)
] + ["nothing to see here", "version 1.2.3.4 of the tool"]


class LockedScanner:
    """A plugin's scanner that cannot be pickled (it holds a lock): it must scan in this process."""

    name = "locked"
    types = ("ticket",)

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls = 0

    def scan(self, text: str) -> list[Finding]:
        self.calls += 1
        at = text.find("Record")
        return [Finding("ticket", at, at + 6, self.name)] if at >= 0 else []


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_worker_processes_find_exactly_what_one_process_finds(monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    monkeypatch.setattr(parallel, "start_method", lambda: method)
    monkeypatch.setattr(parallel, "CHUNK", 7)  # several chunks, the last one short
    scanners = pattern_scanners()
    one = parallel.scan_each(scanners, TEXTS)
    many = parallel.scan_in_processes(scanners, TEXTS, workers=2)
    assert many == one
    kinds = {f.type for per_scanner in one for found in per_scanner for f in found}
    assert {"email", "phone", "payment_card", "address", "secret"} <= kinds


class PidScanner:
    """Reports each text's whole span with the id of the process that scanned it."""

    name = "pid"
    types = ("ticket",)

    def scan(self, text: str) -> list[Finding]:
        return [Finding("ticket", 0, len(text), f"pid{os.getpid()}")]


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_this_process_scans_beside_its_workers(monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    monkeypatch.setattr(parallel, "start_method", lambda: method)
    monkeypatch.setattr(parallel, "CHUNK", 2)
    texts = [f"text {i}" for i in range(40)]
    (per_text,) = parallel.scan_in_processes([PidScanner()], texts, workers=2)
    assert [found[0].end for found in per_text] == [len(t) for t in texts]  # in order, one per text
    pids = [found[0].scanner for found in per_text]
    here = f"pid{os.getpid()}"
    assert here in pids and set(pids) - {here}  # both this process and the started worker scanned
    assert pids[0] != here and pids[-1] == here  # workers take chunks from the front, this one from the back


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers fork on Linux only")
def test_workers_fork_from_a_single_thread_and_spawn_beside_other_threads() -> None:
    # a fresh interpreter runs one thread: its workers fork (they start with its loaded modules)
    code = "from polyadapt.governance import parallel; print(parallel.start_method())"
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert fresh.stdout.strip() == "fork"
    # another thread might hold a lock a forked child would copy: spawn
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert parallel.start_method() == "spawn"
    finally:
        release.set()
        other.join()


def test_worker_count_follows_the_setting_and_the_batch_size(monkeypatch: pytest.MonkeyPatch) -> None:
    scanners = pattern_scanners()
    monkeypatch.setenv("POLYADAPT_SCAN_WORKERS", "4")
    assert parallel.worker_count(parallel.MIN_TEXTS_PATTERNS - 1, scanners) == 1  # too few to pay for workers
    assert parallel.worker_count(100_000, scanners) == 4
    assert parallel.worker_count(parallel.MIN_TEXTS_PATTERNS, scanners) == 4
    monkeypatch.setenv("POLYADAPT_SCAN_WORKERS", "1")
    assert parallel.worker_count(100_000, scanners) == 1
    monkeypatch.setenv("POLYADAPT_SCAN_WORKERS", "lots")
    with pytest.raises(ConfigError, match="POLYADAPT_SCAN_WORKERS='lots'"):
        parallel.configured_workers()
    monkeypatch.delenv("POLYADAPT_SCAN_WORKERS")
    assert 1 <= parallel.configured_workers() <= parallel.MAX_WORKERS


def test_redactor_primed_in_workers_redacts_as_one_process_does(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = Policy(pii={"secret": "redact"})
    key = b"k" * 32
    locked = LockedScanner()
    expected = [Redactor(policy, [*pattern_scanners(), LockedScanner()], key).apply(t).text for t in TEXTS]

    monkeypatch.setenv("POLYADAPT_SCAN_WORKERS", "2")
    monkeypatch.setattr(parallel, "MIN_TEXTS_PATTERNS", 10)
    monkeypatch.setattr(parallel, "CHUNK", 8)
    started: list[int] = []
    real = parallel.scan_in_processes
    monkeypatch.setattr(
        parallel,
        "scan_in_processes",
        lambda s, t, w: started.append(w) or real(s, t, w),  # type: ignore[func-returns-value]
    )
    redactor = Redactor(policy, [*pattern_scanners(), locked], key)
    with redactor.primed(TEXTS):
        scanned_here = locked.calls
        got = [redactor.apply(t).text for t in TEXTS]
    assert started == [2]
    assert got == expected
    assert "<EMAIL_1>" in got[0] and "<SECRET_1>" in got[0]
    assert scanned_here == 0 and locked.calls == len(TEXTS)  # the unpicklable scanner ran here, per text


def test_a_pool_that_cannot_start_falls_back_to_this_process(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import concurrent.futures

    def no_pool(*args: object, **kwargs: object) -> None:
        raise OSError("no semaphores on this system")

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", no_pool)
    scanners = pattern_scanners()
    assert parallel.scan_in_processes(scanners, TEXTS, workers=2) == parallel.scan_each(scanners, TEXTS)
    assert "scanning in this process instead" in caplog.text
