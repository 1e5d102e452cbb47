"""``polyadapt config-schema``: each task's data fields described as that task reads them,
and its ``task_options`` in the same schema."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from polyadapt.cli import app
from polyadapt.configschema import run_config_schema
from polyadapt.plugins import get_plugin_manager
from polyadapt.task import Task


def _data(schema: dict) -> dict:
    return schema["$defs"]["DataConfig"]["properties"]


def _refs(node) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if "$ref" in node else []
        return own + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in _refs(item)]
    return []


def test_the_general_schema_does_not_claim_one_tasks_formats():
    train = _data(run_config_schema())["train"]["description"]
    assert "config-schema --task NAME" in train


def test_the_code_task_describes_repositories_not_data_files():
    schema = run_config_schema(get_plugin_manager().task("code-generation"))
    data = _data(schema)
    assert "git repository" in data["train"]["description"] and "task_options.revision" in data["train"]["description"]
    assert "jsonl" not in data["train"]["description"]
    assert "repository" in data["eval"]["description"]
    assert data["format"]["description"].startswith("Not read")
    options = schema["properties"]["task_options"]
    assert "revision" in options["properties"] and "tasks_role" in options["properties"]
    # the options' own definitions travel with them, renamed so they cannot clash with the config's
    assert "task_options.CodeRepository" in schema["$defs"]
    for ref in _refs(schema):
        assert ref.removeprefix("#/$defs/") in schema["$defs"], ref


def test_a_task_that_reads_data_files_says_so():
    text = _data(run_config_schema(get_plugin_manager().task("text-generation")))
    assert "jsonl, csv or parquet" in text["train"]["description"]


def test_every_installed_task_describes_only_fields_configs_have():
    for task in get_plugin_manager().tasks.values():
        run_config_schema(task)  # raises for a data field configs do not have


class Options(BaseModel):
    depth: int = 1


def test_a_tasks_unknown_data_field_is_named():
    task = Task(name="typo", data_fields={"trian": "..."}, options_model=Options)
    with pytest.raises(ValueError, match="trian"):
        run_config_schema(task)


def test_a_task_without_options_accepts_none():
    schema = run_config_schema(Task(name="bare"))
    assert schema["properties"]["task_options"]["maxProperties"] == 0


def test_the_command_prints_the_tasks_schema():
    result = CliRunner().invoke(app, ["config-schema", "--task", "code-generation"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.output)
    assert "git repository" in _data(schema)["train"]["description"]
    missing = CliRunner().invoke(app, ["config-schema", "--task", "no-such-task"])
    assert missing.exit_code != 0 and "Traceback" not in missing.output
