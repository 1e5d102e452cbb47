"""Governing a dataset: licence, consent, refusals, decisions without raw values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from polyadapt.governance import GovernanceError
from polyadapt.governance.engine import check_licence, govern_dataset
from polyadapt.governance.policy import Policy
from polyadapt.governance.redact import Redactor
from polyadapt.governance.scanners import builtin_scanners
from polyadapt.modalities.records import Dataset

KEY = b"k" * 32
SOURCE = Path("/data/claims/train.jsonl")


def make_dataset(records, lines=None, fields=("text", "messages[].content")) -> Dataset:
    return Dataset(
        source=SOURCE,
        kind="text",
        records=list(records),
        scanned_fields=fields,
        lines=list(lines) if lines is not None else [2 * i + 1 for i in range(len(records))],
    )


def govern(dataset, policy=None, modality="text", licence="CC-BY-4.0", role="train", consent_default=False):
    policy = policy or Policy()
    return govern_dataset(
        dataset,
        policy=policy,
        redactor=Redactor(policy, builtin_scanners(), KEY),
        modality=modality,
        licence=licence,
        role=role,
        consent_default=consent_default,
    )


# -- licence -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "licence", ["CC-BY-4.0", "mit", "MIT OR GPL-3.0-only", "MIT AND Apache-2.0", "(CC-BY-NC-4.0 AND MIT) OR CC0-1.0"]
)
def test_allowed_licences_pass(licence):
    assert check_licence(Policy(), licence, "d.jsonl")


@pytest.mark.parametrize("licence", ["CC-BY-NC-4.0", "MIT AND GPL-3.0-only", "GPL-3.0-only OR CC-BY-NC-4.0"])
def test_disallowed_licences_are_refused(licence):
    with pytest.raises(GovernanceError) as info:
        check_licence(Policy(), licence, "d.jsonl")
    message = str(info.value)
    assert message.startswith("d.jsonl: rule licence:") and "not allowed by policy 'strict'" in message
    assert "licences.allowed" in message


def test_unknown_and_invalid_licences_name_the_problem():
    with pytest.raises(GovernanceError, match="unknown SPDX licence id.*'Foo-License'"):
        check_licence(Policy(), "MIT AND Foo-License", "d.jsonl")
    with pytest.raises(GovernanceError, match="not a valid SPDX licence expression"):
        check_licence(Policy(), "MIT OR", "d.jsonl")


def test_missing_licence_says_to_set_data_licence():
    with pytest.raises(GovernanceError, match=r"rule licence: .*data\.licence"):
        check_licence(Policy(), None, "d.jsonl")
    lax = Policy(licences={"require_declared": False})
    assert check_licence(lax, None, "d.jsonl") is None
    assert check_licence(lax, " ", "d.jsonl") is None


def test_licence_refusal_stops_govern_dataset():
    with pytest.raises(GovernanceError, match="rule licence"):
        govern(make_dataset([{"text": "hello"}]), licence="CC-BY-NC-4.0")


# -- consent -------------------------------------------------------------------------------


def test_missing_consent_names_the_records_by_line():
    records = [
        {"text": "a", "consent": True},
        {"text": "b"},
        {"text": "c", "consent": "no"},
        {"text": "d", "consent": "yes"},
    ]
    with pytest.raises(GovernanceError) as info:
        govern(make_dataset(records, lines=[1, 2, 3, 4]), modality="speech", consent_default=True)
    message = str(info.value)
    assert str(SOURCE) in message and "rule consent" in message
    assert "2 of 4 records" in message and "line 2, line 3" in message and "line 1" not in message
    assert "add consent" in message and "consent.required" in message


def test_consent_present_or_not_required_passes():
    records = [{"text": "a", "consent": True}, {"text": "b", "consent": "granted"}]
    assert govern(make_dataset(records), modality="speech").summary["kept"] == 2
    assert govern(make_dataset([{"text": "a"}]), modality="text").summary["kept"] == 1
    custom = Policy(consent={"required": {"speech": True}, "field": "speaker_consent"})
    with pytest.raises(GovernanceError, match="'speaker_consent'"):
        govern(make_dataset(records), policy=custom, modality="speech")
    # a task that requires consent by default is overruled by a policy that names its modality
    waived = Policy(consent={"required": {"speech": False}})
    assert govern(make_dataset([{"text": "a"}]), policy=waived, modality="speech", consent_default=True)
    with pytest.raises(GovernanceError, match="rule consent"):
        govern(make_dataset([{"text": "a"}]), modality="speech", consent_default=True)


def test_consent_list_is_capped_at_ten():
    records = [{"text": str(i)} for i in range(25)]
    with pytest.raises(GovernanceError) as info:
        govern(make_dataset(records, lines=range(1, 26)), modality="image", consent_default=True)
    assert "line 10 and 15 more" in str(info.value) and "line 11" not in str(info.value)


# -- records -------------------------------------------------------------------------------


PLANTED = ["ann@example.com", "(415) 555-2671", "4111 1111 1111 1111", "203.0.113.45"]


def pii_dataset() -> Dataset:
    records = [
        {"text": f"Customer {PLANTED[0]} asked about the premium."},
        {
            "messages": [
                {"role": "user", "content": f"Call me at {PLANTED[1]}"},
                {"role": "assistant", "content": "Sure."},
            ]
        },
        {"text": f"Card {PLANTED[2]} and host {PLANTED[3]}."},
    ] + [{"text": f"Plain sentence number {i} about the deductible."} for i in range(12)]
    return make_dataset(records)


def test_records_are_redacted_decided_and_lines_stay_aligned():
    original = pii_dataset()
    snapshot = json.dumps(original.records)
    result = govern(original)
    assert json.dumps(original.records) == snapshot  # the input is not changed
    records = result.dataset.records
    assert records[0]["text"] == "Customer <EMAIL_1> asked about the premium."
    assert records[1]["messages"][0]["content"] == "Call me at <PHONE_1>"
    assert records[1]["messages"][1] == {"role": "assistant", "content": "Sure."}
    assert records[2]["text"] == "Card <PAYMENT_CARD_1> and host ***.*.***.**."
    assert result.dataset.lines == original.lines and result.dataset.source == SOURCE
    assert result.dataset.scanned_fields == original.scanned_fields
    assert [d.action for d in result.decisions[:4]] == ["redacted", "redacted", "redacted", "kept"]
    assert result.decisions[2].findings == {"ip_address": 1, "payment_card": 1}
    assert result.decisions[2].line == 5 and result.decisions[3].reason == "no findings"
    assert result.summary == {
        "records_in": 15,
        "kept": 12,
        "redacted": 3,
        "dropped": 0,
        "findings_by_type": {"email": 1, "ip_address": 1, "payment_card": 1, "phone": 1},
        "finding_share": 0.2,
        "policy": "strict",
        "licence": "CC-BY-4.0",
        "role": "train",
        "modality": "text",
        "consent": "not required",
        # which detectors looked, so lineage tells a run with name detection from one without
        "detectors": sorted(scanner.name for scanner in builtin_scanners()),
        # where the findings are: counts by rule, the files with the most first
        "findings_by_rule": {"pii.email": 1, "pii.ip_address": 1, "pii.payment_card": 1, "pii.phone": 1},
        "files_with_findings": 1,
        "worst_files": [
            {
                "file": str(SOURCE),
                "findings": 4,
                "rules": {"pii.email": 1, "pii.ip_address": 1, "pii.payment_card": 1, "pii.phone": 1},
            }
        ],
    }


def test_decisions_summary_and_dataset_repr_never_hold_raw_values():
    result = govern(pii_dataset(), policy=Policy(pii={"phone": "drop"}))
    dumped = result.decisions_jsonl() + json.dumps(result.summary) + json.dumps(result.dataset.records)
    for value in PLANTED:
        assert value not in dumped
    assert "ann@" not in dumped and "2671" not in dumped


def test_dropped_records_leave_the_dataset_with_their_line():
    result = govern(pii_dataset(), policy=Policy(pii={"phone": "drop"}))
    assert len(result.dataset.records) == 14
    assert 3 not in result.dataset.lines and len(result.dataset.lines) == 14
    dropped = result.decisions[1]
    assert dropped.action == "dropped" and dropped.line == 3
    assert dropped.reason == "dropped by rule pii.phone (policy action drop)"
    assert result.summary["dropped"] == 1


def test_allowed_findings_are_kept_and_do_not_count_towards_the_share():
    allow_all = Policy(pii={k: "allow" for k in Policy().pii}, max_finding_share=0.0)
    result = govern(pii_dataset(), policy=allow_all)
    assert result.summary["finding_share"] == 0.0 and result.summary["redacted"] == 0
    assert result.decisions[0].action == "kept" and "allowed by policy: email" in result.decisions[0].reason
    assert result.dataset.records[0]["text"].count(PLANTED[0]) == 1


def test_secret_refuses_the_run_naming_file_rule_and_lines_not_the_value():
    secret = "ghp_" + "Ab12" * 9
    records = [{"text": "fine"}, {"text": f"token {secret}"}, {"text": "ok"}, {"text": f"again {secret}"}]
    with pytest.raises(GovernanceError) as info:
        govern(make_dataset(records, lines=[1, 2, 3, 4]))
    message = str(info.value)
    assert str(SOURCE) in message and "rule pii.secret: 2 record(s): line 2, line 4" in message
    assert "Fix the data" in message and "change the policy" in message
    assert secret not in message and "Ab12" not in message


def test_blocked_term_refusal_and_drop():
    records = [{"text": "about Project Falcon"}, {"text": "nothing"}]
    refusing = Policy(blocked_terms=["project falcon"], blocked_terms_action="refuse")
    with pytest.raises(GovernanceError, match="rule blocked_terms: 1 record"):
        govern(make_dataset(records), policy=refusing)
    dropping = Policy(blocked_terms=["project falcon"])
    result = govern(make_dataset(records), policy=dropping)
    assert [d.action for d in result.decisions] == ["dropped", "kept"]
    assert "blocked_terms" in result.decisions[0].reason and "Falcon" not in result.decisions_jsonl()


def test_too_many_records_with_findings_refuses_with_the_share():
    records = [{"text": f"mail user{i}@example.com"} for i in range(3)] + [{"text": "plain"}] * 7
    with pytest.raises(GovernanceError) as info:
        govern(make_dataset(records, lines=range(1, 11)))
    message = str(info.value)
    assert "max_finding_share 0.2: 30% of records have findings (3 of 10; findings by type: email 3)" in message
    assert "line 1, line 2, line 3" in message and str(SOURCE) in message
    assert govern(make_dataset(records), policy=Policy(max_finding_share=0.3)).summary["redacted"] == 3


def test_every_record_dropped_is_an_error():
    with pytest.raises(GovernanceError, match="dropped every record"):
        govern(
            make_dataset([{"text": "call (415) 555-2671"}]), policy=Policy(pii={"phone": "drop"}, max_finding_share=1)
        )


def test_same_input_same_result():
    a, b = govern(pii_dataset()), govern(pii_dataset())
    assert a.decisions_jsonl() == b.decisions_jsonl() and a.summary == b.summary
    assert a.dataset.records == b.dataset.records and a.dataset.fingerprint() == b.dataset.fingerprint()


def test_records_without_line_numbers_are_named_by_index():
    records = [{"text": "key AKIAIOSFODNN7EXAMPLF"}]
    with pytest.raises(GovernanceError, match="record #0"):
        govern(make_dataset(records, lines=[]))
