"""The lineage store: state folder, runs and datasets, concurrency, lineage show/diff."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time

import pytest
from polyadapt.errors import PolyadaptError
from polyadapt.lineage.state import database_url, state_dir
from polyadapt.lineage.store import LineageStore


def _manifest(root: str, *, records: int = 3, name: str = "train.jsonl", hashes: list[str] | None = None) -> dict:
    return {
        "manifest_version": 1,
        "role": "train",
        "kind": "text",
        "root_hash": root,
        "records": records,
        "record_hashes": hashes if hashes is not None else [f"{root[:8]}{i}" for i in range(records)],
        "source": {"name": name, "bytes": 100},
        "quarantine": {"records": 1, "reasons": {"empty": 1}},
        "governance": {"policy": "strict", "redacted": 2, "dropped": 0, "findings_by_type": {"email": 2}},
    }


def _environment(torch_version: str = "2.9.1", commit: str = "abc", weights: str = "w1") -> dict:
    return {
        "base_model": {"id": "org/base-model", "revision": "main", "weight_hashes": {"model.safetensors": weights}},
        "polyadapt": "0.1.0",
        "python": "3.11.9",
        "packages": {"torch": torch_version, "peft": "0.21.2", "diffusers": None},
        "plugins": [{"name": "text", "distribution": "polyadapt-text", "version": "0.1.0"}],
        "git": {"commit": commit, "dirty": False},
        "hardware": {"cores": 2},
    }


def _start(
    store: LineageStore,
    run_id: str,
    *,
    lr: float = 1e-4,
    train: dict | None = None,
    environment: dict | None = None,
    seed: int = 7,
) -> None:
    store.start_run(
        run_id,
        task="text-generation",
        plugin="text",
        config_hash=f"hash-{lr}",
        config={"training": {"learning_rate": lr, "seed": seed}, "lora": {"r": 8}},
        seed=seed,
        environment=environment or _environment(),
        base_model="org/base-model",
        run_dir=f"/runs/{run_id}",
        datasets={"train": train or _manifest("a" * 64), "eval": _manifest("e" * 64, name="eval.jsonl")},
    )


@pytest.fixture
def store(tmp_path) -> LineageStore:
    with LineageStore(f"sqlite:///{tmp_path / 'state' / 'lineage.db'}") as opened:
        yield opened


def test_state_dir_and_database_url_follow_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("POLYADAPT_DB_URL", raising=False)
    monkeypatch.setenv("POLYADAPT_HOME", str(tmp_path / "home"))
    assert state_dir() == (tmp_path / "home").resolve() and (tmp_path / "home").is_dir()
    assert database_url() == f"sqlite:///{(tmp_path / 'home' / 'lineage.db').resolve()}"
    monkeypatch.setenv("POLYADAPT_DB_URL", "postgresql://u@db/lineage")
    assert database_url() == "postgresql://u@db/lineage"
    assert database_url("sqlite:///x.db") == "sqlite:///x.db"
    monkeypatch.delenv("POLYADAPT_HOME")
    monkeypatch.delenv("POLYADAPT_DB_URL")
    monkeypatch.chdir(tmp_path)
    assert state_dir() == (tmp_path / ".polyadapt").resolve()


def test_sqlite_runs_in_wal_mode_with_the_schema(store, tmp_path):
    store.record_dataset(_manifest("a" * 64))
    with sqlite3.connect(tmp_path / "state" / "lineage.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"datasets", "runs", "run_datasets", "adapters", "registry_events"} <= tables


def test_bad_url_is_a_clear_error():
    with pytest.raises(PolyadaptError, match="not a database URL"):
        LineageStore("not a url")


def test_postgresql_needs_no_sqlite_only_sql():
    from polyadapt.lineage.store import metadata
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateTable

    for table in metadata.sorted_tables:
        ddl = str(CreateTable(table).compile(dialect=postgresql.dialect()))
        assert "AUTOINCREMENT" not in ddl.upper()
    import importlib.util

    drivers = [name for name in ("psycopg2", "psycopg") if importlib.util.find_spec(name)]
    expected = "connection failed: .*Connection refused" if drivers else "driver is not installed"
    with pytest.raises(PolyadaptError, match=expected):  # a plain postgresql:// URL uses either driver
        LineageStore("postgresql://user@127.0.0.1:1/lineage")


def test_run_record_round_trip_and_resume(store):
    _start(store, "run-1")
    store.record_dataset(_manifest("a" * 64))  # idempotent: already recorded by start_run
    run = store.get_run("run-1")
    assert run["status"] == "running" and run["seed"] == 7 and run["base_model"] == "org/base-model"
    assert run["config"]["training"]["learning_rate"] == 1e-4
    assert run["environment"]["git"]["commit"] == "abc"
    assert {(d["role"], d["root_hash"], d["source"]) for d in run["datasets"]} == {
        ("train", "a" * 64, "train.jsonl"),
        ("eval", "e" * 64, "eval.jsonl"),
    }
    assert "role" not in run["datasets"][0]["manifest"]  # the role belongs to the run, not the data
    started = run["started"]
    store.finish_run("run-1", status="failed", error="DataError: line 3")
    failed = store.get_run("run-1")
    assert failed["status"] == "failed" and failed["finished"] and failed["error"] == "DataError: line 3"
    _start(store, "run-1", train=_manifest("b" * 64))  # --resume: same run id
    resumed = store.get_run("run-1")
    assert resumed["status"] == "running" and resumed["finished"] is None and resumed["error"] is None
    assert resumed["started"] == started
    assert {d["root_hash"] for d in resumed["datasets"]} == {"b" * 64, "e" * 64}
    assert store.get_run("missing") is None


def test_link_dataset_after_the_start(store):
    store.start_run(
        "run-1", task="t", plugin="p", config_hash="h", config={}, seed=1, environment={}, base_model="m", datasets={}
    )
    store.record_dataset(_manifest("c" * 64, name="admitted.jsonl"))
    store.link_dataset("run-1", "train", "c" * 64)
    store.link_dataset("run-1", "eval", "e" * 64, source="eval.jsonl")  # manifest not recorded
    store.link_dataset("run-1", "train", "c" * 64)  # again: replaces, no duplicate
    run = store.get_run("run-1")
    assert [(d["role"], d["root_hash"], d["source"], bool(d["manifest"])) for d in run["datasets"]] == [
        ("eval", "e" * 64, "eval.jsonl", False),
        ("train", "c" * 64, "admitted.jsonl", True),
    ]
    with pytest.raises(PolyadaptError, match="not in the lineage store"):
        store.link_dataset("nope", "train", "c" * 64)


def test_metrics_keep_numbers_only(store):
    _start(store, "run-1")
    report = {
        "metrics": [
            {
                "dataset": "eval.jsonl",
                "metric": "perplexity",
                "base": 20,
                "adapted": 10,
                "lower_is_better": True,
                "role": "domain",
                "improved": True,
            }
        ],
        "samples": [{"prompt": "my card is 4111 1111 1111 1111", "base": "x", "adapted": "y"}],
    }
    store.finish_run("run-1", status="completed", metrics=report)
    run = store.get_run("run-1")
    assert run["metrics"] == [
        {
            "dataset": "eval.jsonl",
            "metric": "perplexity",
            "base": 20.0,
            "adapted": 10.0,
            "lower_is_better": True,
            "role": "domain",
        }
    ]
    assert "4111" not in str(run)
    with pytest.raises(PolyadaptError, match="not one of"):
        store.finish_run("run-1", status="done")
    with pytest.raises(PolyadaptError, match="not in the lineage store"):
        store.record_metrics("nope", [])


_WRITER = r"""
import sys, time
from pathlib import Path
from polyadapt.lineage.store import LineageStore

url, tag, ready, go = sys.argv[1:5]
store = LineageStore(url)
Path(ready).touch()
while not Path(go).exists():
    time.sleep(0.005)
for i in range(20):
    run_id = f"{tag}-{i:02d}"
    manifest = {"root_hash": f"{i:064x}", "kind": "text", "records": 1, "record_hashes": [str(i)],
                "source": {"name": "train.jsonl", "bytes": 1}}
    store.start_run(run_id, task="text-generation", plugin="text", config_hash="h", config={"i": i},
                    seed=i, environment={}, base_model="org/base", datasets={"train": manifest})
    store.register_adapter(run_id, base_model="org/base", name="shared", path=f"/a/{run_id}",
                           weights_hash=f"{tag}{i}")
    store.finish_run(run_id, status="completed",
                     metrics=[{"dataset": "d", "metric": "m", "base": 2, "adapted": 1, "role": "domain"}])
    time.sleep(0.01)  # a real run works between its records; lets the other writer in
store.close()
"""


@pytest.fixture(scope="module")
def postgres_url():
    from pg_server import start_postgres

    url, stop = start_postgres()
    yield url
    stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_store_url(request, tmp_path):
    """A lineage database two processes share: SQLite in WAL mode, or a real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lineage.db'}"
    import sqlalchemy

    from polyadapt.lineage.store import metadata

    url = request.getfixturevalue("postgres_url")
    LineageStore(url).close()  # creates the tables
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:  # each test starts from empty tables
        conn.execute(sqlalchemy.text(f"TRUNCATE {', '.join(t.name for t in metadata.sorted_tables)} CASCADE"))
    engine.dispose()
    return url


def _count(url: str, table: str) -> int:
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    with engine.connect() as conn:
        value = conn.execute(sqlalchemy.text(f"SELECT count(*) FROM {table}")).scalar_one()
    engine.dispose()
    return int(value)


_FOLLOWER = r"""
import json, sys, time
from pathlib import Path
from polyadapt.lineage.store import LineageStore

url, ready, stop, out = sys.argv[1:5]
store = LineageStore(url)
Path(ready).touch()
seen, reads = [], 0
while not Path(stop).exists():
    version = store.registry_version()  # what a server's registry follower polls
    count = len(store.list_adapters(name="shared"))
    seen.append((version, count))
    reads += 1
    time.sleep(0.002)
store.close()
Path(out).write_text(json.dumps({"seen": seen, "reads": reads}))
"""


def test_two_processes_record_concurrently_without_loss(tmp_path, shared_store_url):
    url = shared_store_url
    go = tmp_path / "go"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, url, tag, str(tmp_path / f"ready-{tag}"), str(go)],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in ("a", "b")
    ]
    deadline = time.monotonic() + 30
    while not all((tmp_path / f"ready-{tag}").exists() for tag in ("a", "b")):
        assert time.monotonic() < deadline, "writers did not start"
        assert all(p.poll() is None for p in procs), [p.stderr.read() for p in procs]
        time.sleep(0.01)
    follower = subprocess.Popen(
        [sys.executable, "-c", _FOLLOWER, url, str(tmp_path / "ready-f"), str(tmp_path / "stop"), str(tmp_path / "f")],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    while not (tmp_path / "ready-f").exists():
        assert time.monotonic() < deadline and follower.poll() is None, follower.stderr.read()
        time.sleep(0.01)
    go.touch()  # both start writing at the same moment, while a server's follower reads
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    (tmp_path / "stop").touch()
    _, err = follower.communicate(timeout=60)
    assert follower.returncode == 0, err
    followed = json.loads((tmp_path / "f").read_text())
    versions = [version for version, _ in followed["seen"]]
    counts = [count for _, count in followed["seen"]]
    assert followed["reads"] > 10 and versions == sorted(versions) and counts == sorted(counts)
    assert 0 < max(counts) <= 40  # it read while the writers wrote, never an error nor a step back
    with LineageStore(url) as store:
        versions = store.list_adapters(name="shared")
        assert sorted(v.version for v in versions) == list(range(1, 41))  # unique and gap-free
        assert len({v.run_id for v in versions}) == 40
        # The writers really overlapped: the first half of the versions went to both.
        assert {v.run_id[0] for v in versions[:20]} == {"a", "b"}
        for tag in ("a", "b"):
            for i in range(20):
                run = store.get_run(f"{tag}-{i:02d}")
                assert run["status"] == "completed" and run["metrics"]
                assert [d["root_hash"] for d in run["datasets"]] == [f"{i:064x}"]
    assert _count(url, "datasets") == 20
    assert _count(url, "runs") == 40


def test_lineage_chain_from_adapter_and_from_run(store):
    from polyadapt.lineage.registry import PromotionGate

    _start(store, "run-1")
    adapter = store.register_adapter(
        "run-1", base_model="org/base-model", name="claims", path="/runs/run-1/adapter", weights_hash="f" * 64
    )
    store.record_metrics(
        "run-1",
        [
            {"dataset": "eval.jsonl", "metric": "perplexity", "base": 20, "adapted": 10, "role": "domain"},
            {"dataset": "builtin", "metric": "perplexity", "base": 30, "adapted": 30.3, "role": "general"},
        ],
    )
    store.promote("claims", gate=PromotionGate(), actor="ana", reason="better claims")
    store.finish_run("run-1", status="completed")
    for ref in ("claims", "claims@1", "org/base-model:claims@1", "base-model:claims", "run-1"):
        chain = store.lineage(ref)
        assert chain["run"]["run_id"] == "run-1" and chain["run"]["status"] == "completed"
        assert {d["role"]: d["root_hash"] for d in chain["data"]} == {"train": "a" * 64, "eval": "e" * 64}
        train = next(d for d in chain["data"] if d["role"] == "train")
        assert train["governance"]["redacted"] == 2 and train["quarantine"]["records"] == 1
        [entry] = chain["adapters"]
        assert entry["ref"] == adapter.ref == "org/base-model:claims@1"
        assert entry["status"] == "active" and entry["active_version"] == 1
        assert [(e["event"], e["actor"], e["reason"], e["forced"]) for e in entry["events"]] == [
            ("promote", "ana", "better claims", False)
        ]
        assert [row["role"] for row in chain["evaluation"]] == ["domain", "general"]
    with pytest.raises(PolyadaptError, match="neither a registered adapter"):
        store.lineage("nothing")


def test_diff_names_what_changed(store):
    _start(store, "run-a", lr=1e-4, train=_manifest("a" * 64, hashes=["h1", "h2", "h3"]))
    _start(
        store,
        "run-b",
        lr=2e-4,
        train=_manifest("b" * 64, records=4, hashes=["h1", "h2", "h4", "h5"]),
        environment=_environment(torch_version="2.10.0", commit="def", weights="w2"),
    )
    for run_id, adapted, weights in (("run-a", 12.0, "1" * 64), ("run-b", 11.0, "2" * 64)):
        store.register_adapter(run_id, base_model="org/base-model", name="claims", path="/x", weights_hash=weights)
        store.record_metrics(
            run_id,
            [{"dataset": "eval.jsonl", "metric": "perplexity", "base": 20, "adapted": adapted, "role": "domain"}],
        )
    diff = store.diff("run-a", "run-b")
    assert diff["data"]["train"] == {
        "a": "a" * 64,
        "b": "b" * 64,
        "same": False,
        "records": [3, 4],
        "added": 2,
        "removed": 1,
    }
    assert diff["data"]["eval"]["same"] is True
    assert diff["config"] == {"training.learning_rate": [1e-4, 2e-4]}
    assert diff["versions"] == {
        "torch": ["2.9.1", "2.10.0"],
        "git.commit": ["abc", "def"],
        "base_model.files.model.safetensors": ["w1", "w2"],
    }
    assert diff["adapter"] == {"a": "1" * 64, "b": "2" * 64, "same": False}
    assert diff["metrics"] == [
        {
            "dataset": "eval.jsonl",
            "metric": "perplexity",
            "role": "domain",
            "a": {"base": 20.0, "adapted": 12.0},
            "b": {"base": 20.0, "adapted": 11.0},
        }
    ]
    same = store.diff("run-a", "run-a")
    assert same["config"] == {} and same["versions"] == {} and same["adapter"]["same"] is True
    with pytest.raises(PolyadaptError, match="'nope' is not in the lineage store"):
        store.diff("run-a", "nope")


def test_no_record_content_reaches_the_database(tmp_path):
    from polyadapt.lineage.manifest import build_manifest
    from polyadapt.modalities.records import Dataset

    secret = "jane.doe@example.com"
    dataset = Dataset(
        source=tmp_path / "train.jsonl", kind="text", records=[{"text": f"mail {secret} now"}, {"text": "plain"}]
    )
    db = tmp_path / "lineage.db"
    with LineageStore(f"sqlite:///{db}") as store:
        manifest = build_manifest(dataset, role="train", governance={"policy": "strict", "redacted": 1})
        _start(store, "run-1", train=manifest)
    for file in tmp_path.glob("lineage.db*"):
        assert secret.encode() not in file.read_bytes()
        assert b"plain" not in file.read_bytes()
