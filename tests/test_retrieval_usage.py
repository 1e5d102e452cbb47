"""A run records the retrieval index it used by content (root hash), not by name only.

Where a run config names ``retrieval: {index, k}``, run.json and the lineage store (role
``retrieval``) hold the index's root hash; where the evaluation answered with retrieved
passages, metrics.json and the store (role ``qa_retrieval``) hold the hash of the index it
searched. A rebuild over other documents under the same name is then visible.
"""

from __future__ import annotations

from pathlib import Path

from plugin_helpers import TinyPlugin, TinyTask

from polyadapt import runner
from polyadapt.governance.policy import Policy
from polyadapt.lineage.store import LineageStore
from polyadapt.plugins import PluginManager
from polyadapt.retrieval import build_index, open_index
from polyadapt.types import EvalReport, MetricRow

LENIENT = Policy(name="docs", max_finding_share=1.0, detectors={"ner": "off"})


class SearchingTask(TinyTask):
    """A tiny task whose evaluation searches the run's index, as QA evaluation does."""

    def evaluate(self, run, adapter, data):
        self.calls.append("evaluate")
        retrieval = run.config.retrieval
        found = open_index(retrieval.index).search("how long is the warranty", retrieval.k)
        hit = float(any("warranty" in passage.text for passage in found))
        return EvalReport(
            rows=[
                MetricRow("domain", "loss", 2.0, 1.0, role="domain"),
                MetricRow("qa + retrieval", f"recall@{retrieval.k}", hit, hit, lower_is_better=False),
            ]
        )


def documents(folder: Path, warranty: str) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "warranty.md").write_text(f"# Warranty\n\nThe warranty lasts {warranty}.\n")
    (folder / "shipping.md").write_text("# Shipping\n\nShipping takes five working days.\n")
    return folder


def config(tmp_path: Path, index: str = "handbook", name: str = "r1") -> str:
    data = tmp_path / "train.jsonl"
    data.write_text('{"text": "a note"}\n{"text": "another note"}\n')
    return (
        f"task: tiny-task\nbase_model: none\ndata:\n  train: {data}\n  licence: MIT\n"
        f"output:\n  name: {name}\nretrieval:\n  index: {index}\n  k: 2\n"
    )


def links(run_id: str) -> dict[str, dict]:
    with LineageStore.open() as store:
        run = store.get_run(run_id)
    assert run is not None
    return {d["role"]: d for d in run["datasets"]}


def test_run_and_evaluation_record_the_index_root_hash(polyadapt_run, tmp_path):
    docs = documents(tmp_path / "docs", "two years")
    built = build_index("handbook", [docs], licence="CC0-1.0", policy=LENIENT)
    plugin = TinyPlugin("tiny", SearchingTask("tiny-task"))
    first = polyadapt_run(config(tmp_path), plugins={"tiny": plugin}).assert_success()

    recorded = first.record["retrieval"]
    assert recorded["index"] == "handbook" and recorded["k"] == 2
    assert recorded["root_hash"] == built.root_hash and recorded["documents_root_hash"] == built.documents_root_hash
    assert first.metrics["retrieval"]["root_hash"] == built.root_hash  # what the evaluation searched
    linked = links(first.run.id)
    for role in ("retrieval", "qa_retrieval"):
        assert linked[role]["root_hash"] == built.root_hash and linked[role]["source"] == "index:handbook"
    assert linked["retrieval"]["manifest"]["records"] == built.passages  # the build's passage manifest
    assert any("retrieval index handbook: root hash" in message for message in first.messages)

    # the index is rebuilt over other documents under the same name
    rebuilt = build_index("handbook", [documents(docs, "five years")], licence="CC0-1.0", policy=LENIENT)
    assert rebuilt.root_hash != built.root_hash
    second = polyadapt_run(config(tmp_path, name="r2"), plugins={"tiny": plugin}).assert_success()
    assert second.record["retrieval"]["root_hash"] == rebuilt.root_hash
    with LineageStore.open() as store:
        diff = store.diff(first.run.id, second.run.id)
    assert diff["data"]["retrieval"]["same"] is False and diff["data"]["qa_retrieval"]["same"] is False
    assert diff["data"]["retrieval"]["added"] == 1 and diff["data"]["retrieval"]["removed"] == 1

    # evaluating the first run again records the index it searches now, beside the one it trained with
    pm = PluginManager(load_entrypoints=False, plugins={"tiny": plugin})
    run, adapter = runner.load_run(pm, first.dir)
    report = runner.evaluate(pm, run, adapter)
    assert report.rows[1].dataset == "qa + retrieval"
    assert first.metrics["retrieval"]["root_hash"] == rebuilt.root_hash  # metrics.json rewritten
    assert first.record["retrieval"]["root_hash"] == built.root_hash
    linked = links(first.run.id)
    assert linked["retrieval"]["root_hash"] == built.root_hash
    assert linked["qa_retrieval"]["root_hash"] == rebuilt.root_hash


def test_an_index_not_built_is_recorded_by_name_and_stops_nothing(polyadapt_run, tmp_path):
    result = polyadapt_run(config(tmp_path, index="later"), plugins={"tiny": TinyPlugin("tiny")}).assert_success()
    recorded = result.record["retrieval"]
    assert recorded["index"] == "later" and recorded["root_hash"] is None and "not found" in recorded["missing"]
    assert "retrieval" not in result.metrics  # no answer used retrieved passages
    assert set(links(result.run.id)) == {"train"}


def test_a_run_without_retrieval_records_none(polyadapt_run, tmp_path):
    text = config(tmp_path).split("retrieval:")[0]
    result = polyadapt_run(text, plugins={"tiny": TinyPlugin("tiny")}).assert_success()
    assert "retrieval" not in result.record and "retrieval" not in result.metrics
