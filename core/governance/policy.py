"""Governance policies: what data may be used and what happens to the PII found in it.

A policy is a YAML file (see ``configs/policies/strict.yaml`` for every field, commented).
When a run names none, the strict default :class:`Policy()` applies. An invalid file gets
one :class:`~polyadapt.errors.ConfigError` that names the file, the line, the field and the
bad value, as run configs do.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from polyadapt.errors import ConfigError
from polyadapt.yamlfile import parse_mapping, read_text, validate

if TYPE_CHECKING:  # pragma: no cover
    from license_expression import Licensing

#: What to do with one PII finding: leave it (``allow``), replace it with a typed
#: placeholder (``redact``), star it out keeping separators (``mask``), replace it with a
#: keyed hash (``hash``), drop the whole record (``drop``) or refuse the run (``refuse``).
Action = Literal["allow", "redact", "mask", "hash", "drop", "refuse"]

STRICT_LICENCES = [
    "CC0-1.0",
    "CC-BY-4.0",
    "CC-BY-SA-4.0",
    "MIT",
    "Apache-2.0",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "ODC-By-1.0",
    "PDDL-1.0",
    "CDLA-Permissive-2.0",
]

STRICT_PII: dict[str, Action] = {
    "email": "redact",
    "phone": "redact",
    "payment_card": "redact",
    "iban": "redact",
    "national_id": "redact",
    "ip_address": "mask",
    "secret": "refuse",
    "passport": "redact",
    "date_of_birth": "redact",
    "address": "redact",
    "person": "redact",
}


@functools.lru_cache(maxsize=1)
def spdx_licensing() -> Licensing:
    """The SPDX licence index of ``license_expression`` (loaded once per process)."""
    from license_expression import get_spdx_licensing

    return get_spdx_licensing()


class _Section(BaseModel):
    """Base for policy sections: unknown keys are errors (a typo must not pass silently)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LicencePolicy(_Section):
    """Which data licences a run may use."""

    allowed: list[str] = Field(
        default_factory=lambda: list(STRICT_LICENCES), description="SPDX ids of allowed licences"
    )
    require_declared: bool = Field(True, description="Refuse data whose run config declares no licence (data.licence)")
    denied: list[str] = Field(
        default_factory=list, description="SPDX ids refused even where allowed names them (checked per file)"
    )
    review: list[str] = Field(
        default_factory=list,
        description="SPDX ids whose files need a person's review first: they are held back (quarantined "
        "with the reason) until the policy allows them",
    )

    @field_validator("allowed", "denied", "review")
    @classmethod
    def _known_spdx_ids(cls, value: list[str]) -> list[str]:
        licensing = spdx_licensing()
        unknown = []
        for item in value:
            try:
                parsed = licensing.parse(item)
            except Exception:  # noqa: BLE001 - any parse failure is an unknown id
                unknown.append(item)
                continue
            if parsed is None or type(parsed).__name__ in ("AND", "OR"):
                unknown.append(item)  # one id per entry, not an expression
            elif any(not k.startswith("LicenseRef-") for k in licensing.unknown_license_keys(parsed)):
                unknown.append(item)
        if unknown:
            raise ValueError(
                f"unknown SPDX licence id(s) {', '.join(map(repr, unknown))}; list one id per "
                "entry from https://spdx.org/licenses/ (e.g. CC-BY-4.0, MIT) or a LicenseRef-..."
            )
        return value


class ConsentPolicy(_Section):
    """Where every record must carry consent (data that shows people: voices, faces)."""

    required: dict[str, bool] = Field(
        default_factory=dict,
        description="Modality name -> whether every record must carry a truthy consent field; a modality "
        "not listed follows its task (tasks whose records show people require it)",
    )
    field: str = Field("consent", min_length=1, description="The record field that holds consent")


class DetectorPolicy(_Section):
    """Which detectors run besides the pattern scanners (which always run)."""

    ner: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Person names by named-entity recognition: 'on' requires it (a run stops with the way to "
        "install it when it is missing), 'auto' uses it when installed and says so when not, 'off' skips it",
    )


class AllowList(_Section):
    """Values that are never findings: a company's public support address, a test card number."""

    values: list[str] = Field(
        default_factory=list, description="Exact values, compared case-insensitively and ignoring surrounding space"
    )
    patterns: list[str] = Field(
        default_factory=list, description="Regular expressions; a finding whose whole value matches one is allowed"
    )

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, value: list[str]) -> list[str]:
        import re

        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"allow pattern {pattern!r} is not a valid regular expression: {exc}") from None
        return value


class SourcePolicy(_Section):
    """How source files are governed (datasets whose records are program source and
    configuration files; see :mod:`polyadapt.governance.source_files` for the rules)."""

    test_files: Literal["redact", "skip", "keep"] = Field(
        "redact",
        description="Tests and fixtures (tests/, fixtures/, testdata/, test_*.py, *_test.go, *.spec.ts, ...): "
        "'redact' scans them like any file, 'skip' leaves them out of the data, 'keep' keeps them as they are "
        "(their PII findings are allowed; a secret still follows pii.secret)",
    )
    private_addresses: Literal["allow", "scan"] = Field(
        "allow",
        description="Private IP addresses (RFC 1918, CGNAT, link-local, unique-local) in source files: 'allow' "
        "leaves them (they name no one outside a private network), 'scan' treats them as ip_address findings",
    )
    attribution: Literal["keep", "scan"] = Field(
        "keep",
        description="Names and e-mail addresses in copyright notices, author lines and files such as AUTHORS, "
        "LICENSE or NOTICE: 'keep' leaves them (licences such as BSD and MIT require the notice to stay; the "
        "holders are recorded in lineage), 'scan' treats them like any finding",
    )


class ServingPolicy(_Section):
    """What the server scans with the same policy."""

    scan_prompts: bool = True
    scan_outputs: bool = True


class PromotionPolicy(_Section):
    """The registry's promotion gate, relative to the base model (0.05 = 5 %)."""

    min_domain_improvement: float = Field(
        0.0, ge=0, description="Domain metrics must beat the base by at least this share"
    )
    max_general_regression: float = Field(
        0.05, ge=0, description="General metrics may not get worse than the base by more"
    )


class Policy(_Section):
    """One governance policy; ``Policy()`` is the strict default."""

    name: str = Field("strict", min_length=1)
    licences: LicencePolicy = Field(default_factory=LicencePolicy)
    consent: ConsentPolicy = Field(default_factory=ConsentPolicy)
    pii: dict[str, Action] = Field(
        default_factory=lambda: dict(STRICT_PII),
        description="PII type -> action; types not named keep their strict action",
    )
    default_action: Action = Field(
        "redact", description="Action for finding types a plugin scanner adds that pii does not name"
    )
    detectors: DetectorPolicy = Field(default_factory=DetectorPolicy)
    allow: AllowList = Field(default_factory=AllowList)
    blocked_terms: list[str] = Field(
        default_factory=list, description="Terms matched case-insensitively as whole words"
    )
    blocked_terms_action: Literal["drop", "refuse"] = "drop"
    max_finding_share: float = Field(
        0.2, ge=0, le=1, description="Share of records with findings above which the run is refused"
    )
    source: SourcePolicy = Field(default_factory=SourcePolicy)
    serving: ServingPolicy = Field(default_factory=ServingPolicy)
    promotion: PromotionPolicy = Field(default_factory=PromotionPolicy)

    @field_validator("pii", mode="before")
    @classmethod
    def _over_strict(cls, value: Any) -> Any:
        """A policy names the types it changes; the others keep their strict action, so a
        short policy cannot switch secret refusal off by leaving it out."""
        return {**STRICT_PII, **value} if isinstance(value, dict) else value

    @field_validator("pii")
    @classmethod
    def _type_names(cls, value: dict[str, str]) -> dict[str, str]:
        import re

        bad = [key for key in value if not re.fullmatch(r"[a-z][a-z0-9_]*", key)]
        if bad:
            raise ValueError(f"PII type names are lower-case words with '_' (e.g. email, payment_card); got {bad}")
        return value

    @field_validator("blocked_terms")
    @classmethod
    def _non_blank_terms(cls, value: list[str]) -> list[str]:
        if any(not term.strip() for term in value):
            raise ValueError("blocked terms may not be blank")
        return value

    def action_for(self, finding_type: str) -> Action:
        """The action this policy takes for ``finding_type`` (``default_action`` if unnamed)."""
        return self.pii.get(finding_type, self.default_action)


# ---------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    """Validate YAML ``text`` as a :class:`Policy`; errors name ``source`` and the line."""
    if not text.strip() or all(not line.strip() or line.lstrip().startswith("#") for line in text.splitlines()):
        # an empty file falling back to the defaults would hide a mistake (a truncated copy, a wrong path)
        raise ConfigError(
            f"{source}: the policy file is empty; write a policy (see configs/policies/strict.yaml) "
            "or remove governance.policy from the config to use the strict built-in one"
        )
    root, data = parse_mapping(text, source, "policy")
    return validate(Policy, data, source, root, what="policy file", schema_hint="configs/policies/strict.yaml")


def load_policy(path: Path | str | None) -> Policy:
    """Read and validate the policy at ``path``; ``None`` gives the strict default ``Policy()``."""
    if path is None:
        return Policy()
    path = Path(path)
    return parse_policy(read_text(path, "policy file", "; see configs/policies/ for examples"), str(path))
