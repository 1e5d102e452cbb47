"""A plugin written for a future plugin API."""

from polyadapt.hookspecs import hookimpl
from polyadapt.types import Task

POLYADAPT_API = ">=2,<3"


@hookimpl
def polyadapt_tasks():
    return [Task(name="future-task", modality="text")]
