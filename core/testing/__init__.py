"""polyadapt.testing: what a plugin author needs to test a plugin.

The pytest plugin (:mod:`polyadapt.testing.pytest_plugin`, loaded by pytest wherever
polyadapt is installed) gives the fixtures ``polyadapt_state``, ``tiny_base_model``,
``tiny_text_model``, ``plugin_manager`` and ``polyadapt_run``. The helpers below are the
same things without pytest::

    from polyadapt.testing import PolyadaptRunner, build_tiny_model, write_jsonl

Importing this package imports no torch.
"""

from polyadapt.testing.models import (
    TINY_MODEL_NAMES,
    TINY_MODELS,
    build_tiny_model,
    register_tiny_model,
)
from polyadapt.testing.runs import (
    TEST_DEFAULTS,
    PolyadaptRunner,
    RunResult,
    make_plugin_manager,
    write_jsonl,
)

__all__ = [
    "TEST_DEFAULTS",
    "TINY_MODEL_NAMES",
    "TINY_MODELS",
    "PolyadaptRunner",
    "RunResult",
    "build_tiny_model",
    "make_plugin_manager",
    "register_tiny_model",
    "write_jsonl",
]
