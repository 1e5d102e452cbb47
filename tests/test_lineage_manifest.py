"""Dataset manifests (stable across processes and paths) and the run environment record."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from polyadapt.lineage import environment
from polyadapt.lineage.environment import (
    capture_environment,
    git_state,
    hash_model_files,
)
from polyadapt.lineage.manifest import build_manifest, manifest_summary
from polyadapt.modalities.records import Dataset, Quarantined, record_hash

_MANIFEST_SCRIPT = r"""
import json, sys
from pathlib import Path
from polyadapt.lineage.manifest import build_manifest
from polyadapt.modalities.text import load_text_dataset
dataset = load_text_dataset(Path(sys.argv[1]))
manifest = build_manifest(dataset, role="train")
print(json.dumps({"root": manifest["root_hash"], "hashes": manifest["record_hashes"],
                  "fingerprint": dataset.fingerprint(), "source": manifest["source"]}))
"""

ROWS = [
    {
        "messages": [
            {"role": "user", "content": "Wie hoch ist die Selbstbeteiligung?"},
            {"role": "assistant", "content": "Sie beträgt 150 €."},
        ]
    },
    {
        "messages": [
            {"role": "user", "content": "Does the policy cover hail?"},
            {"role": "assistant", "content": "Yes, hail is a covered peril."},
        ]
    },
]


def _manifest_in_subprocess(path: Path, cwd: Path, hash_seed: str) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), PYTHONHASHSEED=hash_seed)
    out = subprocess.run(
        [sys.executable, "-c", _MANIFEST_SCRIPT, str(path)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout)


def test_root_hash_is_the_same_in_two_processes_and_independent_of_the_path(tmp_path):
    first = tmp_path / "machine-a" / "data" / "chats.jsonl"
    second = tmp_path / "elsewhere" / "copy-of-chats.jsonl"
    first.parent.mkdir(parents=True)
    second.parent.mkdir(parents=True)
    first.write_text("".join(json.dumps(row) + "\n" for row in ROWS), encoding="utf-8")
    # Same content, written differently: other key order, spacing, escapes and CRLF line ends.
    second.write_bytes(
        "".join(
            json.dumps(
                {"messages": [{"content": m["content"], "role": m["role"]} for m in row["messages"]]},
                indent=None,
                separators=(", ", " : "),
                ensure_ascii=True,
            )
            + "\r\n"
            for row in ROWS
        ).encode()
    )
    a = _manifest_in_subprocess(first, tmp_path / "machine-a", "1")
    b = _manifest_in_subprocess(second, tmp_path, "2")
    assert a["root"] == b["root"] == a["fingerprint"] == b["fingerprint"]
    assert a["hashes"] == b["hashes"] and len(a["hashes"]) == 2
    assert a["source"]["name"] == "chats.jsonl" and b["source"]["name"] == "copy-of-chats.jsonl"
    # Pinned: the hash is a promise across machines and versions; changing it breaks lineage.
    record = {"text": "Solvanta rider"}
    assert record_hash(record) == hashlib.sha256(b'{"text":"Solvanta rider"}').hexdigest()


def test_manifest_contents(tmp_path):
    source = tmp_path / "deep" / "folder" / "train.jsonl"
    source.parent.mkdir(parents=True)
    source.write_text("x" * 42)
    dataset = Dataset(
        source=source,
        kind="text",
        records=[{"text": "a"}, {"text": "b"}],
        quarantined=[
            Quarantined(source=str(source), index=2, reason="empty: no text", line=3),
            Quarantined(source=str(source), index=3, reason="empty: blank", line=4),
            Quarantined(source=str(source), index=4, reason="not json: line 5", line=5),
        ],
    )
    governance = {"policy": "strict", "records_in": 3, "kept": 2, "redacted": 1, "dropped": 1}
    manifest = build_manifest(dataset, role="eval", governance=governance)
    assert manifest["role"] == "eval" and manifest["kind"] == "text" and manifest["records"] == 2
    assert manifest["record_hashes"] == [record_hash({"text": "a"}), record_hash({"text": "b"})]
    assert manifest["root_hash"] == dataset.fingerprint()
    assert manifest["source"] == {"name": "train.jsonl", "bytes": 42}
    assert str(tmp_path) not in json.dumps(manifest)  # no machine-specific folder
    assert manifest["quarantine"] == {"records": 3, "reasons": {"empty": 2, "not json": 1}}
    assert manifest["governance"] == governance
    assert "record_hashes" not in manifest_summary(manifest)
    assert (
        build_manifest(Dataset(source=source, kind="text"), role="train")["root_hash"] == hashlib.sha256().hexdigest()
    )


def test_capture_environment(monkeypatch):
    plugins = [
        {"name": "text", "distribution": "polyadapt-text", "version": "0.1.0", "status": "ok"},
        {"name": "image", "distribution": "polyadapt-image", "version": "0.1.0", "status": "ok"},
        type("Info", (), {"name": "code", "distribution": None, "version": None})(),
    ]
    env = capture_environment(plugins, base_model={"id": "org/m", "revision": "main", "files": {}})
    from polyadapt import __version__

    assert env["polyadapt"] == __version__
    assert env["python"] == ".".join(map(str, sys.version_info[:3]))
    assert env["packages"]["peft"] == metadata.version("peft")
    # the core's libraries, and those each plugin's distribution requires (diffusers for image)
    assert env["packages"]["diffusers"] == (None if not _installed("diffusers") else metadata.version("diffusers"))
    assert set(environment.TRACKED_PACKAGES) <= set(env["packages"])
    assert env["plugins"] == [
        {"name": "code", "distribution": None, "version": None},
        {"name": "image", "distribution": "polyadapt-image", "version": "0.1.0"},
        {"name": "text", "distribution": "polyadapt-text", "version": "0.1.0"},
    ]
    assert env["hardware"]["cores"] == os.cpu_count() and env["hardware"]["platform"]
    assert env["base_model"]["id"] == "org/m"
    json.dumps(env)  # storable as is


def _installed(name: str) -> bool:
    try:
        metadata.version(name)
        return True
    except metadata.PackageNotFoundError:
        return False


def test_lineage_modules_do_not_import_torch():
    code = (
        "import sys\n"
        "import polyadapt.lineage.cli, polyadapt.lineage.store, polyadapt.lineage.provenance\n"
        "import polyadapt.lineage.openlineage, polyadapt.lineage.manifest\n"
        "from polyadapt.lineage.environment import capture_environment\n"
        "capture_environment([])\n"
        "heavy = [m for m in ('torch', 'transformers', 'peft', 'numpy') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_git_state(tmp_path):
    assert git_state(tmp_path) is None  # not a repository
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "f.txt").write_text("one")
    subprocess.run([*git, "add", "f.txt"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "c"], cwd=tmp_path, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert git_state(tmp_path) == {"commit": head, "dirty": False}
    (tmp_path / "f.txt").write_text("two")
    assert git_state(tmp_path) == {"commit": head, "dirty": True}


def test_hash_model_files_hashes_weights_once(tmp_path, monkeypatch):
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "model.safetensors").write_bytes(b"a" * 1000)
    (model / "sub" / "extra.bin").write_bytes(b"b" * 10)
    (model / "model.gguf").write_bytes(b"c")
    (model / "config.json").write_text("{}")
    cache = tmp_path / "state"
    hashes = hash_model_files(model, cache_dir=cache)
    assert hashes == {
        "model.gguf": hashlib.sha256(b"c").hexdigest(),
        "model.safetensors": hashlib.sha256(b"a" * 1000).hexdigest(),
        "sub/extra.bin": hashlib.sha256(b"b" * 10).hexdigest(),
    }
    assert (cache / "hash-cache.json").is_file()

    def no_rehash(path):
        raise AssertionError(f"{path} was hashed again")

    monkeypatch.setattr(environment, "_sha256", no_rehash)
    assert hash_model_files(model, cache_dir=cache) == hashes  # all from the cache
    assert hash_model_files(model / "model.gguf", cache_dir=cache) == {"model.gguf": hashes["model.gguf"]}
    monkeypatch.undo()
    (model / "model.gguf").write_bytes(b"changed")  # new size and mtime: hashed again
    assert hash_model_files(model, cache_dir=cache)["model.gguf"] == hashlib.sha256(b"changed").hexdigest()
    from polyadapt.errors import PolyadaptError

    with pytest.raises(PolyadaptError, match="no such model file"):
        hash_model_files(tmp_path / "missing", cache_dir=cache)


def test_hash_cache_defaults_to_the_state_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYADAPT_HOME", str(tmp_path / "home"))
    (tmp_path / "w.pt").write_bytes(b"w")
    hash_model_files(tmp_path / "w.pt")
    assert (tmp_path / "home" / "hash-cache.json").is_file()
