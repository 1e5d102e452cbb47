"""The ``polyadapt.testing`` pytest plugin: fixtures for testing polyadapt plugins.

pytest loads it by itself wherever polyadapt is installed (entry point ``pytest11``);
with ``PYTEST_DISABLE_PLUGIN_AUTOLOAD`` set, load it with
``-p polyadapt.testing.pytest_plugin``.
Loading it imports pytest and the standard library only: torch and transformers are
imported when a fixture that needs them is first used.

=====================  ========  ========================================================
fixture                scope     gives
=====================  ========  ========================================================
``polyadapt_state``    test      an empty state folder (``$POLYADAPT_HOME``: lineage
                                 store, audit log, project key) for this test only
``tiny_base_model``    session   ``tiny_base_model("text")`` -> folder of a tiny random
                                 base model of that modality (built once per session)
``tiny_text_model``    session   ``tiny_base_model("text")``
``plugin_manager``     test      ``plugin_manager("installed-name", name=module)`` -> a
                                 plugin manager with only those plugins
``polyadapt_run``      test      ``polyadapt_run(config, plugins=...)`` -> a
                                 :class:`~polyadapt.testing.RunResult`; runs
                                 ``polyadapt adapt`` through the real pipeline
=====================  ========  ========================================================
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # pragma: no cover
    from polyadapt.plugins import PluginManager
    from polyadapt.testing.runs import PolyadaptRunner


@pytest.fixture
def polyadapt_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's own polyadapt state folder: ``$POLYADAPT_HOME`` points at it.

    The lineage store (SQLite), the audit log and the project key land here, never in the
    checkout's ``.polyadapt``; ``$POLYADAPT_DB_URL`` and ``$POLYADAPT_LOAD_PLUGINS`` are
    unset for the test.
    """
    state = tmp_path / "state"
    monkeypatch.setenv("POLYADAPT_HOME", str(state))
    monkeypatch.delenv("POLYADAPT_DB_URL", raising=False)
    monkeypatch.delenv("POLYADAPT_LOAD_PLUGINS", raising=False)
    return state


@pytest.fixture(scope="session")
def tiny_base_model(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``tiny_base_model(modality="text") -> Path``: a tiny random base model's folder.

    Built on first use and shared by the session (treat it as read-only). See
    :mod:`polyadapt.testing.models`: ``text`` is a 2-layer Llama with a ChatML tokenizer;
    installed plugins offer more through their tasks' ``tiny_models()``; register others
    with ``register_tiny_model``.
    """
    built: dict[str, Path] = {}

    def build(modality: str = "text") -> Path:
        if modality not in built:
            from polyadapt.testing.models import build_tiny_model, tiny_model_name

            folder = tmp_path_factory.mktemp("models") / tiny_model_name(modality)
            built[modality] = build_tiny_model(modality, folder)
        return built[modality]

    return build


@pytest.fixture(scope="session")
def tiny_text_model(tiny_base_model: Callable[[str], Path]) -> Path:
    """Folder of the tiny random text model (a 2-layer Llama + tokenizer)."""
    return tiny_base_model("text")


@pytest.fixture
def plugin_manager(polyadapt_state: Path) -> Callable[..., PluginManager]:
    """``plugin_manager(*installed, strict=True, **modules) -> PluginManager`` with only those plugins.

    ``plugin_manager("keywords")`` loads the installed plugin ``keywords`` through its
    entry point (API check included); ``plugin_manager(mine=my_module)`` registers a module
    that is not installed. See :func:`polyadapt.testing.make_plugin_manager`.
    """
    from polyadapt.testing.runs import make_plugin_manager

    return make_plugin_manager


@pytest.fixture
def polyadapt_run(tmp_path: Path, polyadapt_state: Path) -> PolyadaptRunner:
    """``polyadapt_run(config, plugins=..., overrides=...) -> RunResult``.

    Writes ``config`` (a mapping, YAML or a path) as a run config and runs ``polyadapt
    adapt`` in-process through the real pipeline: governance, lineage, the owning plugin's
    hooks, the registry, evaluation. Call ``.assert_success()`` on the result. See
    :class:`polyadapt.testing.PolyadaptRunner`.
    """
    from polyadapt.testing.runs import PolyadaptRunner

    return PolyadaptRunner(tmp_path / "polyadapt")
