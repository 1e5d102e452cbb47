"""Governance and lineage through real runs: the text plugin on the tiny Llama, and small
third-party plugins defined here.

What issue 3 promises, checked end to end: no raw PII anywhere in a run folder or the
state folder (lineage database included) after a run over PII-laden data; refusal before
training for a disallowed or missing licence, a secret, missing consent; plugin scanners
and run-event listeners through the hooks; redacted evaluation samples; complete run
records and adapters that carry their provenance; ``polyadapt reproduce`` giving the same
adapter hash and ``polyadapt lineage diff | show`` on real runs.

Every training is tiny (2-3 steps, 1 sample of 4 tokens) so the file runs in well under a
minute on two cores.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import warnings
from collections import Counter
from importlib import metadata
from pathlib import Path

import numpy
import torch
import polyadapt
import polyadapt_text
import polyadapt.training as shared_training
import polyadapt_text.evaluate as text_evaluate
import pytest
import yaml
from conftest import DOMAIN_TERMS, write_jsonl
from polyadapt import runner
from polyadapt.config import load_config
from polyadapt.errors import GovernanceError
from polyadapt.governance.scanners import Finding, builtin_scanners, scan_text
from polyadapt.hookspecs import hookimpl
from polyadapt.lineage.provenance import read_provenance, read_safetensors_metadata
from polyadapt.lineage.store import LineageStore
from polyadapt.modalities.records import Dataset
from polyadapt.plugins import PluginManager
from polyadapt.types import AdapterArtifact, EvalReport, MetricRow, Task
from safetensors.torch import save_file
from typer.testing import CliRunner

# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pm():
    return PluginManager(load_entrypoints=False, plugins={"text": polyadapt_text})


@pytest.fixture
def trainer_calls(monkeypatch):
    """How often the text plugin called the shared trainer (the real one still runs)."""
    calls = []
    real_train = shared_training.train

    def spy(job, *args, **kwargs):
        calls.append(job)
        return real_train(job, *args, **kwargs)

    monkeypatch.setattr(shared_training, "train", spy)
    return calls


def clean_chat(n: int, offset: int = 0) -> list[dict]:
    """Chat records about insurance jargon, with no PII."""
    rows = []
    for i in range(n):
        a = DOMAIN_TERMS[(i + offset) % len(DOMAIN_TERMS)]
        b = DOMAIN_TERMS[(i + offset + 1) % len(DOMAIN_TERMS)]
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": f"What does the {a} cover?"},
                    {"role": "assistant", "content": f"The {a} covers the {b}."},
                ]
            }
        )
    return rows


def write_policy(tmp_path: Path, name: str = "test-policy", **fields) -> Path:
    """A policy file in ``tmp_path``; fields not given keep their strict defaults."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **fields}))
    return path


def run_config(
    tmp_path: Path,
    model: Path,
    train: Path,
    *,
    name: str = "gov-run",
    eval_path: Path | None = None,
    general: str | Path = "none",
    licence: str | None = "CC0-1.0",
    policy: Path | None = None,
    openlineage: Path | None = None,
    task: str = "text-generation",
    samples: list[str] | None = None,
    evaluation: bool = True,
    max_steps: int = 2,
    write_only: bool = False,
    **training,
):
    """A tiny run config written to ``tmp_path/<name>.yaml``; returns the loaded config
    (or, with ``write_only``, the file's path)."""
    data = {"train": str(train), "general_eval": str(general), "licence": licence}
    if eval_path is not None:
        data["eval"] = str(eval_path)
    config = {
        "task": task,
        "base_model": {"id": str(model), "dtype": "float32"},
        "data": data,
        "lora": {"r": 4, "alpha": 8},
        "training": {
            "max_steps": max_steps,
            "batch_size": 4,
            "learning_rate": 5e-3,
            "max_length": 64,
            "precision": "fp32",
            "warmup_ratio": 0.0,
            "seed": 7,
            **training,
        },
        "evaluation": {
            "enabled": evaluation,
            "num_samples": 1,
            "max_new_tokens": 4,
            "max_examples": 4,
            "samples": samples or [],
        },
        "output": {"dir": str(tmp_path / "runs"), "name": name},
    }
    if policy is not None:
        config["governance"] = {"policy": str(policy)}
    if openlineage is not None:
        config["lineage"] = {"openlineage": str(openlineage)}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path if write_only else load_config(path)


def files_under(*roots: Path) -> list[Path]:
    return [p for root in roots if root.exists() for p in sorted(root.rglob("*")) if p.is_file()]


def leaks(needles: list[str], *roots: Path) -> list[tuple[str, str]]:
    """(file, needle) for every raw value found, as bytes, in any file under ``roots``."""
    found = []
    for path in files_under(*roots):
        data = path.read_bytes()
        for needle in needles:
            if needle.encode("utf-8") in data:
                found.append((str(path), needle))
    return found


def read_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def open_store() -> LineageStore:
    """The store the runs wrote to: SQLite in the per-test state folder."""
    return LineageStore.open()


# ---------------------------------------------------------------------------------------
# 1. No raw PII anywhere after a run over PII-laden chat data
# ---------------------------------------------------------------------------------------

EMAILS = ["amelie.dubois@firma.de", "r.khan+claims@corp.example.org", "olga.ivanova1987@poste.fr"]
PHONES = ["+44 20 7946 0958", "(415) 829-3714", "+49 30 90182734"]
CARDS = ["4539 1488 0343 6467", "5425-2334-3010-9903", "371449635398431"]
IBANS = ["GB82 WEST 1234 5698 7654 32", "DE89370400440532013000", "NL91 ABNA 0417 1643 00"]
SSNS = ["536-90-4217", "412-73-5581", "301-44-8812"]
IPS = ["203.0.113.42", "198.51.100.77", "2001:db8:85a3::8a2e:370:7334"]
#: Every planted entity and the type the scanners must report it as.
PLANTED = {
    "email": EMAILS,
    "phone": PHONES,
    "payment_card": CARDS,
    "iban": IBANS,
    "national_id": SSNS,
    "ip_address": IPS,
}
#: In a record that is quarantined (no assistant turn) and on a malformed JSON line.
QUARANTINED_EMAIL = "quarantined.person@example.net"
MALFORMED_PHONE = "+44 20 7946 0321"


def raw_needles() -> list[str]:
    """Each planted value, plus digits-only and compact forms of cards, phones and IBANs."""
    needles = [v for values in PLANTED.values() for v in values] + [QUARANTINED_EMAIL, MALFORMED_PHONE]
    for value in CARDS + PHONES + [MALFORMED_PHONE] + SSNS:
        needles.append(re.sub(r"\D", "", value))
    needles += [iban.replace(" ", "") for iban in IBANS]
    return sorted(set(needles))


def pii_record(i: int) -> tuple[dict, Counter]:
    """A chat with PII in both turns, and the findings it must produce by type."""
    pick = {kind: values[i % len(values)] for kind, values in PLANTED.items()}
    user = f"My email is {pick['email']}, call me on {pick['phone']}. What does the Solvanta rider cover?"
    assistant = (
        f"Noted the card {pick['payment_card']} and IBAN {pick['iban']}; "
        f"SSN {pick['national_id']} was logged from {pick['ip_address']}."
    )
    record = {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}
    return record, Counter({kind: 1 for kind in PLANTED})


def write_pii_file(path: Path, n: int, offset: int = 0) -> dict[int, Counter]:
    """``n`` chat records, four in five with PII, plus a quarantined record and a malformed
    line that hold PII too. Returns the expected findings by file line."""
    lines, expected = [], {}
    for i in range(n):
        if i % 5 == 4:
            lines.append(json.dumps(clean_chat(1, i)[0]))
            expected[len(lines)] = Counter()
        else:
            record, findings = pii_record(i + offset)
            lines.append(json.dumps(record))
            expected[len(lines)] = findings
    lines.append(json.dumps({"messages": [{"role": "user", "content": f"write to {QUARANTINED_EMAIL}"}]}))
    lines.append('{"messages": [{"role": "user", "content": "call ' + MALFORMED_PHONE + '"')  # truncated JSON
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return expected


def test_planted_values_are_each_found_by_the_builtin_scanners():
    """The grep below is only meaningful if every planted value is PII to the scanners."""
    scanners = builtin_scanners()
    for kind, values in {**PLANTED, "email": EMAILS + [QUARANTINED_EMAIL], "phone": PHONES + [MALFORMED_PHONE]}.items():
        for value in values:
            text = f"Please note {value} for the file."
            findings = scan_text(text, scanners)
            assert [(f.type, text[f.start : f.end]) for f in findings] == [(kind, value)], value
    record, findings = pii_record(0)
    for turn in record["messages"]:
        assert scan_text(turn["content"], scanners)  # both turns hold PII


#: The strict actions, and every rewriting action other than redact.
ACTIONS = {
    "strict": {},
    "mask-and-hash": {
        "email": "hash",
        "phone": "mask",
        "payment_card": "mask",
        "iban": "hash",
        "national_id": "mask",
        "ip_address": "hash",
    },
}


@pytest.mark.parametrize("actions", list(ACTIONS))
def test_no_raw_pii_anywhere_after_a_run_over_pii_laden_chat(
    pm, tiny_llama, tmp_path, project_state, trainer_calls, actions
):
    from polyadapt.governance.policy import STRICT_PII

    train_expected = write_pii_file(tmp_path / "data" / "train.jsonl", 20)
    eval_expected = write_pii_file(tmp_path / "data" / "eval.jsonl", 5, offset=1)
    # 16 of 20 records hold PII: above the strict share (0.2), so this policy allows 0.9;
    # the actions are the strict ones (redact, ip_address mask, secret refuse) or mask and hash
    policy = write_policy(tmp_path, "pii-heavy", max_finding_share=0.9, pii=ACTIONS[actions])
    action_of = {**STRICT_PII, **ACTIONS[actions]}
    events_file = project_state / "openlineage.jsonl"
    config = run_config(
        tmp_path,
        tiny_llama,
        tmp_path / "data" / "train.jsonl",
        eval_path=tmp_path / "data" / "eval.jsonl",
        policy=policy,
        openlineage=events_file,
        max_steps=3,
        checkpoint_every=2,
    )
    messages: list[str] = []
    run, _adapter, report = runner.adapt(pm, config, notify=messages.append)
    assert len(trainer_calls) == 1
    assert json.loads((run.dir / "run.json").read_text())["status"] == "completed"

    # the whole run folder and the whole state folder (lineage.db and its WAL, the key, the
    # hash cache, the OpenLineage events) hold no planted value in any form
    written = files_under(run.dir, project_state)
    names = {p.relative_to(run.dir).as_posix() for p in written if run.dir in p.parents}
    assert {
        "run.json",
        "config.yaml",
        "metrics.json",
        "governance/train.jsonl",
        "governance/eval.jsonl",
        "manifests/train.json",
        "adapter/adapter_model.safetensors",
        "quarantine.jsonl",
    } <= names
    assert any(name.startswith("checkpoints/") for name in names), names
    assert (project_state / "lineage.db").is_file() and events_file.is_file()
    # the grep sees what the database holds (a positive control: the run id is stored there)
    database = b"".join(p.read_bytes() for p in project_state.glob("lineage.db*"))
    assert run.id.encode() in database and b"pii-heavy" in database
    assert leaks(raw_needles(), run.dir, project_state) == []
    assert not any(needle in message for message in messages for needle in raw_needles())

    # the decisions record each redaction with its types and counts, by source line
    for role, expected in (("train", train_expected), ("eval", eval_expected)):
        decisions = [json.loads(line) for line in (run.dir / "governance" / f"{role}.jsonl").read_text().splitlines()]
        assert {d["line"]: Counter(d["findings"]) for d in decisions} == expected, role
        for decision in decisions:
            assert decision["action"] == ("redacted" if expected[decision["line"]] else "kept"), decision
            for kind in decision["findings"]:
                assert f"{kind} ({action_of[kind]})" in decision["reason"], decision
        totals = sum(expected.values(), Counter())
        manifest = json.loads((run.dir / "manifests" / f"{role}.json").read_text())
        governance = manifest["governance"]
        assert governance["findings_by_type"] == dict(sorted(totals.items()))
        assert governance["redacted"] == sum(1 for c in expected.values() if c)
        assert governance["kept"] == sum(1 for c in expected.values() if not c)
        assert governance["policy"] == "pii-heavy" and governance["dropped"] == 0
        assert manifest["quarantine"]["records"] == 2
        assert manifest["records"] == len(expected)

    # the manifest's root hash is the dataset the lineage store, the adapter and the
    # OpenLineage events know the run by
    train_manifest = json.loads((run.dir / "manifests" / "train.json").read_text())
    root = train_manifest["root_hash"]
    with open_store() as store:
        recorded = store.get_run(run.id)
    datasets = {d["role"]: d for d in recorded["datasets"]}
    assert datasets["train"]["root_hash"] == root
    assert datasets["train"]["manifest"]["root_hash"] == root
    assert datasets["train"]["manifest"]["record_hashes"] == train_manifest["record_hashes"]
    assert datasets["eval"]["root_hash"] == json.loads((run.dir / "manifests" / "eval.json").read_text())["root_hash"]
    assert read_provenance(run.adapter_dir)["dataset_root"] == root
    complete = next(e for e in read_events(events_file) if e["eventType"] == "COMPLETE")
    assert root in {i["facets"]["version"]["datasetVersion"] for i in complete["inputs"]}
    # ... and it hashes the governed records, not the raw ones
    from polyadapt.modalities.text import load_text_dataset

    assert load_text_dataset(tmp_path / "data" / "train.jsonl").fingerprint() != root
    # the samples shown are governed held-out prompts
    prompt = report.samples[0]["prompt"]
    assert ("<EMAIL_1>" if actions == "strict" else "<EMAIL:") in prompt, prompt


# ---------------------------------------------------------------------------------------
# 2. Refusal on a disallowed or missing licence
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("licence", "expected"),
    [
        ("CC-BY-NC-4.0", ["rule licence", "CC-BY-NC-4.0 is not allowed by policy 'strict'", "allowed licence"]),
        (None, ["rule licence", "declares no licence", "set `data.licence`"]),
    ],
)
def test_disallowed_or_missing_licence_refuses_the_run(
    pm, tiny_llama, tmp_path, project_state, trainer_calls, licence, expected
):
    write_jsonl(tmp_path / "data" / "train.jsonl", clean_chat(12))
    events_file = tmp_path / "events" / "openlineage.jsonl"
    config = run_config(
        tmp_path,
        tiny_llama,
        tmp_path / "data" / "train.jsonl",
        licence=licence,
        openlineage=events_file,
        name="licence-run",
    )
    with pytest.raises(GovernanceError) as info:
        runner.adapt(pm, config)
    message = str(info.value)
    for part in expected:
        assert part in message, message
    assert "train.jsonl" in message  # names the data

    assert trainer_calls == []
    run_dir = tmp_path / "runs" / "licence-run"
    assert not (run_dir / "adapter").exists()
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "refused" and "rule licence" in record["error"]
    with open_store() as store:
        stored = store.get_run("licence-run")
        assert stored["status"] == "refused" and "rule licence" in stored["error"]
        assert stored["finished"] is not None
        assert store.list_adapters() == []
    events = read_events(events_file)
    assert [e["eventType"] for e in events] == ["START", "FAIL"]
    assert "rule licence" in events[1]["run"]["facets"]["errorMessage"]["message"]
    assert events[1]["outputs"] == []


# ---------------------------------------------------------------------------------------
# 3. A secret in one record refuses the run before training
# ---------------------------------------------------------------------------------------

AWS_KEY = "AKIA4HQ7ZB2M9XKC3RTW"
PEM_BODY = "MIIEowIBAAKCAQEA7bq9Xk3vQw2LmZP0sYt8RfJ4nHcUe1aGdW6oKxTiB5yNrVjS"
PEM_KEY = f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----"


@pytest.mark.parametrize(
    ("turn", "secret", "needles"),
    [
        ("user", f"my key is {AWS_KEY}, does the rider cover it?", [AWS_KEY]),
        ("assistant", f"Use this key:\n{PEM_KEY}\nThe rider covers it.", [PEM_BODY]),
    ],
    ids=["aws-access-key", "pem-private-key"],
)
def test_secret_in_one_record_refuses_before_training(
    pm, tiny_llama, tmp_path, project_state, trainer_calls, turn, secret, needles
):
    rows = clean_chat(12)
    position = 0 if turn == "user" else 1
    rows[6]["messages"][position]["content"] = secret  # line 7 of the file
    write_jsonl(tmp_path / "data" / "train.jsonl", rows)
    config = run_config(tmp_path, tiny_llama, tmp_path / "data" / "train.jsonl", name="secret-run")
    with pytest.raises(GovernanceError) as info:
        runner.adapt(pm, config)
    message = str(info.value)
    assert "rule pii.secret: 1 record(s): line 7" in message, message
    assert "train.jsonl" in message
    assert not any(needle in message for needle in needles), "the error message quotes the secret"

    assert trainer_calls == [], "the trainer ran on data holding a secret"
    run_dir = tmp_path / "runs" / "secret-run"
    assert not (run_dir / "adapter").exists()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "refused"
    with open_store() as store:
        assert store.get_run("secret-run")["status"] == "refused"
    assert leaks(needles, run_dir, project_state) == []


# ---------------------------------------------------------------------------------------
# 4. Consent, for a third-party plugin's modality, without a line of governance code
# ---------------------------------------------------------------------------------------


def load_transcripts(path: Path) -> Dataset:
    """A plugin's own loader: ``{"transcript", "consent"}`` lines, consent kept in the records
    (the text loader normalises records to ``{"text"}`` and would drop it)."""
    dataset = Dataset(source=Path(path), kind="transcript", scanned_fields=("text",))
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if line.strip():
            raw = json.loads(line)
            record = {"text": raw["transcript"]}
            if "consent" in raw:
                record["consent"] = raw["consent"]
            dataset.records.append(record)
            dataset.lines.append(number)
    return dataset


class ScaleModel(torch.nn.Module):
    """The smallest trainable "adapter": one scale, trained towards 1."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.zeros(2))


class NotesTask(Task):
    """A third-party task for a modality whose data shows people, so it needs consent: it
    declares that and nothing else of governance."""

    consent_required = True
    admitted: list[dict]

    def load_dataset(self, run, path, role):
        return load_transcripts(path)

    def load_base(self, run):
        return None

    def attach_lora(self, run, base):
        return ScaleModel()

    def training_job(self, run, base, model, data):
        from polyadapt.training import TrainingJob

        self.admitted = list(data.train) + list(data.heldout)

        def loss(module, batch):
            return ((module.scale - 1.0) ** 2).sum() * batch["num_items"]

        return TrainingJob(model=model, train_data=data.train, collate=lambda rows: {"num_items": len(rows)}, loss=loss)

    def save_adapter(self, run, base, model, folder):
        save_file({"scale": model.scale.detach()}, str(folder / "adapter_model.safetensors"))

    def evaluate(self, run, adapter, data):
        return EvalReport(rows=[MetricRow("domain", "wer", 0.5, 0.4, role="domain")])


class ConsentModalityPlugin:
    """A third-party plugin for a modality whose data needs consent (speech or image)."""

    POLYADAPT_API = ">=2,<3"

    def __init__(self, modality: str):
        self.task = NotesTask(name=f"{modality}-notes", modality=modality, description="test plugin")
        self.task.admitted = []

    @property
    def admitted(self) -> list[dict]:
        return self.task.admitted

    @hookimpl
    def polyadapt_tasks(self):
        return [self.task]


def transcripts(consents: list) -> list[dict]:
    rows = []
    for i, consent in enumerate(consents):
        row = {"transcript": f"Speaker {i} asks about the Marlowe deductible."}
        if consent is not ...:
            row["consent"] = consent
        rows.append(row)
    rows[0]["transcript"] = f"Speaker 0 says write to {EMAILS[0]} about the deductible."
    return rows


@pytest.mark.parametrize("modality", ["speech", "image"])
def test_records_without_consent_are_refused_for_a_plugin_modality(tmp_path, modality):
    plugin = ConsentModalityPlugin(modality)
    pm = PluginManager(load_entrypoints=False, plugins={"notes": plugin})
    # line 2 has no consent field, line 4 says false, line 5 says "no"
    write_jsonl(tmp_path / "data" / "train.jsonl", transcripts([True, ..., "yes", False, "no", True]))
    config = run_config(
        tmp_path,
        Path("org/notes-base"),
        tmp_path / "data" / "train.jsonl",
        task=f"{modality}-notes",
        name="consent-run",
    )
    with pytest.raises(GovernanceError) as info:
        runner.adapt(pm, config)
    message = str(info.value)
    assert "rule consent" in message and modality in message, message
    assert "3 of 6 records lack a true 'consent' field: line 2, line 4, line 5" in message, message
    assert "add consent to those records" in message
    assert plugin.admitted == []
    run_dir = tmp_path / "runs" / "consent-run"
    assert not (run_dir / "adapter").exists()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "refused"
    with open_store() as store:
        assert store.get_run("consent-run")["status"] == "refused"


def test_records_with_consent_pass_and_are_governed_like_any_other(tmp_path, project_state):
    plugin = ConsentModalityPlugin("speech")
    pm = PluginManager(load_entrypoints=False, plugins={"notes": plugin})
    write_jsonl(tmp_path / "data" / "train.jsonl", transcripts([True, "yes", 1, "granted", True, True]))
    config = run_config(
        tmp_path, Path("org/notes-base"), tmp_path / "data" / "train.jsonl", task="speech-notes", name="consent-ok"
    )
    run, _adapter, _report = runner.adapt(pm, config)
    assert len(plugin.admitted) == 6
    assert plugin.admitted[0]["text"] == "Speaker 0 says write to <EMAIL_1> about the deductible."
    assert json.loads((run.dir / "run.json").read_text())["status"] == "completed"
    manifest = json.loads((run.dir / "manifests" / "train.json").read_text())
    assert manifest["governance"]["findings_by_type"] == {"email": 1}
    assert manifest["governance"]["modality"] == "speech"
    provenance = read_provenance(run.adapter_dir)
    assert provenance["run_id"] == run.id and provenance["dataset_root"] == manifest["root_hash"]
    assert provenance["intact"] is True
    assert leaks([EMAILS[0]], run.dir, project_state) == []


# ---------------------------------------------------------------------------------------
# 5. The polyadapt_scanners and polyadapt_run_event hooks
# ---------------------------------------------------------------------------------------

EMPLOYEE_IDS = ["EMP-123456", "EMP-654321", "EMP-777001"]


class EmployeeIdScanner:
    name = "employee_id"
    types = ("employee_id",)

    def scan(self, text: str) -> list[Finding]:
        return [Finding("employee_id", m.start(), m.end(), self.name) for m in re.finditer(r"\bEMP-\d{6}\b", text)]


class ScannerPlugin:
    @hookimpl
    def polyadapt_scanners(self):
        return [EmployeeIdScanner()]


class ListenerPlugin:
    def __init__(self):
        self.events: list[dict] = []

    @hookimpl
    def polyadapt_run_event(self, event):
        self.events.append(json.loads(json.dumps(event)))


class BrokenListenerPlugin:
    @hookimpl
    def polyadapt_run_event(self, event):
        raise RuntimeError("the tracker is down")


def employee_data(path: Path) -> list[int]:
    """12 chat records, three with an employee id; returns their lines."""
    rows = clean_chat(12)
    lines = []
    for i, employee in zip((1, 5, 9), EMPLOYEE_IDS):
        rows[i]["messages"][0]["content"] = f"I am {employee}; what does the Quintrel premium cover?"
        lines.append(i + 1)
    write_jsonl(path, rows)
    return lines


def test_plugin_scanner_redacts_and_listeners_see_the_run(tiny_llama, tmp_path, project_state):
    listener = ListenerPlugin()
    pm = PluginManager(
        load_entrypoints=False,
        plugins={
            "text": polyadapt_text,
            "employees": ScannerPlugin(),
            "broken": BrokenListenerPlugin(),
            "listener": listener,
        },
    )
    lines = employee_data(tmp_path / "data" / "train.jsonl")
    policy = write_policy(tmp_path, "employees", pii={"employee_id": "redact"}, max_finding_share=0.5)
    config = run_config(tmp_path, tiny_llama, tmp_path / "data" / "train.jsonl", policy=policy, name="emp-run")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run, _adapter, _ = runner.adapt(pm, config)
    assert json.loads((run.dir / "run.json").read_text())["status"] == "completed"

    decisions = [json.loads(line) for line in (run.dir / "governance" / "train.jsonl").read_text().splitlines()]
    redacted = {d["line"]: d for d in decisions if d["action"] == "redacted"}
    assert sorted(redacted) == lines
    assert all(d["findings"] == {"employee_id": 1} for d in redacted.values())
    assert all("employee_id (redact)" in d["reason"] for d in redacted.values())
    manifest = json.loads((run.dir / "manifests" / "train.json").read_text())
    assert manifest["governance"]["findings_by_type"] == {"employee_id": 3}
    assert leaks(EMPLOYEE_IDS, run.dir, project_state) == []

    # the listener saw START and COMPLETE, with the data and the adapter; the broken
    # listener only produced warnings
    kinds = [e["eventType"] for e in listener.events]
    assert kinds == ["START", "COMPLETE"], kinds
    complete = listener.events[-1]
    inputs = {i["facets"]["version"]["datasetVersion"] for i in complete["inputs"]}
    assert manifest["root_hash"] in inputs
    weights = json.loads((run.dir / "run.json").read_text())["provenance"]["weights_hash"]
    assert [o["facets"]["version"]["datasetVersion"] for o in complete["outputs"]] == [weights]
    assert read_provenance(run.adapter_dir)["weights_hash"] == weights
    problems = [str(w.message) for w in caught if "polyadapt_run_event failed" in str(w.message)]
    assert len(problems) == 2 and all("'broken'" in p and "the tracker is down" in p for p in problems)


def test_plugin_scanner_finding_with_refuse_refuses_the_run(tiny_llama, tmp_path, project_state, trainer_calls):
    listener = ListenerPlugin()
    pm = PluginManager(
        load_entrypoints=False,
        plugins={
            "text": polyadapt_text,
            "employees": ScannerPlugin(),
            "listener": listener,
        },
    )
    lines = employee_data(tmp_path / "data" / "train.jsonl")
    policy = write_policy(tmp_path, "no-employees", pii={"employee_id": "refuse"}, max_finding_share=0.5)
    config = run_config(tmp_path, tiny_llama, tmp_path / "data" / "train.jsonl", policy=policy, name="emp-refused")
    with pytest.raises(GovernanceError) as info:
        runner.adapt(pm, config)
    message = str(info.value)
    expected = f"rule pii.employee_id: 3 record(s): {', '.join(f'line {n}' for n in lines)}"
    assert expected in message, message
    assert trainer_calls == []
    run_dir = tmp_path / "runs" / "emp-refused"
    assert json.loads((run_dir / "run.json").read_text())["status"] == "refused"
    assert not (run_dir / "adapter").exists()
    assert [e["eventType"] for e in listener.events] == ["START", "FAIL"]
    assert "pii.employee_id" in listener.events[-1]["run"]["facets"]["errorMessage"]["message"]
    assert not any(e in json.dumps(listener.events) for e in EMPLOYEE_IDS)
    assert leaks(EMPLOYEE_IDS, run_dir, project_state) == []


# ---------------------------------------------------------------------------------------
# 6. Evaluation samples pass the policy before they are stored
# ---------------------------------------------------------------------------------------

SAMPLE_EMAIL = "jane.roe@example.org"
OUTPUT_PHONE = "+44 20 7946 0958"


def test_evaluation_samples_are_redacted(pm, tiny_llama, tmp_path, monkeypatch):
    write_jsonl(tmp_path / "data" / "train.jsonl", clean_chat(12))
    real_generate = text_evaluate.generate

    def leaky_generate(*args, **kwargs):  # a model that answers with PII
        return real_generate(*args, **kwargs) + f" call {OUTPUT_PHONE}"

    monkeypatch.setattr(text_evaluate, "generate", leaky_generate)
    config = run_config(
        tmp_path,
        tiny_llama,
        tmp_path / "data" / "train.jsonl",
        name="samples-run",
        samples=[f"Write to {SAMPLE_EMAIL} about the Solvanta rider."],
    )
    run, _, report = runner.adapt(pm, config)
    metrics_text = (run.dir / "metrics.json").read_text()
    sample = json.loads(metrics_text)["samples"][0]
    assert sample["prompt"] == "Write to <EMAIL_1> about the Solvanta rider."
    assert sample["base"].endswith("call <PHONE_1>") and sample["adapted"].endswith("call <PHONE_1>")
    assert SAMPLE_EMAIL not in metrics_text and OUTPUT_PHONE not in metrics_text
    assert report.samples[0] == sample


def test_pii_in_a_sample_prompt_stays_out_of_the_run_folder_and_the_store(pm, tiny_llama, tmp_path, project_state):
    """A prompt typed into evaluation.samples is data too: the run folder (config.yaml) and
    the lineage store (the run's resolved config) may not keep it raw."""
    write_jsonl(tmp_path / "data" / "train.jsonl", clean_chat(12))
    config = run_config(
        tmp_path,
        tiny_llama,
        tmp_path / "data" / "train.jsonl",
        name="samples-config",
        samples=[f"Write to {SAMPLE_EMAIL} about the Solvanta rider."],
    )
    run, _, _ = runner.adapt(pm, config)
    assert leaks([SAMPLE_EMAIL], run.dir, project_state) == []


# ---------------------------------------------------------------------------------------
# 7. The run record, and the adapter's provenance
# ---------------------------------------------------------------------------------------


def test_run_record_and_adapter_provenance(tiny_llama, tmp_path, monkeypatch):
    monkeypatch.delenv("POLYADAPT_LOAD_PLUGINS", raising=False)
    from polyadapt.plugins import get_plugin_manager

    pm = get_plugin_manager()  # the text plugin through its entry point, with its version
    write_jsonl(tmp_path / "data" / "train.jsonl", clean_chat(12))
    write_jsonl(tmp_path / "data" / "eval.jsonl", clean_chat(4, 2))
    write_jsonl(tmp_path / "data" / "general.jsonl", [{"text": "Water boils at one hundred degrees Celsius."}] * 2)
    config = run_config(
        tmp_path,
        tiny_llama,
        tmp_path / "data" / "train.jsonl",
        eval_path=tmp_path / "data" / "eval.jsonl",
        general=tmp_path / "data" / "general.jsonl",
        name="record-run",
    )
    run, _adapter, _ = runner.adapt(pm, config)
    record = json.loads((run.dir / "run.json").read_text())
    model_hash = hashlib.sha256((tiny_llama / "model.safetensors").read_bytes()).hexdigest()

    assert record["status"] == "completed"
    assert record["config_hash"] == config.hash() and record["seed"] == 7
    assert record["started"] <= record["finished"]
    env = record["environment"]
    assert env["polyadapt"] == polyadapt.__version__
    for package in ("torch", "transformers", "peft"):
        assert env["packages"][package] == metadata.version(package), package
    text_plugin = next(p for p in env["plugins"] if p["name"] == "text")
    assert text_plugin["distribution"] == "polyadapt-text"
    assert text_plugin["version"] == metadata.version("polyadapt-text")
    assert env["hardware"]["cores"] and env["hardware"]["platform"] and "gpus" in env["hardware"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    if head.returncode == 0:
        assert env["git"]["commit"] == head.stdout.strip()
    base = record["base_model_record"]
    assert base["id"] == str(tiny_llama) and base["name"] == "tiny-llama"
    assert base["weight_hashes"] == {"model.safetensors": model_hash}

    with open_store() as store:
        stored = store.get_run(run.id)
        registered = store.find_adapter(run.id)
    assert stored["status"] == "completed" and stored["error"] is None
    assert stored["config_hash"] == config.hash() and stored["seed"] == 7
    assert stored["config"] == config.model_dump(mode="json")
    assert stored["started"] and stored["finished"] and stored["started"] <= stored["finished"]
    assert stored["environment"]["packages"] == env["packages"]
    assert stored["environment"]["plugins"] == env["plugins"]
    assert stored["environment"]["hardware"] == env["hardware"]
    assert stored["environment"]["base_model"]["weight_hashes"] == {"model.safetensors": model_hash}
    assert {d["role"] for d in stored["datasets"]} == {"train", "eval", "general"}
    assert {m["dataset"] for m in stored["metrics"]} == {"domain (held-out)", "general"}

    # the adapter carries its provenance in its safetensors metadata and a file beside them
    train_root = json.loads((run.dir / "manifests" / "train.json").read_text())["root_hash"]
    provenance = read_provenance(run.adapter_dir)
    assert provenance["run_id"] == run.id and provenance["dataset_root"] == train_root
    assert provenance["intact"] is True
    assert provenance["weights_hash"] == record["provenance"]["weights_hash"] == registered.weights_hash
    metadata_block = read_safetensors_metadata(run.adapter_dir / "adapter_model.safetensors")
    assert metadata_block["polyadapt.run_id"] == run.id
    assert metadata_block["polyadapt.dataset_root"] == train_root
    assert metadata_block.get("format") == "pt"  # peft's own metadata survives the stamping
    adapter_config = json.loads((run.dir / "adapter" / "adapter_config.json").read_text())
    assert "polyadapt" not in adapter_config  # plain PEFT's config, loaded without a warning
    sidecar = json.loads((run.dir / "adapter" / "polyadapt_provenance.json").read_text())
    assert sidecar["run_id"] == run.id and sidecar["dataset_root"] == train_root

    # ... and plain PEFT still loads it
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama), run.adapter_dir).eval()
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([[5, 17, 42]])).logits
    assert torch.isfinite(logits).all()


# ---------------------------------------------------------------------------------------
# 8. polyadapt reproduce, lineage diff and lineage show through the CLI
# ---------------------------------------------------------------------------------------


@pytest.fixture
def wide_consoles(monkeypatch):
    """Output as on a wide terminal: no line wrapped inside a hash, a path or the JSON."""
    from polyadapt import cli as core_cli
    from polyadapt.lineage import cli as lineage_cli

    for console in (core_cli.console, core_cli.err_console, lineage_cli.console, lineage_cli.err_console):
        monkeypatch.setattr(console, "width", 1000)


def test_cli_reproduce_gives_the_same_adapter_and_lineage_shows_it(tiny_llama, tmp_path, monkeypatch, wide_consoles):
    from polyadapt.cli import app

    monkeypatch.delenv("POLYADAPT_LOAD_PLUGINS", raising=False)
    # outside the checkout: the git state (another process may edit files) stays out of the diff
    monkeypatch.chdir(tmp_path)
    write_jsonl(tmp_path / "data" / "train.jsonl", clean_chat(12))
    config_path = run_config(tmp_path, tiny_llama, tmp_path / "data" / "train.jsonl", name="orig", write_only=True)
    cli = CliRunner()
    result = cli.invoke(app, ["adapt", str(config_path)])
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "runs" / "orig"

    result = cli.invoke(app, ["reproduce", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert "identical" in result.output and "DIFFERENT" not in result.output
    (repro_dir,) = (tmp_path / "runs").glob("orig-repro-*")
    original = json.loads((run_dir / "run.json").read_text())
    reproduction = json.loads((repro_dir / "run.json").read_text())
    assert reproduction["status"] == "completed"
    assert original["provenance"]["weights_hash"] == reproduction["provenance"]["weights_hash"]
    assert original["provenance"]["dataset_root"] == reproduction["provenance"]["dataset_root"]
    assert reproduction["reproduces"]["identical"] is True and reproduction["reproduces"]["data_identical"] is True
    assert original["config_hash"] == reproduction["config_hash"]

    diff = cli.invoke(app, ["lineage", "diff", "orig", repro_dir.name, "--json"])
    assert diff.exit_code == 0, diff.output
    changes = json.loads(diff.output)
    assert set(changes["config"]) <= {"output.name"}, changes["config"]  # only where it was written
    assert changes["versions"] == {}, changes["versions"]
    assert changes["data"] and all(entry["same"] for entry in changes["data"].values()), changes["data"]
    assert changes["data"]["train"]["a"] == original["provenance"]["dataset_root"]
    assert changes["adapter"]["same"] is True
    assert changes["adapter"]["a"] == original["provenance"]["weights_hash"]
    assert changes["status"] == ["completed", "completed"]
    table = cli.invoke(app, ["lineage", "diff", "orig", repro_dir.name])
    assert table.exit_code == 0 and "identical" in table.output and "versions: same" in table.output

    show = cli.invoke(app, ["lineage", "show", "orig"])
    assert show.exit_code == 0, show.output
    out = show.output
    for part in (
        "lineage of orig",
        "train: train.jsonl",
        original["provenance"]["dataset_root"][:12],
        "run orig: text-generation",
        "completed",
        "seed 7",
        original["config_hash"][:12],
        "adapter tiny-llama:text-generation@1",
        original["provenance"]["weights_hash"][:12],
        "evaluation",
        "domain (held-out) perplexity",
    ):
        assert part in out, (part, out)
    by_adapter = cli.invoke(app, ["lineage", "show", "text-generation@2"])
    assert by_adapter.exit_code == 0 and f"run {repro_dir.name}" in by_adapter.output, by_adapter.output
