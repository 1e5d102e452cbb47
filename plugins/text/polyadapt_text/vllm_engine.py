"""``polyadapt serve --engine vllm``: text (and code) adapters answered by vLLM's multi-LoRA engine.

:class:`VllmServable` is a servable like :class:`polyadapt_text.serve.TextServable`, so the
server around it is unchanged (API keys, limits, metrics, the serving policy, the adapter
cache, the micro-batcher). Underneath it holds one ``vllm.LLM`` with LoRA enabled:

- **the base** loads once, from the folder or hub id transformers would load (a GGUF base's
  converted folder), in the dtype the transformers engine would use; the tokenizer is the
  transformers one, so prompts are encoded exactly as that engine (and training) encodes them
  and reach vLLM as token ids.
- **adapters** are ``LoRARequest(name, id, folder)``; an adapter keeps its id for as long as
  the server runs (one id per name and folder), so vLLM's own caches never confuse two.
  ``max_lora_rank`` is the largest ``r`` among the adapters' ``adapter_config.json`` at start,
  rounded up to a rank vLLM accepts; ``max_loras`` (adapters in one batch) is the smaller of
  ``max_batch`` and ``max_adapters``, and ``max_cpu_loras`` is ``max_adapters``. Loading an
  adapter checks its config for what vLLM refuses (DoRA, ``modules_to_save``, a bias,
  per-module ranks) and names the file and field.
- **a batch** is one ``LLM.generate`` call: one token-id prompt, one ``SamplingParams`` and one
  ``lora_request`` (None for the base) per request.

Honoured: ``max_tokens``, ``temperature``, ``top_p``, ``stop``, ``seed``, ``n`` (the server
sends n requests), ``logprobs`` / ``top_logprobs`` (vLLM's raw log-probabilities, before
sampling settings, as the transformers engine reports), ``frequency_penalty``,
``presence_penalty``, ``logit_bias``. Refused with a 400 that names the option: ``echo``,
``stop_after_content`` (code evaluation's line completion), and embeddings
(``/v1/embeddings``). ``stream: true`` is answered, but the whole completion arrives in one
chunk at the end: ``LLM.generate`` returns finished requests only.

It has not been run on a GPU in this project (no GPU machine here has vLLM). It follows vLLM
0.11.0's API (``vllm/entrypoints/llm.py``, ``vllm/sampling_params.py``, ``vllm/lora/request.py``,
``vllm/config/lora.py``, ``vllm/outputs.py``, ``vllm/v1/engine/llm_engine.py``), checked against
the real 0.11.0 and 0.34.0 wheels: every name it passes or reads exists in both
(tests/test_vllm_api_contract.py, from scripts/record_vllm_api.py's record), and the
``SamplingParams`` / ``LoRARequest`` it builds were constructed with 0.11.0's own classes.
``benchmarks/vllm_check.py`` compares it with the transformers engine on a machine that has both.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from polyadapt.errors import PolyadaptError
from polyadapt.types import (
    EmbeddingRequest,
    EmbeddingResult,
    GenerationRequest,
    GenerationResult,
    ServeSpec,
    TokenLogprob,
)
from polyadapt_text.model import CONTEXT_ATTRIBUTES, load_tokenizer, model_source, resolve_dtype
from polyadapt_text.serve import _base_config, check_fits, load_named_adapters, prompt_ids
from polyadapt_text.tokens import LOWEST_LOGPROB, TokenTexts

#: The ranks every vLLM from 0.11.0 on accepts for ``max_lora_rank``: 0.11.0's ``LoRAConfig``
#: allows (8, 16, 32, 64, 128, 256, 320, 512) (later releases add 1), so a rank-1 adapter runs
#: under max_lora_rank 8.
VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)
#: ``max_lora_rank`` when no adapter is known at start (vLLM's own default).
DEFAULT_LORA_RANK = 16
#: What the server sizes vLLM's adapter slots from when the spec carries no settings.
DEFAULT_MAX_BATCH, DEFAULT_MAX_ADAPTERS = 8, 8
#: How vLLM says why a completion ended → the server's ``finish_reason``.
FINISH_REASONS = {"stop": "stop", "length": "length"}
#: The engine's name in messages.
ENGINE = "the vLLM engine (--engine vllm)"


def _refused(option: str, why: str) -> PolyadaptError:
    """The 400 for a request option this engine cannot honour."""
    return PolyadaptError(f"{option}: {why} under {ENGINE}; leave it out or serve with --engine transformers")


# ---------------------------------------------------------------------------------------
# Adapter configs
# ---------------------------------------------------------------------------------------


def read_adapter_config(path: Path) -> dict[str, Any]:
    """The adapter's ``adapter_config.json`` as a dict; a missing or broken one names the file."""
    file = Path(path) / "adapter_config.json"
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolyadaptError(f"{file}: no adapter_config.json; is {path} a PEFT LoRA adapter folder?") from None
    except (OSError, ValueError) as exc:
        raise PolyadaptError(f"{file}: cannot read the adapter config: {exc}") from None
    if not isinstance(config, dict):
        raise PolyadaptError(f"{file}: the adapter config is not a JSON object")
    return config


def lora_rank(path: Path) -> int:
    """The LoRA rank ``r`` of the adapter at ``path``, after checking that vLLM can load it.

    vLLM refuses DoRA, ``modules_to_save`` and trained biases, and ignores PEFT's per-module
    ``rank_pattern`` / ``alpha_pattern`` (which would silently change the adapter): each is an
    error that names the file and the field.
    """
    config = read_adapter_config(path)
    file = Path(path) / "adapter_config.json"
    peft_type = config.get("peft_type", "LORA")
    if peft_type != "LORA":
        raise PolyadaptError(f"{file}: peft_type {peft_type!r}: {ENGINE} serves LoRA adapters only")
    rank = config.get("r")
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
        raise PolyadaptError(f"{file}: field 'r' must be a positive integer (the LoRA rank), got {rank!r}")
    problems = {
        "use_dora": (bool(config.get("use_dora")), "DoRA adapters are not supported by vLLM"),
        "modules_to_save": (bool(config.get("modules_to_save")), "vLLM loads no fully trained modules"),
        "bias": (config.get("bias", "none") not in (None, "none"), "vLLM loads no trained biases"),
        "rank_pattern": (bool(config.get("rank_pattern")), "vLLM ignores per-module ranks"),
        "alpha_pattern": (bool(config.get("alpha_pattern")), "vLLM ignores per-module alphas"),
    }
    for field, (present, why) in problems.items():
        if present:
            raise PolyadaptError(
                f"{file}: field {field!r} is set ({config[field]!r}), but {why}; serve this adapter with "
                "--engine transformers"
            )
    return rank


def engine_rank(rank: int) -> int:
    """The smallest rank vLLM accepts for ``max_lora_rank`` that holds ``rank``."""
    for allowed in VLLM_LORA_RANKS:
        if rank <= allowed:
            return allowed
    raise PolyadaptError(
        f"an adapter of rank {rank} is above the largest rank vLLM serves ({VLLM_LORA_RANKS[-1]}); "
        "serve it with --engine transformers"
    )


def max_lora_rank(adapters: Mapping[str, Path]) -> int:
    """``max_lora_rank`` for the adapters known at start (their largest ``r``, rounded up)."""
    ranks = [lora_rank(path) for path in adapters.values()]
    return engine_rank(max(ranks)) if ranks else DEFAULT_LORA_RANK


# ---------------------------------------------------------------------------------------
# The servable
# ---------------------------------------------------------------------------------------


class VllmServable:
    """One ``vllm.LLM`` with LoRA enabled, serving a base and its adapters (a ``Servable``).

    The server's ``engine_args`` (``--engine-arg``), then ``engine_args``, are passed on to
    ``vllm.LLM`` as they are (``gpu_memory_utilization``, ``max_model_len``, ``enforce_eager``…),
    over the values computed here.
    """

    #: What ``generate`` honours beyond text, stop and sampling (the server refuses the rest):
    #: no ``echo``, and no ``stream`` (a streamed answer arrives whole, at the end).
    generation_features = frozenset({"logprobs", "penalties", "logit_bias"})

    def __init__(self, spec: ServeSpec, *, engine_args: Mapping[str, Any] | None = None):
        """Load the base of ``spec`` into vLLM (see the module docs for the sizes)."""
        from vllm import LLM

        self.spec = spec
        self.base_name = spec.base_name
        config = _base_config(spec)
        if config.quantization != "none":
            raise PolyadaptError(
                f"base_model.quantization {config.quantization!r} of {spec.base_name!r}: {ENGINE} loads the base "
                "unquantized; serve it with --engine transformers, or without quantization"
            )
        rank = max_lora_rank(spec.adapters)  # checks every adapter before anything loads
        source = model_source(config)  # a GGUF base: the folder it was converted to
        self.tokenizer = load_tokenizer(config, source)
        self.texts = TokenTexts(self.tokenizer)
        settings = spec.settings
        max_batch = settings.max_batch if settings is not None else DEFAULT_MAX_BATCH
        max_adapters = settings.max_adapters if settings is not None else DEFAULT_MAX_ADAPTERS
        max_loras = max(1, min(max_batch, max_adapters))
        arguments: dict[str, Any] = {
            "tokenizer": config.tokenizer or source,
            "revision": config.revision if source == config.id else None,
            "dtype": str(resolve_dtype(config.dtype)).removeprefix("torch."),
            "trust_remote_code": config.trust_remote_code,
            "enable_lora": True,
            "max_loras": max_loras,
            "max_lora_rank": rank,
            "max_cpu_loras": max(max_loras, max_adapters),
        }
        arguments.update(settings.engine_args if settings is not None else {})  # --engine-arg KEY=VALUE
        arguments.update(engine_args or {})
        self.engine_arguments = arguments
        self.max_lora_rank = int(arguments["max_lora_rank"])  # a larger one asked for admits larger adapters
        self.llm = LLM(model=source, **arguments)
        self.context = self._max_model_len(source, config)
        self._adapters: dict[str, Any] = {}  # name → LoRARequest
        self._ids: dict[tuple[str, str], int] = {}  # (name, folder) → lora_int_id, never reused
        self._lock = threading.RLock()

    def _max_model_len(self, source: str, config: Any) -> int | None:
        """The positions vLLM serves (its ``max_model_len``), else the model config's limit."""
        model_config = getattr(getattr(self.llm, "llm_engine", None), "model_config", None)
        value = getattr(model_config, "max_model_len", None)
        if isinstance(value, int) and value > 0:
            return value
        from transformers import AutoConfig

        hf_config = AutoConfig.from_pretrained(source, trust_remote_code=config.trust_remote_code)
        for name in CONTEXT_ATTRIBUTES:
            found = getattr(hf_config, name, None)
            if isinstance(found, int) and found > 0:
                return found
        return None

    # -- adapters --------------------------------------------------------------------------

    def adapter_names(self) -> list[str]:
        """The names of the adapters loaded so far."""
        return list(self._adapters)

    def lora_id(self, name: str, path: Path) -> int:
        """The ``lora_int_id`` of adapter ``name`` at ``path``: the same for as long as the server
        runs (an evicted adapter that comes back keeps it), new for a new name or folder."""
        key = (name, str(Path(path).resolve()))
        if key not in self._ids:
            self._ids[key] = len(self._ids) + 1  # vLLM wants ids above 0
        return self._ids[key]

    def load_adapter(self, name: str, path: Path) -> None:
        """Register the adapter at ``path`` under ``name`` with vLLM; no-op if already loaded.

        Its config is checked first (:func:`lora_rank`); a rank above the ``max_lora_rank``
        the engine started with is refused (vLLM cannot grow it).
        """
        from vllm.lora.request import LoRARequest

        with self._lock:
            if name in self._adapters:
                return
            rank = lora_rank(path)
            if rank > self.max_lora_rank:
                raise PolyadaptError(
                    f"adapter {name!r} ({Path(path) / 'adapter_config.json'}) has rank r={rank}, above the "
                    f"max_lora_rank {self.max_lora_rank} vLLM started with for {self.base_name!r} (from the adapters "
                    "served at start); restart polyadapt serve so that it sees this adapter"
                )
            request = LoRARequest(
                lora_name=name, lora_int_id=self.lora_id(name, path), lora_path=str(Path(path).resolve())
            )
            try:  # LLMEngine.add_lora (as vLLM's tests/lora/test_lora_functions.py): a broken adapter fails
                self.llm.llm_engine.add_lora(request)  # here, at load, not inside a batch
            except Exception as exc:  # the engine-core process reports a failure as a bare Exception
                raise PolyadaptError(
                    f"cannot load adapter {name!r} from {path} onto {self.base_name!r}: {exc}"
                ) from exc
            self._adapters[name] = request

    def unload_adapter(self, name: str) -> None:
        """Remove the adapter ``name`` from vLLM's caches; no-op if not loaded. A later request for it
        loads it again under the same id."""
        with self._lock:
            request = self._adapters.pop(name, None)
            if request is not None:
                self.llm.llm_engine.remove_lora(request.lora_int_id)

    def _ensure_adapters(self, requests: list[GenerationRequest]) -> None:
        """Load the adapters the requests name from ``spec.adapters`` on first use."""
        load_named_adapters(self, self._adapters, requests)

    # -- generation ------------------------------------------------------------------------

    def encode(self, request: GenerationRequest) -> list[int]:
        """The prompt token ids, encoded as the transformers engine encodes them."""
        return prompt_ids(self.tokenizer, request, self.spec)

    def decode(self, tokens: list[int]) -> str:
        """Text of ``tokens``, special tokens left out."""
        return self.tokenizer.decode(tokens, skip_special_tokens=True)

    def check_request(self, request: GenerationRequest) -> None:
        """Refuse (PolyadaptError, a 400) what this engine cannot honour."""
        if request.echo:
            raise _refused("echo", "returning the prompt is not supported")
        if request.stop_after_content:
            raise _refused(
                "stop_after_content", "stop strings that count only after the first non-blank are not supported"
            )

    def sampling_params(self, request: GenerationRequest) -> Any:
        """vLLM's ``SamplingParams`` for one request (greedy at temperature 0)."""
        from vllm import SamplingParams

        sampled = request.temperature > 0
        try:
            return self._sampling_params(SamplingParams, request, sampled)
        except ValueError as exc:  # SamplingParams validates its fields (top_p in (0, 1], penalties in [-2, 2], ...)
            raise PolyadaptError(f"vLLM refused the sampling settings: {exc}") from exc

    @staticmethod
    def _sampling_params(factory: Any, request: GenerationRequest, sampled: bool) -> Any:
        """``factory(...)`` (vLLM's ``SamplingParams``) with the request's settings."""
        return factory(
            n=1,
            temperature=request.temperature if sampled else 0.0,
            top_p=request.top_p if sampled else 1.0,
            seed=request.seed if sampled else None,
            max_tokens=request.max_tokens,
            stop=list(request.stop) or None,
            logprobs=request.logprobs,
            frequency_penalty=request.frequency_penalty,
            presence_penalty=request.presence_penalty,
            logit_bias=dict(request.logit_bias) if request.logit_bias else None,
            skip_special_tokens=True,
        )

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """Answer a batch with one ``LLM.generate``: a prompt, sampling settings and adapter per request."""
        if not requests:
            return []
        from vllm.inputs import TokensPrompt

        with self._lock:
            self._ensure_adapters(requests)
            prompts, params, loras = [], [], []
            for request in requests:
                self.check_request(request)
                ids = self.encode(request)
                check_fits(self.context, self.base_name, len(ids), request.max_tokens)
                prompts.append(TokensPrompt(prompt_token_ids=ids))
                params.append(self.sampling_params(request))
                loras.append(self._adapters[request.adapter] if request.adapter is not None else None)
            first_id = self._next_request_id()
            try:
                outputs = self.llm.generate(prompts, params, use_tqdm=False, lora_request=loras)
            except ValueError as exc:  # vLLM's request validation (a bad logit_bias id, say)
                self._abort_added(first_id)
                raise PolyadaptError(f"vLLM refused the request: {exc}") from exc
        if len(outputs) != len(requests):
            raise RuntimeError(f"vLLM answered {len(outputs)} of {len(requests)} requests")
        return [self.result(request, prompt, output) for request, prompt, output in zip(requests, prompts, outputs)]

    def _next_request_id(self) -> int | None:
        """The id ``LLM.generate`` gives its next request (``LLM.request_counter``), if it has one."""
        counter = getattr(self.llm, "request_counter", None)
        value = getattr(counter, "counter", None)
        return value if isinstance(value, int) else None

    def _abort_added(self, first_id: int | None) -> None:
        """Abort the requests of a refused batch that vLLM had already queued.

        vLLM 0.11 adds a batch's requests one by one and raises on the first invalid one,
        leaving those before it in the engine, where the next ``generate`` would answer them too
        (later releases abort them themselves; then nothing is left to abort here).
        """
        last_id = self._next_request_id()
        engine = self.llm.llm_engine
        if first_id is None or last_id is None or last_id <= first_id or not engine.has_unfinished_requests():
            return
        engine.abort_request([str(request_id) for request_id in range(first_id, last_id)])

    def result(self, request: GenerationRequest, prompt: Mapping[str, Any], output: Any) -> GenerationResult:
        """A ``RequestOutput`` as a :class:`GenerationResult` (text, token counts, finish reason, logprobs).

        ``completion_tokens`` counts every token vLLM generated, through the end-of-sequence
        token or the one that completed a stop string, as the transformers engine counts.
        """
        completion = output.outputs[0]
        reason = FINISH_REASONS.get(completion.finish_reason)
        if reason is None:
            raise RuntimeError(f"vLLM ended the request with finish_reason {completion.finish_reason!r}")
        prompt_tokens = output.prompt_token_ids if output.prompt_token_ids is not None else prompt["prompt_token_ids"]
        result = GenerationResult(
            text=completion.text,
            prompt_tokens=len(prompt_tokens),
            completion_tokens=len(completion.token_ids),
            finish_reason=reason,
        )
        if request.logprobs is not None:
            # vLLM's stop_reason: None for the tokenizer's end-of-sequence token, a token id for one
            # of the generation config's other eos_token_id (vLLM adds them as stop_token_ids; this
            # engine sets none itself), the string for a stop string.
            stop_reason = completion.stop_reason
            ended_by_eos = (
                reason == "stop"
                and (stop_reason is None or isinstance(stop_reason, int))
                and len(completion.token_ids) > 0
            )
            tokens = list(completion.token_ids)[:-1] if ended_by_eos else list(completion.token_ids)
            result.logprobs = self.logprob_entries(tokens, completion.logprobs or [], request.logprobs)
        return result

    def logprob_entries(self, tokens: list[int], steps: list[Mapping[int, Any]], top: int) -> list[TokenLogprob]:
        """One entry per generated token from vLLM's per-step ``{token id: Logprob}`` dicts: the token's
        log-probability and the ``top`` likeliest (``rank`` 1 to ``top``), likeliest first."""
        entries = []
        for token, step in zip(tokens, steps):
            text, raw = self.texts(token)
            chosen = step.get(token)
            best = sorted(
                (entry.rank, token_id, entry.logprob)
                for token_id, entry in step.items()
                if entry.rank is not None and 1 <= entry.rank <= top
            )
            alternatives = [(*self.texts(token_id), _finite(value)) for _, token_id, value in best[:top]]
            entries.append(
                TokenLogprob(text, raw, _finite(chosen.logprob) if chosen is not None else None, alternatives)
            )
        return entries

    # -- embeddings ------------------------------------------------------------------------

    def embed(self, requests: list[EmbeddingRequest]) -> list[EmbeddingResult]:
        """Refused: vLLM's generating engine does not pool hidden states (a 400 that says so)."""
        raise PolyadaptError(
            f"/v1/embeddings: {self.base_name!r} is served by {ENGINE}, which does not embed; serve it with "
            "--engine transformers for embeddings"
        )


def _finite(value: float) -> float:
    return value if math.isfinite(value) else LOWEST_LOGPROB
