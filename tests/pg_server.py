"""A throw-away PostgreSQL server on loopback for the tests that need a real one.

:func:`start_postgres` runs ``initdb`` and ``pg_ctl`` (the Debian package ``postgresql``;
``scripts/setup.sh`` installs it as root) in a temporary folder, on a free port, trusting
local connections, and returns its SQLAlchemy URL and a stop function. PostgreSQL refuses to
run as root, so under root the server runs as the ``postgres`` user (``runuser``).
Under CI (``$CI`` set) a missing PostgreSQL fails the test instead of skipping it.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def missing(reason: str) -> None:
    """Skip, or under CI fail: CI installs PostgreSQL, so its absence there is a defect."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI installs it through scripts/setup.sh)")
    pytest.skip(reason)


def start_postgres() -> tuple[str, Callable[[], None]]:
    """Start a server; return ``(url, stop)``."""
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if not (initdb and pg_ctl):
        missing("PostgreSQL is not installed (apt-get install postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        missing("the psycopg driver is not installed (the test extra has it)")
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="polyadapt-pg-", dir="/tmp"))
    if os.geteuid() == 0:
        import pwd

        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            missing("running as root and there is no 'postgres' user to run PostgreSQL as")
        os.chown(folder, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", _free_port()
    run = dict(check=True, capture_output=True, text=True, timeout=120)
    subprocess.run([*as_user, initdb, "-D", str(data), "-U", "polyadapt", "--auth=trust", "-E", "UTF8"], **run)
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50"
    subprocess.run([*as_user, pg_ctl, "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start"], **run)

    def stop() -> None:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)

    try:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={port} user=polyadapt dbname=postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE lineage")
    except Exception:
        stop()
        raise
    return f"postgresql://polyadapt@127.0.0.1:{port}/lineage", stop  # the URL users write
