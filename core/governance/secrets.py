"""Secret scanner: credentials in prose, config files, code, shell lines and logs.

Engine: hand-written, precompiled rules, not a detect-secrets wrapper. detect-secrets 1.5.0
(installed for the benchmark) scored recall .82 / precision .79 on the held-out corpus: its
keyword plugin flags variable references (``password = dest.password``), costs several regexes
and a filter chain per line, and reports lines rather than value spans. gitleaks' rule set is the
reference for token formats (prefixes, lengths, entropy floors, allowlists); the rules below
follow it, add a key-name grammar for assignments, and gate every pattern on a cheap substring
test (``str.find``/``in``; CPython's case-insensitive regexes are several times slower, so
those run on the lower-cased text), so a 300-character record costs tens of microseconds.

Only the credential value is a finding: ``AWS_SECRET_ACCESS_KEY=<value>``, ``"client_secret":
"<value>"``, ``postgres://user:<value>@host/db``; redaction keeps the key name. What is found:

- token formats, checked for a random-looking body (no ``xxxx`` runs, no ``abcdefgh`` sequences,
  no placeholder words, enough entropy): AWS access key ids (AKIA/ASIA/ABIA/ACCA/A3T), GitHub
  (ghp_/gho_/ghu_/ghs_/ghr_/github_pat_), GitLab (glpat-, gldt-, glrt-, glptt-, glcbt-, glft-,
  glimt-, glagent-, gloas-, glsoat-, glffct-, GR1348941), Slack (xoxb/xoxp/xoxa/xoxr/xoxs/xoxe,
  xapp-, hooks.slack.com webhooks), npm (npm_), PyPI upload tokens, Hugging Face (hf_, api_org_),
  Stripe (sk_/rk_ live/test/prod, whsec_), OpenAI (sk-, sk-proj-, sk-svcacct-, sk-admin-),
  Anthropic (sk-ant-), Google (AIza API keys, GOCSPX- OAuth secrets, ya29. access tokens),
  JWTs, PEM private-key blocks (RSA/EC/DSA/OPENSSH/PGP/ENCRYPTED/PKCS8, also JSON-escaped),
  Twilio (SK + 32 hex), SendGrid (SG.), Mailchimp (32 hex + -usNN), Mailgun (key-), Discord bot
  tokens and webhooks, Telegram bot tokens, DigitalOcean (dop_/doo_/dor_v1_), Shopify (shpat_/
  shpca_/shppa_/shpss_), Square (sq0atp-/sq0csp-/EAAA), Heroku (HRKU-AA, or a UUID near
  "heroku"), Azure (AccountKey=/SharedAccessKey= in connection strings, SAS ``sig=``, AD client
  secrets with ``Q~``); and the vendor formats of :mod:`~polyadapt.governance.token_formats`
  (about seventy more: AI providers, CI/CD, registries, observability, payments, cloud platforms);
- context rules: AWS secret access keys (40 base64 characters near "aws" and "secret"), GCP
  service-account ``private_key_id``, ``Authorization:``/``Bearer`` header values, passwords in
  URLs (``scheme://user:password@host``), ``curl -u user:password``, ``mysql -p...``,
  ``sshpass -p ...``, ``docker login -p ...``, SQL ``IDENTIFIED BY '...'`` and ``WITH PASSWORD '...'``, ``.netrc``
  passwords, XML ``<password>...</password>`` and ``<add key="Password" value="..."/>``, and
  ``my password is <value>`` in prose when the value is quoted or shaped like a password;
- assignments in env/YAML/JSON/INI/TOML/code/CLI form (``DB_PASSWORD=...``, ``export
  API_TOKEN=...``, ``"client_secret": "..."``, ``password: ...``, ``--password=...``,
  ``--token ...``, ``$pass = '...'``, ``'password' => '...'``, ``**Password:** ...``): the key is split into words
  (``AWS_SECRET_ACCESS_KEY`` -> aws/secret/access/key, ``clientSecret`` -> client/secret) and must
  end in a secret word (password, passwd, pwd, pass, passphrase, secret, token, api key, private
  key, credentials, auth, ``<something>_key``), optionally followed by a harmless word
  (``_prod``, ``_value``, ``_base``), or by other words when the value looks generated and none of
  them describes the secret (``VERY_SECRET_TOO`` yes; ``token_type``, ``secret_name_id`` no);
  a value equal to its key (``PASS = "PASS"``, an enum) is a name; ``password_file``, ``token_url``, ``secret_name``,
  ``key_id``, ``public_key``, ``max_tokens``, ``eos_token``, ``next_page_token`` are not
  secret keys. A password-like key accepts a short human password (``hunter2``,
  ``Summer2024!``); a token-like key needs a random-looking value (:func:`looks_random`).

Not reported: values on a line marked ``# pragma: allowlist secret`` (detect-secrets) or
``gitleaks:allow`` (or the line after ``# pragma: allowlist nextline secret``);
placeholders (``<your-token>``, ``changeme``, ``xxxxx``, ``${VAR}``,
``{{ var }}``, ``%(x)s``, ``****``, ``example``, ``dummy``, ``REDACTED``), references in code
(``password = dest.password``, ``token = get_token()``, ``secret_key=settings.SECRET_KEY``,
``os.environ[...]``, ``process.env.X``, ``password=None``, ``password: str``, a keyword argument
that passes a variable), file paths and URLs as values, git remotes without a password, a plain
word after ``password:`` or ``password is`` in prose, defaults (``guest:guest@``, ``root``,
``admin``), password hashes under ``hashed_password``, and the AWS documentation keys
(``...EXAMPLE``). GitHub and npm tokens carry a CRC32 in their last six characters, but only
third-party code documents how to check it, and outside corpora plant random bodies, so a
checksum is not required.
"""

from __future__ import annotations

import base64
import binascii
import functools
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from polyadapt.governance.findings import Finding
from polyadapt.governance.needles import NeedleSet
from polyadapt.governance.textfacts import first_at, lowered, plain_case

__all__ = ["SecretScanner", "looks_random", "shannon_entropy"]

# ---------------------------------------------------------------------------------------
# Value checks shared by the rules
# ---------------------------------------------------------------------------------------

#: Substrings that mark a documentation placeholder, a template or a masked value (matched on the
#: lower-cased value: a case-insensitive regex costs several times more in CPython).
_PLACEHOLDER_LOWER = re.compile(
    r"your|example|sample|changeme|change[_-]me|placeholder|dummy|redacted|\*\*\*|\.\.\.|…"
    r"|<|>|\$\{|\{\{|\{%|%\(|%\{|%s\b|os\.environ|getenv|process\.env|insert[_-]?(?:here|key|token)"
    r"|replace[_-]?(?:me|with|this)|[_-]here\b|goes[_-]here|fixme|todo|fake|not[_-]?a[_-]?real"
)
_WINDOWS_VAR = re.compile(r"%[A-Z_][A-Z0-9_]*%")  # %DB_PASSWORD%
#: Whole values that stand for "a password goes here" rather than being one.
_PLACEHOLDER_WORDS = frozenset(
    """password passwd pass pwd passphrase secret secrets token apikey api_key key credential credentials
    changeme none null nil true false undefined empty unset required optional default string str bytes
    int secretstr value values hidden masked filtered removed omitted scrubbed censored private
    test testing foo bar baz foobar qux mypassword mysecret mytoken yourpassword na n/a tbd tbc
    notset not_set admin root user username guest""".split()
)
_RUN = re.compile(r"(.)\1{5}")  # six equal characters in a row: a mask or a placeholder
_CLASSES = (re.compile(r"[a-z]"), re.compile(r"[A-Z]"), re.compile(r"\d"), re.compile(r"[^A-Za-z0-9]"))
_WORDISH = re.compile(r"[a-z]+(?:[_.\-][a-z]+)*|[A-Z]+(?:[_.\-][A-Z]+)*|(?:[A-Z][a-z]+)+")
_DOTTED_REF = re.compile(r"[A-Za-z_$][\w$]*(?:(?:\.|->|::)[A-Za-z_$][\w$]*)+(?:\(\))?")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PATH_START = re.compile(r"~?/|\.{1,2}/|[A-Za-z]:\\")
_FILE_NAME = re.compile(r".*\.(?:pem|key|crt|cer|p12|pfx|jks|json|ya?ml|txt|env|cfg|ini|conf)")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{1,20}://")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}")
_HEX = re.compile(r"[0-9a-fA-F]+")
_SECRET_WORD_IN = re.compile(r"(?i)pass|pwd|secret|token|key|cred|auth")
_CODE_WORDS = frozenset(
    "none null nil true false undefined str string bytes int secretstr optional any required self this".split()
)


#: ``c * log2(c)`` for the character counts of values up to 511 characters.
_C_LOG2_C = [0.0] + [c * math.log2(c) for c in range(1, 512)]


def shannon_entropy(value: str) -> float:
    """Bits per character of ``value`` (0 for an empty string).

    Generated keys sit near log2 of their alphabet (about 4-6 bits); words and masks sit lower.
    """
    if not value:
        return 0.0
    size = len(value)
    counts = Counter(value).values()
    # H = log2(n) - sum(c log2 c) / n, the c log2 c looked up: a generator over the counts
    # was a fifth of the secret scanner's time
    if size < len(_C_LOG2_C):
        spread = sum(map(_C_LOG2_C.__getitem__, counts))
    else:
        spread = sum(c * math.log2(c) for c in counts)
    return max(0.0, math.log2(size) - spread / size)


def _char_classes(value: str) -> int:
    return sum(1 for pattern in _CLASSES if pattern.search(value))


@functools.lru_cache(maxsize=4096)  # _value_ok asks, then looks_random asks again of the same value
def _placeholder(value: str) -> bool:
    """True for ``<your-token>``, ``${VAR}``, ``xxxx``, ``****``, ``changeme`` and the like."""
    return (
        _PLACEHOLDER_LOWER.search(value.lower()) is not None
        or "xxxx" in value  # case-sensitive: "xXXX" turns up in random base64 bodies
        or "XXXX" in value
        or ("%" in value and _WINDOWS_VAR.search(value) is not None)
    )


#: Eight characters in alphabet order (``abcdefgh``, ``12345678``): a made-up value, never a generated one.
_SEQUENCE = re.compile(
    "|".join(
        alphabet[i : i + 8]
        for alphabet in ("0123456789", "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
        for i in range(len(alphabet) - 7)
    )
)


def _has_sequence(value: str) -> bool:
    return _SEQUENCE.search(value) is not None


def _random_body(body: str, min_entropy: float = 2.0) -> bool:
    """The random part of a token format: no placeholder, mask, run or sequence, and some entropy."""
    return not (_placeholder(body) or _RUN.search(body) or _has_sequence(body) or shannon_entropy(body) < min_entropy)


def looks_random(value: str) -> bool:
    """True for values that look like generated credentials rather than words, names or placeholders.

    Used where only the key says "secret": at least 8 characters, two character classes, no
    placeholder, mask or sequence, not a word or identifier (``my_secret_value``, ``ThisIsIt``),
    and entropy near what a random string of that length reaches.
    """
    if len(value) < 8 or _placeholder(value) or _RUN.search(value) or _has_sequence(value):
        return False
    if value.lower() in _PLACEHOLDER_WORDS or _WORDISH.fullmatch(value):
        return False
    if _char_classes(value) < 2:
        return False
    # n characters carry at most log2(n) bits each; the floors keep 99% of random strings
    if _HEX.fullmatch(value):
        return shannon_entropy(value) >= min(2.5, math.log2(len(value)) - 1.5)
    return shannon_entropy(value) >= min(3.0, math.log2(len(value)) - 0.8)


# ---------------------------------------------------------------------------------------
# Token formats and context rules: a regex, the needles that gate it, a check on the value
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rule:
    """One pattern: run only when a needle occurs; report group ``v`` (or the whole match)."""

    name: str
    needles: tuple[str, ...]
    pattern: re.Pattern[str]
    check: Callable[[str], bool]
    #: compare needles with the lower-cased text
    fold: bool = False
    #: a cheaper pattern that must match first (for formats without a fixed prefix)
    gate: re.Pattern[str] | None = None
    #: for a case-insensitive pattern whose every match holds a needle: the most characters a
    #: match starts before it, so the search starts there, not at the top of the text
    lead: int | None = None


def _body_after(prefix: re.Pattern[str], min_entropy: float = 2.0) -> Callable[[str], bool]:
    """A check on what follows the format's fixed prefix."""

    def check(value: str) -> bool:
        return _random_body(prefix.sub("", value, count=1), min_entropy)

    return check


def _aws_key_id(value: str) -> bool:
    return not value.endswith("EXAMPLE") and _random_body(value[4:])


def _slack(value: str) -> bool:
    # workspace and user ids are numbers; the last dash-separated part is the random one
    parts = value.rstrip("-").split("-")
    tail = parts[-1]
    has_id = any(part.isdigit() and len(part) >= 5 for part in parts[1:-1])
    return (
        has_id
        and len(tail) >= 12
        and _char_classes(tail) >= 2
        and not _WORDISH.fullmatch(tail)
        and _random_body(tail)
        and not _placeholder(value)
    )


def _webhook_path(value: str) -> bool:
    path = value.split(".com/", 1)[-1]
    return not (_placeholder(path) or _RUN.search(path) or _has_sequence(path))


def _mixed_case(value: str) -> bool:
    body = value.split("_", 2)[-1] if value.startswith("api_org_") else value[3:]
    return bool(re.search(r"[a-z]", body) and re.search(r"[A-Z]", body)) and _random_body(body)


def _openai(value: str) -> bool:
    body = re.sub(r"^sk-(?:proj-|svcacct-|admin-|None-)?", "", value)
    return bool(re.search(r"\d", body) and re.search(r"[A-Za-z]", body)) and _random_body(body, 2.5)


def _hex_mixed(value: str) -> bool:
    body = value[2:]
    return bool(re.search(r"\d", body) and re.search(r"[A-Fa-f]", body)) and _random_body(body)


def _pem(value: str) -> bool:
    lines = re.split(r"\\[nr]|[\r\n]", value)
    body = "".join(line for line in lines if "-----" not in line and ":" not in line)
    placeholder = re.search(r"(?i)your|example|placeholder|redacted|<|>|(?-i:xxxx|XXXX)", body)
    return len(re.findall(r"[A-Za-z0-9+/=]", body)) >= 16 and not placeholder


def _context_value(value: str) -> bool:
    return _random_body(value, 3.0) and _char_classes(value) >= 2


def _discord(value: str) -> bool:
    return _char_classes(value) >= 3 and _random_body(value.split(".", 1)[0], 3.0)


def _telegram(value: str) -> bool:
    return _random_body(value.split(":", 1)[1], 3.0) and _char_classes(value) >= 3


def _header_value(value: str) -> bool:
    return (looks_random(value) or _basic_pair(value)) and not _DOTTED_REF.fullmatch(value)


def _basic_pair(value: str) -> bool:
    """A base64 ``user:password`` pair, as sent in ``Authorization: Basic``."""
    try:
        decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return False
    user, sep, password = decoded.partition(":")
    return bool(sep and user and password.isprintable() and len(password) >= 4)


_B62 = "A-Za-z0-9"
# A pattern opens with its fixed prefix where it has one (``\bnpm_`` is written
# ``npm_(?<!\wnpm_)``: the same matches), so that the regex engine searches for that prefix
# instead of trying the pattern at every position.
_END = r"(?![A-Za-z0-9_-])"  # the token does not continue
_RULES: tuple[_Rule, ...] = (
    _Rule(
        "aws-access-key-id",
        ("AKIA", "ASIA", "ABIA", "ACCA", "A3T"),
        re.compile(r"A(?<!\wA)(?:3T[A-Z0-9]|KIA|SIA|BIA|CCA)[A-Z0-9]{16}\b"),
        _aws_key_id,
    ),
    _Rule(
        "github",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
        re.compile(rf"gh(?<!\wgh)[pousr]_[{_B62}]{{36,251}}\b"),
        _body_after(re.compile(r"^gh._")),
    ),
    _Rule(
        "github-fine-grained",
        ("github_pat_",),
        re.compile(r"github_pat_(?<!\wgithub_pat_)[A-Za-z0-9_]{36,244}\b"),
        _body_after(re.compile(r"^github_pat_")),
    ),
    _Rule(
        "gitlab",
        ("glpat-", "gldt-", "glrt-", "glptt-", "glcbt-", "glft-", "glimt-", "glagent-", "gloas-", "glsoat-", "glffct-"),
        re.compile(
            r"\b(?:glpat|gldt|glrt|glptt|glft|glimt|glagent|gloas|glsoat|glffct)-[A-Za-z0-9_-]{20,300}"
            r"(?:\.[0-9a-z]{2}[0-9a-z]{7})?" + _END + r"|\bglcbt-[0-9a-zA-Z]{1,5}_[A-Za-z0-9_-]{20,}" + _END
        ),
        _body_after(re.compile(r"^gl[a-z]+-")),
    ),
    _Rule(
        "gitlab-runner-registration",
        ("GR1348941",),
        re.compile(r"\bGR1348941[A-Za-z0-9_-]{20,}" + _END),
        _body_after(re.compile(r"^GR1348941")),
    ),
    _Rule("slack", ("xox",), re.compile(r"xox(?<!\wxox)[abeoprs]-[A-Za-z0-9-]{10,250}"), _slack),
    _Rule("slack-app", ("xapp-",), re.compile(r"\bxapp-\d-[A-Z0-9]+-\d+-[A-Za-z0-9]{10,}"), _slack),
    _Rule(
        "slack-webhook",
        ("hooks.slack.com",),
        re.compile(r"(?:https?://)?hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_-]{20,120}"),
        _webhook_path,
    ),
    _Rule("npm", ("npm_",), re.compile(r"npm_(?<!\wnpm_)[A-Za-z0-9]{36}\b"), _body_after(re.compile(r"^npm_"))),
    _Rule(
        "pypi",
        ("pypi-AgE",),
        re.compile(r"pypi-AgE(?<!\wpypi-AgE)(?:IcHlwaS5vcmc|NdGVzdC5weXBpLm9yZw)[A-Za-z0-9_-]{50,1000}"),
        _body_after(re.compile(r"^pypi-AgE(?:IcHlwaS5vcmc|NdGVzdC5weXBpLm9yZw)"), 3.0),
    ),
    _Rule("huggingface", ("hf_", "api_org_"), re.compile(r"\b(?:hf|api_org)_[A-Za-z0-9]{30,40}\b"), _mixed_case),
    _Rule(
        "stripe",
        ("sk_", "rk_", "whsec_"),
        re.compile(r"\b(?:(?:sk|rk)_(?:live|test|prod)_[A-Za-z0-9]{10,247}|whsec_[A-Za-z0-9+/=]{24,100})\b"),
        _body_after(re.compile(r"^(?:(?:sk|rk)_[a-z]+_|whsec_)")),
    ),
    _Rule(
        "anthropic",
        ("sk-ant-",),
        re.compile(r"sk-ant-(?<!\wsk-ant-)[A-Za-z0-9_-]{20,250}"),
        _body_after(re.compile(r"^sk-ant-(?:[a-z]+\d\d-)?")),
    ),
    _Rule(
        "openai",
        ("sk-",),
        re.compile(r"sk-(?<![\w-]sk-)(?!ant-)(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_-]{20,250}"),
        _openai,
    ),
    _Rule("google-api-key", ("AIza",), re.compile(r"\bAIza[A-Za-z0-9_-]{35}" + _END), _body_after(re.compile("^AIza"))),
    _Rule(
        "google-oauth",
        ("GOCSPX-", "ya29."),
        re.compile(r"\bGOCSPX-[A-Za-z0-9_-]{28}" + _END + r"|\bya29\.[A-Za-z0-9_-]{30,}"),
        _body_after(re.compile(r"^(?:GOCSPX-|ya29\.)"), 3.0),
    ),
    _Rule(
        "jwt",
        ("eyJ",),
        re.compile(r"eyJ(?<!\weyJ)[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{8,}"),
        lambda v: not _placeholder(v),
    ),
    _Rule(
        "private-key",
        ("-----BEGIN",),
        re.compile(
            r"-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----"
            r"(?:[\s\S]{0,20000}?-----END[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----"
            r"|(?:[A-Za-z0-9+/=\s]|\\[nr])*)"
        ),
        _pem,
    ),
    _Rule("twilio", ("SK",), re.compile(r"SK(?<!\wSK)[0-9a-fA-F]{32}\b"), _hex_mixed),
    _Rule(
        "sendgrid",
        ("SG.",),
        re.compile(r"\bSG\.[A-Za-z0-9_-]{16,32}\.[A-Za-z0-9_-]{30,50}" + _END),
        _body_after(re.compile(r"^SG\.")),
    ),
    _Rule(
        "mailchimp",
        ("-us",),
        re.compile(r"\b[0-9a-f]{32}-us\d{1,2}\b"),
        lambda v: _random_body(v[:32]),
    ),
    _Rule("mailgun", ("key-",), re.compile(r"key-(?<!\wkey-)[0-9a-zA-Z]{32}\b"), _body_after(re.compile("^key-"), 3.0)),
    _Rule(
        "discord-bot",
        (".",),
        re.compile(r"\b[MNO][A-Za-z0-9_-]{23,27}\.[A-Za-z0-9_-]{6,7}\.[A-Za-z0-9_-]{27,40}" + _END),
        _discord,
        gate=re.compile(r"\.[A-Za-z0-9_-]{6,7}\.[A-Za-z0-9_-]{27}"),
    ),
    _Rule(
        "discord-webhook",
        ("discord",),
        re.compile(r"https?://(?:[a-z]+\.)?discord(?:app)?\.com/api/webhooks/\d{5,30}/[A-Za-z0-9_-]{30,100}"),
        _webhook_path,
    ),
    # the token part of a bot token starts with "A" (gitleaks' rule); the id is 5-12 digits
    _Rule("telegram", (":A",), re.compile(r"(?<![\w:])\d{5,12}:A[A-Za-z0-9_-]{33,35}" + _END), _telegram),
    _Rule(
        "digitalocean",
        ("_v1_",),
        re.compile(r"\bdo[opr]_v1_[a-f0-9]{64}\b"),
        _body_after(re.compile(r"^do._v1_")),
    ),
    _Rule(
        "shopify",
        ("shp",),
        re.compile(r"\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b"),
        _body_after(re.compile(r"^shp.._")),
    ),
    _Rule(
        "square",
        ("sq0", "EAAA"),
        re.compile(r"\bsq0(?:atp|csp|idp)-[A-Za-z0-9_-]{22,43}" + _END + r"|\bEAAA[A-Za-z0-9_-]{60}" + _END),
        _body_after(re.compile(r"^(?:sq0...-|EAAA)"), 3.0),
    ),
    _Rule(
        "heroku",
        ("HRKU-",),
        re.compile(r"\bHRKU-AA[A-Za-z0-9_-]{58}" + _END),
        _body_after(re.compile("^HRKU-AA"), 3.0),
    ),
    _Rule(
        "heroku-context",
        ("heroku",),
        re.compile(
            r"(?i)heroku[\w.\- ]{0,30}[\"']?\s*(?:=|:|=>|\s)\s*[\"']?"
            r"(?P<v>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b"
        ),
        lambda v: _random_body(v.replace("-", "")),
        fold=True,
    ),
    _Rule(
        "aws-secret-access-key",
        ("secret",),
        re.compile(
            r"(?i)aws[\w.\-]{0,30}?secret[\w.\-]{0,30}(?:[\s:=,\"'>(]|\\\")+(?-i:(?P<v>[A-Za-z0-9/+]{40}))(?![A-Za-z0-9/+=])"
        ),
        lambda v: "EXAMPLE" not in v and _context_value(v),
        fold=True,
        lead=33,  # "aws" and up to 30 characters before "secret"
    ),
    _Rule(
        "gcp-private-key-id",
        ("private_key_id",),
        re.compile(r"[\"']?private_key_id[\"']?\s*[:=]\s*[\"'](?P<v>[0-9a-f]{40})[\"']"),
        lambda v: _random_body(v),
    ),
    _Rule(
        "azure-connection-string",
        ("accountkey", "sharedaccesskey"),
        re.compile(r"(?i)\b(?:AccountKey|SharedAccessKey)\s*=\s*(?-i:(?P<v>[A-Za-z0-9+/]{20,200}={0,2}))"),
        _context_value,
        fold=True,
    ),
    _Rule(
        "azure-sas",
        ("sig=",),
        re.compile(r"(?<=[?&;])sig=(?P<v>[A-Za-z0-9%+/=]{30,200})"),
        _context_value,
    ),
    _Rule(
        "azure-ad-client-secret",
        ("Q~",),
        re.compile(r"(?<![A-Za-z0-9_~.])(?P<v>[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.-]{31,34})(?![A-Za-z0-9_~.-])"),
        _context_value,
    ),
    _Rule(
        "authorization-header",
        ("authorization", "api-key", "auth-token", "access-token", "private-token"),
        re.compile(
            r"(?i)\b(?:authorization|x-api-key|api-key|x-auth-token|x-access-token|private-token)[\"']?\s*[:=]\s*"
            r"[\"']?(?:(?:bearer|token|basic|apikey|key)[ \t]+)?(?P<v>[A-Za-z0-9._~+/=-]{12,})"
        ),
        _header_value,
        fold=True,
        lead=2,  # the "x-" of x-api-key, x-auth-token, x-access-token
    ),
    _Rule(
        "bearer",
        ("bearer",),
        re.compile(r"(?i)\bbearer[ \t]+(?P<v>[A-Za-z0-9._~+/=-]{16,})"),
        _header_value,
        fold=True,
        lead=0,
    ),
)


# ---------------------------------------------------------------------------------------
# Key = value assignments
# ---------------------------------------------------------------------------------------

_PASSWORD, _TOKEN, _BARE_KEY = "password", "token", "bare_key"

#: Words that make a key secret, and the kind of value they take.
_SECRET_WORDS = {
    **dict.fromkeys(
        "password passwd pwd pass passphrase passwort pswd contrasena contraseña keypass storepass".split(),
        _PASSWORD,
    ),
    **dict.fromkeys(
        "secret token apikey apitoken authtoken accesstoken secretkey privatekey accesskey authkey "
        "credential credentials creds cred auth authorization".split(),
        _TOKEN,
    ),
    "key": _TOKEN,
}
#: A single word that ends in one of these is read as two (``clientsecret`` -> client, secret).
_SUFFIXES = ("password", "passwd", "passphrase", "token", "secret", "apikey")
#: Words allowed after the secret word (``DB_PASSWORD_PROD``, ``SECRET_KEY_BASE``).
_TRAILING_OK = frozenset(
    "value val str string plain plaintext raw base prod production dev development staging stage stg test "
    "testing live local old new current main default encoded b64 base64 hex literal override".split()
)
#: Secret words that still name the secret with other words after them (not ``key``, ``pass``,
#: ``auth``: ``key_vault``, ``pass_through``, ``auth_mode`` name other things).
_MID_KEY_WORDS = frozenset(
    "password passwd passphrase passwort secret token apikey apitoken authtoken accesstoken secretkey "
    "privatekey accesskey credential credentials".split()
)
#: Words after a secret word that make the key name something about the secret, not the secret.
_DESCRIBING = frozenset(
    "id ids name names type types kind length len size count file files path dir url uri ref refs env var vars "
    "field column col header policy prompt label hint expiry expires expiration ttl timeout version format "
    "endpoint provider manager store rotation arn regex pattern question reset required enabled min max "
    "description desc help text message error strength date time created updated location source mode class "
    "method algorithm alg scheme prefix suffix index hash hashed salt digest usage limit limits budget".split()
)
#: Words before the secret word that make it something else (``public_key``, ``max_tokens``).
_EXCLUDED_BEFORE = {
    "key": frozenset(
        "primary foreign sort partition range hash cache idempotency hot public pub object bucket s3 file "
        "dict map lookup row column col index unique composite natural sequence schema i18n translation locale "
        "message msg label list group metric redis item lock job task queue state data record entity model field "
        "attr node tree order shard dedup dedupe correlation trace request react "
        "shortcut keyboard ssh gpg pgp".split()
    ),
    "token": frozenset(
        "next page continuation cursor pagination csrf xsrf max min num total input output prompt completion "
        "eos bos pad unk sep cls mask special start end stop sync cancellation cancel lexer parser syntax ast "
        "resume delimiter split bpe vocab public".split()
    ),
    "password": frozenset("hashed hash forgot no show hide min max".split()),
    "secret": frozenset("is has no top".split()),
}
_TRAILING_NUMBER = re.compile(r"v?\d+")
_KEY_SPLIT = re.compile(r"[_.\-$@]+|(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_QUOTES = frozenset("\"'`")
_ENV_KEY = re.compile(r"[A-Z][A-Z0-9_]*")
_KEYWORDS = ("pass", "pwd", "secret", "token", "key", "cred", "auth")
_KEY_RUN = re.compile(r"[A-Za-z0-9_.\-]*")
#: After a key: an optional type annotation (``api_key: str =``), then the assignment operator.
_OP = re.compile(
    r"(?:\*\*|__)?[ \t]*"
    # a Python annotation, "password: str = ...", written with a space before "=" as PEP 8 asks
    # (a YAML value "s5cN_lx=&jvs..." is no annotation)
    r"(?::[ \t]*[A-Za-z_][\w.]*(?:\[[^\]\n]{0,60}\])?(?:[ \t]*\|[ \t]*None)?(?=[ \t]+=[ \t]*[^=\s])[ \t]*)?"
    r"(?P<op>:=|=>|\?=|=(?![=~])|:(?!:))[ \t]*(?:\*\*[ \t]*|__[ \t]*)?"  # **Password:** in Markdown
)
_VALUE = re.compile(
    r"\\\"(?P<e>[^\"\\\r\n]{1,300})\\\"|\"(?P<d>[^\"\r\n]{1,300})\"|'(?P<s>[^'\r\n]{1,300})'"
    r"|`(?P<b>[^`\r\n]{1,300})`|(?P<u>[^\s\"'`,;)\]}]{1,300})"
    # a quote left open (a record cut short): the literal runs to the next space
    r"|\\?[\"'`](?P<t>[^\s\"'`,;)\]}\\]{1,300})"
)
_UNQUOTED = re.compile(r"[^\s\"'`,;)\]}\\]{1,300}")
_NEXT_PARAM = re.compile(r"&[\w.\[\]-]+=")  # a query string's next parameter ends an unquoted value

_CAPITALISED = re.compile(r"[A-ZÀ-Þ][a-zß-ÿ]+")
#: An unquoted value that is code: a call or subscript, closed (``get_token()``, ``env[KEY]``)
#: or cut short at a quote (``os.environ[``, ``config.get(``). A bracket inside a generated
#: password (``2u3HDoEt(XfAyw``) is neither.
_CODE_SHAPE = re.compile(r"[(\[]$|[)\]]$")
_UNQUOTED_BAD_START = frozenset("${[(<#*&!@|>")  # templates, YAML tags/aliases/anchors, comments
_ENV_BAD_START = frozenset("${[(<|>")  # KEY=#x in a .env file is a value, not a comment
_EQUALS_BAD_START = _UNQUOTED_BAD_START - {"#", "*", "!"}  # passwd=#x9Lq... on a shell or INI line
#: Starts of a YAML alias, anchor or tag (``*default``, ``&base``, ``!Ref``) that a generated
#: password may also have (``*NhHbMrsg&b80o``): a value that looks random is the password.
_YAML_MARKS = frozenset("*&!")
_SNAKE_PART = re.compile(r"[a-z][a-z0-9]*|[A-Z][A-Z0-9]*|\d*")
_DIGITS = "0123456789"


@functools.lru_cache(maxsize=4096)
def _key_kind(key: str) -> str | None:
    """What a key name asks for: a password, a token, a bare ``key``, or nothing secret (None)."""
    words: list[str] = []
    for word in (w.lower() for w in _KEY_SPLIT.split(key) if w):
        if word not in _SECRET_WORDS:
            suffix = next((s for s in _SUFFIXES if word.endswith(s) and len(word) > len(s)), None)
            if suffix:
                words.extend((word[: -len(suffix)], suffix))
                continue
        words.append(word)
    for i in range(len(words) - 1, -1, -1):
        base = words[i] if words[i] in _SECRET_WORDS else words[i].rstrip(_DIGITS)
        kind = _SECRET_WORDS.get(base)
        if kind:
            break
    else:
        return None
    trailing = words[i + 1 :]
    if any(t not in _TRAILING_OK and not _TRAILING_NUMBER.fullmatch(t) for t in trailing):
        # VERY_SECRET_TOO, real_secret_which_is_not_an_id: still the secret's own name, unless a
        # word after it says the value describes the secret (token_type, password_reset_url); the
        # value must then look generated, as under a bare "key"
        if base not in _MID_KEY_WORDS or len(trailing) > 6 or any(t in _DESCRIBING for t in trailing):
            return None
        return _BARE_KEY
    family = "key" if base == "key" else "token" if base == "token" else "secret" if base == "secret" else kind
    previous = words[i - 1] if i else ""
    if previous in _EXCLUDED_BEFORE.get(family, ()):
        return None
    if base == "key" and not i:
        return _BARE_KEY
    return kind


def _is_path(value: str) -> bool:
    """A file path (``/run/secrets/db``, ``~/.ssh/id_rsa``, ``key.pem``), not base64 that starts with a slash."""
    if _FILE_NAME.fullmatch(value):
        return True
    if not _PATH_START.match(value) or "+" in value or "=" in value:
        return False
    return all(sum(ch.isupper() for ch in part) <= 2 for part in re.split(r"[/\\]", value))


def _looks_like_variable(value: str) -> bool:
    """An identifier that names a variable (``pw``, ``user_input``, ``DB_PASS``), not a generated value."""
    if value.isalpha():
        return not looks_random(value)
    return "_" in value and all(_SNAKE_PART.fullmatch(part) for part in value.split("_"))


_WHITESPACE = re.compile(r"\s")


def _value_ok(
    kind: str,
    value: str,
    quoted: bool,
    env_style: bool,
    kwarg: bool,
    env_assign: bool = False,
    equals: bool = False,
    after: str = "",
) -> bool:
    """Whether an assigned value is a credential rather than a placeholder, reference or label.

    ``env_style``: the key is written like an environment variable (``DB_PASSWORD``) or a CLI flag,
    where an unquoted value is a literal; elsewhere an unquoted identifier is read as a variable.
    ``env_assign``: ``KEY=value`` in a .env file, where ``#`` or ``!`` may open the value.
    ``equals``: assigned with ``=`` (INI, shell, a log line), where ``#`` may open the value too
    (after ``key:`` in YAML it opens a comment). ``after``: the character after an unquoted
    value, which says whether a bracket in it was code cut short (``hash(pw, salt)``).
    """
    if len(value) < 4 or _WHITESPACE.search(value):
        return False
    low = value.lower()
    if low in _PLACEHOLDER_WORDS or low.replace("-", "").replace("_", "") in _PLACEHOLDER_WORDS:
        return False
    if _placeholder(value) or _RUN.search(value):
        return False
    bad_start = _ENV_BAD_START if env_assign else _EQUALS_BAD_START if equals else _UNQUOTED_BAD_START
    if value[0] in "{[(<" or value.startswith("#{"):
        return False
    if value[0] == "$" and (value[1:2].isalpha() or value[1:2] in "{(_" or not looks_random(value[1:])):
        return False  # $VAR, ${VAR}, $(cmd); a generated "$4Pq+irB+hFdgU" is the password
    if not quoted and value[0] in bad_start and not (value[0] in _YAML_MARKS and looks_random(value[1:])):
        return False
    if _URL.match(value) or _EMAIL.fullmatch(value) or _is_path(value):
        return False
    if not quoted:
        if low in _CODE_WORDS or (
            ("(" in value or "[" in value) and (_CODE_SHAPE.search(value) or (after != "" and after in ",)]"))
        ):
            return False
        if _DOTTED_REF.fullmatch(value) and not any(ch.isdigit() for ch in value):
            return False  # self.password, settings.SECRET_KEY, process.env.TOKEN
        if _IDENT.fullmatch(value):
            if _SECRET_WORD_IN.search(value) or kwarg:
                return False  # password=pwd, f(password=user_pw)
            if not env_style and _looks_like_variable(value):
                return False  # a variable in code, or a plain word in prose
        if not env_style and _WORDISH.fullmatch(value):
            return False
    if kind == _PASSWORD:
        return not _CAPITALISED.fullmatch(value)  # a form label such as "Password" or "Contraseña"
    if kind == _TOKEN:
        return looks_random(value)
    if len(value) >= 12 and _char_classes(value) >= 4 and looks_random(value):
        return True  # a generated password under a secret key: "s5cN_lx=&jvsO0ZvC*9"
    return (
        len(value) >= 16
        and re.fullmatch(r"[A-Za-z0-9+/=_-]+", value) is not None
        and any(ch.isdigit() for ch in value)
        and looks_random(value)
        and shannon_entropy(value) >= 3.3
    )


def _run_length(text: str, at: int) -> int:
    """How many key characters (letters, digits, ``_.-``) follow ``at``."""
    run = _KEY_RUN.match(text, at)
    return run.end() - at if run else 0


def _keyword_hits(lower: str) -> list[int]:
    """Where a secret word starts in the lower-cased text (``str.find`` beats a regex alternation here)."""
    hits = []
    for word in _KEYWORDS:
        at = lower.find(word)
        while at >= 0:
            hits.append(at)
            at = lower.find(word, at + len(word))
    hits.sort()
    return hits


def _assignments(text: str, lower: str, spans: set[tuple[int, int]]) -> None:
    """Values assigned to secret-named keys, in any of the usual syntaxes."""
    hits = _keyword_hits(lower)
    if not hits:
        return
    size = len(text)
    reverse = text[::-1]
    done = -1
    for hit in hits:
        if hit < done:
            continue  # inside a key or value already read
        ks = hit - _run_length(reverse, size - hit)
        ke = hit + _run_length(text, hit)
        done = ke
        opened = ks
        while ks < ke and text[ks] in "-.":
            ks += 1
        while ke > ks and text[ke - 1] in "-.":
            ke -= 1
        if ke - ks > 80:
            continue
        kind = _key_kind(text[ks:ke])
        if kind is None:
            continue
        pos, in_string = ke, False
        quote = text[opened - 1] if opened else ""
        if quote in _QUOTES:
            if text.startswith(quote, pos):
                pos += 1
            elif quote == '"' and opened >= 2 and text[opened - 2] == "\\" and text.startswith('\\"', pos):
                pos += 2
            else:
                in_string = True  # "password=hunter2" inside one string literal
        if text.startswith("]", pos):
            pos += 1
        assign = _OP.match(text, pos)
        if assign is None:
            continue
        op = assign.group("op")
        if in_string:
            found = _UNQUOTED.match(text, assign.end())
            group: str | int = 0
        else:
            found = _VALUE.match(text, assign.end())
            group = found.lastgroup or 0 if found else 0
        if found is None:
            continue
        vs, ve = found.span(group)
        done = ve
        quoted = group not in (0, "u")
        if not quoted:
            cut = _NEXT_PARAM.search(text, vs, ve)
            if cut:
                ve = cut.start()
            while ve > vs and text[ve - 1] in ".:":
                ve -= 1
        kwarg = op == "=" and text[:opened].rstrip(" \t\"'").endswith(("(", ","))
        env_style = _ENV_KEY.fullmatch(text[ks:ke]) is not None or text[max(0, ks - 2) : ks] == "--"
        value = text[vs:ve]
        if value == text[ks:ke]:
            continue  # an enum member or constant named by its own value: PG_PASSWORD = "PG_PASSWORD"
        if _value_ok(kind, value, quoted, env_style, kwarg, env_style and op == "=", op == "=", text[ve : ve + 1]):
            spans.add((vs, ve))


_URL_CREDENTIALS = re.compile(
    r"\b[A-Za-z][A-Za-z0-9+.-]{1,30}://(?P<user>[^\s:/?#@\"'<>\[\]]{0,200}):(?P<v>[^\s/\"'<>]{1,300})@(?=[A-Za-z0-9\[])"
)
#: Opens with the first ``-`` (the look-behind then checks what stands before it): the regex
#: engine skips to dashes instead of trying ``(?<![\w-])--`` at every position.
_CLI_FLAG = re.compile(r"-(?<![\w-]-)-(?P<k>[A-Za-z][\w-]{1,60})[ \t]+(?P<q>[\"']?)(?P<v>[^\s\"']{1,300})(?P=q)")
_XML_ELEMENT = re.compile(r"<(?P<k>[A-Za-z_][\w.:-]{0,60})>(?P<v>[^<>\s]{1,300})</(?P=k)>")
_XML_ADD = re.compile(r"(?i)<add\s+key\s*=\s*\"(?P<k>[^\"]{1,80})\"\s+value\s*=\s*\"(?P<v>[^\"]{1,300})\"")
# these run on the lower-cased text (same offsets); the value is read back from the original
_SQL_PASSWORD = re.compile(r"\b(?:identified[ \t]+by|password)[ \t]+(?P<q>['\"])(?P<v>[^'\"\s]{1,200})(?P=q)")
_PROSE_PASSWORD = re.compile(
    r"\b(?:password|passwd|passphrase|passcode|pwd)[ \t]+(?:is|was|will be|would be|remains)[ \t]*:?[ \t]*"
    r"(?P<q>[\"'`]?)(?P<v>[^\s\"'`]{4,200})(?P=q)"
)
#: ``CREATE USER``/``ALTER ROLE``/``GRANT ... TO``: what stands before ``IDENTIFIED BY`` in SQL (in prose,
#: "identified by 'name'" is a phrase).
_SQL_USER_BEFORE = re.compile(r"\b(?:user|role|login|grant|create|alter)\b")
_MYSQL_P = re.compile(r"(?<!\S)-p(?P<q>['\"]?)(?P<v>[^\s'\"-][^\s'\"]{3,199})(?P=q)")
_SSHPASS = re.compile(r"\bsshpass[ \t]+-p[ \t]*(?P<q>['\"]?)(?P<v>[^\s'\"]{4,200})(?P=q)")
#: ``docker login -u user -p <password>`` and the other registry clients that copy its flags
_LOGIN_P = re.compile(
    r"\b(?:docker|podman|nerdctl|buildah|skopeo|oras|helm(?:[ \t]+registry)?|crane)[ \t]+login\b[^\n]*?"
    r"(?<!\S)-p[ \t]+(?P<q>['\"]?)(?P<v>[^\s'\"]{4,200})(?P=q)"
)
_WORD_AND_NUMBER = re.compile(r"[A-Za-z]{3,}-\w+|\w+-[A-Za-z]{3,}")  # SHA-256, 2FA-protected
_NETRC = re.compile(r"\bpassword[ \t]+(?P<v>\S{1,200})")
_CURL_USER = re.compile(
    r"(?<![\w-])(?:-u|--user)[ \t]+(?P<q>[\"']?)(?P<user>[^\s:\"']{1,100}):(?P<v>[^\s\"']{1,200})(?P=q)"
)


def _password_in_place(value: str, user: str = "") -> bool:
    """A password written where the syntax says it is one (URL userinfo, ``-u``, SQL, netrc)."""
    if value == user or value.isdigit() or value.lower() == "x-oauth-basic":
        return False
    # percent-encoding may open a URL password (%40 is "@")
    return _value_ok(_PASSWORD, "x" + value[1:] if value.startswith("%") else value, True, True, False)


def _prose_password(value: str, quoted: bool) -> bool:
    """``my password is <value>``: a quoted value, or one shaped like a password (letters and digits,
    not ``SHA-256`` or ``2FA-protected``), never a plain word (``is stored hashed``)."""
    if not _password_in_place(value):
        return False
    if quoted:
        return True
    has_digit = any(ch.isdigit() for ch in value)
    shaped = has_digit and (any(ch.isalpha() for ch in value) or len(value) >= 6)
    return len(value) >= 6 and (shaped or looks_random(value)) and not _WORD_AND_NUMBER.fullmatch(value)


def _contextual(text: str, lower: str, spans: set[tuple[int, int]]) -> None:
    """Passwords whose place, not their key name, marks them: URLs, CLI flags, XML, SQL, netrc, curl."""
    scheme = text.find("://")
    if scheme >= 0:
        # a match opens with its scheme, at most 31 characters before the first "://"
        for m in _URL_CREDENTIALS.finditer(text, max(0, scheme - 31)):
            if _password_in_place(m.group("v"), m.group("user")):
                spans.add(m.span("v"))
    if "--" in text:
        for m in _CLI_FLAG.finditer(text):
            kind, value = _key_kind(m.group("k")), m.group("v")
            if kind and not value.startswith("-") and _value_ok(kind, value, bool(m.group("q")), True, False):
                spans.add(m.span("v"))
    if "</" in text:
        for m in _XML_ELEMENT.finditer(text):
            kind = _key_kind(m.group("k").rsplit(":", 1)[-1])
            if kind and _value_ok(kind, m.group("v"), True, True, False):
                spans.add(m.span("v"))
    if "<add" in lower:
        for m in _XML_ADD.finditer(text):
            kind = _key_kind(m.group("k"))
            if kind and _value_ok(kind, m.group("v"), True, True, False):
                spans.add(m.span("v"))
    first = first_at(lower, ("identified", "password"))  # where a match can start at the earliest
    if first >= 0:
        for m in _SQL_PASSWORD.finditer(lower, first):
            sql = _SQL_USER_BEFORE.search(lower, max(0, m.start() - 120), m.start())
            if m.group().startswith("identified") and not sql:
                continue
            if _password_in_place(text[m.start("v") : m.end("v")]):
                spans.add(m.span("v"))
    if ("pass" in lower or "pwd" in lower) and (
        " is" in lower or " was" in lower or " will" in lower or " remains" in lower
    ):
        for m in _PROSE_PASSWORD.finditer(lower, first_at(lower, ("pass", "pwd"))):
            start, end = m.span("v")
            if not m.group("q"):
                while end > start and text[end - 1] in ".,;:)":
                    end -= 1
            if _prose_password(text[start:end], bool(m.group("q"))):
                spans.add((start, end))
    if "mysql" in lower or "mariadb" in lower:
        for m in _MYSQL_P.finditer(text):
            if _password_in_place(m.group("v")):
                spans.add(m.span("v"))
    if " login" in lower and " -p" in lower:
        for m in _LOGIN_P.finditer(lower):
            if _password_in_place(text[m.start("v") : m.end("v")]):
                spans.add(m.span("v"))
    if "sshpass" in lower:
        for m in _SSHPASS.finditer(lower):
            if _password_in_place(text[m.start("v") : m.end("v")]):
                spans.add(m.span("v"))
    if "machine" in lower and "login" in lower:
        for m in _NETRC.finditer(text):
            if _password_in_place(m.group("v")):
                spans.add(m.span("v"))
    if "-u " in text or "--user" in text:
        for m in _CURL_USER.finditer(text):
            if _password_in_place(m.group("v"), m.group("user")):
                spans.add(m.span("v"))


def _vendor_rules() -> tuple[_Rule, ...]:
    """The formats of :mod:`~polyadapt.governance.token_formats` as rules, checked like the ones above."""
    from polyadapt.governance.token_formats import format_checks

    checks = format_checks(_random_body)
    return tuple(_Rule(fmt.name, fmt.gate_needles(), pattern, check) for fmt, pattern, check in checks)


_RULES += _vendor_rules()


def _needle_set(fold: bool) -> NeedleSet[tuple[int, ...]]:
    """Each needle of the rules that compare with the text as written (``fold`` false) or
    lower-cased, with the rules it opens."""
    index: dict[str, list[int]] = {}
    for i, rule in enumerate(_RULES):
        if rule.fold == fold:
            for needle in rule.needles:
                index.setdefault(needle, []).append(i)
    return NeedleSet((needle, tuple(rules)) for needle, rules in index.items())


_CASED_NEEDLES = _needle_set(fold=False)
_FOLDED_NEEDLES = _needle_set(fold=True)


def _rules_to_run(text: str, lower: str) -> list[int]:
    """The rules whose needles occur in the text, in rule order."""
    todo: set[int] = set()
    for rules in _CASED_NEEDLES.values_in(text):
        todo.update(rules)
    for rules in _FOLDED_NEEDLES.values_in(lower):
        todo.update(rules)
    return sorted(todo)


#: Inline markers by which code says a value on its line is no secret (a test fixture, a public
#: example): detect-secrets' ``pragma: allowlist secret`` and gitleaks' ``gitleaks:allow``;
#: ``pragma: allowlist nextline secret`` speaks for the line after it.
_ALLOW_MARKERS = ("pragma: allowlist secret", "gitleaks:allow")
_ALLOW_NEXT_LINE = "pragma: allowlist nextline secret"


def _allowed_lines(text: str) -> list[tuple[int, int]]:
    """The ``(start, end)`` of each line that an allow marker speaks for."""
    lines = []
    for marker in (*_ALLOW_MARKERS, _ALLOW_NEXT_LINE):
        at = text.find(marker)
        while at >= 0:
            start = text.rfind("\n", 0, at) + 1
            end = text.find("\n", at)
            end = len(text) if end < 0 else end
            if marker == _ALLOW_NEXT_LINE:
                start = end + 1
                end = text.find("\n", start)
                end = len(text) if end < 0 else end
            lines.append((start, end))
            at = text.find(marker, at + len(marker))
    return lines


_ASCII_LOWER = {code: code + 32 for code in range(ord("A"), ord("Z") + 1)}


def secret_spans(text: str) -> list[tuple[int, int]]:
    """The ``(start, end)`` of every credential value in ``text``, sorted; nested spans are dropped."""
    spans: set[tuple[int, int]] = set()
    lower = lowered(text)
    if len(lower) != len(text):  # a few non-ASCII letters grow when lower-cased; keep offsets aligned
        lower = text.translate(_ASCII_LOWER)
    for i in _rules_to_run(text, lower):
        rule = _RULES[i]
        if rule.gate is not None and not rule.gate.search(text):
            continue
        group = "v" if "v" in rule.pattern.groupindex else 0
        start = 0
        if rule.lead is not None and plain_case(text):
            # a case-insensitive match of the needle stands at the same offsets in ``lower``
            start = max(0, first_at(lower, rule.needles) - rule.lead)
        for m in rule.pattern.finditer(text, start):
            if rule.check(m.group(group)):
                spans.add(m.span(group))
    _assignments(text, lower, spans)
    _contextual(text, lower, spans)
    if "allowlist" in text or "gitleaks:allow" in text:
        allowed = _allowed_lines(text)
        spans = {s for s in spans if not any(a <= s[0] and s[1] <= b for a, b in allowed)}
    ordered = sorted(spans, key=lambda s: (s[0], -s[1]))
    kept: list[tuple[int, int]] = []
    for start, end in ordered:
        if kept and start >= kept[-1][0] and end <= kept[-1][1]:
            continue  # inside a span already kept
        kept.append((start, end))
    return kept


class SecretScanner:
    """API keys, tokens, private keys, passwords in URLs and credential assignments.

    Only the value is reported (``DB_PASSWORD=<value>``), so redaction keeps the key name.
    See the module docstring for the rules and what is deliberately not reported.
    """

    name = "secret"
    types: tuple[str, ...] = ("secret",)

    def scan(self, text: str) -> list[Finding]:
        """Every credential value in ``text`` as a ``secret`` finding."""
        return [Finding("secret", start, end, self.name) for start, end in secret_spans(text)]
