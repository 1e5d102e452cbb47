"""OpenAI's request options on ``/v1/completions``, ``/v1/chat/completions`` and ``/v1/embeddings``:
which are honoured, which are ignored and which are refused, and the response shapes.

Every field OpenAI defines is listed here, and an option that would change the output and is not
supported is a 400 that names it (``code: "unsupported_parameter"``), never silence; a field
OpenAI does not define is a 400 too (``code: "unknown_parameter"``).

=============================================== ========== ===============================================
field                                           endpoint   handling
=============================================== ========== ===============================================
model, prompt, messages, suffix, max_tokens,    both       honoured
max_completion_tokens, temperature, top_p,
stop, seed
n (1 to 16)                                     both       honoured: each prompt generated n times in the
                                                           batch (sampled: a draw each; with ``seed``, the
                                                           choice i uses seed + i); choices indexed
                                                           prompt * n + i
stream                                          both       honoured: server-sent events
                                                           (:mod:`polyadapt.serving.streaming`)
stream_options.include_usage                    both       honoured; ``stream_options`` without ``stream``
                                                           is a 400; ``include_obfuscation`` is ignored
                                                           (no padding field is sent); other keys 400
logprobs (0 to 5)                               completion honoured: the model's log-probabilities, before
                                                           temperature, top-p, penalties and bias
echo                                            completion honoured (prompt, and with logprobs its tokens',
                                                           the first null); with ``suffix`` a 400
best_of                                         completion accepted when equal to ``n``; otherwise 400 (no
                                                           re-ranking of extra candidates)
logprobs (bool), top_logprobs (0 to 20)         chat       honoured; ``top_logprobs`` without ``logprobs``
                                                           is a 400
frequency_penalty, presence_penalty (-2 to 2)   both       honoured with OpenAI's definition over the
                                                           tokens generated so far (not a repetition
                                                           penalty)
logit_bias (-100 to 100)                        both       honoured; keys are token ids of the served
                                                           model's own tokenizer
user, metadata, store, service_tier,            both       ignored: they change nothing in the output
prompt_cache_key, safety_identifier,                       (nothing is stored)
prediction, parallel_tool_calls
response_format                                 chat       ``{"type": "text"}`` accepted; ``json_object``
                                                           and ``json_schema`` are a 400 (no constrained
                                                           decoding: a small model's JSON is not assured)
tools, functions                                chat       absent or empty accepted; otherwise 400
tool_choice, function_call                      chat       absent or ``"none"`` accepted; otherwise 400
modalities                                      chat       ``["text"]`` accepted; otherwise 400
audio, reasoning_effort, verbosity,             chat       400 when set
web_search_options
messages[].name, messages[].tool_call_id        chat       ignored (the chat template has no place for them)
messages[].tool_calls, .function_call           chat       400 when set
input (text or list of texts)                   embeddings honoured; token arrays are a 400 (the serving
                                                           policy scans text)
encoding_format (float, base64)                 embeddings honoured
dimensions                                      embeddings accepted when equal to the model's width; else 400
retrieval (polyadapt's own)                     chat       honoured: passages of a local index join the
                                                           messages, ``sources`` join the answer
                                                           (:mod:`polyadapt.serving.retrieval`)
any other field                                 all        400 (unknown)
=============================================== ========== ===============================================

A servable states which of ``logprobs``, ``echo``, ``penalties`` and ``logit_bias`` its
``generate`` honours in ``generation_features``; asking another servable for one is a 400.
"""

from __future__ import annotations

import base64
import struct
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from polyadapt.serving.schemas import ApiError, ChatBody, CompletionBody, EmbeddingBody, GenerationParams
from polyadapt.types import EmbeddingRequest, EmbeddingResult, GenerationRequest, GenerationResult, TokenLogprob

if TYPE_CHECKING:  # pragma: no cover
    from polyadapt.serving.app import ModelRegistry

COMPLETIONS, CHAT, EMBEDDINGS = "completions", "chat", "embeddings"

#: Fields that change nothing in what is generated: accepted and ignored.
IGNORED = frozenset(
    {
        "user",
        "metadata",
        "store",
        "service_tier",
        "prompt_cache_key",
        "safety_identifier",
        "prediction",
        "parallel_tool_calls",
    }
)


def _absent_or(*allowed: Any) -> Callable[[Any], bool]:
    return lambda value: value is None or value in allowed


def _text_format(value: Any) -> bool:
    return value is None or (isinstance(value, dict) and value.get("type") == "text")


#: Chat fields OpenAI defines that are accepted only at their "off" value: field -> (test, what to do).
CHAT_DEFAULT_ONLY: dict[str, tuple[Callable[[Any], bool], str]] = {
    "response_format": (
        _text_format,
        'response_format: only {"type": "text"} is supported; json_object and json_schema need '
        "constrained decoding, which this server does not do. Ask for JSON in the prompt and parse the text",
    ),
    "tools": (_absent_or([]), "tools: function calling is not supported; send the request without tools"),
    "functions": (_absent_or([]), "functions: function calling is not supported; send the request without functions"),
    "tool_choice": (_absent_or("none"), 'tool_choice: function calling is not supported; leave it out or send "none"'),
    "function_call": (
        _absent_or("none"),
        'function_call: function calling is not supported; leave it out or send "none"',
    ),
    "modalities": (_absent_or(["text"]), 'modalities: only ["text"] is supported'),
    "audio": (_absent_or(), "audio: audio output is not supported; leave it out"),
    "reasoning_effort": (_absent_or(), "reasoning_effort: the served models do not reason; leave it out"),
    "verbosity": (_absent_or(), "verbosity is not supported; leave it out"),
    "web_search_options": (_absent_or(), "web_search_options: web search is not supported; leave it out"),
}

#: Extra fields of a chat message: accepted (ignored) ones, and those refused when set.
MESSAGE_IGNORED = frozenset({"name", "tool_call_id"})
MESSAGE_REFUSED = frozenset({"tool_calls", "function_call"})


def unsupported(param: str, message: str) -> ApiError:
    """The 400 for an option that is defined but not supported."""
    return ApiError(400, message, param=param, code="unsupported_parameter")


def unknown(param: str, endpoint: str) -> ApiError:
    """The 400 for a field OpenAI does not define on ``endpoint``."""
    return ApiError(
        400,
        f"unknown field {param!r} for /v1/{endpoint}; it would be ignored, so it is refused "
        "(see polyadapt.serving.openai_compat for the supported fields)",
        param=param,
        code="unknown_parameter",
    )


# ---------------------------------------------------------------------------------------
# Checking options
# ---------------------------------------------------------------------------------------


def _check_common(body: GenerationParams, endpoint: str, features: frozenset[str]) -> None:
    if body.stream_options is not None:
        if not body.stream:
            raise unsupported("stream_options", "stream_options is only allowed with stream: true")
        for key in body.stream_options.model_extra or {}:
            if key != "include_obfuscation":
                raise unknown(f"stream_options.{key}", endpoint)
    if (body.frequency_penalty or body.presence_penalty) and "penalties" not in features:
        name = "frequency_penalty" if body.frequency_penalty else "presence_penalty"
        raise unsupported(name, f"{name}: this model's server does not apply penalties; leave it out or send 0")
    if body.logit_bias and "logit_bias" not in features:
        raise unsupported("logit_bias", "logit_bias is not supported by this model; leave it out")


def check_completion_options(body: CompletionBody, features: frozenset[str]) -> None:
    """Refuse (400) what ``/v1/completions`` cannot honour; ``features`` are the servable's."""
    _check_common(body, COMPLETIONS, features)
    for key in body.model_extra or {}:
        if key not in IGNORED:
            raise unknown(key, COMPLETIONS)
    if body.best_of is not None and body.best_of != body.n:
        raise unsupported(
            "best_of",
            f"best_of ({body.best_of}) must equal n ({body.n}): choosing the best of extra candidates is not supported",
        )
    if body.echo and body.suffix is not None:
        raise unsupported("echo", "echo cannot be combined with suffix")
    if body.logprobs is not None and "logprobs" not in features:
        raise unsupported("logprobs", "logprobs: this model does not report log-probabilities; leave it out")
    if body.echo and "echo" not in features:
        raise unsupported("echo", "echo is not supported by this model; leave it out")


def check_chat_options(body: ChatBody, features: frozenset[str]) -> None:
    """Refuse (400) what ``/v1/chat/completions`` cannot honour; ``features`` are the servable's."""
    _check_common(body, CHAT, features)
    for key, value in (body.model_extra or {}).items():
        if key in CHAT_DEFAULT_ONLY:
            accepted, message = CHAT_DEFAULT_ONLY[key]
            if not accepted(value):
                raise unsupported(key, message)
        elif key not in IGNORED:
            raise unknown(key, CHAT)
    for index, message in enumerate(body.messages):
        for key, value in (message.model_extra or {}).items():
            param = f"messages.{index}.{key}"
            if key in MESSAGE_REFUSED:
                if value:
                    raise unsupported(param, f"{param}: tool and function calls are not supported")
            elif key not in MESSAGE_IGNORED:
                raise unknown(param, CHAT)
    if body.top_logprobs is not None and not body.logprobs:
        raise unsupported("top_logprobs", "top_logprobs needs logprobs: true")
    if body.logprobs and "logprobs" not in features:
        raise unsupported("logprobs", "logprobs: this model does not report log-probabilities; leave it out")


def features_of(servable: Any) -> frozenset[str]:
    """The optional generation features ``servable`` declares (none unless it says)."""
    return frozenset(getattr(servable, "generation_features", ()) or ())


# ---------------------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------------------

_SEED_SPAN = 2**64
_SEED_LOW = -(2**63)


def choice_seed(seed: int | None, choice: int) -> int | None:
    """The seed of choice ``choice``: ``seed + choice``, kept in the range torch takes."""
    if seed is None or choice == 0:
        return seed
    value = seed + choice
    return value if value < _SEED_LOW + _SEED_SPAN else (value - _SEED_LOW) % _SEED_SPAN + _SEED_LOW


@dataclass
class Plan:
    """The generation requests one body asks for and how to shape their answer.

    ``requests`` holds ``n`` requests per prompt, prompt by prompt: the request at ``i`` answers
    choice ``i``. ``logprobs`` is the number of alternatives per token (None: no logprobs).
    """

    endpoint: str
    requests: list[GenerationRequest]
    n: int
    prompts: list[str]
    logprobs: int | None = None
    echo: bool = False
    include_usage: bool = False
    #: Top-level fields the answer carries besides OpenAI's (``sources`` of retrieval): on the
    #: response object, or on the first chunk of a stream.
    extra: dict[str, Any] = field(default_factory=dict)


def _request(body: GenerationParams, adapter: str | None, max_tokens: int, **fields: Any) -> GenerationRequest:
    return GenerationRequest(
        adapter=adapter,
        max_tokens=max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        stop=body.stop_list(),
        seed=body.seed,
        frequency_penalty=body.frequency_penalty,
        presence_penalty=body.presence_penalty,
        logit_bias=dict(body.logit_bias) if body.logit_bias else None,
        **fields,
    )


def _choices(request: GenerationRequest, n: int) -> list[GenerationRequest]:
    return [replace(request, seed=choice_seed(request.seed, i)) for i in range(n)]


def completion_plan(body: CompletionBody, adapter: str | None, max_tokens: int, servable: Any) -> Plan:
    """Check ``body``'s options and make its requests (``max_tokens`` is the effective limit)."""
    check_completion_options(body, features_of(servable))
    prompts = [body.prompt] if isinstance(body.prompt, str) else list(body.prompt)
    requests = []
    for prompt in prompts:
        one = _request(
            body, adapter, max_tokens, prompt=prompt, suffix=body.suffix, logprobs=body.logprobs, echo=body.echo
        )
        requests += _choices(one, body.n)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return Plan(COMPLETIONS, requests, body.n, prompts, body.logprobs, body.echo, include_usage)


def chat_plan(body: ChatBody, adapter: str | None, max_tokens: int, servable: Any) -> Plan:
    """Check ``body``'s options and make its requests (``max_tokens`` is the effective limit)."""
    check_chat_options(body, features_of(servable))
    top = (body.top_logprobs or 0) if body.logprobs else None
    messages = [m.as_dict() for m in body.messages]
    one = _request(body, adapter, max_tokens, messages=messages, logprobs=top)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return Plan(CHAT, _choices(one, body.n), body.n, [], top, False, include_usage)


# ---------------------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------------------


def usage(plan: Plan, results: list[GenerationResult]) -> dict[str, int]:
    """OpenAI's ``usage``: each prompt's tokens counted once (not once per choice), every
    choice's completion tokens."""
    prompt = sum(results[i].prompt_tokens for i in range(0, len(results), plan.n))
    completion = sum(r.completion_tokens for r in results)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class TextOffsets:
    """``text_offset`` of successive tokens: where each starts in the text (characters)."""

    def __init__(self, start: int):
        self.start, self.seen = start, b""

    def __call__(self, entry: TokenLogprob) -> int:
        offset = self.start + len(self.seen.decode("utf-8", errors="replace"))
        self.seen += bytes(entry.bytes)
        return offset


def completion_logprobs(entries: list[TokenLogprob], offsets: TextOffsets) -> dict[str, Any]:
    """The completions ``logprobs`` object for ``entries``."""
    return {
        "tokens": [e.token for e in entries],
        "token_logprobs": [e.logprob for e in entries],
        "top_logprobs": [
            None if e.logprob is None else {token: value for token, _, value in (e.top or [])} for e in entries
        ],
        "text_offset": [offsets(e) for e in entries],
    }


def chat_logprobs(entries: list[TokenLogprob]) -> dict[str, Any]:
    """The chat ``logprobs`` object for ``entries``."""
    content = [
        {
            "token": e.token,
            "logprob": e.logprob,
            "bytes": e.bytes,
            "top_logprobs": [{"token": t, "logprob": v, "bytes": b} for t, b, v in (e.top or [])],
        }
        for e in entries
    ]
    return {"content": content, "refusal": None}


def completion_choice(plan: Plan, index: int, result: GenerationResult) -> dict[str, Any]:
    """One choice of a ``text_completion``."""
    prompt = plan.prompts[index // plan.n]
    echoed = (result.prompt_text if result.prompt_text is not None else prompt) if plan.echo else ""
    logprobs = None
    if plan.logprobs is not None and result.logprobs is not None:
        offsets = TextOffsets(0 if plan.echo else len(prompt))
        entries = (result.prompt_logprobs or []) if plan.echo else []
        logprobs = completion_logprobs([*entries, *result.logprobs], offsets)
    return {"index": index, "text": echoed + result.text, "logprobs": logprobs, "finish_reason": result.finish_reason}


def completion_response(model: str, plan: Plan, results: list[GenerationResult]) -> dict[str, Any]:
    """The ``text_completion`` object: one choice per request of ``plan``."""
    return {
        "id": f"cmpl-{uuid.uuid4().hex}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [completion_choice(plan, i, r) for i, r in enumerate(results)],
        "usage": usage(plan, results),
    }


def chat_response(model: str, plan: Plan, results: list[GenerationResult]) -> dict[str, Any]:
    """The ``chat.completion`` object: one choice per request of ``plan``."""
    choices = [
        {
            "index": i,
            "message": {"role": "assistant", "content": r.text},
            "logprobs": chat_logprobs(r.logprobs) if plan.logprobs is not None and r.logprobs is not None else None,
            "finish_reason": r.finish_reason,
        }
        for i, r in enumerate(results)
    ]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": usage(plan, results),
    }


# ---------------------------------------------------------------------------------------
# Embeddings
# ---------------------------------------------------------------------------------------


def embedding_texts(body: EmbeddingBody) -> list[str]:
    """The texts to embed; 400 for token arrays, an empty list or fields not supported."""
    for key in body.model_extra or {}:
        if key not in IGNORED:
            raise unknown(key, EMBEDDINGS)
    texts = [body.input] if isinstance(body.input, str) else list(body.input)
    if not texts:
        raise ApiError(400, "input: give at least one text to embed", param="input")
    if not all(isinstance(text, str) for text in texts):
        raise unsupported("input", "input: token arrays are not accepted; send the text (the serving policy scans it)")
    return [text for text in texts if isinstance(text, str)]  # all of them, checked above


def encode_embedding(vector: list[float], encoding: str) -> list[float] | str:
    """``vector`` as OpenAI sends it: a list of floats, or base64 of little-endian float32."""
    if encoding == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return vector


async def embeddings(registry: ModelRegistry, body: EmbeddingBody) -> dict[str, Any]:
    """Answer ``POST /v1/embeddings``: the texts pass the serving policy as prompts, then the
    base's ``embed`` batch method (micro-batched like generation)."""
    texts = embedding_texts(body)
    base, adapter = registry.resolve(body.model)
    if registry.guard is not None:
        texts = [registry.guard.check_prompt_text(t, model=body.model, adapter=adapter) for t in texts]
    requests = [EmbeddingRequest(text=text, adapter=adapter) for text in texts]
    results: list[EmbeddingResult] = await registry.submit(base, "embed", requests, what="embeddings")
    width = len(results[0].embedding) if results else 0
    if body.dimensions is not None and body.dimensions != width:
        raise unsupported(
            "dimensions", f"dimensions: {body.model!r} embeds in {width} dimensions; leave it out or send {width}"
        )
    data = [
        {"object": "embedding", "index": i, "embedding": encode_embedding(r.embedding, body.encoding_format)}
        for i, r in enumerate(results)
    ]
    tokens = sum(r.prompt_tokens for r in results)
    return {
        "object": "list",
        "data": data,
        "model": body.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
