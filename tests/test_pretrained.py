"""A base that cannot be loaded is one line naming the field, what was wrong and what to give."""

from __future__ import annotations

import pytest

from polyadapt.errors import ConfigError
from polyadapt.pretrained import load_pretrained


def failing_loader(source, **kwargs):
    raise OSError("We couldn't connect to the hub.\n\nCheck your connection or see the docs at\nhttps://x")


def test_an_unreachable_hub_id_is_one_line():
    with pytest.raises(ConfigError) as info:
        load_pretrained(failing_loader, "org/model-that-is-not-here")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("base_model.id: hub id 'org/model-that-is-not-here' could not be loaded")
    assert "We couldn't connect to the hub;" in message and "give a local folder" in message


def test_a_missing_folder_is_named_before_any_loading(tmp_path):
    calls = []
    with pytest.raises(ConfigError, match=r"base_model.id: '.*nope' is neither a folder or file"):
        load_pretrained(lambda source, **kw: calls.append(source), str(tmp_path / "nope"))
    assert calls == []


def test_a_folder_of_data_says_it_holds_no_model(tmp_path):
    def loader(source, **kwargs):
        raise ValueError("Unrecognized model in folder. Should have a model_type key")

    with pytest.raises(ConfigError, match=r"holds no model that can be loaded: Unrecognized model in folder"):
        load_pretrained(loader, str(tmp_path), field="base_model.id")


def test_a_loadable_source_is_returned_with_its_arguments(tmp_path):
    assert load_pretrained(lambda source, **kw: (source, kw), str(tmp_path), revision="main") == (
        str(tmp_path),
        {"revision": "main"},
    )
