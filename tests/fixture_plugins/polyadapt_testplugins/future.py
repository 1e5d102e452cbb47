"""A plugin written for a future plugin API."""

from polyadapt.hookspecs import hookimpl
from polyadapt.task import Task

POLYADAPT_API = ">=3,<4"


@hookimpl
def polyadapt_tasks():
    return [Task(name="future-task", modality="text")]
