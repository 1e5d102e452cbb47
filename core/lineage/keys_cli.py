"""The ``polyadapt keys`` commands: API keys for ``polyadapt serve``.

``keys create NAME`` prints a new key's secret once (on stdout, alone, so that
``KEY=$(polyadapt keys create ci --all)`` works) and stores only its salted hash;
``keys list`` shows name, prefix, models, rate and dates, never a secret; ``keys revoke
NAME`` ends a key (a running server stops accepting it within seconds). Each takes ``--db
URL`` like the lineage commands: the keys live in the lineage store the server reads.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from polyadapt.errors import PolyadaptError
from polyadapt.lineage.cli import DbOption, JsonOption, _fail, _store, console, err_console

if TYPE_CHECKING:  # pragma: no cover
    from polyadapt.lineage.store import LineageStore
    from polyadapt.serving.keys import KeyChecker

keys_app = typer.Typer(
    help="API keys for `polyadapt serve`: create (shown once), list, revoke.",
    no_args_is_help=True,
)


def _public(record: dict[str, Any]) -> dict[str, Any]:
    """What may be shown of a key: never its hash or salt."""
    return {
        "name": record["name"],
        "prefix": record["prefix"],
        "adapters": record["adapters"],
        "rate": record["rate"],
        "created": record["created"],
        "revoked": record["revoked"],
    }


def _minute(stamp: str) -> str:
    """``2026-01-02T03:04:05.678Z`` as ``2026-01-02 03:04Z`` (``--json`` keeps the full time)."""
    return f"{stamp[:10]} {stamp[11:16]}Z" if len(stamp) >= 16 else stamp


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="A name for the key (who or what uses it), e.g. support-bot.")],
    adapters: Annotated[
        str | None,
        typer.Option(
            "--adapters",
            help="Models it may use, comma-separated: BASE (the base alone), BASE:ADAPTER, BASE:* (all on BASE).",
        ),
    ] = None,
    all_models: Annotated[bool, typer.Option("--all", help="Let it use every served model.")] = False,
    rate: Annotated[
        str, typer.Option("--rate", help="Most requests it may make: COUNT/UNIT (s, min, hour, day), or 'none'.")
    ] = "60/min",
    db: DbOption = None,
) -> None:
    """Create an API key and print its secret, once: only a hash of it is stored."""
    from polyadapt.serving.keys import create_key, parse_models

    try:
        if all_models == (adapters is not None):
            raise PolyadaptError(
                "say which models the key may use: --adapters BASE:ADAPTER,... or --all (one of the two)"
            )
        models = None if all_models else parse_models(adapters or "")
        store = _store(db, must_exist=False)
        secret, key = create_key(store, name, adapters=models, rate=rate)
    except PolyadaptError as exc:
        _fail(exc)
    err_console.print(
        f"created API key [bold]{escape(key.name)}[/] ({key.prefix}…) for {escape(key.scope_text())}, "
        f"rate {key.rate or 'unlimited'}, in {store.display_url}.\n"
        "Its secret follows; it is not stored and cannot be shown again. Clients send it as "
        "'Authorization: Bearer <secret>' (the openai client: api_key=<secret>).",
        highlight=False,
        soft_wrap=True,
    )
    sys.stdout.write(secret + "\n")
    sys.stdout.flush()


@keys_app.command("list")
def keys_list(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Show every key: name, prefix, models, rate, created, revoked (never a secret)."""
    try:
        records = [_public(record) for record in _store(db).list_api_keys()]
    except PolyadaptError as exc:
        _fail(exc)
    if as_json:
        console.print_json(json.dumps(records))
        return
    if not records:
        console.print("No API keys yet. Create one: polyadapt keys create NAME --all")
        return
    table = Table(title="API keys")
    for column in ("name", "prefix", "models", "rate", "created", "revoked"):
        table.add_column(column, overflow="fold")
    for record in records:
        models = "all" if record["adapters"] is None else ", ".join(record["adapters"])
        table.add_row(
            escape(record["name"]),
            record["prefix"] + "…",
            escape(models),
            record["rate"] or "unlimited",
            _minute(record["created"]),
            f"[red]{_minute(record['revoked'])}[/]" if record["revoked"] else "-",
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    name: Annotated[str, typer.Argument(help="The key to end.")],
    db: DbOption = None,
) -> None:
    """Revoke a key: running servers refuse it within seconds (no restart)."""
    try:
        record = _store(db).revoke_api_key(name)
    except PolyadaptError as exc:
        _fail(exc)
    console.print(f"revoked API key [bold]{escape(name)}[/] ({record['prefix']}…) at {record['revoked']}")


def server_keys(store: LineageStore | None, db: str | None) -> KeyChecker:
    """The keys ``polyadapt serve`` checks (from ``store``, else the store at ``db``); an error
    that says how to make one when there is none yet."""
    from polyadapt.serving.keys import KeyChecker

    checker = KeyChecker(store if store is not None else _store(db, must_exist=False))
    if not checker.active_keys():
        raise PolyadaptError(
            f"this server asks every request for an API key, and the lineage store "
            f"({checker.store.display_url}) has none that is not revoked; create one with "
            "`polyadapt keys create NAME --all` (or --adapters BASE:ADAPTER,...), or serve on "
            "this machine only, without keys, with --no-keys"
        )
    return checker
