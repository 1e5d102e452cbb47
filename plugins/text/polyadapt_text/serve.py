"""The text plugin's ``serve``: one base in memory, LoRA adapters switched per request.

:class:`TextServable` loads the base once. Adapters join the same PEFT model on first use
(``PeftModel.from_pretrained`` for the first, ``load_adapter`` for the rest), so the base
weights are never loaded twice. Inside PEFT they are named ``adapter0``, ``adapter1`` …:
client names such as ``a`` (a substring of PEFT's ``lora_`` prefix) or ``v1.2`` (a dot)
would break PEFT's weight loading or module naming. A batch whose requests name different
adapters runs as one ``generate`` call with each row through its own adapter
(:func:`polyadapt.row_adapters.adapters_by_row`, ``"__base__"`` for requests to the bare
base). DoRA adapters cannot be mixed in a batch; a batch that holds one is split into one
``generate`` per adapter instead.

Requests with different sampling settings are split into sub-batches; ``max_tokens`` and
``stop`` are per request: the batch generates up to the largest ``max_tokens`` (stopping
early once every row is done) and each row is cut at its own limit, EOS or stop string.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from polyadapt.config import BaseModelConfig
from polyadapt.errors import PolyadaptError
from polyadapt.lora import inference_device
from polyadapt.pretrained import refusing_unsafe_pickles
from polyadapt.row_adapters import BASE_ROW, adapters_by_row
from polyadapt.types import EmbeddingRequest, EmbeddingResult, GenerationRequest, GenerationResult, ServeSpec
from polyadapt_text.data import encode_prompt
from polyadapt_text.model import context_length, load_base
from polyadapt_text.tokens import GenerationExtras, mean_pooled

#: The name PEFT's mixed-batch path uses for "no adapter".
BASE_ADAPTER = BASE_ROW


def _base_config(spec: ServeSpec) -> BaseModelConfig:
    """The base-model section to load: the run config's, else one built from the id."""
    if spec.config is not None:
        return spec.config.base_model
    return BaseModelConfig(id=spec.base_model)


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    """Every token id that ends a generation (tokenizer EOS and the model's configured ones)."""
    ids: set[int] = set()
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (tokenizer.eos_token_id, configured):
        if isinstance(value, int):
            ids.add(value)
        elif value is not None:
            ids.update(int(v) for v in value)
    return ids


def _sampling_key(index: int, request: GenerationRequest) -> tuple:
    """Requests with equal keys can share one ``generate`` call.

    Greedy requests all share one key. Sampled requests share one when temperature and
    top_p match; a seeded one runs alone so that its seed alone decides its answer.
    """
    if request.temperature <= 0:
        return ("greedy",)
    alone = index if request.seed is not None else None
    return ("sample", request.temperature, request.top_p, request.seed, alone)


def group_by_sampling(requests: list[GenerationRequest]) -> list[list[int]]:
    """Indices of ``requests`` grouped by :func:`_sampling_key`, in first-seen order."""
    groups: dict[tuple, list[int]] = {}
    for index, request in enumerate(requests):
        groups.setdefault(_sampling_key(index, request), []).append(index)
    return list(groups.values())


def left_pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) with every row padded on the left to the longest."""
    width = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for index, row in enumerate(rows):
        if row:
            input_ids[index, width - len(row) :] = torch.tensor(row, dtype=torch.long)
            attention[index, width - len(row) :] = 1
    return input_ids, attention


def first_stop(text: str, stops: list[str], start: int = 0) -> int:
    """The index in ``text`` where the earliest of ``stops`` begins (at ``start`` or later), or -1."""
    found = [text.find(stop, start) for stop in stops if stop]
    found = [index for index in found if index >= 0]
    return min(found) if found else -1


def request_stop(text: str, request: GenerationRequest) -> int:
    """Where ``request``'s first stop string begins in ``text``, or -1; with
    ``stop_after_content`` a match inside the leading blank characters does not count."""
    if not request.stop:
        return -1
    start = len(text) - len(text.lstrip()) if request.stop_after_content else 0
    return first_stop(text, request.stop, start)


def finish_row(new_tokens: list[int], request: GenerationRequest, eos_ids: set[int], decode) -> GenerationResult:
    """Cut one row's generated tokens at its EOS, ``max_tokens`` or first stop string.

    ``completion_tokens`` counts the tokens the model produced for this request: through
    the EOS token, through the token that completed a stop string, or ``max_tokens``.
    """
    limit = min(len(new_tokens), request.max_tokens)
    tokens = new_tokens[:limit]
    eos_at = next((i for i, token in enumerate(tokens) if token in eos_ids), None)
    if eos_at is not None:
        text, count, reason = decode(tokens[:eos_at]), eos_at + 1, "stop"
    else:
        text, count, reason = decode(tokens), limit, "length"
    cut = request_stop(text, request)
    if cut >= 0:
        count = _tokens_until_stop(tokens[:count], request, decode)
        text, reason = text[:cut], "stop"
    return GenerationResult(text=text, prompt_tokens=0, completion_tokens=count, finish_reason=reason)


def _tokens_until_stop(tokens: list[int], request: GenerationRequest, decode) -> int:
    """The fewest leading ``tokens`` whose text holds one of ``request``'s stop strings (binary search)."""
    low, high = 1, len(tokens)
    while low < high:
        middle = (low + high) // 2
        if request_stop(decode(tokens[:middle]), request) >= 0:
            high = middle
        else:
            low = middle + 1
    return high


def prompt_ids(tokenizer: Any, request: GenerationRequest, spec: ServeSpec) -> list[int]:
    """The prompt token ids of ``request``: chat through the chat template, plain text as is
    (``suffix`` is refused: fill-in-the-middle needs a code model's servable)."""
    if request.suffix is not None:
        raise PolyadaptError(
            f"suffix (fill-in-the-middle) needs a code model; {spec.base_name!r} serves task "
            f"{spec.task.name!r}, which does not support it"
        )
    prompt = request.messages if request.messages is not None else (request.prompt or "")
    ids = encode_prompt(tokenizer, prompt)
    if not ids:
        raise PolyadaptError("the prompt is empty; send some text to complete")
    return ids


def check_fits(context: int | None, base_name: str, prompt_tokens: int, max_tokens: int) -> None:
    """Refuse a request whose prompt plus ``max_tokens`` is more than the model reads (``context``)."""
    if context is not None and prompt_tokens + max_tokens > context:
        raise PolyadaptError(
            f"the prompt ({prompt_tokens:,} tokens) plus max_tokens ({max_tokens:,}) is more than "
            f"{base_name!r} reads ({context:,} positions); shorten the prompt or lower max_tokens"
        )


class RowStops:
    """A ``StoppingCriteria`` that ends each row at its own EOS, ``max_tokens`` or stop string.

    It only lets ``generate`` stop early once every row is done; :func:`finish_row` cuts
    the rows afterwards, so the answers do not depend on it.
    """

    def __init__(self, requests: list[GenerationRequest], prompt_width: int, eos_ids: set[int], decode):
        self.requests = requests
        self.prompt_width = prompt_width
        self.eos_ids = eos_ids
        self.decode = decode
        self.done = [False] * len(requests)

    def _row_done(self, row: int, new_tokens: list[int]) -> bool:
        request = self.requests[row]
        if len(new_tokens) >= request.max_tokens or new_tokens[-1] in self.eos_ids:
            return True
        return request_stop(self.decode(new_tokens), request) >= 0

    def __call__(self, input_ids: torch.Tensor, scores: Any = None, **kwargs: Any) -> torch.Tensor:
        """One flag per row: True once that row needs no more tokens."""
        new = input_ids[:, self.prompt_width :].tolist()
        for row, tokens in enumerate(new):
            if not self.done[row] and tokens:
                self.done[row] = self._row_done(row, tokens)
        return torch.tensor(self.done, dtype=torch.bool, device=input_ids.device)


def load_named_adapters(servable: Any, loaded: Any, requests: list[GenerationRequest]) -> None:
    """Load, through ``servable.load_adapter``, each adapter ``requests`` name that is not in
    ``loaded`` yet, from ``servable.spec.adapters``; an unknown name is refused, naming the known."""
    for name in dict.fromkeys(r.adapter for r in requests if r.adapter is not None):
        if name in loaded:
            continue
        if name not in servable.spec.adapters:
            known = ", ".join(sorted(servable.spec.adapters)) or "none"
            raise PolyadaptError(f"no adapter {name!r} on base {servable.base_name!r}; known adapters: {known}")
        servable.load_adapter(name, servable.spec.adapters[name])


class TextServable:
    """A causal LM base held in memory with LoRA adapters loaded on demand (a ``Servable``)."""

    #: The request options :meth:`generate` honours beyond text, stop and sampling (the server
    #: refuses them for a servable that does not list them); see :mod:`polyadapt_text.tokens`.
    generation_features = frozenset({"logprobs", "echo", "penalties", "logit_bias", "stream"})

    def __init__(self, spec: ServeSpec):
        """Load the base of ``spec`` once, in eval mode, on CUDA when present."""
        self.spec = spec
        self.base_name = spec.base_name
        self.device = inference_device()
        base, tokenizer = load_base(_base_config(spec))
        self.model = base.to(self.device).eval()
        tokenizer.padding_side = "left"
        self.tokenizer = tokenizer
        self.eos_ids = _eos_ids(base, tokenizer)
        self.context = context_length(base)
        self._adapters: dict[str, Path] = {}
        self._peft_names: dict[str, str] = {}
        self._attempts = 0  # a failed load may leave its PEFT name taken: never reuse one
        self._lock = threading.RLock()

    # -- adapters --------------------------------------------------------------------------

    def adapter_names(self) -> list[str]:
        """The names of the adapters loaded so far."""
        return list(self._adapters)

    def load_adapter(self, name: str, path: Path) -> None:
        """Add the adapter at ``path`` under ``name`` to the model; no-op if already loaded."""
        from peft import PeftModel

        with self._lock:
            if name in self._adapters:
                return
            peft_name = f"adapter{self._attempts}"
            self._attempts += 1
            try:
                with refusing_unsafe_pickles(path, what=f"adapter {name!r}"):
                    if isinstance(self.model, PeftModel):
                        self.model.load_adapter(str(path), adapter_name=peft_name)
                    else:
                        self.model = PeftModel.from_pretrained(self.model, str(path), adapter_name=peft_name)
            except (OSError, ValueError, RuntimeError, KeyError) as exc:
                raise PolyadaptError(
                    f"cannot load adapter {name!r} from {path} onto {self.spec.base_model!r}: {exc}"
                ) from exc
            self.model.to(self.device).eval()
            self._adapters[name] = Path(path)
            self._peft_names[name] = peft_name

    def unload_adapter(self, name: str) -> None:
        """Remove the adapter ``name`` from the model and free its weights; no-op if not loaded.

        The server's adapter cache calls it to evict the least recently used adapter; a later
        request for it loads it again.
        """
        with self._lock:
            if name not in self._adapters:
                return
            if len(self._adapters) == 1:
                # PEFT keeps the deleted adapter "active" and then fails on every call: with no
                # adapter left, go back to the bare base (LoRA layers removed, nothing merged)
                self.model = self.model.unload()
            else:
                with warnings.catch_warnings():  # "adapter X was active ... setting Y": the rows name theirs
                    warnings.simplefilter("ignore")
                    self.model.delete_adapter(self._peft_names[name])
            del self._adapters[name]
            del self._peft_names[name]
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    def _ensure_adapters(self, requests: list[GenerationRequest]) -> None:
        """Load the adapters the requests name from ``spec.adapters`` on first use."""
        load_named_adapters(self, self._adapters, requests)

    def _uses_dora(self, name: str) -> bool:
        """Whether the PEFT adapter ``name`` is DoRA (which PEFT's mixed batch refuses)."""
        config = getattr(self.model, "peft_config", {}).get(name)
        return bool(getattr(config, "use_dora", False))

    # -- generation ------------------------------------------------------------------------

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """Answer a batch of requests, each with its own adapter (None for the base)."""
        if not requests:
            return []
        with self._lock:
            self._ensure_adapters(requests)
            results: list[GenerationResult | None] = [None] * len(requests)
            for group in group_by_sampling(requests):
                for index, result in zip(group, self._generate_group([requests[i] for i in group])):
                    results[index] = result
        return results  # type: ignore[return-value]

    def _generate_group(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """One sampling setting: a single mixed-adapter ``generate``, or one per adapter for DoRA."""
        names = [self._peft_names[r.adapter] if r.adapter else BASE_ADAPTER for r in requests]
        if not any(self._uses_dora(name) for name in set(names)):
            return self._generate_rows(requests, names if self._adapters else None)
        results: list[GenerationResult | None] = [None] * len(requests)
        for name in dict.fromkeys(names):
            indices = [i for i, n in enumerate(names) if n == name]
            with self._only(name):
                answers = self._generate_rows([requests[i] for i in indices], None)
            for index, answer in zip(indices, answers):
                results[index] = answer
        return results  # type: ignore[return-value]

    @contextlib.contextmanager
    def use_adapter(self, name: str | None) -> Iterator[None]:
        """Run with the loaded adapter ``name`` alone active, or the bare base for None.

        For scoring outside :meth:`generate` (a plugin's evaluation); hold no other call meanwhile.
        """
        with self._lock:
            if name is None and not self._adapters:  # no adapter loaded yet: the model is the base
                yield
                return
            with self._only(self._peft_names[name] if name is not None else BASE_ADAPTER):
                yield

    @contextlib.contextmanager
    def _only(self, name: str) -> Iterator[None]:
        """Run with the single adapter ``name`` active (the bare base for ``__base__``)."""
        if name == BASE_ADAPTER:
            with self.model.disable_adapter():
                yield
        else:
            self.model.set_adapter(name, inference_mode=True)
            yield

    def _rows_through(self, names: list[str] | None) -> contextlib.AbstractContextManager[dict[str, Any]]:
        """Row ``i`` through PEFT adapter ``names[i]`` (see :func:`adapters_by_row`); the adapters
        as they are set when ``names`` is None. Yields keyword arguments for the forward call."""
        if names is None:
            return contextlib.nullcontext({})
        return adapters_by_row(self.model, names)

    def encode(self, request: GenerationRequest) -> list[int]:
        """The prompt token ids: chat through the chat template, plain text as is."""
        return prompt_ids(self.tokenizer, request, self.spec)

    def _check_fits(self, prompt_tokens: int, max_tokens: int) -> None:
        """Refuse a request whose prompt plus ``max_tokens`` is more than the model reads."""
        check_fits(self.context, self.base_name, prompt_tokens, max_tokens)

    def decode(self, tokens: list[int]) -> str:
        """Text of generated ``tokens``, special tokens left out."""
        return self.tokenizer.decode(tokens, skip_special_tokens=True)

    def _generation_kwargs(self, requests: list[GenerationRequest]) -> dict[str, Any]:
        """Sampling arguments for one ``generate`` call."""
        first = requests[0]
        kwargs: dict[str, Any] = {"max_new_tokens": max(r.max_tokens for r in requests)}
        if first.temperature > 0:
            kwargs.update(do_sample=True, temperature=first.temperature, top_p=first.top_p, top_k=0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return kwargs

    @torch.inference_mode()
    def _generate_rows(self, requests: list[GenerationRequest], names: list[str] | None) -> list[GenerationResult]:
        """One ``generate`` over ``requests``: per-row adapters ``names``, or the active ones if None."""
        from transformers import LogitsProcessorList, StoppingCriteriaList

        prompts = [self.encode(r) for r in requests]
        for prompt, request in zip(prompts, requests):
            self._check_fits(len(prompt), request.max_tokens)
        input_ids, attention = left_pad(prompts, self.tokenizer.pad_token_id)
        width = input_ids.shape[1]
        stops = RowStops(requests, width, self.eos_ids, self.decode)
        kwargs = self._generation_kwargs(requests)
        extras = GenerationExtras(self, requests, prompts, width, stops, names)  # logprobs, streaming, echo...
        # Rows through their adapters innermost: echo scores its prompts on entering ``extras``.
        with seeded(requests[0], self.device), extras.around_generate(), self._rows_through(names) as row_kwargs:
            output = self.model.generate(
                input_ids=input_ids.to(self.device),
                attention_mask=attention.to(self.device),
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=sorted(self.eos_ids) or None,
                stopping_criteria=StoppingCriteriaList([stops, *extras.criteria]),
                logits_processor=LogitsProcessorList(extras.processors),
                **kwargs,
                **row_kwargs,
            )
        results = []
        for row, request in enumerate(requests):
            tokens = output[row, width:].tolist()
            result = finish_row(tokens, request, self.eos_ids, self.decode)
            result.prompt_tokens = len(prompts[row])
            extras.complete(row, tokens, result)
            results.append(result)
        return results

    # -- embeddings ------------------------------------------------------------------------

    def embed(self, requests: list[EmbeddingRequest]) -> list[EmbeddingResult]:
        """Embed a batch of texts, each with its own adapter: the last hidden state averaged over
        the text's tokens, L2-normalised."""
        if not requests:
            return []
        with self._lock:
            self._ensure_adapters(requests)  # type: ignore[arg-type]  # same `adapter` field
            ids = [self._embedding_ids(r.text) for r in requests]
            names = [self._peft_names[r.adapter] if r.adapter else BASE_ADAPTER for r in requests]
            if not any(self._uses_dora(name) for name in set(names)):
                parts = [(list(range(len(requests))), names if self._adapters else None, None)]
            else:  # DoRA: one adapter at a time, as in _generate_group
                parts = [([i for i, n in enumerate(names) if n == name], None, name) for name in dict.fromkeys(names)]
            vectors: list[list[float]] = [[] for _ in requests]
            for indices, row_names, only in parts:
                with self._only(only) if only is not None else contextlib.nullcontext():
                    for index, vector in zip(indices, self._embed_rows([ids[i] for i in indices], row_names)):
                        vectors[index] = vector
        return [EmbeddingResult(embedding=v, prompt_tokens=len(i)) for v, i in zip(vectors, ids)]

    @property
    def _keeps_logits(self) -> bool:
        """Whether the model's forward takes ``logits_to_keep`` (recent transformers models do)."""
        import inspect

        inner = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        return "logits_to_keep" in inspect.signature(inner.forward).parameters

    def _embedding_ids(self, text: str) -> list[int]:
        ids = list(self.tokenizer(text, add_special_tokens=True)["input_ids"])
        if not text or not ids:
            raise PolyadaptError("input: an empty string has no embedding; send some text")
        if self.context is not None and len(ids) > self.context:
            raise PolyadaptError(
                f"input: a text of {len(ids):,} tokens is longer than {self.base_name!r} reads "
                f"({self.context:,} positions); shorten it"
            )
        return ids

    @torch.inference_mode()
    def _embed_rows(self, rows: list[list[int]], names: list[str] | None) -> list[list[float]]:
        input_ids, attention = left_pad(rows, self.tokenizer.pad_token_id)
        kwargs: dict[str, Any] = {}
        if self._keeps_logits:
            kwargs["logits_to_keep"] = 1  # the vocabulary projection of every position is not needed
        with self._rows_through(names) as row_kwargs:
            output = self.model(
                input_ids=input_ids.to(self.device),
                attention_mask=attention.to(self.device),
                position_ids=(attention.cumsum(-1) - 1).clamp(min=0).to(self.device),  # left padding
                output_hidden_states=True,
                **kwargs,
                **row_kwargs,
            )
        return mean_pooled(output.hidden_states[-1], attention.to(self.device)).tolist()


@contextlib.contextmanager
def seeded(request: GenerationRequest, dev: torch.device) -> Iterator[None]:
    """Seed torch for one sampled ``generate`` without disturbing the global RNG state."""
    if request.temperature <= 0 or request.seed is None:
        yield
        return
    devices = [dev.index or 0] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(request.seed)
        yield
