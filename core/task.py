"""What a plugin writes in plugin API 2.0: a :class:`Task` says what its modality knows.

The core runner owns every step that is the same for all tasks (validating the config and
the task options, the run folder, governance and lineage, ``data_summary.json`` and
``quarantine.jsonl``, LoRA attachment, device and precision, the training loop, checkpoints
and ``--resume``, the atomic save, evaluation base against adapted, the registry). A task
fills in only the parts that differ between modalities, in the order the runner asks::

    options_model                 pydantic model of the run config's task_options block
    load_dataset(run, path, role) one data file or folder -> Dataset (records + quarantine)
    load_run_data(run)            every set of the run (train, held out, general, replay)
    load_base(run)                the frozen base (model plus tokenizer or processor)
    context_length(run, base)     the base's position limit (training.max_length above it is refused)
    lora_targets(run, base)       where LoRA goes (the core attaches it with peft)
    training_job(run, base, model, data)   examples, collate and loss for the shared trainer
    save_adapter(run, base, model, folder) the adapter files (the core makes it atomic)
    evaluate(run, adapter, data)  metrics base vs adapted, a few samples
    run_gate(task_options)        the metrics a run's adapter must move for promotion (default: gate)
    servable(spec)                a loaded base that answers requests per adapter
    routes()                      the HTTP endpoints the task adds at serving
    input_sample(record)          what a request would ask, from a training record (drift baseline)
    export(run, adapter, fmt, options, folder)  the run's adapter as another format (merged, GGUF)
    tiny_models()                 small offline base models for tests

Only ``name`` and the methods the runner cannot do without (``load_base``,
``training_job``, ``evaluate``) must be written; the others have defaults that fit a
Hugging Face model trained on text records. A task is registered by returning an instance
from the ``polyadapt_tasks`` hook. Nothing here imports torch: a task module is imported at
start-up, so it imports heavy libraries inside its methods.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # pragma: no cover
    from pydantic import BaseModel

    from polyadapt.lineage.metricgate import MetricGate
    from polyadapt.modalities.records import Dataset, RunData
    from polyadapt.monitoring.profile import InputSample
    from polyadapt.serving.routes import Route
    from polyadapt.training import TrainingJob
    from polyadapt.types import AdapterArtifact, EvalReport, Run, Servable, ServeSpec

#: The fields a task may set as keywords: ``Task(name="x", modality="text")`` declares a task
#: in tests or in plugins that only list tasks; real tasks are subclasses.
DECLARED_FIELDS = (
    "name",
    "modality",
    "description",
    "default_base",
    "options_model",
    "data_fields",
    "gate",
    "record_noun",
    "consent_required",
    "library_name",
)

#: What :meth:`Task.load_dataset`'s default makes of the run config's data fields.
DEFAULT_DATA_FIELDS: Mapping[str, str] = {
    "train": "Training data file: jsonl, csv or parquet (plain text, instruction pairs or chat; "
    "data.format and data.kind say which when auto-detection cannot)",
    "eval": "Held-out domain data file in the same formats; default: data.eval_fraction of train",
}


class Task:
    """One kind of adaptation a plugin offers (``task: NAME`` in a run config).

    Subclass it, set the class attributes, and override the methods your modality needs.
    Instances are shared by every run of the process: keep no per-run state on ``self``.
    """

    #: What a run config's ``task:`` names; global across plugins.
    name: ClassVar[str] = ""
    #: A label for the kind of data (``text``, ``code``, a plugin's own); the policy's
    #: ``consent.required`` is keyed by it.
    modality: ClassVar[str] = "text"
    #: One line for ``polyadapt plugins``.
    description: ClassVar[str] = ""
    #: The base model a scaffolded config proposes.
    default_base: ClassVar[str | None] = None
    #: The pydantic model of ``task_options`` (unknown keys are rejected with the closest
    #: valid name); None means the task takes no options.
    options_model: ClassVar[type[BaseModel] | None] = None
    #: What the progress messages call one record (``records``, ``clips``, ``files``).
    record_noun: ClassVar[str] = "records"
    #: Whether every record must carry consent (a truthy ``consent`` field) unless the
    #: policy's ``consent.required`` says otherwise for ``modality``: set it for data that
    #: shows people (voices, faces).
    consent_required: ClassVar[bool] = False
    #: The library that loads the saved adapter: the model card's ``library_name`` (a hub
    #: shows its loading snippet), ``peft`` for :meth:`save_adapter`'s default.
    library_name: ClassVar[str] = "peft"
    #: What the run config's ``data.*`` fields mean to this task, field -> description, as
    #: :meth:`load_dataset` (or :meth:`load_run_data`) reads them; ``polyadapt config-schema
    #: --task NAME`` shows them. Fields not named keep the core's description; say so where
    #: the task ignores one. The default describes the data files :meth:`load_dataset` reads.
    data_fields: ClassVar[Mapping[str, str]] = DEFAULT_DATA_FIELDS
    #: The metrics this task's adapters must move to be promoted
    #: (:class:`polyadapt.lineage.metricgate.MetricGate`, built with ``default=True``), on top
    #: of the policy's gate; a run config's ``gate:`` block replaces it. None: the policy's only.
    gate: ClassVar[MetricGate | None] = None
    #: What ``polyadapt export RUN --format F`` writes for this task's runs: format -> one line
    #: saying what the export holds. :meth:`export` writes them; ``peft`` (the adapter folder
    #: as it is) is the default's one format.
    export_formats: ClassVar[Mapping[str, str]] = {"peft": "the adapter folder as the run saved it"}
    #: The engines ``polyadapt serve --engine E`` may serve this task's bases with; :meth:`servable`
    #: reads ``spec.engine``. ``transformers`` (in this process) is the default's one engine;
    #: ``vllm`` is vLLM's multi-LoRA engine. Asking a task for another is refused at start.
    serve_engines: ClassVar[frozenset[str]] = frozenset({"transformers"})

    def __init__(self, **declared: object):
        unknown = set(declared) - set(DECLARED_FIELDS)
        if unknown:
            raise TypeError(f"Task() got unknown fields {sorted(unknown)}; set methods in a subclass")
        for key, value in declared.items():
            setattr(self, key, value)
        #: The plugin that registered the task; filled in by the plugin manager.
        self.plugin = ""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} of plugin {self.plugin!r}>"

    # -- data ---------------------------------------------------------------------------

    def load_dataset(self, run: Run, path: Path, role: str) -> Dataset:
        """Read one data file or folder into normalised records and quarantined rejects.

        Called by :meth:`load_run_data` for each set the config names. The default reads
        text records (plain text, instruction pairs or chat in jsonl, csv or parquet;
        fields it does not know, such as a ``label``, are kept): ``data.format`` and
        ``data.kind`` describe the domain sets (``train``, ``eval``); the general and
        replay sets are detected on their own.

        :param run: the run (its config and validated ``run.options``).
        :param path: the file or folder the config names, already absolute.
        :param role: ``train``, ``eval``, ``general`` or ``replay``.
        :returns: a :class:`polyadapt.modalities.records.Dataset` whose ``scanned_fields``
            name the free text governance must scan.
        """
        from polyadapt.modalities.text import load_text_dataset

        data = run.config.data
        if role in ("train", "eval"):
            return load_text_dataset(path, data.format, data.kind, max_record_chars=data.max_record_chars)
        return load_text_dataset(path, max_record_chars=data.max_record_chars)

    def builtin_dataset(self, role: str) -> tuple[Path, str] | None:
        """The data the task ships for ``data.general_eval: builtin`` (role ``general``) or
        ``data.replay: builtin`` (role ``replay``): ``(path, SPDX licence)``, or None when
        it ships none (the set is then skipped)."""
        return None

    def load_run_data(self, run: Run) -> RunData:
        """Every set of the run, each passed through governance (``run.admit``).

        The default (:func:`polyadapt.rundata.load_run_data`) reads ``data.train``, then
        ``data.eval`` or a seeded split of train, the general-capability set and replay
        data, and caps evaluation sets at ``evaluation.max_examples``. Override it only
        when the data is not one file per set (several repositories, say).
        """
        from polyadapt.rundata import load_run_data

        return load_run_data(run, self)

    # -- model --------------------------------------------------------------------------

    def load_base(self, run: Run) -> Any:
        """Load the frozen base model for training (and the tokenizer or processor with it).

        Whatever this returns is handed back to :meth:`lora_targets`,
        :meth:`training_job` and :meth:`save_adapter`; the core does not look inside. The
        run's governed data is read before this is called (``run.data``), for a base whose
        shape depends on it (one output per class, say).
        A base that cannot be loaded raises :class:`polyadapt.errors.ConfigError` naming
        ``base_model.id`` and what to give instead.
        """
        raise NotImplementedError(f"task {self.name!r} does not say how to load its base (load_base)")

    def context_length(self, run: Run, base: Any) -> int | None:
        """How many tokens one training sequence of ``base`` may hold, or None where
        ``training.max_length`` means nothing to the task (the default).

        A task whose examples are cut to ``training.max_length`` returns its model's limit
        (``max_position_embeddings`` for most transformers); a config asking for more is then
        refused before training, naming both numbers, instead of training on positions the
        model never learnt.
        """
        return None

    def lora_module(self, base: Any) -> Any:
        """The ``torch.nn.Module`` inside ``base`` that LoRA wraps (default: ``base`` itself,
        or ``base.model`` when the base is a bundle with a ``model`` attribute)."""
        return getattr(base, "model", base)

    def lora_targets(self, run: Run, base: Any) -> list[str] | str:
        """Where LoRA goes in :meth:`lora_module`: module names, a regex, or ``all-linear``.

        The default is ``lora.target_modules`` from the config, with ``auto`` meaning
        ``all-linear``.
        """
        targets = run.config.lora.target_modules
        return "all-linear" if targets == "auto" else targets

    def attach_lora(self, run: Run, base: Any) -> Any:
        """The trainable model: a fresh LoRA adapter on :meth:`lora_module`.

        The default calls :func:`polyadapt.lora.attach_lora` (peft, adapter weights in
        fp32). Override it for models peft cannot wrap whole (a diffusion pipeline's UNet
        and text encoders: use :func:`polyadapt.lora.inject_lora` on each).
        """
        from polyadapt.lora import attach_lora

        return attach_lora(self.lora_module(base), run.config.lora, self.lora_targets(run, base))

    # -- training -----------------------------------------------------------------------

    def training_job(self, run: Run, base: Any, model: Any, data: RunData) -> TrainingJob:
        """The examples, collate function and loss the shared trainer runs.

        :param model: what :meth:`attach_lora` returned (its trainable parameters are the
            adapter's).
        :param data: what :meth:`load_run_data` returned, governed.
        :returns: a :class:`polyadapt.training.TrainingJob`; its ``facts`` (counts found
            while building examples) go to ``data_summary.json`` and the train metrics.
        """
        raise NotImplementedError(f"task {self.name!r} does not say how to train (training_job)")

    def save_adapter(self, run: Run, base: Any, model: Any, folder: Path) -> None:
        """Write the adapter into ``folder`` (an empty temporary folder the core renames
        into place), as ``*.safetensors`` that plain PEFT (or the model's own library) loads.

        The default is ``model.save_pretrained(folder, safe_serialization=True)`` plus the
        base's tokenizer or processor when it has one (``base.tokenizer``).
        """
        model.save_pretrained(folder, safe_serialization=True)
        for attribute in ("tokenizer", "processor"):
            companion = getattr(base, attribute, None)
            if companion is not None and hasattr(companion, "save_pretrained"):
                companion.save_pretrained(folder)

    # -- evaluation ---------------------------------------------------------------------

    def evaluate(self, run: Run, adapter: AdapterArtifact, data: RunData) -> EvalReport:
        """Compare the base with base + adapter on the run's held-out and general data.

        :returns: an :class:`polyadapt.types.EvalReport` with one
            :class:`polyadapt.types.MetricRow` per (set, metric) and a ``role`` for the
            promotion gate (``domain``, ``general``), plus a few samples. The core passes
            the samples through the policy, writes ``metrics.json`` and records it.
        """
        raise NotImplementedError(f"task {self.name!r} does not say how to evaluate (evaluate)")

    def run_gate(self, task_options: Mapping[str, Any] | None) -> MetricGate | None:
        """The task's own promotion gate for a run with these ``task_options`` (as the run
        config writes them: a run record's, not validated). The default is :attr:`gate`;
        override it where an option changes what the task measures (a text run's
        ``objective: dpo`` is gated on preference metrics, not perplexity)."""
        return self.gate

    # -- serving ------------------------------------------------------------------------

    def servable(self, spec: ServeSpec) -> Servable:
        """Load ``spec.base_model`` once and return an object that answers requests.

        It needs ``base_name``, ``load_adapter(name, path)``, ``adapter_names()`` and the
        batch methods its routes call (``generate`` for the core's completions and chat).
        """
        raise NotImplementedError(f"task {self.name!r} cannot be served (servable)")

    def routes(self) -> list[Route]:
        """The HTTP endpoints this task adds to ``polyadapt serve`` (see
        :class:`polyadapt.serving.routes.Route`); mounted when a base of the task is served.
        The core's ``/v1/completions`` and ``/v1/chat/completions`` need none."""
        return []

    def input_sample(self, record: dict[str, Any]) -> InputSample | None:
        """What a served request would ask, taken from a training record: the run's input
        profile (``input_profile.json``, the baseline of ``polyadapt monitor``) is built from
        these. The default: a chat's turns but the assistant's, else the record's prompt or
        text field. A task whose requests are no text (audio) gives ``numbers`` named like
        those its routes pass to :meth:`~polyadapt.serving.routes.RouteContext.note_input`;
        None leaves the record out."""
        from polyadapt.monitoring.profile import default_input_sample

        return default_input_sample(record)

    # -- export -------------------------------------------------------------------------

    def export(
        self, run: Run, adapter: AdapterArtifact, fmt: str, options: Mapping[str, Any], folder: Path
    ) -> dict[str, Any]:
        """Write ``adapter`` as format ``fmt`` (a key of :attr:`export_formats`) into ``folder``.

        ``polyadapt export`` calls it with an empty temporary folder that it renames into
        place when this returns (nothing is left behind when it raises), then hashes every
        file there and records the export in lineage. The default writes ``peft``: a copy
        of the adapter folder.

        :param options: what the command line asked for on top of the format (``quant``:
            ``--quant``, absent when not given); refuse an option the format does not take
            with a :class:`polyadapt.errors.ConfigError` naming it.
        :returns: facts for the export's lineage record (numbers and names: a verification's
            figures, the types written), shown by ``polyadapt lineage show``.
        """
        import shutil

        from polyadapt.errors import ConfigError

        if fmt != "peft":
            raise ConfigError(f"task {self.name!r} cannot export format {fmt!r} (it exports: peft)")
        if options.get("quant"):
            raise ConfigError("--quant means nothing to --format peft (the adapter is copied as it is)")
        shutil.copytree(adapter.path, folder, dirs_exist_ok=True)
        return {}

    # -- tests --------------------------------------------------------------------------

    def tiny_models(self) -> dict[str, Callable[[Path], Path] | tuple[Callable[[Path], Path], str]]:
        """Builders of small random base models for offline tests, by name.

        ``polyadapt.testing.tiny_base_model(name)`` calls ``builder(empty_folder)`` and
        passes what it returns as ``base_model.id``. A value may be ``(builder,
        folder_name)``: the folder's name is the base's name at serving. The default offers
        none.
        """
        return {}
