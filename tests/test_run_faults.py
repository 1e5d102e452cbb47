"""Bad run settings and hostile files around a run: each gets one clear line, and runs never
collide, escape their folder or leave debris behind."""

from __future__ import annotations

import codecs
import json
import os
import threading
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from conftest import make_config
from polyadapt import runner
from polyadapt.cli import app
from polyadapt.config import load_config, parse_config
from polyadapt.errors import ConfigError, PolyadaptError
from polyadapt.governance.policy import load_policy
from polyadapt.textfiles import TextDecodeError, decode_text

MINIMAL = "task: text-generation\nbase_model: {id: some/model}\ndata: {train: train.jsonl}\n"


@pytest.mark.parametrize("name", ["../../x", "..", "/etc/cron.d/x", "a/b", "a\x00b", ".hidden", "x" * 129])
def test_run_names_that_would_leave_the_output_folder_are_refused(name: str) -> None:
    text = MINIMAL + "output: " + json.dumps({"name": name}) + "\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "run.yaml")
    message = str(caught.value)
    assert "run.yaml" in message and "line 4, output.name" in message
    assert "so that the run stays inside dir" in message


def test_ordinary_run_names_are_accepted() -> None:
    for name in ("insurance-v2", "run_2026.12.05", "A1"):
        assert parse_config(MINIMAL + f"output: {{name: {name}}}\n", "run.yaml").output.name == name


def _config(tmp_path: Path, **output: object):
    text = MINIMAL + "output: " + json.dumps({"dir": str(tmp_path / "runs"), **output}) + "\n"
    return parse_config(text, str(tmp_path / "run.yaml"), base_dir=tmp_path)


def test_identical_configs_started_in_the_same_second_get_their_own_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "_new_run_id", lambda config: "text-generation-20261205-081500-abcdef12")
    barrier = threading.Barrier(4)
    made: list[Path] = []
    errors: list[BaseException] = []

    def start() -> None:
        barrier.wait()
        try:
            made.append(runner._make_run_dir(_config(tmp_path), resume=False))
        except BaseException as exc:  # collected, so a failure names itself
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    names = sorted(path.name for path in made)
    base = "text-generation-20261205-081500-abcdef12"
    assert names == sorted([base, f"{base}-2", f"{base}-3", f"{base}-4"])
    for path in made:
        assert (path / runner.CONFIG_FILE).is_file()
        assert [p.name for p in path.iterdir()] == [runner.CONFIG_FILE]  # no temporary file left


def test_a_named_run_is_never_taken_twice(tmp_path: Path) -> None:
    first = runner._make_run_dir(_config(tmp_path, name="mine"), resume=False)
    assert first.name == "mine"
    with pytest.raises(PolyadaptError, match="already holds a run; choose another output.name"):
        runner._make_run_dir(_config(tmp_path, name="mine"), resume=False)


def test_output_dir_that_is_a_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "runs").write_text("not a folder")
    with pytest.raises(ConfigError, match=r"output.dir .*runs is a file; point output.dir at a folder"):
        runner._make_run_dir(_config(tmp_path), resume=False)


def test_resume_clears_what_a_killed_process_was_writing(tmp_path: Path) -> None:
    config = _config(tmp_path, name="killed")
    run_dir = runner._make_run_dir(config, resume=False)
    (run_dir / runner.RUN_RECORD).write_text(json.dumps({"config_hash": config.hash(), "status": "running"}))
    checkpoints = run_dir / "checkpoints"
    (checkpoints / "step-00000002").mkdir(parents=True)
    (checkpoints / "step-00000002" / "state.json").write_text("{}")
    debris = [
        checkpoints / ".step-00000004.k2j3.tmp",
        run_dir / ".adapter.x8q1.tmp",
        checkpoints / ".step-00000002.old",
    ]
    for folder in debris:
        folder.mkdir()
        (folder / "half-written.safetensors").write_bytes(b"\0" * 10)
    (run_dir / ".run.json.a1b2.tmp").write_text("{")

    assert runner._make_run_dir(config, resume=True) == run_dir
    assert not any(path.exists() for path in debris)
    assert not (run_dir / ".run.json.a1b2.tmp").exists()
    assert (checkpoints / "step-00000002" / "state.json").is_file()  # real checkpoints stay
    assert (run_dir / runner.RUN_RECORD).is_file()


# -- config and policy files that are not what they should be ---------------------------


def test_config_and_policy_files_of_the_wrong_kind_get_one_clear_line(tmp_path: Path) -> None:
    folder = tmp_path / "configs"
    folder.mkdir()
    with pytest.raises(ConfigError, match=r"configs: is a folder; the config file is a YAML file"):
        load_config(folder)

    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="is not a regular file .*FIFO"):  # and does not block
        load_config(fifo)

    binary = tmp_path / "model.yaml"
    binary.write_bytes(b"\x1f\x8b\x08\x00" + os.urandom(64))
    with pytest.raises(ConfigError, match=r"model.yaml: looks like gzip, not UTF-8 text; the config file must be YAML"):
        load_config(binary)

    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"task: text-generation\n# caf\xe9\n")
    with pytest.raises(ConfigError, match=r"byte 0xe9 at line 2, column 6 .*iconv"):
        load_config(latin)

    missing = tmp_path / "nowhere" / "run.yaml"
    with pytest.raises(ConfigError, match=r"no such config file \(the folder .*nowhere does not exist either\)"):
        load_config(missing)


def test_utf16_and_bom_configs_are_read() -> None:
    text = "task: text-generation\n"
    assert decode_text(codecs.BOM_UTF8 + text.encode()) == text
    assert decode_text(codecs.BOM_UTF16_LE + text.encode("utf-16-le")) == text
    assert decode_text(codecs.BOM_UTF16_BE + text.encode("utf-16-be")) == text
    assert decode_text(codecs.BOM_UTF32_LE + text.encode("utf-32-le")) == text
    with pytest.raises(TextDecodeError, match="UTF-16 .*without a byte-order mark.*iconv"):
        decode_text(text.encode("utf-16-le"))


def test_utf16_config_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_bytes(codecs.BOM_UTF16_LE + MINIMAL.encode("utf-16-le"))
    assert load_config(path).task == "text-generation"


@pytest.mark.parametrize("content", ["", "\n\n", "# only a comment\n# and another\n"])
def test_an_empty_policy_file_is_refused_not_read_as_the_default(tmp_path: Path, content: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError, match="policy.yaml: the policy file is empty"):
        load_policy(path)


# -- bounds from the model --------------------------------------------------------------


def test_max_length_beyond_the_models_positions_is_refused_before_training(tiny_llama, text_data, tmp_path):
    import transformers

    positions = transformers.AutoConfig.from_pretrained(tiny_llama).max_position_embeddings
    config_path = make_config(tmp_path, tiny_llama, text_data, max_steps=2, max_length=10_000_000)
    result = CliRunner().invoke(app, ["adapt", str(config_path)])
    assert result.exit_code != 0
    output = " ".join(result.output.split())
    assert "training.max_length is 10,000,000 tokens" in output
    assert f"reads at most {positions:,} positions" in output
    assert "Traceback" not in result.output
    run_dir = tmp_path / "runs" / "test-run"
    assert not list(run_dir.glob("checkpoints/step-*"))  # refused before a step was taken


def test_base_model_folder_holding_data_is_named(text_data, tmp_path):
    data_folder = tmp_path / "not-a-model"
    data_folder.mkdir()
    (data_folder / "train.jsonl").write_text('{"text": "hello"}\n')
    (data_folder / "config.json").write_text("this is not json")
    config_path = tmp_path / "run.yaml"
    config = yaml.safe_load(make_config(tmp_path, data_folder, text_data).read_text())
    config_path.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(app, ["adapt", str(config_path)])
    assert result.exit_code != 0
    output = " ".join(result.output.split())
    assert "base_model" in output and "holds no model that can be loaded" in output
    assert "Traceback" not in result.output


# -- damaged files polyadapt wrote itself -----------------------------------------------


def test_a_damaged_adapter_record_is_named(tmp_path: Path) -> None:
    import polyadapt_text

    from polyadapt.plugins import PluginManager

    config = _config(tmp_path, name="done")
    run_dir = runner._make_run_dir(config, resume=False)
    (run_dir / "adapter").mkdir()
    (run_dir / "adapter.json").write_bytes(b'{"path": "adapter", "base_mo\xff')  # torn by a crash
    pm = PluginManager(load_entrypoints=False, plugins={"text": polyadapt_text})
    with pytest.raises(PolyadaptError, match=r"adapter.json: the adapter record is damaged .*restore it"):
        runner.load_run(pm, run_dir)


def test_a_damaged_run_record_is_not_resumed_and_is_named(tmp_path: Path) -> None:
    config = _config(tmp_path, name="torn")
    run_dir = runner._make_run_dir(config, resume=False)
    (run_dir / runner.RUN_RECORD).write_text('{"config_hash": "')
    with pytest.raises(PolyadaptError, match="no unfinished run of this config"):
        runner._make_run_dir(config, resume=True)


def test_a_torn_audit_line_is_skipped_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from polyadapt.governance.audit import AuditLog

    path = tmp_path / "audit.jsonl"
    path.write_bytes(b'{"event": "a"}\n{"event": "b", "cou\n\xff\xfe\n{"event": "c"}\n')
    entries = AuditLog(path).read()
    assert [entry["event"] for entry in entries] == ["a", "c"]
    assert "2 damaged line(s) skipped (line 2, 3)" in caplog.text


def test_a_signalled_stop_is_recorded_as_interrupted_whatever_error_ends_the_run(
    tiny_llama, text_data, tmp_path, monkeypatch
) -> None:
    """Under several processes the process that takes SIGTERM may next fail on a collective
    call whose peer already stopped: that error is the stop's consequence, so the run says
    interrupted (and --resume continues it), not failed."""
    import polyadapt_text
    from polyadapt_text import loss as text_loss

    from polyadapt import interrupts
    from polyadapt.plugins import PluginManager

    pm = PluginManager(load_entrypoints=False, plugins={"text": polyadapt_text})
    config = load_config(make_config(tmp_path, tiny_llama, text_data, max_steps=4))
    real_loss, calls = text_loss.summed_loss, {"n": 0}

    def peer_gone(model, batch):
        calls["n"] += 1
        if calls["n"] == 2:
            interrupts.request_stop()  # as the SIGTERM handler does before it raises
            raise RuntimeError("[gloo] Connection closed by peer")
        return real_loss(model, batch)

    monkeypatch.setattr(text_loss, "summed_loss", peer_gone)
    monkeypatch.setattr(interrupts, "_requested", False)
    with pytest.raises(RuntimeError, match="peer"):
        runner.adapt(pm, config)
    (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"

    # the same error without a stop asked for is a failure
    monkeypatch.setattr(interrupts, "_requested", False)
    calls["n"] = 0

    def broken(model, batch):
        raise RuntimeError("[gloo] Connection closed by peer")

    monkeypatch.setattr(text_loss, "summed_loss", broken)
    (tmp_path / "again").mkdir()
    config = load_config(make_config(tmp_path / "again", tiny_llama, text_data, max_steps=4))
    config.output.name = "test-run-2"
    with pytest.raises(RuntimeError):
        runner.adapt(pm, config)
    (failed_dir,) = [p for p in (tmp_path / "again" / "runs").iterdir() if p.is_dir()]
    assert json.loads((failed_dir / "run.json").read_text())["status"] == "failed"
