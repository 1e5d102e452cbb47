"""The redactor: each policy action's output, blocked terms, plugin scanners, the hash key."""

from __future__ import annotations

import hashlib
import hmac
import multiprocessing
import stat
from pathlib import Path

import pytest
from polyadapt.errors import ConfigError
from polyadapt.governance.policy import Policy
from polyadapt.governance.redact import Placeholders, Redactor, load_or_create_key, mask_value
from polyadapt.governance.scanners import Finding, builtin_scanners

KEY = bytes(range(32))
TEXT = (
    "Mail Jane.Doe@Example.com, call +44 20 7946 0958, card 4111-1111-1111-1111, "
    "IBAN GB82 WEST 1234 5698 7654 32, SSN 536-90-4399, from 203.0.113.45."
)
RAW = [
    "Jane.Doe@Example.com",
    "+44 20 7946 0958",
    "4111-1111-1111-1111",
    "GB82 WEST 1234 5698 7654 32",
    "536-90-4399",
    "203.0.113.45",
]


def redactor(**pii) -> Redactor:
    return Redactor(Policy(pii=pii), builtin_scanners(), KEY)


def test_strict_policy_redacts_with_typed_placeholders_and_masks_ips():
    outcome = Redactor(Policy(), builtin_scanners(), KEY).apply(TEXT)
    assert outcome.text == (
        "Mail <EMAIL_1>, call <PHONE_1>, card <PAYMENT_CARD_1>, IBAN <IBAN_1>, SSN <NATIONAL_ID_1>, from ***.*.***.**."
    )
    assert outcome.findings == {"email": 1, "phone": 1, "payment_card": 1, "iban": 1, "national_id": 1, "ip_address": 1}
    assert outcome.actions["ip_address"] == "mask" and outcome.actions["email"] == "redact"
    assert outcome.refused == [] and outcome.dropped is False
    for value in RAW:
        assert value not in outcome.text


def test_mask_keeps_separators_and_last_four_digits_of_cards_and_phones():
    kinds = ["email", "phone", "payment_card", "iban", "national_id", "ip_address"]
    outcome = redactor(**{kind: "mask" for kind in kinds}).apply(TEXT)
    assert "****.***@*******.***" in outcome.text
    assert "+** ** **** 0958" in outcome.text
    assert "****-****-****-1111" in outcome.text
    assert "**** **** **** **** **** **" in outcome.text
    assert "***-**-****" in outcome.text
    assert mask_value("payment_card", "3782 822463 10005") == "**** ****** *0005"


def test_hash_is_keyed_stable_and_ignores_formatting():
    r = redactor(email="hash", phone="hash")
    first = r.apply("a: Jane.Doe@Example.com b: jane.doe@example.com").text
    expected = hmac.new(KEY, b"jane.doe@example.com", hashlib.sha256).hexdigest()[:12]
    assert first == f"a: <EMAIL:{expected}> b: <EMAIL:{expected}>"
    # the same number written two ways hashes the same; another key gives another token
    assert r.apply("+44 20 7946 0958").text == r.apply("+442079460958").text
    other = Redactor(Policy(pii={"email": "hash"}), builtin_scanners(), b"x" * 32)
    assert other.apply("jane.doe@example.com").text != r.apply("jane.doe@example.com").text


def test_allow_leaves_the_value_and_still_counts_it():
    outcome = redactor(email="allow").apply("mail bob@example.com")
    assert outcome.text == "mail bob@example.com"
    assert outcome.findings == {"email": 1} and outcome.actions == {"email": "allow"}
    assert not outcome.changed


def test_refuse_lists_the_rule_and_never_returns_the_secret():
    secret = "AKIAIOSFODNN7EXAMPLF"
    outcome = Redactor(Policy(), builtin_scanners(), KEY).apply(f"key {secret} and mail a@example.com")
    assert outcome.refused == ["pii.secret"]
    assert secret not in outcome.text and "<SECRET_1>" in outcome.text
    assert ("pii.secret", "refuse", 1) in outcome.audit_entries()


def test_drop_marks_the_record_dropped():
    outcome = redactor(phone="drop").apply("call (415) 555-2671")
    assert outcome.dropped and outcome.refused == []
    assert "555-2671" not in outcome.text


def test_blocked_terms_are_whole_words_any_case():
    r = Redactor(Policy(blocked_terms=["Project Falcon", "nda"]), builtin_scanners(), KEY)
    assert r.apply("about PROJECT falcon under the NDA.").blocked_terms == 2
    clean = r.apply("the ndas and project falconry")
    assert clean.blocked_terms == 0 and not clean.dropped
    assert r.apply("project falcon").dropped
    refusing = Redactor(Policy(blocked_terms=["nda"], blocked_terms_action="refuse"), builtin_scanners(), KEY)
    outcome = refusing.apply("signed the NDA")
    assert outcome.refused == ["blocked_terms"] and not outcome.dropped
    assert ("blocked_terms", "refuse", 1) in outcome.audit_entries()


class BadgeScanner:
    """A plugin's scanner: 'EMP-1234' style staff badge numbers."""

    name = "toy-badges"
    types = ("badge",)

    def scan(self, text: str) -> list[Finding]:
        import re

        return [Finding("badge", m.start(), m.end(), self.name) for m in re.finditer(r"\bEMP-\d{4}\b", text)]


def test_plugin_scanner_types_get_the_default_action():
    r = Redactor(Policy(), [*builtin_scanners(), BadgeScanner()], KEY)
    outcome = r.apply("EMP-1234 mailed bob@example.com")
    assert outcome.text == "<BADGE_1> mailed <EMAIL_1>"
    assert outcome.actions["badge"] == "redact"
    masked = Redactor(Policy(default_action="mask"), [*builtin_scanners(), BadgeScanner()], KEY)
    assert masked.apply("EMP-1234").text == "***-****"


def test_placeholders_are_numbered_per_value_and_consistent_across_a_record():
    r = Redactor(Policy(), builtin_scanners(), KEY)
    placeholders = Placeholders()
    first = r.apply("From ann@example.com to bob@example.com", placeholders)
    second = r.apply("Reply to ANN@example.com, cc bob@example.com and eve@example.com", placeholders)
    assert first.text == "From <EMAIL_1> to <EMAIL_2>"
    assert second.text == "Reply to <EMAIL_1>, cc <EMAIL_2> and <EMAIL_3>"
    # a new record starts again at 1; counts per type never hold a value
    assert r.apply("bob@example.com").text == "<EMAIL_1>"
    assert second.findings == {"email": 3}


def test_allow_list_values_and_patterns_are_never_findings():
    policy = Policy(allow={"values": ["Support@Harbourline.example"], "patterns": [r"4111[ -]?1111[ -]?1111[ -]?1111"]})
    r = Redactor(policy, builtin_scanners(), KEY)
    outcome = r.apply("Mail support@harbourline.example or jo@harbourline.example; test card 4111 1111 1111 1111")
    assert outcome.text == "Mail support@harbourline.example or <EMAIL_1>; test card 4111 1111 1111 1111"
    assert outcome.findings == {"email": 1}
    with pytest.raises(ValueError, match="not a valid regular expression"):
        Policy(allow={"patterns": ["(unclosed"]})


def test_policy_naming_a_type_no_scanner_reports_is_an_error():
    with pytest.raises(ConfigError, match="emial"):
        Redactor(Policy(pii={"emial": "redact"}), builtin_scanners(), KEY)
    # the plugin's scanner makes its type known
    Redactor(Policy(pii={"badge": "drop"}), [*builtin_scanners(), BadgeScanner()], KEY)


def test_key_is_created_once_with_mode_0600(tmp_path: Path):
    key = load_or_create_key(tmp_path / "state")
    path = tmp_path / "state" / "governance.key"
    assert len(key) == 32 and path.read_bytes() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(tmp_path / "state") == key
    assert [p.name for p in path.parent.iterdir()] == ["governance.key"]  # no temp files left
    path.write_bytes(b"short")
    with pytest.raises(ConfigError, match="32 bytes"):
        load_or_create_key(tmp_path / "state")


def _create(folder: str) -> bytes:
    return load_or_create_key(Path(folder))


def test_concurrent_creation_agrees_on_one_key(tmp_path: Path):
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        keys = pool.map(_create, [str(tmp_path)] * 8)
    assert len(set(keys)) == 1
    assert (tmp_path / "governance.key").read_bytes() == keys[0]
