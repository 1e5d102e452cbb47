"""Where polyadapt keeps its project state: the lineage database, caches and keys.

The state folder is ``$POLYADAPT_HOME`` when set, else ``.polyadapt`` in the current
folder (one per project, like ``.git``). The lineage database defaults to a SQLite file in
it; ``$POLYADAPT_DB_URL`` (or an explicit URL) points it elsewhere, e.g. a shared
PostgreSQL server.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path

HOME_ENV = "POLYADAPT_HOME"
DB_URL_ENV = "POLYADAPT_DB_URL"
DEFAULT_DIR = ".polyadapt"
DB_FILE = "lineage.db"


def state_dir() -> Path:
    """The project's state folder (``$POLYADAPT_HOME`` or ``./.polyadapt``), created on demand."""
    raw = os.environ.get(HOME_ENV)
    path = Path(raw).expanduser() if raw else Path.cwd() / DEFAULT_DIR
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def database_url(explicit: str | None = None) -> str:
    """The lineage database URL: ``explicit``, else ``$POLYADAPT_DB_URL``, else SQLite in the state folder."""
    if explicit:
        return explicit
    from_env = os.environ.get(DB_URL_ENV)
    if from_env:
        return from_env
    return f"sqlite:///{state_dir() / DB_FILE}"


def utc_stamp(moment: _dt.datetime | None = None) -> str:
    """``moment`` (default: now) as the lineage store and OpenLineage write times:
    ISO 8601 in UTC to the millisecond with a ``Z`` (``2026-12-05T12:00:00.000Z``), so that
    stamps compare as strings."""
    moment = moment or _dt.datetime.now(_dt.timezone.utc)
    return moment.astimezone(_dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
