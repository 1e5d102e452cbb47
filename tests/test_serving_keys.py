"""API keys for ``polyadapt serve``: ``polyadapt keys create|list|revoke`` (the secret shown
once, only a salted hash stored), ``Authorization: Bearer`` on every request but GET /health
(401), per-key models (403, and /v1/models filtered), per-key rates (429 with Retry-After),
revocation without a restart, CORS only for configured origins, the docs off unless asked
for, and ``serve --no-keys`` only on loopback.

The server side runs on a fake servable (an echo), which is all the key checks need; the
model itself is covered by test_serving.py.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel
from typer.testing import CliRunner

from polyadapt.cli import app as cli_app
from polyadapt.errors import PolyadaptError
from polyadapt.lineage.store import LineageStore
from polyadapt.serving.app import build_app
from polyadapt.serving.keys import (
    KeyChecker,
    Rate,
    TokenBucket,
    create_key,
    hash_secret,
    is_loopback,
    parse_models,
    parse_rate,
)
from polyadapt.serving.routes import Route, RouteContext
from polyadapt.serving.settings import ServeSettings
from polyadapt.types import GenerationResult

BASE = "echo"
SECRET = re.compile(r"^pa-[A-Za-z0-9_-]{32}$")
runner = CliRunner()


class EchoServable:
    """A fake loaded base: answers each prompt with the adapter that answered it."""

    def __init__(self):
        self.base_name = BASE
        self.loaded: list[str] = []

    def load_adapter(self, name: str, path: Path) -> None:
        self.loaded.append(name)

    def adapter_names(self) -> list[str]:
        return list(self.loaded)

    def generate(self, requests):
        return [
            GenerationResult(text=f"from {r.adapter or 'base'}", prompt_tokens=1, completion_tokens=2) for r in requests
        ]

    def shout(self, requests):
        return [request.text.upper() for request in requests]


@dataclass
class ShoutRequest:
    text: str
    adapter: str | None


class ShoutBody(BaseModel):
    model: str
    input: str


async def shout(body: ShoutBody, ctx: RouteContext) -> dict:
    target = ctx.resolve(body.model, method="shout")
    (answer,) = await ctx.submit(target, "shout", [ShoutRequest(body.input, target.adapter)])
    return {"model": body.model, "text": answer}


SHOUT = Route("/v1/shouts", shout, body=ShoutBody)


def make_app(tmp_path: Path, settings: ServeSettings | None = None, checker: KeyChecker | None = None):
    adapters = {BASE: {"a": tmp_path / "a", "b": tmp_path / "b"}}
    return build_app({BASE: EchoServable()}, adapters=adapters, endpoints=[SHOUT], settings=settings, api_keys=checker)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def complete(client: TestClient, model: str, secret: str | None = None):
    headers = bearer(secret) if secret else {}
    return client.post("/v1/completions", json={"model": model, "prompt": "hi", "max_tokens": 2}, headers=headers)


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(project_state) -> LineageStore:
    with LineageStore.open() as opened:
        yield opened


@pytest.fixture
def secrets_(store) -> dict[str, str]:
    """Three keys: every model, only ``echo:a``, and every model at 2 requests a minute."""
    return {
        "all": create_key(store, "all", adapters=None, rate=None)[0],
        "only-a": create_key(store, "only-a", adapters=["echo:a"], rate="none")[0],
        "slow": create_key(store, "slow", adapters=["echo:*"], rate="2/min")[0],
    }


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def client(tmp_path, store, secrets_, clock):
    checker = KeyChecker(store, ttl_s=5.0, clock=clock)
    with TestClient(make_app(tmp_path, ServeSettings(require_keys=True), checker)) as test_client:
        yield test_client


# -- polyadapt keys -----------------------------------------------------------------------


def test_create_shows_the_secret_once_and_stores_only_a_salted_hash(project_state):
    made = runner.invoke(cli_app, ["keys", "create", "support-bot", "--adapters", "echo:a,echo", "--rate", "10/s"])
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip()
    assert SECRET.match(secret), made.stdout  # stdout is the secret alone: KEY=$(polyadapt keys create ...)
    assert "not stored and cannot be shown again" in made.stderr

    # the secret is nowhere in the database files (the WAL included); its salted hash is
    files = list(project_state.glob("lineage.db*"))
    assert files and all(secret.encode() not in path.read_bytes() for path in files)
    with LineageStore.open() as store:
        (record,) = store.list_api_keys()
    assert record["secret_hash"] == hash_secret(secret, record["salt"]) != hash_secret(secret, "other salt")
    assert record["prefix"] == secret[:8] and record["adapters"] == ["echo:a", "echo"] and record["rate"] == "10/s"

    listed = runner.invoke(cli_app, ["keys", "list"])
    assert listed.exit_code == 0 and "support-bot" in listed.stdout and secret[:8] in listed.stdout
    assert secret not in listed.output and record["secret_hash"] not in listed.output
    as_json = runner.invoke(cli_app, ["keys", "list", "--json"])
    (shown,) = json.loads(as_json.stdout)
    assert shown == {
        "name": "support-bot",
        "prefix": secret[:8],
        "adapters": ["echo:a", "echo"],
        "rate": "10/s",
        "created": record["created"],
        "revoked": None,
    }

    other = runner.invoke(cli_app, ["keys", "create", "ci", "--all"])
    assert other.exit_code == 0 and SECRET.match(other.stdout.strip()) and other.stdout.strip() != secret


def test_create_list_revoke_errors_are_clear(project_state):
    def fails(args: list[str], message: str) -> None:
        result = runner.invoke(cli_app, ["keys", *args])
        assert result.exit_code == 1, result.output
        assert message in " ".join(result.stderr.split()), result.stderr

    assert runner.invoke(cli_app, ["keys", "create", "ci", "--all"]).exit_code == 0
    fails(["create", "ci", "--all"], "an API key named 'ci' already exists")
    fails(["create", "ci2"], "--adapters BASE:ADAPTER,... or --all")
    fails(["create", "ci2", "--all", "--adapters", "echo"], "(one of the two)")
    fails(["create", "ci2", "--adapters", "echo:"], "is not a model name")
    fails(["create", "ci2", "--all", "--rate", "fast"], "rate 'fast' is not a request rate")
    fails(["create", "bad name", "--all"], "key name 'bad name' is not allowed")
    fails(["revoke", "nope"], "there is no API key named 'nope'; keys: ci")

    revoked = runner.invoke(cli_app, ["keys", "revoke", "ci"])
    assert revoked.exit_code == 0 and "revoked API key ci" in revoked.stdout
    fails(["revoke", "ci"], "the API key 'ci' was already revoked")
    fails(["create", "ci", "--all"], "already exists (revoked")
    listed = json.loads(runner.invoke(cli_app, ["keys", "list", "--json"]).stdout)
    assert listed[0]["revoked"] is not None


def test_parsers():
    assert parse_rate("60/min") == Rate(60, 60.0) and str(parse_rate("60 / minutes")) == "60/min"
    assert parse_rate("5/s") == Rate(5, 1.0) and parse_rate("1000/day") == Rate(1000, 86400.0)
    assert parse_rate("none") is None and parse_rate(None) is None
    for bad in ("0/min", "60", "60/fortnight", "-1/s", "x/min"):
        with pytest.raises(PolyadaptError, match="not a request rate"):
            parse_rate(bad)
    assert parse_models("echo:a, echo ,echo:*,echo:a") == ["echo:a", "echo", "echo:*"]
    for bad in ("", "echo:", ":a", "echo:a:b", "echo a"):
        with pytest.raises(PolyadaptError):
            parse_models(bad)
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.5", "example.com", "10.0.0.1"))


def test_token_bucket_allows_a_burst_then_refills_evenly():
    bucket = TokenBucket(Rate(2, 60.0), tokens=2.0, stamp=0.0)
    assert bucket.take(0.0) == 0.0 and bucket.take(0.0) == 0.0
    assert bucket.take(0.0) == pytest.approx(30.0)  # one token every 30 s
    assert bucket.take(10.0) == pytest.approx(20.0)
    assert bucket.take(30.0) == 0.0 and bucket.take(30.0) > 0


# -- the server ----------------------------------------------------------------------------


def test_requests_without_a_valid_key_get_401_in_openai_shape(client, secrets_):
    missing = complete(client, "echo")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    error = missing.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "invalid_api_key"
    assert "Authorization: Bearer" in error["message"]

    wrong = complete(client, "echo", "pa-" + "x" * 32)
    assert wrong.status_code == 401 and "pa-xxxxx…" in wrong.json()["error"]["message"]
    # right prefix, wrong rest
    assert complete(client, "echo", secrets_["all"][:-1] + "?").status_code == 401
    assert client.get("/v1/models", headers={"Authorization": secrets_["all"]}).status_code == 401  # no "Bearer"
    for path in ("/v1/models", "/v1/models/echo", "/nowhere"):
        assert client.get(path).status_code == 401
    assert client.post("/v1/shouts", json={"model": "echo", "input": "x"}).status_code == 401

    ok = complete(client, "echo:a", secrets_["all"])
    assert ok.status_code == 200 and ok.json()["choices"][0]["text"] == "from a"


def test_health_is_open_and_shows_no_models_without_a_key(client):
    health = client.get("/health")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok" and body["models"] == [] and body["loaded_adapters"] == {}


def test_metrics_need_a_key_unless_made_public(tmp_path, store, secrets_):
    with TestClient(make_app(tmp_path, ServeSettings(require_keys=True), KeyChecker(store))) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers=bearer(secrets_["all"])).status_code == 200
    public = ServeSettings(require_keys=True, metrics_public=True)
    with TestClient(make_app(tmp_path, public, KeyChecker(store))) as client:
        assert client.get("/metrics").status_code == 200
        assert client.get("/v1/models").status_code == 401


def test_a_key_uses_only_its_models_403_and_lists_only_those(client, secrets_):
    only_a = secrets_["only-a"]
    assert complete(client, "echo:a", only_a).status_code == 200
    for model in ("echo:b", "echo", "echo:unknown", "other"):
        refused = complete(client, model, only_a)
        assert refused.status_code == 403, model  # 403 before 404: a key does not learn what exists
        error = refused.json()["error"]
        assert f"may not use the model {model!r}" in error["message"] and "it may use: echo:a" in error["message"]
        assert error["param"] == "model" and error["code"] == "model_not_allowed"
    chat = {"model": "echo:b", "messages": [{"role": "user", "content": "hi"}]}
    assert client.post("/v1/chat/completions", json=chat, headers=bearer(only_a)).status_code == 403
    # a plugin's route resolves its model the same way
    assert client.post("/v1/shouts", json={"model": "echo:b", "input": "x"}, headers=bearer(only_a)).status_code == 403
    shouted = client.post("/v1/shouts", json={"model": "echo:a", "input": "hey"}, headers=bearer(only_a))
    assert shouted.status_code == 200 and shouted.json()["text"] == "HEY"

    def ids(secret: str) -> list[str]:
        listed = client.get("/v1/models", headers=bearer(secret))
        assert listed.status_code == 200
        return [card["id"] for card in listed.json()["data"]]

    assert ids(only_a) == ["echo:a"]
    assert ids(secrets_["all"]) == ["echo", "echo:a", "echo:b"]
    assert ids(secrets_["slow"]) == ["echo", "echo:a", "echo:b"]  # echo:* is the base and all its adapters
    assert client.get("/v1/models/echo:a", headers=bearer(only_a)).json()["id"] == "echo:a"
    assert client.get("/v1/models/echo:b", headers=bearer(only_a)).status_code == 403
    # a key that may use everything still gets 404 for what does not exist, listing what does
    missing = complete(client, "echo:zzz", secrets_["all"])
    assert missing.status_code == 404 and "echo:a" in missing.json()["error"]["message"]


def test_over_its_rate_a_key_gets_429_with_retry_after(client, secrets_, clock):
    slow = secrets_["slow"]
    assert complete(client, "echo", slow).status_code == 200
    assert client.get("/v1/models", headers=bearer(slow)).status_code == 200  # every request counts
    over = complete(client, "echo", slow)
    assert over.status_code == 429
    assert over.headers["retry-after"] == "30"  # 2/min: a token every 30 s
    error = over.json()["error"]
    assert error["code"] == "rate_limit_exceeded" and "'slow' is over its rate limit of 2/min" in error["message"]
    # per key: the others are not slowed down
    assert all(complete(client, "echo", secrets_["all"]).status_code == 200 for _ in range(5))
    clock.now += 29
    assert complete(client, "echo", slow).headers["retry-after"] == "1"
    clock.now += 1
    assert complete(client, "echo", slow).status_code == 200


def test_keys_are_read_once_per_ttl_and_revocation_needs_no_restart(client, store, secrets_, clock):
    with mock.patch.object(store, "list_api_keys", wraps=store.list_api_keys) as reads:
        for _ in range(10):
            assert complete(client, "echo", secrets_["all"]).status_code == 200
        assert reads.call_count == 0  # within the TTL no request touches the database

        store.revoke_api_key("all")
        new_secret, _ = create_key(store, "late", adapters=None, rate=None)
        assert complete(client, "echo", secrets_["all"]).status_code == 200  # still within the TTL
        assert complete(client, "echo", new_secret).status_code == 401

        clock.now += 5.0
        revoked = complete(client, "echo", secrets_["all"])
        assert revoked.status_code == 401 and "'all' was revoked at" in revoked.json()["error"]["message"]
        assert complete(client, "echo", new_secret).status_code == 200
        assert reads.call_count == 1


def test_a_failed_reread_keeps_the_keys_read_last(client, store, secrets_, clock):
    clock.now += 5.0
    with mock.patch.object(store, "list_api_keys", side_effect=PolyadaptError("database is gone")):
        assert complete(client, "echo", secrets_["all"]).status_code == 200
        assert complete(client, "echo", "pa-" + "y" * 32).status_code == 401


def test_build_app_reads_the_default_store_without_a_checker(tmp_path, store):
    secret, _ = create_key(store, "default", adapters=["echo"], rate=None)
    with TestClient(make_app(tmp_path, ServeSettings(require_keys=True))) as client:
        assert complete(client, "echo").status_code == 401
        assert complete(client, "echo", secret).status_code == 200
        assert complete(client, "echo:a", secret).status_code == 403


def test_build_app_in_code_defaults_ask_for_no_key(tmp_path):
    with TestClient(make_app(tmp_path)) as client:
        assert complete(client, "echo:a").status_code == 200
        assert [c["id"] for c in client.get("/v1/models").json()["data"]] == ["echo", "echo:a", "echo:b"]
        assert client.get("/health").json()["models"] == ["echo", "echo:a", "echo:b"]


def test_the_official_openai_client_sends_its_key(client, secrets_):
    openai = pytest.importorskip("openai")

    def api(secret: str):
        return openai.OpenAI(api_key=secret, base_url="http://testserver/v1", http_client=client, max_retries=0)

    assert [m.id for m in api(secrets_["only-a"]).models.list()] == ["echo:a"]
    answer = api(secrets_["only-a"]).completions.create(model="echo:a", prompt="hi", max_tokens=2)
    assert answer.choices[0].text == "from a"
    with pytest.raises(openai.AuthenticationError):
        api("pa-" + "z" * 32).models.list()
    with pytest.raises(openai.PermissionDeniedError, match="echo:b"):
        api(secrets_["only-a"]).completions.create(model="echo:b", prompt="hi", max_tokens=2)
    slow = api(secrets_["slow"])
    slow.models.list()
    slow.models.list()
    with pytest.raises(openai.RateLimitError):
        slow.models.list()


# -- CORS and docs -------------------------------------------------------------------------

ORIGIN = "https://app.example"


def test_cors_headers_only_for_a_configured_origin(tmp_path, store, secrets_):
    settings = ServeSettings(require_keys=True, cors_origins=[ORIGIN])
    with TestClient(make_app(tmp_path, settings, KeyChecker(store))) as client:
        preflight = client.options(
            "/v1/completions",
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        assert preflight.status_code == 200  # answered without a key: browsers send none on preflight
        assert preflight.headers["access-control-allow-origin"] == ORIGIN
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()

        answered = client.get("/v1/models", headers={"Origin": ORIGIN, **bearer(secrets_["all"])})
        assert answered.status_code == 200 and answered.headers["access-control-allow-origin"] == ORIGIN
        refused = client.get("/v1/models", headers={"Origin": ORIGIN})
        assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == ORIGIN

        stranger = client.get("/v1/models", headers={"Origin": "https://evil.example", **bearer(secrets_["all"])})
        assert "access-control-allow-origin" not in stranger.headers
        bad_preflight = client.options(
            "/v1/completions", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
        )
        assert "access-control-allow-origin" not in bad_preflight.headers

    with TestClient(make_app(tmp_path, ServeSettings(require_keys=False))) as client:
        plain = client.get("/v1/models", headers={"Origin": ORIGIN})
        assert plain.status_code == 200 and "access-control-allow-origin" not in plain.headers


def test_docs_are_off_unless_asked_for(tmp_path, store, secrets_):
    with TestClient(make_app(tmp_path)) as client:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert client.get(path).status_code == 404, path
    with TestClient(make_app(tmp_path, ServeSettings(require_keys=True), KeyChecker(store))) as client:
        for path in ("/docs", "/openapi.json"):
            assert client.get(path, headers=bearer(secrets_["all"])).status_code == 404, path
    with TestClient(make_app(tmp_path, ServeSettings(require_keys=False, docs=True))) as client:
        assert client.get("/docs").status_code == 200
        assert "/v1/completions" in client.get("/openapi.json").json()["paths"]
    # asked for, they are served without a key (they name no model), the API still needs one
    with TestClient(make_app(tmp_path, ServeSettings(require_keys=True, docs=True), KeyChecker(store))) as client:
        assert client.get("/docs").status_code == 200 and client.get("/openapi.json").status_code == 200
        assert client.get("/v1/models").status_code == 401


# -- polyadapt serve -----------------------------------------------------------------------


@pytest.fixture
def serve_mocks():
    """``polyadapt serve`` up to the point of loading models and listening, which never happen."""
    with (
        mock.patch("polyadapt.serving.app.build_app_from_runs", return_value="the-app") as build,
        mock.patch("polyadapt.serving.shutdown.run_server") as run,
        mock.patch("polyadapt.plugins.get_plugin_manager"),
    ):
        yield build, run


def serve(*args: str):
    return runner.invoke(cli_app, ["serve", "some-run", *args])


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "example.com"])
def test_serve_without_keys_refuses_a_network_host(project_state, serve_mocks, host):
    build, run = serve_mocks
    result = serve("--no-keys", "--host", host)
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert f"--no-keys answers anyone who can connect, so it serves on this machine only; --host {host}" in message
    build.assert_not_called()
    run.assert_not_called()


def test_serve_without_keys_on_loopback(project_state, serve_mocks):
    build, run = serve_mocks
    result = serve("--no-keys", "--host", "localhost")
    assert result.exit_code == 0, result.output
    assert build.call_args.kwargs["api_keys"] is None
    assert build.call_args.kwargs["settings"].require_keys is False
    run.assert_called_once()
    assert run.call_args.args == ("the-app",) and run.call_args.kwargs["host"] == "localhost"


def test_serve_with_keys_required_and_none_says_how_to_make_one(project_state, serve_mocks):
    build, run = serve_mocks
    result = serve()
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert "has none that is not revoked; create one with `polyadapt keys create NAME --all`" in message
    assert "--no-keys" in message
    build.assert_not_called()
    run.assert_not_called()

    assert runner.invoke(cli_app, ["keys", "create", "ci", "--all"]).exit_code == 0
    assert runner.invoke(cli_app, ["keys", "revoke", "ci"]).exit_code == 0
    assert serve().exit_code == 1  # a revoked key does not count
    build.assert_not_called()


def test_serve_with_keys_on_the_network_says_so(project_state, serve_mocks):
    build, run = serve_mocks
    assert runner.invoke(cli_app, ["keys", "create", "ci", "--all"]).exit_code == 0
    result = serve("--host", "0.0.0.0", "--port", "9000")
    assert result.exit_code == 0, result.output
    assert (
        "listening on 0.0.0.0:9000, reachable from the network: every request except GET /health needs an API key"
        in (" ".join(result.stdout.split()))
    )
    checker = build.call_args.kwargs["api_keys"]
    assert isinstance(checker, KeyChecker) and [k.name for k in checker.active_keys()] == ["ci"]
    assert build.call_args.kwargs["settings"].require_keys is True
    run.assert_called_once()
    assert run.call_args.args == ("the-app",)
    assert (run.call_args.kwargs["host"], run.call_args.kwargs["port"]) == ("0.0.0.0", 9000)

    local = serve()
    assert local.exit_code == 0 and "reachable from the network" not in local.stdout


def test_serve_from_run_folders_checks_keys_on_the_tiny_model(tmp_path, store, secrets_, tiny_llama):
    pytest.importorskip("torch")
    from test_serving import make_run_folder, plugin_manager

    from polyadapt.serving.app import build_app_from_runs

    run = make_run_folder(tmp_path / "runs", tiny_llama, "insurance", seed=1)
    application = build_app_from_runs(
        plugin_manager(), [run], settings=ServeSettings(require_keys=True), api_keys=KeyChecker(store)
    )
    with TestClient(application) as client:
        assert complete(client, "tiny-llama:insurance").status_code == 401
        answered = complete(client, "tiny-llama:insurance", secrets_["all"])
        assert answered.status_code == 200 and answered.json()["usage"]["completion_tokens"] >= 1
        assert complete(client, "tiny-llama", secrets_["slow"]).status_code == 403  # slow may use echo:* only
        assert [c["id"] for c in client.get("/v1/models", headers=bearer(secrets_["all"])).json()["data"]] == [
            "tiny-llama",
            "tiny-llama:insurance",
        ]
