"""Preference pairs (prompt, chosen, rejected): the shapes preference sets are written in are
read, bad pairs are quarantined with their line and reason, other fields are kept, and every
text in them reaches governance."""

from __future__ import annotations

import json

import pytest

from polyadapt.errors import DataError
from polyadapt.governance.engine import govern_dataset
from polyadapt.governance.policy import Policy
from polyadapt.governance.redact import Redactor
from polyadapt.governance.scanners import builtin_scanners
from polyadapt.modalities.preference import load_preference_dataset


def write(path, rows):
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def test_plain_and_chat_formatted_pairs_are_normalised(tmp_path):
    path = write(
        tmp_path / "pairs.jsonl",
        [
            {"prompt": "Can I cancel?", "chosen": "Yes, within 14 days.", "rejected": "No.", "source": "faq"},
            {
                "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Deductible?"}],
                "chosen": [{"role": "assistant", "content": "250 euros."}],
                "rejected": {"role": "assistant", "content": "Ask someone else."},
            },
        ],
    )
    dataset = load_preference_dataset(path)
    first, second = dataset.records
    assert first == {
        "source": "faq",
        "prompt": [{"role": "user", "content": "Can I cancel?"}],
        "chosen": "Yes, within 14 days.",
        "rejected": "No.",
    }
    assert second["prompt"][-1] == {"role": "user", "content": "Deductible?"}
    assert (second["chosen"], second["rejected"]) == ("250 euros.", "Ask someone else.")
    assert "source" in dataset.scanned_fields


def test_bad_pairs_are_quarantined_with_line_and_reason(tmp_path):
    path = write(
        tmp_path / "pairs.jsonl",
        [
            {"prompt": "ok", "chosen": "a", "rejected": "b"},
            {"prompt": "no rejected", "chosen": "a"},
            "{broken json",
            {"prompt": "same", "chosen": "x", "rejected": " x "},
            {
                "prompt": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
                "chosen": "c",
                "rejected": "d",
            },
            {"prompt": "", "chosen": "a", "rejected": "b"},
        ],
    )
    dataset = load_preference_dataset(path)
    assert len(dataset.records) == 1
    reasons = {q.line: q.reason for q in dataset.quarantined}
    assert reasons[2].startswith("missing rejected")
    assert 3 in reasons
    assert reasons[4].startswith("same answers")
    assert reasons[5].startswith("bad prompt: the conversation must end with a user turn")
    assert reasons[6].startswith("missing prompt")


def test_no_usable_pair_is_a_clear_error(tmp_path):
    path = write(tmp_path / "pairs.jsonl", [{"prompt": "q", "chosen": "a"}])
    with pytest.raises(DataError, match="no usable preference pairs.*line 1: missing rejected"):
        load_preference_dataset(path)


def test_every_text_of_a_pair_is_governed(tmp_path):
    path = write(
        tmp_path / "pairs.jsonl",
        [
            {
                "prompt": "Mail me at jane.roe@example.org",
                "chosen": "Call +44 20 7946 0958.",
                "rejected": "Card 4111 1111 1111 1111",
                "note": "from ann.lee@example.com",
            },
        ],
    )
    dataset = load_preference_dataset(path)
    policy = Policy(max_finding_share=1.0)
    governed = govern_dataset(
        dataset,
        policy=policy,
        redactor=Redactor(policy, builtin_scanners(), b"k" * 32),
        modality="text",
        licence="CC-BY-4.0",
    )
    text = json.dumps(governed.dataset.records)
    for raw in ("jane.roe@example.org", "7946 0958", "4111 1111 1111 1111", "ann.lee@example.com"):
        assert raw not in text
