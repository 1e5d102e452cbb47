"""The one door data passes on its way to a model: governance first, then the manifest.

Every dataset a plugin trains or evaluates on goes through :meth:`DataGate.admit` (plugins
call it as ``run.admit(dataset, role=...)``): the policy's licence and consent checks, PII
scanning and redaction of every text field the modality declares, then a manifest of the
records that remain (hashes over the *governed* content, so no manifest hashes raw PII).
The decisions (kept, redacted, dropped: finding types and counts, never values) go to the
run folder as ``governance/<role>.jsonl``, the manifest as ``manifests/<role>.json``.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from polyadapt.errors import PluginError
from polyadapt.modalities.records import Dataset

if TYPE_CHECKING:  # pragma: no cover
    from polyadapt.config import RunConfig
    from polyadapt.governance.policy import Policy
    from polyadapt.governance.redact import Redactor
    from polyadapt.plugins import PluginManager
    from polyadapt.types import Run


class _ConfigLicence(enum.Enum):
    """The type of :data:`CONFIG_LICENCE` (a one-member enum, so type checkers can narrow it away)."""

    CONFIG_LICENCE = enum.auto()


#: ``admit(licence=...)`` left out: the run config's ``data.licence`` applies.
CONFIG_LICENCE: Final = _ConfigLicence.CONFIG_LICENCE


@dataclass
class DataGate:
    """Governs and fingerprints the datasets of one run.

    ``on_manifest(role, manifest)`` is called for each admitted dataset (the runner records
    it in the lineage store); ``write_text(name, text)`` writes into the run folder.
    """

    policy: Policy
    redactor: Redactor
    modality: str
    default_licence: str | None
    write_text: Callable[[str, str], object]
    on_manifest: Callable[[str, dict[str, Any]], None] | None = None
    #: Tells the user what governance found (counts by rule, the worst files); the runner
    #: passes the run's progress messages.
    notify: Callable[[str], None] | None = None
    #: Whether records need consent when the policy does not name the modality.
    consent_default: bool = False
    manifests: dict[str, dict[str, Any]] = field(default_factory=dict)
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)

    def admit(self, dataset: Dataset, *, role: str, licence: str | None | _ConfigLicence = CONFIG_LICENCE) -> Dataset:
        """Apply the policy to ``dataset`` and return what may reach the model.

        :param dataset: records as a modality loader returned them (``scanned_fields`` set).
        :param role: what the data is for: ``train``, ``eval``, ``general``, ``replay``...;
            one manifest per role (a second admit under a role replaces the first).
        :param licence: the SPDX licence of this dataset; by default the run config's
            ``data.licence`` (data a plugin ships itself declares its own).
        :raises GovernanceError: the licence is not allowed, consent is missing, a record
            holds what the policy refuses, or too many records hold findings.
        """
        from polyadapt.governance.engine import govern_dataset
        from polyadapt.lineage.manifest import build_manifest

        if not dataset.scanned_fields:
            raise PluginError(
                f"{dataset.source}: the loader declared no text fields to scan (Dataset.scanned_fields); "
                "governance cannot check this data. Set scanned_fields in the modality loader"
            )
        chosen = self.default_licence if licence is CONFIG_LICENCE else licence
        governed = govern_dataset(
            dataset,
            policy=self.policy,
            redactor=self.redactor,
            modality=self.modality,
            licence=chosen,
            role=role,
            consent_default=self.consent_default,
        )
        manifest = build_manifest(governed.dataset, role=role, governance=governed.summary)
        self.write_text(f"governance/{role}.jsonl", governed.decisions_jsonl())
        self.write_text(f"manifests/{role}.json", json.dumps(manifest, indent=2) + "\n")
        self.manifests[role] = manifest
        self.summaries[role] = governed.summary
        if self.notify is not None:
            from polyadapt.governance.located import summary_lines

            for line in summary_lines(governed.summary, role):
                self.notify(line)
        if self.on_manifest is not None:
            self.on_manifest(role, manifest)
        return governed.dataset

    def redact_text(self, text: str) -> str:
        """``text`` as the policy lets it be shown or stored (outputs, samples, logs)."""
        return shown_text(self.redactor, text)


def build_redactor(pm: PluginManager, policy: Policy) -> Redactor:
    """The policy's redactor: built-in scanners plus every plugin's, keyed by the project key."""
    from polyadapt.governance.redact import Redactor, load_or_create_key
    from polyadapt.governance.scanners import builtin_scanners
    from polyadapt.lineage.state import state_dir

    return Redactor(policy, [*builtin_scanners(policy), *pm.scanners()], load_or_create_key(state_dir()))


def shown_text(redactor: Redactor, text: str) -> str:
    """``text`` redacted, or a note naming the rules when the policy refuses or drops it."""
    outcome = redactor.apply(text)
    if outcome.refused or outcome.dropped:
        return f"[withheld by policy: {', '.join(outcome.refused) or 'a dropped finding'}]"
    return outcome.text


def policy_and_redactor(pm: PluginManager, config: RunConfig) -> tuple[Policy, Redactor]:
    """The run config's policy (or the strict default) and its redactor."""
    from polyadapt.governance.policy import load_policy

    policy = load_policy(config.governance.policy)
    return policy, build_redactor(pm, policy)


def govern_config(config: RunConfig, redactor: Redactor) -> RunConfig:
    """``config`` with its free text (evaluation sample prompts) passed through the policy.

    The config is stored verbatim in the run folder and the lineage store, and the sample
    prompts reach the model, so they are governed like data. Redaction is deterministic:
    the same file gives the same config hash again (``--resume`` finds its run).
    """
    samples = config.evaluation.samples
    governed = [shown_text(redactor, text) for text in samples]
    if governed == samples:
        return config
    config = config.model_copy(deep=True)
    config.evaluation.samples = governed
    return config


def open_gate(run: Run, policy: Policy, redactor: Redactor) -> DataGate:
    """The data gate of ``run`` under ``policy``."""
    return DataGate(
        policy=policy,
        redactor=redactor,
        modality=run.task.modality,
        default_licence=run.config.data.licence,
        write_text=run.write_text,
        consent_default=run.task.consent_required,
        notify=run.say,
    )
