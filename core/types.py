"""The typed records that flow between the core and plugins.

All of them are plain dataclasses with no heavy imports, so that plugin entry modules can
import them at start-up for free.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from polyadapt.task import Task

if TYPE_CHECKING:  # pragma: no cover
    from polyadapt.config import RunConfig
    from polyadapt.gate import DataGate
    from polyadapt.modalities.records import Dataset, RunData
    from polyadapt.serving.settings import ServeSettings
    from polyadapt.trackers import ExperimentTrackers


@dataclass
class Run:
    """Everything a plugin needs to adapt or evaluate: the validated config and the run folder.

    The folder layout is fixed so that ``evaluate`` and ``serve`` find what ``adapt`` wrote:
    ``config.yaml`` (resolved config), ``data_summary.json``, ``adapter/`` (the adapter),
    ``checkpoints/``, ``logs/`` (loss log and curve) and ``metrics.json``.
    """

    id: str
    config: RunConfig
    task: Task
    dir: Path
    resume: bool = False
    #: The validated ``task_options`` (an instance of the task's ``options_model``, with
    #: every default filled in), or None for a task without options.
    task_options: Any = None
    #: Where :meth:`say` sends progress messages (the CLI's console); None keeps quiet.
    notify: Callable[[str], None] | None = None
    #: The governance and lineage door for data (:class:`polyadapt.gate.DataGate`), set by
    #: the runner; plugins use it through :meth:`admit` and :meth:`redact_text`.
    gate: DataGate | None = None
    #: The run's governed data once the runner has read it (adapt and evaluate share it).
    data: RunData | None = None
    #: The experiment trackers (MLflow, TensorBoard...) the runner opened for the run's
    #: ``tracking:`` block, None without one; the shared trainer logs each step to them.
    trackers: ExperimentTrackers | None = None

    @property
    def options(self) -> Any:
        """The task's validated options (``task_options``)."""
        return self.task_options

    def admit(self, dataset: Dataset, *, role: str, **options: str | None) -> Dataset:
        """Pass a loaded dataset through governance and lineage; train only on what it returns.

        Every dataset a plugin trains or evaluates on must go through here: the policy's
        licence and consent checks, PII redaction, a manifest with content hashes. ``role``
        names what the data is for (``train``, ``eval``, ``general``, ``replay``...);
        ``licence=`` overrides the run config's ``data.licence`` for data the plugin ships
        itself. See :meth:`polyadapt.gate.DataGate.admit`.
        """
        return self._require_gate().admit(dataset, role=role, **options)

    def redact_text(self, text: str) -> str:
        """``text`` with what the run's policy forbids to show or store removed."""
        return self._require_gate().redact_text(text)

    def _require_gate(self) -> DataGate:
        if self.gate is None:  # no data may pass ungoverned, not even in a plugin's own tests
            from polyadapt.errors import PluginError

            raise PluginError("this run has no data gate; make runs with polyadapt.runner.prepare_run")
        return self.gate

    def say(self, message: str) -> None:
        """Tell the user what is happening (data loaded, model loaded, ...)."""
        from polyadapt.distributed import is_main_process

        if self.notify is not None and is_main_process():
            self.notify(message)

    @property
    def adapter_dir(self) -> Path:
        """Where ``polyadapt_adapt`` saves the adapter: ``<run>/adapter``."""
        return self.dir / "adapter"

    @property
    def checkpoint_dir(self) -> Path:
        """Where the shared trainer keeps checkpoints for ``--resume``: ``<run>/checkpoints``."""
        return self.dir / "checkpoints"

    @property
    def logs_dir(self) -> Path:
        """The loss log and curve: ``<run>/logs``."""
        return self.dir / "logs"

    @property
    def metrics_path(self) -> Path:
        """Where the core writes the evaluation report: ``<run>/metrics.json``."""
        return self.dir / "metrics.json"

    def write_text(self, name: str, text: str) -> Path:
        """Write ``text`` to ``name`` inside the run folder, atomically.

        Under several processes only the main one writes.
        """
        from polyadapt.distributed import is_main_process
        from polyadapt.fileio import atomic_write_text

        path = self.dir / name
        if is_main_process():
            atomic_write_text(path, text)
        return path

    def write_json(self, name: str, payload: object) -> Path:
        """Write ``payload`` as JSON to ``name`` inside the run folder (see :meth:`write_text`)."""
        return self.write_text(name, json.dumps(payload, indent=2, default=str) + "\n")


@dataclass
class AdapterArtifact:
    """What ``polyadapt_adapt`` returns: where the adapter lies and how training went."""

    path: Path
    base_model: str
    trainable_parameters: int = 0
    total_parameters: int = 0
    train_metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        return data


@dataclass
class MetricRow:
    """One metric on one evaluation set, base against adapted.

    ``role`` tells the registry's promotion gate what the set measures: ``"domain"`` (the
    adapter must beat the base here), ``"general"`` (the forgetting check: it may not
    regress beyond the policy's threshold) or ``"other"`` (shown, not gated).
    """

    dataset: str
    metric: str
    base: float
    adapted: float
    lower_is_better: bool = True
    role: str = "other"

    @property
    def improved(self) -> bool:
        """Whether the adapted value beats the base (lower or higher, as the metric says)."""
        return self.adapted < self.base if self.lower_is_better else self.adapted > self.base


@dataclass
class EvalReport:
    """What ``polyadapt_evaluate`` returns: base-vs-adapted metrics plus example outputs."""

    rows: list[MetricRow] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "metrics": [asdict(row) | {"improved": row.improved} for row in self.rows],
            "samples": self.samples,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalReport:
        rows = [MetricRow(**{k: v for k, v in row.items() if k != "improved"}) for row in data.get("metrics", [])]
        return cls(rows=rows, samples=list(data.get("samples", [])))


@dataclass
class ServeSpec:
    """What ``polyadapt_serve`` is asked to load: one base model and the adapters on it.

    ``adapters`` maps the name a client uses (``model="base:NAME"``) to an adapter folder.
    """

    task: Task
    base_model: str
    base_name: str
    adapters: dict[str, Path] = field(default_factory=dict)
    config: RunConfig | None = None
    #: The server's settings when ``polyadapt serve`` loads the base (None when code builds a
    #: servable itself): ``engine`` says what answers generation, and an engine that keeps its own
    #: adapter slots sizes them from ``max_batch`` and ``max_adapters``.
    settings: ServeSettings | None = None

    @property
    def engine(self) -> str:
        """The serving engine asked for: ``"transformers"`` (the default) or ``"vllm"``."""
        return self.settings.engine if self.settings is not None else "transformers"


@dataclass
class GenerationRequest:
    """One prompt to complete; ``adapter`` is None for the base model.

    ``suffix`` asks for fill-in-the-middle: the text that follows the completion (OpenAI's
    completions ``suffix``); only servables of code models accept it.
    ``stop_after_content`` makes ``stop`` strings count only after the completion's first
    non-blank character, so ``stop=["\\n"]`` ends a completion that starts with a line
    break and an indent at the end of the line it then writes (line completion).
    """

    prompt: str | None = None
    messages: list[dict[str, str]] | None = None
    adapter: str | None = None
    max_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    suffix: str | None = None
    stop_after_content: bool = False
    #: Report each generated token's log-probability and this many likeliest alternatives
    #: (0: the token's own only); None: no log-probabilities.
    logprobs: int | None = None
    #: Also return the prompt (``GenerationResult.prompt_text``) and, with ``logprobs``, the
    #: log-probabilities of its tokens.
    echo: bool = False
    #: OpenAI's penalties: a token's logit is lowered by ``frequency_penalty`` times the number
    #: of times it was generated so far, and by ``presence_penalty`` once it was generated.
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    #: Token id → value added to its logit at every step (OpenAI's ``logit_bias``).
    logit_bias: dict[int, float] | None = None
    #: Streaming: called from the generating thread after each token with a :class:`TokenStep`;
    #: a true return means the client is gone and the row may stop.
    on_token: Callable[[TokenStep], bool | None] | None = field(default=None, compare=False, repr=False)


@dataclass
class TokenLogprob:
    """One token, its log-probability under the model and the likeliest alternatives.

    ``logprob`` is None for a prompt's first token (nothing predicts it); ``top`` holds
    ``(token, bytes, logprob)`` for the alternatives, likeliest first.
    """

    token: str
    bytes: list[int]
    logprob: float | None
    top: list[tuple[str, list[int], float]] | None = None


@dataclass
class TokenStep:
    """What a servable reports to a streaming request as it generates.

    ``text`` is the whole completion so far, decoded (a later step may extend its last
    characters, such as a multi-byte character not yet complete); ``tokens`` how many tokens
    were generated; ``logprobs`` the new token's entry when asked for. A step with
    ``prompt_text`` set (before the first token) carries the echoed prompt and its
    ``prompt_logprobs``.
    """

    text: str
    tokens: int
    logprobs: list[TokenLogprob] = field(default_factory=list)
    prompt_text: str | None = None
    prompt_logprobs: list[TokenLogprob] | None = None


@dataclass
class GenerationResult:
    """The text generated for one :class:`GenerationRequest` and its token counts.

    ``logprobs`` (when the request asked) covers the generated tokens of ``text``, through
    the one that completed a stop string, without a final end-of-sequence token;
    ``prompt_text`` and ``prompt_logprobs`` answer ``echo``.
    """

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = "stop"
    logprobs: list[TokenLogprob] | None = None
    prompt_text: str | None = None
    prompt_logprobs: list[TokenLogprob] | None = None


@dataclass
class EmbeddingRequest:
    """One text to embed; ``adapter`` is None for the base model."""

    text: str
    adapter: str | None = None


@dataclass
class EmbeddingResult:
    """The embedding of one :class:`EmbeddingRequest` and the tokens it read."""

    embedding: list[float]
    prompt_tokens: int


@runtime_checkable
class Servable(Protocol):
    """A loaded base model that a server can route requests to, returned by ``polyadapt_serve``.

    The base is loaded once; :meth:`load_adapter` adds an adapter without reloading it.
    Requests reach it through batch methods, each taking a list of requests with an
    ``adapter`` field (a name, or None for the base) and returning one result per request:
    ``generate(list[GenerationRequest]) -> list[GenerationResult]`` for the core's
    completions and chat endpoints, and whatever its task's routes call through
    :meth:`polyadapt.serving.routes.RouteContext.submit` (``classify``, say),
    micro-batched the same way. ``embed(list[EmbeddingRequest]) -> list[EmbeddingResult]``
    answers ``/v1/embeddings``. ``generation_features`` (a set of ``"logprobs"``, ``"echo"``,
    ``"penalties"``, ``"logit_bias"``) names the :class:`GenerationRequest` options its
    ``generate`` honours; the server refuses the others with a 400. A ``generate`` that calls
    each request's ``on_token`` (and lists ``"stream"``) makes ``stream: true`` answers arrive token
    by token; another's arrive whole at the end.
    An optional ``unload_adapter(name)`` frees a loaded adapter: with it, the server keeps at
    most ``max_adapters`` loaded per base (least recently used evicted); without it, every
    adapter it loads stays loaded.
    """

    base_name: str

    def load_adapter(self, name: str, path: Path) -> None:
        """Load the adapter at ``path`` under ``name`` (no-op if already loaded)."""

    def adapter_names(self) -> list[str]:
        """The names of the adapters loaded so far."""
