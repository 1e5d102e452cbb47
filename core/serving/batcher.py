"""Micro-batching: concurrent requests for one base answered by one servable call.

Requests wait up to ``batch_wait_ms`` (or until ``max_batch`` are waiting) and are then
answered by one ``servable.generate`` call (or another batch method, such as
``generate_images``) in a worker thread, one batch at a time per batcher, so concurrent
requests for different adapters of one base share a forward pass.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polyadapt.errors import PluginError, PolyadaptError
from polyadapt.types import GenerationRequest, GenerationResult, Servable

# ---------------------------------------------------------------------------------------
# Micro-batching
# ---------------------------------------------------------------------------------------


@dataclass
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
    """

    def __init__(
        self,
        servable: Servable,
        adapter_paths: dict[str, Path],
        *,
        max_batch: int,
        batch_wait_ms: float,
        method: str = "generate",
    ):
        self.servable = servable
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

    async def submit(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """Queue ``requests`` and wait for their results (a failed one raises its error)."""
        self._ensure_worker()
        loop = asyncio.get_running_loop()
        waiting = [_Pending(request, loop.create_future()) for request in requests]
        self._pending.extend(waiting)
        self._arrived.set()
        if len(self._pending) >= self.max_batch:
            self._full.set()
        return list(await asyncio.gather(*(p.future for p in waiting)))

    def _ensure_worker(self) -> None:
        """Start the batching task on the running event loop (again, if the loop changed)."""
        loop = asyncio.get_running_loop()
        if self._loop is loop and self._worker is not None and not self._worker.done():
            return
        self._stop_stale_worker()
        self._loop, self._pending = loop, []
        self._arrived, self._full = asyncio.Event(), asyncio.Event()
        self._worker = loop.create_task(self._run())

    def _stop_stale_worker(self) -> None:
        """Cancel the task left on another, still running loop (a test client's, say)."""
        if self._worker is not None and self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._worker.cancel)

    async def close(self) -> None:
        """Stop the batching task of the running loop."""
        if self._worker is not None and self._loop is asyncio.get_running_loop():
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
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
        try:
            outcomes = await asyncio.to_thread(self.run_batch, [p.request for p in live])
        except Exception as exc:  # run_batch catches per request; this is a last resort
            outcomes = [exc] * len(live)
        self.batches_run += 1
        for pending, outcome in zip(live, outcomes):
            if pending.future.done():
                continue
            if isinstance(outcome, BaseException):
                pending.future.set_exception(outcome)
            else:
                pending.future.set_result(outcome)

    def run_batch(self, requests: list[GenerationRequest]) -> list[GenerationResult | Exception]:
        """Load the adapters the batch needs, then generate; an error fails only its requests."""
        outcomes: dict[int, GenerationResult | Exception] = {}
        problems: dict[str | None, Exception | None] = {}
        ready = []
        for index, request in enumerate(requests):
            if request.adapter not in problems:
                problems[request.adapter] = self.ensure_adapter(request.adapter)
            problem = problems[request.adapter]
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

    def ensure_adapter(self, adapter: str | None) -> Exception | None:
        """Load ``adapter`` unless it is loaded (or is the base); return the error, if any.

        Runs in a worker thread: loading reads weights from disk.
        """
        if adapter is None or adapter in self.servable.adapter_names():
            return None
        path = self.adapter_paths.get(adapter)
        if path is None:
            return PolyadaptError(f"adapter {adapter!r} is not served on {self.servable.base_name!r}")
        try:
            self.servable.load_adapter(adapter, path)
        except Exception as exc:
            return exc
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
