"""What ``polyadapt serve`` is asked, for drift monitoring: each request's input statistics.

The server notes every input as it reaches a model (:meth:`TrafficRecorder.note`, cheap: the
input is queued); a background thread computes the statistics
(:func:`polyadapt.monitoring.features.input_features`, against the serving adapter's training
vocabulary) and writes them to the lineage store's ``served_inputs`` table every
``interval_s``. The text itself is never stored, except for a sampled share
(``ServeSettings.sample_requests``) stored with every finding of the governance scanners
masked (``[EMAIL]``), whatever the serving policy lets through.

Monitoring never fails a request: the queue is bounded (the oldest inputs go first when the
store cannot keep up) and a store error is logged and the batch dropped.
"""

from __future__ import annotations

import collections
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polyadapt.lineage.state import utc_stamp
from polyadapt.monitoring.features import input_features

if TYPE_CHECKING:  # pragma: no cover
    from polyadapt.governance.redact import Redactor
    from polyadapt.lineage.store import LineageStore
    from polyadapt.types import GenerationRequest

log = logging.getLogger(__name__)
MAX_PENDING = 10_000
MAX_SAMPLE_CHARS = 4_000


@dataclass(frozen=True)
class _Noted:
    time: str
    model: str
    adapter_folder: Path | None
    text: str | None
    numbers: Mapping[str, float]
    sampled: bool


@dataclass(frozen=True)
class _Origin:
    run_id: str | None
    vocabulary: frozenset[str] | None


def prompt_text(request: GenerationRequest) -> str | None:
    """What a generation request asks with: its prompt, or its chat's turns but the
    assistant's (which the model wrote, not the user)."""
    if request.prompt is not None:
        return request.prompt
    if request.messages:
        return "\n".join(str(m.get("content") or "") for m in request.messages if m.get("role") != "assistant")
    return None


def masking(redactor: Redactor) -> Callable[[str], str]:
    """A function that replaces every finding of ``redactor``'s scanners in a text by its
    type (``[EMAIL]``): for sampled request logs, whatever the policy's actions say."""

    def mask(text: str) -> str:
        findings = sorted(redactor.scan(text), key=lambda f: f.start)
        out, at = [], 0
        for finding in findings:
            if finding.start < at:
                continue  # overlaps one masked already
            out += [text[at : finding.start], f"[{finding.type.upper()}]"]
            at = finding.end
        return "".join(out) + text[at:]

    return mask


def origin_of(adapter_folder: Path | None) -> _Origin:
    """The run that trained the adapter in ``adapter_folder`` and its training vocabulary
    (both None for a base model or a folder outside a run)."""
    from polyadapt.fileio import read_json_file
    from polyadapt.monitoring.profile import read_profile

    if adapter_folder is None:
        return _Origin(None, None)
    run_dir = Path(adapter_folder).parent
    record = run_dir / "run.json"
    if not record.is_file():
        return _Origin(None, None)
    run_id = read_json_file(record, "run record").get("run_id")
    profile = read_profile(run_dir)
    return _Origin(str(run_id) if run_id else None, profile.vocabulary if profile else None)


class TrafficRecorder:
    """Queues served inputs and writes their statistics to ``store`` from a background thread."""

    def __init__(
        self,
        store: LineageStore,
        *,
        sample_rate: float = 0.0,
        mask: Callable[[str], str] | None = None,
        interval_s: float = 2.0,
        max_pending: int = MAX_PENDING,
    ):
        if sample_rate and mask is None:
            raise ValueError("sampled request logging needs a mask for the samples' PII")
        self.store, self.sample_rate, self.mask = store, sample_rate, mask
        self.interval_s = interval_s
        self.dropped = 0
        self._pending: collections.deque[_Noted] = collections.deque(maxlen=max_pending)
        self._origins: dict[Path | None, _Origin] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_error = 0.0

    def note(
        self, model: str, adapter_folder: Path | None, text: str | None, numbers: Mapping[str, float] | None = None
    ) -> None:
        """Queue one input served by ``model`` (the adapter in ``adapter_folder``; None: a base)."""
        if len(self._pending) == self._pending.maxlen:
            self.dropped += 1
        sampled = bool(self.sample_rate) and text is not None and random.random() < self.sample_rate
        self._pending.append(_Noted(utc_stamp(), model, adapter_folder, text, dict(numbers or {}), sampled))
        if self._thread is None:
            self.start()

    def start(self) -> None:
        """Start the writing thread (done by the first :meth:`note`)."""
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._loop, name="polyadapt-traffic", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.flush()

    def _origin(self, folder: Path | None) -> _Origin:
        if folder not in self._origins:
            try:
                self._origins[folder] = origin_of(folder)
            except Exception as exc:  # noqa: BLE001 - a damaged run folder must not stop serving
                log.warning("drift monitoring: cannot read the run of %s: %s", folder, exc)
                self._origins[folder] = _Origin(None, None)
        return self._origins[folder]

    def _row(self, noted: _Noted) -> dict[str, Any]:
        origin = self._origin(noted.adapter_folder)
        sample = None
        if noted.sampled and noted.text is not None and self.mask is not None:
            sample = self.mask(noted.text[:MAX_SAMPLE_CHARS])
        return {
            "time": noted.time,
            "model": noted.model,
            "run_id": origin.run_id,
            "features": input_features(noted.text, noted.numbers, origin.vocabulary),
            "sample": sample,
        }

    def flush(self) -> int:
        """Write what is queued now; returns how many rows were written (0 after an error)."""
        with self._lock:
            batch = []
            while self._pending:
                batch.append(self._pending.popleft())
            if not batch:
                return 0
            try:
                rows = [self._row(noted) for noted in batch]
                self.store.record_served_inputs(rows)
                return len(rows)
            except Exception as exc:  # noqa: BLE001 - monitoring never takes the server down
                self.dropped += len(batch)
                if time.monotonic() - self._last_error > 60:
                    self._last_error = time.monotonic()
                    log.warning("drift monitoring: %d served inputs not recorded: %s", len(batch), exc)
                return 0

    def close(self) -> None:
        """Stop the thread and write what is still queued."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()
