"""Network addresses: IPv4 and IPv6 host addresses.

Found as the ``ipaddress`` module parses them. Not reported: networks in CIDR notation
(``10.0.0.0/8`` names a network, not a host), netmasks (``255.255.255.0``), the
unspecified and loopback addresses, section numbers (``Section 12.7.4.3``), version
strings (``1.2.3``, ``v1.2.3.4``, ``version 1.2.3.4``, ``requests 2.31.0.1`` and other quads
whose first part is one digit, without an address word such as "from" or "host" before
them), times and MAC addresses. The documentation networks (``192.0.2.0/24``,
``2001:db8::/32``) are reported: test data and examples use them for people's addresses.
"""

from __future__ import annotations

import ipaddress
import re

from polyadapt.governance.findings import Finding
from polyadapt.governance.textfacts import run_matches

_IPV4_PATTERN = re.compile(r"\d(?<![\w.]\d)\d{0,2}(?:\.\d{1,3}){3}(?![\w]|\.\d|/\d)")
#: ``(?<![\w:.])(?:[0-9A-Fa-f]{1,4}|:)?(?::[0-9A-Fa-f]{0,4}){2,7}`` and an embedded IPv4 tail,
#: opened with its first character (a hex digit or a colon, the look-behinds then say which of
#: the three ways it starts) so that the regex engine skips to those characters instead of
#: trying the pattern at every position: the same matches, tried in the same order.
_IPV6_PATTERN = re.compile(
    r"[0-9A-Fa-f:](?<![\w:.].)"
    r"(?:(?<=[0-9A-Fa-f])[0-9A-Fa-f]{0,3}(?::[0-9A-Fa-f]{0,4}){2,7}"
    r"|(?<=:)(?::[0-9A-Fa-f]{0,4}){2,7}"
    r"|(?<=:)[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){1,6})"
    r"(?:(?<=:)\d{1,3}(?:\.\d{1,3}){3})?(?![\w:]|/\d|\.\d)"
)
#: A version key or word right before: ``v1.2.3.4``, ``version 1.2.3.4``, ``APP_VERSION=``,
#: ``"version": "``, ``build:``.
#: What every IPv6 address not written with ``::`` has and clock times do not: a group of
#: 3-4 hex digits followed by two more groups.
#: Used as a test only (whether it matches anywhere): ``[0-9A-Fa-f]{3,4}:[0-9A-Fa-f]{1,4}:...``
#: written to open with the colon, rarer than hex digits, and look back for the group.
_IPV6_HINT = re.compile(r":(?<=[0-9A-Fa-f]{3}:)[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:")
_GROUP_SEPARATOR = re.compile(r"[:.]")
_VERSION_BEFORE = re.compile(r"(?i)(?:(?:version|\bver|release|build|\bv)_*\.?[\"']?\s*[:=]?|[=~<>!]=)\s*[\"']?$")
#: Words that say a dotted quad is an address: "from 8.8.4.4", "ip 1.2.3.4", "host: ...".
#: A document-section word right before: ``Section 12.7.4.3``, ``§ 2.1.4.10``, ``clause 10.2.1.4``.
_SECTION_BEFORE = re.compile(
    r"(?i)(?:\b(?:section|sect|sec|chapter|ch|clause|paragraph|para|article|art|figure|fig|table|annex|appendix"
    r"|rule|step|item)\.?|§)[ \t]*[\"'(]?$"
)
_ADDRESS_WORD = re.compile(
    r"(?i)\b(?:ip|ipv4|addr|address|host|server|client|from|to|via|gateway|dns|nameserver|peer|remote|src|dst"
    r"|source|destination|connect(?:ed|ing)?|ping|login|logged)\b[^\n\w]{0,4}$"
)


def _looks_like_version(text: str, start: int, value: str) -> bool:
    """A quad that starts with a one-digit part (``2.0.1.3``, ``2.31.0.1``) with no address
    word before it is a version: hosts in text are rarely in 1.0.0.0/5 without one."""
    if _VERSION_BEFORE.search(text[max(0, start - 16) : start]):
        return True
    if len(value.split(".")[0]) == 1:
        return not _ADDRESS_WORD.search(text[max(0, start - 24) : start])
    return False


def _is_netmask(value: str) -> bool:
    """``255.255.255.0`` and the like: ones then zeros, read as a mask, not a host."""
    if not value.startswith("255."):
        return False
    return "01" not in "".join(f"{int(part):08b}" for part in value.split("."))


class IpAddressScanner:
    """IPv4 and IPv6 host addresses (not CIDR networks, loopback, unspecified or versions)."""

    name = "ip_address"
    types: tuple[str, ...] = ("ip_address",)

    def scan(self, text: str) -> list[Finding]:
        found = []
        if "." in text:
            # ``1.2.3.4``: 7 characters and 3 dots in one run
            for m in run_matches(_IPV4_PATTERN, text, 7, needs=(".", 3)):
                if _looks_like_version(text, m.start(), m.group()) or _is_netmask(m.group()):
                    continue
                if _SECTION_BEFORE.search(text, max(0, m.start() - 16), m.start()):
                    continue
                if self._reportable(m.group(), ipaddress.IPv4Address):
                    found.append(Finding("ip_address", m.start(), m.end(), self.name))
        if "::" in text or _IPV6_HINT.search(text):
            for m in _IPV6_PATTERN.finditer(text):
                value = m.group()
                groups = [g for g in _GROUP_SEPARATOR.split(value) if g]
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
