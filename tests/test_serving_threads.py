"""``polyadapt serve`` leaves a core for the HTTP loop: torch's CPU threads are capped."""

from __future__ import annotations

import pytest

from polyadapt.serving import threads as serving_threads_module
from polyadapt.serving.settings import ServeSettings
from polyadapt.serving.threads import apply_serving_threads, serving_threads


@pytest.mark.parametrize(
    ("cores", "torch_default", "expected"),
    [(2, 2, 1), (1, 1, 1), (16, 16, 15), (64, 32, 32)],  # never above torch's own default
)
def test_default_leaves_one_core_free(monkeypatch, cores, torch_default, expected):
    monkeypatch.setattr(serving_threads_module, "usable_cores", lambda: cores)
    assert serving_threads(None, torch_default) == expected


def test_an_explicit_number_wins(monkeypatch):
    monkeypatch.setattr(serving_threads_module, "usable_cores", lambda: 2)
    assert serving_threads(6, 2) == 6


def test_apply_sets_torch_threads(monkeypatch):
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    monkeypatch.setattr(serving_threads_module, "usable_cores", lambda: 3)
    try:
        assert apply_serving_threads(None) == min(before, 2)
        assert torch.get_num_threads() == min(before, 2)
    finally:
        torch.set_num_threads(before)


def test_setting_refuses_zero_threads():
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        ServeSettings(torch_threads=0)


def test_cli_names_the_bad_threads_option(tmp_path):
    from typer.testing import CliRunner

    from polyadapt.cli import app

    result = CliRunner().invoke(app, ["serve", str(tmp_path), "--threads", "0", "--no-keys"])
    assert result.exit_code != 0
    assert "threads" in result.output and "greater than or equal to 1" in result.output
