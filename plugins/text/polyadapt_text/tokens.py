"""Work done per token while the text servable generates, and its pooled embeddings.

:class:`GenerationExtras` adds to one batched ``generate`` call what OpenAI's options ask of it,
row by row, without leaving the batch:

- **log-probabilities** (``logprobs``): a forward hook keeps the model's raw last-position
  logits of each step; a stopping criterion (called once per step, after the token is chosen)
  turns the rows that asked into :class:`~polyadapt.types.TokenLogprob` entries. They are the
  model's own log-probabilities, before temperature, top-p, penalties and bias, as OpenAI's are.
- **streaming** (``on_token``): the same criterion reports each row's text so far to its
  request as a :class:`~polyadapt.types.TokenStep`; a client that is gone stops its row.
- **echo**: the prompt text and, with logprobs, one forward pass over the prompt for the
  log-probabilities of its tokens (the first has none).
- **penalties and bias** (``frequency_penalty``, ``presence_penalty``, ``logit_bias``): a
  logits processor applies OpenAI's definitions per row:
  ``logit[j] -= count[j] * frequency + (count[j] > 0) * presence``, over the tokens generated
  so far, then ``logit[j] += bias[j]``.

Nothing here runs for a batch that asks for none of these.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Iterator
from typing import Any

import torch

from polyadapt.errors import PolyadaptError
from polyadapt.types import GenerationRequest, GenerationResult, TokenLogprob, TokenStep

#: What OpenAI reports in place of a log-probability of minus infinity (JSON has no infinity).
LOWEST_LOGPROB = -9999.0
#: Prompt positions scored per chunk for echo: bounds the (positions x vocabulary) matrix.
PROMPT_CHUNK = 256

_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def _byte_level_alphabet() -> dict[str, int]:
    """GPT-2's byte-level alphabet reversed: the character a byte-level BPE writes for each byte."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return {chr(code): byte for byte, code in zip(printable, codes)}


_BYTE_LEVEL = _byte_level_alphabet()


class TokenTexts:
    """Each token's bytes and its text as OpenAI shows it (cached per id).

    A token that is not valid UTF-8 on its own (part of a multi-byte character) is shown as
    ``bytes:\\xe2\\x82``, as OpenAI does; ``bytes`` always holds the raw bytes.
    """

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        decoder = getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", None)
        self.byte_level = type(decoder).__name__ == "ByteLevel"
        self._cache: dict[int, tuple[str, list[int]]] = {}

    def raw_bytes(self, token_id: int) -> bytes:
        """The bytes token ``token_id`` stands for."""
        piece = self.tokenizer.convert_ids_to_tokens(token_id)
        if piece is None:
            return b""
        match = _BYTE_PIECE.fullmatch(piece)
        if match:  # SentencePiece byte fallback
            return bytes([int(match.group(1), 16)])
        if self.byte_level and all(char in _BYTE_LEVEL for char in piece):
            return bytes(_BYTE_LEVEL[char] for char in piece)
        return piece.replace("\u2581", " ").encode("utf-8")  # SentencePiece's word-start mark

    def __call__(self, token_id: int) -> tuple[str, list[int]]:
        """(text, bytes) of token ``token_id``."""
        if token_id not in self._cache:
            raw = self.raw_bytes(token_id)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = "bytes:" + "".join(f"\\x{byte:02x}" for byte in raw)
            self._cache[token_id] = (text, list(raw))
        return self._cache[token_id]


def _finite(value: float) -> float:
    return value if math.isfinite(value) else LOWEST_LOGPROB


def logprob_entries(logits: torch.Tensor, chosen: list[int], top: int, texts: TokenTexts) -> list[TokenLogprob]:
    """One entry per row of ``logits`` (rows x vocabulary, raw): the log-probability of the token
    ``chosen`` for that row and its ``top`` likeliest alternatives."""
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    picked = logprobs.gather(1, torch.tensor(chosen, device=logprobs.device)[:, None]).squeeze(1).tolist()
    best_values: list[list[float]] = [[] for _ in chosen]
    best_ids: list[list[int]] = [[] for _ in chosen]
    if top > 0:
        values, ids = logprobs.topk(min(top, logprobs.shape[-1]), dim=-1)
        best_values, best_ids = values.tolist(), ids.tolist()
    entries = []
    for token, value, alt_values, alt_ids in zip(chosen, picked, best_values, best_ids):
        text, raw = texts(token)
        alternatives = [(*texts(i), _finite(v)) for i, v in zip(alt_ids, alt_values)]
        entries.append(TokenLogprob(text, raw, _finite(value), alternatives))
    return entries


@contextlib.contextmanager
def last_logits(model: Any) -> Iterator[dict[str, torch.Tensor]]:
    """Keep the raw last-position logits of every forward pass of ``model`` (a PEFT model's base
    is hooked) under ``"logits"`` while the context lasts."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    seen: dict[str, torch.Tensor] = {}

    def keep(module: Any, args: Any, output: Any) -> None:
        logits = getattr(output, "logits", None)
        if logits is not None:
            seen["logits"] = logits[:, -1].detach()

    handle = inner.register_forward_hook(keep)
    try:
        yield seen
    finally:
        handle.remove()


class PenaltiesAndBias:
    """A ``LogitsProcessor``: OpenAI's frequency and presence penalties and logit bias, per row
    (see the module docs); rows that set none are left as they are."""

    def __init__(self, requests: list[GenerationRequest], prompt_width: int, device: torch.device):
        self.prompt_width = prompt_width
        self.frequency = torch.tensor([r.frequency_penalty for r in requests], device=device)
        self.presence = torch.tensor([r.presence_penalty for r in requests], device=device)
        self.penalised = bool(self.frequency.any() or self.presence.any())
        self.biases = [r.logit_bias or {} for r in requests]
        self._bias: torch.Tensor | None = None

    def _bias_matrix(self, scores: torch.Tensor) -> torch.Tensor | None:
        if self._bias is None and any(self.biases):
            bias = torch.zeros_like(scores)
            for row, values in enumerate(self.biases):
                for token, value in values.items():
                    bias[row, token] = value
            self._bias = bias
        return self._bias

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """``scores`` with each row's penalties and bias applied."""
        generated = input_ids[:, self.prompt_width :]
        if self.penalised and generated.shape[1]:
            counts = torch.zeros_like(scores).scatter_add_(1, generated, torch.ones_like(generated, dtype=scores.dtype))
            scores = scores - counts * self.frequency[:, None] - (counts > 0).to(scores.dtype) * self.presence[:, None]
        bias = self._bias_matrix(scores)
        return scores + bias if bias is not None else scores


class IncrementalText:
    """One row's completion text, decoding only the last tokens at each step (decoding the whole
    row every step would cost time quadratic in its length).

    The text grows by the decoded difference between the tokens since the last boundary and
    those before it, and only when it does not end in U+FFFD (a character whose bytes are still
    coming), so boundaries fall between whole characters, as in vLLM's detokenizer.
    """

    def __init__(self, decode: Callable[[list[int]], str]):
        self.decode = decode
        self.text = ""
        self._start = 0  # decoding starts here, a boundary before the last one, for context
        self._read = 0  # the text covers the tokens before this boundary

    def __call__(self, tokens: list[int]) -> str:
        """The text of ``tokens`` (the row so far: the previous call's tokens and more)."""
        before = self.decode(tokens[self._start : self._read])
        now = self.decode(tokens[self._start :])
        if len(now) > len(before) and not now.endswith("\ufffd"):
            self.text += now[len(before) :]
            self._start, self._read = self._read, len(tokens)
        return self.text


class RowReporter:
    """A ``StoppingCriteria`` that never ends a row itself: after each step it records the
    log-probability of each row's new token (rows that asked) and reports streaming rows'
    text so far; a row whose client is gone is ended.

    It must follow :class:`~polyadapt_text.serve.RowStops` in the criteria list: it reads
    that one's ``done`` flags to know which rows still generate.
    """

    def __init__(
        self,
        requests: list[GenerationRequest],
        prompt_width: int,
        stops: Any,
        *,
        decode: Callable[[list[int]], str],
        texts: TokenTexts,
        eos_ids: set[int],
        logits: dict[str, torch.Tensor] | None,
    ):
        self.requests, self.prompt_width, self.stops = requests, prompt_width, stops
        self.decode, self.texts, self.eos_ids, self.logits = decode, texts, eos_ids, logits
        self.entries: list[list[TokenLogprob]] = [[] for _ in requests]
        self.finished = [False] * len(requests)
        self.texts_so_far = [IncrementalText(decode) for _ in requests]

    def _record_logprobs(self, last: list[int]) -> dict[int, TokenLogprob]:
        rows = [row for row, r in enumerate(self.requests) if not self.finished[row] and r.logprobs is not None]
        step_logits = self.logits.get("logits") if self.logits is not None else None
        if not rows or step_logits is None:
            return {}
        top = max(self.requests[row].logprobs or 0 for row in rows)
        picked = step_logits[torch.tensor(rows, device=step_logits.device)]
        new = {}
        for row, entry in zip(rows, logprob_entries(picked, [last[row] for row in rows], top, self.texts)):
            entry.top = (entry.top or [])[: self.requests[row].logprobs]
            self.entries[row].append(entry)
            new[row] = entry
        return new

    def __call__(self, input_ids: torch.Tensor, scores: Any = None, **kwargs: Any) -> torch.Tensor:
        """One flag per row: True only for a streaming row whose client has gone."""
        last = input_ids[:, -1].tolist()
        new_entries = self._record_logprobs(last)
        gone = [False] * len(self.requests)
        for row, request in enumerate(self.requests):
            if self.finished[row]:
                continue
            if request.on_token is not None:
                tokens = input_ids[row, self.prompt_width :].tolist()
                at_end = last[row] in self.eos_ids
                entry = [new_entries[row]] if row in new_entries and not at_end else []
                text = self.texts_so_far[row](tokens[:-1] if at_end else tokens)
                step = TokenStep(text=text, tokens=len(tokens), logprobs=entry)
                gone[row] = bool(request.on_token(step))
            self.finished[row] = bool(self.stops.done[row]) or gone[row]
        return torch.tensor(gone, dtype=torch.bool, device=input_ids.device)


class GenerationExtras:
    """What one ``generate`` call over ``requests`` adds for OpenAI's options (module docs).

    ``servable`` is the :class:`~polyadapt_text.serve.TextServable` (its model, tokenizer,
    ``decode`` and EOS ids); ``prompts`` the rows' prompt ids, left-padded to ``prompt_width``;
    ``names`` the rows' PEFT adapter names for a mixed batch, or None when one adapter (or
    none) is active.
    """

    def __init__(
        self,
        servable: Any,
        requests: list[GenerationRequest],
        prompts: list[list[int]],
        prompt_width: int,
        stops: Any,
        names: list[str] | None,
    ):
        self.servable, self.requests, self.prompts, self.names = servable, requests, prompts, names
        self.texts = TokenTexts(servable.tokenizer)
        self.wants_logprobs = any(r.logprobs is not None for r in requests)
        self.reporter: RowReporter | None = None
        self.criteria: list[Any] = []
        self.processors: list[Any] = []
        self._check_bias()
        if any(r.frequency_penalty or r.presence_penalty or r.logit_bias for r in requests):
            self.processors.append(PenaltiesAndBias(requests, prompt_width, servable.device))
        self._prompt_width, self._stops = prompt_width, stops

    def _check_bias(self) -> None:
        vocabulary = self.servable.model.get_output_embeddings().weight.shape[0]
        for request in self.requests:
            for token in request.logit_bias or {}:
                if not 0 <= token < vocabulary:
                    raise PolyadaptError(
                        f"logit_bias names token {token}, which is not in the vocabulary of "
                        f"{self.servable.base_name!r} (token ids 0 to {vocabulary - 1})"
                    )

    @contextlib.contextmanager
    def around_generate(self) -> Iterator[None]:
        """Answer echo (prompt text and log-probabilities, reported to streams first), then keep
        the step logits while ``generate`` runs, when a row asked for log-probabilities."""
        self._echo()
        reporting = self.wants_logprobs or any(r.on_token is not None for r in self.requests)
        if not reporting:
            yield
            return
        with contextlib.ExitStack() as stack:
            logits = stack.enter_context(last_logits(self.servable.model)) if self.wants_logprobs else None
            self.reporter = RowReporter(
                self.requests,
                self._prompt_width,
                self._stops,
                decode=self.servable.decode,
                texts=self.texts,
                eos_ids=self.servable.eos_ids,
                logits=logits,
            )
            self.criteria.append(self.reporter)
            yield

    def _echo(self) -> None:
        self.prompt_logprobs: dict[int, list[TokenLogprob]] = {}
        for row, request in enumerate(self.requests):
            if not request.echo:
                continue
            if request.logprobs is not None:
                self.prompt_logprobs[row] = self._score_prompt(row, request.logprobs)
            if request.on_token is not None:
                request.on_token(
                    TokenStep(
                        text="",
                        tokens=0,
                        prompt_text=request.prompt or "",
                        prompt_logprobs=self.prompt_logprobs.get(row),
                    )
                )

    def _score_prompt(self, row: int, top: int) -> list[TokenLogprob]:
        """The log-probability of each prompt token given those before it (the first has none)."""
        ids = self.prompts[row]
        forward: dict[str, Any] = {"adapter_names": [self.names[row]]} if self.names is not None else {}
        input_ids = torch.tensor([ids], device=self.servable.device)
        logits = self.servable.model(input_ids=input_ids, **forward).logits[0, :-1]
        text, raw = self.texts(ids[0])
        entries = [TokenLogprob(text, raw, None, None)]
        for start in range(0, len(ids) - 1, PROMPT_CHUNK):
            chunk = logits[start : start + PROMPT_CHUNK]
            entries += logprob_entries(chunk, ids[start + 1 : start + 1 + len(chunk)], top, self.texts)
        return entries

    def complete(self, row: int, tokens: list[int], result: GenerationResult) -> None:
        """Fill ``result`` (row ``row``, its generated ``tokens``) with what its request asked for."""
        request = self.requests[row]
        if request.echo:
            result.prompt_text = request.prompt or ""
            result.prompt_logprobs = self.prompt_logprobs.get(row)
        if request.logprobs is not None and self.reporter is not None:
            counted = tokens[: result.completion_tokens]
            kept = len(counted) - (1 if counted and counted[-1] in self.servable.eos_ids else 0)
            result.logprobs = self.reporter.entries[row][:kept]


def mean_pooled(hidden: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
    """Each row's hidden states (rows x positions x width) averaged over the positions its
    ``attention`` mask keeps, L2-normalised, in float32."""
    mask = attention.unsqueeze(-1).to(torch.float32)
    summed = (hidden.to(torch.float32) * mask).sum(dim=1)
    return torch.nn.functional.normalize(summed / mask.sum(dim=1).clamp(min=1.0), dim=-1)
