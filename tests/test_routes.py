"""Routes that tasks and plugins add to ``polyadapt serve`` run behind the server's machinery:
body validation and errors in OpenAI's shape, model resolution, the serving policy with its
audit log, micro-batching, and a clear refusal of two plugins claiming one path."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from polyadapt.errors import PluginError
from polyadapt.gate import build_redactor
from polyadapt.governance.audit import AuditLog
from polyadapt.governance.policy import Policy
from polyadapt.hookspecs import hookimpl
from polyadapt.plugins import PluginManager
from polyadapt.serving.app import build_app, served_endpoints
from polyadapt.serving.guard import ServingGuard
from polyadapt.serving.routes import Route, RouteContext, TextResponse, Upload
from polyadapt.serving.schemas import ApiError
from polyadapt.task import Task
from polyadapt.types import ServeSpec

BASE = "shouter"


class ShoutBody(BaseModel):
    model: str
    input: str | list[str] = Field(min_length=1)


class UploadBody(BaseModel):
    model: str
    file: Upload


@dataclass
class ShoutRequest:
    """What the route submits: every batch request names its adapter (None: the base)."""

    text: str
    adapter: str | None


class ShoutServable:
    """A fake loaded base: ``shout`` upper-cases each text, with the adapter's suffix."""

    def __init__(self):
        self.base_name = BASE
        self.loaded: list[str] = []
        self.batches: list[int] = []
        self.lock = threading.Lock()

    def load_adapter(self, name: str, path: Path) -> None:
        self.loaded.append(name)

    def adapter_names(self) -> list[str]:
        return list(self.loaded)

    def shout(self, requests: list[ShoutRequest]) -> list[str]:
        with self.lock:
            self.batches.append(len(requests))
        return [r.text.upper() + (f" [{r.adapter}]" if r.adapter else "") for r in requests]


async def shout(body: ShoutBody, ctx: RouteContext) -> dict:
    target = ctx.resolve(body.model, method="shout", what="shouting")
    texts = [body.input] if isinstance(body.input, str) else body.input
    cleaned = [ctx.check_prompt(text, target) for text in texts]
    answers = await ctx.submit(target, "shout", [ShoutRequest(text, target.adapter) for text in cleaned])
    shown = [ctx.check_output(answer, target, direction="shout")[0] for answer in answers]
    return {"object": "list", "model": body.model, "data": shown}


async def size(body: UploadBody, ctx: RouteContext) -> TextResponse:
    ctx.resolve(body.model)
    if not body.file.data:
        raise ApiError(400, "the file is empty", param="file")
    return TextResponse(f"{body.file.filename}: {len(body.file.data)} bytes")


SHOUT = Route("/v1/shouts", shout, body=ShoutBody, summary="Shout the input")
SIZE = Route("/v1/sizes", size, body=UploadBody, form=True, max_upload_bytes=16)


class ShoutTask(Task):
    name = "shouting"

    def routes(self) -> list[Route]:
        return [SHOUT]


class SizePlugin:
    """A plugin whose route belongs to no task."""

    @hookimpl
    def polyadapt_routes(self):
        return [SIZE]


@pytest.fixture
def served(tmp_path):
    pm = PluginManager(load_entrypoints=False, plugins={"sizes": SizePlugin()})
    task = ShoutTask()
    task.plugin = "shouts"
    servable = ShoutServable()
    policy = Policy()
    guard = ServingGuard(policy, build_redactor(pm, policy), AuditLog(tmp_path / "audit.jsonl"))
    spec = ServeSpec(task=task, base_model="x", base_name=BASE, adapters={"loud": tmp_path})
    app = build_app(
        {BASE: servable},
        adapters={BASE: {"loud": tmp_path}},
        guard=guard,
        batch_wait_ms=50,
        endpoints=served_endpoints(pm, [spec]),
    )
    with TestClient(app) as client:
        yield client, servable, tmp_path / "audit.jsonl"


def test_a_task_route_answers_through_resolution_batching_and_adapters(served):
    client, servable, _ = served
    answer = client.post("/v1/shouts", json={"model": f"{BASE}:loud", "input": ["hi", "there"]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"] == ["HI [loud]", "THERE [loud]"]
    assert servable.loaded == ["loud"]  # loaded on first use
    assert servable.batches == [2]  # one servable call for both inputs
    assert client.post("/v1/shouts", json={"model": BASE, "input": "base"}).json()["data"] == ["BASE"]


def test_route_errors_come_in_openai_shape(served):
    client, _, _ = served
    missing = client.post("/v1/shouts", json={"input": "x"})
    assert missing.status_code == 400
    assert missing.json()["error"]["param"] == "model" and "required" in missing.json()["error"]["message"]
    unknown = client.post("/v1/shouts", json={"model": "nope", "input": "x"})
    assert unknown.status_code == 404 and BASE in unknown.json()["error"]["message"]
    broken = client.post("/v1/shouts", content=b"{not json", headers={"content-type": "application/json"})
    assert broken.status_code == 400 and "not valid JSON" in broken.json()["error"]["message"]


def test_the_serving_policy_applies_to_route_inputs_and_outputs(served):
    client, _, audit = served
    refused = client.post("/v1/shouts", json={"model": BASE, "input": "key AKIAQ7RZXW3PLM4K2N8T"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "content_policy"
    redacted = client.post("/v1/shouts", json={"model": BASE, "input": "mail jane.roe@example.org"})
    assert redacted.status_code == 200 and "JANE.ROE" not in redacted.text
    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    assert {line["direction"] for line in lines} >= {"prompt"}
    assert "jane" not in audit.read_text().lower()


def test_a_plugin_route_takes_uploads_with_a_size_limit(served):
    client, _, _ = served
    ok = client.post("/v1/sizes", data={"model": BASE}, files={"file": ("a.bin", b"12345", "application/octet-stream")})
    assert ok.status_code == 200 and ok.text == "a.bin: 5 bytes"
    big = client.post("/v1/sizes", data={"model": BASE}, files={"file": ("b.bin", b"x" * 17)})
    assert big.status_code == 413 and big.json()["error"]["param"] == "file"
    empty = client.post("/v1/sizes", data={"model": BASE}, files={"file": ("c.bin", b"")})
    assert empty.status_code == 400 and empty.json()["error"]["message"] == "the file is empty"


def test_a_route_for_a_method_the_base_lacks_is_refused(served):
    client, servable, _ = served
    servable.shout = None  # this base cannot shout
    answer = client.post("/v1/shouts", json={"model": BASE, "input": "x"})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "model_not_supported"


def test_two_plugins_claiming_one_path_is_a_clear_error(tmp_path):
    class Rival:
        @hookimpl
        def polyadapt_routes(self):
            return [Route("/v1/shouts", size, body=UploadBody)]

    pm = PluginManager(load_entrypoints=False, plugins={"rival": Rival()})
    task = ShoutTask()
    task.plugin = "shouts"
    spec = ServeSpec(task=task, base_model="x", base_name=BASE)
    with pytest.raises(PluginError, match="POST /v1/shouts is declared by both task 'shouting'.*plugin 'rival'"):
        served_endpoints(pm, [spec])
