"""Governance: no byte reaches a model, or leaves it, unchecked.

One service for every modality. A :class:`~polyadapt.governance.policy.Policy` (YAML under
``configs/policies/``; a strict default applies when none is given) says which data
licences are allowed, where consent is required, which PII types to detect and what to do
with each, which terms are blocked and how much PII a dataset may hold before the run is
refused. The pieces:

- :mod:`~polyadapt.governance.policy`: the policy model and ``load_policy``;
- :mod:`~polyadapt.governance.scanners`: PII and secret scanners (``builtin_scanners``);
- :mod:`~polyadapt.governance.redact`: ``Redactor`` applies the policy to one text;
- :mod:`~polyadapt.governance.engine`: ``govern_dataset`` checks a whole dataset before
  training (licence, consent, PII) and records one decision per record;
- :mod:`~polyadapt.governance.audit`: the serving audit log (JSON lines, no raw content);
- ``strip_image_metadata``: EXIF/GPS stripping for images, re-exported from
  :mod:`polyadapt.modalities.image_metadata`.

Importing this package is cheap: the submodules load on first use of their names.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Raised when data or a request breaks the policy; it lives in :mod:`polyadapt.errors`
#: beside the other user-facing errors and is re-exported here.
from polyadapt.errors import GovernanceError

_EXPORTS = {
    "Policy": "policy",
    "load_policy": "policy",
    "Finding": "scanners",
    "Scanner": "scanners",
    "builtin_scanners": "scanners",
    "Redactor": "redact",
    "TextOutcome": "redact",
    "load_or_create_key": "redact",
    "govern_dataset": "engine",
    "check_licence": "engine",
    "GovernedDataset": "engine",
    "Decision": "engine",
    "AuditLog": "audit",
    "strip_image_metadata": "polyadapt.modalities.image_metadata",
}

__all__ = ["GovernanceError", *_EXPORTS.keys()]  # noqa: PLE0604


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'polyadapt.governance' has no attribute {name!r}")
    # a submodule of this package by its short name, anything else by its full name
    return getattr(importlib.import_module(module if "." in module else f"polyadapt.governance.{module}"), name)
