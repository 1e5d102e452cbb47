"""Governance policies: the strict default, the shipped files, and clear errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from polyadapt.errors import ConfigError
from polyadapt.governance.policy import Policy, load_policy, parse_policy

POLICIES = Path(__file__).resolve().parent.parent / "configs" / "policies"


def test_strict_file_is_exactly_the_default():
    assert load_policy(POLICIES / "strict.yaml") == Policy()
    assert load_policy(None) == Policy()


def test_strict_default_values():
    policy = Policy()
    assert policy.name == "strict"
    assert "CC-BY-4.0" in policy.licences.allowed and "CC-BY-NC-4.0" not in policy.licences.allowed
    assert policy.licences.require_declared is True
    assert policy.consent.required == {}  # tasks whose records show people require consent themselves
    assert policy.pii["secret"] == "refuse" and policy.pii["email"] == "redact"
    assert policy.pii["ip_address"] == "mask"
    assert policy.action_for("person_name") == "redact"  # a plugin's type: default_action
    assert policy.max_finding_share == 0.2
    assert policy.promotion.max_general_regression == 0.05


def test_research_policy_is_looser():
    policy = load_policy(POLICIES / "research.yaml")
    assert policy.name == "research"
    assert policy.pii["email"] == "hash" and policy.pii["ip_address"] == "allow"
    assert set(Policy().licences.allowed) < set(policy.licences.allowed)
    assert policy.pii["secret"] == "refuse"


def _error(tmp_path: Path, body: str) -> str:
    path = tmp_path / "policy.yaml"
    path.write_text(textwrap.dedent(body))
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    message = str(info.value)
    assert str(path) in message
    return message


def test_bad_action_names_file_line_field_and_value(tmp_path: Path):
    message = _error(
        tmp_path,
        """\
        name: mine
        pii:
          email: redact
          phone: scramble
        """,
    )
    assert "line 4" in message
    assert "pii.phone" in message
    assert "scramble" in message
    assert "'redact'" in message  # the allowed values are listed


def test_unknown_field_is_an_error_with_its_line(tmp_path: Path):
    message = _error(
        tmp_path,
        """\
        name: mine
        licences:
          alowed: [MIT]
        """,
    )
    assert "line 3" in message and "licences.alowed" in message and "unknown field" in message


def test_unknown_licence_id_is_named(tmp_path: Path):
    message = _error(
        tmp_path,
        """\
        licences:
          allowed: [MIT, Not-A-Licence-9]
        """,
    )
    assert "licences.allowed" in message and "Not-A-Licence-9" in message and "line 2" in message


def test_share_out_of_range_and_blocked_action(tmp_path: Path):
    message = _error(tmp_path, "max_finding_share: 1.5\nblocked_terms_action: redact\n")
    assert "line 1, max_finding_share" in message and "1.5" in message
    assert "line 2, blocked_terms_action" in message


def test_missing_file_and_non_mapping(tmp_path: Path):
    with pytest.raises(ConfigError, match="no such policy file"):
        load_policy(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="must be a mapping"):
        parse_policy("- a\n- b\n", "list.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_policy("pii: [unclosed\n", "broken.yaml")


def test_partial_file_keeps_other_defaults(tmp_path: Path):
    path = tmp_path / "p.yaml"
    path.write_text("name: lax\npii:\n  email: allow\n")
    policy = load_policy(path)
    # the types it names change; the others keep their strict action (secrets still refuse)
    assert policy.pii == Policy().pii | {"email": "allow"}
    assert policy.pii["secret"] == "refuse"
    assert policy.licences == Policy().licences
