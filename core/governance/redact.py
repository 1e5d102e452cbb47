"""Apply a policy to one text: find PII, rewrite it and say what was done.

The same :class:`Redactor` serves data preparation (every scanned field of every record)
and serving (prompts and outputs). What it returns, :class:`TextOutcome`, holds
the rewritten text and counts by type, never a matched value.

Actions per finding type (from the policy):

- ``redact``: a typed, numbered placeholder, ``<EMAIL_1>``, ``<PERSON_2>``, ...: within
  one :class:`Placeholders` (a record, a request) the same value always gets the same
  number and different values different ones, so a model trained on the text still learns
  that the customer who wrote is the one who is answered;
- ``mask``: every letter and digit becomes ``*``, separators stay; payment cards and
  phone numbers keep their last four digits (``**** **** **** 1111``);
- ``hash``: ``<EMAIL:1a2b3c4d5e6f>``, the first 12 hex digits of HMAC-SHA256 with the
  project's key (:func:`load_or_create_key`) over the normalised value: the same address
  gives the same token within a project, and without the key it cannot be brute-forced;
- ``allow``: left as it is;
- ``drop``: the record is dropped (the text is still redacted, so it never travels);
- ``refuse``: the rule (``pii.secret``) is listed in ``refused``; the text is redacted too.

Values on the policy's allow-list (``allow.values``, ``allow.patterns``) are never findings.
Blocked terms (whole words, any case) are counted; ``drop`` or ``refuse`` as the policy says.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from polyadapt.errors import ConfigError
from polyadapt.governance.policy import Policy
from polyadapt.governance.scanners import BUILTIN_TYPES, Finding, Scanner, resolve_overlaps
from polyadapt.governance.source_files import ScanContext, source_findings

KEY_FILE = "governance.key"
KEY_BYTES = 32

#: Actions that rewrite the text in place (the record is kept).
REWRITING = ("redact", "mask", "hash")


@dataclass
class TextOutcome:
    """What the policy did to one text: the new text and counts, never a raw value.

    ``findings`` counts findings by type (allowed ones included); ``actions`` gives the
    action taken per type found; ``refused`` lists the rules that refuse the text
    (``"pii.secret"``, ``"blocked_terms"``); ``dropped`` says the record must be dropped.
    """

    text: str
    findings: dict[str, int] = field(default_factory=dict)
    actions: dict[str, str] = field(default_factory=dict)
    blocked_terms: int = 0
    refused: list[str] = field(default_factory=list)
    dropped: bool = False
    #: ``(rule, offset, action)`` per finding and blocked term, ``offset`` its first
    #: character in the scanned text (where it is, never what): ``("pii.email", 120, "redact")``.
    located: list[tuple[str, int, str]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """True when some finding was rewritten (redact, mask, hash, drop or refuse)."""
        return any(action != "allow" for action in self.actions.values())

    def audit_entries(self) -> list[tuple[str, str, int]]:
        """``(rule, action, count)`` per finding type and for blocked terms, for an audit log."""
        entries = [(f"pii.{kind}", self.actions[kind], count) for kind, count in sorted(self.findings.items())]
        if self.blocked_terms:
            action = "refuse" if "blocked_terms" in self.refused else "drop"
            entries.append(("blocked_terms", action, self.blocked_terms))
        return entries


class Placeholders:
    """Numbers for the ``redact`` placeholders of one record or request: the first value of
    a type found is ``<TYPE_1>``, the next different one ``<TYPE_2>``, a repeat keeps its number."""

    def __init__(self) -> None:
        self._numbers: dict[tuple[str, str], int] = {}
        self._counts: dict[str, int] = {}

    def placeholder(self, kind: str, value: str) -> str:
        """The placeholder of ``value`` (a ``kind`` finding), numbered on first sight."""
        key = (kind, _normalise(kind, value))
        number = self._numbers.get(key)
        if number is None:
            number = self._counts[kind] = self._counts.get(kind, 0) + 1
            self._numbers[key] = number
        return f"<{kind.upper()}_{number}>"


def _normalise(kind: str, value: str) -> str:
    """The form of a value that is hashed or numbered, so that formatting does not change it."""
    if kind in ("email", "person", "address"):
        return " ".join(value.lower().split())
    if kind in ("phone", "payment_card", "iban", "national_id"):
        return re.sub(r"[^0-9A-Za-z+]", "", value).upper()
    if kind == "ip_address":
        import ipaddress

        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            return value
    return value


def mask_value(kind: str, value: str) -> str:
    """Every letter and digit as ``*``, separators kept; cards and phones keep 4 last digits."""
    keep = 4 if kind in ("payment_card", "phone") else 0
    out = []
    digits_left = sum(ch.isdigit() for ch in value)
    for ch in value:
        if ch.isdigit():
            out.append(ch if digits_left <= keep else "*")
            digits_left -= 1
        elif ch.isalnum():
            out.append("*")
        else:
            out.append(ch)
    return "".join(out)


class Redactor:
    """Applies ``policy`` to texts with ``scanners`` (built-in ones plus any plugin's).

    ``hash_key`` keys the ``hash`` action (see :func:`load_or_create_key`). A policy that
    names a PII type no scanner reports is a :class:`ConfigError` (a typo would otherwise
    switch detection off silently).
    """

    def __init__(self, policy: Policy, scanners: Iterable[Scanner], hash_key: bytes) -> None:
        self.policy = policy
        self.scanners = list(scanners)
        if not isinstance(hash_key, (bytes, bytearray)) or len(hash_key) < 16:
            raise ValueError("hash_key must be at least 16 bytes (see load_or_create_key)")
        self._key = bytes(hash_key)
        known = {kind for scanner in self.scanners for kind in scanner.types} | set(BUILTIN_TYPES)
        unknown = sorted(set(policy.pii) - known)
        if unknown:
            raise ConfigError(
                f"policy {policy.name!r}: pii names type(s) {', '.join(unknown)} that no scanner "
                f"reports; known types: {', '.join(sorted(known))} (fix the spelling or install "
                "the plugin that adds the scanner)"
            )
        self._blocked = None
        if policy.blocked_terms:
            alternatives = "|".join(
                re.escape(term.strip()) for term in sorted(policy.blocked_terms, key=len, reverse=True)
            )
            self._blocked = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
        self._primed: dict[str, dict[str, list[Finding]]] = {}
        self._allowed_values = {" ".join(value.lower().split()) for value in policy.allow.values}
        self._allowed_patterns = [re.compile(pattern) for pattern in policy.allow.patterns]

    def allowed(self, value: str) -> bool:
        """True when the policy's allow-list says ``value`` is never a finding."""
        if " ".join(value.lower().split()) in self._allowed_values:
            return True
        return any(pattern.fullmatch(value) for pattern in self._allowed_patterns)

    def load(self) -> None:
        """Load what the scanners load lazily (a named-entity model) now, not on the first scan."""
        for scanner in self.scanners:
            load = getattr(scanner, "load", None)
            if callable(load):
                load()

    @contextlib.contextmanager
    def primed(self, texts: Iterable[str]) -> Iterator[None]:
        """Within the block, ``texts`` have already been scanned in one batch: by worker
        processes when the batch is large enough to pay for them (see
        :mod:`~polyadapt.governance.parallel`), and by each scanner's ``scan_many`` where it
        has one (named-entity recognition, several times faster in batches)."""
        from polyadapt.governance import parallel

        unique = list(dict.fromkeys(texts))
        if unique:
            workers = parallel.worker_count(len(unique), self.scanners)
            if workers > 1:
                sent, kept = parallel.portable(self.scanners)
                by_scanner = parallel.scan_in_processes(sent, unique, workers)
            else:
                sent, kept, by_scanner = [], self.scanners, []
            batched = [s for s in kept if callable(getattr(s, "scan_many", None))]
            by_scanner += parallel.scan_each(batched, unique)
            for scanner, found in zip([*sent, *batched], by_scanner, strict=True):
                self._primed[scanner.name] = dict(zip(unique, found, strict=True))
        try:
            yield
        finally:
            self._primed.clear()

    def scan(self, text: str, context: ScanContext | None = None) -> list[Finding]:
        """Every finding in ``text`` by every scanner, overlaps resolved, allow-listed values left out;
        in a source file (``context``) less what the source rules say is none (:mod:`.source_files`)."""
        findings: list[Finding] = []
        for scanner in self.scanners:
            primed = self._primed.get(scanner.name)
            found = primed.get(text) if primed is not None else None
            findings.extend(found if found is not None else scanner.scan(text))
        if context is not None and context.is_source:
            findings = source_findings(
                text,
                findings,
                context,
                private_addresses=self.policy.source.private_addresses,
                secrets=any("secret" in scanner.types for scanner in self.scanners),
                attribution=self.policy.source.attribution,
            )
        findings = resolve_overlaps(findings)
        if self._allowed_values or self._allowed_patterns:
            findings = [f for f in findings if not self.allowed(text[f.start : f.end])]
        return findings

    def token(self, kind: str, value: str) -> str:
        """The ``hash`` action's token for ``value``: ``<TYPE:12 hex digits>``."""
        digest = hmac.new(self._key, _normalise(kind, value).encode("utf-8"), hashlib.sha256)
        return f"<{kind.upper()}:{digest.hexdigest()[:12]}>"

    def apply(
        self, text: str, placeholders: Placeholders | None = None, context: ScanContext | None = None
    ) -> TextOutcome:
        """Scan ``text`` and apply the policy's action to each finding (see module docs).

        ``placeholders`` numbers the ``redact`` placeholders; pass the same one for every
        text of a record so that a value keeps its number across fields (default: one per text).
        ``context`` says what the text is (default: prose); a test file kept by the policy's
        ``source.test_files: keep`` has its findings allowed, all but secrets.
        """
        keep_all_but_secrets = context is not None and context.test_file and self.policy.source.test_files == "keep"
        placeholders = placeholders if placeholders is not None else Placeholders()
        outcome = TextOutcome(text=text)
        pieces: list[str] = []
        position = 0
        for finding in self.scan(text, context):
            kind = finding.type
            action = "allow" if keep_all_but_secrets and kind != "secret" else self.policy.action_for(kind)
            outcome.findings[kind] = outcome.findings.get(kind, 0) + 1
            outcome.actions[kind] = action
            outcome.located.append((f"pii.{kind}", finding.start, action))
            value = text[finding.start : finding.end]
            if action == "allow":
                replacement = value
            elif action == "mask":
                replacement = mask_value(kind, value)
            elif action == "hash":
                replacement = self.token(kind, value)
            else:  # redact, drop and refuse: the value never travels further
                replacement = placeholders.placeholder(kind, value)
            if action == "drop":
                outcome.dropped = True
            elif action == "refuse" and f"pii.{kind}" not in outcome.refused:
                outcome.refused.append(f"pii.{kind}")
            pieces.append(text[position : finding.start])
            pieces.append(replacement)
            position = finding.end
        pieces.append(text[position:])
        outcome.text = "".join(pieces)
        if self._blocked is not None:
            starts = [match.start() for match in self._blocked.finditer(text)]
            outcome.blocked_terms = len(starts)
            outcome.located += [("blocked_terms", start, self.policy.blocked_terms_action) for start in starts]
            if outcome.blocked_terms:
                if self.policy.blocked_terms_action == "refuse":
                    outcome.refused.append("blocked_terms")
                else:
                    outcome.dropped = True
        return outcome


def load_or_create_key(state_dir: Path) -> bytes:
    """The project's hashing key: 32 random bytes in ``state_dir/governance.key`` (mode 0600).

    Created on first use, atomically: when two processes create it at once, both end up
    with the key that reached the disk first.
    """
    state_dir = Path(state_dir)
    path = state_dir / KEY_FILE
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        tmp = state_dir / f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never readable by others
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(KEY_BYTES))
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)  # fails if another process got there first: keep theirs
        except FileExistsError:
            pass
        except OSError:  # no hard links on this file system: rename unless already there
            if not path.exists():
                os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise ConfigError(
            f"{path}: the governance key must be {KEY_BYTES} bytes, found {len(key)}; "
            "restore it from a backup, or delete it to start a new one (hashed tokens will change)"
        )
    return key
