"""Prometheus metrics of ``polyadapt serve``, at ``GET /metrics``.

Every app has its own :class:`ServingMetrics` (its own ``CollectorRegistry``, so several apps in
one process never share counters), at ``app.state.metrics``. What it counts:

========================================== ============================ =============================
metric                                     labels                       counted
========================================== ============================ =============================
``polyadapt_requests_total``               route, model, status         every HTTP request
``polyadapt_request_errors_total``         route, model, type           every answer >= 400 (``type``
                                                                        is the OpenAI error type)
``polyadapt_request_seconds``              route, model                 latency histogram
``polyadapt_time_to_first_token_seconds``  model                        generation answers only: the
                                                                        full latency, or for a stream
                                                                        :func:`first_token` (else its
                                                                        first body chunk)
``polyadapt_tokens_total``                 model, direction (in | out)  prompt and completion tokens
                                                                        as in the answer's ``usage``
``polyadapt_queue_depth``                  base                         requests waiting for a batch,
                                                                        read when scraped
``polyadapt_batch_size``                   base                         requests per batch run
``polyadapt_adapter_cache_total``          base, event (hit | load |    adapter look-ups of a batch
                                           eviction)                    and evictions
``polyadapt_governance_total``             direction (prompt | output), findings the serving policy
                                           action (redact, refuse, …)   acted on (as in the audit log)
``polyadapt_retrieval_seconds``            index                        chat requests with retrieval:
                                                                        the index search's seconds
``polyadapt_retrieval_passages_total``     index                        passages added to prompts
========================================== ============================ =============================

Label values stay bounded: ``route`` is the route's path template (``/v1/models/{model:path}``;
``unmatched`` for a path no route serves), ``model`` a served model name (``base`` or
``base:adapter``) or ``unknown``, ``type`` an error type of a few words.

Per-request facts reach the metrics through the request's context: the ASGI middleware
(:class:`MetricsMiddleware`) opens a record for each request, and the code answering it notes
what it learns with the module functions :func:`note_model` (the model a request resolved to),
:func:`count_tokens` (its usage) and :func:`first_token` (when a streamed answer sent its first
token). Outside a request they do nothing.

``/metrics`` asks for an API key like every other route when keys are required, unless
``ServeSettings.metrics_public`` (``polyadapt serve --metrics-public``) is set, for a scraper that
cannot send one: the key check lets :func:`keyless_paths` through.
"""

from __future__ import annotations

import contextvars
import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:  # pragma: no cover
    from fastapi import FastAPI
    from prometheus_client.metrics_core import Metric
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from polyadapt.governance.redact import TextOutcome

#: Latency buckets (seconds): a tiny model on a CPU answers in milliseconds, a large one on a
#: long prompt in a minute or two (the default request deadline is 120 s).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, float("inf"))
#: Batch-size buckets: powers of two up to well past any sensible ``max_batch``.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, float("inf"))
#: The ``model`` label of a request that named no served model (or none at all).
UNKNOWN = "unknown"
#: The ``route`` label of a request no route matched.
UNMATCHED = "unmatched"
#: Adapter cache events.
ADAPTER_EVENTS = ("hit", "load", "eviction")
#: How much of an error answer's body is read for its ``type``; errors are short JSON objects.
_ERROR_BODY_LIMIT = 16 * 1024
_ERROR_TYPE = re.compile(r"[a-z][a-z0-9_]{0,39}")


class ServingMetrics:
    """The metrics of one app, in their own :class:`CollectorRegistry` (see the module docs)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "polyadapt_requests",
            "HTTP requests answered, by route, model and status code",
            ["route", "model", "status"],
            registry=self.registry,
        )
        self.errors = Counter(
            "polyadapt_request_errors",
            "Requests answered with an error (status >= 400), by route, model and OpenAI error type",
            ["route", "model", "type"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "polyadapt_request_seconds",
            "Seconds from a request's arrival to the end of its answer",
            ["route", "model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ttft = Histogram(
            "polyadapt_time_to_first_token_seconds",
            "Seconds from a generation request's arrival to its first token (the full latency when not streamed)",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter(
            "polyadapt_tokens",
            "Tokens read (in: prompt) and generated (out: completion), as reported in usage",
            ["model", "direction"],
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "polyadapt_batch_size",
            "Requests answered per batch, by base",
            ["base"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.adapter_cache = Counter(
            "polyadapt_adapter_cache",
            "Adapter cache events by base: hit (already loaded), load, eviction",
            ["base", "event"],
            registry=self.registry,
        )
        self.governance = Counter(
            "polyadapt_governance",
            "Findings the serving policy acted on, by direction (prompt, output) and action (redact, refuse, ...)",
            ["direction", "action"],
            registry=self.registry,
        )
        self.retrieval_seconds = Histogram(
            "polyadapt_retrieval_seconds",
            "Seconds the index search of a chat request with retrieval took, by index",
            ["index"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.retrieval_passages = Counter(
            "polyadapt_retrieval_passages",
            "Passages retrieval added to chat requests, by index",
            ["index"],
            registry=self.registry,
        )
        self._queues = _QueueDepth()
        self.registry.register(self._queues)
        self._known: Callable[[str], bool] = lambda model: False

    # -- wiring ------------------------------------------------------------------------

    def watch(self, queue_depths: Callable[[], dict[str, int]], known_model: Callable[[str], bool]) -> None:
        """Read the queue depth per base from ``queue_depths()`` when scraped; ``known_model(name)``
        says whether a model named in a rejected body is served (else it is counted as unknown)."""
        self._queues.source = queue_depths
        self._known = known_model

    def for_base(self, base: str) -> BaseMetrics:
        """The recorder a base's batchers and adapter cache use."""
        return BaseMetrics(self, base)

    # -- recording ---------------------------------------------------------------------

    def adapter_event(self, base: str, event: str) -> None:
        """Count an adapter cache ``event`` (``hit``, ``load`` or ``eviction``) on ``base``."""
        if event not in ADAPTER_EVENTS:
            raise ValueError(f"adapter cache event must be one of {', '.join(ADAPTER_EVENTS)}, not {event!r}")
        self.adapter_cache.labels(base=base, event=event).inc()

    def observe_batch(self, base: str, size: int) -> None:
        """Record one batch of ``size`` requests run on ``base``."""
        self.batch_size.labels(base=base).observe(size)

    def count_governance(self, outcome: TextOutcome, *, direction: str, blocked_terms_action: str) -> None:
        """Count what the serving policy did to one text (each finding, as the audit log does)."""
        for kind, count in outcome.findings.items():
            self.governance.labels(direction=direction, action=outcome.actions.get(kind, "redact")).inc(count)
        if outcome.blocked_terms:
            self.governance.labels(direction=direction, action=blocked_terms_action).inc(outcome.blocked_terms)

    def finish(self, record: RequestRecord, route: str) -> None:
        """Record a request that has been answered."""
        model = record.model or (record.named_model if record.named_model and self._known(record.named_model) else None)
        model = model or UNKNOWN
        status = record.status
        seconds = record.ended - record.started
        self.requests.labels(route=route, model=model, status=str(status)).inc()
        self.latency.labels(route=route, model=model).observe(seconds)
        if status >= 400:
            self.errors.labels(route=route, model=model, type=record.error_type()).inc()
        if record.tokens_in or record.tokens_out:
            self.tokens.labels(model=model, direction="in").inc(record.tokens_in)
            self.tokens.labels(model=model, direction="out").inc(record.tokens_out)
        if record.generated and status < 400:
            first = record.first_token_at or record.first_chunk_at or record.ended
            self.ttft.labels(model=model).observe(first - record.started)
        if record.retrieval is not None:
            index, passages, seconds = record.retrieval
            self.retrieval_seconds.labels(index=index).observe(seconds)
            self.retrieval_passages.labels(index=index).inc(passages)

    def exposition(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


@dataclass(frozen=True)
class BaseMetrics:
    """What one base's batchers and adapter cache record (a no-op when ``metrics`` is None)."""

    metrics: ServingMetrics | None
    base: str

    def batch(self, size: int) -> None:
        """One batch of ``size`` requests ran."""
        if self.metrics is not None:
            self.metrics.observe_batch(self.base, size)

    def adapter_event(self, event: str) -> None:
        """An adapter was found loaded (``hit``), ``load``-ed, or evicted (``eviction``)."""
        if self.metrics is not None:
            self.metrics.adapter_event(self.base, event)


#: The recorder of a batcher outside an app (tests that build a MicroBatcher alone).
NO_METRICS = BaseMetrics(None, "")


class _QueueDepth(Collector):
    """``polyadapt_queue_depth{base}``, read from the batchers when scraped: it is always the
    number waiting now, whatever happened to requests in between."""

    def __init__(self) -> None:
        self.source: Callable[[], dict[str, int]] = dict

    def collect(self) -> Iterable[Metric]:
        gauge = GaugeMetricFamily("polyadapt_queue_depth", "Requests waiting for a batch, by base", labels=["base"])
        for base, depth in self.source().items():
            gauge.add_metric([base], depth)
        yield gauge

    def describe(self) -> Iterable[Metric]:
        yield GaugeMetricFamily("polyadapt_queue_depth", "Requests waiting for a batch, by base", labels=["base"])


# ---------------------------------------------------------------------------------------
# Per request
# ---------------------------------------------------------------------------------------


@dataclass
class RequestRecord:
    """What is learnt about one request while it is answered."""

    started: float = field(default_factory=time.perf_counter)
    ended: float = 0.0
    status: int = 500
    model: str | None = None
    named_model: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    generated: bool = False
    first_token_at: float | None = None
    first_chunk_at: float | None = None
    error_body: bytes = b""
    #: The index a chat request's retrieval searched, the passages added and the search's seconds.
    retrieval: tuple[str, int, float] | None = None

    def error_type(self) -> str:
        """The OpenAI error type of the answer (``error.type`` of its body), else by status."""
        try:
            kind = json.loads(self.error_body)["error"]["type"]
        except (ValueError, KeyError, TypeError):
            kind = None
        if isinstance(kind, str) and _ERROR_TYPE.fullmatch(kind):
            return kind
        return "server_error" if self.status >= 500 else "invalid_request_error"


_CURRENT: contextvars.ContextVar[RequestRecord | None] = contextvars.ContextVar("polyadapt_request", default=None)


def note_model(model: str) -> None:
    """The current request names ``model``, a served model (its ``model`` label)."""
    record = _CURRENT.get()
    if record is not None:
        record.model = model


def note_named_model(body: Any) -> None:
    """The ``model`` a rejected request body names, if any: it labels the request when served."""
    record = _CURRENT.get()
    if record is not None and isinstance(body, dict) and isinstance(body.get("model"), str):
        record.named_model = body["model"]


def count_tokens(prompt_tokens: int, completion_tokens: int) -> None:
    """Add ``usage`` to the current request: its tokens in and out (call once per answer)."""
    record = _CURRENT.get()
    if record is not None:
        record.tokens_in += prompt_tokens
        record.tokens_out += completion_tokens
        record.generated = True


def note_retrieval(index: str, passages: int, seconds: float) -> None:
    """The current request's retrieval searched ``index`` in ``seconds`` and added ``passages``."""
    record = _CURRENT.get()
    if record is not None:
        record.retrieval = (index, passages, seconds)


def first_token() -> None:
    """The current request sent its first token now (streaming answers call this; without it
    the time to first token is the time of the first body chunk, or the full latency)."""
    record = _CURRENT.get()
    if record is not None and record.first_token_at is None:
        record.first_token_at = time.perf_counter()


def current_record() -> RequestRecord | None:
    """The record of the request being answered (None outside one)."""
    return _CURRENT.get()


# ---------------------------------------------------------------------------------------
# The app
# ---------------------------------------------------------------------------------------


class MetricsMiddleware:
    """ASGI middleware: times every HTTP request and records it when its answer has gone."""

    def __init__(self, app: ASGIApp, metrics: ServingMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        record = RequestRecord()
        token = _CURRENT.set(record)
        started = False

        async def send_and_note(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started, record.status = True, int(message["status"])
            elif message["type"] == "http.response.body":
                body = message.get("body", b"")
                if record.first_chunk_at is None and body and message.get("more_body", False):
                    record.first_chunk_at = time.perf_counter()
                if record.status >= 400 and len(record.error_body) < _ERROR_BODY_LIMIT:
                    record.error_body += body[: _ERROR_BODY_LIMIT - len(record.error_body)]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        except BaseException:
            if not started:
                record.status = 500
            raise
        finally:
            _CURRENT.reset(token)
            record.ended = time.perf_counter()
            route = scope.get("route")
            self.metrics.finish(record, getattr(route, "path", None) or UNMATCHED)


def queue_depths(bases: dict[str, Any]) -> Callable[[], dict[str, int]]:
    """Requests waiting per base, summed over its batchers (``bases``: the registry's)."""

    def read() -> dict[str, int]:
        return {name: sum(b.waiting for b in served.batchers.values()) for name, served in bases.items()}

    return read


#: Where the metrics are served.
METRICS_PATH = "/metrics"


def install_metrics(app: FastAPI) -> ServingMetrics:
    """Give ``app`` (built by :func:`polyadapt.serving.app.build_app`, with ``app.state.registry``)
    its metrics at ``app.state.metrics``: the middleware, ``GET /metrics``, the per-base recorders
    and the guard's counter. Call it after every other middleware is added: the last added is the
    outermost, and only from there every answer (a 413 or 401 from another middleware) is seen."""
    from fastapi.responses import Response

    registry = app.state.registry
    metrics = ServingMetrics()
    metrics.watch(queue_depths(registry.bases), lambda name: name in registry.model_names())
    for name, served in registry.bases.items():
        served.metrics = metrics.for_base(name)
    if registry.guard is not None:
        registry.guard.metrics = metrics
    app.state.metrics = metrics

    async def scrape() -> Response:
        """The server's metrics in Prometheus's text format."""
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route(METRICS_PATH, scrape, methods=["GET"], include_in_schema=False)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return metrics


def keyless_paths(settings: Any) -> set[str]:
    """The paths an API-key check lets through without a key: ``/metrics`` when
    ``settings.metrics_public`` (:class:`~polyadapt.serving.settings.ServeSettings`) is set."""
    return {METRICS_PATH} if getattr(settings, "metrics_public", False) else set()
