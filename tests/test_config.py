"""Run configs: valid files load, invalid ones get one clear message."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from polyadapt.config import load_config, parse_config
from polyadapt.errors import ConfigError
from polyadapt.hookspecs import hookimpl
from polyadapt.task import Task

VALID = textwrap.dedent(
    """\
    task: text-generation
    base_model: some/model
    data:
      train: data/train.jsonl
    training:
      max_steps: 10
    """
)


def test_minimal_config_fills_defaults_and_shorthand(tmp_path: Path):
    path = tmp_path / "run.yaml"
    path.write_text(VALID)
    config = load_config(path)
    assert config.base_model.id == "some/model"
    assert config.training.max_steps == 10
    assert config.lora.target_modules == "auto"
    # relative data paths resolve against the config file's folder
    assert config.data.train == (tmp_path / "data" / "train.jsonl").resolve()


def test_error_names_file_line_field_value_and_allowed(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text(VALID.replace("max_steps: 10", "max_steps: 10\n  schedule: wavy"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    assert "line 7" in message
    assert "training.schedule" in message
    assert "'wavy'" in message
    assert "'cosine'" in message and "'linear'" in message


def test_unknown_field_is_an_error_not_ignored():
    with pytest.raises(ConfigError) as info:
        parse_config(VALID + "lora:\n  rank: 8\n", "x.yaml")
    assert "lora.rank" in str(info.value) and "unknown field" in str(info.value)


def test_missing_required_field():
    with pytest.raises(ConfigError) as info:
        parse_config("task: text-generation\nbase_model: m\n", "x.yaml")
    assert "data: required field is missing" in str(info.value)


def test_not_yaml_and_missing_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_config("task: [unclosed", "x.yaml")
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "absent.yaml")


def test_overrides_parse_yaml_values_and_validate():
    config = parse_config(
        VALID, "x.yaml", ["training.learning_rate=1e-3", "lora.target_modules=[q_proj]", "base_model.dtype=float32"]
    )
    assert config.training.learning_rate == pytest.approx(1e-3)
    assert config.lora.target_modules == ["q_proj"]
    assert config.base_model.id == "some/model" and config.base_model.dtype == "float32"
    with pytest.raises(ConfigError, match="training.batch_size"):
        parse_config(VALID, "x.yaml", ["training.batch_size=0"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_config(VALID, "x.yaml", ["training.batch_size"])


def test_config_hash_is_stable_and_sensitive():
    a = parse_config(VALID, "a.yaml")
    b = parse_config(VALID, "b.yaml")
    c = parse_config(VALID, "c.yaml", ["training.seed=1"])
    assert a.hash() == b.hash() != c.hash()


def test_shipped_configs_validate():
    for path in sorted((Path(__file__).parent.parent / "configs").glob("*.yaml")):
        load_config(path)


def test_adapter_name_must_be_servable():
    assert parse_config(VALID, "x.yaml", ["output.adapter_name=claims-v2"]).output.adapter_name == "claims-v2"
    with pytest.raises(ConfigError, match="output.adapter_name"):
        parse_config(VALID, "x.yaml", ["output.adapter_name=base:claims"])


def test_home_is_expanded_in_every_path(tmp_path: Path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    text = textwrap.dedent(
        """\
        task: text-generation
        base_model:
          id: ~/models/m.gguf
          tokenizer: ~/tok
        data:
          train: ~/data/train.jsonl
          eval: ~/data/eval.jsonl
          general_eval: builtin
        governance:
          policy: ~/policies/p.yaml
        output:
          dir: ~/runs
        lineage:
          openlineage: ~/events.jsonl
        """
    )
    config = load_config(_write(tmp_path / "cfg" / "run.yaml", text))
    assert config.base_model.id == str(home / "models" / "m.gguf")
    assert config.base_model.tokenizer == str(home / "tok")
    assert config.data.train == home / "data" / "train.jsonl"
    assert config.data.eval == home / "data" / "eval.jsonl"
    assert config.data.general_eval == "builtin"
    assert config.governance.policy == home / "policies" / "p.yaml"
    assert config.output.dir == home / "runs"
    assert config.lineage.openlineage == str(home / "events.jsonl")
    # without a file too, and a hub id is left alone
    assert parse_config(VALID.replace("data/train.jsonl", "~/t.jsonl"), "x").data.train == home / "t.jsonl"
    assert parse_config(VALID, "x").base_model.id == "some/model"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


class _Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    weights: Path


class _Options(BaseModel):
    """A plugin's options model: ``Path`` fields are paths, ``str`` fields are not."""

    model_config = ConfigDict(extra="forbid")
    tasks: Path | None = None
    extra_files: list[Path] = []
    inner: _Inner | None = None
    named: dict[str, Path] = {}
    model_id: str = "org/model"
    mode: Path | Literal["builtin"] = "builtin"


def test_option_paths_resolve_against_the_config_folder(tmp_path: Path, monkeypatch):
    from polyadapt.config import resolve_option_paths

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    raw = {
        "tasks": "tasks.jsonl",
        "extra_files": ["a.txt", "/abs/b.txt", "~/c.txt"],
        "inner": {"weights": "../w.bin"},
        "named": {"x": "x.bin"},
        "model_id": "sub/dir",
        "mode": "builtin",
    }
    folder = tmp_path / "configs"
    resolved = resolve_option_paths(_Options.model_validate(raw), raw, folder)
    assert resolved == {
        "tasks": str(folder / "tasks.jsonl"),
        "extra_files": [str(folder / "a.txt"), "/abs/b.txt", str(tmp_path / "home" / "c.txt")],
        "inner": {"weights": str(tmp_path / "w.bin")},
        "named": {"x": str(folder / "x.bin")},
        "model_id": "sub/dir",  # a str field is not a path
        "mode": "builtin",
    }
    assert raw["tasks"] == "tasks.jsonl"  # the input is not changed
    assert resolve_option_paths(_Options(), {}, folder) == {}  # defaults are not written in


class _PathsTask(Task):
    """A task whose options hold paths (preparing a run asks nothing else of it)."""

    name = "paths-task"
    options_model = _Options


class _PathPlugin:
    @hookimpl
    def polyadapt_tasks(self):
        return [_PathsTask()]


def test_run_folder_config_holds_absolute_option_paths(tmp_path: Path, monkeypatch):
    """A relative task_options path in a config file resolves against the file's folder, not
    the working directory, and the run folder's config.yaml holds it absolute: the run
    re-opens from any folder."""
    from polyadapt import runner
    from polyadapt.plugins import PluginManager

    pm = PluginManager(load_entrypoints=False, plugins={"paths": _PathPlugin()})
    path = _write(
        tmp_path / "project" / "configs" / "run.yaml",
        textwrap.dedent(
            f"""\
        task: paths-task
        base_model: m
        data:
          train: ../data/train.jsonl
        output:
          dir: {tmp_path / "runs"}
          name: r1
        task_options:
          tasks: ../examples/tasks.jsonl
        """
        ),
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    run = runner.prepare_run(pm, load_config(path))
    expected = tmp_path / "project" / "examples" / "tasks.jsonl"
    assert run.task_options.tasks == expected
    assert run.config.task_options["tasks"] == str(expected)
    saved = (run.dir / "config.yaml").read_text()
    assert f"tasks: {expected}" in saved and f"train: {tmp_path / 'project' / 'data' / 'train.jsonl'}" in saved
    monkeypatch.chdir(tmp_path)
    reopened = parse_config(saved, "config.yaml")
    _, options = runner._validate_task_options(pm, reopened)
    assert options.tasks == expected

    # a config given as text (no file) resolves against the working directory
    config = parse_config(path.read_text().replace("name: r1", "name: r2"), "text")
    run = runner.prepare_run(pm, config)
    assert run.task_options.tasks == (tmp_path / ".." / "examples" / "tasks.jsonl").resolve()


class _SamplingOptions(BaseModel):
    """A plugin's options model as plugins write them: no ``extra="forbid"`` of its own."""

    max_new_tokens: int = Field(32, ge=1)
    temperature: float = 0.0


class _SamplingTask(Task):
    name = "sampling-task"
    options_model = _SamplingOptions


class _SamplingPlugin:
    @hookimpl
    def polyadapt_tasks(self):
        return [_SamplingTask()]


def test_a_misspelt_task_option_is_refused_with_the_file_line_and_closest_name(tmp_path: Path):
    """An unknown key in task_options never passes silently (even when the plugin's model
    would ignore it): the error names the file, the line, the field and the valid name."""
    from polyadapt import runner
    from polyadapt.plugins import PluginManager

    pm = PluginManager(load_entrypoints=False, plugins={"sampling": _SamplingPlugin()})
    path = _write(
        tmp_path / "run.yaml",
        textwrap.dedent(
            f"""\
        task: sampling-task
        base_model: m
        data:
          train: train.jsonl
        output:
          dir: {tmp_path / "runs"}
        task_options:
          temperature: 0.2
          max_new_token: 16
        """
        ),
    )
    with pytest.raises(ConfigError) as info:
        runner.prepare_run(pm, load_config(path))
    message = str(info.value)
    assert message.startswith(f"{path}: invalid task_options for task 'sampling-task'")
    assert "line 9, task_options.max_new_token: unknown field; did you mean 'max_new_tokens'?" in message
    assert not (tmp_path / "runs").exists()  # refused before any run folder is made

    fixed = _write(path, path.read_text().replace("max_new_token:", "max_new_tokens:"))
    run = runner.prepare_run(pm, load_config(fixed))
    assert isinstance(run.options, _SamplingOptions)
    assert run.options.model_dump() == {"max_new_tokens": 16, "temperature": 0.2}


def test_the_samples_table_shows_a_tasks_own_sample_fields(capsys, monkeypatch):
    from polyadapt import cli
    from polyadapt.types import EvalReport, MetricRow

    report = EvalReport(rows=[MetricRow("domain", "accuracy", 0.4, 0.8, lower_is_better=False, role="domain")],
                        samples=[{"prompt": "I was charged twice", "gold": "billing", "base": "claim",
                                  "adapted": "billing"}])
    monkeypatch.setattr(cli.console, "width", 200)
    cli._show_report(report)
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if "prompt" in line and "adapted" in line)
    assert header.index("prompt") < header.index("base") < header.index("adapted") < header.index("gold")
    assert "I was charged twice" in out and "billing" in out
