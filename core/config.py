"""Run configs: one YAML file that says what to adapt, on which data, and how.

The file is validated with pydantic; an invalid file gets one message that names the file,
the line, the field, the bad value and what is allowed (:class:`ConfigError`). ``--set
key=value`` overrides use dotted field paths and YAML values (``--set training.lr=1e-4``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar, overload

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from polyadapt.errors import ConfigError
from polyadapt.yamlfile import parse_mapping, read_text, validate

if TYPE_CHECKING:  # pragma: no cover
    _Model = TypeVar("_Model", bound=BaseModel)
    _Value = TypeVar("_Value")


class _Section(BaseModel):
    """Base for config sections: unknown keys are errors (a typo must not pass silently)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


@overload
def expand_user(value: Path) -> Path: ...


@overload
def expand_user(value: _Value) -> _Value: ...


def expand_user(value: object) -> object:
    """A path (or a path-like string) with a leading ``~`` or ``~user`` expanded, as a shell would.

    Other values (``None``, ``"builtin"``, hub ids, URLs) are returned unchanged.
    """
    if isinstance(value, Path):
        return value.expanduser()
    if isinstance(value, str) and value.startswith("~"):
        return str(Path(value).expanduser())
    return value


#: A path in a run config: ``~`` expanded as a shell would.
UserPath = Annotated[Path, AfterValidator(expand_user)]
#: A string that may be a path (a hub id or a folder, a URL or a file): ``~`` expanded.
UserPathStr = Annotated[str, AfterValidator(expand_user)]


class BaseModelConfig(_Section):
    """The pretrained model to adapt."""

    id: UserPathStr = Field(description="Hub id (e.g. 'HuggingFaceTB/SmolLM2-135M-Instruct') or local path")
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit)")
    gguf_file: UserPathStr | None = Field(
        None, description="GGUF file inside `id` (a folder), or a path to a .gguf file"
    )
    tokenizer: UserPathStr | None = Field(None, description="Tokenizer id or path when not beside the model")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights dtype of the frozen base; auto = bf16 where it is fast"
    )
    trust_remote_code: bool = False
    quantization: Literal["none", "4bit", "8bit"] = Field(
        "none",
        description="Load the frozen base quantized with bitsandbytes (QLoRA): 4bit = NF4 with double "
        "quantization and bf16 compute; CUDA only",
    )

    def display_name(self) -> str:
        """A short name for the base: the GGUF file's stem, else the last part of the id or path.

        Clients name it in ``model=`` at serving, and the registry files adapters under it.
        """
        gguf = self.gguf_file or (self.id if self.id.endswith(".gguf") else None)
        name = Path(gguf).stem if gguf else Path(self.id.rstrip("/\\")).name or self.id
        return name.replace(":", "-")


class DataConfig(_Section):
    """Training and evaluation data."""

    train: UserPath = Field(
        description="Training data, as the task reads it: a data file (jsonl, csv or parquet) for the default "
        "reader, a folder or a repository for others; `polyadapt config-schema --task NAME` says which"
    )
    eval: UserPath | None = Field(
        None, description="Held-out domain data, read like train; else split from train (data.eval_fraction)"
    )
    eval_fraction: float = Field(0.1, gt=0, lt=1, description="Share of train held out when no eval")
    general_eval: UserPath | Literal["builtin", "none"] = Field(
        "builtin", description="General-capability text for the forgetting check"
    )
    replay: UserPath | Literal["builtin"] | None = Field(
        None, description="General text mixed into training to limit forgetting"
    )
    replay_fraction: float = Field(0.0, ge=0, lt=1, description="Share of replay examples")
    format: Literal["auto", "jsonl", "csv", "parquet"] = "auto"
    kind: Literal["auto", "text", "instruction", "chat", "preference"] = Field(
        "auto",
        description="Record kind; auto detects from the fields present; preference: pairs of prompt, chosen and "
        "rejected (the text task's task_options.objective: dpo, simpo or orpo)",
    )
    licence: str | None = Field(None, description="SPDX licence id of the data")
    follow_external_symlinks: bool = Field(
        False,
        description="Read files of a data folder (images, audio) whose symbolic link leads outside the folder; "
        "off by default, so a folder cannot pull in files from elsewhere on the machine",
    )
    max_record_chars: int = Field(
        1_000_000,
        ge=1,
        description="Characters one record (a JSONL line, a CSV or parquet row) may hold; longer ones are "
        "quarantined with their size, not read",
    )


class LoraConfig(_Section):
    """Where the LoRA adapter goes and how big it is."""

    r: int = Field(16, ge=1, le=1024)
    alpha: float = Field(32, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: Literal["auto", "all-linear"] | list[str] = Field(
        "auto", description="auto = the plugin's choice for the model family"
    )
    dora: bool = Field(False, description="Weight-decomposed LoRA (DoRA)")
    rslora: bool = False


class TrainingConfig(_Section):
    """The shared trainer's settings."""

    epochs: float = Field(1, gt=0)
    max_steps: int | None = Field(None, ge=1, description="Optimizer steps; overrides epochs")
    learning_rate: float = Field(2e-4, gt=0, lt=1)
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float | None = Field(1.0, gt=0)
    batch_size: int = Field(4, ge=1)
    grad_accumulation: int = Field(1, ge=1)
    max_length: int = Field(512, ge=8)
    packing: bool = Field(True, description="Pack several examples into one sequence")
    seed: int = 42
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto = bf16 on CUDA and on CPUs with bf16 units, else fp32"
    )
    eval_every: int | None = Field(None, ge=1, description="Evaluate every N optimizer steps")
    checkpoint_every: int | None = Field(None, ge=1, description="Checkpoint every N steps")
    keep_checkpoints: int = Field(2, ge=1)
    log_every: int = Field(1, ge=1)
    gradient_checkpointing: bool | Literal["auto"] = Field(
        "auto",
        description="Recompute activations in the backward pass instead of keeping them (less memory, "
        "~30% more compute); auto = on when the estimated activations of one micro-batch exceed a quarter "
        "of the device's memory (docs/distributed.md)",
    )


class EvaluationConfig(_Section):
    """How base and adapted are compared after training."""

    enabled: bool = True
    max_examples: int | None = Field(None, ge=1, description="Cap on evaluation examples")
    samples: list[str] = Field(default_factory=list, description="Prompts to generate from")
    num_samples: int = Field(3, ge=0, description="Held-out prompts to sample when none given")
    max_new_tokens: int = Field(48, ge=1)
    qa: UserPath | None = Field(
        None,
        description="Held-out question-answer set (JSON lines: question, answer or answers, optional "
        "source and context): base, adapter and, with a retrieval section, both with retrieved passages "
        "are scored on it (exact match, token F1, answer contained, recall@k)",
    )
    qa_max_new_tokens: int = Field(32, ge=1, description="Most tokens generated per answer to a QA question")


class OutputConfig(_Section):
    """Where runs are written."""

    dir: UserPath = Field(Path("runs"), description="Folder that holds one sub-folder per run")
    name: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
        description="The run folder's name inside dir (default: task, time and config hash): letters, "
        "digits, '.', '-' and '_', starting with a letter or digit, so that the run stays inside dir",
    )
    adapter_name: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$",
        description="Name clients use in 'base:NAME' and the adapter's name in the registry "
        "(default: the run folder's name at serving, the task name in the registry); "
        "letters, digits, '-' and '_'",
    )


class GovernanceConfig(_Section):
    """Which policy the run's data (and, at serving, its prompts and outputs) must follow."""

    policy: UserPath | None = Field(
        None, description="Policy file (YAML, see configs/policies/); default: the strict built-in policy"
    )


class LineageConfig(_Section):
    """Where the run's lineage goes besides the lineage store.

    The store itself is chosen by ``$POLYADAPT_DB_URL`` (any SQLAlchemy URL) and defaults to
    SQLite in the project's state folder (``$POLYADAPT_HOME``, else ``./.polyadapt``).
    """

    openlineage: UserPathStr | None = Field(
        None, description="OpenLineage RunEvents: a file (JSON lines) or an http(s) URL to POST to"
    )


class RetrievalConfig(_Section):
    """Retrieval when the run's adapter is served: the ``k`` best passages of a local index
    (``polyadapt index build``) are added to each chat request and the answer lists their
    sources. A request's own ``retrieval`` field overrides it (``false`` turns it off)."""

    index: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
        description="Name of the index in the project's state folder (see `polyadapt index list`)",
    )
    k: int = Field(4, ge=1, le=50, description="How many passages to add to each chat request")


def _gate_metric_names(names: list[str]) -> list[str]:
    blank = [i for i, name in enumerate(names) if not str(name).strip()]
    if blank:
        raise ValueError(f"entry {blank[0]} is empty; name a metric such as 'pass@1' or 'tasks/pass@1'")
    return names


class GateConfig(_Section):
    """Which evaluation metrics must move for the registry to promote the adapter, on top of
    the policy's gate (``polyadapt adapters promote``; the run prints the verdict after
    evaluating). A metric is named by its name (``pass@1``), ``dataset/metric``
    (``tasks/pass@1``) or with ``*`` wildcards (``pass@*``), as ``metrics.json`` writes them.
    Leave the block out for the task's own gate; ``gate: {}`` holds the run to the policy's only.
    """

    improve: dict[str, Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(
        default_factory=dict,
        description="Metric -> the least gain over the base, an absolute difference in the metric's units "
        "(0.05: five points of exact match; 0: any gain)",
    )
    no_regress: Annotated[list[str], AfterValidator(_gate_metric_names)] = Field(
        default_factory=list, description="Metrics that must not be worse than the base (one that does not move warns)"
    )

    @model_validator(mode="after")
    def _named_once(self) -> GateConfig:
        blank = [name for name in self.improve if not name.strip()]
        if blank:
            raise ValueError("gate.improve has an empty metric name; name a metric such as 'pass@1'")
        both = sorted(set(self.improve) & set(self.no_regress))
        if both:
            raise ValueError(
                f"{', '.join(both)} is named in both improve and no_regress; keep it in improve "
                "(an improvement is never a regression)"
            )
        return self


class TrackingConfig(_Section):
    """Experiment trackers the run reports to as it trains, besides its own folder and the
    lineage store: parameters, per-step loss, learning rate and tokens/s, the evaluation table,
    and (MLflow) the adapter, the run record and the datasets' digests.
    """

    log_with: list[Literal["mlflow", "tensorboard", "wandb"]] = Field(
        default_factory=list, description="Trackers to report to; wandb needs `pip install wandb`"
    )
    experiment: str | None = Field(
        None,
        pattern=r"^[^'\"\n]{1,256}$",
        description="MLflow experiment or W&B project of the run, without quotes; default: the task name",
    )
    mlflow_uri: str | None = Field(
        None,
        min_length=1,
        description="MLflow tracking server (http://host:5000) or store URI; default: $MLFLOW_TRACKING_URI, "
        "else a local SQLite store in tracking.dir",
    )
    dir: UserPath | None = Field(
        None,
        description="Folder of the local stores (MLflow's mlflow.db and artifacts, TensorBoard's event files); "
        "default: <output.dir>/tracking",
    )

    @field_validator("log_with")
    @classmethod
    def _each_once(cls, names: list[str]) -> list[str]:
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"{', '.join(twice)} is named more than once; name each tracker once")
        return names


class RunConfig(_Section):
    """One adaptation run.

    Paths: a leading ``~`` is expanded wherever a path goes (data, ``base_model``, policy,
    output, lineage file); relative ones resolve against the config file's folder
    (:attr:`base_dir`) when the config is read from a file. Paths inside ``task_options``
    resolve the same way when the run starts (:func:`resolve_option_paths`), so the
    resolved ``config.yaml`` in a run folder holds absolute paths.
    """

    task: str
    base_model: BaseModelConfig
    data: DataConfig
    lora: LoraConfig = Field(default_factory=LoraConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    governance: GovernanceConfig = Field(default_factory=GovernanceConfig)
    lineage: LineageConfig = Field(default_factory=LineageConfig)
    gate: GateConfig | None = Field(
        None, description="Metrics that must improve or must not fall for promotion; default: the task's own gate"
    )
    tracking: TrackingConfig = Field(
        default_factory=TrackingConfig, description="Experiment trackers (MLflow, TensorBoard, W&B) to report to"
    )
    retrieval: RetrievalConfig | None = Field(
        None, description="Retrieval at serving: an index whose top passages join each chat request; default: none"
    )
    task_options: dict[str, Any] = Field(default_factory=dict)

    #: The folder relative paths resolve against (the config file's), None when unknown.
    _base_dir: Path | None = PrivateAttr(None)
    #: Where the config came from (a file name) and its YAML node tree, for error messages
    #: about fields validated later (``task_options``) that name the file and the line.
    _source: str = PrivateAttr("<config>")
    _yaml_root: Any = PrivateAttr(None)

    @property
    def source(self) -> str:
        """The file (or ``<config>``) the config was read from."""
        return self._source

    def validate_section(self, model: type[_Model], field: str, *, what: str) -> _Model:
        """``model`` validated from this config's ``field`` block; a :class:`ConfigError` that names
        the file, the line and the field (and the closest valid name for a misspelt one)."""
        return validate(
            model,
            getattr(self, field),
            self._source,
            self._yaml_root,
            what=what,
            schema_hint="`polyadapt config-schema --task NAME`",
            prefix=(field,),
        )

    @property
    def base_dir(self) -> Path | None:
        """The config file's folder when the config was read from a file (else None)."""
        return self._base_dir

    @field_validator("base_model", mode="before")
    @classmethod
    def _base_model_shorthand(cls, value: Any) -> Any:
        return {"id": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _replay_needs_fraction(self) -> RunConfig:
        if self.data.replay is not None and self.data.replay_fraction == 0:
            raise ValueError("data.replay is set but data.replay_fraction is 0; set a share such as 0.2")
        return self

    def hash(self) -> str:
        """A stable SHA-256 of the resolved config: what makes two runs the same run.

        Where a run is written (``output.dir``, ``output.name``), where its lineage
        events go, the promotion gate and the experiment trackers it reports to do not change
        what it trains, so they are left out: a reproduction of a run in another folder has
        the original's hash.
        """
        recipe = self.model_dump(
            mode="json", exclude={"output": {"dir", "name"}, "lineage": True, "gate": True, "tracking": True}
        )
        canonical = json.dumps(recipe, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def to_yaml(self) -> str:
        """The resolved config as YAML, every default written out."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


# ---------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------


def apply_overrides(data: dict[str, Any], overrides: list[str], source: str) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides (values parsed as YAML) to the raw config mapping."""
    for override in overrides:
        if "=" not in override:
            raise ConfigError(f"--set {override!r}: expected KEY=VALUE, e.g. training.max_steps=10")
        key, raw_value = override.split("=", 1)
        try:
            value = yaml.safe_load(raw_value) if raw_value else ""
        except yaml.YAMLError:
            value = raw_value
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif isinstance(child, str) and part == "base_model":
                child = node[part] = {"id": child}
            elif not isinstance(child, dict):
                raise ConfigError(f"--set {override!r}: {part!r} in {source} is not a section")
            node = child
        node[parts[-1]] = value
    return data


def parse_config(
    text: str, source: str = "<config>", overrides: list[str] | None = None, base_dir: Path | None = None
) -> RunConfig:
    """Validate YAML ``text`` as a :class:`RunConfig`; relative data paths resolve against ``base_dir``."""
    root, data = parse_mapping(text, source, "run config")
    data = apply_overrides(data, overrides or [], source)
    config = validate(RunConfig, data, source, root, what="run config", schema_hint="`polyadapt config-schema`")
    config._source, config._yaml_root = source, root
    if base_dir is not None:
        config._base_dir = Path(base_dir).resolve()
        _resolve_paths(config, config._base_dir)
    return config


def _resolve_paths(config: RunConfig, base_dir: Path) -> None:
    def resolve(p: Any) -> Any:
        return (base_dir / p).resolve() if isinstance(p, Path) and not p.is_absolute() else p

    data = config.data
    data.train = resolve(data.train)
    data.eval = resolve(data.eval)
    data.general_eval = resolve(data.general_eval)
    data.replay = resolve(data.replay)
    config.governance.policy = resolve(config.governance.policy)
    config.tracking.dir = resolve(config.tracking.dir)
    config.evaluation.qa = resolve(config.evaluation.qa)
    target = config.lineage.openlineage
    if target and "://" not in target:
        config.lineage.openlineage = str(resolve(Path(target)))
    base = config.base_model
    candidate = base_dir / base.id
    if not Path(base.id).is_absolute() and (base.id.startswith(".") or candidate.exists()):
        base.id = str(candidate.resolve())


def resolve_option_paths(options: BaseModel, raw: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """``raw`` (a ``task_options`` block) with its paths absolute.

    ``options`` is ``raw`` validated by the task's options model: a plugin marks a path by
    typing the field ``Path`` (also ``Path | None``, ``list[Path]``, a nested model's or a
    dict's ``Path`` values). Each such value that ``raw`` holds gets ``~`` expanded and, when
    relative, is resolved against ``base_dir`` (the config file's folder). Everything else
    is returned as written; ``raw`` itself is not changed.
    """
    return _absolute_paths(options, raw, Path(base_dir))


def _absolute_paths(value: Any, raw: Any, base_dir: Path) -> Any:
    if isinstance(value, Path) and isinstance(raw, (str, Path)):
        path = value.expanduser()
        return str(path if path.is_absolute() else (base_dir / path).resolve())
    if isinstance(value, BaseModel) and isinstance(raw, dict):
        out = dict(raw)
        for name, field in type(value).model_fields.items():
            key = next((k for k in (name, field.alias) if k and k in raw), None)
            if key is not None:
                out[key] = _absolute_paths(getattr(value, name), raw[key], base_dir)
        return out
    if isinstance(value, (list, tuple)) and isinstance(raw, list) and len(value) == len(raw):
        return [_absolute_paths(v, r, base_dir) for v, r in zip(value, raw)]
    if isinstance(value, dict) and isinstance(raw, dict):
        return {k: _absolute_paths(value[k], r, base_dir) if k in value else r for k, r in raw.items()}
    return raw


def load_config(path: Path | str, overrides: list[str] | None = None) -> RunConfig:
    """Read and validate the run config at ``path`` (relative paths inside resolve against it)."""
    path = Path(path)
    return parse_config(read_text(path, "config file"), str(path), overrides, base_dir=path.resolve().parent)
