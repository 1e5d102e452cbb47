"""Tests of polyadapt-keywords with the fixtures of polyadapt.testing (pytest loads them)."""

from pathlib import Path

from polyadapt_keywords.scanner import EmployeeIdScanner

DEMO = Path(__file__).resolve().parent.parent / "demo"


def test_scanner_finds_employee_ids_only():
    text = "Ask EMP-123456, not EMP-12345, XEMP-123456 or EMP-1234567."
    assert [text[f.start : f.end] for f in EmployeeIdScanner().scan(text)] == ["EMP-123456"]


def test_plugin_loads_with_its_task_and_scanner(plugin_manager):
    pm = plugin_manager("keywords")  # the installed plugin, through its entry point
    assert pm.task("domain-keywords").plugin == "keywords"
    assert [scanner.name for scanner in pm.scanners()] == ["employee-id"]


def test_demo_run_redacts_employee_ids_and_learns_the_domain(polyadapt_run):
    result = polyadapt_run(DEMO / "run.yaml", plugins=["keywords"]).assert_success()

    assert result.findings("train") == {"employee_id": 3}  # redacted before training
    (row,) = result.metrics["metrics"]
    assert row["adapted"] < row["base"]  # uniform over the 39 words: 39
    assert "ledger" in result.metrics["samples"][0]["adapted"]
    assert (result.dir / "adapter" / "keywords.safetensors").is_file()
    written = "".join(p.read_text(errors="replace") for p in result.dir.rglob("*") if p.is_file())
    assert "EMP-" not in written  # no raw employee id anywhere in the run folder


def test_policy_can_refuse_employee_ids(polyadapt_run, tmp_path):
    policy = tmp_path / "refuse.yaml"
    policy.write_text("name: no-employee-ids\npii:\n  employee_id: refuse\n")
    result = polyadapt_run(DEMO / "run.yaml", plugins=["keywords"], overrides=[f"governance.policy={policy}"])
    result.assert_failure(match="employee_id")
    assert result.record["status"] == "refused"
