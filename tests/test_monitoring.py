"""Drift monitoring: input statistics, the training profile, PSI, the server's traffic
records and ``polyadapt monitor``."""

from __future__ import annotations

import json
import random

import pytest
from typer.testing import CliRunner

from polyadapt.cli import app as cli_app
from polyadapt.errors import PolyadaptError
from polyadapt.lineage.store import LineageStore
from polyadapt.monitoring.cli import since_stamp
from polyadapt.monitoring.drift import compare, psi
from polyadapt.monitoring.features import input_features, text_features
from polyadapt.monitoring.plot import svg_report, terminal_chart
from polyadapt.monitoring.profile import (
    PROFILE_FILE,
    InputSample,
    build_profile,
    default_input_sample,
    read_profile,
    write_profile,
)

ENGLISH = [
    "The policy covers water damage to the kitchen and the bathroom of the insured house.",
    "Is the claim for the broken window covered if the storm was not reported in time?",
    "Please explain what the deductible is for a claim on the garden shed this year.",
    "We have to file the claim within thirty days of the damage, as the contract says.",
]
GERMAN = [
    "Die Versicherung zahlt nicht für den Schaden, der durch das Hochwasser entstanden ist.",
    "Ich habe eine Frage zu der Rechnung und dem Vertrag, den wir im Mai unterschrieben haben.",
]


def english_prompts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.sample(ENGLISH, rng.randint(1, 2))) for _ in range(n)]


def test_text_features_measure_length_script_language_and_unknown_words():
    english = text_features(ENGLISH[0], vocabulary={"the", "policy", "covers", "water", "damage", "to", "and", "of"})
    assert english["language"] == "en" and english["script"] == "LATIN"
    assert english["words"] == 15 and english["chars"] == len(ENGLISH[0])
    assert 0 < english["oov_share"] < 0.6  # kitchen, bathroom, insured, house, ... are new
    assert text_features(GERMAN[0])["language"] == "de"
    russian = text_features("Страховка не покрывает ущерб от наводнения в этом году.")
    assert russian["script"] == "CYRILLIC" and russian["non_ascii_share"] > 0.7
    assert "language" not in text_features("12345 6789") and "script" not in text_features("12345")
    # a task's own numbers are kept; a number that is no number is left out
    assert input_features(None, {"audio_seconds": 3.5, "bad": float("nan")}) == {"audio_seconds": 3.5}


def test_the_default_input_of_a_record_is_what_a_request_would_ask():
    chat = {"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]}
    assert default_input_sample(chat) == InputSample("Hi?")
    assert default_input_sample({"prompt": "Q", "completion": "A"}) == InputSample("Q")
    assert default_input_sample({"text": "plain"}) == InputSample("plain")
    assert default_input_sample({"audio": "a.wav"}) is None


def test_the_profile_keeps_only_words_several_records_share_and_round_trips(tmp_path):
    texts = [*english_prompts(60), "Call Mrs Okonkwo-Haverford about the claim."]
    profile = build_profile(InputSample(t) for t in texts)
    assert "claim" in profile.vocabulary and "okonkwo" not in profile.vocabulary  # one record only
    assert profile.samples == 61 and sum(profile.numeric["chars"].counts) == 61
    assert profile.categorical["language"]["en"] >= 60
    write_profile(tmp_path, profile)
    again = read_profile(tmp_path)
    assert again is not None and again.to_json() == profile.to_json()
    assert read_profile(tmp_path / "none") is None
    (tmp_path / PROFILE_FILE).write_text('{"format": "something else"}')
    with pytest.raises(PolyadaptError, match=PROFILE_FILE):
        read_profile(tmp_path)


def test_psi_is_zero_for_the_same_shares_and_large_for_a_shift():
    assert psi([100, 100, 100], [10, 10, 10]) == pytest.approx(0, abs=0.01)
    assert psi([100, 100, 100], [0, 0, 30]) > 1
    with pytest.raises(ValueError):
        psi([1, 2], [1, 2, 3])


def test_compare_flags_what_moved_and_only_that():
    profile = build_profile(InputSample(t) for t in english_prompts(200, seed=1))
    same = [input_features(t, vocabulary=profile.vocabulary) for t in english_prompts(100, seed=2)]
    report = compare(profile, same)
    assert report.requests == 100 and not report.drifted, [(f.name, f.psi) for f in report.features]
    assert {f.verdict for f in report.features} <= {"ok", "watch"}

    german = [input_features(t * 3, vocabulary=profile.vocabulary) for t in GERMAN * 50]
    drifted = {f.name for f in compare(profile, german).drifted}
    assert {"chars", "language", "oov_share"} <= drifted

    few = compare(profile, german[:5])
    assert {f.verdict for f in few.features} == {"too few"} and not few.drifted


def test_charts_show_both_distributions():
    profile = build_profile(InputSample(t) for t in english_prompts(100))
    report = compare(profile, [input_features(t, vocabulary=profile.vocabulary) for t in GERMAN * 20])
    chars = next(f for f in report.features if f.name == "language")
    chart = terminal_chart(chars)
    assert "train" in chart and "served" in chart and "(new)" in chart
    svg = svg_report(report, "run <1>")
    assert svg.startswith("<svg") and svg.count("<rect") > 10 and "run &lt;1&gt;" in svg


def test_since_accepts_spans_dates_and_all():
    import datetime as dt

    now = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.timezone.utc)
    assert since_stamp("24h", now) == "2026-12-04T12:00:00.000Z"
    assert since_stamp("30m", now) == "2026-12-05T11:30:00.000Z"
    assert since_stamp("2026-12-01") == "2026-12-01T00:00:00.000Z"
    assert since_stamp("all") is None
    with pytest.raises(PolyadaptError, match="--since 'yesterday'"):
        since_stamp("yesterday")


# ---------------------------------------------------------------------------------------
# The server records traffic; `polyadapt monitor` reads it
# ---------------------------------------------------------------------------------------


def _masking_redactor():
    from polyadapt.gate import build_redactor
    from polyadapt.governance.policy import load_policy
    from polyadapt.plugins import PluginManager

    return build_redactor(PluginManager(load_entrypoints=False, plugins={}), load_policy(None))


def test_the_recorder_stores_statistics_never_text_and_masks_samples(tmp_path):
    from polyadapt.serving.traffic import TrafficRecorder, masking

    run_dir = tmp_path / "run"
    (run_dir / "adapter").mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"run_id": "run-1"}))
    write_profile(run_dir, build_profile(InputSample(t) for t in english_prompts(50)))
    store = LineageStore.open(f"sqlite:///{tmp_path / 'lineage.db'}")
    recorder = TrafficRecorder(store, sample_rate=1.0, mask=masking(_masking_redactor()), interval_s=60)
    secret = "Write to jane.doe@example.org about the claim for the window."
    recorder.note("base:insurance", run_dir / "adapter", secret)
    recorder.note("base", None, "A question for the base model.")
    recorder.close()
    rows = store.served_inputs("run-1")
    assert len(rows) == 1 and rows[0]["model"] == "base:insurance"
    assert rows[0]["features"]["language"] == "en" and "oov_share" in rows[0]["features"]
    assert "jane.doe" not in json.dumps(rows[0]["features"])
    assert rows[0]["sample"] is not None and "jane.doe@example.org" not in rows[0]["sample"]
    assert "[EMAIL]" in rows[0]["sample"]


def test_a_store_error_never_reaches_the_request(tmp_path, caplog):
    from polyadapt.serving.traffic import TrafficRecorder

    class BrokenStore:
        def record_served_inputs(self, rows):
            raise RuntimeError("database is gone")

    recorder = TrafficRecorder(BrokenStore(), interval_s=60)  # type: ignore[arg-type]
    recorder.note("base", None, "hello there")
    recorder.close()
    assert recorder.dropped == 1 and "not recorded" in caplog.text


def test_served_traffic_is_recorded_and_monitor_reports_its_drift(tiny_llama, tmp_path):
    pytest.importorskip("peft")
    from fastapi.testclient import TestClient

    from polyadapt.serving.app import build_app_from_runs
    from polyadapt.serving.settings import ServeSettings
    from tests.test_serving import make_run_folder, plugin_manager

    run_dir = make_run_folder(tmp_path, tiny_llama, "insurance", seed=1)
    (run_dir / "run.json").write_text(json.dumps({"run_id": "insurance-run"}))
    write_profile(run_dir, build_profile(InputSample(t) for t in english_prompts(200)))
    db = f"sqlite:///{tmp_path / 'lineage.db'}"
    LineageStore.open(db).start_run(
        "insurance-run",
        task="text-generation",
        plugin="text",
        config_hash="0" * 64,
        config={},
        seed=0,
        environment={},
        base_model=str(tiny_llama),
        run_dir=str(run_dir),
    )
    app = build_app_from_runs(
        plugin_manager(),
        [run_dir],
        audit_log=tmp_path / "audit.jsonl",
        settings=ServeSettings(require_keys=False),
        traffic_store=LineageStore.open(db),
    )
    model = f"{tiny_llama.name}:insurance"
    with TestClient(app) as client:
        models = [m["id"] for m in client.get("/v1/models").json()["data"]]
        model = next(m for m in models if m.endswith(":insurance"))
        for text in GERMAN * 20:
            answer = client.post("/v1/completions", json={"model": model, "prompt": text * 3, "max_tokens": 1})
            assert answer.status_code == 200, answer.text
    # leaving the client ran the app's shutdown, which writes what was still queued

    runner = CliRunner()
    plot = tmp_path / "drift.svg"
    result = runner.invoke(cli_app, ["monitor", str(run_dir), "--db", db, "--json", "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["requests"] == 40 and report["drift"] is True
    drifted = {f["name"] for f in report["features"] if f["verdict"] == "drift"}
    assert {"chars", "language"} <= drifted
    assert plot.read_text().startswith("<svg")

    table = runner.invoke(cli_app, ["monitor", "insurance-run", "--db", db, "--fail-on-drift"])
    assert table.exit_code == 3 and "drift" in table.output and "language" in table.output
    nothing = runner.invoke(cli_app, ["monitor", str(run_dir), "--db", db, "--since", "2099-01-01"])
    assert nothing.exit_code == 0 and "no served requests" in nothing.output
    unknown = runner.invoke(cli_app, ["monitor", "no-such-run", "--db", db])
    assert unknown.exit_code == 1 and "no run folder, run id or registered adapter" in unknown.output
