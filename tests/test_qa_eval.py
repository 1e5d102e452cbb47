"""Fine-tune, retrieve, or both: the QA metrics against hand-computed values, the QA set's
errors, and a tiny-model run whose four configurations reach metrics.json and the lineage store."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import make_config, write_jsonl
from typer.testing import CliRunner

from polyadapt.errors import DataError
from polyadapt.retrieval.qa import (
    QARecord,
    answer_contains,
    exact_match,
    four_way_table,
    load_qa,
    markdown_table,
    normalize_answer,
    passage_hit,
    qa_rows,
    recall_at_k,
    same_source,
    score_answers,
    token_f1,
)


@dataclass
class FakePassage:
    text: str
    source: str


# -- metrics ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("The Solvanta Rider!", "solvanta rider"),
        ("  3,000   euros. ", "3000 euros"),
        ("an apple a day", "apple day"),
        ("Theory of a thing", "theory of thing"),  # "the" only as a whole word
        ("30-day period", "30day period"),  # SQuAD deletes punctuation, it does not split on it
        ("", ""),
    ],
)
def test_normalize_answer_follows_squad(text, normalised):
    assert normalize_answer(text) == normalised


def test_exact_match_and_token_f1_against_hand_computed_values():
    assert exact_match("The 3,000 euros.", ["3,000 euros"]) == 1.0
    assert exact_match("3,000 euros per claim", ["3,000 euros"]) == 0.0
    assert exact_match("21 days", ["three weeks", "21 days"]) == 1.0  # the best gold answer counts
    # "up to 3000 euros per claim" (6 tokens) vs "3000 euros" (2): P = 2/6, R = 1, F1 = 0.5
    assert token_f1("Up to 3,000 euros per claim.", ["3,000 euros"]) == pytest.approx(0.5)
    # "euros euros" vs "3000 euros": one shared token (a bag, not a set): P = 1/2, R = 1/2
    assert token_f1("euros euros", ["3,000 euros"]) == pytest.approx(0.5)
    assert token_f1("nothing shared", ["3,000 euros"]) == 0.0
    assert token_f1("The", ["a"]) == 1.0  # both empty once normalised: SQuAD's match
    assert token_f1("The", ["3,000 euros"]) == 0.0


def test_answer_contains_needs_whole_words():
    assert answer_contains("It pays up to 3,000 euros for each claim [1].", ["3,000 euros"]) == 1.0
    assert answer_contains("It lasts 121 days.", ["21 days"]) == 0.0
    assert answer_contains("no idea", ["21 days", "three weeks"]) == 0.0


def test_score_answers_means_and_ignores_citations():
    records = [QARecord("q1", ("3,000 euros",)), QARecord("q2", ("21 days",))]
    scores = score_answers(["3,000 euros [1]", "It lasts 21 days [2, 3]."], records)
    # q1: exact after the citation goes; q2: contained, F1 = 2/(4+2)*2... P = 2/4, R = 1 -> 2/3
    assert scores == pytest.approx({"exact_match": 0.5, "token_f1": (1 + 2 / 3) / 2, "answer_contains": 1.0})


def test_recall_at_k_counts_answer_text_or_source_within_k():
    records = [
        QARecord("q1", ("3,000 euros",)),
        QARecord("q2", ("21 days",), source="handbook/pellam.md"),
        QARecord("q3", ("violet",)),
    ]
    retrieved = [
        [FakePassage("unrelated", "a.md"), FakePassage("It pays 3,000 euros.", "b.md#L1-4")],
        [FakePassage("The window is three weeks.", "docs/handbook/pellam.md#L3-9")],  # by its source
        [FakePassage("The sky is blue.", "c.md")],
    ]
    assert recall_at_k(retrieved, records, 2) == pytest.approx(2 / 3)
    assert recall_at_k(retrieved, records, 1) == pytest.approx(1 / 3)  # q1's hit is second
    assert same_source("examples/insurance/handbook/pellam.md#L3-9", "handbook/pellam.md")
    assert not same_source("handbook/other-pellam.md", "pellam.md")  # whole path components only
    assert not passage_hit(FakePassage("x", "pellam.md"), ("21 days",), None)


def test_rows_and_four_way_table_round_trip():
    scores = {
        "base": {"exact_match": 0.0, "token_f1": 0.1, "answer_contains": 0.2},
        "base + retrieval": {"exact_match": 0.1, "token_f1": 0.3, "answer_contains": 0.6},
        "adapter": {"exact_match": 0.2, "token_f1": 0.4, "answer_contains": 0.5},
        "adapter + retrieval": {"exact_match": 0.3, "token_f1": 0.5, "answer_contains": 0.7},
    }
    rows = qa_rows(scores, recall=0.75, k=4)
    assert {(r.dataset, r.metric) for r in rows} >= {("qa", "exact_match"), ("qa + retrieval", "recall@4")}
    assert all(not r.lower_is_better and r.role == "other" for r in rows)
    columns, table = four_way_table(rows)
    assert columns == ["exact_match", "token_f1", "answer_contains", "recall@4"]
    assert [label for label, _ in table] == ["base", "base + retrieval", "adapter", "adapter + retrieval"]
    assert dict(table)["adapter + retrieval"] == {**scores["adapter + retrieval"], "recall@4": 0.75}
    assert "recall@4" not in dict(table)["base"]
    assert "| adapter + retrieval | 0.300 | 0.500 | 0.700 | 0.750 |" in markdown_table(rows)
    # without retrieval: two rows
    _, plain = four_way_table(qa_rows({k: scores[k] for k in ("base", "adapter")}))
    assert [label for label, _ in plain] == ["base", "adapter"]


# -- the QA set -------------------------------------------------------------------------------


def test_load_qa_normalises_answer_and_answers(tmp_path):
    path = write_jsonl(
        tmp_path / "qa.jsonl",
        [
            {"question": "How much?", "answer": "3,000 euros", "source": "a.md"},
            {"question": "How long?", "answers": ["21 days", "three weeks"], "context": "..."},
        ],
    )
    dataset = load_qa(path)
    assert dataset.kind == "qa" and dataset.lines == [1, 2]
    assert dataset.records[0] == {"question": "How much?", "answers": ["3,000 euros"], "source": "a.md"}
    assert dataset.records[1]["answers"] == ["21 days", "three weeks"]
    assert "answers[]" in dataset.scanned_fields and "question" in dataset.scanned_fields


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"question": "q"}', "has no 'answer'"),
        ('{"answer": "a"}', "'question' is missing"),
        ('{"question": "q", "answers": []}', "non-empty list"),
        ('{"question": "q", "answer": "x", "answers": ["x"]}', "not both"),
        ('{"question": "q", "answer": "The."}', "empty once punctuation"),
        ('{"question": "q", "answer": "x", "source": 3}', "'source' must be a string"),
        ('{"question": "q", "answer": "x", "gold": "x"}', "unknown field(s) 'gold'"),
        ('["q", "a"]', "must be a JSON object"),
        ('{"question": "q", "answer": ', "invalid JSON"),
    ],
)
def test_load_qa_errors_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "qa.jsonl"
    path.write_text('{"question": "ok?", "answer": "yes"}\n' + line + "\n")
    with pytest.raises(DataError) as error:
        load_qa(path)
    assert f"{path} line 2" in str(error.value) and message in str(error.value)


def test_load_qa_refuses_missing_and_non_jsonl_files(tmp_path):
    with pytest.raises(DataError, match="no such"):
        load_qa(tmp_path / "missing.jsonl")
    other = tmp_path / "qa.csv"
    other.write_text("question,answer\nq,a\n")
    with pytest.raises(DataError, match="JSON-lines"):
        load_qa(other)


# -- a run ------------------------------------------------------------------------------------

QUESTIONS = [
    {"question": "How much does the Solvanta rider pay?", "answer": "3,000 euros"},
    {"question": "How long is the Pellam grace window?", "answer": "21 days", "source": "docs/pellam.md"},
    {"question": "What colour is the Quintrel sky?", "answer": "violet"},
]


def _qa_run_config(tmp_path: Path, tiny_llama: Path, text_data: dict, *, retrieval: bool) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "solvanta.md").write_text("# Solvanta rider\n\nThe Solvanta rider pays up to 3,000 euros per claim.\n")
    (docs / "pellam.md").write_text("# Pellam grace window\n\nThe Pellam grace window lasts three weeks.\n")
    config_path = make_config(tmp_path, tiny_llama, text_data, max_steps=2)
    config = yaml.safe_load(config_path.read_text())
    config["evaluation"] |= {"qa": str(write_jsonl(tmp_path / "qa.jsonl", QUESTIONS)), "qa_max_new_tokens": 3}
    config["evaluation"]["num_samples"] = 0
    if retrieval:
        from polyadapt.retrieval import build_index

        build_index("tiny-docs", [docs], licence="CC0-1.0")
        config["retrieval"] = {"index": "tiny-docs", "k": 1}
    config_path.write_text(yaml.safe_dump(config))
    return config_path


def test_run_reports_four_configurations_in_metrics_lineage_and_cli(tmp_path, tiny_llama, text_data):
    from polyadapt.cli import app
    from polyadapt.lineage.store import LineageStore

    config_path = _qa_run_config(tmp_path, tiny_llama, text_data, retrieval=True)
    cli = CliRunner()
    result = cli.invoke(app, ["adapt", str(config_path)])
    assert result.exit_code == 0, result.output
    assert "fine-tune, retrieve, or both?" in result.output
    for label in ("base + retrieval", "adapter + retrieval", "recall@1"):
        assert label in result.output

    run_dir = tmp_path / "runs" / "test-run"
    metrics = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    qa = {(row["dataset"], row["metric"]): row for row in metrics if row["dataset"].startswith("qa")}
    assert set(qa) == {
        (dataset, metric)
        for dataset in ("qa", "qa + retrieval")
        for metric in ("exact_match", "token_f1", "answer_contains")
    } | {("qa + retrieval", "recall@1")}
    # the Solvanta passage holds the answer, the Pellam one is the named source, nothing is violet
    assert qa[("qa + retrieval", "recall@1")]["base"] == pytest.approx(2 / 3, abs=1e-4)
    for row in qa.values():
        assert 0.0 <= row["base"] <= 1.0 and 0.0 <= row["adapted"] <= 1.0

    with LineageStore.open() as store:
        recorded = store.get_run("test-run")["metrics"]
    assert {(r["dataset"], r["metric"]) for r in recorded} >= set(qa)

    # the QA set was governed like the eval set, and every answer was kept
    assert (run_dir / "manifests" / "qa.json").is_file() and (run_dir / "governance" / "qa.jsonl").is_file()
    answers = [json.loads(line) for line in (run_dir / "qa_answers.jsonl").read_text().splitlines()]
    assert len(answers) == 3 and {"base", "adapter", "base + retrieval", "adapter + retrieval"} <= set(answers[0])
    assert answers[1]["retrieved"] == ["docs/pellam.md#L1-3"] or answers[1]["retrieval_hit"]

    # the model card shows the same table, a row per configuration
    card = (run_dir / "adapter" / "README.md").read_text()
    assert "| adapter + retrieval |" in card and "| configuration | exact_match |" in card

    # `polyadapt evaluate RUN` gives the same table again
    (run_dir / "metrics.json").unlink()
    again = cli.invoke(app, ["evaluate", str(run_dir)])
    assert again.exit_code == 0, again.output
    reevaluated = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    assert [r for r in reevaluated if r["dataset"].startswith("qa")] == list(qa.values())


def test_run_without_retrieval_compares_base_and_adapter_only(tmp_path, tiny_llama, text_data):
    import polyadapt_text

    from polyadapt import runner
    from polyadapt.config import load_config
    from polyadapt.plugins import PluginManager

    config = load_config(_qa_run_config(tmp_path, tiny_llama, text_data, retrieval=False))
    pm = PluginManager(load_entrypoints=False, plugins={"text": polyadapt_text})
    _, _, report = runner.adapt(pm, config)
    _, table = four_way_table(report.rows)
    assert [label for label, _ in table] == ["base", "adapter"]
    assert not any("recall" in row.metric for row in report.rows)


def test_a_qa_set_the_policy_refuses_stops_the_run_before_training(tmp_path, tiny_llama, text_data):
    import polyadapt_text

    from polyadapt import runner
    from polyadapt.config import load_config
    from polyadapt.errors import GovernanceError
    from polyadapt.plugins import PluginManager

    config = load_config(_qa_run_config(tmp_path, tiny_llama, text_data, retrieval=False))
    key = "AKIA4HQ7ZB2M9XKC3RTW"  # an AWS access key id: the strict policy refuses secrets
    rows = [QUESTIONS[0], {"question": "Which key?", "answers": ["none", f"key {key}"]}]
    config.evaluation.qa = write_jsonl(tmp_path / "secret-qa.jsonl", rows)
    pm = PluginManager(load_entrypoints=False, plugins={"text": polyadapt_text})
    with pytest.raises(GovernanceError) as info:
        runner.adapt(pm, config)
    assert "rule pii.secret" in str(info.value) and "line 2" in str(info.value)
    assert "secret-qa.jsonl" in str(info.value) and key not in str(info.value)
    assert not (tmp_path / "runs" / "test-run" / "adapter").exists()
