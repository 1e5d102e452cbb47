"""OpenLineage RunEvents: their shape (2-0-2 RunEvent), the file target and HTTP POSTs."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import socket
import threading
import uuid
from urllib.parse import urlparse

import pytest
from polyadapt.errors import ConfigError
from polyadapt.lineage.openlineage import (
    SCHEMA_URL,
    OpenLineageEmitter,
    OpenLineageWarning,
    run_event,
    run_uuid,
)

MANIFEST = {
    "manifest_version": 1,
    "role": "train",
    "kind": "chat",
    "root_hash": "a" * 64,
    "records": 3,
    "record_hashes": ["1" * 64, "2" * 64, "3" * 64],
    "source": {"name": "chats.jsonl", "bytes": 120},
    "quarantine": {"records": 0, "reasons": {}},
    "governance": {"policy": "strict", "redacted": 1},
}
ADAPTER = {
    "name": "claims",
    "base_model": "SmolLM2",
    "version": 3,
    "weights_hash": "f" * 64,
    "path": "/runs/r1/adapter",
}


def _is_uri(value: str) -> bool:
    parsed = urlparse(value)
    return bool(parsed.scheme and parsed.netloc)


def _check_facets(facets: dict) -> None:
    for name, facet in facets.items():
        assert _is_uri(facet["_producer"]) and _is_uri(facet["_schemaURL"]), name


def assert_valid_run_event(event: dict) -> None:
    """The required fields and formats of the OpenLineage 2-0-2 RunEvent schema."""
    assert {"eventTime", "producer", "schemaURL", "run", "job"} <= set(event)
    assert event["eventType"] in {"START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"}
    assert dt.datetime.fromisoformat(event["eventTime"].replace("Z", "+00:00")).tzinfo is not None
    assert _is_uri(event["producer"]) and event["schemaURL"] == SCHEMA_URL
    uuid.UUID(event["run"]["runId"])
    _check_facets(event["run"].get("facets", {}))
    assert event["job"]["namespace"] and event["job"]["name"]
    _check_facets(event["job"].get("facets", {}))
    for dataset in event["inputs"] + event["outputs"]:
        assert dataset["namespace"] and dataset["name"]
        _check_facets(dataset.get("facets", {}))


def test_events_have_the_run_event_shape():
    start = run_event("START", run_id="run-1", job_name="text-generation", inputs=[MANIFEST])
    done = run_event("COMPLETE", run_id="run-1", job_name="text-generation", inputs=[MANIFEST], outputs=[ADAPTER])
    failed = run_event("FAIL", run_id="run-1", job_name="text-generation", error="GovernanceError: licence")
    for event in (start, done, failed):
        assert_valid_run_event(event)
    assert start["run"]["runId"] == done["run"]["runId"] == failed["run"]["runId"] == run_uuid("run-1")
    assert run_uuid("run-2") != run_uuid("run-1")
    assert start["run"]["facets"]["polyadapt_run"]["runId"] == "run-1"
    [dataset] = done["inputs"]
    assert dataset["name"] == "chats.jsonl" and dataset["facets"]["version"]["datasetVersion"] == "a" * 64
    assert dataset["facets"]["polyadapt_manifest"]["records"] == 3
    assert "1" * 64 not in json.dumps(done)  # no per-record hashes in events
    [output] = done["outputs"]
    assert output["name"] == "SmolLM2:claims@3" and output["facets"]["version"]["datasetVersion"] == "f" * 64
    assert output["facets"]["polyadapt_adapter"]["path"] == "/runs/r1/adapter"
    bare = run_event("COMPLETE", run_id="r", job_name="j", outputs=[{"name": "claims", "weights_hash": "0"}])
    assert bare["outputs"][0]["name"] == "claims"
    error = failed["run"]["facets"]["errorMessage"]
    assert error["message"] == "GovernanceError: licence" and error["programmingLanguage"] == "python"
    assert "errorMessage" not in done["run"]["facets"]
    with pytest.raises(ValueError):
        run_event("DONE", run_id="r", job_name="j")


def test_file_target_appends_json_lines(tmp_path):
    target = tmp_path / "lineage" / "events.jsonl"
    emitter = OpenLineageEmitter(target)
    emitter.emit(run_event("START", run_id="r1", job_name="text-generation", inputs=[MANIFEST]))
    emitter.emit(run_event("COMPLETE", run_id="r1", job_name="text-generation", inputs=[MANIFEST], outputs=[ADAPTER]))
    OpenLineageEmitter(f"file://{target}").emit(
        run_event("FAIL", run_id="r2", job_name="text-generation", error="boom")
    )
    events = [json.loads(line) for line in target.read_text().splitlines()]
    assert [e["eventType"] for e in events] == ["START", "COMPLETE", "FAIL"]
    for event in events:
        assert_valid_run_event(event)


class _Collector(http.server.BaseHTTPRequestHandler):
    received: list[tuple[str, str, dict]] = []
    status = 201

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, self.headers["Content-Type"], json.loads(body)))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _Collector.received = []
    _Collector.status = 201
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_http_target_posts_json(server):
    emitter = OpenLineageEmitter(f"{server}/api/v1/lineage", headers={"Authorization": "Bearer t"})
    event = run_event("COMPLETE", run_id="r1", job_name="text-generation", inputs=[MANIFEST], outputs=[ADAPTER])
    assert emitter.emit(event) is True
    [(path, content_type, body)] = _Collector.received
    assert path == "/api/v1/lineage" and content_type == "application/json"
    assert body == event
    assert_valid_run_event(body)


def test_delivery_failures_warn_and_never_raise(server):
    _Collector.status = 500
    with pytest.warns(OpenLineageWarning, match="not delivered"):
        assert OpenLineageEmitter(server).emit(run_event("START", run_id="r", job_name="j")) is False
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.warns(OpenLineageWarning):
        assert (
            OpenLineageEmitter(f"http://127.0.0.1:{port}/", timeout=2).emit(
                run_event("START", run_id="r", job_name="j")
            )
            is False
        )


def test_unknown_scheme_is_a_config_error():
    with pytest.raises(ConfigError, match="file path or an http"):
        OpenLineageEmitter("kafka://broker/topic")
