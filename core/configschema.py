"""The JSON schema of run configs, in general or as one task reads them.

``polyadapt config-schema`` prints :func:`run_config_schema`. With a task, the ``data``
fields carry the task's own descriptions (:attr:`polyadapt.task.Task.data_fields`: a data
file for one task, a repository folder for another) and ``task_options`` is the task's
options model, so one schema describes every field of that task's configs.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from polyadapt.task import Task

#: Where a task's options schema definitions go, so they cannot clash with the config's.
OPTIONS_PREFIX = "task_options."


def run_config_schema(task: Task | None = None) -> dict[str, Any]:
    """The run config's JSON schema; with ``task``, its data fields and options as it reads them.

    :raises ValueError: ``task.data_fields`` names a field the ``data`` section does not have
        (a plugin's typo: it would describe nothing).
    """
    from polyadapt.config import RunConfig

    schema = copy.deepcopy(RunConfig.model_json_schema())
    if task is None:
        return schema
    data = schema["$defs"]["DataConfig"]["properties"]
    unknown = sorted(set(task.data_fields) - set(data))
    if unknown:
        raise ValueError(
            f"task {task.name!r} describes data field(s) {', '.join(unknown)} that run configs do not have "
            f"(data fields: {', '.join(data)}); fix Task.data_fields in its plugin"
        )
    for name, description in task.data_fields.items():
        data[name]["description"] = description
    options = schema["properties"]["task_options"]
    if task.options_model is None:
        options.update({"description": f"Task {task.name!r} takes no options", "maxProperties": 0})
        return schema
    embedded = _prefixed(task.options_model.model_json_schema())
    schema["$defs"].update(embedded.pop("$defs", {}))
    schema["properties"]["task_options"] = embedded
    return schema


def _prefixed(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its ``$defs`` renamed under :data:`OPTIONS_PREFIX` and every ``$ref`` to them."""
    renamed = {f"{OPTIONS_PREFIX}{name}": body for name, body in schema.get("$defs", {}).items()}

    def fix(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                key: (f"#/$defs/{OPTIONS_PREFIX}{value.removeprefix('#/$defs/')}" if key == "$ref" else fix(value))
                for key, value in node.items()
            }
        if isinstance(node, list):
            return [fix(item) for item in node]
        return node

    out = fix({key: value for key, value in schema.items() if key != "$defs"})
    if renamed:
        out["$defs"] = fix(renamed)
    return out
