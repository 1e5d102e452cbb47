"""Scanning a large dataset on every core: the scanners run in worker processes, chunk by chunk.

The regular-expression scanners are pure Python and hold the GIL, and named-entity recognition
is slower still, so one process scans a dataset at the speed of one core. For a batch large
enough to pay for starting workers (see :func:`worker_count`), :func:`scan_in_processes` sends
the scanners (plain objects that load their models lazily) to a pool of processes, scans
chunks in the calling process too, and returns the same findings one process would, in the
same order.

The workers are *forked* when this process runs a single thread (see :func:`start_method`): a
forked worker starts in milliseconds with the modules, compiled patterns and loaded models of
its parent. With another thread running (torch's and numpy's thread pools, a server's threads),
a fork could copy a lock that thread holds and hang the worker, so the workers are *spawned*:
a spawned one imports and compiles everything again (about a second of a core), and the
calling process, already warm, scans meanwhile.

``POLYADAPT_SCAN_WORKERS`` sets the number of processes that scan, the calling one included
(``1``: it scans alone); the default is one per available core, at most :data:`MAX_WORKERS`.
"""

from __future__ import annotations

import logging
import os
import pickle
import sys
from collections.abc import Sequence
from concurrent.futures import Future

from polyadapt.errors import ConfigError
from polyadapt.governance.findings import Finding, Scanner

log = logging.getLogger(__name__)

#: More workers than this rarely pay: each one loads the models its scanners need.
MAX_WORKERS = 8
#: Batches smaller than these scan in the calling process (a spawned worker starts in about a
#: second, one with the named-entity model in about ten; a forked one is cheaper, but the batch
#: sizes are set for the worse case).
MIN_TEXTS_PATTERNS = 4000
MIN_TEXTS_MODEL = 1000
#: Texts per task sent to a worker at most: large enough that the pickling is noise.
CHUNK = 256
#: Texts per task at least: the tasks shrink towards the end of a scan (each takes a share of
#: what is left), so that no process waits long for another's last task.
SMALLEST_CHUNK = 16

_scanners: list[Scanner] = []


def configured_workers() -> int:
    """Processes to scan with, the calling one included: ``$POLYADAPT_SCAN_WORKERS``, or one per
    available core up to :data:`MAX_WORKERS`."""
    value = os.environ.get("POLYADAPT_SCAN_WORKERS", "").strip()
    if value:
        try:
            workers = int(value)
        except ValueError:
            workers = 0
        if workers < 1:
            raise ConfigError(
                f"POLYADAPT_SCAN_WORKERS={value!r}: expected a whole number >= 1 (1: scan in the calling process)"
            )
        return workers
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_WORKERS))


def worker_count(n_texts: int, scanners: Sequence[Scanner]) -> int:
    """How many worker processes to scan ``n_texts`` with (1: scan in this process)."""
    workers = configured_workers()
    uses_model = any(callable(getattr(scanner, "scan_many", None)) for scanner in scanners)
    minimum = MIN_TEXTS_MODEL if uses_model else MIN_TEXTS_PATTERNS
    if workers <= 1 or n_texts < minimum:
        return 1
    return min(workers, max(1, n_texts // CHUNK))


def portable(scanners: Sequence[Scanner]) -> tuple[list[Scanner], list[Scanner]]:
    """``scanners`` split into those a worker process can rebuild (they pickle) and the rest
    (a plugin's scanner holding a lock or an open file), which scan in this process."""
    sent, kept = [], []
    for scanner in scanners:
        try:
            pickle.dumps(scanner)
        except Exception:  # any pickling failure means "keep it here"
            kept.append(scanner)
        else:
            sent.append(scanner)
    return sent, kept


def scan_each(scanners: Sequence[Scanner], texts: Sequence[str]) -> list[list[list[Finding]]]:
    """For each scanner, the findings of each text (batched where the scanner has ``scan_many``)."""
    results = []
    for scanner in scanners:
        scan_many = getattr(scanner, "scan_many", None)
        if callable(scan_many):
            results.append([list(found) for found in scan_many(list(texts))])
        else:
            results.append([scanner.scan(text) for text in texts])
    return results


def start_method() -> str:
    """``"fork"`` on Linux while this process runs one thread (counted by the kernel, so threads
    started by native libraries count too), else ``"spawn"``: forking a process with other
    threads copies whatever locks they hold, and a worker waiting on one never returns."""
    if not sys.platform.startswith("linux"):
        return "spawn"  # macOS's system libraries are not fork-safe even in one thread
    try:
        threads = len(os.listdir("/proc/self/task"))
    except OSError:
        return "spawn"
    return "fork" if threads == 1 else "spawn"


def _task_size(left: int, processes: int) -> int:
    """Texts in the next task: a share of the ``left`` ones, between :data:`SMALLEST_CHUNK` and
    :data:`CHUNK` (each process has about two tasks' worth left when the tasks start to shrink)."""
    return max(1, min(left, CHUNK, max(SMALLEST_CHUNK, left // (4 * processes))))


def _init_worker(scanners: list[Scanner]) -> None:
    _scanners[:] = scanners


def _scan_chunk(texts: list[str]) -> list[list[list[Finding]]]:
    return scan_each(_scanners, texts)


def scan_in_processes(scanners: Sequence[Scanner], texts: Sequence[str], workers: int) -> list[list[list[Finding]]]:
    """What :func:`scan_each` returns, computed by ``workers`` processes: this one and
    ``workers - 1`` started ones (forked or spawned, see :func:`start_method`).

    The started processes take chunks from the front, this process takes them from the back
    while they start and whenever each has two chunks queued: a started worker spends its
    first second or so importing and compiling, time this process, already warm, spends
    scanning. Falls back to this process alone (with a warning) when the pool cannot start or a
    worker dies, so a scan never fails because of the parallelism itself.
    """
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    by_start: dict[int, list[list[list[Finding]]]] = {}
    started = max(1, workers - 1)
    try:
        with ProcessPoolExecutor(
            max_workers=started,
            mp_context=multiprocessing.get_context(start_method()),
            initializer=_init_worker,
            initargs=(list(scanners),),
        ) as pool:
            pending: dict[Future[list[list[list[Finding]]]], int] = {}
            front, back = 0, len(texts)  # texts[front:back] are neither sent nor scanned here
            while front < back or pending:
                while front < back and len(pending) < 2 * started:
                    size = _task_size(back - front, workers)
                    pending[pool.submit(_scan_chunk, list(texts[front : front + size]))] = front
                    front += size
                done = [future for future in pending if future.done()]
                for future in done:
                    by_start[pending.pop(future)] = future.result()
                if done:
                    continue
                if front < back:
                    size = _task_size(back - front, workers)
                    back -= size
                    by_start[back] = scan_each(scanners, texts[back : back + size])
                else:
                    wait(pending, return_when=FIRST_COMPLETED)
    except (BrokenProcessPool, OSError) as exc:
        log.warning("scanning in %d worker processes failed (%s); scanning in this process instead", workers, exc)
        return scan_each(scanners, texts)
    results: list[list[list[Finding]]] = [[] for _ in scanners]
    for start in sorted(by_start):
        for per_scanner, found in zip(results, by_start[start], strict=True):
            per_scanner.extend(found)
    return results
