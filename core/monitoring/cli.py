"""``polyadapt monitor RUN``: has what an adapter is asked drifted from what it learned?

Reads the run's ``input_profile.json`` (written at training) and the statistics ``polyadapt
serve`` recorded for its adapter in the lineage store, prints a PSI per statistic with a
verdict, draws the ones that moved, and with ``--plot FILE.svg`` writes every chart.
``--fail-on-drift`` makes a drift exit with status 3, for a scheduled check.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from polyadapt.errors import PolyadaptError
from polyadapt.lineage.cli import DbOption, JsonOption, _fail, _store, console
from polyadapt.lineage.state import utc_stamp

if TYPE_CHECKING:  # pragma: no cover
    from polyadapt.lineage.store import LineageStore

DRIFT_EXIT = 3
_SPAN = re.compile(r"(\d+(?:\.\d+)?)\s*([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def since_stamp(since: str, now: _dt.datetime | None = None) -> str | None:
    """The ISO time (UTC, as the store writes it) ``since`` means: ``24h``, ``30m``, ``7d``,
    ``2w``, an ISO date or time, or ``all`` (None)."""
    text = since.strip().lower()
    if text == "all":
        return None
    now = now or _dt.datetime.now(_dt.timezone.utc)
    if m := _SPAN.fullmatch(text):
        start = now - _dt.timedelta(**{_UNITS[m.group(2)]: float(m.group(1))})
    else:
        try:
            start = _dt.datetime.fromisoformat(since.strip().replace("Z", "+00:00"))
        except ValueError:
            raise PolyadaptError(
                f"--since {since!r}: give a span (30m, 24h, 7d, 2w), an ISO date or time (2026-12-01), or 'all'"
            ) from None
        if start.tzinfo is None:
            start = start.replace(tzinfo=_dt.timezone.utc)
    return utc_stamp(start)


def resolve_run(store: LineageStore, ref: str) -> tuple[str, Path]:
    """The run id and folder ``ref`` names: a run folder, a run id, or an adapter
    (``name``, ``name@3``, ``base:name``)."""
    from polyadapt.fileio import read_json_file

    folder = Path(ref)
    if (folder / "run.json").is_file():
        run_id = read_json_file(folder / "run.json", "run record").get("run_id")
        if not run_id:
            raise PolyadaptError(f"{folder / 'run.json'}: no run_id in it; is this a polyadapt run folder?")
        return str(run_id), folder
    run = store.get_run(ref)
    if run is None:
        try:
            adapter = store.find_adapter(ref)
        except PolyadaptError:
            raise PolyadaptError(
                f"{ref!r} is no run folder, run id or registered adapter; `polyadapt lineage runs` lists runs"
            ) from None
        run = store.get_run(adapter.run_id) or {}
    run_dir = run.get("run_dir")
    if not run_dir:
        raise PolyadaptError(f"the lineage store has no run folder for {ref!r}; give the run folder itself")
    return str(run["run_id"]), Path(run_dir)


def monitor(
    ref: Annotated[str, typer.Argument(help="A run folder, run id or adapter (name, name@3).")],
    since: Annotated[str, typer.Option(help="Served traffic from: 30m, 24h, 7d, an ISO date, or all.")] = "24h",
    threshold: Annotated[float, typer.Option(help="PSI at which a statistic counts as drifted.")] = 0.25,
    min_requests: Annotated[int, typer.Option(help="Served values a statistic needs to be judged.")] = 30,
    plot: Annotated[Path | None, typer.Option(help="Write every statistic's chart to this SVG file.")] = None,
    fail_on_drift: Annotated[
        bool, typer.Option("--fail-on-drift", help=f"Exit with status {DRIFT_EXIT} when a statistic drifted.")
    ] = False,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Compare an adapter's served inputs with its training data, statistic by statistic."""
    from polyadapt.fileio import atomic_write_text
    from polyadapt.monitoring.drift import compare
    from polyadapt.monitoring.plot import svg_report, terminal_chart
    from polyadapt.monitoring.profile import PROFILE_FILE, read_profile

    try:
        if threshold <= 0 or min_requests < 1:
            raise PolyadaptError("--threshold must be above 0 and --min-requests at least 1")
        start = since_stamp(since)
        store = _store(db)
        run_id, run_dir = resolve_run(store, ref)
        profile = read_profile(run_dir)
        if profile is None:
            raise PolyadaptError(
                f"{run_dir / PROFILE_FILE} is missing: the run was trained before input profiles were "
                "written; train it again (`polyadapt reproduce RUN`) to monitor it"
            )
        rows = store.served_inputs(run_id, since=start)
        report = compare(profile, (row["features"] for row in rows), threshold=threshold, min_requests=min_requests)
        if plot is not None:
            atomic_write_text(plot, svg_report(report, f"{run_id}: served vs training inputs"))
    except PolyadaptError as exc:
        _fail(exc)
    window = "all recorded traffic" if start is None else f"since {start}"
    if as_json:
        print(json.dumps({"run_id": run_id, "since": start, **report.to_json()}, indent=2))
    else:
        table = Table(title=f"{run_id}: {report.requests} served requests, {window}")
        for column in ("statistic", "training", "served", "PSI", "verdict"):
            table.add_column(column, justify="right" if column == "PSI" else "left")
        for f in report.features:
            colour = {"drift": "bold red", "watch": "yellow", "ok": "green"}.get(f.verdict, "dim")
            table.add_row(
                f.name,
                escape(f.trained),
                escape(f.served),
                "–" if f.psi is None else f"{f.psi:.3f}",
                f"[{colour}]{f.verdict}[/]",
            )
        console.print(table)
        for f in report.features:
            if f.verdict in ("drift", "watch"):
                console.print(escape(terminal_chart(f)), highlight=False)
        if report.requests == 0:
            console.print(
                f"no served requests recorded for {run_id} {window}; is the server running with monitoring "
                "on (the default) and the same --db?",
                highlight=False,
            )
        elif report.drifted:
            names = ", ".join(f.name for f in report.drifted)
            console.print(f"[bold red]drift[/] past PSI {threshold}: {escape(names)}", highlight=False)
        else:
            console.print(f"no drift past PSI {threshold}", highlight=False)
        if plot is not None:
            console.print(f"charts: {plot}", highlight=False)
    if fail_on_drift and report.drifted:
        raise typer.Exit(code=DRIFT_EXIT)
