"""The ``polyadapt lineage`` and ``polyadapt adapters`` commands.

``lineage show REF`` prints the chain data → run → adapter → evaluation → registry;
``lineage diff RUN_A RUN_B`` what changed between two runs. ``adapters list | promote |
rollback | retire`` manage the registry. Each takes ``--db URL`` (default:
``$POLYADAPT_DB_URL`` or ``.polyadapt/lineage.db``). Importing this module costs typer and
rich only; the store (SQLAlchemy) is imported by the commands.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from polyadapt.errors import ConfigError, PolyadaptError
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

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

    from polyadapt.lineage.state import database_url
    from polyadapt.lineage.store import LineageStore
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    url = database_url(db)
    if must_exist:
        try:
            parsed = make_url(url)
        except ArgumentError:
            parsed = None
        if (parsed is not None and parsed.get_backend_name() == "sqlite" and parsed.database
                and parsed.database != ":memory:" and not Path(parsed.database).exists()):
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
    return "; ".join(parts)


def _metrics_table(rows: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for column in ("dataset", "metric", "role", "base", "adapted", "change"):
        table.add_column(column, justify="right" if column in {"base", "adapted", "change"} else "left")
    from polyadapt.lineage.registry import relative_improvement

    for row in rows:
        gain = relative_improvement(row["base"], row["adapted"], row["lower_is_better"])
        colour = "green" if gain > 0 else "red" if gain < 0 else "white"
        table.add_row(escape(row["dataset"]), escape(row["metric"]), row["role"], f"{row['base']:.4g}",
                      f"{row['adapted']:.4g}", f"[{colour}]{gain * 100:+.1f}% better[/]")
    return table


def _show_lineage(chain: dict[str, Any]) -> None:
    def e(value: Any) -> str:  # paths, reasons and names are text, not rich markup
        return escape(str(value))

    tree = Tree(f"[bold]lineage of {e(chain['ref'])}[/]")
    data = tree.add("data")
    for item in chain["data"]:
        quarantine = (item.get("quarantine") or {}).get("records", 0)
        records = item.get("records")
        data.add(e(
            f"{item['role']}: {item.get('source') or '?'}, "
            f"{records if records is not None else '?'} records, root {_short(item['root_hash'])}, "
            f"{quarantine} quarantined; {_governance_text(item.get('governance'))}"
        ))
    if not chain["data"]:
        data.add("[dim]no dataset recorded[/]")
    run = chain["run"]
    if run is not None:
        node = tree.add(e(
            f"run {run['run_id']}: {run.get('task')} ({run.get('plugin')}), {run['status']}, "
            f"started {run['started']}" + (f", finished {run['finished']}" if run.get("finished") else "")
        ))
        node.add(e(f"base model {run.get('base_model')}; seed {run.get('seed')}; config {_short(run.get('config_hash'))}"))
        env = run.get("environment") or {}
        packages = ", ".join(f"{k} {v}" for k, v in (env.get("packages") or {}).items() if v)
        node.add(e(f"polyadapt {env.get('polyadapt', '?')}, python {env.get('python', '?')}"
                   + (f", {packages}" if packages else "")))
        git = env.get("git")
        if git:
            node.add(e(f"git {_short(git.get('commit'))}" + (" (dirty)" if git.get("dirty") else "")))
        if run.get("error"):
            node.add(f"[red]error:[/] {e(run['error'])}")
    for adapter in chain["adapters"]:
        node = tree.add(e(
            f"adapter {adapter['ref']} [{adapter['status']}], weights {_short(adapter['weights_hash'])}, "
            f"{adapter['path']}"
        ))
        evaluation = node.add("evaluation")
        for row in chain["evaluation"]:
            evaluation.add(e(f"{row['role']} {row['dataset']} {row['metric']}: base {row['base']:.4g} "
                             f"→ adapted {row['adapted']:.4g}"))
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
            cells = [
                f"{side['base']:.4g} → {side['adapted']:.4g}" if side else "-" for side in (row["a"], row["b"])
            ]
            table.add_row(escape(row["dataset"]), escape(row["metric"]), row["role"], *cells)
        console.print(table)


# -- adapters ------------------------------------------------------------------------------


@adapters_app.command("list")
def adapters_list(
    base: Annotated[str | None, typer.Option("--base", help="Only adapters of this base model (id or short name).")] = None,
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
        table.add_row(escape(adapter.base_model), escape(adapter.name), str(adapter.version),
                      f"[{colours.get(adapter.status, 'white')}]{adapter.status}[/]", escape(adapter.run_id),
                      _short(adapter.weights_hash), adapter.created[:16].replace("T", " "))
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
                raise ConfigError(
                    f"the run followed policy {recorded}, which no longer exists; pass --policy FILE"
                )
            policy = recorded
    if policy is not None:
        source = f"policy {policy}"
    try:
        from polyadapt.governance.policy import load_policy
    except ImportError:  # governance not in this build: the strict defaults
        from polyadapt.lineage.registry import PromotionGate

        if policy is not None:
            raise ConfigError(f"{policy}: reading a policy needs polyadapt.governance, which this build lacks") from None
        return PromotionGate(), source
    return load_policy(policy).promotion, source


@adapters_app.command("promote")
def adapters_promote(
    ref: Annotated[str, typer.Argument(help="NAME (its newest version), NAME@3 or BASE:NAME@3.")],
    force: Annotated[bool, typer.Option("--force", help="Promote even if the evaluation gate fails (recorded as forced).")] = False,
    policy: Annotated[str | None, typer.Option(
        "--policy", help="Policy file whose promotion block sets the gate (default: the run's own policy, else the strict one)."
    )] = None,
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
        gate, source = _gate(policy, (store.get_run(target.run_id) or {}).get("config"))
        promoted = store.promote(target.name, base_model=target.base_model, version=target.version, gate=gate,
                                 force=force, actor=_actor(), reason=reason)
    except PolyadaptError as exc:
        _fail(exc)
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
            raise PolyadaptError(f"rollback takes a name, not a version ({name!r}); it returns to the previous active one")
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
        retired = _store(db).retire(parsed.name, version=parsed.version, base_model=parsed.base,
                                    actor=_actor(), reason=reason)
    except PolyadaptError as exc:
        _fail(exc)
    console.print(f"retired: {escape(retired.ref)}", highlight=False)
