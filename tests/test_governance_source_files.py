"""Governing source files: a secret is a literal, documentation values are not PII, and the
policy decides what happens to tests and fixtures (issue 18: boltons' urlutils damaged by redaction)."""

from __future__ import annotations

from pathlib import Path

import pytest
from polyadapt.errors import ConfigError
from polyadapt.governance.engine import govern_dataset
from polyadapt.governance.policy import Policy, parse_policy
from polyadapt.governance.redact import Redactor
from polyadapt.governance.scanners import pattern_scanners
from polyadapt.governance.source_files import ScanContext, is_test_path, reserved_domain
from polyadapt.modalities.records import Dataset, Origins

KEY = b"k" * 32


def redactor(policy: Policy | None = None) -> Redactor:
    return Redactor(policy or Policy(), pattern_scanners(), KEY)


def found(text: str, path: str | None = "pkg/module.py", policy: Policy | None = None) -> list[tuple[str, str]]:
    """``(type, value)`` of each finding in ``text``: as the source file ``path``, or as prose (None)."""
    context = ScanContext("source", path) if path is not None else None
    return [(f.type, text[f.start : f.end]) for f in redactor(policy).scan(text, context)]


# -- secrets: a literal, never a name or an expression --------------------------------------

#: boltons 25.0.0 urlutils.py, where redaction once read two secrets.
URLUTILS = """\
    def navigate(self, dest):
        ret = self.from_parts(scheme=dest.scheme,
                              username=dest.username or self.username,
                              password=dest.password or self.password)
        password = dest.password
        ret.password = password
        self.password = (unquote(ud['password'])
                         if '%' in (ud['password'] or _e) else ud['password'] or _e)
"""


@pytest.mark.parametrize(
    "line",
    [
        "password = dest.password",
        'token = os.environ["TOKEN"]',
        "secret=get_secret()",
        "DB_PASSWORD = fallback_pw",  # an upper-case key, but Python: the value is a variable
        "DB_PASSWORD = DEFAULTS.PW",
        "API_TOKEN = build_token(user, scope)",
        "const password = this.password;",
        "password := cfg.Password",
        'password: str = "changeme"',
        'API_KEY = "<token>"',
        'TOKEN = "${VAR}"',
        'secret = "xxx"',
        'key_password = "keyfile_password"',  # a value that only names itself
        'url = "http://someuser:somepassword@example.com/x"',
        'HEADERS = {"Authorization": "Basic Zm9vOmJhcg=="}',  # foo:bar
    ],
)
def test_names_expressions_and_placeholders_are_not_secrets_in_source(line):
    assert found(line, "pkg/settings.py") == []


def test_boltons_urlutils_has_no_secret():
    assert found(URLUTILS, "boltons/urlutils.py") == []


def test_a_variable_assigned_to_an_upper_case_key_was_a_secret_as_prose():
    # what the source rules change: prose reads an env-style key's value as a literal
    assert found("DB_PASSWORD = fallback_pw", None) == [("secret", "fallback_pw")]


@pytest.mark.parametrize(
    ("path", "text", "value"),
    [
        ("pkg/settings.py", "PASSWORD = 'Zx81!qwertyV'", "Zx81!qwertyV"),
        ("pkg/settings.py", 'API_KEY = "q8Vd2LrT0mXw7KpB4nZa6YcE1sHj3GfU"', "q8Vd2LrT0mXw7KpB4nZa6YcE1sHj3GfU"),
        ("web/config.js", 'const db = { password: "Tr0ub4dor&3x" };', "Tr0ub4dor&3x"),
        ("cmd/main.go", '\tdbPassword := "Tr0ub4dor&3x"', "Tr0ub4dor&3x"),
        ("deploy/run.sh", "export DB_PASSWORD=fallback_pw9", "fallback_pw9"),  # shell: unquoted is literal
        ("deploy/values.yaml", "database:\n  password: Wq7xPz3Lm9Rt\n", "Wq7xPz3Lm9Rt"),
        ("pkg/db.py", 'URL = "postgresql://orders:Vq8mZ2pLx!@db1.northwind.io:5432/orders"', "Vq8mZ2pLx!"),
        ("pkg/keys.py", "# ghp_R8d2KfQm7Zx1Lc9Vb3Nw5Ty0Ps4Hj6Ga8Ek2", "ghp_R8d2KfQm7Zx1Lc9Vb3Nw5Ty0Ps4Hj6Ga8Ek2"),
        ("pkg/aws.py", "AWS_ACCESS_KEY_ID = AKIAQ4ZJ7RBM2XKD5TWN", "AKIAQ4ZJ7RBM2XKD5TWN"),  # unquoted, still a token
        ("pkg/db.py", "# the staging password is hunterQuill", "hunterQuill"),  # a comment is prose
        ("pkg/db.py", "DB_PASSWORD = Summer2024x", "Summer2024x"),  # a name with digits: read as a literal
    ],
)
def test_literals_stay_secrets_in_source(path, text, value):
    assert ("secret", value) in found(text, path)


@pytest.mark.parametrize(
    "text",
    [
        'SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "k7Qz2Rm9Xw4Lp8Vn3Bt6Yc1Hs5Jd0Fg")',
        "const token = process.env.API_TOKEN || 'k7Qz2Rm9Xw4Lp8Vn3Bt6Yc1Hs5Jd0Fg';",
    ],
)
def test_a_literal_default_of_a_secret_environment_variable_is_a_secret(text):
    assert found(text, "pkg/app.py") == [("secret", "k7Qz2Rm9Xw4Lp8Vn3Bt6Yc1Hs5Jd0Fg")]
    assert found(text, None) == []  # prose misses it: the rule belongs to source files


def test_placeholder_environment_defaults_are_not_secrets():
    assert found('os.environ.get("API_TOKEN", "changeme-please")', "pkg/app.py") == []
    assert found('os.getenv("APP_MODE", "k7Qz2Rm9Xw4Lp8Vn3Bt6Yc1Hs5Jd0Fg")', "pkg/app.py") == []


# -- documentation values and digit runs ----------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "contact = 'me@example.com'",
        "addr = 'ops@mail.example.org'",
        "to = 'someone@host.test'",
        "'ssh://192.0.2.16:2222/'",
        "'198.51.100.7'",
        "'203.0.113.250'",
        "'2001:db8::1'",
        "'http://[1080:0:0:0:8:800:200C:417A]/index.html'",  # RFC 2732
        "'https://[::101.45.75.219]:80/?hi=bye'",
        "'ldap://[::192.9.5.5]/dc=example,dc=com'",
        "PHONE = '(212) 555-0123'",
        "_HEX = ('0123456789', 'abcdefABCDEF')",
        "DIGITS = '0123456789'",
        "0.9.3 (2012-01-18)",
        "'user@ftp.debian.org:2121'",
    ],
)
def test_documentation_values_are_not_pii_in_source(text):
    assert found(text) == []


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("contact = 'me@example.com'", "email"),
        ("host 192.0.2.16", "ip_address"),
        ("call (212) 555-0123", "phone"),
    ],
)
def test_prose_is_scanned_as_before(text, kind):
    assert [k for k, _ in found(text, None)] == [kind]


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("AUTHOR = 'dana.whitfield@northwind-traders.io'", "email", "dana.whitfield@northwind-traders.io"),
        ("ONCALL = '+1 415-823-4412'", "phone", "+1 415-823-4412"),
        ("UPSTREAM = 'http://84.17.46.203:8080/'", "ip_address", "84.17.46.203"),
        ("'http://[2a00:1450:4001:c01::67]/'", "ip_address", "2a00:1450:4001:c01::67"),
    ],
)
def test_real_pii_is_still_found_in_source(text, kind, value):
    assert found(text) == [(kind, value)]


def test_private_addresses_follow_the_policy():
    text = "NO_PROXY = '192.168.1.1,10.0.0.7'"
    assert found(text) == []
    policy = Policy(source={"private_addresses": "scan"})
    assert found(text, policy=policy) == [("ip_address", "192.168.1.1"), ("ip_address", "10.0.0.7")]


@pytest.mark.parametrize("domain", ["example.com", "EXAMPLE.net", "a.b.example.org", "x.test", "host.invalid"])
def test_reserved_domains(domain):
    assert reserved_domain(domain)


@pytest.mark.parametrize("domain", ["example.co", "myexample.com", "examples.org", "test.com"])
def test_unreserved_domains(domain):
    assert not reserved_domain(domain)


# -- test files and fixtures ----------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "tests/test_urlutils.py",
        "pkg/tests/helpers.py",
        "test_api.py",
        "conftest.py",
        "pkg/server_test.go",
        "src/app.spec.ts",
        "web/__tests__/Button.jsx",
        "src/test/java/com/acme/FooTest.java",
        "internal/testdata/config.yaml",
        "spec/models/user_spec.rb",
        "fixtures/users.json",
    ],
)
def test_test_paths(path):
    assert is_test_path(path)


@pytest.mark.parametrize("path", ["pkg/testing_utils.py", "src/contest.py", "attest.py", "pkg/latest/x.go"])
def test_paths_that_are_not_tests(path):
    assert not is_test_path(path)


LIBRARY = "def connect():\n    return 'ok'\n"
TEST_FILE = (
    "def test_mailto():\n    assert URL('mailto:mahmoud@hatnote.com').to_text()\n    url.password = 'Zx81!qwertyV'\n"
)


def govern_files(policy: Policy) -> tuple[list[dict], list]:
    records = [
        {"path": "pkg/client.py", "text": LIBRARY},
        {"path": "tests/test_client.py", "text": TEST_FILE},
    ]
    dataset = Dataset(
        source=Path("/repo"),
        kind="code",
        records=records,
        scanned_fields=("text",),
        origins=Origins(field="path", whole_file=True, content="source"),
    )
    governed = govern_dataset(
        dataset, policy=policy, redactor=redactor(policy), modality="code", licence="MIT", role="train"
    )
    return governed.dataset.records, governed.decisions


def _policy(test_files: str) -> Policy:
    return Policy(pii={"secret": "redact"}, max_finding_share=1.0, source={"test_files": test_files})


def test_test_files_redact_by_default():
    records, decisions = govern_files(_policy("redact"))
    text = records[1]["text"]
    assert "<EMAIL_1>" in text and "<SECRET_1>" in text
    assert decisions[1].action == "redacted"


def test_test_files_skip_leaves_them_out():
    records, decisions = govern_files(_policy("skip"))
    assert [r["path"] for r in records] == ["pkg/client.py"]
    assert decisions[1].action == "dropped"
    assert "source.test_files: skip" in decisions[1].reason


def test_test_files_keep_allows_their_pii_but_not_secrets():
    records, decisions = govern_files(_policy("keep"))
    text = records[1]["text"]
    assert "mahmoud@hatnote.com" in text  # kept as the test asserts it
    assert "Zx81!qwertyV" not in text and "<SECRET_1>" in text  # a secret still follows pii.secret
    assert decisions[1].findings == {"email": 1, "secret": 1}


def test_prose_datasets_ignore_the_test_file_policy():
    dataset = Dataset(
        source=Path("/data/tests/train.jsonl"),
        kind="text",
        records=[{"path": "tests/test_x.py", "text": "write to me@example.com"}],
        scanned_fields=("text",),
    )
    policy = Policy(max_finding_share=1.0, source={"test_files": "skip"})
    governed = govern_dataset(dataset, policy=policy, redactor=redactor(policy), modality="text", licence="MIT")
    assert governed.dataset.records == [{"path": "tests/test_x.py", "text": "write to <EMAIL_1>"}]


def test_policy_file_rejects_an_unknown_test_files_value():
    with pytest.raises(ConfigError, match="test_files"):
        parse_policy("name: p\nsource:\n  test_files: delete\n", "p.yaml")


# -- attribution: copyright notices and author lines stay as they are ------------------------


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("# Copyright (c) 2013, Mahmoud Hashemi <mahmoud.h@hatnote-mail.io>\n", "pkg/cacheutils.py"),
        (" * (C) 2019 Jane Roe, jane.roe@corp-mail.io\n", "src/lib.c"),
        ("Jane Roe <jane.roe@corp-mail.io>\nOmar Said <omar@corp-mail.io>\n", "AUTHORS.md"),
        ("Permission granted; questions to jane.roe@corp-mail.io\n", "LICENSE"),
    ],
)
def test_names_and_addresses_in_attribution_are_kept(text, path):
    assert found(text, path) == []
    scanned = Policy.model_validate({"source": {"attribution": "scan"}})
    assert [t for t, _ in found(text, path, scanned)] and {t for t, _ in found(text, path, scanned)} == {"email"}
    assert found(text, None), "prose keeps its findings: the rule is for source files"


def test_an_address_outside_a_notice_is_still_a_finding():
    text = "# Copyright (c) 2013, Mahmoud Hashemi\nsend_report(to='jane.roe@corp-mail.io')\n"
    assert found(text, "pkg/report.py") == [("email", "jane.roe@corp-mail.io")]
    # an author line's address is contact data
    assert found("__author__ = 'Jane Roe <jane.roe@corp-mail.io>'\n", "pkg/__init__.py") == [
        ("email", "jane.roe@corp-mail.io")
    ]


def test_names_in_notices_and_author_lines_are_kept_by_the_name_scanner():
    ner = pytest.importorskip("polyadapt.governance.ner")
    scanner = ner.PersonNameScanner()
    text = "Ticket from Margaret Okafor: export fails.\n"
    assert [f.type for f in scanner.scan(text)] == ["person"], "the scanner finds this name in prose"
    with_names = Redactor(Policy(), [*pattern_scanners(), scanner], KEY)
    for line in (
        "# Copyright (c) 2021 Margaret Okafor\n",
        "__author__ = 'Margaret Okafor'\n",
        "    mailboxes. Credit to Margaret Okafor for these.\n",  # boltons' mboxutils credits people so
    ):
        assert [f.type for f in scanner.scan(line)] == ["person"], line  # a name, kept as attribution:
        assert with_names.scan(line, ScanContext("source", "pkg/mod.py")) == [], line
    assert [f.type for f in with_names.scan(text, ScanContext("source", "pkg/mod.py"))] == ["person"]
