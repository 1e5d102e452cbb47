"""PII and secret scanners: find where personal data and credentials lie in a text.

:func:`builtin_scanners` assembles one scanner per family, each in its own module with its
rules and the near misses it skips:

- :mod:`~polyadapt.governance.contact`: ``email``, ``phone``;
- :mod:`~polyadapt.governance.financial`: ``payment_card``, ``iban``;
- :mod:`~polyadapt.governance.identity`: ``national_id``, ``passport``, ``date_of_birth``;
- :mod:`~polyadapt.governance.network`: ``ip_address``;
- :mod:`~polyadapt.governance.secrets`: ``secret``;
- :mod:`~polyadapt.governance.addresses`: ``address`` (street addresses);
- :mod:`~polyadapt.governance.ner`: ``person``, by named-entity recognition, when the policy's
  ``detectors.ner`` asks for it and the ``ner`` extra is installed.

All but the last are regular expressions validated by checksums, libphonenumber and
context words: the fast path. A :class:`Finding` holds a type and a span, never the
value. Overlapping findings are resolved to one: the longest span wins, ties go to the
type earlier in :data:`TYPE_PRIORITY`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from polyadapt.governance.findings import TYPE_PRIORITY, Finding, Scanner, resolve_overlaps

if TYPE_CHECKING:  # pragma: no cover
    from polyadapt.governance.policy import Policy

log = logging.getLogger(__name__)

__all__ = ["BUILTIN_TYPES", "TYPE_PRIORITY", "Finding", "Scanner", "builtin_scanners", "resolve_overlaps", "scan_text"]

#: Every type a built-in scanner reports, whether or not its detector runs.
BUILTIN_TYPES = (
    "email",
    "phone",
    "payment_card",
    "iban",
    "national_id",
    "passport",
    "date_of_birth",
    "ip_address",
    "secret",
    "address",
    "person",
)


def pattern_scanners() -> list[Scanner]:
    """The regular-expression scanners: every built-in type but ``person``."""
    from polyadapt.governance.addresses import StreetAddressScanner
    from polyadapt.governance.contact import EmailScanner, PhoneScanner
    from polyadapt.governance.financial import IbanScanner, PaymentCardScanner
    from polyadapt.governance.identity import DateOfBirthScanner, NationalIdScanner, PassportScanner
    from polyadapt.governance.network import IpAddressScanner
    from polyadapt.governance.secrets import SecretScanner

    return [
        EmailScanner(),
        PhoneScanner(),
        PaymentCardScanner(),
        IbanScanner(),
        NationalIdScanner(),
        PassportScanner(),
        DateOfBirthScanner(),
        IpAddressScanner(),
        SecretScanner(),
        StreetAddressScanner(),
    ]


def builtin_scanners(policy: Policy | None = None) -> list[Scanner]:
    """The built-in scanners ``policy`` asks for: the pattern scanners always, the
    named-entity scanner as its ``detectors.ner`` says (``None``: patterns only)."""
    scanners = pattern_scanners()
    if policy is not None and policy.detectors.ner != "off":
        scanner = person_scanner(required=policy.detectors.ner == "on")
        if scanner is not None:
            scanners.append(scanner)
    return scanners


_warned: set[str] = set()


def person_scanner(required: bool) -> Scanner | None:
    """The person-name scanner, or None (with one warning per process) when the ``ner`` extra
    or its spaCy pipeline is missing; with ``required`` a :class:`ConfigError` instead.

    Only checks that the pieces are there: the model itself loads on the first scan.
    """
    from polyadapt.errors import ConfigError
    from polyadapt.governance import spacy_model

    try:
        spacy_model.require_ner_packages()
        path = spacy_model.spacy_model_path()
        if not (path.is_dir() and spacy_model.is_complete(path)):
            raise ConfigError(f"{spacy_model.FETCH_HINT} (no pipeline folder at {path})")
    except ConfigError as exc:
        if required:
            raise ConfigError(f"the policy's detectors.ner is 'on', but {exc}") from None
        message = f"person names are not detected: {exc} (or set detectors.ner: off in the policy)"
        if message not in _warned:
            _warned.add(message)
            log.warning(message)
        return None
    from polyadapt.governance.ner import PersonNameScanner

    return PersonNameScanner(path)


def scan_text(text: str, scanners: list[Scanner]) -> list[Finding]:
    """Every scanner's findings in ``text``, overlaps resolved (see :func:`resolve_overlaps`)."""
    findings: list[Finding] = []
    for scanner in scanners:
        findings.extend(scanner.scan(text))
    return resolve_overlaps(findings)
