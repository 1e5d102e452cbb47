"""The code plugin's ``serve``: the text plugin's servable, plus fill-in-the-middle.

A request with ``suffix`` becomes the PSM prompt ``<fim_prefix> prompt <fim_suffix> suffix
<fim_middle>`` with the tokenizer's FIM tokens (or the text fallback the adapter was
trained with, see :mod:`polyadapt_code.fim`); the model's completion is the middle. Loading,
adapters per request, batching and the serving policy are the text plugin's and the core's;
with ``--engine vllm`` the same prompts go to :class:`polyadapt_text.vllm_engine.VllmServable`.
"""

from __future__ import annotations

from typing import Any

from polyadapt_text.serve import TextServable
from polyadapt_text.vllm_engine import VllmServable

from polyadapt.errors import PolyadaptError
from polyadapt.types import GenerationRequest, ServeSpec
from polyadapt_code.fim import fim_tokens


def _fallback(spec: ServeSpec) -> str:
    options = (spec.config.task_options if spec.config is not None else None) or {}
    return options.get("fim_fallback", "text") if isinstance(options, dict) else "text"


class FimPrompts:
    """FIM prompts over a text servable (mixed in before it): ``encode`` builds the PSM prompt for
    a request with ``suffix`` and leaves the others to the servable."""

    tokenizer: Any
    fim: Any

    def tokens(self, text: str) -> list[int]:
        """Token ids of ``text`` without special tokens (as training encodes file text)."""
        return self.tokenizer.encode(text, add_special_tokens=False) if text else []

    def encode(self, request: GenerationRequest) -> list[int]:
        """A FIM prompt when the request has a ``suffix``, else the text plugin's encoding."""
        if request.suffix is None:
            return super().encode(request)  # type: ignore[misc]  # the text servable's, after this mixin
        if request.messages is not None:
            raise PolyadaptError("suffix (fill-in-the-middle) goes with a prompt, not with chat messages")
        if self.fim is None:
            raise PolyadaptError(
                "this model has no FIM tokens and the run set task_options.fim_fallback: off; "
                "send the prompt without suffix"
            )
        return self.fim.prompt_ids(self.tokens(request.prompt or ""), self.tokens(request.suffix))


class CodeServable(FimPrompts, TextServable):
    """A code LM held in memory, with per-request adapters and FIM prompts."""

    def __init__(self, spec: ServeSpec):
        super().__init__(spec)
        self.fim = fim_tokens(self.tokenizer, _fallback(spec))


class CodeVllmServable(FimPrompts, VllmServable):
    """A code LM served by vLLM (``--engine vllm``), with per-request adapters and FIM prompts."""

    def __init__(self, spec: ServeSpec):
        super().__init__(spec)
        self.fim = fim_tokens(self.tokenizer, _fallback(spec))
