"""``task_options`` of the ``code-generation`` task (pydantic only: cheap to import)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from polyadapt_text.options import TextOptions
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator


class CodeRepository(BaseModel):
    """One further repository of a run, written as a mapping (a bare path is one too)."""

    model_config = ConfigDict(extra="forbid")

    path: Path = Field(description="The repository's folder, or a local git repository with revision")
    revision: str | None = Field(
        None, description="Read the git repository at this branch, tag or commit (like task_options.revision)"
    )
    licence: str | None = Field(
        None,
        description="SPDX licence of its files without a header (like data.licence); "
        "default: detected from its LICENSE file, else its package manifest",
    )


def _entry_kind(value: Any) -> str | None:
    if isinstance(value, (dict, CodeRepository)):
        return "mapping"
    return "path" if isinstance(value, (str, Path)) else None


#: A path string or a ``{path, revision, licence}`` mapping. Typed ``Path`` either way, so
#: the runner makes it absolute (``resolve_option_paths``) in ``config.yaml`` too.
RepositoryEntry = Annotated[
    Annotated[Path, Tag("path")] | Annotated[CodeRepository, Tag("mapping")],
    Discriminator(
        _entry_kind,
        custom_error_type="repository_entry",
        custom_error_message="expected a path or a mapping {path, revision, licence}",
    ),
]


class CodeOptions(TextOptions):
    """What a code run reads, how it builds samples and how it evaluates.

    ``objective`` and its options (``dpo_beta``, ``dpo_loss``, ``simpo_beta``, ``simpo_gamma``,
    ``orpo_lambda``) are the text task's (:class:`TextOptions`): under ``objective: dpo``,
    ``simpo`` or ``orpo`` the run trains on preference pairs (``data.train`` a preference file,
    not a repository) exactly as a text run does.

    Paths (``tasks``, ``repositories``) may start with ``~``; relative ones resolve against
    the run config's folder, and the run folder's ``config.yaml`` holds them absolute.
    """

    model_config = ConfigDict(extra="forbid")

    # -- ingestion (data.train is the repository folder) ----------------------------------
    revision: str | None = Field(
        None, description="Read data.train as a git repository at this branch, tag or commit (git archive)"
    )
    repositories: list[RepositoryEntry] = Field(
        default_factory=list,
        description="Further repositories read after data.train, each a path or "
        "{path, revision, licence}; duplicates are removed across all of them, the first kept",
    )
    languages: list[str] | None = Field(None, description="Keep only these languages (e.g. [python]); default all")
    exclude: list[str] = Field(default_factory=list, description="Glob patterns of paths to skip")
    max_file_bytes: int = Field(256_000, ge=64, description="Skip files larger than this")
    max_line_length: int = Field(1000, ge=80, description="A longer line marks a file as minified")
    licence_action: Literal["drop", "refuse"] = Field(
        "drop", description="A file whose licence the policy refuses: drop it (quarantined) or refuse the run"
    )
    licence_engine: Literal["auto", "scancode", "fallback"] = Field(
        "auto",
        description="What finds each file's licence and copyright holders: scancode (ScanCode, from "
        ".venv-scancode or $POLYADAPT_SCANCODE; the run stops when it is missing), fallback (licence "
        "wording and Copyright lines only) or auto (ScanCode when installed, else the fallback, said so)",
    )
    licence_min_score: float = Field(
        80.0,
        ge=0,
        le=100,
        description="A file whose own licence ScanCode matched with a lower score (0-100) is held for review",
    )
    near_duplicate_threshold: float = Field(0.85, gt=0, le=1, description="MinHash Jaccard for near duplicates")
    shingle_size: int = Field(5, ge=1, le=50, description="Tokens per shingle for near-duplicate detection")

    # -- training samples --------------------------------------------------------------
    fim_rate: float = Field(0.5, ge=0, le=1, description="Share of chunks turned into fill-in-the-middle samples")
    fim_fallback: Literal["text", "off"] = Field(
        "text", description="Without FIM tokens in the tokenizer: spell the sentinels as text, or no FIM"
    )

    # -- evaluation --------------------------------------------------------------------
    eval_lines: int = Field(32, ge=0, description="Held-out lines scored for next-line exact match")
    eval_fim: int = Field(32, ge=0, description="Held-out lines scored for FIM middle exact match")
    max_line_tokens: int = Field(48, ge=1, description="Tokens generated for one line")
    context_tokens: int | None = Field(None, ge=8, description="Prompt budget in tokens; default training.max_length")
    tasks: Path | None = Field(
        None, description="HumanEval-format jsonl (task_id, prompt, test, entry_point) for pass@k"
    )
    tasks_licence: str | None = Field(None, description="SPDX licence of the task set; default data.licence")
    tasks_role: Literal["domain", "general", "other"] = Field(
        "domain",
        description="Promotion-gate role of the pass@k rows: domain (the task set tests the "
        "repository's own code), general (a regression check, e.g. HumanEval) or other (reported only)",
    )
    pass_k: list[int] = Field(default_factory=lambda: [1], description="k values for pass@k (each <= samples_per_task)")
    samples_per_task: int = Field(1, ge=1, le=200, description="Completions per task (1: greedy)")
    sample_temperature: float = Field(0.8, gt=0, le=2)
    completion_tokens: int = Field(128, ge=1, description="Tokens generated per task completion")
    timeout_s: float = Field(10.0, gt=0, le=600, description="CPU seconds (and twice that wall time) per program")
    memory_mb: int = Field(1024, ge=64, description="Address-space limit per program (RLIMIT_AS)")
    max_processes: int = Field(
        32, ge=2, le=4096, description="Processes and threads per program (RLIMIT_NPROC under its own uid)"
    )
    sandbox: Literal["bwrap", "unisolated"] = Field(
        "bwrap",
        description="How pass@k programs are isolated: bwrap (bubblewrap namespaces: no network, read-only "
        "system, only the task folder writable; evaluation refuses when bwrap cannot run) or unisolated "
        "(rlimits only: generated code can read and write what this user can; a warning says so)",
    )

    @model_validator(mode="after")
    def _k_within_samples(self) -> CodeOptions:
        too_big = [k for k in self.pass_k if k < 1 or k > self.samples_per_task]
        if too_big:
            raise ValueError(
                f"pass_k {too_big}: each k must be between 1 and samples_per_task ({self.samples_per_task})"
            )
        return self
