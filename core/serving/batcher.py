"""Micro-batching: concurrent requests for one base answered by one servable call.

Requests wait up to ``batch_wait_ms`` (or until ``max_batch`` are waiting) and are then
answered by one ``servable.generate`` call (or another batch method, such as
``generate_images``) in a worker thread, one batch at a time per batcher, so concurrent
requests for different adapters of one base share a forward pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polyadapt.errors import PluginError, PolyadaptError
from polyadapt.serving.limits import DeadlineExceeded, QueueBound, ShuttingDown, deadline, retry_after_s
from polyadapt.serving.metrics import NO_METRICS, BaseMetrics
from polyadapt.types import GenerationRequest, GenerationResult, Servable

if TYPE_CHECKING:  # pragma: no cover
    from polyadapt.serving.adapter_cache import AdapterCache

# ---------------------------------------------------------------------------------------
# Micro-batching
# ---------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Pending:
    request: Any
    future: asyncio.Future


class MicroBatcher:
    """Gathers the requests for one servable and answers them in batches, one at a time.

    A batch closes ``batch_wait_ms`` after its first request arrived or as soon as
    ``max_batch`` requests wait; it then runs in a worker thread while new requests gather
    for the next one. Adapters named in ``adapter_paths`` are loaded on first use.

    ``method`` names the servable's batch method: ``generate`` (text requests) or, say,
    ``generate_images``; it takes a list of requests, each with an ``adapter``, and returns
    one result per request.

    Limits (:mod:`polyadapt.serving.limits`): ``queue`` (or ``max_queue`` for this batcher
    alone) bounds the requests waiting or running, one more is a 429; past ``timeout_s``
    (or the deadline the request was stamped with on arrival) a request is a 504, and one
    still queued is dropped. With ``cache`` (:class:`~polyadapt.serving.adapter_cache.AdapterCache`)
    adapters load and are evicted through it, and a batch whose adapters do not fit it
    together runs in parts.
    """

    def __init__(
        self,
        servable: Servable,
        adapter_paths: dict[str, Path],
        *,
        max_batch: int,
        batch_wait_ms: float,
        method: str = "generate",
        metrics: BaseMetrics = NO_METRICS,
        max_queue: int | None = None,
        timeout_s: float | None = None,
        queue: QueueBound | None = None,
        cache: AdapterCache | None = None,
    ):
        self.servable = servable
        self.metrics = metrics
        self.timeout_s = timeout_s
        self.cache = cache
        self.queue = queue if queue is not None else QueueBound(max_queue or 2**31, model=servable.base_name)
        self.queue.add(self.depth)
        self.batch_seconds: float | None = None  # how long the last batch took (for Retry-After)
        self._running: list[_Pending] = []  # the batch being answered
        self._closing = False
        self.method = method
        self.adapter_paths = adapter_paths
        self.max_batch = max_batch
        self.batch_wait = batch_wait_ms / 1000.0
        self.batches_run = 0
        self._pending: list[_Pending] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: asyncio.Task | None = None
        # Replaced by _ensure_worker for each event loop before any use (an Event binds to the
        # loop it is first awaited on); made here so that they are never None.
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()

    @property
    def waiting(self) -> int:
        """Requests queued for the next batches (not yet running)."""
        return len(self._pending)

    def depth(self) -> int:
        """Requests waiting or running (a request answered 504 counts until its batch ends)."""
        return len(self._pending) + len(self._running)

    def retry_after(self, depth: int) -> int:
        """Seconds to suggest to a client refused while ``depth`` requests wait or run."""
        return retry_after_s(self.batch_seconds, depth, self.max_batch)

    async def submit(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """Queue ``requests`` and wait for their results (a failed one raises its error).

        Refused at once when shutting down (503) or when the queue is full (429); past the
        deadline a :class:`~polyadapt.serving.limits.DeadlineExceeded` (504).
        """
        self._ensure_worker()
        if self._closing:
            raise ShuttingDown()
        self.queue.admit(len(requests), retry_after=self.retry_after)
        until = deadline(self.timeout_s)
        loop = asyncio.get_running_loop()
        waiting = [_Pending(request, loop.create_future()) for request in requests]
        self._pending.extend(waiting)
        self._arrived.set()
        if len(self._pending) >= self.max_batch:
            self._full.set()
        futures = [p.future for p in waiting]
        try:
            timeout = None if until is None else max(0.0, until[0] - time.monotonic())
            done, _ = await asyncio.wait(futures, timeout=timeout)
            if until is not None and len(done) < len(futures):
                # queued: dropped below, never generated; already generating: answered now, while
                # its batch (a forward pass cannot be interrupted) finishes in the background
                raise DeadlineExceeded(until[1])
            return [future.result() for future in futures]
        finally:
            self._drop(waiting)

    def _drop(self, waiting: list[_Pending]) -> None:
        """Forget requests no one waits for any more: those still queued leave the queue
        (never generated); those running are let finish in the background, their answer unused."""
        if any(not p.future.done() for p in waiting):
            self._pending = [p for p in self._pending if p not in waiting]
            for pending in waiting:
                pending.future.cancel()

    def _ensure_worker(self) -> None:
        """Start the batching task on the running event loop (again, if the loop changed)."""
        loop = asyncio.get_running_loop()
        if self._loop is loop and self._worker is not None and not self._worker.done():
            return
        self._stop_stale_worker()
        self._loop, self._pending, self._running, self._closing = loop, [], [], False
        self._arrived, self._full = asyncio.Event(), asyncio.Event()
        self._worker = loop.create_task(self._run())

    def _stop_stale_worker(self) -> None:
        """Cancel the task left on another, still running loop (a test client's, say)."""
        if self._worker is not None and self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._worker.cancel)

    async def close(self, grace_s: float = 0.0) -> None:
        """Stop the batching task of the running loop, draining first: new requests get 503,
        and those queued or running may finish for up to ``grace_s`` seconds; any still
        unanswered then get 503."""
        if self._worker is not None and self._loop is asyncio.get_running_loop():
            self._closing = True
            until = time.monotonic() + grace_s
            while self.depth() and time.monotonic() < until:
                await asyncio.sleep(0.02)
            unanswered = [*self._pending, *self._running]  # the worker forgets its batch when cancelled
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            for pending in unanswered:
                if not pending.future.done():
                    pending.future.set_exception(ShuttingDown())
            self._pending, self._running = [], []
        self._worker = None

    async def _run(self) -> None:
        """Collect and answer batches until cancelled."""
        while True:
            batch = await self._collect()
            await self._answer(batch)

    async def _collect(self) -> list[_Pending]:
        """Wait for a first request, then for the batch to fill or the wait to pass."""
        await self._arrived.wait()
        if len(self._pending) < self.max_batch and self.batch_wait > 0:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._full.wait(), self.batch_wait)
        batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
        if not self._pending:
            self._arrived.clear()
        if len(self._pending) < self.max_batch:
            self._full.clear()
        return batch

    async def _answer(self, batch: list[_Pending]) -> None:
        """Run one batch in a worker thread and resolve each request's future."""
        live = [p for p in batch if not p.future.done()]  # a client may have gone away
        if not live:
            return
        self._running, started = live, time.monotonic()
        try:
            outcomes = await asyncio.to_thread(self.run_batch, [p.request for p in live])
        except Exception as exc:  # run_batch catches per request; this is a last resort
            outcomes = [exc] * len(live)
        finally:
            self._running, self.batch_seconds = [], time.monotonic() - started
        self.batches_run += 1
        self.metrics.batch(len(live))
        for pending, outcome in zip(live, outcomes):
            if pending.future.done():
                continue
            if isinstance(outcome, BaseException):
                pending.future.set_exception(outcome)
            else:
                pending.future.set_result(outcome)

    def run_batch(self, requests: list[GenerationRequest]) -> list[GenerationResult | Exception]:
        """Load the adapters the batch needs, then generate; an error fails only its requests.

        With an adapter cache, a batch whose adapters do not fit it together runs in parts.
        """
        outcomes: dict[int, GenerationResult | Exception] = {}
        adapters = [request.adapter for request in requests]
        parts = self.cache.groups(adapters) if self.cache is not None else [list(range(len(requests)))]
        for part in parts:
            with self._adapters_loaded([adapters[i] for i in part]) as problems:
                ready = []
                for index in part:
                    problem = problems.get(adapters[index])
                    if problem is not None:
                        outcomes[index] = problem
                    else:
                        ready.append(index)
                answers = self._generate_isolated([requests[i] for i in ready]) if ready else []
            for index, answer in zip(ready, answers):
                outcomes[index] = answer
        # every index is filled: a failed adapter above, else one answer each (_generate_isolated
        # answers every request it is given)
        return [outcomes[index] for index in range(len(requests))]

    @contextlib.contextmanager
    def _adapters_loaded(self, adapters: list[str | None]) -> Iterator[dict[str | None, Exception]]:
        """Load ``adapters`` (through the cache, which keeps them while inside); yields the
        error of each one that could not be loaded."""
        if self.cache is not None:
            with self.cache.using(adapters) as problems:
                yield dict(problems)
            return
        found: dict[str | None, Exception] = {}
        for name in dict.fromkeys(adapters):
            problem = self.ensure_adapter(name)
            if problem is not None:
                found[name] = problem
        yield found

    def ensure_adapter(self, adapter: str | None) -> Exception | None:
        """Load ``adapter`` unless it is loaded (or is the base); return the error, if any.

        Runs in a worker thread: loading reads weights from disk.
        """
        if adapter is None:
            return None
        if adapter in self.servable.adapter_names():
            self.metrics.adapter_event("hit")
            return None
        path = self.adapter_paths.get(adapter)
        if path is None:
            return PolyadaptError(f"adapter {adapter!r} is not served on {self.servable.base_name!r}")
        try:
            self.servable.load_adapter(adapter, path)
        except Exception as exc:
            return exc
        self.metrics.adapter_event("load")
        return None

    def _generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """``servable.<method>``, checked to answer every request."""
        results = list(getattr(self.servable, self.method)(requests))
        if len(results) != len(requests):
            raise PluginError(
                f"the servable of {self.servable.base_name!r} answered {len(results)} results "
                f"for {len(requests)} requests"
            )
        return results

    def _generate_isolated(self, requests: list[GenerationRequest]) -> list[GenerationResult | Exception]:
        """Generate for the batch; if that fails, retry one by one so one bad request fails alone."""
        try:
            return list(self._generate(requests))
        except Exception as exc:
            if len(requests) == 1:
                return [exc]
        outcomes: list[GenerationResult | Exception] = []
        for request in requests:
            try:
                outcomes.extend(self._generate([request]))
            except Exception as exc:
                outcomes.append(exc)
        return outcomes
