"""The policy chooses the detectors: named-entity recognition on, auto or off; batched scans;
names numbered consistently across a record; run artifacts name sources by portable paths."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from polyadapt.errors import ConfigError
from polyadapt.fileio import portable_path
from polyadapt.governance import scanners as scanners_module
from polyadapt.governance.engine import govern_dataset
from polyadapt.governance.policy import Policy
from polyadapt.governance.redact import Redactor
from polyadapt.governance.scanners import builtin_scanners, person_scanner
from polyadapt.modalities.records import Dataset
from test_governance_ner import ner_or_skip

KEY = b"k" * 32


@pytest.fixture
def no_model(tmp_path, monkeypatch):
    """A model folder that does not exist (the extra may be installed or not)."""
    monkeypatch.setenv("POLYADAPT_SPACY_MODEL", str(tmp_path / "absent"))
    monkeypatch.setattr(scanners_module, "_warned", set())


def test_ner_on_without_the_model_stops_with_the_way_to_install_it(no_model):
    with pytest.raises(ConfigError, match=r"detectors\.ner is 'on'.*(fetch-ner|polyadapt\[ner\])"):
        builtin_scanners(Policy(detectors={"ner": "on"}))


def test_ner_auto_without_the_model_warns_once_and_runs_the_patterns(no_model, caplog):
    with caplog.at_level(logging.WARNING, logger="polyadapt.governance.scanners"):
        first = builtin_scanners(Policy())
        second = builtin_scanners(Policy())
    assert [s.name for s in first] == [s.name for s in second] and "ner" not in [s.name for s in first]
    warnings = [r.getMessage() for r in caplog.records if "person names are not detected" in r.getMessage()]
    assert len(warnings) == 1 and "detectors.ner: off" in warnings[0]
    # a policy naming person still validates: the type is known even when its detector is off
    Redactor(Policy(pii={"person": "drop"}), first, KEY)


def test_ner_off_and_no_policy_mean_patterns_only():
    assert "ner" not in [s.name for s in builtin_scanners(Policy(detectors={"ner": "off"}))]
    assert "ner" not in [s.name for s in builtin_scanners()]
    assert person_scanner.__doc__


@pytest.fixture(scope="module")
def ner_redactor():
    ner_or_skip()
    redactor = Redactor(Policy(), builtin_scanners(Policy(detectors={"ner": "on"})), KEY)
    redactor.load()
    return redactor


def test_names_keep_their_number_across_the_messages_of_a_record(ner_redactor, monkeypatch):
    (ner,) = [s for s in ner_redactor.scanners if s.name == "ner"]
    batches = []
    scan_many = ner.scan_many
    monkeypatch.setattr(ner, "scan_many", lambda texts, **kw: batches.append(len(texts)) or scan_many(texts, **kw))
    monkeypatch.setattr(ner, "scan", lambda text: pytest.fail("texts are scanned in one batch, not one by one"))
    chat = {
        "messages": [
            {"role": "user", "content": "Hi, I'm Maria Lopez and my neighbour Tom Reilly says the claim is late."},
            {"role": "assistant", "content": "Thanks Maria Lopez, I have written to Tom Reilly about it."},
        ]
    }
    dataset = Dataset(
        records=[chat, {"messages": [{"role": "user", "content": "Is water damage covered?"}]}],
        source=Path("chats.jsonl"),
        kind="chat",
        scanned_fields=("messages[].content",),
    )
    governed = govern_dataset(
        dataset,
        policy=Policy(max_finding_share=1.0),
        redactor=ner_redactor,
        modality="text",
        licence="CC-BY-4.0",
    )
    user, assistant = (m["content"] for m in governed.dataset.records[0]["messages"])
    assert user == "Hi, I'm <PERSON_1> and my neighbour <PERSON_2> says the claim is late."
    assert assistant == "Thanks <PERSON_1>, I have written to <PERSON_2> about it."
    assert batches == [3] and governed.summary["findings_by_type"] == {"person": 4}
    assert "ner" in governed.summary["detectors"]
    assert "Maria" not in governed.decisions_jsonl()


def test_portable_paths_name_no_machine(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert portable_path(tmp_path / "data" / "train.jsonl") == "data/train.jsonl"
    assert portable_path(tmp_path) == "."
    assert portable_path("data/train.jsonl") == "data/train.jsonl"  # already relative
    assert portable_path(Path.home() / "corpora" / "x.jsonl", root=tmp_path / "elsewhere") == "~/corpora/x.jsonl"
    assert portable_path("/opt/shared/x.jsonl", root=tmp_path) == "/opt/shared/x.jsonl"
    assert portable_path("s3://bucket/x.jsonl") == "s3://bucket/x.jsonl"


def test_data_summary_and_quarantine_rows_hold_no_absolute_path(tmp_path, monkeypatch):
    from polyadapt.modalities.records import Quarantined

    monkeypatch.chdir(tmp_path)
    source = tmp_path / "data" / "train.jsonl"
    dataset = Dataset(records=[{"text": "a"}], source=source, kind="text", scanned_fields=("text",))
    dataset.quarantined = [Quarantined(source=str(source), index=1, reason="not JSON", line=2)]
    assert dataset.summary()["source"] == "data/train.jsonl"
    assert dataset.quarantined[0].to_dict()["source"] == "data/train.jsonl"
