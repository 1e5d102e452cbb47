"""Findings in program source and configuration files: what is a secret or PII there.

The pattern scanners read every text the same way; a dataset whose records are source
files (:attr:`polyadapt.modalities.records.Origins.content` is ``"source"``) is scanned with
a :class:`ScanContext`, and :func:`source_findings` then removes what the source rules say
is not a finding. Prose (any other content, and serving) is untouched by this module.

The rules:

- a secret is a literal, never an expression or a name: in a programming language
  (Python, JavaScript/TypeScript, Go, Java, Ruby, ...) a value written without quotes that
  reads as a name, an attribute, a call or a subscript (``password = dest.password``,
  ``token = os.environ["TOKEN"]``, ``secret=get_secret()``) is code, not a credential. In
  shell, ``.env``, YAML, INI and TOML files an unquoted value *is* a literal, so there only
  the scanner's own rules apply. A provider token (``ghp_...``, ``AKIA...``, a private key)
  is always kept, quoted or not;
- a value that only names itself (``somepassword``, ``keyfile_password``, ``user:pass``,
  Basic ``Zm9vOmJhcg==`` for ``foo:bar``) is a placeholder;
- reserved documentation values are not PII: RFC 2606 / RFC 6761 domains (``example.com``,
  ``.org``, ``.net``, ``*.test``, ``*.example``, ``*.invalid``, ``*.localhost``) in emails and
  as the host of URL credentials; RFC 5737 (``192.0.2.0/24``, ``198.51.100.0/24``,
  ``203.0.113.0/24``), RFC 3849 (``2001:db8::/32``) and RFC 9637 (``3fff::/20``) addresses;
  reserved IPv4 (``240.0.0.0/4``) and multicast; IPv6 addresses outside the blocks IANA has
  allocated (``1080::8:800:200C:417A``, ``::192.9.5.5`` and the other RFC 2732 examples route
  to no one); well-known public DNS resolvers; North American ``555-0100`` to ``555-0199``;
- obvious digit runs are not phone numbers (``0123456789``, ``1111111111``), nor a version
  with its release date (``0.9.3 (2012-01-18``);
- private addresses (RFC 1918, CGNAT, link-local, unique-local) are not PII unless the
  policy's ``source.private_addresses`` is ``scan``;
- an email preceded by ``user:`` or followed by ``:port`` is part of a URL, not a mailbox;
- a name or e-mail address in a copyright notice or in a file such as AUTHORS, LICENSE or
  NOTICE, and a name in an author or maintainer line, is attribution, which licences such as
  BSD and MIT require to stay as it is (the holders are recorded in lineage), unless the
  policy's ``source.attribution`` is ``scan``; an author line's e-mail address is contact data
  and follows the policy.

One rule adds findings: a literal default of a secret-named environment lookup
(``os.environ.get("DJANGO_SECRET_KEY", "<value>")``, ``process.env.API_TOKEN || "<value>"``)
is a secret that no assignment names.

Test files and fixtures (:func:`is_test_path`) follow the policy's ``source.test_files``:
``redact`` (scanned like any file), ``skip`` (left out of the data) or ``keep`` (kept as
they are: their PII findings are allowed; a secret still follows ``pii.secret``).
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from polyadapt.governance.findings import Finding

if TYPE_CHECKING:  # pragma: no cover
    from polyadapt.modalities.records import Dataset

__all__ = ["ScanContext", "is_test_path", "record_context", "reserved_domain", "source_findings"]

#: The content kind of records that are program source and configuration files.
SOURCE = "source"


@dataclass(frozen=True)
class ScanContext:
    """What a scanned text is: ``content`` (``"prose"`` or ``"source"``) and, for a file, its path."""

    content: str = "prose"
    path: str | None = None

    @property
    def is_source(self) -> bool:
        """True for program source and configuration files."""
        return self.content == SOURCE

    @property
    def test_file(self) -> bool:
        """True for a source file that is a test or a fixture (see :func:`is_test_path`)."""
        return self.is_source and self.path is not None and is_test_path(self.path)

    @property
    def names_are_code(self) -> bool:
        """True where an unquoted value is an expression (a programming language), not a literal."""
        if self.path is None:
            return False
        return PurePosixPath(self.path.lower()).suffix in _CODE_SUFFIXES


# ---------------------------------------------------------------------------------------
# Test files
# ---------------------------------------------------------------------------------------

_TEST_FOLDERS = frozenset(
    "test tests testing __tests__ spec specs fixtures fixture __fixtures__ testdata test_data __mocks__ mocks".split()
)
_TEST_NAME = re.compile(
    r"test_.+\.py|.+_tests?\.(?:py|go|rb|rs|exs?|cpp|cc|c)|conftest\.py"
    r"|.+\.(?:test|spec)\.[cm]?[jt]sx?|.+(?:Test|Tests|IT|Spec)\.(?:java|kt|scala|cs|swift|groovy)|.+_spec\.rb"
)


def is_test_path(path: str) -> bool:
    """True for tests and fixtures: a folder such as ``tests/``, ``fixtures/``, ``testdata/``,
    ``__tests__/``, or a name such as ``test_*.py``, ``*_test.go``, ``*.spec.ts``, ``FooTest.java``."""
    parts = PurePosixPath(path.replace("\\", "/")).parts
    if any(part.lower() in _TEST_FOLDERS for part in parts[:-1]):
        return True
    return bool(parts) and _TEST_NAME.fullmatch(parts[-1]) is not None


# ---------------------------------------------------------------------------------------
# Reserved documentation values
# ---------------------------------------------------------------------------------------

_RESERVED_DOMAINS = ("example.com", "example.org", "example.net", "example.edu")
_RESERVED_TLDS = ("test", "example", "invalid", "localhost", "local")


def reserved_domain(domain: str) -> bool:
    """True for RFC 2606 / RFC 6761 names: ``example.com`` and its subdomains, ``*.test``, ..."""
    domain = domain.lower().rstrip(".")
    if domain in _RESERVED_TLDS or domain.rsplit(".", 1)[-1] in _RESERVED_TLDS:
        return True
    return any(domain == name or domain.endswith("." + name) for name in _RESERVED_DOMAINS)


_DOCUMENTATION_NETWORKS = tuple(
    ipaddress.ip_network(net)
    for net in (
        "192.0.2.0/24",  # RFC 5737 TEST-NET-1
        "198.51.100.0/24",  # TEST-NET-2
        "203.0.113.0/24",  # TEST-NET-3
        "233.252.0.0/24",  # RFC 5771 MCAST-TEST-NET
        "2001:db8::/32",  # RFC 3849
        "3fff::/20",  # RFC 9637
        "3ffe::/16",  # the 6bone test network, returned in 2006
    )
)
#: IPv6 blocks IANA has allocated (global unicast to the registries, 6to4, unique- and
#: link-local, multicast); an address outside them routes to no one.
_IPV6_ALLOCATED = tuple(
    ipaddress.ip_network(net)
    for net in (
        "2001::/16",
        "2002::/16",
        "2003::/18",
        "2400::/12",
        "2600::/12",
        "2610::/23",
        "2620::/23",
        "2630::/12",
        "2800::/12",
        "2a00::/12",
        "2c00::/12",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
    )
)
_PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(net)
    for net in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "169.254.0.0/16",
        "fc00::/7",
        "fe80::/10",
    )
)
#: Public resolvers named in configuration everywhere: a service, not a person.
_PUBLIC_RESOLVERS = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "1.1.1.1",
        "1.0.0.1",
        "8.8.8.8",
        "8.8.4.4",
        "9.9.9.9",
        "149.112.112.112",
        "208.67.222.222",
        "208.67.220.220",
        "2606:4700:4700::1111",
        "2606:4700:4700::1001",
        "2001:4860:4860::8888",
        "2001:4860:4860::8844",
    )
)


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(value.split("%", 1)[0])
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped if mapped is not None else address


def _not_a_host(value: str, private_allowed: bool) -> bool:
    """True for an address that is documentation, reserved, unallocated, a resolver, or (when
    ``private_allowed``) private: nobody's address."""
    address = _address(value)
    if address is None:
        return False
    if address in _PUBLIC_RESOLVERS or any(address in net for net in _DOCUMENTATION_NETWORKS):
        return True
    if private_allowed and any(address in net for net in _PRIVATE_NETWORKS):
        return True
    if address.version == 4:
        return address.is_reserved or address.is_multicast
    return not any(address in net for net in _IPV6_ALLOCATED)


# ---------------------------------------------------------------------------------------
# Phones
# ---------------------------------------------------------------------------------------

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ASCENDING = "01234567890123456789"
_DESCENDING = _ASCENDING[::-1]


def _not_a_phone(value: str) -> bool:
    """A digit run (``0123456789``, ``1111111111``), a fictional ``555-01xx`` number, or a date."""
    digits = re.sub(r"\D", "", value)
    if _ISO_DATE.search(value) or len(set(digits)) <= 2:
        return True
    if any(digits[i : i + 7] in _ASCENDING or digits[i : i + 7] in _DESCENDING for i in range(len(digits) - 6)):
        return True
    national = digits[1:] if len(digits) == 11 and digits.startswith("1") else digits
    return len(national) == 10 and national[3:6] == "555" and national[6:8] == "01"


# ---------------------------------------------------------------------------------------
# Secrets
# ---------------------------------------------------------------------------------------

#: Suffixes of programming languages, where an unquoted value is an expression.
_CODE_SUFFIXES = frozenset(
    """.py .pyi .pyx .js .jsx .mjs .cjs .ts .tsx .mts .cts .go .java .kt .kts .scala .groovy .rb .php .rs .c .h
    .cc .cpp .cxx .hpp .hh .cs .fs .swift .m .mm .lua .r .jl .dart .ex .exs .erl .hs .ml .clj .vue .svelte""".split()
)
_EXPRESSION = re.compile(
    r"[A-Za-z_$][\w$]*(?:(?:\.|->|::|\?\.)[A-Za-z_$][\w$]*)*(?:\(.*|\[.*)?|[A-Za-z_$][\w$.]*\(.*|.*\)"
)
_IDENTIFIER = re.compile(r"[A-Za-z_$][\w$]*")
_COMMENT = re.compile(r"^\s*(?:#|//|/?\*|--)|\s(?:#|//)\s")
_SELF_NAMING = re.compile(r"pass|pwd|secret|token|credential|apikey")
_PLACEHOLDER_PASSWORDS = frozenset("pass password passwd pwd secret foo bar baz test user qux pw".split())
_URL_HOST = re.compile(r"@(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+))")


def _self_naming(value: str) -> bool:
    """``somepassword``, ``keyfile_password``, ``user:pass``, ``pass%20pass``: letters that name a secret."""
    plain = re.sub(r"%[0-9A-Fa-f]{2}", "", value).lower()
    letters = re.sub(r"[^a-z]", "", plain)
    if len(letters) < len(re.sub(r"[\W_]", "", plain)):  # digits: may be a real password
        return False
    return bool(letters) and (_SELF_NAMING.search(letters) is not None or letters in _PLACEHOLDER_PASSWORDS)


def _placeholder_pair(value: str) -> bool:
    """A Basic-auth base64 ``user:password`` whose password is a placeholder (``foo:bar``)."""
    try:
        decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return False
    user, sep, password = decoded.partition(":")
    return bool(sep) and (_self_naming(password) or password.lower() in _PLACEHOLDER_PASSWORDS)


@functools.lru_cache(maxsize=4096)
def _token_format(value: str) -> bool:
    """True when ``value`` is a secret on its own (a provider token, a private key), with no key before it."""
    from polyadapt.governance.secrets import secret_spans

    return bool(secret_spans(value))


def _not_a_secret(text: str, finding: Finding, context: ScanContext) -> bool:
    value = text[finding.start : finding.end]
    if _token_format(value):
        return False
    if _self_naming(value) or _placeholder_pair(value):
        return True
    after = text[finding.end : finding.end + 300]
    if after.startswith("@"):  # URL credentials: documentation when the host is
        host = _URL_HOST.match(after)
        name = host.group(1) or host.group(2) if host else ""
        return bool(name) and (reserved_domain(name) or _not_a_host(name, private_allowed=False))
    before = text[finding.start - 1] if finding.start else ""
    if not context.names_are_code or before in "'\"`" or _EXPRESSION.fullmatch(value) is None:
        return False
    if _IDENTIFIER.fullmatch(value) and any(ch.isdigit() for ch in value):
        return False  # ``hunter22``: shaped like a name, but names of variables rarely hold digits
    line = text[text.rfind("\n", 0, finding.start) + 1 : finding.start]
    return _COMMENT.search(line) is None  # in a comment, an unquoted value is prose: a literal


#: A literal default of a secret-named environment lookup: ``os.environ.get("API_TOKEN", "<value>")``,
#: ``getenv("DB_PASSWORD", '<value>')``, ``process.env.API_KEY || "<value>"``, ``ENV.fetch("X", "<value>")``.
_ENV_DEFAULT = re.compile(
    r"(?:\b(?:getenv|environ\.get|ENV\.fetch|env)\(\s*(?P<q1>['\"])(?P<k1>[A-Za-z_][\w.-]{0,80})(?P=q1)\s*,\s*"
    r"|process\.env\.(?P<k2>[A-Za-z_]\w{0,80})\s*(?:\|\||\?\?)\s*)"
    r"(?P<q>['\"`])(?P<v>[^'\"`\s]{6,300})(?P=q)"
)
_SECRET_KEY_NAME = re.compile(
    r"(?i)(?:pass(?:word|wd|phrase)?|pwd|secret|token|(?:api|private|secret|signing|access|auth)_?key|credentials?)$"
)


def _env_defaults(text: str) -> list[Finding]:
    """Literal defaults of secret-named environment lookups: the scanner sees no assignment there."""
    if "env" not in text and "ENV" not in text:
        return []
    from polyadapt.governance.secrets import looks_random

    found = []
    for m in _ENV_DEFAULT.finditer(text):
        key, value = m.group("k1") or m.group("k2"), m.group("v")
        name = _SECRET_KEY_NAME.search(key.replace("-", "_"))
        if name is None or _self_naming(value) or "${" in value or "<" in value:
            continue
        password = name.group().lower().startswith(("pass", "pwd"))
        if looks_random(value) or (password and len(value) >= 8 and not value.isalpha()):
            found.append(Finding("secret", m.start("v"), m.end("v"), "secret"))
    return found


# ---------------------------------------------------------------------------------------
# The filter
# ---------------------------------------------------------------------------------------

_USERINFO_BEFORE = re.compile(r"([A-Za-z][\w.%+-]*):$")


_PORT_AFTER = re.compile(r":\d{1,5}\b")


def _not_an_email(text: str, finding: Finding) -> bool:
    value = text[finding.start : finding.end]
    if reserved_domain(value.rpartition("@")[2]) or _PORT_AFTER.match(text, finding.end):
        return True  # a documentation domain, or ``user@host:port`` (a URL's authority)
    before = _USERINFO_BEFORE.search(text[max(0, finding.start - 80) : finding.start])
    return before is not None and before.group(1).lower() not in ("mailto", "email", "e-mail", "mail")


#: Files that exist to name people: their names and addresses are attribution.
_ATTRIBUTION_FILE = re.compile(
    r"(?i)(?:^|/)(?:authors|contributors|credits|maintainers|thanks|license|licence|copying|copyright|notice)"
    r"(?:[._-][\w.-]*)?$"
)
#: A copyright notice: the licence requires it to stay as it is, names and addresses included.
_NOTICE_LINE = re.compile(r"(?i)copyright|\(c\)|©")
#: An author, maintainer or credits line ("Credit to …", "Hat tip to …"): its names attribute
#: the work; its e-mail addresses are contact data and follow the policy.
_AUTHOR_LINE = re.compile(
    r"(?i)\bauthors?\b|__author__|__maintainer__|__credits__|\bmaintainers?\b|"
    r"\b(?:written|contributed|created|originally|maintained)\s+by\b|"
    r"\bcredit(?:s|ed)?\s+(?:to|goes)\b|\bthanks\s+to\b|\bhat\s+tip\b"
)


def _attribution(text: str, finding: Finding, context: ScanContext) -> bool:
    """True for a name or e-mail address in a copyright notice or a file such as AUTHORS or
    LICENSE (licences such as BSD and MIT require the notice to stay as it is), or a name in
    an author line."""
    if finding.type not in ("person", "email"):
        return False
    if context.path and _ATTRIBUTION_FILE.search(context.path):
        return True
    line_start = text.rfind("\n", 0, finding.start) + 1
    line_end = text.find("\n", finding.end)
    line = text[line_start : line_end if line_end >= 0 else len(text)]
    if _NOTICE_LINE.search(line):
        return True
    return finding.type == "person" and _AUTHOR_LINE.search(line) is not None


def source_findings(
    text: str,
    findings: list[Finding],
    context: ScanContext,
    *,
    private_addresses: str = "allow",
    secrets: bool = True,
    attribution: str = "keep",
) -> list[Finding]:
    """``findings`` in the source file ``text`` less those the source rules say are none, plus
    literal defaults of secret-named environment lookups (see the module docs);
    ``private_addresses`` is the policy's ``allow`` or ``scan``; ``secrets`` False (no secret
    scanner runs) adds none; ``attribution`` ``keep`` leaves names and addresses in copyright
    notices and author lines, ``scan`` treats them like any finding."""
    if not context.is_source:
        return findings
    kept: list[Finding] = _env_defaults(text) if secrets else []
    dropped: list[Finding] = []
    for finding in findings:
        value = text[finding.start : finding.end]
        if attribution == "keep" and _attribution(text, finding, context):
            drop = True
        elif finding.type == "secret":
            drop = _not_a_secret(text, finding, context)
        elif finding.type == "email":
            drop = _not_an_email(text, finding)
        elif finding.type == "ip_address":
            drop = _not_a_host(value, private_allowed=private_addresses == "allow")
        elif finding.type == "phone":
            drop = _not_a_phone(value)
        else:
            drop = False
        (dropped if drop else kept).append(finding)
    # ``::101.45.75.219`` dropped as an IPv6 address must not come back as the IPv4 address inside it
    return [f for f in kept if not any(d.start <= f.start and f.end <= d.end and d.type == f.type for d in dropped)]


def record_context(dataset: Dataset, index: int) -> ScanContext | None:
    """The scan context of record ``index`` of ``dataset``: a source file's path when the
    dataset's :attr:`~polyadapt.modalities.records.Origins.content` is ``"source"``, else None (prose)."""
    origins = dataset.origins
    if origins is None or origins.content != SOURCE:
        return None
    path = dataset.records[index].get(origins.field)
    return ScanContext(SOURCE, path if isinstance(path, str) else None)
