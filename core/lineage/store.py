"""The lineage store: datasets, runs, adapters and registry events in one database.

SQLite in the project's state folder by default, through SQLAlchemy Core so that a
``postgresql://`` URL works unchanged. SQLite specifics live in one dialect-guarded connect
hook: WAL journal (readers never block the writer), a 30 s busy timeout, and ``BEGIN
IMMEDIATE`` for writes so that two processes recording runs at once queue for the write lock
instead of failing half-way; a write that still meets "database is locked" is retried.

Version numbers are allocated inside the write transaction (serialised by the write lock
on SQLite, guarded by the unique constraint and a retry on PostgreSQL), so concurrent
registrations get unique, gap-free versions. Only metric numbers, hashes, counts and
resolved configs are stored: never record content, never example generations.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, OperationalError

from polyadapt.errors import PolyadaptError
from polyadapt.lineage import liveness
from polyadapt.lineage.registry import (
    EVENTS,
    AdapterVersion,
    PromotionGateSettings,
    PromotionRefused,
    base_matches,
    check_name,
    check_promotion,
    normalise_metric_rows,
    parse_ref,
)
from polyadapt.lineage.state import database_url, utc_stamp

if TYPE_CHECKING:  # pragma: no cover
    from polyadapt.lineage.metricgate import MetricGate
    from polyadapt.lineage.registry import MetricRows

T = TypeVar("T")

SCHEMA_VERSION = "1"
BUSY_TIMEOUT_MS = 30_000
WRITE_ATTEMPTS = 8
#: Execution option that makes the SQLite begin hook emit BEGIN IMMEDIATE.
_WRITE_OPTION = "polyadapt_write"
RUN_STATUSES = ("running", "trained", "completed", "failed", "interrupted", "refused")
_FINAL_STATUSES = ("completed", "failed", "interrupted", "refused")

metadata = MetaData()

meta_table = Table(
    "polyadapt_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(255), nullable=False),
)
datasets_table = Table(
    "datasets",
    metadata,
    Column("root_hash", String(64), primary_key=True),
    Column("kind", String(64), nullable=False),
    Column("records", Integer, nullable=False),
    Column("manifest", JSON, nullable=False),
    Column("first_seen", String(40), nullable=False),
)
runs_table = Table(
    "runs",
    metadata,
    Column("run_id", String(255), primary_key=True),
    Column("task", String(255)),
    Column("plugin", String(255)),
    Column("config_hash", String(64)),
    Column("config", JSON),
    Column("seed", Integer),
    Column("environment", JSON),
    Column("base_model", Text),
    Column("status", String(32), nullable=False),
    Column("started", String(40), nullable=False),
    Column("finished", String(40)),
    Column("error", Text),
    Column("metrics", JSON),
    Column("run_dir", Text),
)
run_datasets_table = Table(
    "run_datasets",
    metadata,
    Column("run_id", String(255), ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("role", String(64), primary_key=True),
    Column("root_hash", String(64), nullable=False, index=True),
    Column("source", Text),
)
adapters_table = Table(
    "adapters",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("base_model", String(1024), nullable=False),
    Column("name", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("run_id", String(255), ForeignKey("runs.run_id"), nullable=False, index=True),
    Column("path", Text, nullable=False),
    Column("weights_hash", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created", String(40), nullable=False),
    UniqueConstraint("base_model", "name", "version", name="uq_adapter_version"),
)
events_table = Table(
    "registry_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("adapter_id", Integer, ForeignKey("adapters.id"), nullable=False, index=True),
    #: The version that was active before this event (None when there was none).
    Column("previous_id", Integer, ForeignKey("adapters.id")),
    Column("event", String(32), nullable=False),
    Column("actor", String(255)),
    Column("reason", Text),
    Column("time", String(40), nullable=False),
    Column("forced", Boolean, nullable=False, default=False),
    #: The promotion gate's checks at the time (numbers only).
    Column("checks", JSON),
)
#: ``polyadapt serve``'s API keys (polyadapt.serving.keys): never the secret, only its salted hash.
api_keys_table = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False, index=True),
    Column("salt", String(64), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    #: Model names the key may use (``base``, ``base:adapter``, ``base:*``); None: every model.
    Column("adapters", JSON),
    Column("rate", String(32)),
    Column("created", String(40), nullable=False),
    Column("revoked", String(40)),
)
#: ``polyadapt serve``'s traffic (polyadapt.serving.traffic): each request's input statistics,
#: never its text; ``sample`` is a redacted copy of the input for the sampled few.
served_inputs_table = Table(
    "served_inputs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time", String(40), nullable=False, index=True),
    Column("model", String(1024), nullable=False),
    #: The run whose adapter answered; None for a base model.
    Column("run_id", String(255), index=True),
    Column("features", JSON, nullable=False),
    Column("sample", Text),
)
#: ``polyadapt index build``'s retrieval indexes (polyadapt.retrieval): one row per index name
#: (a rebuild replaces it; every build's passage manifest stays in ``datasets``), hashes,
#: counts and the governance summary, never passage text.
retrieval_indexes_table = Table(
    "retrieval_indexes",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("root_hash", String(64), nullable=False, index=True),
    Column("documents_root_hash", String(64), nullable=False),
    Column("passages", Integer, nullable=False),
    Column("path", Text, nullable=False),
    Column("facts", JSON, nullable=False),
    Column("built", String(40), nullable=False),
)

#: ``polyadapt export``'s exports (polyadapt.export): which adapter (its weights hash) became
#: which files (SHA-256 each), in what format, with the export's checks (numbers only).
exports_table = Table(
    "exports",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(255), nullable=False, index=True),
    Column("adapter_hash", String(64), nullable=False, index=True),
    Column("format", String(64), nullable=False),
    Column("options", JSON),
    Column("path", Text, nullable=False),
    Column("files", JSON, nullable=False),
    Column("facts", JSON),
    Column("created", String(40), nullable=False),
)


def _now() -> str:
    return utc_stamp()


def _json_dumps(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def _is_locked(exc: OperationalError) -> bool:
    text = str(getattr(exc, "orig", exc)).lower()
    return "locked" in text or "busy" in text


def _configure_sqlite(engine: Engine) -> None:
    """WAL, busy timeout, foreign keys, and SQLAlchemy-driven BEGIN (IMMEDIATE for writes).

    pysqlite's own transaction handling is switched off (``isolation_level = None``) and the
    ``begin`` hook emits BEGIN itself, as SQLAlchemy's SQLite documentation recommends; this
    is what lets writes take the write lock up front (``BEGIN IMMEDIATE``) so that the busy
    timeout applies instead of a deadlock-style "database is locked" on upgrade.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _adapter(row: Any) -> AdapterVersion:
    return AdapterVersion(
        id=row.id,
        base_model=row.base_model,
        name=row.name,
        version=row.version,
        run_id=row.run_id,
        path=row.path,
        weights_hash=row.weights_hash,
        status=row.status,
        created=row.created,
    )


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}``; lists stay values."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def _versions(environment: dict[str, Any] | None) -> dict[str, Any]:
    """The version-like facts of an environment record, as flat ``name: version`` pairs."""
    env = environment or {}
    out: dict[str, Any] = {}
    for key in ("polyadapt", "python"):
        if key in env:
            out[key] = env[key]
    for name, version in (env.get("packages") or {}).items():
        out[name] = version
    for plugin in env.get("plugins") or []:
        label = plugin.get("distribution") or plugin.get("name")
        out[f"plugin:{label}"] = plugin.get("version")
    git = env.get("git") or {}
    if git:
        out["git.commit"] = git.get("commit")
        out["git.dirty"] = git.get("dirty")
    base = env.get("base_model") or {}
    if base:
        out["base_model.revision"] = base.get("revision")
        files = base.get("files") or base.get("weight_hashes") or {}
        for file, digest in sorted(files.items()):
            out[f"base_model.files.{file}"] = digest
    return out


def _process_of(environment: Any) -> dict[str, Any] | None:
    """The process identity a run recorded in its environment (None for older runs)."""
    process = environment.get("process") if isinstance(environment, dict) else None
    return process if isinstance(process, dict) else None


def _where(process: dict[str, Any] | None) -> str:
    process = process or {}
    return f"pid {process.get('pid')} on {process.get('host')}"


def _abandon_refusal(run_id: str, process: dict[str, Any] | None, state: str) -> str:
    """Why ``abandon_run`` will not act without ``force``, and what to do instead."""
    if process is None:  # process_state(None) is UNKNOWN: never ALIVE nor OTHER_HOST
        return (
            f"run {run_id!r} recorded no host and process id (an older polyadapt, or a run recorded "
            "through the API), so whether it still runs cannot be checked; make sure it has "
            "stopped, then pass --force"
        )
    if state == liveness.ALIVE:
        pid = process["pid"]
        return (
            f"run {run_id!r} is still running: its process ({_where(process)}) is alive. Stop it "
            f"with `kill {pid}` (the run then records itself as interrupted), or pass --force "
            "if you know that process is no longer the run's"
        )
    if state == liveness.OTHER_HOST:
        return (
            f"run {run_id!r} was started on host {process['host']!r} (pid {process['pid']}), not on "
            f"this one ({liveness.host_name()!r}), so its process cannot be checked from here; make "
            "sure it has stopped there, then pass --force"
        )
    return (
        f"run {run_id!r}: its process ({_where(process)}) cannot be checked on this platform; make "
        "sure it has stopped, then pass --force"
    )


def _abandon_note(process: dict[str, Any] | None, state: str, *, actor: str | None, reason: str | None) -> str:
    """The note an abandoned run keeps as its error: who, what was known of its process, why."""
    found = {
        liveness.GONE: f"its process ({_where(process)}) was gone",
        liveness.ALIVE: f"forced while its process ({_where(process)}) was alive",
        liveness.OTHER_HOST: f"forced; its process ({_where(process)}) could not be checked from "
        f"{liveness.host_name()}",
    }.get(state, "forced; its process could not be checked")
    note = ("abandoned by " + actor if actor else "abandoned") + f": {found}"
    return f"{note}; reason: {reason}" if reason else note


def _missing(module: str) -> bool:
    """True when ``module`` cannot be imported here (checked without importing it)."""
    import importlib.util

    return importlib.util.find_spec(module) is None


class LineageStore:
    """The lineage database (see the module docstring); one instance per process.

    ``url`` defaults to :func:`polyadapt.lineage.state.database_url` (``$POLYADAPT_DB_URL``
    or SQLite in the state folder). Tables are created on first use.
    """

    def __init__(self, url: str | None = None):
        self.url = database_url(url)
        try:
            parsed = make_url(self.url)
        except ArgumentError:
            raise PolyadaptError(
                f"lineage database URL {self.url!r} is not a database URL; use e.g. "
                "sqlite:///path/lineage.db or postgresql://user@host/db (POLYADAPT_DB_URL)"
            ) from None
        if parsed.drivername == "postgresql" and _missing("psycopg2") and not _missing("psycopg"):
            # a plain postgresql:// URL means psycopg2 to SQLAlchemy; psycopg 3 is the driver we install
            parsed = parsed.set(drivername="postgresql+psycopg")
            self.url = parsed.render_as_string(hide_password=False)
        self.display_url = parsed.render_as_string(hide_password=True)
        self.dialect = parsed.get_backend_name()
        try:
            if self.dialect == "sqlite":
                if parsed.database and parsed.database != ":memory:":
                    from pathlib import Path

                    Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
                self.engine = create_engine(self.url, json_serializer=_json_dumps)
                _configure_sqlite(self.engine)
            else:
                self.engine = create_engine(self.url, json_serializer=_json_dumps, pool_pre_ping=True)
        except ModuleNotFoundError as exc:
            raise PolyadaptError(
                f"lineage database {self.display_url}: its driver is not installed "
                f"({exc.name}); pip-install it (e.g. psycopg for PostgreSQL)"
            ) from None
        self._writer = self.engine.execution_options(**{_WRITE_OPTION: True})
        self._create_schema()

    @classmethod
    def open(cls, url: str | None = None) -> LineageStore:
        """The store at ``url``, else at ``$POLYADAPT_DB_URL``, else in the state folder."""
        return cls(url)

    def close(self) -> None:
        """Close the store's connections."""
        self.engine.dispose()

    def __enter__(self) -> LineageStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- transactions --------------------------------------------------------------------

    def _db_error(self, exc: DBAPIError) -> PolyadaptError:
        return PolyadaptError(f"lineage database {self.display_url}: {getattr(exc, 'orig', exc)}")

    def _write(self, fn: Callable[[Connection], T], *, retry_integrity: bool = False) -> T:
        """Run ``fn`` in one write transaction, retrying when the database is busy."""
        delay = 0.05
        for attempt in range(WRITE_ATTEMPTS):
            last = attempt == WRITE_ATTEMPTS - 1
            try:
                with self._writer.begin() as conn:
                    return fn(conn)
            except OperationalError as exc:
                if last or not _is_locked(exc):
                    raise self._db_error(exc) from None
            except IntegrityError:
                if last or not retry_integrity:
                    raise
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 1.0)
        raise AssertionError("unreachable")  # pragma: no cover

    def _read(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in one read transaction (a consistent snapshot)."""
        try:
            with self.engine.connect() as conn:
                return fn(conn)
        except OperationalError as exc:
            raise self._db_error(exc) from None

    def _create_schema(self) -> None:
        def create(conn: Connection) -> None:
            metadata.create_all(conn)
            if conn.execute(select(meta_table.c.value).where(meta_table.c.key == "schema_version")).first() is None:
                conn.execute(insert(meta_table).values(key="schema_version", value=SCHEMA_VERSION))

        try:
            self._write(create, retry_integrity=True)
        except DBAPIError:
            # Another process created the tables between our check and our CREATE
            # (PostgreSQL); the second attempt sees them.
            self._write(create, retry_integrity=True)

    # -- datasets and runs -------------------------------------------------------------

    @staticmethod
    def _insert_dataset(conn: Connection, manifest: dict[str, Any]) -> str:
        try:
            root = manifest["root_hash"]
        except (KeyError, TypeError):
            raise PolyadaptError("a dataset manifest needs a root_hash; build it with build_manifest") from None
        exists = conn.execute(select(datasets_table.c.root_hash).where(datasets_table.c.root_hash == root)).first()
        if exists is None:
            stored = {key: value for key, value in manifest.items() if key != "role"}
            conn.execute(
                insert(datasets_table).values(
                    root_hash=root,
                    kind=str(manifest.get("kind", "")),
                    records=int(manifest.get("records", 0)),
                    manifest=stored,
                    first_seen=_now(),
                )
            )
        return root

    def record_dataset(self, manifest: dict[str, Any]) -> str:
        """Record a dataset manifest (idempotent: keyed by its root hash); returns the root hash."""
        return self._write(lambda conn: self._insert_dataset(conn, manifest), retry_integrity=True)

    def start_run(
        self,
        run_id: str,
        *,
        task: str,
        plugin: str,
        config_hash: str,
        config: dict[str, Any],
        seed: int | None,
        environment: dict[str, Any],
        base_model: str,
        run_dir: str | None = None,
        datasets: dict[str, str | dict[str, Any]] | None = None,
    ) -> None:
        """Record that run ``run_id`` started (a resumed run updates its record).

        ``datasets`` maps a role (``train``, ``eval``, ``general_eval``, ...) to a dataset's
        root hash or its manifest; manifests are recorded on the way.
        """

        def op(conn: Connection) -> None:
            values = dict(
                task=task,
                plugin=plugin,
                config_hash=config_hash,
                config=config,
                seed=seed,
                environment=environment,
                base_model=base_model,
                run_dir=None if run_dir is None else str(run_dir),
                status="running",
                finished=None,
                error=None,
            )
            existing = conn.execute(select(runs_table.c.run_id).where(runs_table.c.run_id == run_id)).first()
            if existing is None:
                conn.execute(insert(runs_table).values(run_id=run_id, started=_now(), **values))
            else:
                conn.execute(update(runs_table).where(runs_table.c.run_id == run_id).values(**values))
                conn.execute(delete(run_datasets_table).where(run_datasets_table.c.run_id == run_id))
            for role, item in (datasets or {}).items():
                if isinstance(item, dict):
                    root = self._insert_dataset(conn, item)
                    source = (item.get("source") or {}).get("name")
                else:
                    root, source = str(item), None
                conn.execute(
                    insert(run_datasets_table).values(
                        run_id=run_id,
                        role=role,
                        root_hash=root,
                        source=source,
                    )
                )

        self._write(op, retry_integrity=True)

    def link_dataset(self, run_id: str, role: str, root_hash: str, *, source: str | None = None) -> None:
        """Record that run ``run_id`` used dataset ``root_hash`` as ``role`` (replacing that role's link).

        Record the manifest first (:meth:`record_dataset`) so that lineage shows its counts.
        """

        def op(conn: Connection) -> None:
            self._require_run(conn, run_id)
            if source is None:
                manifest = conn.execute(
                    select(datasets_table.c.manifest).where(datasets_table.c.root_hash == root_hash)
                ).scalar()
                found = ((manifest or {}).get("source") or {}).get("name")
            else:
                found = source
            conn.execute(
                delete(run_datasets_table).where(
                    run_datasets_table.c.run_id == run_id,
                    run_datasets_table.c.role == role,
                )
            )
            conn.execute(
                insert(run_datasets_table).values(
                    run_id=run_id,
                    role=role,
                    root_hash=root_hash,
                    source=found,
                )
            )

        self._write(op, retry_integrity=True)

    @staticmethod
    def _require_run(conn: Connection, run_id: str) -> None:
        if conn.execute(select(runs_table.c.run_id).where(runs_table.c.run_id == run_id)).first() is None:
            raise PolyadaptError(
                f"run {run_id!r} is not in the lineage store; it was recorded elsewhere or before lineage was enabled"
            )

    def finish_run(
        self, run_id: str, *, status: str, error: str | None = None, metrics: MetricRows | None = None
    ) -> None:
        """Record a run's outcome: ``status`` (completed, failed, ...), its error, its metrics."""
        if status not in RUN_STATUSES:
            raise PolyadaptError(f"run status {status!r} is not one of {', '.join(RUN_STATUSES)}")

        def op(conn: Connection) -> None:
            self._require_run(conn, run_id)
            values: dict[str, Any] = {"status": status, "error": error}
            if status in _FINAL_STATUSES:
                values["finished"] = _now()
            if metrics is not None:
                values["metrics"] = normalise_metric_rows(metrics)
            conn.execute(update(runs_table).where(runs_table.c.run_id == run_id).values(**values))

        self._write(op)

    def record_metrics(self, run_id: str, metrics: MetricRows) -> None:
        """Store a run's evaluation (an ``EvalReport``, its dict or metric rows; numbers only)."""
        rows = normalise_metric_rows(metrics)

        def op(conn: Connection) -> None:
            self._require_run(conn, run_id)
            conn.execute(update(runs_table).where(runs_table.c.run_id == run_id).values(metrics=rows))

        self._write(op)

    def _run_dict(self, conn: Connection, run_id: str) -> dict[str, Any] | None:
        row = conn.execute(select(runs_table).where(runs_table.c.run_id == run_id)).mappings().first()
        if row is None:
            return None
        run = dict(row)
        data = (
            conn.execute(
                select(run_datasets_table, datasets_table.c.manifest)
                .join(datasets_table, datasets_table.c.root_hash == run_datasets_table.c.root_hash, isouter=True)
                .where(run_datasets_table.c.run_id == run_id)
                .order_by(run_datasets_table.c.role)
            )
            .mappings()
            .all()
        )
        run["datasets"] = [
            {"role": d["role"], "root_hash": d["root_hash"], "source": d["source"], "manifest": d["manifest"]}
            for d in data
        ]
        return run

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """A run's record (config, environment, metrics, datasets with manifests), or None."""
        return self._read(lambda conn: self._run_dict(conn, run_id))

    @staticmethod
    def _last_adapters(conn: Connection, run_ids: list[str]) -> dict[str, AdapterVersion]:
        """The last adapter version each of ``run_ids`` registered (runs with none are left out)."""
        rows = conn.execute(
            select(adapters_table).where(adapters_table.c.run_id.in_(run_ids)).order_by(adapters_table.c.id)
        ).all()
        return {row.run_id: _adapter(row) for row in rows}

    def list_runs(self, *, status: str | None = None, task: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """The newest ``limit`` runs, newest first, optionally only those of ``status`` and ``task``.

        Each is ``{"run_id", "task", "plugin", "status", "started", "finished", "base_model",
        "error", "process", "metrics", "adapter"}``: ``process`` is the host and pid the run
        recorded (None for runs recorded before that), ``adapter`` the last version the run
        registered (:meth:`AdapterVersion.to_dict`) or None.
        """
        if status is not None and status not in RUN_STATUSES:
            raise PolyadaptError(f"run status {status!r} is not one of {', '.join(RUN_STATUSES)}")
        if limit < 1:
            raise PolyadaptError(f"the limit must be at least 1, not {limit}")
        c = runs_table.c

        def op(conn: Connection) -> list[dict[str, Any]]:
            query = (
                select(
                    c.run_id,
                    c.task,
                    c.plugin,
                    c.status,
                    c.started,
                    c.finished,
                    c.base_model,
                    c.error,
                    c.environment,
                    c.metrics,
                )
                .order_by(c.started.desc(), c.run_id.desc())
                .limit(limit)
            )
            if status is not None:
                query = query.where(c.status == status)
            if task is not None:
                query = query.where(c.task == task)
            rows = conn.execute(query).mappings().all()
            adapters = self._last_adapters(conn, [row["run_id"] for row in rows])
            out = []
            for row in rows:
                run = {key: value for key, value in row.items() if key != "environment"}
                adapter = adapters.get(row["run_id"])
                run["process"] = _process_of(row["environment"])
                run["metrics"] = row["metrics"] or []
                run["adapter"] = adapter.to_dict() if adapter is not None else None
                out.append(run)
            return out

        return self._read(op)

    def abandon_run(
        self, run_id: str, *, reason: str | None = None, force: bool = False, actor: str | None = None
    ) -> dict[str, Any]:
        """Record a run left ``running`` by a killed process (SIGKILL, power loss) as ``interrupted``.

        Refused for a run that is not ``running``; without ``force`` also for one whose
        process is alive on this host, ran on another host, or cannot be checked. The note
        (who, what was known of the process, ``reason``) is kept as the run's error.

        :returns: ``{"run_id", "process", "process_state", "error"}``.
        """

        def op(conn: Connection) -> dict[str, Any]:
            row = conn.execute(
                select(runs_table.c.status, runs_table.c.environment)
                .where(runs_table.c.run_id == run_id)
                .with_for_update()
            ).first()
            if row is None:
                raise PolyadaptError(
                    f"run {run_id!r} is not in the lineage store {self.display_url}; "
                    "`polyadapt lineage runs --status running` lists the runs left running"
                )
            if row.status != "running":
                raise PolyadaptError(
                    f"run {run_id!r} is {row.status}, not running; only a run left running by a "
                    "killed process can be abandoned"
                )
            process = _process_of(row.environment)
            state = liveness.process_state(process)
            if state != liveness.GONE and not force:
                raise PolyadaptError(_abandon_refusal(run_id, process, state))
            note = _abandon_note(process, state, actor=actor, reason=reason)
            conn.execute(
                update(runs_table)
                .where(runs_table.c.run_id == run_id)
                .values(
                    status="interrupted",
                    finished=_now(),
                    error=note,
                )
            )
            return {"run_id": run_id, "process": process, "process_state": state, "error": note}

        return self._write(op)

    # -- adapters and the registry -----------------------------------------------------

    def register_adapter(
        self, run_id: str, *, base_model: str, name: str, path: str, weights_hash: str
    ) -> AdapterVersion:
        """Register the adapter a run made as the next version of (base_model, name).

        Registering the same weights from the same run again returns the existing version.
        """
        check_name(name)

        def op(conn: Connection) -> AdapterVersion:
            self._require_run(conn, run_id)
            same = adapters_table.c
            existing = conn.execute(
                select(adapters_table).where(
                    same.run_id == run_id,
                    same.base_model == base_model,
                    same.name == name,
                    same.weights_hash == weights_hash,
                )
            ).first()
            if existing is not None:
                return _adapter(existing)
            latest = conn.execute(
                select(func.max(same.version)).where(same.base_model == base_model, same.name == name)
            ).scalar()
            values: dict[str, Any] = dict(
                base_model=base_model,
                name=name,
                version=(latest or 0) + 1,
                run_id=run_id,
                path=str(path),
                weights_hash=weights_hash,
                status="candidate",
                created=_now(),
            )
            inserted = conn.execute(insert(adapters_table).values(**values)).inserted_primary_key
            assert inserted is not None  # an INSERT of one row has its primary key
            new_id = inserted[0]
            return AdapterVersion(id=new_id, **values)

        return self._write(op, retry_integrity=True)

    @staticmethod
    def _bases_named(conn: Connection, name: str, base: str | None) -> list[str]:
        stored = (
            conn.execute(select(adapters_table.c.base_model).where(adapters_table.c.name == name).distinct())
            .scalars()
            .all()
        )
        return sorted(b for b in stored if base is None or base_matches(b, base))

    def _resolve_base(self, conn: Connection, name: str, base: str | None) -> str:
        bases = self._bases_named(conn, name, base)
        if not bases:
            known = conn.execute(select(adapters_table.c.name).distinct()).scalars().all()
            where = f" on base {base!r}" if base else ""
            hint = f"; registered: {', '.join(sorted(known))}" if known else "; none is registered yet"
            raise PolyadaptError(f"no adapter named {name!r}{where}{hint}")
        if len(bases) > 1:
            raise PolyadaptError(
                f"adapter name {name!r} exists on several base models ({', '.join(bases)}); "
                f"say which with BASE:{name} or --base"
            )
        return bases[0]

    @staticmethod
    def _versions_of(conn: Connection, base: str, name: str, *, lock: bool = False) -> list[AdapterVersion]:
        query = (
            select(adapters_table)
            .where(adapters_table.c.base_model == base, adapters_table.c.name == name)
            .order_by(adapters_table.c.version)
        )
        if lock:
            query = query.with_for_update()  # PostgreSQL row locks; SQLite holds the write lock
        return [_adapter(row) for row in conn.execute(query)]

    @staticmethod
    def _add_event(
        conn: Connection,
        adapter: AdapterVersion,
        previous: AdapterVersion | None,
        kind: str,
        *,
        actor: str | None,
        reason: str | None,
        forced: bool = False,
        checks: Any = None,
    ) -> None:
        assert kind in EVENTS
        conn.execute(
            insert(events_table).values(
                adapter_id=adapter.id,
                previous_id=None if previous is None else previous.id,
                event=kind,
                actor=actor,
                reason=reason,
                time=_now(),
                forced=forced,
                checks=checks,
            )
        )

    @staticmethod
    def _set_status(conn: Connection, adapter: AdapterVersion, status: str) -> None:
        conn.execute(update(adapters_table).where(adapters_table.c.id == adapter.id).values(status=status))

    @staticmethod
    def _pick(versions: list[AdapterVersion], base: str, name: str, version: int | None) -> AdapterVersion:
        if version is None:
            return versions[-1]
        for candidate in versions:
            if candidate.version == version:
                return candidate
        raise PolyadaptError(
            f"{base}:{name} has no version {version}; versions: {', '.join(str(v.version) for v in versions)}"
        )

    def get_adapter(self, name: str, *, base_model: str | None = None, version: int | None = None) -> AdapterVersion:
        """Version ``version`` of ``name`` (default: the newest), the one :meth:`promote` would act on."""

        def op(conn: Connection) -> AdapterVersion:
            base = self._resolve_base(conn, name, base_model)
            return self._pick(self._versions_of(conn, base, name), base, name, version)

        return self._read(op)

    def promote(
        self,
        name: str,
        *,
        base_model: str | None = None,
        version: int | None = None,
        gate: PromotionGateSettings,
        metric_gate: MetricGate | None = None,
        force: bool = False,
        actor: str | None = None,
        reason: str | None = None,
    ) -> AdapterVersion:
        """Make a version active (default: the newest) if its run's evaluation passes ``gate``
        (the policy's) and ``metric_gate`` (the run config's or the task's, when given).

        The previous active version is retired. A failing gate raises
        :class:`PromotionRefused` with the numbers; ``force=True`` promotes anyway and
        records the event as ``force-promote`` with the failed checks. Promoting the active
        version changes nothing.
        """

        def op(conn: Connection) -> AdapterVersion:
            base = self._resolve_base(conn, name, base_model)
            versions = self._versions_of(conn, base, name, lock=True)
            target = self._pick(versions, base, name, version)
            if target.status == "active":
                return target
            metrics = conn.execute(select(runs_table.c.metrics).where(runs_table.c.run_id == target.run_id)).scalar()
            result = check_promotion(metrics or [], gate, metric_gate)
            checks = [check.to_dict() for check in result.checks] + [{"problem": p} for p in result.problems]
            if not result.passed and not force:
                raise PromotionRefused(
                    f"promotion of {target.ref} refused by the evaluation gate: "
                    + "; ".join(result.failures())
                    + ". Improve the adapter or change the policy's promotion block; --force "
                    "promotes anyway and is recorded as forced",
                    result.checks,
                )
            previous = next((v for v in versions if v.status == "active"), None)
            if previous is not None:
                self._set_status(conn, previous, "retired")
            self._set_status(conn, target, "active")
            forced = not result.passed
            note = reason
            if forced:
                failed = "failed checks: " + "; ".join(result.failures())
                note = f"{reason} ({failed})" if reason else failed
            self._add_event(
                conn,
                target,
                previous,
                "force-promote" if forced else "promote",
                actor=actor,
                reason=note,
                forced=forced,
                checks=checks,
            )
            return replace(target, status="active")

        return self._write(op)

    def _activation_stack(self, conn: Connection, versions: list[AdapterVersion]) -> list[int]:
        """Replay the registry events of one (base, name): the ids that were active, in order."""
        ids = [v.id for v in versions]
        rows = conn.execute(
            select(events_table).where(events_table.c.adapter_id.in_(ids)).order_by(events_table.c.id)
        ).all()
        stack: list[int] = []
        for row in rows:
            if row.event in ("promote", "force-promote"):
                stack.append(row.adapter_id)
            elif row.event == "rollback":
                if stack and stack[-1] == row.previous_id:
                    stack.pop()
                if not stack or stack[-1] != row.adapter_id:
                    stack.append(row.adapter_id)
            elif row.event == "retire":
                stack = [i for i in stack if i != row.adapter_id]
        return stack

    def rollback(
        self,
        name: str,
        *,
        base_model: str | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> AdapterVersion:
        """Make the previously active version active again and retire the current one."""

        def op(conn: Connection) -> AdapterVersion:
            base = self._resolve_base(conn, name, base_model)
            versions = self._versions_of(conn, base, name, lock=True)
            by_id = {v.id: v for v in versions}
            current = next((v for v in versions if v.status == "active"), None)
            if current is None:
                raise PolyadaptError(
                    f"{base}:{name} has no active version to roll back; promote one with `polyadapt adapters promote`"
                )
            stack = self._activation_stack(conn, versions)
            while stack and stack[-1] == current.id:
                stack.pop()
            target = None
            while stack:
                candidate = by_id.get(stack.pop())
                if candidate is not None and candidate.id != current.id:
                    target = candidate
                    break
            if target is None:
                raise PolyadaptError(
                    f"{current.ref} is the first version of {name!r} to be active; there is no "
                    "earlier one to roll back to"
                )
            self._set_status(conn, current, "retired")
            self._set_status(conn, target, "active")
            self._add_event(conn, target, current, "rollback", actor=actor, reason=reason)
            return replace(target, status="active")

        return self._write(op)

    def retire(
        self,
        name: str,
        *,
        version: int,
        base_model: str | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> AdapterVersion:
        """Retire a version: it stops being served and rollback never returns to it."""

        def op(conn: Connection) -> AdapterVersion:
            base = self._resolve_base(conn, name, base_model)
            versions = self._versions_of(conn, base, name, lock=True)
            target = self._pick(versions, base, name, version)
            self._set_status(conn, target, "retired")
            self._add_event(conn, target, None, "retire", actor=actor, reason=reason)
            return replace(target, status="retired")

        return self._write(op)

    def list_adapters(
        self, *, base_model: str | None = None, name: str | None = None, status: str | None = None
    ) -> list[AdapterVersion]:
        """Registered versions, by base, name and version; filters are optional."""

        def op(conn: Connection) -> list[AdapterVersion]:
            query = select(adapters_table).order_by(
                adapters_table.c.base_model, adapters_table.c.name, adapters_table.c.version
            )
            if name is not None:
                query = query.where(adapters_table.c.name == name)
            if status is not None:
                query = query.where(adapters_table.c.status == status)
            found = [_adapter(row) for row in conn.execute(query)]
            if base_model is not None:
                found = [a for a in found if base_matches(a.base_model, base_model)]
            return found

        return self._read(op)

    def active_adapters(self) -> list[AdapterVersion]:
        """The active version of every (base, name): what ``serve`` should load."""
        return self.list_adapters(status="active")

    def registry_version(self) -> int:
        """A number that grows with every registry event: poll it to notice promotions and rollbacks."""
        return self._read(lambda conn: conn.execute(select(func.max(events_table.c.id))).scalar() or 0)

    def _find(self, conn: Connection, ref: str) -> tuple[list[AdapterVersion], str | None]:
        """(adapters, run id) that ``ref`` names: an adapter reference or a run id."""
        try:
            parsed = parse_ref(ref)
        except PolyadaptError:
            parsed = None
        if parsed is not None and self._bases_named(conn, parsed.name, parsed.base):
            base = self._resolve_base(conn, parsed.name, parsed.base)
            versions = self._versions_of(conn, base, parsed.name)
            if parsed.version is not None:
                chosen = [v for v in versions if v.version == parsed.version]
                if not chosen:
                    raise PolyadaptError(
                        f"{base}:{parsed.name} has no version {parsed.version}; versions: "
                        f"{', '.join(str(v.version) for v in versions)}"
                    )
            else:
                active = [v for v in versions if v.status == "active"]
                chosen = active or versions[-1:]
            return chosen, chosen[0].run_id
        run = conn.execute(select(runs_table.c.run_id).where(runs_table.c.run_id == ref)).first()
        if run is not None:
            made = conn.execute(
                select(adapters_table).where(adapters_table.c.run_id == ref).order_by(adapters_table.c.id)
            ).all()
            return [_adapter(row) for row in made], ref
        raise PolyadaptError(
            f"{ref!r} is neither a registered adapter (NAME, NAME@3, BASE:NAME@3) nor a recorded "
            "run id; `polyadapt adapters list` shows the adapters"
        )

    def find_adapter(self, ref: str) -> AdapterVersion:
        """The version ``ref`` names: ``name`` (the active one, else the newest), ``name@3``,
        ``base:name@3``, or a run id (the adapter that run made)."""

        def op(conn: Connection) -> AdapterVersion:
            found, run_id = self._find(conn, ref)
            if not found:
                raise PolyadaptError(f"run {run_id!r} has not registered an adapter")
            return found[-1]

        return self._read(op)

    # -- API keys ----------------------------------------------------------------------

    def create_api_key(
        self, name: str, *, prefix: str, salt: str, secret_hash: str, adapters: list[str] | None, rate: str | None
    ) -> dict[str, Any]:
        """Record an API key (its hash, never its secret); a taken name is an error."""

        def op(conn: Connection) -> dict[str, Any]:
            taken = conn.execute(select(api_keys_table.c.revoked).where(api_keys_table.c.name == name)).first()
            if taken is not None:
                was = f" (revoked {taken.revoked})" if taken.revoked else ""
                raise PolyadaptError(
                    f"an API key named {name!r} already exists{was}; choose another name "
                    "(`polyadapt keys list` shows them)"
                )
            values = dict(
                name=name,
                prefix=prefix,
                salt=salt,
                secret_hash=secret_hash,
                adapters=adapters,
                rate=rate,
                created=_now(),
                revoked=None,
            )
            conn.execute(insert(api_keys_table).values(**values))
            return values

        try:
            return self._write(op)
        except IntegrityError:  # another process took the name between our check and our insert
            raise PolyadaptError(f"an API key named {name!r} already exists; choose another name") from None

    def list_api_keys(self) -> list[dict[str, Any]]:
        """Every API key record, revoked ones included, oldest first (hashes and salts included)."""

        def op(conn: Connection) -> list[dict[str, Any]]:
            rows = conn.execute(select(api_keys_table).order_by(api_keys_table.c.id))
            return [dict(row._mapping) for row in rows]

        return self._read(op)

    def revoke_api_key(self, name: str) -> dict[str, Any]:
        """Mark API key ``name`` revoked (now); an unknown or already revoked name is an error."""

        def op(conn: Connection) -> dict[str, Any]:
            row = conn.execute(select(api_keys_table).where(api_keys_table.c.name == name)).first()
            if row is None:
                known = [r.name for r in conn.execute(select(api_keys_table.c.name).order_by(api_keys_table.c.id))]
                shown = ", ".join(known) if known else "none yet"
                raise PolyadaptError(f"there is no API key named {name!r}; keys: {shown}")
            if row.revoked is not None:
                raise PolyadaptError(f"the API key {name!r} was already revoked at {row.revoked}")
            revoked = _now()
            conn.execute(update(api_keys_table).where(api_keys_table.c.id == row.id).values(revoked=revoked))
            return {**row._mapping, "revoked": revoked}

        return self._write(op)

    # -- served traffic ----------------------------------------------------------------

    def record_served_inputs(self, rows: list[dict[str, Any]]) -> None:
        """Append served requests' statistics (``time``, ``model``, ``run_id``, ``features``,
        ``sample``), all in one transaction."""
        if rows:
            self._write(lambda conn: conn.execute(insert(served_inputs_table), rows))

    def served_inputs(self, run_id: str, *, since: str | None = None, limit: int = 100_000) -> list[dict[str, Any]]:
        """The newest ``limit`` statistics recorded for ``run_id``'s adapter (from ``since``, an
        ISO time, on), oldest first."""

        def op(conn: Connection) -> list[dict[str, Any]]:
            query = select(served_inputs_table).where(served_inputs_table.c.run_id == run_id)
            if since is not None:
                query = query.where(served_inputs_table.c.time >= since)
            rows = conn.execute(query.order_by(served_inputs_table.c.id.desc()).limit(limit))
            return [dict(row._mapping) for row in rows][::-1]

        return self._read(op)

    # -- retrieval indexes ---------------------------------------------------------------

    def record_index(
        self,
        name: str,
        *,
        root_hash: str,
        documents_root_hash: str,
        passages: int,
        path: str,
        facts: dict[str, Any],
    ) -> None:
        """Record a built retrieval index (replacing an earlier build of ``name``): its passage
        root hash (the manifest is recorded with :meth:`record_dataset`), the root hash over
        its documents' SHA-256, counts and ``facts`` (licence, policy, documents, governance)."""
        values = {
            "root_hash": root_hash,
            "documents_root_hash": documents_root_hash,
            "passages": passages,
            "path": path,
            "facts": facts,
            "built": _now(),
        }

        def op(conn: Connection) -> None:
            table = retrieval_indexes_table
            if conn.execute(select(table.c.name).where(table.c.name == name)).first() is None:
                conn.execute(insert(table).values(name=name, **values))
            else:
                conn.execute(update(table).where(table.c.name == name).values(**values))

        self._write(op, retry_integrity=True)

    def retrieval_indexes(self, name: str | None = None) -> list[dict[str, Any]]:
        """The recorded retrieval indexes (or the one named ``name``), by name."""

        def op(conn: Connection) -> list[dict[str, Any]]:
            query = select(retrieval_indexes_table).order_by(retrieval_indexes_table.c.name)
            if name is not None:
                query = query.where(retrieval_indexes_table.c.name == name)
            return [dict(row._mapping) for row in conn.execute(query)]

        return self._read(op)

    def forget_index(self, name: str) -> bool:
        """Remove the record of retrieval index ``name``; whether there was one."""

        def op(conn: Connection) -> bool:
            table = retrieval_indexes_table
            return bool(conn.execute(delete(table).where(table.c.name == name)).rowcount)

        return self._write(op)

    # -- exports -----------------------------------------------------------------------

    def record_export(
        self,
        run_id: str,
        *,
        adapter_hash: str,
        fmt: str,
        options: dict[str, Any],
        path: str,
        files: dict[str, str],
        facts: dict[str, Any],
    ) -> int:
        """Record that ``run_id``'s adapter (weights hash ``adapter_hash``) was exported as
        ``fmt`` to ``path``: ``files`` maps each file to its SHA-256; returns the record's id."""
        values = {
            "run_id": run_id,
            "adapter_hash": adapter_hash,
            "format": fmt,
            "options": options,
            "path": path,
            "files": files,
            "facts": facts,
            "created": _now(),
        }

        def op(conn: Connection) -> int:
            inserted = conn.execute(insert(exports_table).values(**values)).inserted_primary_key
            assert inserted is not None  # an INSERT of one row has its primary key
            return int(inserted[0])

        return self._write(op)

    def exports(self, run_id: str) -> list[dict[str, Any]]:
        """The exports recorded for ``run_id``'s adapter, oldest first."""

        def op(conn: Connection) -> list[dict[str, Any]]:
            query = select(exports_table).where(exports_table.c.run_id == run_id).order_by(exports_table.c.id)
            return [dict(row._mapping) for row in conn.execute(query)]

        return self._read(op)

    # -- lineage and diff --------------------------------------------------------------

    def lineage(self, ref: str) -> dict[str, Any]:
        """The chain for an adapter or run: data → run → adapter → evaluation → registry, exports.

        Returns ``{"ref", "data": [...], "run": {...}, "adapters": [{..., "events": [...],
        "active_version": ...}], "evaluation": [metric rows], "exports": [export records]}``.
        """

        def op(conn: Connection) -> dict[str, Any]:
            found, run_id = self._find(conn, ref)
            run = self._run_dict(conn, run_id) if run_id else None
            adapters_out = []
            for adapter in found:
                rows = (
                    conn.execute(
                        select(events_table)
                        .where((events_table.c.adapter_id == adapter.id) | (events_table.c.previous_id == adapter.id))
                        .order_by(events_table.c.id)
                    )
                    .mappings()
                    .all()
                )
                ids = {row["adapter_id"] for row in rows} | {row["previous_id"] for row in rows if row["previous_id"]}
                names = {
                    r.id: r.version
                    for r in conn.execute(
                        select(adapters_table.c.id, adapters_table.c.version).where(adapters_table.c.id.in_(ids))
                    )
                }
                events = [
                    {
                        "event": row["event"],
                        "time": row["time"],
                        "actor": row["actor"],
                        "reason": row["reason"],
                        "forced": bool(row["forced"]),
                        "version": names.get(row["adapter_id"]),
                        "previous_version": names.get(row["previous_id"]),
                    }
                    for row in rows
                ]
                active = next(
                    (
                        v.version
                        for v in self._versions_of(conn, adapter.base_model, adapter.name)
                        if v.status == "active"
                    ),
                    None,
                )
                adapters_out.append(adapter.to_dict() | {"events": events, "active_version": active})
            data = []
            for item in (run or {}).get("datasets", []):
                manifest = item.get("manifest") or {}
                data.append(
                    {
                        "role": item["role"],
                        "root_hash": item["root_hash"],
                        "source": item["source"],
                        "kind": manifest.get("kind"),
                        "records": manifest.get("records"),
                        "quarantine": manifest.get("quarantine"),
                        "governance": manifest.get("governance"),
                        "licensing": manifest.get("licensing"),
                    }
                )
            run_out = None
            if run is not None:
                run_out = {k: v for k, v in run.items() if k not in ("datasets", "metrics")}
            exports = []
            if run_id:
                query = select(exports_table).where(exports_table.c.run_id == run_id).order_by(exports_table.c.id)
                exports = [dict(row._mapping) for row in conn.execute(query)]
            return {
                "ref": ref,
                "data": data,
                "run": run_out,
                "adapters": adapters_out,
                "evaluation": (run or {}).get("metrics") or [],
                "exports": exports,
            }

        return self._read(op)

    def diff(self, run_a: str, run_b: str) -> dict[str, Any]:
        """What changed between two runs: data (root hashes by role), config fields, versions,
        adapter weights and metrics side by side."""

        def op(conn: Connection) -> dict[str, Any]:
            runs = []
            for run_id in (run_a, run_b):
                run = self._run_dict(conn, run_id)
                if run is None:
                    raise PolyadaptError(f"run {run_id!r} is not in the lineage store")
                runs.append(run)
            a, b = runs
            data = {}
            data_a = {d["role"]: d for d in a["datasets"]}
            data_b = {d["role"]: d for d in b["datasets"]}
            for role in sorted(set(data_a) | set(data_b)):
                da, db = data_a.get(role), data_b.get(role)
                entry: dict[str, Any] = {
                    "a": da and da["root_hash"],
                    "b": db and db["root_hash"],
                    "same": bool(da and db and da["root_hash"] == db["root_hash"]),
                }
                ma = (da or {}).get("manifest") or {}
                mb = (db or {}).get("manifest") or {}
                entry["records"] = [ma.get("records"), mb.get("records")]
                if "record_hashes" in ma and "record_hashes" in mb:
                    ca, cb = Counter(ma["record_hashes"]), Counter(mb["record_hashes"])
                    entry["added"] = sum((cb - ca).values())
                    entry["removed"] = sum((ca - cb).values())
                data[role] = entry
            flat_a, flat_b = _flatten(a["config"] or {}), _flatten(b["config"] or {})
            config = {
                key: [flat_a.get(key), flat_b.get(key)]
                for key in sorted(set(flat_a) | set(flat_b))
                if flat_a.get(key) != flat_b.get(key)
            }
            for key in ("seed", "base_model", "task", "plugin"):
                if a[key] != b[key]:
                    config.setdefault(key, [a[key], b[key]])
            va, vb = _versions(a["environment"]), _versions(b["environment"])
            versions = {
                key: [va.get(key), vb.get(key)] for key in sorted(set(va) | set(vb)) if va.get(key) != vb.get(key)
            }
            metrics_a = {(m["dataset"], m["metric"]): m for m in a["metrics"] or []}
            metrics_b = {(m["dataset"], m["metric"]): m for m in b["metrics"] or []}
            metrics = []
            for pair in list(dict.fromkeys([*metrics_a, *metrics_b])):
                ma, mb = metrics_a.get(pair), metrics_b.get(pair)
                either = ma or mb
                assert either is not None  # the pair is a key of metrics_a or of metrics_b
                metrics.append(
                    {
                        "dataset": pair[0],
                        "metric": pair[1],
                        "role": either["role"],
                        "a": ma and {"base": ma["base"], "adapted": ma["adapted"]},
                        "b": mb and {"base": mb["base"], "adapted": mb["adapted"]},
                    }
                )
            weights = []
            for run in (a, b):
                hashes = (
                    conn.execute(
                        select(adapters_table.c.weights_hash)
                        .where(adapters_table.c.run_id == run["run_id"])
                        .order_by(adapters_table.c.id)
                    )
                    .scalars()
                    .all()
                )
                weights.append(hashes[-1] if hashes else None)
            return {
                "runs": [run_a, run_b],
                "status": [a["status"], b["status"]],
                "data": data,
                "config": config,
                "versions": versions,
                "adapter": {
                    "a": weights[0],
                    "b": weights[1],
                    "same": weights[0] is not None and weights[0] == weights[1],
                },
                "metrics": metrics,
            }

        return self._read(op)
