"""polyadapt.testing, the pytest plugin for plugin authors: its fixtures and helpers.

(The tiny text model fixture is used by most of this suite through ``tiny_llama``; the
template's and the example plugin's own tests use every fixture from a pytest run of
their own: tests/test_plugin_template.py, tests/test_example_plugin.py.)
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from plugin_helpers import TinyPlugin, TinyTask

from polyadapt.errors import PluginError
from polyadapt.hookspecs import hookimpl
from polyadapt.modalities.records import RunData
from polyadapt.testing import (
    TINY_MODEL_NAMES,
    TINY_MODELS,
    RunResult,
    build_tiny_model,
    register_tiny_model,
    write_jsonl,
)


class Ungoverned(TinyTask):
    """A task that reads its data itself and never passes it through ``run.admit``."""

    def load_run_data(self, run):
        dataset = self.load_dataset(run, run.config.data.train, "train")
        return RunData(train=dataset.records, heldout=[], sources=[dataset])


def echo_plugin(admit: bool = True) -> TinyPlugin:
    """A plugin with one task, ``echo-test``; ``admit=False``: one that skips governance."""
    return TinyPlugin("echo", TinyTask("echo-test") if admit else Ungoverned("echo-test"))


class FromTheFuture:
    POLYADAPT_API = ">=3,<4"

    @hookimpl
    def polyadapt_tasks(self):
        return [TinyTask("later")]


@pytest.fixture
def notes(tmp_path):
    return write_jsonl(
        tmp_path / "notes.jsonl",
        [{"text": f"note {i} about the ledger"} for i in range(9)] + [{"text": "write to ana@example.com"}],
    )


def test_polyadapt_run_goes_through_the_real_pipeline(polyadapt_run, polyadapt_state, notes, tmp_path):
    result = polyadapt_run(
        {"task": "echo-test", "base_model": "none", "data": {"train": str(notes), "licence": "MIT"}},
        plugins={"echo": echo_plugin()},
    ).assert_success()

    assert result.ok and result.record["status"] == "completed" and result.record["plugin"] == "echo"
    assert result.findings("train") == {"email": 1}  # governance ran: the address was redacted
    assert [d["action"] for d in result.decisions("train")].count("redacted") == 1
    assert result.metrics["metrics"][0]["improved"] is True
    assert result.dir == tmp_path / "polyadapt" / "runs" / "run-1"
    assert "max_steps: 3" in result.config_path.read_text()  # the test defaults fill the gaps
    assert (polyadapt_state / "lineage.db").is_file()  # the lineage store is this test's own
    assert any("run folder" in message for message in result.messages)


def test_a_failed_run_is_a_result_that_explains_itself(polyadapt_run, notes):
    result = polyadapt_run(
        {"task": "echo-test", "base_model": "none", "data": {"train": str(notes)}}, plugins={"echo": echo_plugin()}
    )
    assert not result.ok
    with pytest.raises(AssertionError) as failure:
        result.assert_success()
    message = str(failure.value)
    assert "GovernanceError" in message and "declares no licence" in message
    assert "run.json status: refused" in message and "Traceback" in message
    result.assert_failure(match="declares no licence")
    with pytest.raises(AssertionError, match="does not contain"):
        result.assert_failure(match="something else")
    with pytest.raises(AssertionError, match="expected KeyError"):
        result.assert_failure(error=KeyError)


def test_a_plugin_that_skips_admit_is_refused(polyadapt_run, notes):
    result = polyadapt_run(
        {"task": "echo-test", "base_model": "none", "data": {"train": str(notes), "licence": "MIT"}},
        plugins={"echo": echo_plugin(admit=False)},
    )
    result.assert_failure(match="run.admit(dataset, role='train')", error=PluginError)


def test_polyadapt_run_takes_yaml_files_with_overrides(polyadapt_run, notes, tmp_path):
    config = tmp_path / "project" / "run.yaml"
    config.parent.mkdir()
    (config.parent / "notes.jsonl").write_text(notes.read_text())
    config.write_text(
        "task: echo-test\nbase_model: none\ndata:\n  train: notes.jsonl\n  licence: MIT\n"
        "output:\n  dir: runs\n  adapter_name: notes\n"
    )
    result = polyadapt_run(config, plugins={"echo": echo_plugin()}, overrides=["training.seed=5"]).assert_success()
    assert result.record["seed"] == 5
    assert not (config.parent / "runs").exists()  # runs land in the test's folder, not the project
    assert result.record["provenance"]["name"] == "notes"
    bad = polyadapt_run(config, plugins={"echo": echo_plugin()}, overrides=["training.max_steps=0"])
    bad.assert_failure(match="max_steps")


def test_plugin_manager_holds_only_the_named_plugins(plugin_manager):
    assert set(plugin_manager(echo=echo_plugin()).infos) == {"echo"}
    pm = plugin_manager("text", echo=echo_plugin())  # text: installed, loaded through its entry point
    assert set(pm.infos) == {"text", "echo"} and pm.infos["text"].distribution == "polyadapt-text"
    assert set(plugin_manager().infos) == set()
    assert "POLYADAPT_LOAD_PLUGINS" not in os.environ  # restored after loading


def test_plugin_manager_fails_with_the_reason(plugin_manager, monkeypatch):
    with pytest.raises(PluginError, match="not-installed: not installed"):
        plugin_manager("not-installed")
    with pytest.raises(PluginError, match="supports polyadapt plugin API >=3,<4 but this core implements 2.0"):
        plugin_manager(later=FromTheFuture())
    pm = plugin_manager(later=FromTheFuture(), echo=echo_plugin(), strict=False)
    assert pm.infos["later"].status == "broken" and pm.task("echo-test").plugin == "echo"
    monkeypatch.setenv("POLYADAPT_LOAD_PLUGINS", "text")
    plugin_manager(echo=echo_plugin())
    assert os.environ["POLYADAPT_LOAD_PLUGINS"] == "text"


def test_speech_and_image_tiny_models_come_from_their_plugins(tiny_base_model):
    pytest.importorskip("polyadapt_speech")
    pytest.importorskip("polyadapt_image")
    import whisper

    checkpoint = tiny_base_model("speech")
    assert checkpoint.suffix == ".pt" and whisper.load_model(str(checkpoint), device="cpu").dims.n_text_layer >= 1
    pipeline = tiny_base_model("image")
    assert (pipeline / "model_index.json").is_file() and (pipeline / "unet").is_dir()


def test_tiny_models_per_modality(tiny_base_model, tiny_text_model, tmp_path, monkeypatch):
    assert tiny_base_model("text") == tiny_text_model
    assert (tiny_text_model / "config.json").is_file() and (tiny_text_model / "tokenizer.json").is_file()
    with pytest.raises(LookupError, match="no tiny base model called 'video'.*register_tiny_model"):
        tiny_base_model("video")
    assert tiny_text_model.name == "tiny-llama"  # the base's display name at serving
    monkeypatch.setitem(TINY_MODELS, "toy", None)
    monkeypatch.setitem(TINY_MODEL_NAMES, "toy", None)
    register_tiny_model("toy", lambda folder: folder.parent / "built", name="tiny-toy")
    assert build_tiny_model("toy", tmp_path / "x") == tmp_path / "built"
    assert tiny_base_model("toy").parent.name.startswith("models") and TINY_MODEL_NAMES["toy"] == "tiny-toy"


def test_run_result_reads_an_unwritten_folder(tmp_path):
    result = RunResult(config_path=tmp_path / "c.yaml", dir=tmp_path / "missing")
    assert result.record == {} and result.metrics == {} and result.findings() == {}
    with pytest.raises(AssertionError, match="status None"):
        result.assert_success()


def test_the_pytest_plugin_is_registered_and_imports_no_torch(tmp_path):
    # in a fresh interpreter outside the checkout: what an installed polyadapt offers
    code = (
        "import sys; from importlib import metadata;"
        "(entry,) = [ep for ep in metadata.entry_points(group='pytest11') if ep.name == 'polyadapt'];"
        "assert entry.value == 'polyadapt.testing.pytest_plugin', entry; entry.load();"
        "import polyadapt.testing;"
        "heavy = [m for m in ('torch', 'transformers', 'peft', 'accelerate', 'numpy') if m in sys.modules];"
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
