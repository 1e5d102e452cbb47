"""Request bodies and errors of the OpenAI-compatible API, in OpenAI's shapes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Literal

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------


class ApiError(Exception):
    """An error answered in OpenAI's shape with HTTP status ``status`` (and ``headers``, such
    as ``Retry-After`` or ``WWW-Authenticate``)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        """The JSON response for this error, with its headers."""
        response = error_response(self.status, self.message, type=self.type, param=self.param, code=self.code)
        response.headers.update(self.headers)
        return response


def error_response(
    status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None, code: str | None = None
) -> JSONResponse:
    """A JSON response ``{"error": {"message", "type", "param", "code"}}``."""
    body = {"error": {"message": message, "type": type, "param": param, "code": code}}
    return JSONResponse(status_code=status, content=body)


def field_path(loc: Iterable[int | str]) -> str | None:
    """The body field a pydantic error points at, without pydantic's union-member tags."""
    parts = [str(p) for p in loc if p != "body"]
    parts = [p for p in parts if "[" not in p and p not in {"str", "int", "float", "bool", "list", "dict"}]
    return ".".join(parts) or None


def validation_message(exc: RequestValidationError | ValidationError) -> tuple[str, str | None]:
    """(message, param) for a request body that failed validation (FastAPI's or pydantic's error)."""
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return "the request body is not valid JSON", None
    problems = []
    for error in errors:
        path = field_path(error.get("loc", ()))
        message = "required field is missing" if error.get("type") == "missing" else error.get("msg", "invalid")
        problems.append(f"{path}: {message}" if path else message)
    param = field_path(errors[0].get("loc", ())) if errors else None
    return "invalid request: " + "; ".join(problems), param


# ---------------------------------------------------------------------------------------
# Request bodies
# ---------------------------------------------------------------------------------------


#: The most choices (``n``) one request may ask for; for more, send several requests.
MAX_CHOICES = 16


class StreamOptions(BaseModel):
    """OpenAI's ``stream_options``; fields other than ``include_usage`` are checked by
    :mod:`polyadapt.serving.openai_compat`."""

    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class GenerationParams(BaseModel):
    """The generation parameters both endpoints take. Other fields are kept (``model_extra``)
    for :mod:`polyadapt.serving.openai_compat`, which accepts each or answers a 400 naming it."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=-(2**63), le=2**64 - 1)  # what torch.manual_seed takes
    n: int = Field(1, ge=1, le=MAX_CHOICES)
    stream: bool = False
    stream_options: StreamOptions | None = None
    frequency_penalty: float = Field(0.0, ge=-2, le=2)
    presence_penalty: float = Field(0.0, ge=-2, le=2)
    logit_bias: dict[int, Annotated[float, Field(ge=-100, le=100)]] | None = None  # token id -> bias
    user: str | None = None

    def stop_list(self) -> list[str]:
        """``stop`` as a list, empty strings dropped."""
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return [stop for stop in stops if stop]


class CompletionBody(GenerationParams):
    """``POST /v1/completions``: one prompt or a list of prompts.

    ``suffix`` (OpenAI's field) is the text after the completion: fill-in-the-middle, for
    code models; the same suffix applies to every prompt of a list.
    """

    prompt: str | list[str]
    suffix: str | None = None
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=5)
    best_of: int | None = Field(None, ge=1, le=MAX_CHOICES)

    @field_validator("prompt")
    @classmethod
    def _some_prompt(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("give at least one prompt")
        return value


class TextPart(BaseModel):
    """One part of a message's content in OpenAI's list form; only text is accepted."""

    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    """One chat turn (other fields are checked by :mod:`polyadapt.serving.openai_compat`)."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None

    def as_dict(self) -> dict[str, str]:
        """The turn as ``{"role", "content"}`` with list content joined into text."""
        content = self.content
        if isinstance(content, list):
            content = "".join(part.text for part in content)
        return {"role": self.role, "content": content or ""}


class ChatBody(GenerationParams):
    """``POST /v1/chat/completions``: a conversation to answer."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)


class EmbeddingBody(BaseModel):
    """``POST /v1/embeddings``: one text or a list of texts to embed (token arrays are refused by
    :mod:`polyadapt.serving.openai_compat`, which also checks other fields)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None
