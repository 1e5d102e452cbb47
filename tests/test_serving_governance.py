"""``polyadapt serve`` under governance: it follows the registry and applies the policy.

* Promotions and rollbacks recorded in the lineage store re-route ``tiny-llama:NAME`` in a
  running server (the base is loaded once; every answer is checked against a plain
  ``PeftModel`` carrying only the expected version's adapter).
* A promotion whose evaluation regresses is refused and changes nothing that is served;
  ``force`` promotes anyway and is recorded as forced.
* The serving guard redacts PII in prompts and outputs, refuses prompts with secrets (400,
  ``content_policy``), withholds refused outputs (``content_filter``) and audits each
  decision without any content.
* ``polyadapt serve`` needs run folders or ``--registry``: exactly one of the two.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from unittest import mock

import pytest

pytest.importorskip("fastapi")
torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from fastapi.testclient import TestClient  # noqa: E402

import polyadapt_text.serve as text_serve  # noqa: E402
from polyadapt.lineage.registry import PromotionGate, PromotionRefused  # noqa: E402
from polyadapt.lineage.store import LineageStore  # noqa: E402
from polyadapt.serving.app import build_app_from_runs  # noqa: E402
from polyadapt.types import GenerationResult  # noqa: E402
from test_serving import make_run_folder, plugin_manager  # noqa: E402

BASE = "tiny-llama"
NAME = "claims"
MODEL = f"{BASE}:{NAME}"
PROMPT = "The policyholder filed"
TOKENS = 8
GATE = PromotionGate(min_domain_improvement=0.05, max_general_regression=0.05)

EMAIL = "jane.roe@example.org"
OUTPUT_EMAIL = "leak.person@example.net"
AWS_KEY = "AKIAQ7RZXW3PLM4K2N8T"
OUTPUT_SECRET = "AKIAZZ9Y8X7W6V5U4T3S"


def metric_rows(domain: tuple[float, float], general: tuple[float, float]) -> list[dict]:
    """Perplexity rows (base, adapted) for the domain and the general (forgetting) set."""
    return [
        {
            "dataset": "eval.jsonl",
            "metric": "perplexity",
            "base": domain[0],
            "adapted": domain[1],
            "lower_is_better": True,
            "role": "domain",
        },
        {
            "dataset": "general.jsonl",
            "metric": "perplexity",
            "base": general[0],
            "adapted": general[1],
            "lower_is_better": True,
            "role": "general",
        },
    ]


def passing_rows() -> list[dict]:
    """Domain 20 → 15 perplexity (25 % better); general 30 → 30.5 (1.7 % worse, allowed 5 %)."""
    return metric_rows((20.0, 15.0), (30.0, 30.5))


def domain_worse_rows() -> list[dict]:
    return metric_rows((20.0, 24.0), (30.0, 30.0))


def general_regresses_rows() -> list[dict]:
    return metric_rows((20.0, 10.0), (30.0, 36.0))


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_dirs(tiny_llama, tmp_path_factory) -> dict[int, Path]:
    """Three run folders on the tiny Llama, all naming their adapter ``claims``; different weights."""
    root = tmp_path_factory.mktemp("governed-runs")
    return {n: make_run_folder(root, tiny_llama, f"claims-v{n}", seed=10 + n, adapter_name=NAME) for n in (1, 2, 3)}


@pytest.fixture(scope="module")
def expected(tiny_llama, run_dirs):
    """Greedy continuation of PROMPT by a plain PeftModel with only run ``n``'s adapter."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    cache: dict[int, str] = {}

    def text(n: int) -> str:
        if n not in cache:
            model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
            model = PeftModel.from_pretrained(model, str(run_dirs[n] / "adapter")).eval()
            ids = torch.tensor([tokenizer(PROMPT)["input_ids"]])
            with torch.no_grad():
                out = model.generate(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    max_new_tokens=TOKENS,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                )
            cache[n] = tokenizer.decode(out[0, ids.shape[1] :].tolist(), skip_special_tokens=True)
        return cache[n]

    return text


@pytest.fixture
def store(tmp_path):
    with LineageStore(f"sqlite:///{tmp_path / 'lineage.db'}") as opened:
        yield opened


def record(store: LineageStore, run_dir: Path, rows: list[dict]):
    """Record ``run_dir`` as a run that made the next version of ``claims`` on ``tiny-llama``."""
    run_id = run_dir.name
    store.start_run(
        run_id,
        task="text-generation",
        plugin="text",
        config_hash="0" * 64,
        config={},
        seed=1,
        environment={},
        base_model=BASE,
        run_dir=str(run_dir),
    )
    weights = hashlib.sha256((run_dir / "adapter" / "adapter_model.safetensors").read_bytes()).hexdigest()
    adapter = store.register_adapter(
        run_id, base_model=BASE, name=NAME, path=str(run_dir / "adapter"), weights_hash=weights
    )
    store.record_metrics(run_id, rows)
    return adapter


def ask(client: TestClient, model: str = MODEL) -> str:
    response = client.post(
        "/v1/completions", json={"model": model, "prompt": PROMPT, "max_tokens": TOKENS, "temperature": 0}
    )
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["text"]


def listed(client: TestClient) -> set[str]:
    return {card["id"] for card in client.get("/v1/models").json()["data"]}


# -- the registry: rollback in a running server ---------------------------------------------


def test_promotion_and_rollback_reroute_a_running_server(store, run_dirs, expected, tmp_path):
    v1 = record(store, run_dirs[1], passing_rows())
    v2 = record(store, run_dirs[2], passing_rows())
    assert (v1.version, v2.version) == (1, 2)
    store.promote(NAME, version=1, gate=GATE)
    assert expected(1) != expected(2), "the two random adapters should answer differently"

    with mock.patch.object(text_serve, "load_base", wraps=text_serve.load_base) as loads:
        app = build_app_from_runs(
            plugin_manager(), registry_store=store, follow_interval_s=0, audit_log=tmp_path / "audit.jsonl"
        )
        with TestClient(app) as client:
            assert listed(client) == {BASE, MODEL}
            assert ask(client) == expected(1)

            store.promote(NAME, gate=GATE)  # the newest: v2
            assert ask(client) == expected(2)
            assert listed(client) == {BASE, MODEL}, "internal name@version keys must not be listed"

            rolled = store.rollback(NAME)
            assert rolled.version == 1
            assert ask(client) == expected(1)
            assert listed(client) == {BASE, MODEL}
            assert client.get(f"/v1/models/{MODEL}").json()["parent"] == BASE
            retired = client.post("/v1/completions", json={"model": f"{MODEL}@2", "prompt": PROMPT})
            assert retired.status_code == 404  # a retired version is not reachable by its key
        assert loads.call_count == 1  # the base never reloads; versions are swapped on it

    servable = app.state.registry.bases[BASE].servable
    assert sorted(servable.adapter_names()) == [f"{NAME}@1", f"{NAME}@2"]
    assert [a.status for a in store.list_adapters(name=NAME)] == ["active", "retired"]


# -- the registry: the promotion gate -------------------------------------------------------


@pytest.mark.parametrize(
    "bad_rows, failing",
    [
        (domain_worse_rows, "20.0% worse"),
        (general_regresses_rows, "allowed <= 5.0% worse"),
    ],
)
def test_a_regressing_promotion_is_refused_and_serving_stays(store, run_dirs, expected, tmp_path, bad_rows, failing):
    record(store, run_dirs[1], passing_rows())
    record(store, run_dirs[3], bad_rows())
    store.promote(NAME, version=1, gate=GATE)

    app = build_app_from_runs(
        plugin_manager(), registry_store=store, follow_interval_s=0, audit_log=tmp_path / "audit.jsonl"
    )
    with TestClient(app) as client:
        assert ask(client) == expected(1)
        events_before = store.registry_version()
        with pytest.raises(PromotionRefused, match="refused by the evaluation gate") as refused:
            store.promote(NAME, gate=GATE)
        assert failing in str(refused.value) and "--force" in str(refused.value)
        assert store.registry_version() == events_before  # nothing recorded
        assert [(a.version, a.status) for a in store.active_adapters()] == [(1, "active")]
        assert ask(client) == expected(1)

        forced = store.promote(NAME, gate=GATE, force=True, actor="ops", reason="hotfix")
        assert (forced.version, forced.status) == (2, "active")
        assert ask(client) == expected(3)

    chain = store.lineage(f"{NAME}@2")
    [event] = chain["adapters"][0]["events"]
    assert event["event"] == "force-promote" and event["forced"] is True
    assert event["actor"] == "ops" and event["reason"].startswith("hotfix (failed checks:")
    assert event["previous_version"] == 1


# -- the serving guard ----------------------------------------------------------------------


@pytest.fixture
def guarded(run_dirs, tmp_path):
    """A run-folder server under the strict policy, its servable and its audit log's path."""
    audit = tmp_path / "audit.jsonl"
    app = build_app_from_runs(plugin_manager(), [run_dirs[1]], batch_wait_ms=0, audit_log=audit)
    with TestClient(app) as client:
        yield client, app.state.registry.bases[BASE].servable, audit


def capture(monkeypatch, servable, answer: str | None = None) -> list:
    """Record each request ``servable.generate`` gets; answer ``answer`` instead of generating."""
    seen = []
    original = servable.generate

    def generate(requests):
        seen.extend(requests)
        if answer is None:
            return original(requests)
        return [GenerationResult(answer, 3, 5, "stop") for _ in requests]

    monkeypatch.setattr(servable, "generate", generate)
    return seen


def chat(client, content: str):
    return client.post(
        "/v1/chat/completions",
        json={
            "model": MODEL,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": 4,
            "temperature": 0,
        },
    )


def test_guard_redacts_prompts_refuses_secrets_and_filters_outputs(guarded, monkeypatch):
    client, servable, audit = guarded

    # A prompt with an email: answered, and the model only ever saw <EMAIL_1>.
    seen = capture(monkeypatch, servable)
    reply = chat(client, f"Please write to {EMAIL} about my claim.")
    assert reply.status_code == 200, reply.text
    [request] = seen
    assert request.messages[-1]["content"] == "Please write to <EMAIL_1> about my claim."
    assert EMAIL not in json.dumps(request.messages)

    # A prompt with a secret: refused before the model, in OpenAI's error shape.
    seen.clear()
    refused = chat(client, f"my key is {AWS_KEY} keep it safe")
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["code"] == "content_policy" and AWS_KEY not in error["message"]
    assert seen == []
    refused_completion = client.post("/v1/completions", json={"model": MODEL, "prompt": f"key {AWS_KEY}"})
    assert refused_completion.status_code == 400 and refused_completion.json()["error"]["code"] == "content_policy"

    # An output with an email is redacted; one with a secret is withheld.
    monkeypatch.undo()
    capture(monkeypatch, servable, answer=f"Write to {OUTPUT_EMAIL} today.")
    body = chat(client, "Who handles my claim?").json()
    assert body["choices"][0]["message"]["content"] == "Write to <EMAIL_1> today."
    assert body["choices"][0]["finish_reason"] == "stop"

    monkeypatch.undo()
    capture(monkeypatch, servable, answer=f"Use the key {OUTPUT_SECRET} to log in.")
    body = chat(client, "How do I log in?").json()
    assert body["choices"][0]["finish_reason"] == "content_filter"
    assert body["choices"][0]["message"]["content"] == ""
    completion = client.post("/v1/completions", json={"model": MODEL, "prompt": "How?", "max_tokens": 4}).json()
    assert completion["choices"][0]["finish_reason"] == "content_filter" and completion["choices"][0]["text"] == ""

    # The audit log: one line per decision, every field, no content.
    raw = audit.read_text()
    for planted in (EMAIL, OUTPUT_EMAIL, AWS_KEY, OUTPUT_SECRET, "jane.roe", "example.org"):
        assert planted not in raw
    entries = [json.loads(line) for line in raw.splitlines()]
    assert all(set(e) == {"time", "model", "adapter", "direction", "rule", "action", "count"} for e in entries)
    assert all(e["model"] == MODEL and e["adapter"] == NAME and e["count"] == 1 for e in entries)
    decisions = [(e["direction"], e["rule"], e["action"]) for e in entries]
    assert decisions == [
        ("prompt", "pii.email", "redact"),
        ("prompt", "pii.secret", "refuse"),
        ("prompt", "pii.secret", "refuse"),
        ("output", "pii.email", "redact"),
        ("output", "pii.secret", "refuse"),
        ("output", "pii.secret", "refuse"),
    ]
    assert all(e["time"].endswith("Z") for e in entries)


# -- the CLI --------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["serve"], ["serve", "runs/claims-v1", "--registry"]])
def test_serve_needs_run_folders_or_registry_but_not_both(args, tmp_path):
    from typer.testing import CliRunner

    from polyadapt.cli import app

    with mock.patch("polyadapt.serving.app.build_app_from_runs") as build, mock.patch("uvicorn.run") as run:
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == ["error: give run folders or --registry (one of the two)"]
    build.assert_not_called()
    run.assert_not_called()
