"""Limits that keep ``polyadapt serve`` answering whatever it is sent.

- :class:`LimitsMiddleware` (pure ASGI, so that it can stop reading) answers 413 for a body
  over the limit: at once when ``Content-Length`` says so, else as soon as a streamed
  (chunked) body grows past it, without reading the rest. A route may declare a larger
  limit (an upload route: :func:`route_body_limits`). It also stamps each request's
  deadline (:func:`deadline`) and answers 503 while the server drains for shutdown.
- :class:`QueueBound` bounds the requests waiting or running on one base, across its
  micro-batchers: one more is refused at once with :class:`ServerBusy` (429, Retry-After).
- :class:`DeadlineExceeded` (504) is the answer when waiting plus running takes longer
  than the server's timeout; :class:`ShuttingDown` (503) while the server drains.

Every answer is in OpenAI's error shape.
"""

from __future__ import annotations

import contextvars
import math
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from polyadapt.serving.schemas import ApiError

if TYPE_CHECKING:  # pragma: no cover
    from polyadapt.serving.routes import Route

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Room for a multipart form's other fields and boundaries beside a route's largest upload.
FORM_OVERHEAD_BYTES = 1024 * 1024


def _size(count: int) -> str:
    """``count`` bytes for people: ``1 MB (1,048,576 bytes)``."""
    if count >= 1024 * 1024:
        return f"{count / (1024 * 1024):g} MB ({count:,} bytes)"
    return f"{count:,} bytes"


# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------


class BodyTooLarge(ApiError):
    """413: the request body is larger than the server (or the route) accepts."""

    def __init__(self, limit: int):
        super().__init__(
            413,
            f"the request body is larger than {_size(limit)}, the most this endpoint accepts; "
            "send a shorter prompt or a smaller file (the server's limit is --max-body-bytes)",
            code="request_too_large",
        )
        self.limit = limit


class ServerBusy(ApiError):
    """429: the base already has as many requests waiting or running as it queues."""

    def __init__(self, model: str, max_queue: int, retry_after_s: int):
        super().__init__(
            429,
            f"the server is busy: {model!r} already has {max_queue} requests waiting or running "
            f"(--max-queue); retry after {retry_after_s} s",
            type="rate_limit_exceeded",
            code="server_busy",
            headers={"Retry-After": str(retry_after_s)},
        )
        self.retry_after_s = retry_after_s


class DeadlineExceeded(ApiError):
    """504: waiting in the queue plus generating took longer than the request may."""

    def __init__(self, timeout_s: float):
        super().__init__(
            504,
            f"the request took longer than {timeout_s:g} s (the server's --timeout); "
            "send a shorter prompt or a lower max_tokens, or retry when the server is less busy",
            type="timeout_error",
            code="request_timeout",
        )


class ShuttingDown(ApiError):
    """503: the server is finishing its last requests before it stops."""

    def __init__(self) -> None:
        super().__init__(
            503,
            "the server is shutting down and takes no new requests; retry in a moment",
            type="server_error",
            code="server_shutting_down",
        )


# ---------------------------------------------------------------------------------------
# Deadlines
# ---------------------------------------------------------------------------------------

#: (monotonic deadline, the timeout it came from) of the request being answered, set by
#: :class:`LimitsMiddleware` when the request arrives.
_request_deadline: contextvars.ContextVar[tuple[float, float] | None] = contextvars.ContextVar(
    "polyadapt_request_deadline", default=None
)


def deadline(timeout_s: float | None) -> tuple[float, float] | None:
    """(monotonic deadline, timeout) for work on the current request.

    The deadline stamped when the request arrived if there is one (so time spent before
    the queue counts too), else ``timeout_s`` from now; None when neither applies.
    """
    stamped = _request_deadline.get()
    if stamped is not None:
        return stamped
    if timeout_s is None:
        return None
    return time.monotonic() + timeout_s, timeout_s


# ---------------------------------------------------------------------------------------
# Queue bound
# ---------------------------------------------------------------------------------------


def retry_after_s(batch_seconds: float | None, waiting: int, max_batch: int) -> int:
    """Seconds a refused client should wait: the batches ahead of it times a recent batch's
    duration (1 s when none ran yet), at least 1."""
    batches = math.ceil(max(waiting, 1) / max(max_batch, 1))
    return max(1, math.ceil(batches * (batch_seconds if batch_seconds is not None else 1.0)))


class QueueBound:
    """The requests waiting or running on one base, across all its micro-batchers.

    Each batcher registers a callable giving its own count (:meth:`add`); :meth:`admit`
    refuses a request that would take the total past ``max_queue``.
    """

    def __init__(self, max_queue: int, *, model: str = "the model"):
        self.max_queue = max_queue
        self.model = model
        self._counts: list[Callable[[], int]] = []

    def add(self, count: Callable[[], int]) -> None:
        """Count the requests ``count()`` reports (a batcher's waiting plus running ones)."""
        self._counts.append(count)

    def depth(self) -> int:
        """Requests waiting or running on the base now."""
        return sum(count() for count in self._counts)

    def admit(self, incoming: int, *, retry_after: Callable[[int], int]) -> None:
        """Refuse ``incoming`` more requests if the base cannot queue them.

        :class:`ServerBusy` (429) when they would take it past ``max_queue`` (``retry_after``
        gets the depth and gives the seconds to suggest); a 400 when one request holds more
        inputs than the server ever queues, as waiting would never help.
        """
        if incoming > self.max_queue:
            raise ApiError(
                400,
                f"this request holds {incoming} inputs, more than the server queues per model "
                f"({self.max_queue}, --max-queue); send at most {self.max_queue} at a time",
                code="too_many_inputs",
            )
        depth = self.depth()
        if depth + incoming > self.max_queue:
            raise ServerBusy(self.model, self.max_queue, retry_after(depth))


# ---------------------------------------------------------------------------------------
# Shutdown state
# ---------------------------------------------------------------------------------------


@dataclass
class Lifecycle:
    """Whether the server drains for shutdown (set on SIGTERM, see :mod:`polyadapt.serving.shutdown`)."""

    draining_since: float | None = None

    @property
    def draining(self) -> bool:
        """True once shutdown began: new requests get 503."""
        return self.draining_since is not None

    def start_draining(self) -> None:
        """Refuse new requests from now on (idempotent)."""
        if self.draining_since is None:
            self.draining_since = time.monotonic()

    def grace_left(self, grace_s: float) -> float:
        """Seconds of ``grace_s`` left since draining began (all of it if it has not)."""
        if self.draining_since is None:
            return grace_s
        return max(0.0, grace_s - (time.monotonic() - self.draining_since))


# ---------------------------------------------------------------------------------------
# The middleware
# ---------------------------------------------------------------------------------------


def route_body_limits(routes: Iterable[Route], default: int) -> dict[str, int]:
    """Path → largest body for routes that need another limit than ``default``.

    A route's own ``max_body_bytes`` wins; a form route may take its largest upload
    (``max_upload_bytes``) plus room for the other fields when that is more than ``default``.
    """
    limits: dict[str, int] = {}
    for route in routes:
        if route.max_body_bytes is not None:
            limits[route.path] = route.max_body_bytes
        elif route.form:
            limits[route.path] = max(default, route.max_upload_bytes + FORM_OVERHEAD_BYTES)
    return limits


def _path_pattern(path: str) -> re.Pattern[str] | None:
    """A regex for a route path with parameters (``/v1/things/{id}``), None for a plain one."""
    if "{" not in path:
        return None
    from starlette.routing import compile_path

    return compile_path(path)[0]


async def send_error(send: Send, error: ApiError, *, close: bool = False) -> None:
    """Answer ``error`` in OpenAI's shape straight through ASGI ``send``."""
    response = error.response()
    if close:
        response.headers["Connection"] = "close"
    await send({"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class _BodyGuard:
    """``receive`` and ``send`` for one request: count body bytes, stop at the limit.

    Past the limit, ``receive`` raises :class:`BodyTooLarge` and never reads again; whatever
    the application answers then (a framework may turn the error into a 400 of its own) is
    replaced by the 413.
    """

    def __init__(self, receive: Receive, send: Send, limit: int):
        self._receive, self._send, self.limit = receive, send, limit
        self.received = 0
        self.overflowed = False
        self.started = False

    async def receive(self) -> Message:
        if self.overflowed:
            raise BodyTooLarge(self.limit)
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                self.overflowed = True
                raise BodyTooLarge(self.limit)
        return message

    async def send(self, message: Message) -> None:
        if self.overflowed:
            if message["type"] == "http.response.start" and not self.started:
                await self.answer_too_large()
            return
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)

    async def answer_too_large(self) -> None:
        self.started = True
        # the rest of the body never reaches the application; the HTTP server discards it as it
        # arrives (no memory held) and the connection stays usable for the client's next request
        await send_error(self._send, BodyTooLarge(self.limit))


class LimitsMiddleware:
    """Body size, request deadline and shutdown drain for every HTTP request (pure ASGI).

    :param max_body_bytes: the largest body a route without its own limit accepts.
    :param route_body_bytes: path → limit for routes with their own (:func:`route_body_limits`).
    :param timeout_s: each request's deadline from its arrival (:func:`deadline`).
    :param lifecycle: while it drains, every new request is answered 503.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        route_body_bytes: Mapping[str, int] | None = None,
        timeout_s: float | None = None,
        lifecycle: Lifecycle | None = None,
    ):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.timeout_s = timeout_s
        self.lifecycle = lifecycle
        self._exact: dict[str, int] = {}
        self._patterns: list[tuple[re.Pattern[str], int]] = []
        for path, limit in (route_body_bytes or {}).items():
            pattern = _path_pattern(path)
            if pattern is None:
                self._exact[path] = limit
            else:
                self._patterns.append((pattern, limit))

    def limit_for(self, path: str) -> int:
        """The largest body accepted on ``path``."""
        if path in self._exact:
            return self._exact[path]
        for pattern, limit in self._patterns:
            if pattern.match(path):
                return limit
        return self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.lifecycle is not None and self.lifecycle.draining:
            await send_error(send, ShuttingDown(), close=True)
            return
        limit = self.limit_for(scope.get("path", ""))
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            # answered before a byte of the body is read; the server discards the rest
            await send_error(send, BodyTooLarge(limit))
            return
        token = None
        if self.timeout_s is not None:
            token = _request_deadline.set((time.monotonic() + self.timeout_s, self.timeout_s))
        guard = _BodyGuard(receive, send, limit)
        try:
            await self.app(scope, guard.receive, guard.send)
        except Exception:
            if not guard.overflowed:
                raise
            if not guard.started:
                await guard.answer_too_large()
        finally:
            if token is not None:
                _request_deadline.reset(token)
