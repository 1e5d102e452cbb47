"""Retrieval at serving: an adapter's run config names an index (``retrieval: {index, k}``) or
a request does (body field ``retrieval``); the best passages join the chat messages and the
answer lists their sources. Served by the tiny Llama of ``test_serving``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from fastapi.testclient import TestClient  # noqa: E402
from test_serving import BASE, make_run_folder as make_run, plugin_manager, spy_generate  # noqa: E402

from polyadapt.config import RunConfig  # noqa: E402
from polyadapt.errors import PolyadaptError  # noqa: E402
from polyadapt.governance.policy import Policy  # noqa: E402
from polyadapt.retrieval import build_index  # noqa: E402
from polyadapt.serving.app import build_app_from_runs, build_app_from_specs, serve_specs  # noqa: E402
from polyadapt.serving.retrieval import RetrievalService  # noqa: E402

LENIENT = Policy(name="docs", max_finding_share=1.0, detectors={"ner": "off"})
QUESTION = "What does the Solvanta warranty cover?"
DOCS = {
    "warranty.md": "The Solvanta warranty covers parts and labour for two years.\n\n"
    "Write to claims@example.org to make a claim.\n",
    "shipping.md": "Express shipping takes one working day from the warehouse.\n",
    "returns.md": "Unused items may be returned within thirty days.\n",
}


def write_docs(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in DOCS.items():
        (folder / name).write_text(text)
    return folder


@pytest.fixture(scope="module")
def state(tmp_path_factory) -> Path:
    """A state folder holding the index ``handbook`` (this module's apps search it)."""
    root = tmp_path_factory.mktemp("rag-state")
    docs = write_docs(tmp_path_factory.mktemp("rag-docs") / "docs")
    build_index("handbook", [docs], root=root, licence="MIT", policy=LENIENT, record_lineage=False)
    return root


@pytest.fixture(scope="module")
def runs(tiny_llama, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("rag-runs")
    return {
        "rag": make_run(root, tiny_llama, "rag", seed=1, retrieval={"index": "handbook", "k": 2}),
        "plain": make_run(root, tiny_llama, "plain", seed=2),
    }


@pytest.fixture(scope="module")
def app(runs, state):
    pm = plugin_manager()
    specs = serve_specs(pm, [runs["rag"], runs["plain"]])
    return build_app_from_specs(pm, specs, retrieval=RetrievalService(state), max_batch=8, batch_wait_ms=5.0)


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def servable(app):
    return app.state.registry.bases[BASE].servable


def chat(client, adapter: str, content: str = QUESTION, **params):
    body = {"model": f"{BASE}:{adapter}", "messages": [{"role": "user", "content": content}], "max_tokens": 4}
    return client.post("/v1/chat/completions", json=body | params)


def test_an_adapters_run_config_adds_passages_and_returns_sources(client, servable, monkeypatch):
    batches = spy_generate(monkeypatch, servable)
    response = chat(client, "rag")
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["object"] == "chat.completion" and answer["choices"][0]["message"]["role"] == "assistant"
    sources = answer["sources"]
    assert len(sources) == 2 and set(sources[0]) == {"passage_id", "source", "score"}
    assert sources[0]["source"].endswith("warranty.md#L1-3")
    assert sources[0]["score"] >= sources[1]["score"]
    [[request]] = batches
    system, user = request.messages
    assert user == {"role": "user", "content": QUESTION}
    assert system["role"] == "system"
    assert "covers parts and labour for two years" in system["content"]
    assert f"[1] (source: {sources[0]['source']})" in system["content"]
    assert "claims@example.org" not in system["content"] and "<EMAIL_1>" in system["content"]  # governed text


def test_an_adapter_without_retrieval_answers_as_before(client, servable, monkeypatch):
    batches = spy_generate(monkeypatch, servable)
    response = chat(client, "plain")
    assert response.status_code == 200, response.text
    assert "sources" not in response.json()
    assert batches[0][0].messages == [{"role": "user", "content": QUESTION}]
    base = client.post(
        "/v1/chat/completions", json={"model": BASE, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    )
    assert base.status_code == 200 and "sources" not in base.json()


def test_a_request_chooses_its_own_retrieval(client, servable, monkeypatch):
    batches = spy_generate(monkeypatch, servable)
    named = chat(client, "plain", "How long does express shipping take?", retrieval={"index": "handbook", "k": 1})
    assert named.status_code == 200, named.text
    [source] = named.json()["sources"]
    assert source["source"].endswith("shipping.md#L1")
    assert "Express shipping takes one working day" in batches[-1][0].messages[0]["content"]
    fewer = chat(client, "rag", retrieval={"k": 1})
    assert len(fewer.json()["sources"]) == 1
    own = chat(client, "rag", retrieval=True)
    assert len(own.json()["sources"]) == 2
    off = chat(client, "rag", retrieval=False)
    assert off.status_code == 200 and "sources" not in off.json()
    assert batches[-1][0].messages == [{"role": "user", "content": QUESTION}]
    nothing = chat(client, "rag", "zeppelin timetable")
    assert nothing.json()["sources"] == []  # retrieval ran and found nothing
    assert batches[-1][0].messages == [{"role": "user", "content": "zeppelin timetable"}]


@pytest.mark.parametrize(
    ("adapter", "retrieval", "param", "words"),
    [
        ("rag", {"index": "nope"}, "retrieval.index", "'nope' not found"),
        ("plain", True, "retrieval.index", "no index of its own"),
        ("rag", {"k": 0}, "retrieval.k", "greater than or equal to 1"),
        ("rag", {"index": "handbook", "top": 3}, "retrieval.top", "Extra inputs"),
        ("rag", "handbook", "retrieval", "valid dictionary"),
    ],
)
def test_a_bad_retrieval_field_is_a_400_naming_it(client, adapter, retrieval, param, words):
    response = chat(client, adapter, retrieval=retrieval)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and words in error["message"]


def test_other_endpoints_still_refuse_the_field(client):
    response = client.post(
        "/v1/completions", json={"model": f"{BASE}:rag", "prompt": "x", "retrieval": {"index": "handbook"}}
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "unknown_parameter"


def test_a_streamed_answer_carries_the_sources_on_its_first_chunk(client):
    body = {
        "model": f"{BASE}:rag",
        "messages": [{"role": "user", "content": QUESTION}],
        "max_tokens": 4,
        "stream": True,
    }
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert [s["source"] for s in chunks[0]["sources"]][0].endswith("warranty.md#L1-3")
    assert all("sources" not in chunk for chunk in chunks[1:])


def test_retrieval_is_counted_in_the_metrics(client):
    chat(client, "rag")
    text = client.get("/metrics").text
    assert 'polyadapt_retrieval_passages_total{index="handbook"}' in text
    assert 'polyadapt_retrieval_seconds_count{index="handbook"}' in text


def test_the_official_client_sends_retrieval_in_extra_body(app):
    openai = pytest.importorskip("openai")
    pytest.importorskip("uvicorn")
    from test_serving_openai import serving

    with serving(app) as base_url:
        client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
        answer = client.chat.completions.create(
            model=f"{BASE}:plain",
            messages=[{"role": "user", "content": "Can unused items be returned?"}],
            max_tokens=4,
            extra_body={"retrieval": {"index": "handbook", "k": 1}},
        )
        [source] = answer.model_extra["sources"]
        assert source["source"].endswith("returns.md#L1")
        with pytest.raises(openai.BadRequestError, match="not found"):
            client.chat.completions.create(
                model=f"{BASE}:plain",
                messages=[{"role": "user", "content": "x"}],
                extra_body={"retrieval": {"index": "missing"}},
            )


def test_serving_a_run_whose_index_is_missing_stops_at_start(tiny_llama, tmp_path, project_state):
    run = make_run(tmp_path / "runs", tiny_llama, "lost", seed=3, retrieval={"index": "gone", "k": 2})
    with pytest.raises(PolyadaptError, match=r"adapter tiny-llama:lost .*retrieval\.index.*'gone' not found"):
        build_app_from_runs(plugin_manager(), [run])


def test_polyadapt_serve_finds_the_projects_index(tiny_llama, tmp_path, project_state):
    build_index("handbook", [write_docs(tmp_path / "docs")], licence="MIT", policy=LENIENT)
    run = make_run(tmp_path / "runs", tiny_llama, "rag", seed=1, retrieval={"index": "handbook", "k": 1})
    with TestClient(build_app_from_runs(plugin_manager(), [run])) as client:
        response = chat(client, "rag")
    assert response.status_code == 200, response.text
    assert response.json()["sources"][0]["source"].endswith("warranty.md#L1-3")


def test_retrieval_in_a_run_config_is_validated():
    from polyadapt.errors import ConfigError

    base = {"task": "text-generation", "base_model": {"id": "m"}, "data": {"train": "t.jsonl"}}
    assert RunConfig.model_validate(base).retrieval is None
    assert RunConfig.model_validate(base | {"retrieval": {"index": "handbook"}}).retrieval.k == 4
    from polyadapt.config import parse_config

    with pytest.raises(ConfigError, match="retrieval"):
        parse_config(
            "task: text-generation\nbase_model: {id: m}\ndata: {train: t.jsonl}\nretrieval: {index: '../x', k: 0}\n"
        )
