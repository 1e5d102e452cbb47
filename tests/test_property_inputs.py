"""Property tests: whatever a user or a client sends, the answer is a clear error or a result,
never a traceback from a library and never a 500 (hypothesis generates the inputs)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from polyadapt.config import RunConfig, load_config, parse_config  # noqa: E402
from polyadapt.errors import PolyadaptError  # noqa: E402

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

#: Any JSON/YAML value, nested a little.
values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)

VALID = {
    "task": "text-generation",
    "base_model": {"id": "some/model", "dtype": "float32"},
    "data": {"train": "train.jsonl", "licence": "CC0-1.0"},
    "lora": {"r": 8, "alpha": 16},
    "training": {"max_steps": 3, "max_length": 64, "learning_rate": 1e-3},
    "output": {"dir": "runs", "name": "x"},
}


@st.composite
def mutated_configs(draw: st.DrawFn) -> dict:
    """The valid config with some fields replaced by anything, and some junk fields added."""
    config = {section: dict(body) if isinstance(body, dict) else body for section, body in VALID.items()}
    for section in draw(st.lists(st.sampled_from(sorted(VALID)), max_size=3, unique=True)):
        body = config[section]
        if isinstance(body, dict) and draw(st.booleans()):
            key = draw(st.sampled_from([*body, "unknown_field"]))
            body[key] = draw(values)
        else:
            config[section] = draw(values)
    if draw(st.booleans()):
        config[draw(st.text(max_size=12))] = draw(values)
    return config


def _only_clear_errors(call) -> object:
    try:
        return call()
    except PolyadaptError as exc:
        message = str(exc)
        assert message and "Traceback" not in message
        return exc


@SETTINGS
@given(mutated_configs())
def test_config_loader_answers_any_config_with_a_config_or_a_clear_error(config: dict) -> None:
    text = yaml.safe_dump(config, allow_unicode=True)
    outcome = _only_clear_errors(lambda: parse_config(text, "run.yaml"))
    assert isinstance(outcome, (RunConfig, PolyadaptError))
    if isinstance(outcome, PolyadaptError):
        assert str(outcome).startswith("run.yaml")


@SETTINGS
@given(st.text(max_size=300))
def test_config_loader_answers_any_text(text: str) -> None:
    _only_clear_errors(lambda: parse_config(text, "run.yaml"))


@SETTINGS
@given(st.binary(max_size=300))
def test_config_loader_answers_any_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "run.yaml"
    path.write_bytes(data)
    outcome = _only_clear_errors(lambda: load_config(path))
    if isinstance(outcome, PolyadaptError):
        assert str(path) in str(outcome)


# -- HTTP request bodies -----------------------------------------------------------------

finite_or_not = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(10**20), 10**20)
some_text = st.text(max_size=40)


#: Integers at the edges of the C types libraries convert them to.
EDGE_INTEGERS = [0, -1, 2**31, 2**32, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63) - 1, 10**30]


def mostly(valid: st.SearchStrategy, edge: st.SearchStrategy) -> st.SearchStrategy:
    """``valid`` three times in five, else an edge value or anything at all."""
    return st.one_of(valid, valid, valid, edge, values)


@st.composite
def generation_fields(draw: st.DrawFn, model: str) -> dict:
    """A body that is mostly valid: each field the client sets is usually in range, sometimes
    at an edge or of the wrong type, so that the server's own limits are reached, not only
    the schema's."""
    body: dict = {"model": draw(st.sampled_from([model] * 6 + [f"{model}:a", f"{model}:nope", ""]) | values)}
    optional = {
        "max_tokens": mostly(st.integers(1, 4), st.sampled_from(EDGE_INTEGERS)),
        "temperature": mostly(st.floats(0, 2), finite_or_not),
        "top_p": mostly(st.floats(0.01, 1), finite_or_not),
        "stop": mostly(st.none() | some_text | st.lists(some_text, max_size=3), st.lists(values)),
        "seed": mostly(st.integers(0, 100), st.sampled_from(EDGE_INTEGERS)),
        "n": mostly(st.just(1), st.integers(-2, 3)),
        "stream": mostly(st.just(False), st.booleans()),
        "logprobs": values,
        "suffix": mostly(st.none(), some_text),
    }
    for key in draw(st.lists(st.sampled_from(sorted(optional)), max_size=4, unique=True)):
        body[key] = draw(optional[key])
    return body


messages = st.lists(
    st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "tool", ""]) | values})
    | st.fixed_dictionaries(
        {
            "role": st.sampled_from(["user", "assistant", "system"]),
            "content": some_text | values | st.lists(st.fixed_dictionaries({"type": values, "text": values})),
        }
    ),
    max_size=3,
)


@pytest.fixture(scope="module")
def fuzz_client(tiny_llama, tmp_path_factory):
    from fastapi.testclient import TestClient
    from test_serving import make_run_folder, plugin_manager

    from polyadapt.serving.app import build_app_from_runs

    root = tmp_path_factory.mktemp("fuzz-runs")
    app = build_app_from_runs(plugin_manager(), [make_run_folder(root, tiny_llama, "a", seed=1)], max_batch=4)
    with TestClient(app, raise_server_exceptions=False) as client:
        model = client.get("/v1/models").json()["data"][0]["id"].split(":")[0]
        yield client, model


def _assert_answered(response) -> None:
    assert response.status_code != 500, response.text
    if response.headers.get("content-type", "").startswith("text/event-stream"):  # stream: true
        events = [json.loads(e[6:]) for e in response.text.split("\n\n") if e and e != "data: [DONE]"]
        assert response.text.endswith("data: [DONE]\n\n") or "error" in events[-1], response.text
        return
    body = response.json()
    if response.status_code >= 400:
        assert body["error"]["message"] and "Traceback" not in body["error"]["message"]
    else:
        assert body["choices"]


HTTP_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize(
    "body",
    [
        {"seed": 2**64, "temperature": 1},  # torch.manual_seed's limit: was a 500
        {"seed": -(2**63) - 1},
        {"max_tokens": 10**12},  # would generate far past the model's positions
        {"max_tokens": 2**63},
        {"temperature": "NaN"},
        {"n": 17},  # more choices than one request may ask for
        {"stream": True, "max_tokens": 2**63},  # an error before a stream's first token: a plain 400
    ],
)
def test_bodies_that_once_broke_the_server_get_a_clear_400(fuzz_client, body: dict) -> None:
    client, model = fuzz_client
    response = client.post("/v1/completions", json={"model": model, "prompt": "hello", "max_tokens": 2, **body})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "invalid_request_error"


@HTTP_SETTINGS
@given(data=st.data())
def test_completions_answer_any_body_with_a_result_or_a_clear_error(fuzz_client, data) -> None:
    client, model = fuzz_client
    body = data.draw(generation_fields(model))
    body["prompt"] = data.draw(st.text(min_size=1, max_size=40) | st.lists(some_text, max_size=3) | values)
    if isinstance(body.get("max_tokens"), int) and body["max_tokens"] > 4 and data.draw(st.booleans()):
        body["max_tokens"] = 4  # keep most generations short; huge ones must be refused, not run
    _assert_answered(client.post("/v1/completions", json=_json_safe(body)))


@HTTP_SETTINGS
@given(data=st.data())
def test_chat_answers_any_body_with_a_result_or_a_clear_error(fuzz_client, data) -> None:
    client, model = fuzz_client
    body = data.draw(generation_fields(model))
    body["messages"] = data.draw(messages | values)
    _assert_answered(client.post("/v1/chat/completions", json=_json_safe(body)))


def _json_safe(value: object) -> object:
    """``value`` with NaN and infinities as strings: what a JSON client can send."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    return value


# -- data files --------------------------------------------------------------------------

good_lines = st.builds(lambda text: '{"text": ' + json.dumps(text) + "}", st.text(min_size=1, max_size=30))
bad_lines = st.binary(max_size=40).map(lambda raw: raw.replace(b"\n", b""))


@st.composite
def data_files(draw: st.DrawFn) -> bytes:
    """Lines of good JSON records mixed with arbitrary bytes, sometimes behind a byte-order mark."""
    lines = draw(st.lists(st.one_of(good_lines.map(str.encode), bad_lines), min_size=0, max_size=8))
    body = b"\n".join(lines)
    return draw(st.sampled_from([b"", b"\xef\xbb\xbf"])) + body


@SETTINGS
@given(data=data_files(), suffix=st.sampled_from([".jsonl", ".csv"]))
def test_data_readers_answer_any_file_with_records_or_a_clear_error(tmp_path: Path, data: bytes, suffix: str) -> None:
    from polyadapt.modalities.text import load_text_dataset

    path = tmp_path / f"train{suffix}"
    path.write_bytes(data)
    outcome = _only_clear_errors(lambda: load_text_dataset(path))
    if isinstance(outcome, PolyadaptError):
        assert str(path) in str(outcome)
    else:  # every line is a record or a quarantined entry with its line and reason
        assert all(item.reason and item.line for item in outcome.quarantined)
        assert len(outcome.records) + len(outcome.quarantined) >= 1
