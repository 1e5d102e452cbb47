"""Labelled records (polyadapt.modalities.labelled): labels kept, bad rows quarantined."""

from __future__ import annotations

import json

import pytest

from polyadapt.errors import DataError
from polyadapt.modalities.labelled import load_labelled_dataset


def test_labels_and_extra_fields_survive_bad_rows_are_quarantined(tmp_path):
    path = tmp_path / "labelled.jsonl"
    path.write_text(
        '{"text": "A tree fell on the garage.", "label": "claim", "channel": "email", "priority": 2}\n'
        '{"text": "Charged twice this month.", "label": " billing "}\n'
        "{not json\n"
        '{"text": "   ", "label": "claim"}\n'
        "\n"
        '{"text": "Please add my wife as a driver."}\n'
        '{"text": "Refund the overpayment.", "label": ""}\n'
        '{"text": "Add a second car.", "label": 3}\n'
        '["a", "list"]\n'
    )
    dataset = load_labelled_dataset(path)

    assert dataset.kind == "labelled"
    assert dataset.scanned_fields == ("text",)
    assert dataset.records == [
        {"text": "A tree fell on the garage.", "label": "claim", "channel": "email", "priority": 2},
        {"text": "Charged twice this month.", "label": "billing"},
        {"text": "Add a second car.", "label": "3"},
    ]
    assert dataset.lines == [1, 2, 8]
    reasons = {q.line: q.reason for q in dataset.quarantined}
    assert set(reasons) == {3, 4, 6, 7, 9}
    assert reasons[3].startswith("invalid JSON")
    assert reasons[4].startswith("missing text") and "'text'" in reasons[4]
    assert reasons[6].startswith("missing label") and "'label'" in reasons[6]
    assert reasons[7].startswith("missing label")
    assert reasons[9].startswith("not an object")
    assert dataset.summary()["quarantine_reasons"] == {
        "invalid JSON": 1,
        "missing text": 1,
        "missing label": 2,
        "not an object": 1,
    }
    assert all("tree" not in json.dumps(q.to_dict()) for q in dataset.quarantined)  # reasons, never content


def test_own_field_names_csv_and_parquet(tmp_path):
    csv_path = tmp_path / "tickets.csv"
    csv_path.write_text("message,intent,agent\nMy bill is wrong,billing,ana\n,claim,bo\nCar hit a wall,,cy\n")
    dataset = load_labelled_dataset(csv_path, text_field="message", label_field="intent")
    assert dataset.records == [{"message": "My bill is wrong", "intent": "billing", "agent": "ana"}]
    assert dataset.scanned_fields == ("message",)
    reasons = {q.line: q.reason for q in dataset.quarantined}
    assert set(reasons) == {3, 4}  # the header is line 1
    assert "'message'" in reasons[3] and "'intent'" in reasons[4]

    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet_path = tmp_path / "tickets.parquet"
    pq.write_table(pa.table({"text": ["Storm damage", "Late fee"], "label": [0, None]}), parquet_path)
    parquet = load_labelled_dataset(parquet_path)
    assert parquet.records == [{"text": "Storm damage", "label": "0"}]
    assert parquet.quarantined[0].line is None and parquet.quarantined[0].reason.startswith("missing label")


def test_no_usable_record_is_a_data_error(tmp_path):
    path = tmp_path / "unlabelled.jsonl"
    path.write_text('{"text": "no label here"}\n')
    with pytest.raises(DataError, match="no usable labelled records.*line 1: missing label"):
        load_labelled_dataset(path)
