"""polyadapt-classification: an example polyadapt plugin for text classification.

It registers one task, ``text-classification``: a LoRA adapter (plus a classification
head) on any Hugging Face model ``AutoModelForSequenceClassification`` loads, trained by
polyadapt's shared run on labelled records, evaluated by accuracy and macro-F1 against the
base, and served at ``POST /v1/classifications``. polyadapt imports this module whenever it
starts, so it imports nothing heavy: the task imports torch inside its methods.
"""

from __future__ import annotations

from polyadapt.hookspecs import hookimpl
from polyadapt_classification.task import TextClassificationTask

#: The plugin API versions this plugin works with; polyadapt checks it when it loads.
POLYADAPT_API = ">=2,<3"


@hookimpl
def polyadapt_tasks():
    """The task this plugin offers: runs whose config says ``task: text-classification``."""
    return [TextClassificationTask()]
