"""How a server runs: limits, access, monitoring. One object, built from ``polyadapt serve``'s
options (or in code), handed to :func:`polyadapt.serving.app.build_app`.

Each field says what happens at its limit; the defaults suit one machine serving a few
adapters to a team. Nothing here is per request: that is the request body's business.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ServeSettings(BaseModel):
    """The server's limits and switches (see the field descriptions)."""

    model_config = ConfigDict(extra="forbid")

    # batching
    max_batch: int = Field(8, ge=1, description="Most requests answered in one batch")
    batch_wait_ms: float = Field(5.0, ge=0, description="How long to wait to fill a batch")

    # limits: the server never dies on input
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest request body; a larger one is answered 413 before it is read whole"
    )
    max_queue: int = Field(64, ge=1, description="Requests waiting per base; one more is answered 429 with Retry-After")
    request_timeout_s: float = Field(
        120.0, gt=0, description="Longest a request may wait and run; past it the answer is 504"
    )

    # compute
    engine: Literal["transformers", "vllm"] = Field(
        "transformers",
        description="What answers generation: transformers in this process, or vLLM's multi-LoRA engine "
        "(a CUDA GPU and the vllm package; tasks that support it only)",
    )
    engine_args: dict[str, Any] = Field(
        default_factory=dict,
        description="More arguments for the engine, as it names them (vLLM: gpu_memory_utilization, "
        "max_model_len, tensor_parallel_size, ...); over the values the servable computes",
    )
    torch_threads: int | None = Field(
        None, ge=1, description="Threads a forward pass uses on CPU (default: one fewer than the cores, at least 1)"
    )

    # access
    require_keys: bool = Field(
        True, description="Ask every request for an API key (polyadapt keys create); off only on localhost"
    )
    cors_origins: list[str] = Field(default_factory=list, description="Origins browsers may call from ('*': any)")
    docs: bool = Field(False, description="Serve the interactive API docs (/docs, /openapi.json)")
    metrics_public: bool = Field(
        False, description="Answer GET /metrics without an API key (for a scraper that cannot send one)"
    )

    # adapter cache, per base
    max_adapters: int = Field(8, ge=1, description="Adapters kept loaded per base; the least recently used goes first")
    max_adapter_bytes: int | None = Field(
        None, ge=1, description="Bytes of adapter weights kept loaded per base (default: no byte bound)"
    )

    # monitoring
    monitor: bool = Field(
        True, description="Record each request's input statistics (never its text) for `polyadapt monitor`"
    )
    sample_requests: float = Field(
        0.0, ge=0, le=1, description="Share of requests whose input is also logged, every PII finding masked"
    )

    # shutdown
    shutdown_grace_s: float = Field(
        30.0, ge=0, description="On SIGTERM, how long in-flight requests may take to finish"
    )
