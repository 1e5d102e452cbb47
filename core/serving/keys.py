"""API keys for ``polyadapt serve``: creation, verification, per-key model scopes and rate limits.

A key is ``pa-`` and 32 random URL-safe characters, shown once by ``polyadapt keys create``.
The lineage store keeps its name, its first 8 characters (to find it and to show it), a
random salt and the SHA-256 of salt + secret, never the secret: the secret carries 190 random
bits, so a fast salted hash is as safe as a slow one, and the store may be a shared
PostgreSQL that several servers read (a per-machine secret such as the governance key would
tie a key to one machine).

A server reads the keys once at start and again at most every ``ttl_s`` seconds, so a key
created or revoked while it runs takes effect within that time without a restart, and no
request waits on the database otherwise. :class:`ApiKeyMiddleware` answers every request
but ``GET /health`` with 401 unless it carries ``Authorization: Bearer <key>`` of a key that
is not revoked, and with 429 (and ``Retry-After``) once the key is over its rate (a token
bucket per key, in memory, per process). Which models a key may use is checked where the
request's model is resolved (:func:`check_model`, 403) and ``/v1/models`` lists only those
(:func:`visible`); the key of the request in flight is a context variable the middleware sets.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import ipaddress
import logging
import math
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from polyadapt.errors import PolyadaptError
from polyadapt.serving.schemas import ApiError

if TYPE_CHECKING:  # pragma: no cover
    from fastapi import FastAPI
    from starlette.types import ASGIApp, Receive, Scope, Send

    from polyadapt.lineage.store import LineageStore
    from polyadapt.serving.settings import ServeSettings

log = logging.getLogger(__name__)

#: What every secret starts with, so that a leaked one is recognisable (and greppable).
SECRET_PREFIX = "pa-"
#: Random characters after the prefix (``secrets.token_urlsafe(24)`` gives exactly 32).
SECRET_CHARS = 32
#: Characters of the secret the store keeps in the clear, to find a key and to show it.
PREFIX_LENGTH = 8
#: Paths answered without a key (GET or HEAD only).
OPEN_PATHS = frozenset({"/health"})
#: How often a server re-reads the keys by default (revocations take effect within it).
DEFAULT_TTL_S = 2.0
DEFAULT_RATE = "60/min"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_UNITS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}
_UNIT_NAMES = {1.0: "s", 60.0: "min", 3600.0: "hour", 86400.0: "day"}
_UNLIMITED = {"none", "unlimited", "off"}


# ---------------------------------------------------------------------------------------
# Keys and their records
# ---------------------------------------------------------------------------------------


class Rate(NamedTuple):
    """At most ``requests`` requests per ``period_s`` seconds."""

    requests: int
    period_s: float

    def __str__(self) -> str:
        return f"{self.requests}/{_UNIT_NAMES[self.period_s]}"


def parse_rate(text: str | None) -> Rate | None:
    """``60/min`` (also ``/s``, ``/hour``, ``/day``) as a :class:`Rate`; ``none``: no limit."""
    if text is None or text.strip().lower() in _UNLIMITED:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*/\s*([a-z]+?)s?\s*", text.lower())
    if match is None or match.group(2) not in _UNITS or int(match.group(1)) < 1:
        raise PolyadaptError(
            f"rate {text!r} is not a request rate: write COUNT/UNIT with COUNT at least 1 and UNIT "
            "s, min, hour or day (e.g. 60/min), or 'none' for no limit"
        )
    return Rate(int(match.group(1)), _UNITS[match.group(2)])


def parse_models(text: str) -> list[str]:
    """The model names of ``--adapters``: ``base``, ``base:adapter`` or ``base:*``, comma-separated."""
    entries = [part.strip() for part in text.split(",") if part.strip()]
    if not entries:
        raise PolyadaptError("--adapters names no model; give e.g. tiny-llama:insurance,tiny-llama or use --all")
    for entry in entries:
        base, _, adapter = entry.partition(":")
        if not base or any(c.isspace() for c in entry) or (":" in entry and not adapter) or ":" in adapter:
            raise PolyadaptError(
                f"--adapters entry {entry!r} is not a model name: write BASE (the base alone), "
                "BASE:ADAPTER, or BASE:* (the base and all its adapters)"
            )
    return list(dict.fromkeys(entries))


def new_secret() -> str:
    """A fresh key secret: ``pa-`` and 32 random URL-safe characters."""
    return SECRET_PREFIX + secrets.token_urlsafe(24)


def hash_secret(secret: str, salt: str) -> str:
    """The hex SHA-256 of ``salt`` + ``secret``: what the store keeps."""
    return hashlib.sha256(f"{salt}{secret}".encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """One key as the server knows it (no secret): name, scope, rate, lifetime."""

    name: str
    prefix: str
    salt: str
    secret_hash: str
    #: Model names it may use (``base``, ``base:adapter``, ``base:*``); None: every model.
    adapters: tuple[str, ...] | None
    rate: str | None
    created: str
    revoked: str | None = None

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> ApiKey:
        """From a :meth:`LineageStore.list_api_keys` row."""
        adapters = record.get("adapters")
        return cls(
            name=record["name"],
            prefix=record["prefix"],
            salt=record["salt"],
            secret_hash=record["secret_hash"],
            adapters=None if adapters is None else tuple(adapters),
            rate=record.get("rate"),
            created=record["created"],
            revoked=record.get("revoked"),
        )

    def may_use(self, model: str) -> bool:
        """Whether this key may use ``model`` (``base`` or ``base:adapter``)."""
        if self.adapters is None:
            return True
        base = model.partition(":")[0]
        return any(entry == model or (entry.endswith(":*") and entry[:-2] == base) for entry in self.adapters)

    def scope_text(self) -> str:
        """The models it may use, for messages and ``keys list``."""
        if self.adapters is None:
            return "all models"
        return ", ".join(self.adapters) or "no model"


def check_key_name(name: str) -> None:
    """Raise unless ``name`` can name a key (letters, digits, '.', '-', '_'; at most 128)."""
    if not NAME_PATTERN.match(name):
        raise PolyadaptError(
            f"key name {name!r} is not allowed: use letters, digits, '.', '-' and '_' "
            "(at most 128, starting with a letter or digit)"
        )


def create_key(
    store: LineageStore, name: str, *, adapters: list[str] | None, rate: str | None = DEFAULT_RATE
) -> tuple[str, ApiKey]:
    """Make a key: (its secret, to show once, and the record the store now keeps).

    ``adapters`` None lets it use every model; ``rate`` None (or ``none``) sets no limit.
    """
    check_key_name(name)
    parsed = parse_rate(rate)
    secret = new_secret()
    salt = secrets.token_hex(16)
    record = store.create_api_key(
        name,
        prefix=secret[:PREFIX_LENGTH],
        salt=salt,
        secret_hash=hash_secret(secret, salt),
        adapters=None if adapters is None else list(adapters),
        rate=None if parsed is None else str(parsed),
    )
    return secret, ApiKey.from_record(record)


# ---------------------------------------------------------------------------------------
# The key of the request in flight
# ---------------------------------------------------------------------------------------

#: The request's key: None where keys are off; :data:`ANONYMOUS` on an open path.
_current: contextvars.ContextVar[ApiKey | None] = contextvars.ContextVar("polyadapt_api_key", default=None)
#: Keys are required but this request (to an open path) gave none: it may see no model.
ANONYMOUS = ApiKey(name="", prefix="", salt="", secret_hash="", adapters=(), rate=None, created="")


def current_key() -> ApiKey | None:
    """The key of the request being answered; None when the server asks for no keys."""
    return _current.get()


def anonymous() -> bool:
    """Whether keys are required but the request (to an open path) gave none."""
    return _current.get() is ANONYMOUS


def check_model(model: str) -> None:
    """403 unless the request's key may use ``model`` (a no-op without keys)."""
    key = _current.get()
    if key is not None and not key.may_use(model):
        raise ApiError(
            403,
            f"the API key {key.name!r} may not use the model {model!r}; it may use: {key.scope_text()}",
            type="permission_error",
            param="model",
            code="model_not_allowed",
        )


def visible(names: Iterable[str]) -> list[str]:
    """The model names among ``names`` the request's key may use (all of them without keys)."""
    key = _current.get()
    return [name for name in names if key is None or key.may_use(name)]


# ---------------------------------------------------------------------------------------
# Verification and rate limits
# ---------------------------------------------------------------------------------------


def _unauthorized(message: str) -> ApiError:
    return ApiError(
        401,
        message,
        headers={"WWW-Authenticate": "Bearer"},
        type="invalid_request_error",
        code="invalid_api_key",
    )


@dataclass
class TokenBucket:
    """``rate.requests`` requests at once, refilled evenly over ``rate.period_s``."""

    rate: Rate
    tokens: float
    stamp: float

    def take(self, now: float) -> float:
        """Take one request's token: 0.0 if there was one, else the seconds until there is."""
        per_second = self.rate.requests / self.rate.period_s
        self.tokens = min(float(self.rate.requests), self.tokens + (now - self.stamp) * per_second)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / per_second


class KeyChecker:
    """The server's view of the keys in ``store``: verification, revocations, rate limits.

    Reads the keys at construction (so a database error shows at start) and again when a
    request comes at least ``ttl_s`` seconds after the last read; if a re-read fails, the keys
    read last stay in force and the failure is logged.
    """

    def __init__(
        self, store: LineageStore, *, ttl_s: float = DEFAULT_TTL_S, clock: Callable[[], float] = time.monotonic
    ):
        self.store = store
        self.ttl_s = ttl_s
        self.clock = clock
        self._by_prefix: dict[str, list[ApiKey]] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._read_at = float("-inf")
        self._read_lock = threading.Lock()  # one re-read at a time, in a worker thread
        self._bucket_lock = threading.Lock()  # never held across a database read
        self.refresh(force=True)

    @classmethod
    def open(cls, url: str | None = None, **options: Any) -> KeyChecker:
        """The checker of the lineage store at ``url`` (default: ``$POLYADAPT_DB_URL`` or the state folder)."""
        from polyadapt.lineage.store import LineageStore

        return cls(LineageStore.open(url), **options)

    def due(self) -> bool:
        """Whether the keys should be read again before the next request is checked."""
        return self.clock() - self._read_at >= self.ttl_s

    def refresh(self, *, force: bool = False) -> None:
        """Read the keys again if :meth:`due` (or ``force``)."""
        with self._read_lock:
            if not force and not self.due():
                return
            try:
                records = self.store.list_api_keys()
            except PolyadaptError as exc:
                if force:
                    raise
                log.warning("could not re-read the API keys (the last ones read stay in force): %s", exc)
                records = None
            self._read_at = self.clock()
            if records is None:
                return
            by_prefix: dict[str, list[ApiKey]] = {}
            for record in records:
                key = ApiKey.from_record(record)
                by_prefix.setdefault(key.prefix, []).append(key)
            self._by_prefix = by_prefix

    def active_keys(self) -> list[ApiKey]:
        """The keys read last that are not revoked."""
        return [key for keys in self._by_prefix.values() for key in keys if key.revoked is None]

    def authenticate(self, authorization: str | None) -> ApiKey:
        """The key an ``Authorization`` header value carries; 401 if none, unknown or revoked."""
        if not authorization or not authorization.strip():
            raise _unauthorized(
                "this server needs an API key: send it as 'Authorization: Bearer <key>' "
                "(the server's owner creates keys with `polyadapt keys create NAME`)"
            )
        scheme, _, secret = authorization.strip().partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret:
            raise _unauthorized("the Authorization header must be 'Bearer <key>'")
        found = self._match(secret)
        if found is None:
            shown = secret[:PREFIX_LENGTH] + "…" if len(secret) > PREFIX_LENGTH else "…"
            raise _unauthorized(
                f"the API key given ({shown}) is not valid on this server; check it, or ask for "
                "one (`polyadapt keys create NAME`)"
            )
        if found.revoked is not None:
            raise _unauthorized(f"the API key {found.name!r} was revoked at {found.revoked}; ask for a new one")
        return found

    def _match(self, secret: str) -> ApiKey | None:
        """The key whose hash ``secret`` matches, compared in constant time."""
        candidates = self._by_prefix.get(secret[:PREFIX_LENGTH], [])
        if not candidates:
            # the same work as a real check, so timing does not tell which prefixes exist
            hmac.compare_digest(hash_secret(secret, "0" * 32), "0" * 64)
            return None
        found = None
        for key in candidates:
            if hmac.compare_digest(hash_secret(secret, key.salt), key.secret_hash):
                found = key
        return found

    def limit(self, key: ApiKey) -> None:
        """Count one request against ``key``'s rate; 429 with ``Retry-After`` when it is over."""
        rate = parse_rate(key.rate)
        if rate is None:
            return
        with self._bucket_lock:
            now = self.clock()
            bucket = self._buckets.get(key.name)
            if bucket is None or bucket.rate != rate:
                bucket = self._buckets[key.name] = TokenBucket(rate, float(rate.requests), now)
            wait = bucket.take(now)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise ApiError(
                429,
                f"the API key {key.name!r} is over its rate limit of {rate} requests; retry in {seconds} s",
                headers={"Retry-After": str(seconds)},
                type="requests",
                code="rate_limit_exceeded",
            )


# ---------------------------------------------------------------------------------------
# The server side
# ---------------------------------------------------------------------------------------


class ApiKeyMiddleware:
    """Asks every request but ``open_paths`` (GET/HEAD) for a key (401) within its rate (429).

    The request's key is then the context's (:func:`current_key`) while the app answers it.
    """

    def __init__(self, app: ASGIApp, checker: KeyChecker, open_paths: Iterable[str] = OPEN_PATHS):
        self.app = app
        self.checker = checker
        self.open_paths = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] in ("GET", "HEAD") and scope["path"] in self.open_paths:
            key = ANONYMOUS
        else:
            try:
                key = await self._check(scope)
            except ApiError as exc:
                await exc.response()(scope, receive, send)
                return
        token = _current.set(key)
        try:
            await self.app(scope, receive, send)
        finally:
            _current.reset(token)

    async def _check(self, scope: Scope) -> ApiKey:
        from anyio import to_thread
        from starlette.datastructures import Headers

        if self.checker.due():  # the database read runs off the event loop
            await to_thread.run_sync(self.checker.refresh)
        key = self.checker.authenticate(Headers(scope=scope).get("authorization"))
        self.checker.limit(key)
        return key


def docs_options(settings: ServeSettings) -> dict[str, Any]:
    """FastAPI's arguments that switch the interactive docs and the schema off unless ``settings.docs``."""
    return {} if settings.docs else {"docs_url": None, "redoc_url": None, "openapi_url": None}


def install_access(app: FastAPI, settings: ServeSettings, checker: KeyChecker | None) -> None:
    """Add the API-key middleware (when ``settings.require_keys``) and CORS (when origins are set).

    Without a ``checker`` the keys come from the default lineage store. CORS goes outside the
    keys, so a browser's preflight is answered without one and refusals carry CORS headers.
    With the docs switched on they are served without a key (they show no model), and so is
    ``/metrics`` with ``settings.metrics_public``.
    """
    if settings.require_keys:
        from polyadapt.serving.metrics import keyless_paths

        open_paths = set(OPEN_PATHS) | keyless_paths(settings)  # /metrics with settings.metrics_public
        if settings.docs:
            docs = (app.docs_url, app.redoc_url, app.openapi_url, app.swagger_ui_oauth2_redirect_url)
            open_paths.update(path for path in docs if path)
        app.add_middleware(
            ApiKeyMiddleware,
            checker=checker if checker is not None else KeyChecker.open(),
            open_paths=open_paths,
        )
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["Retry-After"],
        )


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` keeps the server on this machine (``127.0.0.1``, ``::1``, ``localhost``)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False
