"""``polyadapt serve``: OpenAI-compatible endpoints, per-request adapters, micro-batching.

Two LoRA adapters with random (non-zero) weights are saved into run folders on the tiny
Llama, so base, ``:a`` and ``:b`` answer differently; every answer is checked against a
plain ``PeftModel`` carrying only that adapter.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from unittest import mock

import pytest

pytest.importorskip("fastapi")
torch = pytest.importorskip("torch")
pytest.importorskip("peft")

import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

import polyadapt_text  # noqa: E402
import polyadapt_text.serve as text_serve  # noqa: E402
from polyadapt.config import RunConfig  # noqa: E402
from polyadapt.errors import PolyadaptError  # noqa: E402
from polyadapt.plugins import PluginManager  # noqa: E402
from polyadapt.serving.app import MicroBatcher, build_app, build_app_from_runs, serve_specs  # noqa: E402
from polyadapt.types import AdapterArtifact, GenerationRequest, GenerationResult  # noqa: E402
from polyadapt_text.serve import RowStops, finish_row  # noqa: E402

BASE = "tiny-llama"
PROMPTS = {
    None: "The policyholder filed",
    "a": "Hello, how are you today? I am",
    "b": "Water boils at",
}
TOKENS = 12


# -- fixtures ------------------------------------------------------------------------------


def plugin_manager() -> PluginManager:
    return PluginManager(load_entrypoints=False, plugins={"text": polyadapt_text})


def save_random_adapter(model_dir: Path, target: Path, seed: int, **lora) -> None:
    """A LoRA adapter whose weights are random (not the usual zero B), saved like `adapt` does."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    config = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=["q_proj", "v_proj", "o_proj"],
        init_lora_weights=False,
        task_type="CAUSAL_LM",
        **lora,
    )
    get_peft_model(base, config).save_pretrained(target)


def make_run_folder(
    root: Path,
    model_dir: Path,
    name: str,
    *,
    seed: int,
    adapter: bool = True,
    adapter_name: str | None = None,
    retrieval: dict | None = None,
) -> Path:
    """A run folder as ``runner.load_run`` expects: config.yaml (naming ``retrieval`` when
    given), adapter.json, adapter/."""
    run_dir = root / name
    run_dir.mkdir(parents=True)
    config = RunConfig.model_validate(
        {
            "task": "text-generation",
            "base_model": {"id": str(model_dir), "dtype": "float32"},
            "data": {"train": str(root / "train.jsonl")},
            "output": {"dir": str(root), "name": name, "adapter_name": adapter_name or name},
            **({"retrieval": retrieval} if retrieval else {}),
        }
    )
    (run_dir / "config.yaml").write_text(config.to_yaml())
    if adapter:
        save_random_adapter(model_dir, run_dir / "adapter", seed)
        artifact = AdapterArtifact(path=run_dir / "adapter", base_model=str(model_dir))
        (run_dir / "adapter.json").write_text(json.dumps(artifact.to_dict()))
    return run_dir


@pytest.fixture(scope="module")
def runs(tiny_llama, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("serve-runs")
    return {name: make_run_folder(root, tiny_llama, name, seed=seed) for name, seed in (("a", 1), ("b", 2))}


@pytest.fixture(scope="module")
def load_counter():
    """Counts ``load_base`` calls made by the text servable while the module's app lives."""
    with mock.patch.object(text_serve, "load_base", wraps=text_serve.load_base) as spy:
        yield spy


@pytest.fixture(scope="module")
def app(runs, load_counter):
    return build_app_from_runs(plugin_manager(), [runs["a"], runs["b"]], max_batch=8, batch_wait_ms=5.0)


@pytest.fixture(scope="module")
def servable(app):
    return app.state.registry.bases[BASE].servable


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def reference(tiny_llama, runs):
    """Greedy continuation (text, token ids) from a plain model with only that adapter."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    cache: dict = {}

    def generate(
        adapter: str | None, prompt: str | None = None, *, ids: list[int] | None = None, max_new_tokens: int = TOKENS
    ) -> tuple[str, list[int]]:
        if adapter not in cache:
            model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
            if adapter is not None:
                model = PeftModel.from_pretrained(model, str(runs[adapter] / "adapter"))
            cache[adapter] = model.eval()
        input_ids = torch.tensor([ids if ids is not None else tokenizer(prompt)["input_ids"]])
        with torch.no_grad():
            output = cache[adapter].generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        new = output[0, input_ids.shape[1] :].tolist()
        return tokenizer.decode(new, skip_special_tokens=True), new

    generate.tokenizer = tokenizer
    return generate


def model_name(adapter: str | None) -> str:
    return BASE if adapter is None else f"{BASE}:{adapter}"


def complete(client, adapter: str | None, prompt: str, **params) -> dict:
    body = {"model": model_name(adapter), "prompt": prompt, "max_tokens": TOKENS, "temperature": 0, **params}
    response = client.post("/v1/completions", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def spy_generate(monkeypatch, servable) -> list[list[GenerationRequest]]:
    """Record every batch passed to ``servable.generate``."""
    batches: list[list[GenerationRequest]] = []
    original = servable.generate

    def recording(requests):
        batches.append(list(requests))
        return original(requests)

    monkeypatch.setattr(servable, "generate", recording)
    return batches


# -- models and the base --------------------------------------------------------------------


def test_models_lists_base_and_every_adapter(client):
    response = client.get("/v1/models")
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    assert {card["id"] for card in body["data"]} == {BASE, f"{BASE}:a", f"{BASE}:b"}
    assert all(card["object"] == "model" and isinstance(card["created"], int) for card in body["data"])
    assert client.get(f"/v1/models/{BASE}:a").json()["parent"] == BASE
    assert client.get("/health").json()["status"] == "ok"


def test_base_loads_once_and_adapters_load_on_first_use(runs, tiny_llama, monkeypatch):
    with mock.patch.object(text_serve, "load_base", wraps=text_serve.load_base) as spy:
        application = build_app_from_runs(plugin_manager(), [runs["a"], runs["b"]], max_batch=4, batch_wait_ms=1)
        assert spy.call_count == 1
        servable = application.state.registry.bases[BASE].servable
        assert servable.adapter_names() == []
        with TestClient(application) as test_client:
            complete(test_client, "b", "Water", max_tokens=2)
            assert servable.adapter_names() == ["b"]
            for adapter in (None, "a", "b", "a"):
                complete(test_client, adapter, "Water", max_tokens=2)
        assert spy.call_count == 1
        assert sorted(servable.adapter_names()) == ["a", "b"]


# -- answers ------------------------------------------------------------------------------------


def test_greedy_answers_differ_per_adapter_and_match_a_plain_peft_model(client, reference):
    texts = {}
    for adapter in (None, "a", "b"):
        prompt = PROMPTS["a"]
        body = complete(client, adapter, prompt)
        assert body["object"] == "text_completion" and body["id"].startswith("cmpl-")
        assert body["model"] == model_name(adapter)
        texts[adapter] = body["choices"][0]["text"]
        assert texts[adapter] == reference(adapter, prompt)[0]
        prompt_tokens = len(reference.tokenizer(prompt)["input_ids"])
        assert body["usage"] == {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": TOKENS,
            "total_tokens": prompt_tokens + TOKENS,
        }
    assert len(set(texts.values())) == 3, texts


def test_mixed_batch_is_one_generate_and_equals_single_requests(servable, monkeypatch):
    requests = [GenerationRequest(prompt=PROMPTS[a], adapter=a, max_tokens=TOKENS) for a in (None, "a", "b")]
    singles = [servable.generate([request])[0] for request in requests]
    calls = []
    original = servable.model.generate

    def recording(*args, **kwargs):
        calls.append(kwargs.get("adapter_names"))
        return original(*args, **kwargs)

    monkeypatch.setattr(servable.model, "generate", recording)
    mixed = servable.generate(requests)
    assert calls == [None]  # one generate, rows stacked by polyadapt.row_adapters, not PEFT's loop
    assert mixed == singles
    assert len({r.text for r in mixed}) == 3


def test_concurrent_http_requests_for_different_adapters_share_one_batch(app, servable, reference, monkeypatch):
    batcher = app.state.registry.bases[BASE].batcher_for("generate")
    monkeypatch.setattr(batcher, "batch_wait", 0.5)
    batches = spy_generate(monkeypatch, servable)

    async def ask_all():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            replies = await asyncio.gather(
                *(
                    http.post(
                        "/v1/completions",
                        json={"model": model_name(a), "prompt": PROMPTS[a], "max_tokens": TOKENS, "temperature": 0},
                    )
                    for a in (None, "a", "b")
                )
            )
        await app.state.registry.close()
        return replies

    replies = asyncio.run(ask_all())
    assert [r.status_code for r in replies] == [200, 200, 200]
    assert len(batches) == 1
    assert sorted(str(r.adapter) for r in batches[0]) == ["None", "a", "b"]
    for adapter, reply in zip((None, "a", "b"), replies):
        assert reply.json()["choices"][0]["text"] == reference(adapter, PROMPTS[adapter])[0]


def test_concurrent_requests_from_threads_are_batched(client, app, servable, reference, monkeypatch):
    monkeypatch.setattr(app.state.registry.bases[BASE].batcher_for("generate"), "batch_wait", 0.5)
    batches = spy_generate(monkeypatch, servable)
    answers: dict = {}

    def ask(adapter):
        answers[adapter] = complete(client, adapter, PROMPTS[adapter])["choices"][0]["text"]

    threads = [threading.Thread(target=ask, args=(a,)) for a in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(batches) == 1 and {r.adapter for r in batches[0]} == {"a", "b"}
    assert answers == {a: reference(a, PROMPTS[a])[0] for a in ("a", "b")}


def test_chat_returns_the_assistant_message(client, reference):
    messages = [{"role": "user", "content": "What does the Solvanta rider cover?"}]
    response = client.post(
        "/v1/chat/completions",
        json={
            "model": f"{BASE}:a",
            "messages": messages,
            "max_tokens": 6,
            "temperature": 0,
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    from polyadapt_text.data import render_chat

    rendered = render_chat(reference.tokenizer, messages, add_generation_prompt=True)
    ids = reference.tokenizer(rendered, add_special_tokens=False)["input_ids"]
    assert choice["message"]["content"] == reference("a", ids=ids, max_new_tokens=6)[0]
    assert body["usage"]["prompt_tokens"] == len(ids)


def test_max_tokens_is_honoured(client, reference):
    body = complete(client, "a", PROMPTS["a"], max_tokens=3)
    choice = body["choices"][0]
    _, tokens = reference("a", PROMPTS["a"])
    assert body["usage"]["completion_tokens"] == 3 and choice["finish_reason"] == "length"
    assert choice["text"] == reference.tokenizer.decode(tokens[:3], skip_special_tokens=True)


def test_max_tokens_is_per_request_inside_one_batch(servable, reference):
    short = GenerationRequest(prompt=PROMPTS["a"], adapter="a", max_tokens=3)
    long = GenerationRequest(prompt=PROMPTS["b"], adapter="b", max_tokens=TOKENS)
    first, second = servable.generate([short, long])
    _, tokens = reference("a", PROMPTS["a"])
    assert (first.completion_tokens, first.finish_reason) == (3, "length")
    assert first.text == reference.tokenizer.decode(tokens[:3], skip_special_tokens=True)
    assert (second.text, second.completion_tokens) == (reference("b", PROMPTS["b"])[0], TOKENS)


def _a_stop_string(text: str) -> str:
    """A short piece of ``text`` whose first occurrence is not at the start."""
    for size in (3, 2, 1):
        for start in range(len(text) - size, 0, -1):
            piece = text[start : start + size]
            if "\ufffd" not in piece and text.find(piece) > 0:
                return piece
    raise AssertionError(f"no usable stop string in {text!r}")


def test_stop_strings_cut_the_text(client, reference):
    full = reference("b", PROMPTS["b"])[0]
    stop = _a_stop_string(full)
    body = complete(client, "b", PROMPTS["b"], stop=[stop, "never-generated"])
    choice = body["choices"][0]
    assert choice["text"] == full[: full.find(stop)]
    assert choice["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] <= TOKENS
    single = complete(client, "b", PROMPTS["b"], stop=stop)  # a bare string works too
    assert single["choices"][0]["text"] == choice["text"]


def test_generation_stops_early_once_every_row_is_done():
    requests = [
        GenerationRequest(prompt="p", max_tokens=5),
        GenerationRequest(prompt="p", max_tokens=50, stop=["7"]),
        GenerationRequest(prompt="p", max_tokens=50),
    ]
    stops = RowStops(requests, prompt_width=2, eos_ids={0}, decode=lambda ids: "".join(map(str, ids)))
    step = lambda *new: torch.tensor([[9, 9, *row] for row in new])  # noqa: E731
    assert stops(step([1], [1], [1])).tolist() == [False, False, False]
    assert stops(step([1, 2, 3, 4, 5], [1, 2, 7, 4, 5], [1, 2, 3, 4, 0])).tolist() == [True, True, True]


def test_stop_after_content_ends_at_the_line_after_a_leading_line_break():
    """Line completion: the line break and indent the model writes first do not stop it."""
    vocab = {1: "\n", 2: "    ", 3: "return", 4: " x", 5: "y"}
    decode = lambda ids: "".join(vocab[i] for i in ids)  # noqa: E731
    tokens = [1, 2, 3, 4, 1, 5, 5]
    line = GenerationRequest(prompt="p", max_tokens=20, stop=["\n"], stop_after_content=True)
    plain = GenerationRequest(prompt="p", max_tokens=20, stop=["\n"])
    result = finish_row(tokens, line, eos_ids={0}, decode=decode)
    assert (result.text, result.completion_tokens, result.finish_reason) == ("\n    return x", 5, "stop")
    assert finish_row(tokens, plain, eos_ids={0}, decode=decode).text == ""
    stops = RowStops([line], prompt_width=1, eos_ids={0}, decode=decode)
    row = lambda *new: torch.tensor([[9, *new]])  # noqa: E731
    assert stops(row(1, 2, 3, 4)).tolist() == [False]
    assert stops(row(1, 2, 3, 4, 1)).tolist() == [True]


def test_prompt_list_gives_one_choice_per_prompt(client, reference):
    prompts = [PROMPTS["a"], PROMPTS["b"]]
    body = complete(client, "a", prompts, max_tokens=4)
    assert [c["index"] for c in body["choices"]] == [0, 1]
    assert [c["text"] for c in body["choices"]] == [reference("a", p, max_new_tokens=4)[0] for p in prompts]
    assert body["usage"]["completion_tokens"] == 8


def test_seeded_sampling_is_reproducible_inside_a_mixed_batch(servable):
    sampled = GenerationRequest(prompt="Water", adapter="a", max_tokens=8, temperature=0.9, seed=11)
    alone = servable.generate([sampled])[0]
    other = GenerationRequest(prompt="Hello", adapter="b", max_tokens=8, temperature=0.9, seed=3)
    greedy = GenerationRequest(prompt="Water", max_tokens=4)
    mixed = servable.generate([greedy, sampled, other])
    assert mixed[1] == alone
    assert mixed[0] == servable.generate([greedy])[0]


def test_dora_adapters_are_served_one_adapter_at_a_time(tiny_llama, runs, reference, tmp_path):
    """PEFT's mixed batch refuses DoRA; such a batch is split per adapter and still correct."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    save_random_adapter(tiny_llama, tmp_path / "dora", seed=5, use_dora=True)
    (spec,) = serve_specs(plugin_manager(), [runs["a"]])
    spec.adapters["d"] = tmp_path / "dora"
    servable = text_serve.TextServable(spec)
    requests = [
        GenerationRequest(prompt=PROMPTS[None], max_tokens=6),
        GenerationRequest(prompt=PROMPTS["a"], adapter="d", max_tokens=6),
        GenerationRequest(prompt=PROMPTS["b"], adapter="a", max_tokens=6),
    ]
    mixed = servable.generate(requests)
    assert mixed == [servable.generate([r])[0] for r in requests]
    dora = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32), str(tmp_path / "dora")
    )
    ids = torch.tensor([reference.tokenizer(PROMPTS["a"])["input_ids"]])
    expected = dora.eval().generate(
        input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False
    )
    assert mixed[1].text == reference.tokenizer.decode(expected[0, ids.shape[1] :], skip_special_tokens=True)
    assert mixed[0].text == reference(None, PROMPTS[None], max_new_tokens=6)[0]
    assert mixed[2].text == reference("a", PROMPTS["b"], max_new_tokens=6)[0]


# -- errors -------------------------------------------------------------------------------------


def assert_openai_error(response, status: int) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def test_unknown_model_is_404_listing_the_known_models(client):
    for path, body in (
        ("/v1/completions", {"prompt": "hi"}),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}),
    ):
        error = assert_openai_error(client.post(path, json={"model": f"{BASE}:nope", **body}), 404)
        assert error["code"] == "model_not_found" and error["param"] == "model"
        assert f"{BASE}:a" in error["message"] and f"{BASE}:b" in error["message"]
    assert_openai_error(client.get("/v1/models/other"), 404)


@pytest.mark.parametrize(
    "body, param",
    [
        ({"model": BASE}, "prompt"),
        ({"model": BASE, "prompt": "hi", "n": 0}, "n"),
        ({"model": BASE, "prompt": "hi", "temperature": 5}, "temperature"),
        ({"model": BASE, "prompt": "hi", "stream": "sometimes"}, "stream"),
        ({"model": BASE, "prompt": [1, 2]}, "prompt"),
        ({"prompt": "hi"}, "model"),
    ],
)
def test_bad_body_is_400_in_openai_shape(client, body, param):
    error = assert_openai_error(client.post("/v1/completions", json=body), 400)
    assert error["param"] == param and error["type"] == "invalid_request_error"


def test_invalid_json_is_400(client):
    response = client.post("/v1/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert "not valid JSON" in assert_openai_error(response, 400)["message"]


def test_chat_rejects_an_unknown_role(client):
    body = {"model": BASE, "messages": [{"role": "wizard", "content": "hi"}]}
    assert assert_openai_error(client.post("/v1/chat/completions", json=body), 400)["param"] == "messages.0.role"


# -- run folders ------------------------------------------------------------------------------


def test_run_folders_are_checked(tmp_path, tiny_llama, runs):
    pm = plugin_manager()
    with pytest.raises(PolyadaptError, match="not a run folder"):
        serve_specs(pm, [tmp_path])
    unfinished = make_run_folder(tmp_path, tiny_llama, "unfinished", seed=0, adapter=False)
    with pytest.raises(PolyadaptError, match="no adapter"):
        serve_specs(pm, [unfinished])
    clash = make_run_folder(tmp_path, tiny_llama, "clash", seed=3, adapter_name="a")
    with pytest.raises(PolyadaptError, match="both serve adapter tiny-llama:a"):
        serve_specs(pm, [runs["a"], clash])


def test_runs_on_one_base_share_one_spec(runs, tiny_llama):
    (spec,) = serve_specs(plugin_manager(), [runs["a"], runs["b"], runs["a"]])
    assert spec.base_name == BASE and spec.base_model == str(tiny_llama)
    assert spec.adapters == {"a": runs["a"].resolve() / "adapter", "b": runs["b"].resolve() / "adapter"}


# -- the batcher on its own (no model) ---------------------------------------------------------


class FakeServable:
    """Echoes prompts; fails on prompts that say "boom"; records every batch."""

    base_name = "fake"

    def __init__(self):
        self.batches: list[list[GenerationRequest]] = []
        self.loaded: list[str] = []

    def load_adapter(self, name, path):
        if name == "broken":
            raise PolyadaptError("cannot load broken")
        self.loaded.append(name)

    def adapter_names(self):
        return list(self.loaded)

    def generate(self, requests):
        self.batches.append(list(requests))
        if any(r.prompt == "boom" for r in requests):
            raise PolyadaptError("boom")
        time.sleep(0.01)
        return [GenerationResult(f"{r.adapter}:{r.prompt}", 1, 1) for r in requests]


def test_batcher_respects_max_batch_and_isolates_failures():
    fake = FakeServable()
    batcher = MicroBatcher(fake, {"x": Path("x"), "broken": Path("b")}, max_batch=2, batch_wait_ms=200)

    async def scenario():
        asks = [
            batcher.submit([GenerationRequest(prompt=p, adapter=a)])
            for p, a in (("1", None), ("2", "x"), ("boom", None), ("3", "broken"))
        ]
        outcomes = await asyncio.gather(*asks, return_exceptions=True)
        await batcher.close()
        return outcomes

    started = time.monotonic()
    outcomes = asyncio.run(scenario())
    assert time.monotonic() - started < 1.0  # a full batch does not wait out batch_wait_ms
    assert [o[0].text for o in outcomes[:2]] == ["None:1", "x:2"]
    assert isinstance(outcomes[2], PolyadaptError) and isinstance(outcomes[3], PolyadaptError)
    assert [len(batch) for batch in fake.batches] == [2, 1]  # "broken" never reaches generate
    assert fake.loaded == ["x"]


def test_build_app_serves_a_servable_directly():
    application = build_app({"fake": FakeServable()}, adapters={"fake": {"x": Path("x")}}, batch_wait_ms=0)
    with TestClient(application) as test_client:
        reply = test_client.post("/v1/completions", json={"model": "fake:x", "prompt": "hi"})
        assert reply.json()["choices"][0]["text"] == "x:hi"
        bad = test_client.post("/v1/completions", json={"model": "fake", "prompt": "boom"})
        assert assert_openai_error(bad, 400)["message"] == "boom"
    with pytest.raises(PolyadaptError, match="max-batch"):
        build_app({"fake": FakeServable()}, max_batch=0)
