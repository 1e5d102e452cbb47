"""Plugin discovery through real entry points, isolation of broken plugins, dispatch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import pip_install_into, site_environment
from plugin_helpers import TinyPlugin, TinyTask

from polyadapt import runner
from polyadapt.config import parse_config
from polyadapt.errors import PluginError
from polyadapt.hookspecs import hookimpl
from polyadapt.plugins import MIGRATION_GUIDE, PluginManager, check_api_compatibility
from polyadapt.types import ServeSpec

FIXTURE_PLUGINS = Path(__file__).parent / "fixture_plugins"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """The test plugins pip-installed into a folder that goes on PYTHONPATH."""
    target = tmp_path_factory.mktemp("site")
    pip_install_into(target, FIXTURE_PLUGINS)
    return target


def polyadapt(site: Path, *args: str, load: str | None = None) -> subprocess.CompletedProcess:
    env = site_environment(site)
    if load is not None:
        env["POLYADAPT_LOAD_PLUGINS"] = load
    return subprocess.run(
        [sys.executable, "-m", "polyadapt.cli", *args], env=env, capture_output=True, text=True, check=False
    )


def listed(site: Path, load: str | None = None) -> dict[str, dict]:
    result = polyadapt(site, "plugins", "--json", load=load)
    assert result.returncode == 0, result.stderr
    return {info["name"]: info for info in json.loads(result.stdout)}


def test_installed_plugins_discovered_and_broken_ones_isolated(plugin_site):
    plugins = listed(plugin_site)
    assert plugins["echo"]["status"] == "ok"
    assert plugins["echo"]["tasks"] == ["echo"]
    assert plugins["echo"]["distribution"] == "polyadapt-testplugins"
    assert plugins["echo"]["version"] == "0.0.1"
    assert plugins["broken"]["status"] == "broken"
    assert "needs a library that is not installed" in plugins["broken"]["error"]
    assert plugins["future"]["status"] == "broken"
    assert ">=3,<4" in plugins["future"]["error"] and "implements 2.0" in plugins["future"]["error"]
    assert plugins["legacy"]["status"] == "broken" and plugins["legacy"]["tasks"] == []
    # first-party plugins come through the same door
    assert plugins["text"]["tasks"] == ["text-generation"] and plugins["text"]["status"] == "ok"


def test_load_plugins_env_has_three_states(plugin_site):
    assert {"echo", "text", "broken", "future", "legacy"} <= set(listed(plugin_site))  # unset: all
    assert set(listed(plugin_site, load="echo")) == {"echo"}  # a list: only those
    assert set(listed(plugin_site, load="echo,polyadapt-text")) == {"echo", "text"}
    assert listed(plugin_site, load="") == {}  # empty: none


def test_plugins_command_does_not_import_torch(plugin_site):
    code = (
        "import sys; from typer.testing import CliRunner; from polyadapt.cli import app;"
        "r = CliRunner().invoke(app, ['plugins']); assert r.exit_code == 0, r.output;"
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output;"
        "heavy = [m for m in ('torch', 'transformers', 'peft', 'accelerate') if m in sys.modules];"
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    env = {**os.environ, "PYTHONPATH": str(plugin_site)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_adapt_through_cli_with_an_installed_plugin(plugin_site, tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text('{"text": "x"}\n')
    config = tmp_path / "echo.yaml"
    config.write_text(
        f"task: echo\nbase_model: none\ndata:\n  train: {data}\n  licence: MIT\noutput:\n  dir: {tmp_path / 'runs'}\n  name: r1\n"
    )
    result = polyadapt(plugin_site, "adapt", str(config), load="echo")
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = tmp_path / "runs" / "r1"
    assert json.loads((run_dir / "adapter" / "echo.json").read_text()) == {"task": "echo", "records": 1}
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"
    assert json.loads((run_dir / "metrics.json").read_text())["metrics"][0]["improved"] is True


def test_unknown_task_lists_known_ones_and_broken_plugins(plugin_site, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("task: future-task\nbase_model: m\ndata:\n  train: t.jsonl\n")
    result = polyadapt(plugin_site, "adapt", str(config))
    assert result.returncode == 1
    assert "no installed plugin offers task 'future-task'" in result.stderr
    assert "echo" in result.stderr and "future" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_plugin_api_1_plugin_is_broken_with_one_line_pointing_at_the_guide(plugin_site):
    """A plugin still written for API 1.x (Task records, its own adapt and evaluate hooks)
    loads nothing and says in one line what changed and where the migration guide is."""
    error = listed(plugin_site)["legacy"]["error"]
    assert "\n" not in error
    assert "plugin API 1.x" in error and MIGRATION_GUIDE in error and "'legacy'" in error
    assert MIGRATION_GUIDE == "docs/migrating-to-plugin-api-2.md"
    assert (Path(__file__).resolve().parent.parent / MIGRATION_GUIDE).is_file()
    wide = {"COLUMNS": "1000"}  # one table row per line: a long message is not wrapped
    result = subprocess.run(
        [sys.executable, "-m", "polyadapt.cli", "plugins"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(plugin_site), **wide},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (row,) = [line for line in result.stdout.splitlines() if line.startswith("│ legacy ")]
    assert "broken" in row and "plugin API 1.x" in row and MIGRATION_GUIDE in row


class _Owner(TinyPlugin):
    """A plugin offering one tiny task, ``<name>-task``."""


def _run_config(tmp_path: Path, task: str, name: str = "r1") -> str:
    data = tmp_path / "train.jsonl"
    data.write_text('{"text": "a note"}\n{"text": "another note"}\n')
    return (
        f"task: {task}\nbase_model: none\ndata:\n  train: {data}\n  licence: MIT\n"
        f"output:\n  dir: {tmp_path / 'runs'}\n  name: {name}\n"
    )


def test_dispatch_asks_only_the_task_of_the_run(tmp_path):
    a, b = _Owner("a"), _Owner("b")
    pm = PluginManager(load_entrypoints=False, plugins={"a": a, "b": b})
    run = runner.prepare_run(pm, parse_config(_run_config(tmp_path, "b-task"), "x"))
    artifact = pm.dispatch("polyadapt_adapt", run.task, run=run)
    assert artifact.path == run.adapter_dir and (artifact.trainable_parameters, artifact.total_parameters) == (1, 1)
    assert (run.adapter_dir / "adapter_model.safetensors").is_file()
    assert (a.task.calls, b.task.calls) == ([], ["load_base", "training_job"])


class Observer:
    """A third-party plugin that owns no task and wraps the core's run hooks."""

    def __init__(self):
        self.seen: list[tuple[str, object, object]] = []
        self.adapter_before: list[bool] = []

    @hookimpl(wrapper=True)
    def polyadapt_adapt(self, run):
        self.adapter_before.append(run.adapter_dir.exists())
        artifact = yield
        self.seen.append(("adapt", run.id, artifact))
        return artifact

    @hookimpl(wrapper=True)
    def polyadapt_evaluate(self, run, adapter):
        report = yield
        self.seen.append(("evaluate", adapter, report))
        report.samples.append({"prompt": "observed", "base": "-", "adapted": "-"})  # wrappers may change it
        return report

    @hookimpl(wrapper=True)
    def polyadapt_serve(self, spec):
        servable = yield
        self.seen.append(("serve", spec.base_name, servable))
        return servable


def test_hook_wrappers_of_another_plugin_run_around_the_cores_answer(polyadapt_run, tmp_path):
    owner, observer = _Owner("tiny"), Observer()
    result = polyadapt_run(
        _run_config(tmp_path, "tiny-task"), plugins={"tiny": owner, "observer": observer}
    ).assert_success()

    (adapt, evaluate) = observer.seen
    assert observer.adapter_before == [False]  # the wrapper ran before the core trained...
    assert adapt == ("adapt", result.run.id, result.adapter)  # ...and saw the core's artifact on its way out
    assert evaluate == ("evaluate", result.adapter, result.report)
    assert owner.task.calls == ["load_base", "training_job", "evaluate"]  # the core asked the task
    assert result.metrics["samples"] == [{"prompt": "observed", "base": "-", "adapted": "-"}]

    pm = PluginManager(load_entrypoints=False, plugins={"tiny": owner, "observer": observer})
    spec = ServeSpec(
        task=pm.task("tiny-task"), base_model="none", base_name="none", adapters={"notes": result.dir / "adapter"}
    )
    servable = pm.dispatch("polyadapt_serve", spec.task, spec=spec)
    assert observer.seen[-1] == ("serve", "none", servable) and servable.base_name == "none"
    assert owner.task.calls[-1] == "servable"


def test_task_conflict_keeps_first_and_reports():
    class Clash(_Owner):
        @hookimpl
        def polyadapt_tasks(self):
            return [TinyTask("a-task")]

    pm = PluginManager(load_entrypoints=False, plugins={"a": _Owner("a"), "z": Clash("z")})
    assert pm.task("a-task").plugin == "a"
    assert any("declared by both 'a' and 'z'" in c for c in pm.conflicts)


def test_failing_tasks_hook_marks_plugin_broken_not_others():
    class Bad:
        @hookimpl
        def polyadapt_tasks(self):
            raise RuntimeError("boom")

    pm = PluginManager(load_entrypoints=False, plugins={"good": _Owner("good"), "bad": Bad()})
    infos = {i.name: i for i in pm.plugins}
    assert infos["bad"].status == "broken" and "boom" in infos["bad"].error
    assert pm.task("good-task").plugin == "good"
    with pytest.raises(PluginError, match="Broken plugins: bad"):
        pm.task("missing")


def test_api_compatibility_messages():
    assert check_api_compatibility("p", ">=2,<3") is None
    assert check_api_compatibility("p", None) is None
    assert "not a version range" in check_api_compatibility("p", "one")
    assert "supports polyadapt plugin API >=3 but this core implements 2.0" in check_api_compatibility("p", ">=3")
    legacy = check_api_compatibility("p", ">=1,<2")
    assert "plugin API 1.x" in legacy and MIGRATION_GUIDE in legacy and "\n" not in legacy


def test_a_v1_task_record_is_refused_with_the_guide():
    class OnlyNames:
        POLYADAPT_API = ">=2,<3"

        @hookimpl
        def polyadapt_tasks(self):
            return ["old-task"]

    pm = PluginManager(load_entrypoints=False, plugins={"old": OnlyNames()})
    assert pm.infos["old"].status == "broken" and MIGRATION_GUIDE in pm.infos["old"].error


def test_plugins_install_uses_local_checkout_for_first_party(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    import polyadapt.cli as cli

    commands = []
    monkeypatch.setattr(
        cli.subprocess, "run", lambda cmd, check: commands.append(cmd) or subprocess.CompletedProcess(cmd, 0)
    )
    # polyadapt-video: a plugin without a folder in the checkout (one not written yet)
    local = tmp_path / "my-plugin"
    local.mkdir()
    result = CliRunner().invoke(
        cli.app, ["plugins", "install", "text", "polyadapt-video", str(local), "someone-elses-plugin"]
    )
    assert result.exit_code == 0, result.output
    (command,) = commands
    assert command[:4] == [sys.executable, "-m", "pip", "install"]
    checkout_text = str(Path(cli.__file__).resolve().parent.parent / "plugins" / "text")
    assert command[4:6] == ["-e", checkout_text]
    # video has no folder in this checkout: it comes from the index by its distribution name
    assert "polyadapt-video" in command
    assert ["-e", str(local.resolve())] == command[
        command.index(str(local.resolve())) - 1 : command.index(str(local.resolve())) + 1
    ]
    assert command[-1] == "someone-elses-plugin"


def test_two_processes_running_at_once_lose_no_lineage(plugin_site, tmp_path):
    """Two `polyadapt adapt` loops at the same moment on one lineage store: every run,
    dataset link and adapter version arrives, and versions are unique and gap-free."""
    data = tmp_path / "train.jsonl"
    data.write_text('{"text": "a claim under the Marlowe deductible"}\n')
    script = (
        "import sys; from polyadapt import runner; from polyadapt.config import parse_config;"
        "from polyadapt.plugins import get_plugin_manager; pm = get_plugin_manager();"
        "[runner.adapt(pm, parse_config(f'task: echo\\nbase_model: none\\ndata:\\n  train: {sys.argv[1]}\\n"
        "  licence: MIT\\noutput:\\n  dir: {sys.argv[2]}\\n  name: {sys.argv[3]}-{i}\\n  adapter_name: echo\\n'))"
        " for i in range(4)]"
    )
    env = {**os.environ, "PYTHONPATH": str(plugin_site), "POLYADAPT_LOAD_PLUGINS": "echo"}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(data), str(tmp_path / "runs"), who],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for who in ("left", "right")
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err

    from polyadapt.lineage.store import LineageStore

    store = LineageStore.open()
    versions = store.list_adapters(name="echo")
    assert sorted(v.version for v in versions) == list(range(1, 9))
    assert {v.run_id for v in versions} == {f"{who}-{i}" for who in ("left", "right") for i in range(4)}
    for version in versions:
        run = store.get_run(version.run_id)
        assert run["status"] == "completed"
        assert store.lineage(version.run_id)["data"], f"{version.run_id} lost its dataset link"


def test_plugins_uninstall_runs_pip_in_polyadapts_environment(monkeypatch):
    from typer.testing import CliRunner

    import polyadapt.cli as cli

    commands = []
    monkeypatch.setattr(
        cli.subprocess, "run", lambda cmd, check: commands.append(cmd) or subprocess.CompletedProcess(cmd, 0)
    )
    result = CliRunner().invoke(cli.app, ["plugins", "uninstall", "text", "polyadapt-keywords"])
    assert result.exit_code == 0, result.output
    assert commands == [[sys.executable, "-m", "pip", "uninstall", "-y", "polyadapt-text", "polyadapt-keywords"]]


def test_plugins_table_shows_the_api_ranges_and_the_core_api(monkeypatch):
    from typer.testing import CliRunner

    import polyadapt.cli as cli
    import polyadapt.plugins as plugins

    class Undeclared(_Owner):
        pass

    class Future(_Owner):
        POLYADAPT_API = ">=3,<4"

    class Current(_Owner):
        POLYADAPT_API = ">=2,<3"

    pm = PluginManager(
        load_entrypoints=False, plugins={"old": Undeclared("old"), "next": Future("next"), "now": Current("now")}
    )
    monkeypatch.setattr(plugins, "get_plugin_manager", lambda: pm)
    monkeypatch.setattr(cli, "console", cli.Console(width=300))
    monkeypatch.setattr(cli, "err_console", cli.Console(width=300, stderr=True))
    result = CliRunner().invoke(cli.app, ["plugins"])
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.count("│") > 2}
    assert ">=2,<3" in rows["now"] and "ok" in rows["now"]
    assert (
        "broken" in rows["next"] and "supports polyadapt plugin API >=3,<4 but this core implements 2.0" in rows["next"]
    )
    assert "this core implements plugin API 2.0" in result.output
    assert "plugin 'old' does not declare the plugin API it supports" in result.output
    assert "'now' does not declare" not in result.output
    version = CliRunner().invoke(cli.app, ["--version"])
    assert "plugin API 2.0" in version.output


def test_sigterm_stops_a_run_like_ctrl_c(plugin_site, tmp_path):
    """`kill` (SIGTERM) of `polyadapt adapt` ends in status "interrupted", not "running"."""
    import signal
    import time

    data = tmp_path / "train.jsonl"
    data.write_text('{"text": "x"}\n')
    config = tmp_path / "slow.yaml"
    config.write_text(
        f"task: echo\nbase_model: none\ndata:\n  train: {data}\n  licence: MIT\n"
        f"output:\n  dir: {tmp_path / 'runs'}\n  name: slow\n"
    )
    env = {**os.environ, "PYTHONPATH": str(plugin_site), "POLYADAPT_LOAD_PLUGINS": "echo", "ECHO_SLEEP": "60"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "polyadapt.cli", "adapt", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    record = tmp_path / "runs" / "slow" / "run.json"
    deadline = time.monotonic() + 60
    while not (record.is_file() and (tmp_path / "runs" / "slow" / "manifests").is_dir()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert json.loads(record.read_text())["status"] == "interrupted"
