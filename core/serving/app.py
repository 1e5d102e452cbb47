"""The OpenAI-compatible HTTP API of ``polyadapt serve``.

Endpoints: ``GET /health``, ``GET /v1/models``, ``GET /v1/models/{model}``,
``POST /v1/completions`` and ``POST /v1/chat/completions`` (streamed with ``stream: true``:
:mod:`polyadapt.serving.streaming`; every OpenAI option honoured or refused:
:mod:`polyadapt.serving.openai_compat`), ``POST /v1/embeddings``, plus the routes the served
tasks and the plugins declare (:mod:`polyadapt.serving.routes`). A request's ``model``
names a base (``tiny-llama``) or an adapter on it (``tiny-llama:insurance``).

Each base has one :class:`MicroBatcher` per batch method of its servable (``generate``, and
whatever its task's routes submit to): requests wait up to ``batch_wait_ms`` (or until
``max_batch`` are waiting) and are then answered by one call in a worker thread, one batch
at a time per method and base, so concurrent requests for different adapters of one base
share a forward pass. Adapters load on first use.

Errors use OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``: 404 for an
unknown model (the message lists the known ones), 400 for a bad body.

This module imports FastAPI and pydantic but not torch; the plugins import torch when
they load a base.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from polyadapt.errors import PluginError, PolyadaptError
from polyadapt.serving import openai_compat
from polyadapt.serving.adapter_cache import AdapterCache
from polyadapt.serving.batcher import MicroBatcher
from polyadapt.serving.engines import DEFAULT_ENGINE, check_engine
from polyadapt.serving.keys import KeyChecker, anonymous, check_model, docs_options, install_access, visible
from polyadapt.serving.limits import Lifecycle, LimitsMiddleware, QueueBound, route_body_limits
from polyadapt.serving.metrics import (
    NO_METRICS,
    BaseMetrics,
    count_tokens,
    install_metrics,
    note_model,
    note_named_model,
)
from polyadapt.serving.retrieval import RetrievalService, with_retrieved
from polyadapt.serving.retrieval import take_field as take_retrieval_field
from polyadapt.serving.routes import Route, mount_routes, unique_routes
from polyadapt.serving.schemas import (
    ApiError,
    ChatBody,
    CompletionBody,
    EmbeddingBody,
    error_response,
    validation_message,
)
from polyadapt.serving.settings import ServeSettings
from polyadapt.serving.streaming import stream_answer
from polyadapt.serving.traffic import TrafficRecorder, prompt_text
from polyadapt.types import GenerationRequest, GenerationResult, Run, Servable, ServeSpec

if TYPE_CHECKING:  # pragma: no cover
    from typing_extensions import Unpack

    from polyadapt.lineage.store import LineageStore
    from polyadapt.plugins import PluginManager
    from polyadapt.serving.follow import RegistryFollower
    from polyadapt.serving.guard import ServingGuard

#: OpenAI's default ``max_tokens`` for ``/v1/completions``.
DEFAULT_COMPLETION_TOKENS = 16
#: The default for ``/v1/chat/completions``, where OpenAI's is "up to the context".
DEFAULT_CHAT_TOKENS = 256
#: What a client writes between a base and an adapter name.
SEPARATOR = ":"


# ---------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------


@dataclass
class ServedBase:
    """One base model: its servable, the adapters it offers and its batchers.

    ``batchers`` holds one :class:`MicroBatcher` per batch method asked for so far
    (:meth:`batcher_for`), all sharing ``adapters``.

    ``adapters`` maps the servable's adapter keys to folders; ``routes`` maps the names
    clients use to those keys. They are the same unless the registry is followed, where
    ``insurance`` routes to the key of its active version (``insurance@3``), so a promotion
    or rollback re-routes the name without touching adapters already loaded.
    """

    servable: Servable
    adapters: dict[str, Path]
    max_batch: int
    batch_wait_ms: float
    routes: dict[str, str] = field(default_factory=dict)
    created: int = field(default_factory=lambda: int(time.time()))
    batchers: dict[str, MicroBatcher] = field(default_factory=dict)
    metrics: BaseMetrics = NO_METRICS
    settings: ServeSettings = field(default_factory=ServeSettings)
    cache: AdapterCache = field(init=False)
    queue: QueueBound = field(init=False)

    def __post_init__(self) -> None:
        # one adapter cache and one queue bound per base, shared by all its batchers
        self.cache = AdapterCache(
            self.servable,
            self.adapters,
            max_adapters=self.settings.max_adapters,
            max_bytes=self.settings.max_adapter_bytes,
            on_event=lambda event: self.metrics.adapter_event(event),
        )
        self.queue = QueueBound(self.settings.max_queue, model=self.servable.base_name)

    def batcher_for(self, method: str) -> MicroBatcher:
        """The micro-batcher of ``servable.<method>``, made on first use.

        Every batcher gets the same ``adapters`` dict, so adapters the registry follower adds
        reach all of them.
        """
        if method not in self.batchers:
            self.batchers[method] = MicroBatcher(
                self.servable,
                self.adapters,
                max_batch=self.max_batch,
                batch_wait_ms=self.batch_wait_ms,
                method=method,
                metrics=self.metrics,
                timeout_s=self.settings.request_timeout_s,
                queue=self.queue,
                cache=self.cache,
            )
        return self.batchers[method]

    def adapter_names(self) -> list[str]:
        """Every adapter name a client may use: routed ones and any loaded otherwise.

        A key of ``adapters`` is only reachable through a route: a registry version that is
        no longer routed (``insurance@2`` after a rollback) stays loaded but is not served.
        """
        targets = set(self.routes.values())
        loaded = [name for name in self.servable.adapter_names() if name not in targets and name not in self.adapters]
        return list(dict.fromkeys([*self.routes, *loaded]))

    def key_of(self, name: str) -> str:
        """The servable's adapter key for the client-facing ``name``."""
        return self.routes.get(name, name)


@contextlib.contextmanager
def api_errors(what: str) -> Iterator[None]:
    """Turn errors into :class:`ApiError`: a :class:`PolyadaptError` is 400, anything else 500."""
    try:
        yield
    except ApiError:
        raise
    except PolyadaptError as exc:
        raise ApiError(400, str(exc)) from exc
    except Exception as exc:
        raise ApiError(500, f"{what} failed: {type(exc).__name__}: {exc}", type="server_error") from exc


class ModelRegistry:
    """The served bases and the ``model`` names clients use for them.

    With a ``guard`` every prompt and output passes the serving policy; with a ``follower``
    the adapter routes follow the registry's active versions.
    """

    def __init__(
        self,
        servables: dict[str, Servable],
        adapters: dict[str, dict[str, Path]],
        *,
        max_batch: int,
        batch_wait_ms: float,
        routes: dict[str, dict[str, str]] | None = None,
        guard: ServingGuard | None = None,
        follower: RegistryFollower | None = None,
        settings: ServeSettings | None = None,
        traffic: TrafficRecorder | None = None,
        retrieval: RetrievalService | None = None,
    ):
        self.bases: dict[str, ServedBase] = {}
        self.guard, self.follower, self.traffic = guard, follower, traffic
        #: Indexes searched for chat requests that ask for retrieval (polyadapt.serving.retrieval).
        self.retrieval = retrieval if retrieval is not None else RetrievalService()
        limits = settings if settings is not None else ServeSettings()  # queue, deadline, adapter cache
        for name, servable in servables.items():
            paths = {k: Path(v) for k, v in adapters.get(name, {}).items()}
            base_routes = (routes or {}).get(name) or {key: key for key in paths}
            self.bases[name] = ServedBase(servable, paths, max_batch, batch_wait_ms, dict(base_routes), settings=limits)

    def model_names(self) -> list[str]:
        """Every base name and every ``base:adapter`` name."""
        names = []
        for base, served in self.bases.items():
            names.append(base)
            names.extend(f"{base}{SEPARATOR}{adapter}" for adapter in served.adapter_names())
        return visible(names)  # with API keys: only those the request's key may use

    def resolve(self, model: str) -> tuple[str, str | None]:
        """(base, the servable's adapter key or None) for a ``model`` name; 404 if unknown.

        403 if the request's API key may not use ``model`` (before 404: no key learns what exists).
        """
        check_model(model)
        if self.follower is not None:
            self.follower.refresh(self)
        if model in self.bases:
            note_model(model)
            return model, None
        for base, served in self.bases.items():
            prefix = base + SEPARATOR
            if model.startswith(prefix) and model[len(prefix) :] in served.adapter_names():
                note_model(model)
                return base, served.key_of(model[len(prefix) :])
        known = ", ".join(self.model_names()) or "none"
        raise ApiError(
            404, f"the model {model!r} does not exist; known models: {known}", param="model", code="model_not_found"
        )

    def model_cards(self) -> list[dict[str, Any]]:
        """``/v1/models`` entries for every base and adapter."""
        cards = []
        for base, served in self.bases.items():
            card = {"object": "model", "created": served.created, "owned_by": "polyadapt", "root": base}
            cards.append({"id": base, **card, "parent": None})
            cards.extend({"id": f"{base}{SEPARATOR}{a}", **card, "parent": base} for a in served.adapter_names())
        return [card for card in cards if visible([card["id"]])]

    async def generate(self, base: str, requests: list[GenerationRequest], *, model: str) -> list[GenerationResult]:
        """Answer ``requests`` for ``model`` on ``base`` through its batcher and the policy.

        Errors become :class:`ApiError`; a prompt the policy refuses never reaches the model.
        """
        guard = self.guard
        if not callable(getattr(self.bases[base].servable, "generate", None)):
            raise ApiError(
                400,
                f"the model {model!r} does not generate text; use a text or code model",
                param="model",
                code="model_not_supported",
            )
        context = getattr(self.bases[base].servable, "context", None)
        for request in requests:
            if isinstance(context, int) and request.max_tokens >= context:
                # never fits whatever the prompt: a 400 now, not a place in the queue (nor a 429)
                raise ApiError(
                    400,
                    f"max_tokens ({request.max_tokens:,}) leaves no room for a prompt: {model!r} reads at most "
                    f"{context:,} positions, prompt and completion together; lower max_tokens",
                    param="max_tokens",
                    code="context_length_exceeded",
                )
        if guard is not None:
            requests = [guard.check_request(request, model=model) for request in requests]
        for request in requests:
            self.note_input(base, request.adapter, model, prompt_text(request))
        with api_errors("generation"):
            results = await self.bases[base].batcher_for("generate").submit(requests)
            if guard is not None:
                results = [
                    guard.check_result(result, model=model, adapter=request.adapter)
                    for request, result in zip(requests, results)
                ]
        count_tokens(sum(r.prompt_tokens for r in results), sum(r.completion_tokens for r in results))
        return results

    def note_input(
        self, base: str, adapter: str | None, model: str, text: str | None, numbers: dict[str, float] | None = None
    ) -> None:
        """Record one served input's statistics for drift monitoring (when the server monitors)."""
        if self.traffic is not None:
            folder = self.bases[base].adapters.get(adapter) if adapter else None
            self.traffic.note(model, folder, text, numbers)

    async def submit(self, base: str, method: str, requests: list[Any], *, what: str) -> list[Any]:
        """Answer ``requests`` with ``servable.<method>`` on ``base`` through its micro-batcher:
        concurrent requests of one base are answered together. The caller applies the
        serving policy. Errors become :class:`ApiError`.
        """
        served = self.bases[base]
        if not callable(getattr(served.servable, method, None)):
            raise ApiError(400, f"the model {base!r} does not offer {what}", param="model", code="model_not_supported")
        with api_errors(what):
            return await served.batcher_for(method).submit(requests)

    async def close(self, grace_s: float = 0.0) -> None:
        """Stop every batcher, letting queued and running requests finish for up to ``grace_s``."""
        batchers = [batcher for served in self.bases.values() for batcher in served.batchers.values()]
        await asyncio.gather(*(batcher.close(grace_s) for batcher in batchers))


# ---------------------------------------------------------------------------------------
# Application
# ---------------------------------------------------------------------------------------


def _add_error_handlers(app: FastAPI) -> None:
    """Answer every error in OpenAI's shape (400 for a bad body, not FastAPI's 422)."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _bad_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = validation_message(exc)
        note_named_model(exc.body)
        return error_response(400, message, param=param)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return error_response(exc.status_code, str(exc.detail), type=kind)


def _add_routes(app: FastAPI, registry: ModelRegistry) -> None:
    """The health, model-listing and generation endpoints."""

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness, the served model names and the adapters loaded so far."""
        loaded = {base: s.servable.adapter_names() for base, s in registry.bases.items()}
        if anonymous():  # keys are required and this request gave none: no model names
            loaded = {}
        return {"status": "ok", "models": registry.model_names(), "loaded_adapters": loaded}

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        """Every base and every ``base:adapter``, in OpenAI's model-list shape."""
        return {"object": "list", "data": registry.model_cards()}

    @app.get("/v1/models/{model:path}")
    async def get_model(model: str) -> dict[str, Any]:
        """One model card; 404 if the model is not served."""
        registry.resolve(model)
        return next(card for card in registry.model_cards() if card["id"] == model)

    @app.post("/v1/completions", response_model=None)
    async def completions(body: CompletionBody) -> Any:
        """Complete a prompt (or each of a list of prompts), ``n`` choices each; streamed with
        ``stream`` (options: :mod:`polyadapt.serving.openai_compat`)."""
        base, adapter = registry.resolve(body.model)
        max_tokens = body.max_tokens or DEFAULT_COMPLETION_TOKENS
        plan = openai_compat.completion_plan(body, adapter, max_tokens, registry.bases[base].servable)
        if body.stream:
            return await stream_answer(registry, base, plan, model=body.model)
        results = await registry.generate(base, plan.requests, model=body.model)
        return openai_compat.completion_response(body.model, plan, results)

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(body: ChatBody) -> Any:
        """Answer a conversation with the assistant's next message (``n`` choices); streamed
        with ``stream``."""
        base, adapter = registry.resolve(body.model)
        asked, sent = take_retrieval_field(body)  # before the option check, which refuses unknown fields
        max_tokens = body.max_completion_tokens or body.max_tokens or DEFAULT_CHAT_TOKENS
        plan = openai_compat.chat_plan(body, adapter, max_tokens, registry.bases[base].servable)
        folder = registry.bases[base].adapters.get(adapter) if adapter else None
        choice = registry.retrieval.choose(asked, sent, folder)
        if choice is not None:  # the passages join the messages; the answer lists their sources
            plan = with_retrieved(plan, await registry.retrieval.retrieve(choice, plan.requests[0].messages or []))
        if body.stream:
            return await stream_answer(registry, base, plan, model=body.model)
        results = await registry.generate(base, plan.requests, model=body.model)
        return openai_compat.chat_response(body.model, plan, results) | plan.extra

    @app.post("/v1/embeddings")
    async def embeddings(body: EmbeddingBody) -> dict[str, Any]:
        """Embed a text or a list of texts (mean-pooled last hidden state, L2-normalised)."""
        return await openai_compat.embeddings(registry, body)


def build_app(
    servables: dict[str, Servable],
    *,
    adapters: dict[str, dict[str, Path]] | None = None,
    max_batch: int = 8,
    batch_wait_ms: float = 5.0,
    routes: dict[str, dict[str, str]] | None = None,
    guard: ServingGuard | None = None,
    follower: RegistryFollower | None = None,
    endpoints: list[Route] | None = None,
    settings: ServeSettings | None = None,
    api_keys: KeyChecker | None = None,
    traffic: TrafficRecorder | None = None,
    retrieval: RetrievalService | None = None,
) -> FastAPI:
    """The FastAPI application serving ``servables`` (base name → servable).

    ``adapters`` maps a base name to the adapters it offers (key → folder); they are
    loaded on first use. Adapters a servable has loaded already are served as well.
    ``routes`` (base → client name → key) defaults to each key under its own name;
    ``guard`` (:class:`polyadapt.serving.guard.ServingGuard`) applies the serving policy;
    ``follower`` (:class:`polyadapt.serving.follow.RegistryFollower`) keeps routes on the
    registry's active versions; ``endpoints`` are the tasks' and plugins' own
    :class:`~polyadapt.serving.routes.Route` records. ``settings``
    (:class:`~polyadapt.serving.settings.ServeSettings`) holds the limits and switches; without
    it, ``max_batch`` and ``batch_wait_ms`` with the defaults of the rest, and no API keys
    asked for (``polyadapt serve`` asks for them unless told ``--no-keys``). With
    ``settings.require_keys``, ``api_keys`` (:class:`~polyadapt.serving.keys.KeyChecker`) checks
    them; without it, the keys of the default lineage store. ``traffic``
    (:class:`~polyadapt.serving.traffic.TrafficRecorder`) records the inputs' statistics for
    ``polyadapt monitor``. ``retrieval`` (:class:`~polyadapt.serving.retrieval.RetrievalService`)
    finds the indexes chat requests ask for (default: those of the project's state folder).
    """
    if settings is None:
        if max_batch < 1:
            raise PolyadaptError(f"--max-batch must be at least 1, got {max_batch}")
        if batch_wait_ms < 0:
            raise PolyadaptError(f"--batch-wait-ms must not be negative, got {batch_wait_ms}")
        settings = ServeSettings(max_batch=max_batch, batch_wait_ms=batch_wait_ms, require_keys=False)
    registry = ModelRegistry(
        servables,
        adapters or {},
        max_batch=settings.max_batch,
        batch_wait_ms=settings.batch_wait_ms,
        routes=routes,
        guard=guard,
        follower=follower,
        settings=settings,
        traffic=traffic,
        retrieval=retrieval,
    )
    lifecycle = Lifecycle()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await registry.close(grace_s=lifecycle.grace_left(settings.shutdown_grace_s))
        if traffic is not None:
            await asyncio.to_thread(traffic.close)  # what is still queued reaches the store

    app = FastAPI(
        title="polyadapt",
        description="OpenAI-compatible completions with LoRA adapters",
        lifespan=lifespan,
        **docs_options(settings),  # /docs, /redoc and /openapi.json only when asked for
    )
    app.state.registry = registry
    app.state.settings = settings
    app.state.lifecycle = lifecycle  # polyadapt.serving.shutdown starts the drain on SIGTERM
    _add_error_handlers(app)
    _add_routes(app, registry)
    mount_routes(app, endpoints or [], registry)
    app.add_middleware(
        LimitsMiddleware,  # 413 for a large body, the request deadline, 503 while draining
        max_body_bytes=settings.max_body_bytes,
        route_body_bytes=route_body_limits(endpoints or [], settings.max_body_bytes),
        timeout_s=settings.request_timeout_s,
        lifecycle=lifecycle,
    )
    install_access(app, settings, api_keys)  # API keys and CORS
    install_metrics(app)  # last: its middleware is the outermost, so it sees every answer
    return app


# ---------------------------------------------------------------------------------------
# From run folders
# ---------------------------------------------------------------------------------------


def _base_key(run: Run) -> tuple[str, str, str | None, str | None, str | None, str]:
    """Runs with equal keys share one loaded base."""
    base = run.config.base_model
    return (run.task.name, base.id, base.revision, base.gguf_file, base.tokenizer, base.dtype)


def _unique(name: str, used: set[str]) -> str:
    """``name``, or ``name-2``, ``name-3`` … when another base already took it."""
    candidate, number = name, 1
    while candidate in used:
        number += 1
        candidate = f"{name}-{number}"
    used.add(candidate)
    return candidate


def _adapter_map(runs: list[Run], base_name: str) -> dict[str, Path]:
    """Adapter name → adapter folder for runs on one base; a clash is an error."""
    adapters: dict[str, Path] = {}
    owners: dict[str, Path] = {}
    for run in runs:
        name = run.config.output.adapter_name or run.dir.name
        if name == "__base__" or SEPARATOR in name or not name:
            raise PolyadaptError(f"{run.dir}: adapter name {name!r} cannot be served; set output.adapter_name")
        if name in adapters:
            raise PolyadaptError(
                f"runs {owners[name]} and {run.dir} both serve adapter {base_name}{SEPARATOR}{name}; "
                "give one of them another output.adapter_name"
            )
        adapters[name], owners[name] = run.adapter_dir, run.dir
    return adapters


def group_runs_by_base(runs: list[Run]) -> list[tuple[str, list[Run]]]:
    """Runs grouped by the base they share, each group under a unique base name."""
    groups: dict[tuple[str, str, str | None, str | None, str | None, str], list[Run]] = {}
    for run in runs:
        groups.setdefault(_base_key(run), []).append(run)
    used: set[str] = set()
    return [(_unique(group[0].config.base_model.display_name(), used), group) for group in groups.values()]


def serve_specs(pm: PluginManager, run_dirs: Iterable[Path | str]) -> list[ServeSpec]:
    """One :class:`ServeSpec` per (task, base model) among the run folders."""
    from polyadapt.runner import load_run

    runs: list[Run] = []
    seen: set[Path] = set()
    for run_dir in run_dirs:
        run, _ = load_run(pm, run_dir)
        if run.dir not in seen:
            seen.add(run.dir)
            runs.append(run)
    if not runs:
        raise PolyadaptError("give at least one run folder to serve, or --registry")
    return [
        ServeSpec(
            task=group[0].task,
            base_model=group[0].config.base_model.id,
            base_name=name,
            adapters=_adapter_map(group, name),
            config=group[0].config,
        )
        for name, group in group_runs_by_base(runs)
    ]


class AppOptions(TypedDict, total=False):
    """What :func:`build_app_from_specs` passes on to :func:`build_app`."""

    max_batch: int
    batch_wait_ms: float
    routes: dict[str, dict[str, str]] | None
    guard: ServingGuard | None
    follower: RegistryFollower | None
    settings: ServeSettings | None
    api_keys: KeyChecker | None
    traffic: TrafficRecorder | None
    retrieval: RetrievalService | None


def build_app_from_specs(pm: PluginManager, specs: list[ServeSpec], **options: Unpack[AppOptions]) -> FastAPI:
    """Load each base of ``specs`` once (via ``polyadapt_serve``) and build the app.

    ``options`` go to :func:`build_app` (batching, routes, guard, follower, retrieval). The
    index each adapter's run config names (``retrieval.index``) is opened first: a missing one
    stops here, before any base loads, as does an engine (``settings.engine``) that cannot serve
    the specs (:func:`polyadapt.serving.engines.check_engine`). Each spec reaches
    ``polyadapt_serve`` with ``settings`` set.
    """
    settings = options.get("settings")
    check_engine(specs, settings.engine if settings is not None else DEFAULT_ENGINE)  # before any base loads
    retrieval = options.get("retrieval") or RetrievalService()
    retrieval.check_specs(specs)
    options["retrieval"] = retrieval
    if settings is not None:  # the servables see the engine and the sizes asked for
        specs = [dataclasses.replace(spec, settings=settings) for spec in specs]
    servables: dict[str, Servable] = {}
    for spec in specs:
        servable = pm.dispatch("polyadapt_serve", spec.task, spec=spec)
        if not isinstance(servable, Servable):
            raise PluginError(
                f"plugin {spec.task.plugin!r} returned {type(servable).__name__} from polyadapt_serve, not a Servable"
            )
        servables[spec.base_name] = servable
    adapters = {spec.base_name: dict(spec.adapters) for spec in specs}
    return build_app(servables, adapters=adapters, endpoints=served_endpoints(pm, specs), **options)


def served_endpoints(pm: PluginManager, specs: list[ServeSpec]) -> list[Route]:
    """The routes of every served task plus those plugins add through ``polyadapt_routes``."""
    routes: list[Route] = []
    owners: list[str] = []
    for task in {id(spec.task): spec.task for spec in specs}.values():
        declared = list(task.routes() or [])
        routes += declared
        owners += [f"task {task.name!r} (plugin {task.plugin!r})"] * len(declared)
    for plugin_routes, owner in pm.plugin_routes():
        routes += plugin_routes
        owners += [f"plugin {owner!r}"] * len(plugin_routes)
    return unique_routes(routes, owners)


def serving_policy_path(specs: list[ServeSpec], explicit: Path | None) -> Path | None:
    """The policy to serve under: ``explicit``, else the one every served run's config names.

    ``None`` means the strict default. Runs that name different policies need ``--policy``.
    """
    if explicit is not None:
        return explicit
    named = {spec.config.governance.policy if spec.config else None for spec in specs}
    if len(named) > 1:
        shown = ", ".join(sorted(str(p or "the strict default") for p in named))
        raise PolyadaptError(
            f"the served runs were trained under different policies ({shown}); "
            "choose the serving policy with --policy FILE"
        )
    return named.pop() if named else None


def build_app_from_runs(
    pm: PluginManager,
    run_dirs: Iterable[Path | str] = (),
    *,
    max_batch: int = 8,
    batch_wait_ms: float = 5.0,
    registry_store: LineageStore | None = None,
    follow_interval_s: float = 2.0,
    policy: Path | None = None,
    audit_log: Path | None = None,
    settings: ServeSettings | None = None,
    api_keys: KeyChecker | None = None,
    traffic_store: LineageStore | None = None,
) -> FastAPI:
    """The app for ``polyadapt serve``: run folders, or the registry's active adapters.

    With ``registry_store`` the adapters are the registry's active versions and follow it
    (promotions and rollbacks take effect within ``follow_interval_s``). Every prompt and
    output passes the serving policy (``policy``, else the runs' own), and every decision is
    appended to ``audit_log`` (default: ``audit.jsonl`` in the state folder). With
    ``traffic_store`` and ``settings.monitor``, every input's statistics are recorded there
    for ``polyadapt monitor`` (a ``settings.sample_requests`` share with the text, masked).
    """
    from polyadapt.gate import build_redactor
    from polyadapt.governance.audit import AuditLog
    from polyadapt.governance.policy import load_policy
    from polyadapt.lineage.state import state_dir
    from polyadapt.serving.follow import RegistryFollower, registry_specs
    from polyadapt.serving.guard import ServingGuard

    routes, follower = None, None
    if registry_store is not None:
        specs, routes = registry_specs(pm, registry_store)
        follower = RegistryFollower(registry_store, interval_s=follow_interval_s)
    else:
        specs = serve_specs(pm, run_dirs)
    check_engine(specs, settings.engine if settings is not None else DEFAULT_ENGINE)  # before the policy's models
    serving_policy = load_policy(serving_policy_path(specs, policy))
    redactor = build_redactor(pm, serving_policy)
    if serving_policy.serving.scan_prompts or serving_policy.serving.scan_outputs or traffic_store is not None:
        redactor.load()  # a detector's model loads at start, not during the first request (not at all unscanned)
    guard = ServingGuard(serving_policy, redactor, AuditLog(audit_log or state_dir() / "audit.jsonl"))
    traffic = None
    if traffic_store is not None and settings is not None and settings.monitor:
        from polyadapt.serving.traffic import masking

        traffic = TrafficRecorder(traffic_store, sample_rate=settings.sample_requests, mask=masking(redactor))
    return build_app_from_specs(
        pm,
        specs,
        max_batch=max_batch,
        batch_wait_ms=batch_wait_ms,
        routes=routes,
        guard=guard,
        follower=follower,
        settings=settings,
        api_keys=api_keys,
        traffic=traffic,
    )
