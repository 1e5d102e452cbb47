"""PII and secret scanners: find where personal data and credentials lie in a text.

A scanner returns :class:`Finding` objects, which hold a type and a span but never the
matched value, so nothing downstream can leak it by accident. Validation uses
well-kept libraries where one fits better than a regex: ``phonenumbers`` (Google's
libphonenumber rules) for phone numbers, ``python-stdnum`` for card (Luhn), IBAN (mod 97)
and SSN rules, and the standard ``ipaddress`` module for IP addresses.

Decisions the scanners make, so that near misses are not reported:

- phone: national numbers of the US, GB, DE and FR, and any number written in
  ``+international`` form, that libphonenumber calls *valid* (not merely possible), with
  8 to 15 digits; skipped: a candidate glued to a longer identifier
  (``ORD-2023-004512``, ``#48213377``) or shaped like an IPv4 address, a date, an SSN
  or a grouped card number.
- payment_card: 13-19 digits, compact or in groups split by one kind of separator
  (space or dash), Luhn-valid and starting with a known issuer prefix (Visa, Mastercard,
  Amex, Discover, JCB, Diners, UnionPay, Maestro). ISBNs (978/979) have no card prefix.
- iban: upper-case, compact or in groups of four, mod-97 valid and of the length and
  structure of its country (``stdnum.iban``).
- national_id: US SSNs written ``123-45-6789`` or ``123 45 6789`` (or 9 digits right after
  "SSN"/"social security"), never area 000, 666 or 9xx, group 00 or serial 0000; UK
  National Insurance numbers (``QQ 12 34 56 C`` shape with the official letter rules).
- ip_address: IPv4 in dotted-quad form and IPv6, as the ``ipaddress`` module parses them.
  Not reported: networks in CIDR notation (``10.0.0.0/8`` names a network, not a host),
  the unspecified and loopback addresses, version strings (``1.2.3``, ``v1.2.3.4``,
  ``version 1.2.3.4``) and times or MAC addresses.
- secret: AWS access key ids, GitHub, Slack, OpenAI, Anthropic, Google and Stripe keys,
  JWTs, PEM private-key blocks, and ``password|secret|api_key|token = "..."`` assignments
  whose value looks random (length >= 8, two character classes, entropy >= 3 bits per
  character, no placeholder such as ``<your-token>`` or ``changeme``); only the value is
  the finding, so redaction keeps the key name.

Overlapping findings are resolved to one: the longest span wins, ties go to the type
earlier in :data:`TYPE_PRIORITY`.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Finding:
    """One piece of PII in a text: its type and ``text[start:end]`` (never the value)."""

    type: str
    start: int
    end: int
    scanner: str


@runtime_checkable
class Scanner(Protocol):
    """What a scanner provides; plugins return these from ``polyadapt_scanners``."""

    #: A unique name, recorded on each finding.
    name: str
    #: The finding types this scanner can report (``"email"``, ...).
    types: tuple[str, ...]

    def scan(self, text: str) -> list[Finding]:
        """Every finding in ``text``; overlapping ones are fine (they are resolved later)."""


#: Tie-break order for overlapping findings of equal length; unknown types come after.
TYPE_PRIORITY = ("secret", "payment_card", "iban", "national_id", "email", "ip_address", "phone")


def resolve_overlaps(findings: list[Finding]) -> list[Finding]:
    """Keep one finding per overlapping group: longest span first, then by type priority.

    The result is sorted by position. Deterministic for the same input.
    """
    rank = {name: i for i, name in enumerate(TYPE_PRIORITY)}
    ordered = sorted(
        set(findings),
        key=lambda f: (-(f.end - f.start), rank.get(f.type, len(rank)), f.type, f.start, f.scanner),
    )
    kept: list[Finding] = []
    for finding in ordered:
        if finding.end <= finding.start:
            continue
        if all(finding.end <= k.start or finding.start >= k.end for k in kept):
            kept.append(finding)
    return sorted(kept, key=lambda f: (f.start, f.end))


# ---------------------------------------------------------------------------------------
# Email
# ---------------------------------------------------------------------------------------


class EmailScanner:
    """Email addresses: ``local@domain.tld`` with a letters-only top-level domain."""

    name = "email"
    types: tuple[str, ...] = ("email",)
    _pattern = re.compile(
        r"(?<![\w.%+-])"
        r"[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_%+-])?"
        r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}"
        r"(?![\w-]|\.[A-Za-z0-9])"
    )

    def scan(self, text: str) -> list[Finding]:
        if "@" not in text:
            return []
        return [
            Finding("email", m.start(), m.end(), self.name)
            for m in self._pattern.finditer(text)
            if ".." not in m.group()
        ]


# ---------------------------------------------------------------------------------------
# Phone
# ---------------------------------------------------------------------------------------


#: Digit runs that may hold a phone number: the phone matcher only looks at these windows.
_PHONE_WINDOW = re.compile(r"\+?\(?\d[\d \t().\-/]{5,}\d")
#: Shapes phone matches must not have: IPv4 addresses, dates, SSN-shaped ids.
_NOT_PHONE = re.compile(
    r"\d{1,3}(?:\.\d{1,3}){3}"
    r"|\d{1,2}([./-])\d{1,2}\1(?:\d{2}|\d{4})"
    r"|\d{4}([./-])\d{1,2}\2\d{1,2}"
    r"|\d{3}-\d{2}-\d{4}"
    r"|\d{4}([ -])\d{4}\3\d{4}\3\d{1,4}"  # payment-card grouping
)
#: A digit group that starts with 0, as national numbers in GB, DE and FR do.
_TRUNK_ZERO = re.compile(r"(?<!\d)0")
#: Regions of the North American Numbering Plan: national numbers have no trunk 0.
_NANP = {"US", "CA", "PR", "GU", "VI", "AS", "MP"}
#: A match that starts with a date (``2023-11-01 12``) is a timestamp.
_DATE_START = re.compile(r"\(?(?:\d{4}([./-])\d{1,2}\1\d{1,2}|\d{1,2}([./-])\d{1,2}\2\d{4})\b")
#: An IBAN-shaped code right before a match: its digits continue that code.
_CODE_BEFORE = re.compile(r"(?:^|\s)[A-Z]{2}\d{2}(?: [A-Z0-9]{4})* $")


def continues_code(text: str, start: int) -> bool:
    """True when ``text[start:]`` continues a spaced IBAN-shaped code (``NL80 ABNA 2346``)."""
    return bool(_CODE_BEFORE.search(text[max(0, start - 40) : start]))


class PhoneScanner:
    """Phone numbers that libphonenumber calls valid, national (``regions``) or international."""

    name = "phone"
    types: tuple[str, ...] = ("phone",)

    def __init__(self, regions: tuple[str, ...] = ("US", "GB", "DE", "FR"), min_digits: int = 8) -> None:
        self.regions = regions
        self.min_digits = min_digits

    def scan(self, text: str) -> list[Finding]:
        from phonenumbers import Leniency, PhoneNumberMatcher

        spans: set[tuple[int, int]] = set()
        for window in _PHONE_WINDOW.finditer(text):
            if sum(ch.isdigit() for ch in window.group()) < self.min_digits:
                continue
            # one character of context each side lets the matcher see brackets and signs
            lo, hi = max(0, window.start() - 1), min(len(text), window.end() + 1)
            chunk = text[lo:hi]
            for region in self._regions_for(chunk):
                for match in PhoneNumberMatcher(chunk, region, leniency=Leniency.VALID):
                    start, end = lo + match.start, lo + match.end
                    if not self._rejected(text, start, end, match.raw_string):
                        spans.add((start, end))
        return [Finding("phone", start, end, self.name) for start, end in sorted(spans)]

    def _regions_for(self, chunk: str) -> tuple[str, ...]:
        """The regions worth trying: numbers in national form outside the NANP (US, CA)
        start with a trunk prefix 0; ``+international`` numbers are found by any region."""
        if _TRUNK_ZERO.search(chunk):
            return self.regions
        return tuple(r for r in self.regions if r in _NANP) or self.regions[:1]

    def _rejected(self, text: str, start: int, end: int, raw: str) -> bool:
        """True for matches that are part of a longer identifier or have a non-phone shape."""
        digits = sum(ch.isdigit() for ch in raw)
        if "#" in raw or not self.min_digits <= digits <= 15:  # E.164 has at most 15 digits
            return True
        if _NOT_PHONE.fullmatch(raw.strip("()+ ")) or _DATE_START.match(raw):
            return True
        before = text[start - 1] if start > 0 else " "
        after = text[end] if end < len(text) else " "
        if before.isalnum() or before in "-/#_.:" or after.isalnum() or after in "_/:":
            return True
        if continues_code(text, start):
            return True
        # "... 12-34" right after: the number continues with a separator and digits
        return bool(re.match(r"[-.]\d", text[end : end + 2]))


# ---------------------------------------------------------------------------------------
# Payment cards
# ---------------------------------------------------------------------------------------

_CARD_PATTERN = re.compile(
    r"(?<![\w-])(?:"
    r"\d{4}(?P<s>[ -])\d{4}(?P=s)\d{4}(?P=s)\d{1,4}(?:(?P=s)\d{1,3})?"  # 4-4-4-x groups
    r"|\d{4}(?P<t>[ -])\d{6}(?P=t)\d{4,5}"  # Amex 4-6-5, Diners 4-6-4
    r"|\d{13,19}"  # compact
    r")(?![\w]|-\d)"
)


def card_issuer(digits: str) -> str | None:
    """The card network a digit string's prefix and length belong to, or None."""
    n = len(digits)
    p2, p3, p4, p6 = int(digits[:2]), int(digits[:3]), int(digits[:4]), int(digits[:6])
    if digits[0] == "4" and n in (13, 16, 19):
        return "visa"
    if (51 <= p2 <= 55 or 2221 <= p4 <= 2720) and n == 16:
        return "mastercard"
    if p2 in (34, 37) and n == 15:
        return "amex"
    if (p4 == 6011 or p2 == 65 or 644 <= p3 <= 649 or 622126 <= p6 <= 622925) and 16 <= n <= 19:
        return "discover"
    if 3528 <= p4 <= 3589 and 16 <= n <= 19:
        return "jcb"
    if (300 <= p3 <= 305 or p2 in (36, 38, 39)) and 14 <= n <= 19:
        return "diners"
    if p2 == 62 and 16 <= n <= 19:
        return "unionpay"
    if (p2 == 50 or 56 <= p2 <= 69) and 12 <= n <= 19:
        return "maestro"
    return None


class PaymentCardScanner:
    """Payment card numbers: Luhn-valid, with a known issuer prefix and length."""

    name = "payment_card"
    types: tuple[str, ...] = ("payment_card",)

    def scan(self, text: str) -> list[Finding]:
        from stdnum import luhn

        found = []
        for m in _CARD_PATTERN.finditer(text):
            digits = re.sub(r"\D", "", m.group())
            if continues_code(text, m.start()):
                continue
            if 13 <= len(digits) <= 19 and card_issuer(digits) and luhn.is_valid(digits):
                found.append(Finding("payment_card", m.start(), m.end(), self.name))
        return found


# ---------------------------------------------------------------------------------------
# IBAN
# ---------------------------------------------------------------------------------------

_IBAN_PATTERN = re.compile(
    r"(?<![\w-])[A-Z]{2}\d{2}(?:(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?)(?![\w-])"
    r"|(?<![\w-])[A-Z]{2}\d{2}[A-Z0-9]{11,30}(?![\w-])"
)


class IbanScanner:
    """IBANs, compact or spaced in fours, checked with ``stdnum.iban`` (mod 97 + structure)."""

    name = "iban"
    types: tuple[str, ...] = ("iban",)

    def scan(self, text: str) -> list[Finding]:
        from stdnum import iban

        found = []
        for m in _IBAN_PATTERN.finditer(text):
            candidate = m.group()
            # the pattern may have swallowed a following upper-case word: try shorter cuts
            cuts = [len(candidate)] + [i for i in range(len(candidate) - 1, 14, -1) if candidate[i] == " "]
            for cut in cuts:
                part = candidate[:cut]
                if iban.is_valid(part):
                    found.append(Finding("iban", m.start(), m.start() + cut, self.name))
                    break
        return found


# ---------------------------------------------------------------------------------------
# National ids
# ---------------------------------------------------------------------------------------

_SSN_PATTERN = re.compile(r"(?<![\w-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\w]|-\d)")
_SSN_COMPACT = re.compile(r"(?i)\b(?:ssn|social security(?: number| no\.?)?)\s*(?:#|no\.?|number)?\s*[:=]?\s*(\d{9})\b")
_NINO_PATTERN = re.compile(
    r"(?<![\w-])([A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]) ?(\d{2}) ?(\d{2}) ?(\d{2}) ?([A-D])(?![\w-])"
)
_NINO_BAD_PREFIXES = {"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"}


class NationalIdScanner:
    """US Social Security numbers (``stdnum.us.ssn`` rules) and UK National Insurance numbers."""

    name = "national_id"
    types: tuple[str, ...] = ("national_id",)

    def scan(self, text: str) -> list[Finding]:
        from stdnum.us import ssn

        found = []
        for m in _SSN_PATTERN.finditer(text):
            if ssn.is_valid(m.group(1) + m.group(3) + m.group(4)):
                found.append(Finding("national_id", m.start(), m.end(), self.name))
        for m in _SSN_COMPACT.finditer(text):
            if ssn.is_valid(m.group(1)):
                found.append(Finding("national_id", m.start(1), m.end(1), self.name))
        for m in _NINO_PATTERN.finditer(text):
            if m.group(1) not in _NINO_BAD_PREFIXES:
                found.append(Finding("national_id", m.start(), m.end(), self.name))
        return found


# ---------------------------------------------------------------------------------------
# IP addresses
# ---------------------------------------------------------------------------------------

_IPV4_PATTERN = re.compile(r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w]|\.\d|/\d)")
_IPV6_PATTERN = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{1,4}|:)?(?::[0-9A-Fa-f]{0,4}){2,7}"
    r"(?:(?<=:)\d{1,3}(?:\.\d{1,3}){3})?(?![\w:]|/\d|\.\d)"
)
_VERSION_BEFORE = re.compile(r"(?i)(?:\b(?:version|ver|release|build|v)\.?\s*)$")


class IpAddressScanner:
    """IPv4 and IPv6 host addresses (not CIDR networks, loopback, unspecified or versions)."""

    name = "ip_address"
    types: tuple[str, ...] = ("ip_address",)

    def scan(self, text: str) -> list[Finding]:
        found = []
        if "." in text:
            for m in _IPV4_PATTERN.finditer(text):
                if _VERSION_BEFORE.search(text[max(0, m.start() - 10) : m.start()]):
                    continue
                if self._reportable(m.group(), ipaddress.IPv4Address):
                    found.append(Finding("ip_address", m.start(), m.end(), self.name))
        if "::" in text or text.count(":") >= 7:
            for m in _IPV6_PATTERN.finditer(text):
                value = m.group()
                groups = [g for g in re.split(r"[:.]", value) if g]
                if len(groups) < 2 or not any(ch.isdigit() for ch in value):
                    continue
                if self._reportable(value, ipaddress.IPv6Address):
                    found.append(Finding("ip_address", m.start(), m.end(), self.name))
        return found

    @staticmethod
    def _reportable(value: str, kind: type) -> bool:
        try:
            address = kind(value)
        except ValueError:
            return False
        return not (address.is_unspecified or address.is_loopback)


# ---------------------------------------------------------------------------------------
# Secrets
# ---------------------------------------------------------------------------------------

_SECRET_PATTERNS = [
    re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b"),  # AWS access key id
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b"),  # GitHub tokens
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{22,255}\b"),  # GitHub fine-grained tokens
    re.compile(r"\bxox[baprs]-[A-Za-z0-9-]{10,250}"),  # Slack
    re.compile(r"\bsk-ant-[A-Za-z0-9_-]{20,250}"),  # Anthropic
    # OpenAI
    re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{20,250}"),
    re.compile(r"\bAIza[0-9A-Za-z_-]{35}"),  # Google API key
    re.compile(r"\b(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{16,250}\b"),  # Stripe
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),  # JWT
    re.compile(  # PEM private key block (to its END line, or to the end of the base64 body)
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
        r"(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|[A-Za-z0-9+/=\s]*)"
    ),
]
_ASSIGNMENT = re.compile(
    r"(?i)\b(?:password|passwd|pwd|secret|client[_-]?secret|api[_-]?key|apikey|access[_-]?key"
    r"|secret[_-]?key|auth[_-]?token|access[_-]?token|token)\b[\"']?\s*(?::=|=|:)\s*"
    r"(?P<q>[\"']?)(?P<value>[^\s\"'`,;]{8,256})(?P=q)"
)
_PLACEHOLDER = re.compile(
    r"(?i)your|example|changeme|placeholder|dummy|redacted|xxxx|\*\*\*|<|>|\$\{|\{\{|%\(|os\.environ|getenv"
)


def shannon_entropy(value: str) -> float:
    """Bits per character of ``value`` (0 for an empty string)."""
    if not value:
        return 0.0
    counts = Counter(value)
    return -sum(c / len(value) * math.log2(c / len(value)) for c in counts.values())


def looks_random(value: str) -> bool:
    """True for values that look like generated credentials rather than words or placeholders."""
    if len(value) < 8 or _PLACEHOLDER.search(value):
        return False
    classes = sum(bool(re.search(pattern, value)) for pattern in (r"[a-z]", r"[A-Z]", r"\d", r"[^A-Za-z0-9]"))
    return classes >= 2 and shannon_entropy(value) >= 3.0


class SecretScanner:
    """API keys, tokens, private keys and high-entropy credential assignments."""

    name = "secret"
    types: tuple[str, ...] = ("secret",)

    def scan(self, text: str) -> list[Finding]:
        found = []
        for pattern in _SECRET_PATTERNS:
            for m in pattern.finditer(text):
                found.append(Finding("secret", m.start(), m.end(), self.name))
        for m in _ASSIGNMENT.finditer(text):
            if looks_random(m.group("value")):
                found.append(Finding("secret", m.start("value"), m.end("value"), self.name))
        return found


def builtin_scanners() -> list[Scanner]:
    """One scanner per built-in type: email, phone, payment_card, iban, national_id,
    ip_address, secret."""
    return [
        EmailScanner(),
        PhoneScanner(),
        PaymentCardScanner(),
        IbanScanner(),
        NationalIdScanner(),
        IpAddressScanner(),
        SecretScanner(),
    ]


def scan_text(text: str, scanners: list[Scanner]) -> list[Finding]:
    """Every scanner's findings in ``text``, overlaps resolved (see :func:`resolve_overlaps`)."""
    findings: list[Finding] = []
    for scanner in scanners:
        findings.extend(scanner.scan(text))
    return resolve_overlaps(findings)
