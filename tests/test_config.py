"""Run configs: valid files load, invalid ones get one clear message."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from polyadapt.config import load_config, parse_config
from polyadapt.errors import ConfigError

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
    config = parse_config(VALID, "x.yaml", ["training.learning_rate=1e-3", "lora.target_modules=[q_proj]",
                                            "base_model.dtype=float32"])
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

