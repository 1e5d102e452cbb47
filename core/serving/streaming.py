"""``stream: true``: completions and chat answers as server-sent events, in OpenAI's chunk format.

Streamed requests are batched like any other: the batcher runs ``generate`` as usual, and the
servable reports each row's text after every token (``GenerationRequest.on_token``, called in
the worker thread) to a queue on the event loop. Each choice's text is sent as it grows, except:

- **stop strings**: text is held back while its end could be the start of a stop string, and
  nothing past a stop is ever sent, so the streamed text is the non-streamed text;
- **unfinished characters**: a trailing U+FFFD (a multi-byte character whose bytes are still
  coming) waits for the next token, and so do trailing blanks (a tokenizer that cleans up
  spaces removes the one before a "." that follows).

The last chunk of each choice carries its ``finish_reason`` (and the rest of its text, taken
from the final result); with ``stream_options.include_usage`` a chunk with ``usage`` and no
choices follows; ``data: [DONE]`` ends the stream. An error before the first token is an
ordinary JSON error answer with its status; one after it is an event ``data: {"error": {...}}``,
and the stream ends there (the official client raises it as ``APIError``).

**The serving policy.** When the policy scans outputs (``serving.scan_outputs``, the default),
nothing is sent until the whole output has passed it: a policy may withhold a whole output
(``finish_reason: "content_filter"``) or redact a value that only the text after it makes
recognisable, and text already sent cannot be taken back. Such a stream is delivered whole
after the scan (header ``X-Polyadapt-Stream: after-policy-scan``; its time to first token is
the whole latency). Streams stream token by token (``X-Polyadapt-Stream: live``) only under a
policy that does not scan outputs (or with no policy, as in ``build_app`` used in code), and
only from a servable that reports tokens as it generates (``"stream"`` in its
``generation_features``); another's stream arrives whole when it is done (``X-Polyadapt-Stream:
whole``), as under vLLM.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from fastapi.responses import StreamingResponse

from polyadapt.serving.metrics import first_token
from polyadapt.serving.openai_compat import (
    CHAT,
    Plan,
    TextOffsets,
    chat_logprobs,
    completion_logprobs,
    features_of,
    usage,
)
from polyadapt.serving.schemas import ApiError
from polyadapt.types import GenerationRequest, GenerationResult, TokenLogprob, TokenStep

if TYPE_CHECKING:  # pragma: no cover
    from polyadapt.serving.app import ModelRegistry

logger = logging.getLogger(__name__)

REPLACEMENT = "\ufffd"


def held_back(text: str, stops: list[str]) -> int:
    """How many characters at the end of ``text`` must wait: the longest tail that is the start
    of a stop string, or a run of U+FFFD (an unfinished character) and blanks (a tokenizer that
    cleans up spaces drops the one before a later "." or ",")."""
    hold = len(text) - len(text.rstrip(REPLACEMENT + " \t\n\r\f\v"))
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:size]):
                hold = max(hold, size)
                break
    return hold


def stop_at(text: str, request: GenerationRequest) -> int:
    """Where the first stop string of ``request`` begins in ``text`` (-1: none), with
    ``stop_after_content`` ignoring matches in the leading blanks, as the servable cuts."""
    start = len(text) - len(text.lstrip()) if request.stop_after_content else 0
    found = [i for i in (text.find(stop, start) for stop in request.stop if stop) if i >= 0]
    return min(found) if found else -1


def sendable(text: str, request: GenerationRequest) -> str:
    """The part of ``text`` (a choice's completion so far) that may be sent now."""
    cut = stop_at(text, request)
    if cut >= 0:
        return text[:cut]
    return text[: len(text) - held_back(text, request.stop)]


@dataclass
class ChoiceStream:
    """What one choice has sent so far."""

    index: int
    request: GenerationRequest
    offsets: TextOffsets | None = None
    text: str = ""
    logprobs_sent: int = 0
    bytes_sent: int = 0
    pending: list[TokenLogprob] = field(default_factory=list)
    echoed: bool = False


class StreamWriter:
    """Turns token steps and results into OpenAI chunks (as SSE lines) for one response."""

    def __init__(self, plan: Plan, model: str):
        self.plan, self.model = plan, model
        chat = plan.endpoint == CHAT
        self.id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
        self.object = "chat.completion.chunk" if chat else "text_completion"
        self.created = int(time.time())
        self.choices = [ChoiceStream(i, r) for i, r in enumerate(plan.requests)]
        for choice in self.choices:
            prompt = plan.prompts[choice.index // plan.n] if plan.prompts else ""
            choice.offsets = TextOffsets(0 if plan.echo else len(prompt))

    # -- chunks ---------------------------------------------------------------------------

    def _event(self, payload: dict[str, Any]) -> str:
        return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

    def _chunk(
        self,
        choices: list[dict[str, Any]],
        usage_block: dict[str, int] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        payload: dict[str, Any] = {
            "id": self.id,
            "object": self.object,
            "created": self.created,
            "model": self.model,
            "choices": choices,
            **(extra or {}),
        }
        if self.plan.include_usage:
            payload["usage"] = usage_block
        return self._event(payload)

    def _logprobs(self, choice: ChoiceStream, entries: list[TokenLogprob]) -> dict[str, Any] | None:
        if self.plan.logprobs is None or not entries:
            return None
        if self.plan.endpoint == CHAT:
            return chat_logprobs(entries)
        assert choice.offsets is not None
        return completion_logprobs(entries, choice.offsets)

    def _piece(self, choice: ChoiceStream, text: str, entries: list[TokenLogprob], finish: str | None = None) -> str:
        logprobs = self._logprobs(choice, entries)
        if self.plan.endpoint == CHAT:
            delta = {"content": text} if text or finish is None else {}
            body = {"index": choice.index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        else:
            body = {"index": choice.index, "text": text, "logprobs": logprobs, "finish_reason": finish}
        return self._chunk([body])

    def opening(self) -> list[str]:
        """Chat: each choice's first chunk, the assistant's role; the stream's first chunk also
        carries the plan's extra fields (retrieval's ``sources``)."""
        if self.plan.endpoint != CHAT:
            return []
        return [
            self._chunk(
                [
                    {
                        "index": c.index,
                        "delta": {"role": "assistant", "content": ""},
                        "logprobs": None,
                        "finish_reason": None,
                    }
                ],
                extra=self.plan.extra if c.index == 0 else None,
            )
            for c in self.choices
        ]

    # -- steps ---------------------------------------------------------------------------

    def _echo(self, choice: ChoiceStream, text: str, entries: list[TokenLogprob] | None) -> list[str]:
        choice.echoed = True
        if not self.plan.echo:
            return []
        return [self._piece(choice, text, list(entries or []) if self.plan.logprobs is not None else [])]

    def step(self, index: int, step: TokenStep) -> list[str]:
        """The chunks a token step of choice ``index`` allows to send now (maybe none)."""
        choice = self.choices[index]
        if step.prompt_text is not None:
            return self._echo(choice, step.prompt_text, step.prompt_logprobs)
        choice.pending += step.logprobs
        ready = sendable(step.text, choice.request)
        if len(ready) <= len(choice.text) or not ready.startswith(choice.text):
            return []
        delta, choice.text = ready[len(choice.text) :], ready
        return [self._piece(choice, delta, self._ready_logprobs(choice))]

    def _ready_logprobs(self, choice: ChoiceStream) -> list[TokenLogprob]:
        """The pending token entries whose bytes lie within the text sent (the rest wait)."""
        limit = len(choice.text.encode("utf-8"))
        ready = 0
        for entry in choice.pending:
            if choice.bytes_sent + len(entry.bytes) > limit:
                break
            choice.bytes_sent += len(entry.bytes)
            ready += 1
        entries, choice.pending = choice.pending[:ready], choice.pending[ready:]
        choice.logprobs_sent += ready
        return entries

    def finish(self, results: list[GenerationResult]) -> list[str]:
        """Each choice's rest of text and its finish chunk, then the usage chunk if asked for."""
        events: list[str] = []
        for choice, result in zip(self.choices, results):
            if not choice.echoed and self.plan.echo:
                prompt = self.plan.prompts[choice.index // self.plan.n]
                events += self._echo(choice, result.prompt_text or prompt, result.prompt_logprobs)
            rest = ""
            if result.text.startswith(choice.text):
                rest = result.text[len(choice.text) :]
            elif result.text != choice.text:
                logger.warning("stream of choice %d sent text that the final answer does not begin with", choice.index)
            entries = (result.logprobs or [])[choice.logprobs_sent :] if self.plan.logprobs is not None else []
            if rest or entries:
                events.append(self._piece(choice, rest, entries))
            events.append(self._piece(choice, "", [], finish=result.finish_reason))
        if self.plan.include_usage:
            events.append(self._chunk([], usage(self.plan, results)))
        return events

    def error(self, exc: BaseException) -> str:
        """The event for an error after the stream started."""
        error = exc if isinstance(exc, ApiError) else None
        if error is None:
            error = ApiError(500, f"generation failed: {type(exc).__name__}: {exc}", type="server_error")
        body = {"message": error.message, "type": error.type, "param": error.param, "code": error.code}
        return self._event({"error": body})


# ---------------------------------------------------------------------------------------
# The response
# ---------------------------------------------------------------------------------------

_DONE = object()


def live_streaming(registry: ModelRegistry) -> bool:
    """Whether tokens may be sent as they come: no policy scans the outputs (module docs)."""
    guard = registry.guard
    return guard is None or not guard.policy.serving.scan_outputs


def streams_tokens(registry: ModelRegistry, base: str) -> bool:
    """Whether the servable of ``base`` reports each token as it generates (module docs)."""
    return "stream" in features_of(registry.bases[base].servable)


async def stream_answer(registry: ModelRegistry, base: str, plan: Plan, *, model: str) -> StreamingResponse:
    """Start generating ``plan`` on ``base`` and answer with its event stream.

    Returns once the first token is out (or the answer is complete), so an error before any
    token is raised here, as an ordinary error answer.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    gone = threading.Event()
    live = live_streaming(registry)

    def reporter(index: int):
        def report(step: TokenStep) -> bool:
            if gone.is_set():
                return True
            try:
                loop.call_soon_threadsafe(queue.put_nowait, (index, step))
            except RuntimeError:  # the loop is closed: nobody is listening
                return True
            return False

        return report

    requests = [replace(r, on_token=reporter(i)) if live else r for i, r in enumerate(plan.requests)]
    task = asyncio.ensure_future(registry.generate(base, requests, model=model))
    task.add_done_callback(lambda _: queue.put_nowait(_DONE))
    writer = StreamWriter(plan, model)
    try:
        first = await queue.get()
    except BaseException:
        gone.set()
        task.cancel()
        raise
    if first is _DONE:
        task.result()  # an error before any token: raised here, answered with its status
    elif live:
        first_token()

    async def events() -> AsyncIterator[str]:
        item = first
        try:
            for event in writer.opening():
                yield event
            while item is not _DONE:
                index, step = item
                for event in writer.step(index, step):
                    yield event
                item = await queue.get()
            results = task.result()
            if not live:
                first_token()
            for event in writer.finish(results):
                yield event
            yield "data: [DONE]\n\n"
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # after the stream started: an error event, then the end
            yield writer.error(exc)
        finally:
            gone.set()
            if not task.done():
                task.cancel()

    headers = {
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
        "X-Polyadapt-Stream": ("live" if streams_tokens(registry, base) else "whole") if live else "after-policy-scan",
    }
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)
