"""The ``polyadapt lineage`` and ``polyadapt adapters`` commands.

``lineage show REF`` prints the chain data → run → adapter → evaluation → registry;
``lineage diff RUN_A RUN_B`` what changed between two runs; ``lineage runs`` lists the
recorded runs and ``lineage abandon RUN_ID`` closes one left running by a killed process
(as ``interrupted``). ``adapters list | promote |
rollback | retire`` manage the registry. Each takes ``--db URL`` (default:
``$POLYADAPT_DB_URL`` or ``.polyadapt/lineage.db``). Importing this module costs typer and
rich only; the store (SQLAlchemy) is imported by the commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from polyadapt.errors import ConfigError, PolyadaptError

if TYPE_CHECKING:  # pragma: no cover
    from polyadapt.lineage.store import LineageStore

lineage_app = typer.Typer(
    help="Trace adapters and runs: data → run → adapter → evaluation → deployment.",
    no_args_is_help=True,
)
adapters_app = typer.Typer(
    help="The adapter registry: versions per base model and name (candidate, active, retired).",
    no_args_is_help=True,
)

console = Console()
err_console = Console(stderr=True)

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Lineage database URL (default: $POLYADAPT_DB_URL, else .polyadapt/lineage.db)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def _fail(exc: PolyadaptError) -> None:
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2 if isinstance(exc, ConfigError) else 1)


def _store(db: str | None, *, must_exist: bool = True) -> LineageStore:
    """Open the store; a read command on a SQLite file that does not exist says so instead."""
    from pathlib import Path

    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from polyadapt.lineage.state import database_url
    from polyadapt.lineage.store import LineageStore

    url = database_url(db)
    if must_exist:
        try:
            parsed = make_url(url)
        except ArgumentError:
            parsed = None
        if (
            parsed is not None
            and parsed.get_backend_name() == "sqlite"
            and parsed.database
            and parsed.database != ":memory:"
            and not Path(parsed.database).exists()
        ):
            raise PolyadaptError(
                f"no lineage database at {parsed.database}: no run has been recorded here yet; "
                "run `polyadapt adapt` in this folder, or pass --db / set POLYADAPT_DB_URL"
            )
    return LineageStore(url)


def _print_json(payload: Any) -> None:
    console.print_json(json.dumps(payload, default=str))


def _short(digest: str | None, n: int = 12) -> str:
    return digest[:n] if digest else "-"


def _actor() -> str | None:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no user name on some containers
        return None


# -- lineage -------------------------------------------------------------------------------


def _governance_text(summary: dict[str, Any] | None) -> str:
    if not summary:
        return "no governance record"
    parts = [f"policy {summary.get('policy', '?')}"]
    for key in ("redacted", "dropped"):
        if key in summary:
            parts.append(f"{summary[key]} {key}")
    if summary.get("licence"):
        parts.append(f"licence {summary['licence']}")
    findings = summary.get("findings_by_type") or {}
    if findings:
        parts.append("findings " + ", ".join(f"{k} {v}" for k, v in sorted(findings.items())))
    worst = summary.get("worst_files") or []
    if worst:  # recorded since findings carry their file; older runs have none
        named = ", ".join(f"{item['file']} {item['findings']}" for item in worst[:3])
        more = summary.get("files_with_findings", len(worst)) - min(3, len(worst))
        parts.append(f"worst files {named}" + (f" and {more} more" if more > 0 else ""))
    return "; ".join(parts)


def _metrics_table(rows: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for column in ("dataset", "metric", "role", "base", "adapted", "change"):
        table.add_column(column, justify="right" if column in {"base", "adapted", "change"} else "left")
    from polyadapt.lineage.registry import relative_improvement

    for row in rows:
        gain = relative_improvement(row["base"], row["adapted"], row["lower_is_better"])
        colour = "green" if gain > 0 else "red" if gain < 0 else "white"
        table.add_row(
            escape(row["dataset"]),
            escape(row["metric"]),
            row["role"],
            f"{row['base']:.4g}",
            f"{row['adapted']:.4g}",
            f"[{colour}]{gain * 100:+.1f}% better[/]",
        )
    return table


def _show_lineage(chain: dict[str, Any]) -> None:
    from polyadapt.lineage.licensing import licensing_lines

    def e(value: Any) -> str:  # paths, reasons and names are text, not rich markup
        return escape(str(value))

    tree = Tree(f"[bold]lineage of {e(chain['ref'])}[/]")
    data = tree.add("data")
    for item in chain["data"]:
        quarantine = (item.get("quarantine") or {}).get("records", 0)
        records = item.get("records")
        dataset = data.add(
            e(
                f"{item['role']}: {item.get('source') or '?'}, "
                f"{records if records is not None else '?'} records, root {_short(item['root_hash'])}, "
                f"{quarantine} quarantined; {_governance_text(item.get('governance'))}"
            )
        )
        for line in licensing_lines(item.get("licensing")):
            dataset.add(e(line))
    if not chain["data"]:
        data.add("[dim]no dataset recorded[/]")
    run = chain["run"]
    if run is not None:
        node = tree.add(
            e(
                f"run {run['run_id']}: {run.get('task')} ({run.get('plugin')}), {run['status']}, "
                f"started {run['started']}" + (f", finished {run['finished']}" if run.get("finished") else "")
            )
        )
        node.add(
            e(f"base model {run.get('base_model')}; seed {run.get('seed')}; config {_short(run.get('config_hash'))}")
        )
        env = run.get("environment") or {}
        packages = ", ".join(f"{k} {v}" for k, v in (env.get("packages") or {}).items() if v)
        node.add(
            e(
                f"polyadapt {env.get('polyadapt', '?')}, python {env.get('python', '?')}"
                + (f", {packages}" if packages else "")
            )
        )
        git = env.get("git")
        if git:
            node.add(e(f"git {_short(git.get('commit'))}" + (" (dirty)" if git.get("dirty") else "")))
        if run.get("error"):
            node.add(f"[red]error:[/] {e(run['error'])}")
    for adapter in chain["adapters"]:
        node = tree.add(
            e(
                f"adapter {adapter['ref']} [{adapter['status']}], weights {_short(adapter['weights_hash'])}, "
                f"{adapter['path']}"
            )
        )
        card = adapter.get("card")
        node.add(e(f"model card {card}") if card else "[dim]no model card (`polyadapt card RUN --write` writes it)[/]")
        evaluation = node.add("evaluation")
        for row in chain["evaluation"]:
            evaluation.add(
                e(
                    f"{row['role']} {row['dataset']} {row['metric']}: base {row['base']:.4g} "
                    f"→ adapted {row['adapted']:.4g}"
                )
            )
        if not chain["evaluation"]:
            evaluation.add("[dim]not evaluated[/]")
        registry = node.add(f"registry (active version: {adapter['active_version'] or 'none'})")
        for item in adapter["events"]:
            forced = " [red](forced)[/]" if item["forced"] else ""
            by = f" by {item['actor']}" if item["actor"] else ""
            why = f": {item['reason']}" if item["reason"] else ""
            registry.add(f"{e(item['time'])} {e(item['event'])} @{item['version']}{forced}{e(by)}{e(why)}")
        if not adapter["events"]:
            registry.add("[dim]never promoted[/]")
        for item in chain.get("exports", []):
            if item["adapter_hash"] == adapter["weights_hash"]:
                options = "".join(f" {k} {v}" for k, v in (item.get("options") or {}).items())
                exported = node.add(e(f"export {item['format']}{options} {item['created']}: {item['path']}"))
                for name, digest in sorted(item["files"].items()):
                    exported.add(e(f"{name} {_short(digest)}"))
                check = (item.get("facts") or {}).get("verification")
                if isinstance(check, dict):
                    exported.add(e("verified: " + ", ".join(f"{k} {v}" for k, v in check.items())))
    if not chain["adapters"]:
        tree.add("[dim]no adapter registered[/]")
    console.print(tree)


@lineage_app.command("show")
def lineage_show(
    ref: Annotated[str, typer.Argument(help="An adapter (NAME, NAME@3, BASE:NAME@3) or a run id.")],
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Show where an adapter or run comes from and where it went."""
    try:
        chain = _store(db).lineage(ref)
    except PolyadaptError as exc:
        _fail(exc)
    for adapter in chain["adapters"]:
        card = Path(adapter["path"]) / "README.md"  # polyadapt.lineage.card.CARD_FILE; kept light
        adapter["card"] = str(card) if card.is_file() else None
    if as_json:
        _print_json(chain)
    else:
        _show_lineage(chain)


def _two_col(title: str, rows: dict[str, list[Any]], labels: tuple[str, str]) -> Table:
    table = Table(title=title)
    for column in ("field", *labels):
        table.add_column(column, overflow="fold")
    for key, (a, b) in rows.items():
        table.add_row(escape(key), escape(json.dumps(a, default=str)), escape(json.dumps(b, default=str)))
    return table


@lineage_app.command("diff")
def lineage_diff(
    run_a: Annotated[str, typer.Argument(help="The first run id.")],
    run_b: Annotated[str, typer.Argument(help="The second run id.")],
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Show what changed between two runs: data, config, versions, weights and metrics."""
    try:
        diff = _store(db).diff(run_a, run_b)
    except PolyadaptError as exc:
        _fail(exc)
    if as_json:
        _print_json(diff)
        return
    labels = (run_a, run_b)
    data = Table(title="data")
    for column in ("role", run_a, run_b, "change"):
        data.add_column(column, overflow="fold")
    for role, entry in diff["data"].items():
        if entry["same"]:
            change = "[green]same[/]"
        elif entry.get("added") == 0 and entry.get("removed") == 0:
            change = "[yellow]same records, other order[/]"
        elif "added" in entry:
            change = f"[yellow]+{entry['added']} / -{entry['removed']} records[/]"
        else:
            change = "[yellow]different[/]"
        data.add_row(escape(role), _short(entry["a"]), _short(entry["b"]), change)
    console.print(data)
    if diff["config"]:
        console.print(_two_col("config", diff["config"], labels))
    else:
        console.print("config: [green]same[/]")
    if diff["versions"]:
        console.print(_two_col("versions", diff["versions"], labels))
    else:
        console.print("versions: [green]same[/]")
    adapter = diff["adapter"]
    verdict = "[green]identical[/]" if adapter["same"] else "[yellow]different[/]"
    console.print(f"adapter weights: {_short(adapter['a'])} vs {_short(adapter['b'])}: {verdict}")
    if diff["metrics"]:
        table = Table(title="metrics (base → adapted)")
        for column in ("dataset", "metric", "role", run_a, run_b):
            table.add_column(column)
        for row in diff["metrics"]:
            cells = [f"{side['base']:.4g} → {side['adapted']:.4g}" if side else "-" for side in (row["a"], row["b"])]
            table.add_row(escape(row["dataset"]), escape(row["metric"]), row["role"], *cells)
        console.print(table)


_STATUS_COLOURS = {
    "completed": "green",
    "running": "yellow",
    "failed": "red",
    "refused": "red",
    "interrupted": "magenta",
}


def _parse_time(text: str | None) -> Any:
    """A stored ISO time as an aware datetime (the store writes UTC with a ``Z``), or None."""
    import datetime as dt

    if not text:
        return None
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def _seconds_between(start: str | None, end: str | None) -> float | None:
    """Seconds from ``start`` to ``end`` (default: now), or None when a time is unreadable."""
    import datetime as dt

    began = _parse_time(start)
    ended = _parse_time(end) if end else dt.datetime.now(dt.timezone.utc)
    if began is None or ended is None:
        return None
    return max((ended - began).total_seconds(), 0.0)


def _format_seconds(seconds: float) -> str:
    """``45s``, ``12m 05s``, ``3h 04m``, ``2d 05h``."""
    total = round(seconds)
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def _domain_headline(metrics: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first domain-role metric row (the headline of a run's evaluation), or None."""
    row = next((m for m in metrics if m.get("role") == "domain"), None)
    if row is None:
        return None
    return {key: row.get(key) for key in ("dataset", "metric", "base", "adapted", "lower_is_better")}


def _run_summary(run: dict[str, Any]) -> dict[str, Any]:
    """One row of ``lineage runs``, JSON-ready; a running run's process is checked now."""
    from polyadapt.lineage.liveness import process_state

    process = run.get("process") or {}
    adapter = run.get("adapter")
    finished = run.get("finished")
    return {
        "run_id": run["run_id"],
        "task": run.get("task"),
        "plugin": run.get("plugin"),
        "status": run["status"],
        "process_state": process_state(run.get("process")) if run["status"] == "running" else None,
        "host": process.get("host"),
        "pid": process.get("pid"),
        "started": run["started"],
        "finished": finished,
        "duration_s": _seconds_between(run["started"], finished) if finished else None,
        "base_model": run.get("base_model"),
        "adapter": f"{adapter['name']}@{adapter['version']}" if adapter else None,
        "domain_metric": _domain_headline(run.get("metrics") or []),
    }


def _status_text(summary: dict[str, Any]) -> str:
    if summary["process_state"] == "gone":
        return "[red]running (process gone)[/]"
    status = summary["status"]
    return f"[{_STATUS_COLOURS.get(status, 'white')}]{escape(status)}[/]"


def _duration_text(summary: dict[str, Any]) -> str:
    if summary["duration_s"] is not None:
        return _format_seconds(summary["duration_s"])
    if summary["status"] == "running" and summary["process_state"] != "gone":
        elapsed = _seconds_between(summary["started"], None)
        return f"{_format_seconds(elapsed)} so far" if elapsed is not None else "-"
    return "-"


def _metric_text(headline: dict[str, Any] | None) -> str:
    if headline is None:
        return "-"
    return escape(f"{headline['metric']} {headline['base']:.4g} → {headline['adapted']:.4g}")


def _runs_table(summaries: list[dict[str, Any]]) -> Table:
    from polyadapt.lineage.registry import short_base_name

    table = Table(title="runs (newest first)")
    for column in ("run", "task", "status", "started (UTC)", "duration", "base", "adapter", "domain metric"):
        table.add_column(column, overflow="fold")
    for run in summaries:
        base = run["base_model"]
        table.add_row(
            escape(run["run_id"]),
            escape(run["task"] or "-"),
            _status_text(run),
            run["started"][:16].replace("T", " "),
            _duration_text(run),
            escape(short_base_name(base)) if base else "-",
            escape(run["adapter"] or "-"),
            _metric_text(run["domain_metric"]),
        )
    return table


@lineage_app.command("runs")
def lineage_runs(
    status: Annotated[
        str | None,
        typer.Option("--status", help="Only runs with this status: running, completed, failed, interrupted, refused."),
    ] = None,
    task: Annotated[str | None, typer.Option("--task", help="Only runs of this task.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show at most this many runs.")] = 20,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """List recorded runs, newest first; a run whose process was killed shows as 'process gone'."""
    try:
        runs = _store(db).list_runs(status=status, task=task, limit=limit)
    except PolyadaptError as exc:
        _fail(exc)
    summaries = [_run_summary(run) for run in runs]
    if as_json:
        _print_json(summaries)
        return
    if not summaries:
        filtered = " matching --status/--task" if status or task else ""
        console.print(f"No runs recorded{filtered}: `polyadapt adapt CONFIG` records each run it starts.")
        return
    console.print(_runs_table(summaries))
    if any(run["process_state"] == "gone" for run in summaries):
        console.print(
            "A run whose process is gone was killed before it could record its end; "
            "`polyadapt lineage abandon RUN_ID` records it as interrupted.",
            highlight=False,
        )


@lineage_app.command("abandon")
def lineage_abandon(
    run_id: Annotated[str, typer.Argument(help="The run left 'running' by a killed process.")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why (kept as the run's error note).")] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Abandon even if the process is alive, ran on another host, or cannot be checked."
        ),
    ] = False,
    db: DbOption = None,
) -> None:
    """Record a run whose process was killed (SIGKILL, power loss) as interrupted."""
    try:
        outcome = _store(db).abandon_run(run_id, reason=reason, force=force, actor=_actor())
    except PolyadaptError as exc:
        _fail(exc)
    console.print(f"[magenta]interrupted:[/] run {escape(run_id)} ({escape(outcome['error'])})", highlight=False)


# -- adapters ------------------------------------------------------------------------------


@adapters_app.command("list")
def adapters_list(
    base: Annotated[
        str | None, typer.Option("--base", help="Only adapters of this base model (id or short name).")
    ] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """List every registered adapter version and its status."""
    try:
        found = _store(db).list_adapters(base_model=base)
    except PolyadaptError as exc:
        _fail(exc)
    if as_json:
        _print_json([adapter.to_dict() for adapter in found])
        return
    table = Table(title="adapters")
    for column in ("base", "name", "version", "status", "run", "weights", "created"):
        table.add_column(column, overflow="fold", no_wrap=column in {"version", "status", "weights", "created"})
    colours = {"active": "green", "candidate": "yellow", "retired": "dim"}
    for adapter in found:
        table.add_row(
            escape(adapter.base_model),
            escape(adapter.name),
            str(adapter.version),
            f"[{colours.get(adapter.status, 'white')}]{adapter.status}[/]",
            escape(adapter.run_id),
            _short(adapter.weights_hash),
            adapter.created[:16].replace("T", " "),
        )
    console.print(table)
    if not found:
        console.print("No adapters registered yet: `polyadapt adapt` registers each adapter it trains.")


def _gate(policy: str | None, run_config: dict[str, Any] | None) -> tuple[Any, str]:
    """The promotion gate and where it comes from.

    ``--policy FILE`` wins; else the policy the run itself followed (``governance.policy`` of
    its resolved config); else the strict default policy.
    """
    from pathlib import Path

    source = "the strict default policy"
    if policy is None:
        recorded = ((run_config or {}).get("governance") or {}).get("policy")
        if recorded:
            if not Path(recorded).is_file():
                raise ConfigError(f"the run followed policy {recorded}, which no longer exists; pass --policy FILE")
            policy = recorded
    if policy is not None:
        source = f"policy {policy}"
    try:
        from polyadapt.governance.policy import load_policy
    except ImportError:  # governance not in this build: the strict defaults
        from polyadapt.lineage.registry import PromotionGate

        if policy is not None:
            raise ConfigError(
                f"{policy}: reading a policy needs polyadapt.governance, which this build lacks"
            ) from None
        return PromotionGate(), source
    return load_policy(policy).promotion, source


def _metric_gate(run_record: dict[str, Any]) -> tuple[Any, str]:
    """The run's task gate (its config's ``gate:``, else its task's default) and where it comes
    from; the task's default needs the task's plugin, and without it there is none (said so)."""
    from polyadapt.lineage.metricgate import gate_of_run

    config_gate = (run_record.get("config") or {}).get("gate")
    task_name = str(run_record.get("task") or "?")
    task_gate = None
    if config_gate is None and run_record.get("task"):
        from polyadapt.plugins import get_plugin_manager

        try:
            options = (run_record.get("config") or {}).get("task_options")
            task_gate = get_plugin_manager().task(task_name).run_gate(options)
        except PolyadaptError:
            err_console.print(
                f"[yellow]warning:[/] task {escape(task_name)}'s plugin is not installed; its default gate "
                "is not applied (only the policy's)",
                highlight=False,
            )
    return gate_of_run(config_gate, task_gate, task_name)


@adapters_app.command("promote")
def adapters_promote(
    ref: Annotated[str, typer.Argument(help="NAME (its newest version), NAME@3 or BASE:NAME@3.")],
    force: Annotated[
        bool, typer.Option("--force", help="Promote even if the evaluation gate fails (recorded as forced).")
    ] = False,
    policy: Annotated[
        str | None,
        typer.Option(
            "--policy",
            help="Policy file whose promotion block sets the gate "
            "(default: the run's own policy, else the strict one).",
        ),
    ] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (kept in the registry's history).")] = None,
    db: DbOption = None,
) -> None:
    """Make an adapter version active if its evaluation passes the policy's gate."""
    from polyadapt.lineage.registry import parse_ref

    try:
        parsed = parse_ref(ref)
        store = _store(db)
        target = store.get_adapter(parsed.name, base_model=parsed.base, version=parsed.version)
        if target.status == "active":
            console.print(f"{escape(target.ref)} is already active; nothing changed", highlight=False)
            return
        run_record = store.get_run(target.run_id) or {}
        gate, source = _gate(policy, run_record.get("config"))
        metric_gate, metric_source = _metric_gate(run_record)
        promoted = store.promote(
            target.name,
            base_model=target.base_model,
            version=target.version,
            gate=gate,
            metric_gate=metric_gate,
            force=force,
            actor=_actor(),
            reason=reason,
        )
    except PolyadaptError as exc:
        _fail(exc)
    if metric_gate is not None:
        from polyadapt.lineage.registry import check_promotion

        console.print(f"task gate: {escape(metric_source)}: {escape(metric_gate.describe())}", highlight=False)
        for warning in check_promotion(run_record.get("metrics") or [], gate, metric_gate).warnings:
            err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
    chain = store.lineage(promoted.ref)
    event = chain["adapters"][0]["events"][-1] if chain["adapters"] and chain["adapters"][0]["events"] else None
    console.print(
        f"gate: {escape(source)} (no domain metric worse, one at least "
        f"{gate.min_domain_improvement:.1%} better; general at most {gate.max_general_regression:.1%} worse)",
        highlight=False,
    )
    if event and event["forced"]:
        err_console.print(f"[yellow]forced:[/] {escape(event['reason'])}", highlight=False, soft_wrap=True)
    previous = f" (version {event['previous_version']} retired)" if event and event["previous_version"] else ""
    console.print(f"[green]active:[/] {escape(promoted.ref)}{previous}", highlight=False)


@adapters_app.command("rollback")
def adapters_rollback(
    name: Annotated[str, typer.Argument(help="The adapter name (or BASE:NAME).")],
    base: Annotated[str | None, typer.Option("--base", help="The base model, when NAME exists on several.")] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (kept in the registry's history).")] = None,
    db: DbOption = None,
) -> None:
    """Make the previously active version active again and retire the current one."""
    from polyadapt.lineage.registry import parse_ref

    try:
        parsed = parse_ref(name)
        if parsed.version is not None:
            raise PolyadaptError(
                f"rollback takes a name, not a version ({name!r}); it returns to the previous active one"
            )
        store = _store(db)
        restored = store.rollback(parsed.name, base_model=base or parsed.base, actor=_actor(), reason=reason)
    except PolyadaptError as exc:
        _fail(exc)
    console.print(f"[green]active again:[/] {escape(restored.ref)}", highlight=False)


@adapters_app.command("retire")
def adapters_retire(
    ref: Annotated[str, typer.Argument(help="NAME@3 or BASE:NAME@3 (a version is required).")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why (kept in the registry's history).")] = None,
    db: DbOption = None,
) -> None:
    """Retire a version: it is no longer served and rollback never returns to it."""
    from polyadapt.lineage.registry import parse_ref

    try:
        parsed = parse_ref(ref)
        if parsed.version is None:
            raise PolyadaptError(f"say which version to retire: {parsed.name}@VERSION")
        retired = _store(db).retire(
            parsed.name, version=parsed.version, base_model=parsed.base, actor=_actor(), reason=reason
        )
    except PolyadaptError as exc:
        _fail(exc)
    console.print(f"retired: {escape(retired.ref)}", highlight=False)
