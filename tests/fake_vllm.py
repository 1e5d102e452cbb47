"""A stand-in for the ``vllm`` package, for tests on machines without a GPU or vLLM.

It mimics exactly the API surface :mod:`polyadapt_text.vllm_engine` uses, with the names,
constructor and method signatures of vLLM 0.11: ``vllm.LLM(model, *, tokenizer, revision,
dtype, trust_remote_code, ..., **engine_args)`` (unknown engine arguments are a ``TypeError``,
as ``EngineArgs`` makes them; ``max_lora_rank`` outside vLLM's ranks and ``max_cpu_loras`` below
``max_loras`` are a ``ValueError``, as ``LoRAConfig`` makes them), ``LLM.generate(prompts,
sampling_params, *, use_tqdm, lora_request, priority)`` (as 0.11.0, requests added before an
invalid one stay queued until aborted), ``LLM.request_counter``, ``LLM.llm_engine.add_lora /
remove_lora / list_loras / has_unfinished_requests / abort_request`` and
``.model_config.max_model_len``, ``vllm.SamplingParams``
(keyword fields with vLLM's defaults), ``vllm.lora.request.LoRARequest``,
``vllm.inputs.TokensPrompt`` and ``RequestOutput`` / ``CompletionOutput`` / ``Logprob``.

Every call is recorded. What it "generates" is fixed so that a test can predict it: the
token ids ``GENERATED`` cut at ``max_tokens``; a request whose ``max_tokens`` is above their
number ends with the end-of-sequence token ``EOS`` (``finish_reason "stop"``, ``stop_reason
None``), otherwise ``"length"``; the text names the adapter (``"[a] 7"``: adapter a, a prompt of
7 tokens; ``"[base] 7"`` without). With ``logprobs`` set, each step holds the chosen token
(log-probability ``-0.5``, rank 3) and the ``logprobs`` likeliest tokens ``ALTERNATIVES`` (ranks 1,
2, … with log-probabilities -0.1, -0.2, …).
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

#: What the fake generates, before the end-of-sequence token.
GENERATED = [11, 12, 13]
EOS = 2
#: The token ids reported as the likeliest alternatives, in rank order.
ALTERNATIVES = [21, 22, 23, 24, 25]
#: The ``max_lora_rank`` values ``LoRAConfig`` accepts in vLLM 0.11.0 (``possible_max_ranks``;
#: later releases add 1).
MAX_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)
#: ``EngineArgs`` fields the fake accepts as ``LLM(**kwargs)`` (a subset of vLLM's).
ENGINE_ARGS = frozenset(
    {
        "enable_lora",
        "max_loras",
        "max_lora_rank",
        "max_cpu_loras",
        "lora_dtype",
        "fully_sharded_loras",
        "max_model_len",
        "max_num_seqs",
        "enable_prefix_caching",
        "disable_log_stats",
    }
)


@dataclass
class LoRARequest:
    """``vllm.lora.request.LoRARequest``."""

    lora_name: str
    lora_int_id: int
    lora_path: str = ""


class TokensPrompt(TypedDict, total=False):
    """``vllm.inputs.TokensPrompt`` (a TypedDict: calling it makes a dict)."""

    prompt_token_ids: list[int]
    token_type_ids: list[int]
    multi_modal_data: Any
    mm_processor_kwargs: dict[str, Any]
    cache_salt: str


@dataclass(kw_only=True)
class SamplingParams:
    """``vllm.SamplingParams``: the fields and defaults of vLLM 0.11 that matter here."""

    n: int = 1
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    seed: int | None = None
    stop: str | list[str] | None = None
    stop_token_ids: list[int] | None = None
    ignore_eos: bool = False
    max_tokens: int | None = 16
    min_tokens: int = 0
    logprobs: int | None = None
    prompt_logprobs: int | None = None
    detokenize: bool = True
    skip_special_tokens: bool = True
    spaces_between_special_tokens: bool = True
    include_stop_str_in_output: bool = False
    logit_bias: dict[int, float] | None = None
    allowed_token_ids: list[int] | None = None
    bad_words: list[str] | None = None

    def __post_init__(self) -> None:
        """The checks of vLLM's ``SamplingParams._verify_args`` that a request can reach."""
        for name in ("presence_penalty", "frequency_penalty"):
            if not -2.0 <= getattr(self, name) <= 2.0:
                raise ValueError(f"{name} must be in [-2, 2], got {getattr(self, name)}.")
        if self.temperature < 0.0:
            raise ValueError(f"temperature must be non-negative, got {self.temperature}.")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}.")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {self.max_tokens}.")
        if self.logprobs is not None and self.logprobs != -1 and self.logprobs < 0:
            raise ValueError(f"logprobs must be non-negative or -1, got {self.logprobs}.")
        stops = [self.stop] if isinstance(self.stop, str) else (self.stop or [])
        if any(not stop for stop in stops):
            raise ValueError("stop cannot contain an empty string.")


@dataclass
class Logprob:
    """``vllm.logprobs.Logprob``."""

    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class CompletionOutput:
    """``vllm.outputs.CompletionOutput``."""

    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: list[dict[int, Logprob]] | None
    finish_reason: str | None = None
    stop_reason: int | str | None = None
    lora_request: LoRARequest | None = None


@dataclass
class RequestOutput:
    """``vllm.outputs.RequestOutput``."""

    request_id: str
    prompt: str | None
    prompt_token_ids: list[int] | None
    prompt_logprobs: Any
    outputs: list[CompletionOutput]
    finished: bool
    metrics: Any = None
    lora_request: LoRARequest | None = None


@dataclass
class ModelConfig:
    """What the servable reads of ``vllm.config.ModelConfig``."""

    max_model_len: int


@dataclass
class LLMEngine:
    """The fake ``LLM.llm_engine``: the LoRA functions of vLLM's (V1) ``LLMEngine``."""

    model_config: ModelConfig
    max_cpu_loras: int
    loras: dict[int, LoRARequest] = field(default_factory=dict)
    added: list[LoRARequest] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)

    pending: dict[str, Any] = field(default_factory=dict)  # request id → (prompt, params, lora)
    aborted: list[str] = field(default_factory=list)

    def add_lora(self, lora_request: LoRARequest) -> bool:
        """Load an adapter (its folder must hold adapter_config.json, as vLLM's loader needs).

        A failure is a bare ``Exception``, as vLLM's engine-core client reports one."""
        if not (Path(lora_request.lora_path) / "adapter_config.json").is_file():
            raise Exception(
                f"Loading lora {lora_request.lora_name} failed: no adapter found at {lora_request.lora_path}"
            )
        self.added.append(lora_request)
        self.loras[lora_request.lora_int_id] = lora_request
        while len(self.loras) > self.max_cpu_loras:  # vLLM's CPU cache is an LRU of max_cpu_loras
            self.loras.pop(next(iter(self.loras)))
        return True

    def remove_lora(self, lora_id: int) -> bool:
        """Drop an adapter from the engine's caches."""
        self.removed.append(lora_id)
        return self.loras.pop(lora_id, None) is not None

    def list_loras(self) -> set[int]:
        """The ids of the adapters the engine holds."""
        return set(self.loras)

    def has_unfinished_requests(self) -> bool:
        """Whether requests wait in the engine."""
        return bool(self.pending)

    def abort_request(self, request_ids: list[str]) -> None:
        """Drop the requests ``request_ids`` (those not in the engine are ignored)."""
        self.aborted.extend(request_ids)
        for request_id in request_ids:
            self.pending.pop(request_id, None)


class Counter:
    """``vllm.utils.Counter``: ``LLM.request_counter``, the source of request ids."""

    def __init__(self, start: int = 0) -> None:
        self.counter = start

    def __next__(self) -> int:
        i = self.counter
        self.counter += 1
        return i


@dataclass
class GenerateCall:
    """One recorded ``LLM.generate`` call."""

    prompts: list[TokensPrompt]
    sampling_params: list[SamplingParams]
    lora_request: list[LoRARequest | None]


class LLM:
    """``vllm.LLM``: the constructor's keywords are vLLM 0.11's; ``generate`` answers as the module
    docs say and records each call in ``calls``. ``instances`` lists every LLM made."""

    instances: list[LLM] = []
    #: What the next ``generate`` answers with as ``finish_reason`` when set (``"abort"``, say).
    finish_reason_override: str | None = None
    #: The ``stop_reason`` of a completion that ends with ``EOS``: None (the tokenizer's end of
    #: sequence), or a token id (one of the generation config's other ``eos_token_id``).
    eos_stop_reason: int | None = None

    def __init__(
        self,
        model: str,
        *,
        runner: str = "auto",
        convert: str = "auto",
        tokenizer: str | None = None,
        tokenizer_mode: str = "auto",
        skip_tokenizer_init: bool = False,
        trust_remote_code: bool = False,
        allowed_local_media_path: str = "",
        allowed_media_domains: list[str] | None = None,
        tensor_parallel_size: int = 1,
        dtype: str = "auto",
        quantization: str | None = None,
        revision: str | None = None,
        tokenizer_revision: str | None = None,
        seed: int | None = None,
        gpu_memory_utilization: float = 0.9,
        swap_space: float = 4,
        cpu_offload_gb: float = 0,
        enforce_eager: bool = False,
        disable_custom_all_reduce: bool = False,
        hf_token: bool | str | None = None,
        hf_overrides: Any = None,
        mm_processor_kwargs: dict[str, Any] | None = None,
        pooler_config: Any = None,
        override_pooler_config: Any = None,
        structured_outputs_config: Any = None,
        kv_cache_memory_bytes: int | None = None,
        compilation_config: Any = None,
        logits_processors: list[Any] | None = None,
        **kwargs: Any,
    ) -> None:
        unknown = set(kwargs) - ENGINE_ARGS
        if unknown:
            raise TypeError(f"EngineArgs.__init__() got an unexpected keyword argument {sorted(unknown)[0]!r}")
        rank = kwargs.get("max_lora_rank", 16)
        if rank not in MAX_LORA_RANKS:
            raise ValueError(f"max_lora_rank ({rank}) must be one of {MAX_LORA_RANKS}")
        max_loras = kwargs.get("max_loras", 1)
        max_cpu_loras = kwargs.get("max_cpu_loras") or max_loras
        if max_cpu_loras < max_loras:
            raise ValueError(f"max_cpu_loras ({max_cpu_loras}) must be >= max_loras ({max_loras})")
        self.model = model
        self.init_kwargs = {
            "tokenizer": tokenizer,
            "revision": revision,
            "dtype": dtype,
            "trust_remote_code": trust_remote_code,
            "gpu_memory_utilization": gpu_memory_utilization,
            **kwargs,
        }
        self.llm_engine = LLMEngine(ModelConfig(kwargs.get("max_model_len", 2048)), max_cpu_loras)
        self.calls: list[GenerateCall] = []
        self.request_counter = Counter()
        LLM.instances.append(self)

    def generate(
        self,
        prompts: Any,
        sampling_params: SamplingParams | list[SamplingParams] | None = None,
        *,
        use_tqdm: bool = True,
        lora_request: list[LoRARequest | None] | LoRARequest | None = None,
        priority: list[int] | None = None,
    ) -> list[RequestOutput]:
        """Answer each prompt (see the module docs), in the order given.

        As vLLM 0.11, the requests are added one by one and the first invalid one raises,
        leaving those before it in the engine: the next call answers them too, first."""
        prompts = [prompts] if isinstance(prompts, (str, dict)) else list(prompts)
        params = (
            sampling_params
            if isinstance(sampling_params, list)
            else [sampling_params or SamplingParams()] * len(prompts)
        )
        loras = lora_request if isinstance(lora_request, list) else [lora_request] * len(prompts)
        if len(params) != len(prompts) or len(loras) != len(prompts):
            raise ValueError("The lengths of prompts and params must be the same.")
        self.calls.append(GenerateCall(prompts, params, loras))
        engine = self.llm_engine
        for prompt, param, lora in zip(prompts, params, loras):
            if param.logit_bias and any(token < 0 for token in param.logit_bias):
                raise ValueError("token_id(s) in logit_bias out of vocabulary")
            engine.pending[str(next(self.request_counter))] = (prompt, param, lora)
        outputs = []
        for request_id, (prompt, param, lora) in list(engine.pending.items()):
            if lora is not None and lora.lora_int_id not in engine.loras:
                engine.add_lora(lora)  # vLLM loads a LoRARequest it has not seen on demand
            outputs.append(self._answer(request_id, prompt, param, lora))
        engine.pending.clear()
        return outputs

    def _answer(
        self, request_id: str, prompt: dict[str, Any], param: SamplingParams, lora: LoRARequest | None
    ) -> RequestOutput:
        ids = list(prompt["prompt_token_ids"])
        limit = param.max_tokens if param.max_tokens is not None else 16
        if limit > len(GENERATED):
            tokens, reason = [*GENERATED, EOS], "stop"
        else:
            tokens, reason = GENERATED[:limit], "length"
        reason = LLM.finish_reason_override or reason
        logprobs = None
        if param.logprobs is not None:
            logprobs = []
            for token in tokens:
                step = {
                    alt: Logprob(-0.1 * (rank + 1), rank + 1, f"t{alt}")
                    for rank, alt in enumerate(ALTERNATIVES[: param.logprobs])
                }
                step[token] = Logprob(-0.5, 3, f"t{token}")
                logprobs.append(step)
        text = f"[{lora.lora_name if lora else 'base'}] {len(ids)}"
        stop_reason = LLM.eos_stop_reason if tokens[-1:] == [EOS] else None
        completion = CompletionOutput(0, text, tokens, None, logprobs, reason, stop_reason, lora)
        return RequestOutput(request_id, None, ids, None, [completion], True, lora_request=lora)


def modules() -> dict[str, types.ModuleType]:
    """The fake ``vllm`` package and the submodules the servable imports, by name."""
    made: dict[str, types.ModuleType] = {}
    for name, attributes in {
        "vllm": {"LLM": LLM, "SamplingParams": SamplingParams, "TokensPrompt": TokensPrompt},
        "vllm.inputs": {"TokensPrompt": TokensPrompt},
        "vllm.lora": {},
        "vllm.lora.request": {"LoRARequest": LoRARequest},
        "vllm.sampling_params": {"SamplingParams": SamplingParams},
        "vllm.outputs": {"RequestOutput": RequestOutput, "CompletionOutput": CompletionOutput},
        "vllm.logprobs": {"Logprob": Logprob},
    }.items():
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        made[name] = module
    made["vllm"].__path__ = []  # a package, so `import vllm.lora.request` finds the submodules
    made["vllm"].inputs = made["vllm.inputs"]
    made["vllm"].lora = made["vllm.lora"]
    made["vllm.lora"].__path__ = []
    made["vllm.lora"].request = made["vllm.lora.request"]
    return made


def install(monkeypatch: Any) -> None:
    """Put the fake package in ``sys.modules`` for the test (``monkeypatch`` undoes it)."""
    LLM.instances.clear()
    LLM.finish_reason_override = None
    LLM.eos_stop_reason = None
    for name, module in modules().items():
        monkeypatch.setitem(sys.modules, name, module)
