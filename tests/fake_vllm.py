"""A stand-in for the ``vllm`` package, for tests on machines without a GPU or vLLM.

It mimics exactly the API surface :mod:`polyadapt_text.vllm_engine` uses, with the names,
constructor and method signatures of vLLM 0.11: ``vllm.LLM(model, *, tokenizer, revision,
dtype, trust_remote_code, ..., **engine_args)`` (unknown engine arguments are a ``TypeError``,
as ``EngineArgs`` makes them; ``max_lora_rank`` outside vLLM's ranks and ``max_cpu_loras`` below
``max_loras`` are a ``ValueError``, as ``LoRAConfig`` makes them), ``LLM.generate(prompts,
sampling_params, *, use_tqdm, lora_request, priority)``, ``LLM.llm_engine.add_lora /
remove_lora / list_loras`` and ``.model_config.max_model_len``, ``vllm.SamplingParams``
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
#: ``LoRAConfig``'s ``MaxLoRARanks`` in vLLM 0.11.
MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
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

    def add_lora(self, lora_request: LoRARequest) -> bool:
        """Load an adapter (its folder must hold adapter_config.json, as vLLM's loader needs)."""
        if not (Path(lora_request.lora_path) / "adapter_config.json").is_file():
            raise ValueError(
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

    def __init__(
        self,
        model: str,
        *,
        runner: str = "auto",
        tokenizer: str | None = None,
        tokenizer_mode: str = "auto",
        skip_tokenizer_init: bool = False,
        trust_remote_code: bool = False,
        allowed_local_media_path: str = "",
        tensor_parallel_size: int = 1,
        dtype: str = "auto",
        quantization: str | None = None,
        revision: str | None = None,
        tokenizer_revision: str | None = None,
        seed: int | None = 0,
        gpu_memory_utilization: float = 0.9,
        swap_space: float = 4,
        cpu_offload_gb: float = 0,
        enforce_eager: bool = False,
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
        self._counter = 0
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
        """Answer each prompt (see the module docs), in the order given."""
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
        outputs = []
        for prompt, param, lora in zip(prompts, params, loras):
            if param.logit_bias and any(token < 0 for token in param.logit_bias):
                raise ValueError("token_id(s) in logit_bias out of vocabulary")
            if lora is not None and lora.lora_int_id not in self.llm_engine.loras:
                self.llm_engine.add_lora(lora)  # vLLM loads a LoRARequest it has not seen on demand
            outputs.append(self._answer(prompt, param, lora))
        return outputs

    def _answer(self, prompt: dict[str, Any], param: SamplingParams, lora: LoRARequest | None) -> RequestOutput:
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
        self._counter += 1
        completion = CompletionOutput(0, text, tokens, None, logprobs, reason, None, lora)
        return RequestOutput(str(self._counter), None, ids, None, [completion], True, lora)


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
    for name, module in modules().items():
        monkeypatch.setitem(sys.modules, name, module)
