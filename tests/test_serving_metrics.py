"""``GET /metrics``: what ``polyadapt serve`` counts, in Prometheus's text format.

* Requests by route, model and status; errors by OpenAI error type; latency and time-to-first-
  token histograms with one observation per request; tokens in and out equal to the ``usage``
  the answers reported; batch sizes; the queue depth while requests wait, and 0 after.
* Adapter cache: a first request for an adapter loads it, the next one is a hit.
* Governance: a redacted email and a refused secret in prompts are counted by direction and
  action.
* Each app has its own registry; a route that marks its first token gets a time to first
  token shorter than its latency; a path no route serves is counted as ``unmatched``.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("prometheus_client")
torch = pytest.importorskip("torch")
pytest.importorskip("peft")

import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from test_serving import make_run_folder, plugin_manager  # noqa: E402

from polyadapt.serving.app import build_app, build_app_from_runs  # noqa: E402
from polyadapt.serving.metrics import count_tokens, first_token, keyless_paths  # noqa: E402
from polyadapt.serving.routes import Route  # noqa: E402
from polyadapt.serving.settings import ServeSettings  # noqa: E402
from polyadapt.types import GenerationResult  # noqa: E402

BASE = "tiny-llama"
EMAIL = "jane.roe@example.org"
AWS_KEY = "AKIAQ7RZXW3PLM4K2N8T"
ROOT = Path(__file__).resolve().parents[1]


# -- reading the exposition ----------------------------------------------------------------


def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``GET /metrics``: (sample name, sorted labels) -> value."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels: str) -> float:
    """One sample's value (0 when the series does not exist yet)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples, name: str, **labels: str) -> float:
    """The sum over every series of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, key), v in samples.items() if n == name and wanted <= set(key))


# -- the tiny model ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(tiny_llama, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("metrics-runs")
    return {name: make_run_folder(root, tiny_llama, name, seed=seed) for name, seed in (("a", 1), ("b", 2))}


@pytest.fixture
def client(runs, tmp_path):
    """A fresh server (its own metrics, no adapter loaded) under the strict serving policy."""
    app = build_app_from_runs(
        plugin_manager(), [runs["a"], runs["b"]], batch_wait_ms=0, audit_log=tmp_path / "audit.jsonl"
    )
    with TestClient(app) as test_client:
        yield test_client


def test_requests_errors_latency_tokens_and_batches_are_counted(client):
    model = f"{BASE}:a"
    answers = [
        client.post("/v1/completions", json={"model": model, "prompt": "The policyholder filed", "max_tokens": 8}),
        client.post("/v1/completions", json={"model": model, "prompt": ["Water boils at", "Hello"], "max_tokens": 5}),
        client.post(
            "/v1/chat/completions",
            json={"model": model, "messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 6},
        ),
    ]
    assert [a.status_code for a in answers] == [200, 200, 200], [a.text for a in answers]
    usage = [a.json()["usage"] for a in answers]

    too_hot = client.post("/v1/completions", json={"model": BASE, "prompt": "x", "temperature": 5})
    too_long = client.post("/v1/completions", json={"model": BASE, "prompt": "x", "max_tokens": 2**63})
    no_such = client.post("/v1/completions", json={"model": f"{BASE}:nope", "prompt": "x"})
    assert (too_hot.status_code, too_long.status_code, no_such.status_code) == (400, 400, 404)

    samples = scrape(client)
    requests = "polyadapt_requests_total"
    assert value(samples, requests, route="/v1/completions", model=model, status="200") == 2
    assert value(samples, requests, route="/v1/chat/completions", model=model, status="200") == 1
    # a body that fails validation still names a served model; an unknown one is "unknown"
    assert value(samples, requests, route="/v1/completions", model=BASE, status="400") == 2
    assert value(samples, requests, route="/v1/completions", model="unknown", status="404") == 1
    assert total(samples, requests, route="/v1/completions") == 5

    errors = "polyadapt_request_errors_total"
    kinds = {too_hot.json()["error"]["type"], too_long.json()["error"]["type"]}
    assert total(samples, errors, route="/v1/completions", model=BASE) == 2
    assert sum(value(samples, errors, route="/v1/completions", model=BASE, type=k) for k in kinds) == 2
    not_found = no_such.json()["error"]["type"]
    assert value(samples, errors, route="/v1/completions", model="unknown", type=not_found) == 1
    assert total(samples, errors, model=model) == 0

    # one latency observation per request; time to first token for the answered generations only,
    # and (not streamed) it is the whole latency
    latency = "polyadapt_request_seconds"
    assert value(samples, f"{latency}_count", route="/v1/completions", model=model) == 2
    assert value(samples, f"{latency}_count", route="/v1/chat/completions", model=model) == 1
    assert value(samples, f"{latency}_count", route="/v1/completions", model=BASE) == 2
    assert value(samples, f"{latency}_bucket", route="/v1/completions", model=model, le="+Inf") == 2
    ttft = "polyadapt_time_to_first_token_seconds"
    assert value(samples, f"{ttft}_count", model=model) == 3
    assert value(samples, f"{ttft}_count", model=BASE) == 0
    latency_sum = total(samples, f"{latency}_sum", model=model)
    assert latency_sum > 0 and value(samples, f"{ttft}_sum", model=model) == pytest.approx(latency_sum)

    tokens = "polyadapt_tokens_total"
    assert value(samples, tokens, model=model, direction="in") == sum(u["prompt_tokens"] for u in usage)
    assert value(samples, tokens, model=model, direction="out") == sum(u["completion_tokens"] for u in usage)
    assert value(samples, tokens, model=model, direction="out") > 0

    # every request the model answered went through a batch; none wait now
    batcher = client.app.state.registry.bases[BASE].batchers["generate"]
    assert value(samples, "polyadapt_batch_size_count", base=BASE) == batcher.batches_run >= 3
    assert value(samples, "polyadapt_batch_size_sum", base=BASE) >= 4  # the two-prompt completion counts 2
    assert ("polyadapt_queue_depth", (("base", BASE),)) in samples
    assert value(samples, "polyadapt_queue_depth", base=BASE) == 0


def test_adapter_cache_loads_once_then_hits(client):
    def ask(adapter: str) -> None:
        answer = client.post("/v1/completions", json={"model": f"{BASE}:{adapter}", "prompt": "Hi", "max_tokens": 2})
        assert answer.status_code == 200, answer.text

    cache = "polyadapt_adapter_cache_total"
    ask("b")
    samples = scrape(client)
    assert value(samples, cache, base=BASE, event="load") == 1
    assert value(samples, cache, base=BASE, event="hit") == 0
    ask("b")
    ask("b")
    ask("a")
    samples = scrape(client)
    assert value(samples, cache, base=BASE, event="load") == 2
    assert value(samples, cache, base=BASE, event="hit") == 2
    # the base itself is no adapter
    client.post("/v1/completions", json={"model": BASE, "prompt": "Hi", "max_tokens": 2})
    assert total(scrape(client), cache) == 4


def test_adapter_evictions_are_counted(runs, tmp_path):
    settings = ServeSettings(require_keys=False, max_adapters=1, batch_wait_ms=0)
    app = build_app_from_runs(
        plugin_manager(), [runs["a"], runs["b"]], settings=settings, audit_log=tmp_path / "audit.jsonl"
    )
    with TestClient(app) as client:
        for adapter in ("a", "b", "a"):
            answer = client.post(
                "/v1/completions", json={"model": f"{BASE}:{adapter}", "prompt": "Hi", "max_tokens": 2}
            )
            assert answer.status_code == 200, answer.text
        samples = scrape(client)
    cache = "polyadapt_adapter_cache_total"
    assert value(samples, cache, base=BASE, event="load") == 3
    assert value(samples, cache, base=BASE, event="eviction") == 2
    assert value(samples, cache, base=BASE, event="hit") == 0


def test_governance_redactions_and_refusals_are_counted(client):
    def chat(content: str) -> httpx.Response:
        return client.post(
            "/v1/chat/completions",
            json={"model": f"{BASE}:a", "messages": [{"role": "user", "content": content}], "max_tokens": 3},
        )

    governance = "polyadapt_governance_total"
    assert total(scrape(client), governance) == 0
    assert chat(f"Please write to {EMAIL} about my claim.").status_code == 200
    samples = scrape(client)
    assert value(samples, governance, direction="prompt", action="redact") == 1
    refused = chat(f"my key is {AWS_KEY} keep it safe")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "content_policy"
    samples = scrape(client)
    assert value(samples, governance, direction="prompt", action="refuse") == 1
    assert value(samples, governance, direction="prompt", action="redact") == 1
    # the refused request is an error of its model, and generated nothing
    errors = "polyadapt_request_errors_total"
    assert total(samples, errors, route="/v1/chat/completions", model=f"{BASE}:a") == 1
    assert value(samples, "polyadapt_time_to_first_token_seconds_count", model=f"{BASE}:a") == 1


# -- without a model ----------------------------------------------------------------------------


class GatedServable:
    """Answers "ok" once ``gate`` is set (so requests pile up behind a batch); fails on "boom"."""

    base_name = "fake"

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.running = threading.Event()

    def load_adapter(self, name, path) -> None:
        raise AssertionError("no adapters here")

    def adapter_names(self) -> list[str]:
        return []

    def generate(self, requests):
        self.running.set()
        self.gate.wait(10)
        if any(r.prompt == "boom" for r in requests):
            raise RuntimeError("the model broke")
        return [GenerationResult("ok", 2, 1) for _ in requests]


def test_queue_depth_counts_waiting_requests_then_returns_to_zero():
    fake = GatedServable()
    app = build_app({"fake": fake}, max_batch=1, batch_wait_ms=0)

    async def scenario() -> tuple[float, float, list[int]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            body = {"model": "fake", "prompt": "hi", "max_tokens": 1}
            asks = [asyncio.create_task(client.post("/v1/completions", json=body)) for _ in range(4)]
            while not fake.running.is_set():
                await asyncio.sleep(0.01)
            for _ in range(100):  # the other three reach the queue
                waiting = value(scrape_text(await client.get("/metrics")), "polyadapt_queue_depth", base="fake")
                if waiting == 3:
                    break
                await asyncio.sleep(0.01)
            fake.gate.set()
            statuses = [(await ask).status_code for ask in asks]
            after = value(scrape_text(await client.get("/metrics")), "polyadapt_queue_depth", base="fake")
            return waiting, after, statuses

    waiting, after, statuses = asyncio.run(scenario())
    assert statuses == [200] * 4
    assert waiting == 3 and after == 0


def scrape_text(response) -> dict:
    """:func:`scrape` for a response already fetched."""
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_server_errors_unmatched_paths_and_separate_apps():
    fake = GatedServable()
    fake.gate.set()
    first = TestClient(build_app({"fake": fake}, batch_wait_ms=0))
    second = TestClient(build_app({"fake": fake}, batch_wait_ms=0))
    with first, second:
        assert first.post("/v1/completions", json={"model": "fake", "prompt": "hi"}).status_code == 200
        broken = first.post("/v1/completions", json={"model": "fake", "prompt": "boom"})
        assert broken.status_code == 500 and broken.json()["error"]["type"] == "server_error"
        assert first.get("/no/such/path").status_code == 404
        samples = scrape(first)
        assert (
            value(samples, "polyadapt_request_errors_total", route="/v1/completions", model="fake", type="server_error")
            == 1
        )
        assert value(samples, "polyadapt_requests_total", route="unmatched", model="unknown", status="404") == 1
        assert value(samples, "polyadapt_tokens_total", model="fake", direction="in") == 2
        # the other app saw none of it
        other = scrape(second)
        assert total(other, "polyadapt_requests_total", route="/v1/completions") == 0
        assert total(other, "polyadapt_batch_size_count") == 0


def test_a_route_that_marks_its_first_token_gets_it_before_the_end():
    async def slow(body, ctx) -> dict:
        target = ctx.resolve("fake")
        first_token()
        await asyncio.sleep(0.3)
        count_tokens(3, 4)
        return {"model": target.model}

    fake = GatedServable()
    app = build_app({"fake": fake}, batch_wait_ms=0, endpoints=[Route("/v1/slow", slow, method="GET")])
    with TestClient(app) as client:
        assert client.get("/v1/slow").status_code == 200
        samples = scrape(client)
    ttft = value(samples, "polyadapt_time_to_first_token_seconds_sum", model="fake")
    latency = value(samples, "polyadapt_request_seconds_sum", route="/v1/slow", model="fake")
    assert value(samples, "polyadapt_time_to_first_token_seconds_count", model="fake") == 1
    assert latency >= 0.3 and ttft < latency - 0.2
    assert value(samples, "polyadapt_tokens_total", model="fake", direction="out") == 4


def test_metrics_public_names_the_path_an_api_key_check_lets_through():
    assert keyless_paths(ServeSettings()) == set()
    assert keyless_paths(ServeSettings(metrics_public=True)) == {"/metrics"}


# -- the load benchmark -----------------------------------------------------------------------


@pytest.mark.slow  # two servers and five short workloads: about a minute, more on a busy machine
def test_load_benchmark_quick_run_prints_its_figures(tmp_path):
    command = [sys.executable, str(ROOT / "benchmarks" / "serve_load.py"), "--quick", "--threads", "1"]
    done = subprocess.run(
        [*command, "--workdir", str(tmp_path), "--json-out", str(tmp_path / "figures.json")],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for figure in (
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "ttft p50",
        "req/s",
        "tok/s",
        "errors",
        "mixed/single",
        "polyadapt/peer",
    ):
        assert figure in out, f"{figure!r} missing from:\n{out}"
    # the promises of the load test: no errors, still answering, the hostile pair refused
    assert "polyadapt errors under load: 0 " in out and "server alive after the load: yes" in out, out
    assert "100 MB body during the load: 413 " in out and "max_tokens 2**63 during the load: 400 " in out, out
    figures = json.loads((tmp_path / "figures.json").read_text())
    answered = {("polyadapt", "single"): 48, ("polyadapt", "mixed"): 48}  # two rounds each, pooled
    for kind, names in (("polyadapt", ("single", "mixed", "full")), ("peer", ("single", "full"))):
        for name in names:
            assert figures[kind][name]["ok"] == answered.get((kind, name), 24)
            assert figures[kind][name]["requests_per_s"] > 0
