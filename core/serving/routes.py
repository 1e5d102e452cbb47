"""Endpoints that tasks and plugins add to ``polyadapt serve``, behind the server's machinery.

A task returns :class:`Route` records from :meth:`polyadapt.task.Task.routes` (a plugin not
tied to one task, from the ``polyadapt_routes`` hook). The server mounts each one; a
request then goes:

1. the body is parsed (JSON, or a multipart form with file uploads) and validated with the
   route's pydantic ``body`` model: a bad body is a 400 in OpenAI's error shape that names
   the field, an upload over ``max_upload_bytes`` a 413;
2. the route's ``handler(body, ctx)`` runs with a :class:`RouteContext`, through which it
   resolves ``model`` names (``base`` or ``base:adapter``), passes text through the serving
   policy (redacted or refused, audited) and submits requests to the servable's batch
   methods, micro-batched with other requests for the same base and loaded adapters cached;
3. what it returns is answered: a dict or a pydantic model as JSON, a :class:`TextResponse`
   as text. An :class:`~polyadapt.serving.schemas.ApiError` it raises becomes that status;
   any other error a 500 in OpenAI's shape; the server keeps running.

A handler never imports FastAPI::

    async def classify(body: ClassificationBody, ctx: RouteContext) -> dict:
        target = ctx.resolve(body.model, method="classify")
        texts = [ctx.check_prompt(text, target) for text in body.inputs()]
        results = await ctx.submit(target, "classify", [Request(t, target.adapter) for t in texts])
        return {"object": "list", "data": [...]}

    Route("/v1/classifications", classify, body=ClassificationBody)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import Request
from pydantic import BaseModel, ConfigDict, ValidationError

from polyadapt.serving.schemas import ApiError, validation_message

if TYPE_CHECKING:  # pragma: no cover
    from fastapi import FastAPI

    from polyadapt.serving.app import ModelRegistry

#: OpenAI's limit for uploaded files; a route may set its own.
DEFAULT_MAX_UPLOAD_BYTES = 25 * 1024 * 1024


@dataclass(frozen=True)
class Route:
    """One HTTP endpoint a task or plugin adds.

    :param path: the URL path (``/v1/classifications``).
    :param handler: ``async handler(body, ctx) -> dict | BaseModel | TextResponse``.
    :param body: the pydantic model the request body is validated with (None: no body).
    :param form: the body is a multipart form (file fields arrive as :class:`Upload`),
        not JSON.
    :param method: the HTTP method.
    :param summary: one line for the API docs.
    :param max_upload_bytes: the largest upload a form route accepts (413 beyond).
    :param max_body_bytes: the largest request body (413 beyond, before it is read); None:
        the server's ``max_body_bytes``, or for a form route enough for its largest upload.
    """

    path: str
    handler: Callable[[Any, RouteContext], Awaitable[Any]]
    body: type[BaseModel] | None = None
    form: bool = False
    method: str = "POST"
    summary: str = ""
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_body_bytes: int | None = None

    @property
    def key(self) -> tuple[str, str]:
        """(method, path): two routes with the same key cannot both be mounted."""
        return self.method.upper(), self.path


class Upload(BaseModel):
    """A file sent in a multipart form: its name, content type and bytes."""

    model_config = ConfigDict(frozen=True)

    filename: str = ""
    content_type: str | None = None
    data: bytes = b""


@dataclass(frozen=True)
class TextResponse:
    """A plain-text answer (``text/plain`` unless ``media_type`` says otherwise)."""

    text: str
    media_type: str = "text/plain"


@dataclass(frozen=True)
class Target:
    """What a request's ``model`` names: the base it runs on and the adapter (None: the base)."""

    model: str
    base: str
    adapter: str | None


class RouteContext:
    """The server's services, as a route handler uses them."""

    def __init__(self, registry: ModelRegistry):
        self._registry = registry

    def resolve(self, model: str, *, method: str | None = None, what: str | None = None) -> Target:
        """The base and adapter ``model`` names; 404 listing the known models if it names none.

        With ``method``, a base whose servable has no such batch method is a 400 saying the
        model does not offer ``what`` (default: the method's name).
        """
        base, adapter = self._registry.resolve(model)
        if method is not None and not callable(getattr(self._registry.bases[base].servable, method, None)):
            raise ApiError(
                400,
                f"the model {model!r} does not offer {what or method}; choose a model of a "
                "task that does (GET /v1/models lists them)",
                param="model",
                code="model_not_supported",
            )
        return Target(model=model, base=base, adapter=adapter)

    async def submit(self, target: Target, method: str, requests: list[Any], *, what: str | None = None) -> list[Any]:
        """Answer ``requests`` with ``servable.<method>`` of ``target``'s base, micro-batched with
        the other requests for that base; adapters load on first use. Errors become
        :class:`~polyadapt.serving.schemas.ApiError` (a user's mistake 400, else 500)."""
        return await self._registry.submit(target.base, method, requests, what=what or method)

    def check_prompt(self, text: str, target: Target) -> str:
        """``text`` as the serving policy lets it reach the model (redacted as it says, audited
        as a prompt); a 400 ``content_policy`` error when the policy refuses it."""
        guard = self._registry.guard
        if guard is None:
            return text
        return guard.check_prompt_text(text, model=target.model, adapter=target.adapter)

    def check_output(self, text: str, target: Target, *, direction: str = "output") -> tuple[str, bool]:
        """(``text`` as the policy lets the client see it, whether the policy withheld it);
        audited under ``direction``. A withheld output comes back empty."""
        guard = self._registry.guard
        if guard is None:
            return text, False
        return guard.check_output_text(text, model=target.model, adapter=target.adapter, direction=direction)

    def note_input(self, target: Target, text: str | None = None, **numbers: float) -> None:
        """Record what ``target`` was asked, for drift monitoring (``polyadapt monitor``): the
        input's text as it reached the model, if any, and numbers of the task's own that its
        :meth:`~polyadapt.task.Task.input_sample` also gives for training records
        (``audio_seconds=12.5``). Never stored as text; nothing happens when the server does not
        monitor."""
        self._registry.note_input(target.base, target.adapter, target.model, text, numbers)

    def redact(self, text: str) -> str:
        """``text`` with what the policy forbids to show rewritten (not audited: for parts of an
        output already checked whole with :meth:`check_output`)."""
        guard = self._registry.guard
        return text if guard is None else guard.redact(text)


def _validation_error(exc: ValidationError) -> ApiError:
    message, param = validation_message(exc)
    return ApiError(400, message, param=param)


async def _form_fields(request: Any, route: Route) -> dict[str, Any]:
    from starlette.datastructures import UploadFile

    try:
        form = await request.form()
    except Exception as exc:  # noqa: BLE001 - a malformed multipart body is the client's error
        raise ApiError(400, f"the request body is not a valid multipart form: {exc}") from None
    fields: dict[str, Any] = {}
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            data = await value.read(route.max_upload_bytes + 1)
            if len(data) > route.max_upload_bytes:
                raise ApiError(
                    413, f"the file in {name!r} is larger than {route.max_upload_bytes // (1024 * 1024)} MB", param=name
                )
            value = Upload(filename=value.filename or "", content_type=value.content_type, data=data)
        fields[name] = value
    return fields


async def _parse_body(request: Any, route: Route) -> Any:
    if route.body is None:
        return None
    if route.form:
        raw = await _form_fields(request, route)
    else:
        try:
            raw = await request.json()
        except ValueError:
            raise ApiError(400, "the request body is not valid JSON") from None
    try:
        return route.body.model_validate(raw)
    except ValidationError as exc:
        raise _validation_error(exc) from None


def _answer(result: Any) -> Any:
    from fastapi.responses import JSONResponse, PlainTextResponse

    if isinstance(result, TextResponse):
        return PlainTextResponse(result.text, media_type=result.media_type)
    if isinstance(result, BaseModel):
        return JSONResponse(result.model_dump(mode="json"))
    return JSONResponse(result)


def mount_routes(app: FastAPI, routes: list[Route], registry: ModelRegistry) -> None:
    """Add ``routes`` to ``app``, each behind body validation, OpenAI-shaped errors and
    :class:`RouteContext`."""
    context = RouteContext(registry)
    for route in routes:
        extra = None
        if route.body is not None:
            media = "multipart/form-data" if route.form else "application/json"
            extra = {"requestBody": {"required": True, "content": {media: {"schema": route.body.model_json_schema()}}}}
        app.add_api_route(
            route.path,
            _endpoint(route, context),
            methods=[route.method.upper()],
            summary=route.summary or None,
            openapi_extra=extra,
        )


def _endpoint(route: Route, context: RouteContext) -> Callable[[Request], Awaitable[Any]]:
    """The FastAPI endpoint of ``route``: parse, call the handler, answer."""
    from polyadapt.serving.app import api_errors

    async def endpoint(request: Request) -> Any:
        body = await _parse_body(request, route)
        with api_errors(route.path):
            return _answer(await route.handler(body, context))

    return endpoint


def unique_routes(routes: list[Route], owners: list[str]) -> list[Route]:
    """``routes`` without repeats; two different routes on one (method, path) are a
    :class:`~polyadapt.errors.PluginError` naming both owners."""
    from polyadapt.errors import PluginError

    chosen: dict[tuple[str, str], tuple[Route, str]] = {}
    for route, owner in zip(routes, owners):
        if not isinstance(route, Route):
            raise PluginError(f"{owner} returned {route!r} as a route, not a polyadapt.serving.routes.Route")
        earlier = chosen.get(route.key)
        if earlier is None:
            chosen[route.key] = (route, owner)
        elif earlier[0] != route:
            raise PluginError(
                f"{route.method} {route.path} is declared by both {earlier[1]} and {owner}; "
                "serve their runs from separate servers or disable one plugin"
            )
    return [route for route, _ in chosen.values()]
