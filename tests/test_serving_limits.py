"""Limits of ``polyadapt serve``, most of them against a real server (uvicorn on a free port):
a body over the limit is a quick 413 (declared or streamed) and the server answers the next
request at once; a full queue is a 429 with Retry-After; a request past its deadline is a 504
(dropped from the queue if it never started); the adapter cache keeps at most
``max_adapters`` loaded, least recently used out first, and answers stay those of each adapter
alone; SIGTERM lets the request in flight finish with 200 and the process exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
torch = pytest.importorskip("torch")
pytest.importorskip("peft")

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from polyadapt.serving.adapter_cache import AdapterCache, adapter_bytes  # noqa: E402
from polyadapt.serving.app import build_app, build_app_from_runs  # noqa: E402
from polyadapt.serving.batcher import MicroBatcher  # noqa: E402
from polyadapt.serving.limits import (  # noqa: E402
    FORM_OVERHEAD_BYTES,
    LimitsMiddleware,
    ShuttingDown,
    retry_after_s,
    route_body_limits,
)
from polyadapt.serving.routes import Route, Upload  # noqa: E402
from polyadapt.serving.settings import ServeSettings  # noqa: E402
from polyadapt.types import GenerationRequest, GenerationResult  # noqa: E402
from test_serving import (  # noqa: E402, F401 - reference and runs are fixtures
    BASE,
    PROMPTS,
    TOKENS,
    assert_openai_error,
    complete,
    plugin_manager,
    reference,
    runs,
)

MB = 1024 * 1024


# -- a real server ----------------------------------------------------------------------------


@contextlib.contextmanager
def live_server(app) -> Iterator[httpx.Client]:
    """uvicorn serving ``app`` on a free port in a thread; a client for it."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5))
    thread = threading.Thread(target=asyncio.run, args=(server.serve(sockets=[sock]),), daemon=True)
    thread.start()
    started = time.monotonic()
    while not server.started:
        assert thread.is_alive() and time.monotonic() - started < 30, "the server did not start"
        time.sleep(0.02)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


class SlowServable:
    """Echoes prompts; a prompt ``sleep:S`` makes its batch take S seconds. Records every prompt
    it generates for; ``started`` is set when a batch starts, ``finished`` when one ends."""

    base_name = "slow"

    def __init__(self):
        self.generated: list[str] = []
        self.loaded: list[str] = []
        self.started = threading.Event()
        self.finished = threading.Event()

    def load_adapter(self, name, path):
        self.loaded.append(name)

    def adapter_names(self):
        return list(self.loaded)

    def generate(self, requests):
        self.finished.clear()
        self.generated.extend(r.prompt for r in requests)
        self.started.set()
        delays = [float(r.prompt.split(":")[1]) for r in requests if r.prompt.startswith("sleep:")]
        time.sleep(max(delays, default=0.0))
        self.finished.set()
        return [GenerationResult(f"echo:{r.prompt}", 1, 1) for r in requests]


def slow_app(servable: SlowServable, **settings):
    options = {"require_keys": False, "batch_wait_ms": 0, **settings}
    return build_app({"slow": servable}, settings=ServeSettings(**options))


def ask_slow(client, prompt: str, **params) -> httpx.Response:
    return client.post("/v1/completions", json={"model": "slow", "prompt": prompt, **params})


@pytest.fixture(scope="module")
def tiny_app(runs):  # noqa: F811 - the fixture imported above
    """The tiny Llama with adapters a and b, one adapter loaded at a time."""
    settings = ServeSettings(require_keys=False, max_adapters=1, batch_wait_ms=5.0)
    return build_app_from_runs(plugin_manager(), [runs["a"], runs["b"]], settings=settings)


@pytest.fixture(scope="module")
def tiny_server(tiny_app):
    with live_server(tiny_app) as client:
        yield client


# -- body size ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/completions", {"model": BASE, "prompt": "x" * 10_000_000, "max_tokens": 4}),
        ("/v1/chat/completions", {"model": BASE, "messages": [{"role": "user", "content": "x" * 10_000_000}]}),
    ],
    ids=["completion", "chat"],
)
def test_a_10_mb_body_is_a_quick_413_and_the_next_request_is_answered_at_once(tiny_server, path, body):
    started = time.monotonic()
    reply = tiny_server.post(path, json=body)
    assert time.monotonic() - started < 5
    error = assert_openai_error(reply, 413)
    assert error["code"] == "request_too_large"
    assert "1 MB (1,048,576 bytes)" in error["message"] and "--max-body-bytes" in error["message"]

    started = time.monotonic()
    answer = complete(tiny_server, None, PROMPTS[None])
    assert time.monotonic() - started < 5
    assert answer["usage"]["completion_tokens"] > 0


def test_a_streamed_body_growing_past_the_limit_is_413_and_smaller_ones_pass(tiny_server):
    sent = []

    def chunks():
        for _ in range(64):  # 4 MB in 64 KB chunks, no Content-Length (chunked)
            sent.append(1)
            yield b"x" * 65536

    reply = tiny_server.post("/v1/completions", content=chunks(), headers={"content-type": "application/json"})
    assert assert_openai_error(reply, 413)["code"] == "request_too_large"

    def small():
        yield b'{"model": "' + BASE.encode() + b'", "max_tokens": 3,'
        yield b' "prompt": "Water boils at"}'

    ok = tiny_server.post("/v1/completions", content=small(), headers={"content-type": "application/json"})
    assert ok.status_code == 200, ok.text


def test_the_middleware_stops_reading_an_endless_body_at_the_limit():
    """The application never pulls another chunk once the body is past the limit."""
    pulled, sent, reads = [], [], []

    async def endless():
        pulled.append(1)
        return {"type": "http.request", "body": b"x" * 1024, "more_body": True}

    async def send(message):
        sent.append(message)

    async def reading_app(scope, receive, send):  # reads to the end, as a JSON parser would
        while True:
            message = await receive()
            reads.append(message)
            if not message.get("more_body"):
                break

    middleware = LimitsMiddleware(reading_app, max_body_bytes=10 * 1024)
    scope = {"type": "http", "path": "/v1/completions", "headers": []}
    asyncio.run(asyncio.wait_for(middleware(scope, endless, send), 5))
    assert len(pulled) == 11 and len(reads) == 10
    assert sent[0]["status"] == 413
    assert b"request_too_large" in sent[1]["body"]


def test_max_tokens_of_2_to_the_63_is_400(tiny_server):
    reply = tiny_server.post("/v1/completions", json={"model": BASE, "prompt": "hi", "max_tokens": 2**63})
    assert "max_tokens" in assert_openai_error(reply, 400)["message"]
    complete(tiny_server, None, PROMPTS[None])  # and the server goes on


def test_a_max_tokens_that_can_never_fit_is_400_even_when_the_queue_is_full():
    servable = SlowServable()
    servable.context = 512  # what TextServable reads from the model's config
    with live_server(slow_app(servable, max_queue=1)) as client, ThreadPoolExecutor(1) as pool:
        first = pool.submit(ask_slow, client, "sleep:1.5")
        assert servable.started.wait(10)
        hopeless = ask_slow(client, "hi", max_tokens=2**63)
        error = assert_openai_error(hopeless, 400)  # not 429: retrying would never help
        assert error["param"] == "max_tokens" and "512 positions" in error["message"]
        assert first.result().status_code == 200


class UploadBody(BaseModel):
    model: str
    file: Upload


async def _upload_size(body: UploadBody, ctx) -> dict:
    return {"bytes": len(body.file.data)}


def test_an_upload_route_keeps_its_larger_limit_and_other_routes_the_default():
    routes = [Route("/v1/uploads", _upload_size, body=UploadBody, form=True, max_upload_bytes=3 * MB)]
    settings = ServeSettings(require_keys=False, max_body_bytes=MB)
    app = build_app({"slow": SlowServable()}, endpoints=routes, settings=settings)
    with TestClient(app) as client:
        upload = client.post("/v1/uploads", data={"model": "slow"}, files={"file": ("a.wav", b"\0" * (2 * MB))})
        assert upload.status_code == 200 and upload.json() == {"bytes": 2 * MB}
        too_big = client.post("/v1/uploads", data={"model": "slow"}, files={"file": ("a.wav", b"\0" * (5 * MB))})
        assert "4 MB" in assert_openai_error(too_big, 413)["message"]  # the route's limit: its upload and 1 MB
        prompt = client.post("/v1/completions", json={"model": "slow", "prompt": "x" * (2 * MB)})
        assert "1 MB" in assert_openai_error(prompt, 413)["message"]
    assert route_body_limits(routes, MB) == {"/v1/uploads": 3 * MB + FORM_OVERHEAD_BYTES}


def test_the_speech_transcription_route_takes_its_25_mb_uploads():
    speech = pytest.importorskip("polyadapt_speech.routes")
    limits = route_body_limits([speech.TRANSCRIPTIONS], MB)
    assert limits["/v1/audio/transcriptions"] >= 25 * MB


# -- queue bound ------------------------------------------------------------------------------


def test_a_full_queue_is_429_with_retry_after_and_the_refused_request_never_runs():
    servable = SlowServable()
    with live_server(slow_app(servable, max_queue=1)) as client, ThreadPoolExecutor(1) as pool:
        first = pool.submit(ask_slow, client, "sleep:1.5")
        assert servable.started.wait(10)
        started = time.monotonic()
        busy = ask_slow(client, "refused")
        assert time.monotonic() - started < 1
        error = assert_openai_error(busy, 429)
        assert error["type"] == "rate_limit_exceeded" and error["code"] == "server_busy"
        assert int(busy.headers["Retry-After"]) >= 1
        assert first.result().status_code == 200
        assert ask_slow(client, "after").status_code == 200  # room again once the first is answered
    assert servable.generated == ["sleep:1.5", "after"]


def test_a_request_holding_more_inputs_than_the_queue_is_400():
    with TestClient(slow_app(SlowServable(), max_queue=2)) as client:
        reply = ask_slow(client, ["1", "2", "3"])
        assert "max-queue" in assert_openai_error(reply, 400)["message"]


def test_retry_after_grows_with_the_batches_ahead():
    assert retry_after_s(None, 0, 8) == 1
    assert retry_after_s(0.01, 3, 8) == 1
    assert retry_after_s(2.0, 16, 4) == 8


# -- deadline ---------------------------------------------------------------------------------


def test_past_the_deadline_is_504_a_queued_request_is_dropped_and_the_server_goes_on():
    servable = SlowServable()
    app = slow_app(servable, request_timeout_s=0.5, max_batch=1)
    with live_server(app) as client, ThreadPoolExecutor(2) as pool:
        started = time.monotonic()
        running = pool.submit(ask_slow, client, "sleep:2")
        assert servable.started.wait(10)
        queued = pool.submit(ask_slow, client, "queued")  # waits behind the running batch
        reply = running.result()
        assert time.monotonic() - started < 1.5  # answered at the deadline, not after generating
        error = assert_openai_error(reply, 504)
        assert error["type"] == "timeout_error" and "longer than 0.5 s" in error["message"]
        assert assert_openai_error(queued.result(), 504)["code"] == "request_timeout"

        assert servable.finished.wait(10)  # the generation that ran past the deadline ends
        assert ask_slow(client, "fine").json()["choices"][0]["text"] == "echo:fine"
    assert servable.generated == ["sleep:2", "fine"]  # "queued" left the queue ungenerated


# -- shutting down ----------------------------------------------------------------------------


def test_the_batcher_drains_on_close_and_refuses_new_requests():
    servable = SlowServable()
    batcher = MicroBatcher(servable, {}, max_batch=1, batch_wait_ms=0)

    async def scenario():
        running = asyncio.ensure_future(batcher.submit([GenerationRequest(prompt="sleep:0.3")]))
        queued = asyncio.ensure_future(batcher.submit([GenerationRequest(prompt="queued")]))
        await asyncio.sleep(0.1)
        closing = asyncio.ensure_future(batcher.close(grace_s=10))
        await asyncio.sleep(0.05)
        with pytest.raises(ShuttingDown):
            await batcher.submit([GenerationRequest(prompt="late")])
        await closing
        return [(await running)[0].text, (await queued)[0].text]

    assert asyncio.run(scenario()) == ["echo:sleep:0.3", "echo:queued"]
    assert servable.generated == ["sleep:0.3", "queued"]


def test_what_is_left_after_the_grace_period_gets_503():
    servable = SlowServable()
    batcher = MicroBatcher(servable, {}, max_batch=1, batch_wait_ms=0)

    async def scenario():
        running = asyncio.ensure_future(batcher.submit([GenerationRequest(prompt="sleep:0.5")]))
        queued = asyncio.ensure_future(batcher.submit([GenerationRequest(prompt="queued")]))
        await asyncio.sleep(0.1)
        await batcher.close(grace_s=0)
        return await asyncio.gather(running, queued, return_exceptions=True)

    outcomes = asyncio.run(scenario())
    assert all(isinstance(outcome, ShuttingDown) for outcome in outcomes)  # the running one too
    assert "queued" not in servable.generated


def test_a_draining_server_answers_new_requests_503():
    app = slow_app(SlowServable())
    with TestClient(app) as client:
        assert ask_slow(client, "before").status_code == 200
        app.state.lifecycle.start_draining()
        reply = ask_slow(client, "during")
        assert assert_openai_error(reply, 503)["code"] == "server_shutting_down"


SERVER_SCRIPT = textwrap.dedent(
    """
    import sys
    import time
    from pathlib import Path

    from polyadapt.serving.app import build_app
    from polyadapt.serving.settings import ServeSettings
    from polyadapt.serving.shutdown import run_server
    from polyadapt.types import GenerationResult


    class Slow:
        base_name = "slow"

        def load_adapter(self, name, path):
            pass

        def adapter_names(self):
            return []

        def generate(self, requests):
            Path(sys.argv[2]).write_text("started")
            time.sleep(2.0)
            return [GenerationResult("done", 1, 1) for _ in requests]


    settings = ServeSettings(require_keys=False, batch_wait_ms=0, shutdown_grace_s=20)
    app = build_app({"slow": Slow()}, settings=settings)
    run_server(app, host="127.0.0.1", port=int(sys.argv[1]), grace_s=settings.shutdown_grace_s, log_level="warning")
    """
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_sigterm_lets_the_request_in_flight_finish_then_exits_0(tmp_path):
    script, marker, port = tmp_path / "serve.py", tmp_path / "started", _free_port()
    script.write_text(SERVER_SCRIPT)
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, str(script), str(port), str(marker)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        started = time.monotonic()
        while True:
            assert process.poll() is None, process.stdout.read().decode()
            assert time.monotonic() - started < 60, "the server did not start"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        with ThreadPoolExecutor(1) as pool:
            body = {"model": "slow", "prompt": "hi"}
            in_flight = pool.submit(httpx.post, f"{url}/v1/completions", json=body, timeout=30)
            while not marker.exists():
                assert time.monotonic() - started < 60
                time.sleep(0.02)
            process.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            try:  # a new request is not answered as usual: no connection, or 503
                late = httpx.post(f"{url}/v1/completions", json=body, timeout=5)
                assert late.status_code == 503
            except httpx.TransportError:
                pass
            reply = in_flight.result(timeout=30)
        assert reply.status_code == 200 and reply.json()["choices"][0]["text"] == "done"
        assert process.wait(timeout=30) == 0, process.stdout.read().decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_serve_runs_the_server_with_the_shutdown_grace(monkeypatch, runs):  # noqa: F811
    from typer.testing import CliRunner

    import polyadapt.serving.app as serving_app
    import polyadapt.serving.shutdown as shutdown
    from polyadapt.cli import app as cli_app

    calls = []
    monkeypatch.setattr(serving_app, "build_app_from_runs", lambda *args, **kwargs: "the app")
    monkeypatch.setattr(shutdown, "run_server", lambda app, **options: calls.append((app, options)))
    result = CliRunner().invoke(cli_app, ["serve", str(runs["a"]), "--no-keys", "--shutdown-grace", "7"])
    assert result.exit_code == 0, result.output
    assert calls == [("the app", {"host": "127.0.0.1", "port": 8000, "grace_s": 7.0})]


# -- the adapter cache ------------------------------------------------------------------------


def test_one_adapter_at_a_time_alternating_adapters_answer_as_if_loaded_alone(tiny_app, tiny_server, reference):  # noqa: F811
    served = tiny_app.state.registry.bases[BASE]
    cache = served.cache
    complete(tiny_server, "b", PROMPTS["b"])  # b loaded, whatever came before
    loads, evictions, hits = cache.loads, cache.evictions, cache.hits
    for adapter in ["a", "b", "a", "b"]:
        text = complete(tiny_server, adapter, PROMPTS[adapter])["choices"][0]["text"]
        assert text == reference(adapter, PROMPTS[adapter])[0]
        assert served.servable.adapter_names() == [adapter]
    assert (cache.loads - loads, cache.evictions - evictions) == (4, 4)
    assert cache.last_load_s is not None and cache.last_load_s > 0
    assert cache.last_evict_s is not None and cache.load_seconds >= cache.last_load_s
    complete(tiny_server, "b", PROMPTS["b"])
    assert (cache.loads - loads, cache.hits - hits) == (4, 1)
    assert cache.loaded_names() == ["b"] and cache.loaded_bytes() == adapter_bytes(served.adapters["b"])
    assert tiny_server.post("/v1/completions", json={"model": BASE, "prompt": "hi", "max_tokens": 2}).status_code == 200


def test_a_batch_of_two_adapters_on_a_one_adapter_cache_runs_in_two_parts(tiny_app, reference, monkeypatch):  # noqa: F811
    served = tiny_app.state.registry.bases[BASE]
    servable = served.servable
    loaded_during: list[list[str]] = []
    original = servable.generate

    def recording(requests):
        loaded_during.append(servable.adapter_names())
        return original(requests)

    monkeypatch.setattr(servable, "generate", recording)
    requests = [
        GenerationRequest(prompt=PROMPTS[adapter], adapter=adapter, max_tokens=TOKENS, temperature=0)
        for adapter in ("a", "b", None, "a")
    ]
    results = served.batcher_for("generate").run_batch(requests)
    expected = [reference(r.adapter, r.prompt)[0] for r in requests]
    assert [r.text for r in results] == expected
    assert len(loaded_during) == 2 and all(len(names) == 1 for names in loaded_during)


class UnloadingServable:
    """Records loads and unloads; ``base_name`` fake."""

    base_name = "fake"

    def __init__(self):
        self.loaded: list[str] = []
        self.log: list[str] = []

    def load_adapter(self, name, path):
        self.loaded.append(name)
        self.log.append(f"load {name}")

    def unload_adapter(self, name):
        self.loaded.remove(name)
        self.log.append(f"unload {name}")

    def adapter_names(self):
        return list(self.loaded)


def adapter_folders(root: Path, sizes: dict[str, int]) -> dict[str, Path]:
    folders = {}
    for name, size in sizes.items():
        (root / name).mkdir()
        (root / name / "adapter_model.safetensors").write_bytes(b"\0" * size)
        (root / name / "adapter_config.json").write_text("{}")  # not weights: not counted
        folders[name] = root / name
    return folders


def test_the_cache_evicts_the_least_recently_used_adapter(tmp_path):
    servable = UnloadingServable()
    events = []
    paths = adapter_folders(tmp_path, {"a": 10, "b": 10, "c": 10, "d": 10})
    cache = AdapterCache(servable, paths, max_adapters=2, on_event=events.append)
    for name in ("a", "b", "c", "b", "d"):
        with cache.using([name]) as problems:
            assert problems == {}
    assert servable.log == ["load a", "load b", "unload a", "load c", "unload c", "load d"]
    assert (cache.loads, cache.evictions, cache.hits) == (4, 2, 1)
    assert events.count("load") == 4 and events.count("eviction") == 2 and events.count("hit") == 1
    assert cache.loaded_names() == ["b", "d"] and cache.loaded_bytes() == 20


def test_the_cache_bounds_the_bytes_of_loaded_adapters(tmp_path):
    servable = UnloadingServable()
    paths = adapter_folders(tmp_path, {"a": 100, "b": 100, "c": 150})
    cache = AdapterCache(servable, paths, max_adapters=8, max_bytes=250)
    for name in ("a", "b", "c"):
        with cache.using([name]):
            pass
    assert servable.loaded == ["b", "c"] and cache.loaded_bytes() == 250
    assert adapter_bytes(paths["a"]) == 100


def test_the_cache_never_evicts_an_adapter_in_use(tmp_path, caplog):
    servable = UnloadingServable()
    paths = adapter_folders(tmp_path, {"a": 1, "b": 1, "c": 1})
    cache = AdapterCache(servable, paths, max_adapters=1)
    with caplog.at_level(logging.WARNING), cache.using(["a"]), cache.using(["b"]):
        assert servable.loaded == ["a", "b"]  # another batch holds a: over the bound for now
    assert "past its bounds" in caplog.text
    with cache.using(["c"]):
        assert servable.loaded == ["c"]


def test_a_servable_that_cannot_unload_keeps_every_adapter_and_says_so_once(tmp_path, caplog):
    class Keeper(UnloadingServable):
        unload_adapter = None

    servable = Keeper()
    cache = AdapterCache(servable, adapter_folders(tmp_path, {"a": 1, "b": 1, "c": 1}), max_adapters=1)
    with caplog.at_level(logging.WARNING):
        for name in ("a", "b", "c"):
            with cache.using([name]):
                pass
    assert servable.loaded == ["a", "b", "c"] and cache.evictions == 0
    assert caplog.text.count("cannot unload adapters") == 1
    assert cache.groups(["a", "b", "c"]) == [[0, 1, 2]]


def test_a_batch_is_split_into_parts_that_fit_the_cache(tmp_path):
    cache = AdapterCache(UnloadingServable(), adapter_folders(tmp_path, {"a": 1, "b": 1, "c": 1}), max_adapters=2)
    assert cache.groups(["a", None, "b", "a", "c"]) == [[0, 1, 2, 3], [4]]
    assert cache.groups(["a", "a", None]) == [[0, 1, 2]]


def test_an_unknown_adapter_is_an_error_of_its_own(tmp_path):
    cache = AdapterCache(UnloadingServable(), {}, max_adapters=1)
    with cache.using(["ghost", None]) as problems:
        assert "not served" in str(problems["ghost"])
