"""Text records and sequences: validation, chat masking, packing."""

from __future__ import annotations

import json

import pytest

from polyadapt.errors import DataError
from polyadapt.modalities.records import split_holdout
from polyadapt.modalities.text import load_text_dataset
from polyadapt_text.data import IGNORE, Collator, build_examples, tokenize_chat


@pytest.fixture(scope="module")
def tokenizer(tiny_llama):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_llama)


def test_bad_records_are_quarantined_with_line_and_reason(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "fine"}\n{not json\n{"text": "   "}\n\n["a", "list"]\n{"text": "also fine"}\n')
    dataset = load_text_dataset(path)
    assert [r["text"] for r in dataset.records] == ["fine", "also fine"]
    reasons = {q.line: q.reason for q in dataset.quarantined}
    assert set(reasons) == {2, 3, 5}
    assert reasons[2].startswith("invalid JSON") and reasons[3].startswith("empty text")
    assert reasons[5].startswith("not an object")
    assert dataset.summary()["quarantine_reasons"] == {"invalid JSON": 1, "empty text": 1, "not an object": 1}


def test_instruction_pairs_become_chats_and_csv_parquet_load(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"instruction": "Define X", "input": "in insurance", "output": "X is a rider."}]
    csv_path = tmp_path / "d.csv"
    csv_path.write_text("instruction,input,output\nDefine X,in insurance,X is a rider.\n")
    parquet_path = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet_path)
    for path in (csv_path, parquet_path):
        dataset = load_text_dataset(path)
        assert dataset.kind == "instruction"
        assert dataset.records == [
            {
                "messages": [
                    {"role": "user", "content": "Define X\n\nin insurance"},
                    {"role": "assistant", "content": "X is a rider."},
                ]
            }
        ]


def test_unknown_shape_and_missing_file_are_clear_errors(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"body": "x"}) + "\n")
    with pytest.raises(DataError, match="no record has the fields of a known kind"):
        load_text_dataset(path)
    with pytest.raises(DataError, match="no such data file"):
        load_text_dataset(tmp_path / "absent.jsonl")
    (tmp_path / "d.txt").write_text("text\n")
    with pytest.raises(DataError, match="cannot tell the format"):
        load_text_dataset(tmp_path / "d.txt")


def test_fingerprint_depends_on_content_only(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text('{"text": "one"}\n{"text": "two"}\n')
    b.write_text('{"text":"one"}\n\n{"text":   "two"}\n')
    c = tmp_path / "c.jsonl"
    c.write_text('{"text": "one"}\n{"text": "two!"}\n')
    assert (
        load_text_dataset(a).fingerprint() == load_text_dataset(b).fingerprint() != load_text_dataset(c).fingerprint()
    )


def test_split_is_reproducible_and_disjoint():
    records = [{"text": str(i)} for i in range(50)]
    train_a, held_a = split_holdout(records, 0.2, seed=1)
    train_b, held_b = split_holdout(records, 0.2, seed=1)
    assert held_a == held_b and len(held_a) == 10 and len(train_a) == 40
    assert not {r["text"] for r in held_a} & {r["text"] for r in train_a}
    assert split_holdout(records, 0.2, seed=2)[1] != held_a


def test_chat_loss_only_on_assistant_tokens(tokenizer):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is a rider?"},
        {"role": "assistant", "content": "An add-on."},
        {"role": "user", "content": "And a premium?"},
        {"role": "assistant", "content": "The price."},
    ]
    example = tokenize_chat(tokenizer, messages, max_length=512)
    learned = tokenizer.decode([t for t, label in zip(example.input_ids, example.labels) if label != IGNORE])
    assert learned == "An add-on.<|im_end|>\nThe price.<|im_end|>\n"
    assert tokenizer.decode(example.input_ids) == tokenizer.apply_chat_template(messages, tokenize=False)


def test_chat_without_template_uses_fallback_layout(tokenizer):
    import copy

    plain = copy.deepcopy(tokenizer)
    plain.chat_template = None
    example = tokenize_chat(plain, [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}], 512)
    learned = plain.decode([t for t, label in zip(example.input_ids, example.labels) if label != IGNORE])
    assert learned == "Hello\n"


def test_packing_fills_sequences_and_keeps_every_target(tokenizer):
    records = [{"text": f"The policyholder filed claim number {i}."} for i in range(30)]
    packed = build_examples(tokenizer, records, max_length=64, packing=True)
    unpacked = build_examples(tokenizer, records, max_length=64, packing=False)
    assert len(packed) < len(unpacked)
    assert all(len(e.input_ids) == 64 for e in packed[:-1])
    assert sum(len(e.input_ids) for e in packed) == sum(len(e.input_ids) for e in unpacked)

    chats = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"answer {i}"}]}
        for i in range(12)
    ]
    packed_chats = build_examples(tokenizer, chats, max_length=128, packing=True)
    single = build_examples(tokenizer, chats, max_length=128, packing=False)
    assert len(packed_chats) < len(single)
    count = lambda examples: sum(sum(label != IGNORE for label in e.labels) for e in examples)  # noqa: E731
    assert count(packed_chats) == count(single)
    assert all(len(e.input_ids) <= 128 for e in packed_chats)


def test_collator_counts_targets_and_tokens(tokenizer):
    examples = build_examples(tokenizer, [{"text": "a b c"}, {"text": "the claim was filed"}], 64, packing=False)
    batch = Collator(tokenizer.pad_token_id)(examples)
    assert batch["num_tokens"] == sum(len(e.input_ids) for e in examples)
    assert batch["num_items"] == sum(len(e.input_ids) - 1 for e in examples)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape


def test_fields_a_kind_does_not_read_are_kept_and_scanned(tmp_path):
    from polyadapt.modalities.text import load_text_dataset

    path = tmp_path / "labelled.jsonl"
    path.write_text(
        '{"text": "The claim was paid.", "label": "claim", "id": 7}\n'
        '{"instruction": "Summarise", "response": "Done.", "label": "ops", "note": "from ticket 12"}\n'
    )
    plain = load_text_dataset(path, kind="text")
    assert plain.records[0] == {"text": "The claim was paid.", "label": "claim", "id": 7}
    pairs = load_text_dataset(path, kind="instruction")
    (record,) = pairs.records
    assert record["label"] == "ops" and record["note"] == "from ticket 12"
    assert "instruction" not in record and record["messages"][-1] == {"role": "assistant", "content": "Done."}
    # kept string fields reach governance like the text does
    assert {"label", "note"} <= set(pairs.scanned_fields)
