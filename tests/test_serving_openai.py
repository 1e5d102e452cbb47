"""OpenAI compatibility of ``polyadapt serve``, through the official ``openai`` client against a
real server (uvicorn in a thread): streaming, n, logprobs, echo, penalties and bias, embeddings,
and a 400 naming every option that is not supported.

The tiny Llama and its two random LoRA adapters come from ``test_serving``; answers are checked
against a plain ``transformers`` + PEFT model.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")
torch = pytest.importorskip("torch")
pytest.importorskip("peft")
uvicorn = pytest.importorskip("uvicorn")

import httpx  # noqa: E402
from test_serving import (  # noqa: E402
    BASE,
    PROMPTS,
    TOKENS,
    _a_stop_string,
    model_name,
    plugin_manager,
    reference,  # noqa: F401  (a fixture)
    runs,  # noqa: F401  (a fixture)
)

from polyadapt.serving.app import build_app, build_app_from_runs, build_app_from_specs, serve_specs  # noqa: E402
from polyadapt.serving.openai_compat import Plan, choice_seed  # noqa: E402
from polyadapt.serving.streaming import StreamWriter, held_back, sendable  # noqa: E402
from polyadapt.types import GenerationRequest, GenerationResult, TokenStep  # noqa: E402

# -- a real server --------------------------------------------------------------------------


@contextlib.contextmanager
def serving(app) -> Iterator[str]:
    """Run ``app`` with uvicorn in a thread on a free port; yields the ``/v1`` base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture(scope="module")
def app(runs):  # noqa: F811
    """Both adapters on the tiny Llama, no serving policy (as ``build_app`` in code): live streams."""
    pm = plugin_manager()
    return build_app_from_specs(pm, serve_specs(pm, [runs["a"], runs["b"]]), max_batch=8, batch_wait_ms=5.0)


@pytest.fixture(scope="module")
def servable(app):
    return app.state.registry.bases[BASE].servable


@pytest.fixture(scope="module")
def base_url(app) -> Iterator[str]:
    with serving(app) as url:
        yield url


@pytest.fixture(scope="module")
def client(base_url):
    return openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def plain(tiny_llama, runs):  # noqa: F811
    """A plain PEFT model per adapter (None: the base), for direct forward passes."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    cache: dict = {}

    def model(adapter: str | None):
        if adapter not in cache:
            loaded = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
            if adapter is not None:
                loaded = PeftModel.from_pretrained(loaded, str(runs[adapter] / "adapter"))
            cache[adapter] = loaded.eval()
        return cache[adapter]

    return model


def completion(client, adapter: str | None = "a", prompt: str | list[str] = PROMPTS["a"], **params):
    params = {"max_tokens": TOKENS, "temperature": 0, **params}
    return client.completions.create(model=model_name(adapter), prompt=prompt, **params)


def chat(client, adapter: str | None = "a", content: str = "What does the Solvanta rider cover?", **params):
    params = {"max_tokens": 8, "temperature": 0, **params}
    messages = [{"role": "user", "content": content}]
    return client.chat.completions.create(model=model_name(adapter), messages=messages, **params)


def collect(stream) -> tuple[dict[int, str], list, dict[int, str | None]]:
    """(text per choice, every chunk, finish_reason per choice) of a completions or chat stream."""
    texts: dict[int, str] = {}
    finish: dict[int, str | None] = {}
    chunks = list(stream)
    for chunk in chunks:
        for choice in chunk.choices:
            piece = choice.text if chunk.object == "text_completion" else (choice.delta.content or "")
            texts[choice.index] = texts.get(choice.index, "") + piece
            if choice.finish_reason is not None:
                assert choice.index not in finish, "a choice finished twice"
                finish[choice.index] = choice.finish_reason
    return texts, chunks, finish


# -- non-streaming: unchanged answers ----------------------------------------------------------


def test_completions_answer_as_before(client, reference):  # noqa: F811
    for adapter in (None, "a", "b"):
        answer = completion(client, adapter, PROMPTS[adapter])
        assert answer.object == "text_completion" and answer.model == model_name(adapter)
        (choice,) = answer.choices
        assert choice.text == reference(adapter, PROMPTS[adapter])[0]
        assert choice.logprobs is None and choice.finish_reason == "length"
        prompt_tokens = len(reference.tokenizer(PROMPTS[adapter])["input_ids"])
        assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (prompt_tokens, TOKENS)


def test_chat_answers_as_before(client, reference):  # noqa: F811
    from polyadapt_text.data import render_chat

    messages = [{"role": "user", "content": "What does the Solvanta rider cover?"}]
    answer = chat(client, "b", max_tokens=6)
    rendered = render_chat(reference.tokenizer, messages, add_generation_prompt=True)
    ids = reference.tokenizer(rendered, add_special_tokens=False)["input_ids"]
    assert answer.object == "chat.completion"
    assert answer.choices[0].message.content == reference("b", ids=ids, max_new_tokens=6)[0]
    assert answer.choices[0].message.role == "assistant" and answer.usage.prompt_tokens == len(ids)


# -- streaming ---------------------------------------------------------------------------------


def test_streamed_completion_is_the_non_streamed_text_token_by_token(client, base_url):
    for adapter in (None, "a", "b"):
        whole = completion(client, adapter, PROMPTS[adapter])
        stream = completion(client, adapter, PROMPTS[adapter], stream=True, stream_options={"include_usage": True})
        texts, chunks, finish = collect(stream)
        assert texts == {0: whole.choices[0].text}
        assert finish == {0: whole.choices[0].finish_reason}
        assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("cmpl-")
        assert all(c.object == "text_completion" and c.model == model_name(adapter) for c in chunks)
        # live: one chunk per token or so, not the whole text at the end
        assert sum(1 for c in chunks if c.choices and c.choices[0].text) >= TOKENS // 2
        *body, last = chunks
        assert last.choices == [] and last.usage == whole.usage  # include_usage: a final usage chunk
        assert all(c.usage is None for c in body)
        assert body[-1].choices[0].finish_reason == "length" and body[-1].choices[0].text == ""
    raw = httpx.post(
        f"{base_url}/completions",
        json={"model": BASE, "prompt": "Water", "max_tokens": 3, "temperature": 0, "stream": True},
    )
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert raw.headers["x-polyadapt-stream"] == "live"
    events = [line for line in raw.text.split("\n\n") if line]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    assert all("usage" not in json.loads(e[6:]) for e in events[:-1])  # no include_usage: no usage field


def test_streamed_chat_is_the_non_streamed_message(client):
    whole = chat(client, "a", max_tokens=10)
    texts, chunks, finish = collect(chat(client, "a", max_tokens=10, stream=True))
    assert texts == {0: whole.choices[0].message.content}
    assert finish == {0: whole.choices[0].finish_reason}
    assert chunks[0].object == "chat.completion.chunk" and chunks[0].id.startswith("chatcmpl-")
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[0].choices[0].delta.content == ""
    assert chunks[-1].choices[0].delta.content is None and chunks[-1].usage is None


def test_stop_strings_cut_streams_as_they_cut_answers(client, reference):  # noqa: F811
    full = reference("b", PROMPTS["b"])[0]
    stop = _a_stop_string(full)
    whole = completion(client, "b", PROMPTS["b"], stop=[stop, "never-generated"])
    assert whole.choices[0].text == full[: full.find(stop)] and whole.choices[0].finish_reason == "stop"
    texts, chunks, finish = collect(completion(client, "b", PROMPTS["b"], stop=[stop, "never-generated"], stream=True))
    assert texts == {0: whole.choices[0].text} and finish == {0: "stop"}
    sent = ""
    for chunk in chunks:  # no prefix of what was sent ever reached into the stop string
        sent += chunk.choices[0].text
        assert full.startswith(sent) and len(sent) <= full.find(stop)


def test_text_that_may_begin_a_stop_string_is_held_back():
    request = GenerationRequest(prompt="p", stop=["STOP", "xyz"])
    assert held_back("Hello ST", request.stop) == 2
    assert held_back("Hello x", request.stop) == 1
    assert held_back("Hello\ufffd", request.stop) == 1  # a character still being written
    assert held_back("Hello \n", request.stop) == 2  # blanks wait for what follows them
    assert sendable("Hello STO", request) == "Hello "
    assert sendable("Hello STOP and more", request) == "Hello "
    plan = Plan("completions", [request], n=1, prompts=["p"])
    writer = StreamWriter(plan, "m")
    sent = []
    for text in ("Hel", "Hello S", "Hello ST", "Hello STOP", "Hello STOP more"):
        for event in writer.step(0, TokenStep(text=text, tokens=1)):
            sent.append(json.loads(event[6:])["choices"][0]["text"])
    assert "".join(sent) == "Hello " and "S" not in "".join(sent)
    events = writer.finish([GenerationResult("Hello ", 1, 4, "stop")])
    finals = [json.loads(e[6:])["choices"][0] for e in events]
    assert [f["text"] for f in finals] == [""] and finals[-1]["finish_reason"] == "stop"


def test_streamed_text_grows_as_whole_decoding_does(servable):
    """The streamer decodes a few tokens per step; its text is always a prefix of decoding the
    whole row, and all of it once the last character is complete (random ids: broken bytes too)."""
    from polyadapt_text.tokens import IncrementalText

    generator = torch.Generator().manual_seed(0)
    for _ in range(30):
        ids = torch.randint(0, len(servable.tokenizer), (40,), generator=generator).tolist()
        text = IncrementalText(servable.decode)
        for k in range(1, len(ids) + 1):
            whole = servable.decode(ids[:k])
            so_far = text(ids[:k])
            assert whole.startswith(so_far)
            assert so_far == whole or whole.endswith("\ufffd")


def test_an_error_before_the_first_token_is_an_ordinary_error(client):
    with pytest.raises(openai.BadRequestError) as caught:
        completion(client, "a", "Hello " * 50, max_tokens=500, stream=True)
    assert "max_tokens" in caught.value.message


def test_an_error_after_the_first_token_is_an_error_event(client, servable, monkeypatch):
    def failing(requests):
        for request in requests:
            request.on_token(TokenStep(text="Hel", tokens=1))
        raise RuntimeError("the accelerator fell over")

    monkeypatch.setattr(servable, "generate", failing)
    stream = completion(client, "a", stream=True)
    first = next(iter(stream))
    assert first.choices[0].text == "Hel"
    with pytest.raises(openai.APIError, match="the accelerator fell over"):
        list(stream)
    monkeypatch.undo()
    assert completion(client, "a", max_tokens=2).choices[0].text  # the server answers on


def test_a_client_that_leaves_stops_its_row(client, servable, monkeypatch):
    results: list[GenerationResult] = []
    original = servable.generate

    def recording(requests):
        answers = original(requests)
        results.extend(answers)
        return answers

    monkeypatch.setattr(servable, "generate", recording)
    eos = servable.tokenizer.eos_token_id
    stream = completion(client, "a", max_tokens=400, stream=True, logit_bias={str(eos): -100})
    next(iter(stream))
    stream.close()
    deadline = time.monotonic() + 60
    while not results:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert results[0].completion_tokens < 400


# -- n -------------------------------------------------------------------------------------------


def test_n_choices_with_a_seed_are_reproducible_and_seeded_per_choice(client):
    params = {"temperature": 1.0, "seed": 5, "max_tokens": 8}
    first = completion(client, "a", n=3, **params)
    again = completion(client, "a", n=3, **params)
    assert [c.index for c in first.choices] == [0, 1, 2]
    assert [c.text for c in first.choices] == [c.text for c in again.choices]
    assert len({c.text for c in first.choices}) > 1  # each choice its own draw
    singles = [completion(client, "a", **{**params, "seed": choice_seed(5, i)}).choices[0].text for i in range(3)]
    assert [c.text for c in first.choices] == singles
    single = completion(client, "a", **params)
    assert first.usage.prompt_tokens == single.usage.prompt_tokens  # the prompt counted once
    assert first.usage.completion_tokens == sum(
        completion(client, "a", **{**params, "seed": choice_seed(5, i)}).usage.completion_tokens for i in range(3)
    )


def test_n_with_a_prompt_list_indexes_prompt_by_prompt(client, reference):  # noqa: F811
    prompts = [PROMPTS["a"], PROMPTS["b"]]
    answer = completion(client, "a", prompts, n=2, max_tokens=4)
    assert [c.index for c in answer.choices] == [0, 1, 2, 3]
    expected = [reference("a", p, max_new_tokens=4)[0] for p in prompts]
    assert [c.text for c in answer.choices] == [expected[0], expected[0], expected[1], expected[1]]
    counts = [len(reference.tokenizer(p)["input_ids"]) for p in prompts]
    assert answer.usage.prompt_tokens == sum(counts) and answer.usage.completion_tokens == 16


def test_n_streams_every_choice_by_index(client):
    params = {"temperature": 0.9, "seed": 11, "max_tokens": 8, "n": 2}
    whole = completion(client, "b", PROMPTS["b"], **params)
    texts, _, finish = collect(completion(client, "b", PROMPTS["b"], stream=True, **params))
    assert texts == {c.index: c.text for c in whole.choices} and set(finish) == {0, 1}
    chats = chat(client, "b", **params)
    chat_texts, _, _ = collect(chat(client, "b", stream=True, **params))
    assert [c.index for c in chats.choices] == [0, 1]
    assert chat_texts == {c.index: c.message.content for c in chats.choices}


# -- logprobs and echo ----------------------------------------------------------------------------


def _direct_logprobs(model, ids: list[int]) -> torch.Tensor:
    """log-softmax of a plain forward over ``ids``: row i is the distribution of token i + 1."""
    with torch.no_grad():
        return torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), dim=-1)


def test_completion_logprobs_are_the_models(client, reference, plain):  # noqa: F811
    answer = completion(client, "a", PROMPTS["a"], logprobs=3, max_tokens=8)
    logprobs = answer.choices[0].logprobs
    prompt_ids = reference.tokenizer(PROMPTS["a"])["input_ids"]
    _, generated = reference("a", PROMPTS["a"], max_new_tokens=8)
    assert len(logprobs.tokens) == len(logprobs.token_logprobs) == len(logprobs.top_logprobs) == 8
    direct = _direct_logprobs(plain("a"), prompt_ids + generated)
    for i, token in enumerate(generated):
        top = logprobs.top_logprobs[i]
        assert len(top) == 3
        assert logprobs.token_logprobs[i] == pytest.approx(max(top.values()), abs=1e-5)  # greedy: the likeliest
        assert logprobs.token_logprobs[i] == pytest.approx(direct[len(prompt_ids) - 1 + i, token].item(), abs=1e-4)
    assert logprobs.text_offset[0] == len(PROMPTS["a"])  # offsets count from the prompt's start
    assert logprobs.text_offset == sorted(logprobs.text_offset)


def test_chat_logprobs_have_openais_shape(client, reference):  # noqa: F811
    answer = chat(client, "a", logprobs=True, top_logprobs=2, max_tokens=6)
    content = answer.choices[0].logprobs.content
    assert len(content) == answer.usage.completion_tokens - (answer.choices[0].finish_reason == "stop")
    text = b"".join(bytes(entry.bytes) for entry in content).decode("utf-8", errors="replace")
    assert text == answer.choices[0].message.content
    for entry in content:
        assert len(entry.top_logprobs) == 2 and entry.top_logprobs[0].logprob >= entry.top_logprobs[1].logprob
        assert entry.logprob == pytest.approx(entry.top_logprobs[0].logprob, abs=1e-5)
    plain_answer = chat(client, "a", max_tokens=6)
    assert plain_answer.choices[0].logprobs is None
    assert plain_answer.choices[0].message.content == answer.choices[0].message.content


def test_echo_returns_the_prompt_and_its_logprobs(client, reference, plain):  # noqa: F811
    answer = completion(client, "b", PROMPTS["b"], echo=True, logprobs=1, max_tokens=4)
    choice = answer.choices[0]
    generated_text, generated = reference("b", PROMPTS["b"], max_new_tokens=4)
    assert choice.text == PROMPTS["b"] + generated_text
    prompt_ids = reference.tokenizer(PROMPTS["b"])["input_ids"]
    logprobs = choice.logprobs
    assert len(logprobs.tokens) == len(prompt_ids) + 4
    assert logprobs.token_logprobs[0] is None and logprobs.top_logprobs[0] is None and logprobs.text_offset[0] == 0
    direct = _direct_logprobs(plain("b"), prompt_ids + generated)
    for i in range(1, len(prompt_ids) + 4):
        assert logprobs.token_logprobs[i] == pytest.approx(direct[i - 1, (prompt_ids + generated)[i]].item(), abs=1e-4)
    echoed, _, _ = collect(completion(client, "b", PROMPTS["b"], echo=True, max_tokens=4, stream=True))
    assert echoed == {0: choice.text}


def test_streamed_logprobs_are_the_non_streamed_ones(client):
    whole = completion(client, "a", PROMPTS["a"], logprobs=2, max_tokens=8).choices[0].logprobs
    tokens, values, offsets = [], [], []
    for chunk in completion(client, "a", PROMPTS["a"], logprobs=2, max_tokens=8, stream=True):
        if chunk.choices and chunk.choices[0].logprobs is not None:
            tokens += chunk.choices[0].logprobs.tokens
            values += chunk.choices[0].logprobs.token_logprobs
            offsets += chunk.choices[0].logprobs.text_offset
    assert tokens == whole.tokens and offsets == whole.text_offset
    assert values == pytest.approx(whole.token_logprobs, abs=1e-5)
    content = []
    for chunk in chat(client, "a", logprobs=True, max_tokens=6, stream=True):
        if chunk.choices and chunk.choices[0].logprobs is not None:
            content += chunk.choices[0].logprobs.content
    assert [c.token for c in content] == [
        c.token for c in chat(client, "a", logprobs=True, max_tokens=6).choices[0].logprobs.content
    ]


# -- penalties and bias ----------------------------------------------------------------------------


def test_penalties_follow_openais_definition(client, reference, plain):  # noqa: F811
    frequency, presence, steps = -1.5, -0.7, 10  # negative: repetition, which a random model lacks
    prompt_ids = reference.tokenizer(PROMPTS["a"])["input_ids"]
    ids, generated = list(prompt_ids), []
    for _ in range(steps):  # greedy with logit[j] -= count[j] * frequency + (count[j] > 0) * presence
        logits = _direct_logprobs(plain("a"), ids)[-1]  # a shift per row does not change the argmax
        counts = torch.bincount(torch.tensor(generated, dtype=torch.long), minlength=logits.shape[0]).float()
        token = int((logits - counts * frequency - (counts > 0).float() * presence).argmax())
        generated.append(token)
        ids.append(token)
    eos = reference.tokenizer.eos_token_id
    cut = generated.index(eos) if eos in generated else steps
    answer = completion(client, "a", frequency_penalty=frequency, presence_penalty=presence, max_tokens=steps)
    assert answer.choices[0].text == reference.tokenizer.decode(generated[:cut], skip_special_tokens=True)
    assert answer.choices[0].text != completion(client, "a", max_tokens=steps).choices[0].text


def test_logit_bias_forces_a_token(client, reference):  # noqa: F811
    token = reference.tokenizer(" the", add_special_tokens=False)["input_ids"][0]
    answer = completion(client, "b", PROMPTS["b"], logit_bias={str(token): 100}, max_tokens=5)
    assert answer.choices[0].text == reference.tokenizer.decode([token] * 5)
    with pytest.raises(openai.BadRequestError, match="logit_bias"):
        completion(client, "b", logit_bias={"99999": 5})


# -- embeddings --------------------------------------------------------------------------------------


def test_embeddings_are_mean_pooled_normalised_and_per_adapter(client, plain, reference):  # noqa: F811
    texts = ["The policyholder filed a claim.", "Water boils at one hundred degrees."]
    base = client.embeddings.create(model=BASE, input=texts)  # the client asks for base64 by default
    floats = client.embeddings.create(model=BASE, input=texts, encoding_format="float")
    adapted = client.embeddings.create(model=f"{BASE}:a", input=texts[0])
    width = plain(None).config.hidden_size
    assert [d.index for d in base.data] == [0, 1] and all(len(d.embedding) == width for d in base.data)
    for item in base.data:
        assert sum(v * v for v in item.embedding) == pytest.approx(1.0, abs=1e-5)
    for item, same in zip(base.data, floats.data):
        assert same.embedding == pytest.approx(item.embedding, abs=1e-6)
    assert base.usage.prompt_tokens == sum(len(reference.tokenizer(t)["input_ids"]) for t in texts)
    assert adapted.data[0].embedding != pytest.approx(base.data[0].embedding, abs=1e-3)
    for adapter, answer in ((None, base.data[0].embedding), ("a", adapted.data[0].embedding)):
        ids = torch.tensor([reference.tokenizer(texts[0])["input_ids"]])
        with torch.no_grad():
            hidden = plain(adapter)(input_ids=ids, output_hidden_states=True).hidden_states[-1][0]
        expected = torch.nn.functional.normalize(hidden.mean(dim=0), dim=-1)
        assert answer == pytest.approx(expected.tolist(), abs=1e-4)


def test_embeddings_raw_base64_and_refusals(base_url, client):
    raw = httpx.post(f"{base_url}/embeddings", json={"model": BASE, "input": "hello", "encoding_format": "base64"})
    encoded = raw.json()["data"][0]["embedding"]
    vector = struct.unpack(f"<{len(base64.b64decode(encoded)) // 4}f", base64.b64decode(encoded))
    assert sum(v * v for v in vector) == pytest.approx(1.0, abs=1e-5)
    for bad, param in (([1, 2, 3], "input"), ([], "input"), ("", None)):
        with pytest.raises(openai.BadRequestError) as caught:
            client.embeddings.create(model=BASE, input=bad)
        assert "input" in caught.value.message
        if param:
            assert caught.value.body["param"] == param
    with pytest.raises(openai.BadRequestError, match="dimensions"):
        client.embeddings.create(model=BASE, input="hello", dimensions=3)


def test_a_base_without_embeddings_is_a_400_naming_it():
    class NoEmbeddings:
        base_name = "plain"

        def load_adapter(self, name, path):
            pass

        def adapter_names(self):
            return []

        def generate(self, requests):
            return [GenerationResult(r.prompt or "", 1, 1) for r in requests]

    from fastapi.testclient import TestClient

    with TestClient(build_app({"plain": NoEmbeddings()}, batch_wait_ms=0)) as http:
        reply = http.post("/v1/embeddings", json={"model": "plain", "input": "hi"})
        assert reply.status_code == 400 and "'plain' does not offer embeddings" in reply.json()["error"]["message"]
        # options the servable does not declare are refused, not ignored
        for option in ({"logprobs": 2}, {"echo": True}, {"frequency_penalty": 1.0}):
            reply = http.post("/v1/completions", json={"model": "plain", "prompt": "hi", **option})
            assert reply.status_code == 400 and reply.json()["error"]["param"] == next(iter(option))
        streamed = http.post("/v1/completions", json={"model": "plain", "prompt": "hi", "stream": True})
        assert streamed.status_code == 200 and '"text": "hi"' in streamed.text  # whole, at the end


# -- options that are not supported --------------------------------------------------------------------


@pytest.mark.parametrize(
    "endpoint, options, param",
    [
        ("chat", {"response_format": {"type": "json_object"}}, "response_format"),
        (
            "chat",
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}},
            "response_format",
        ),
        ("chat", {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
        ("chat", {"tool_choice": "required"}, "tool_choice"),
        ("chat", {"top_logprobs": 2}, "top_logprobs"),
        ("chat", {"reasoning_effort": "high"}, "reasoning_effort"),
        ("chat", {"modalities": ["text", "audio"]}, "modalities"),
        ("chat", {"stream_options": {"include_usage": True}}, "stream_options"),
        ("chat", {"extra_body": {"top_k": 5}}, "top_k"),
        ("chat", {"top_logprobs": 21, "logprobs": True}, "top_logprobs"),
        ("completions", {"best_of": 3}, "best_of"),
        ("completions", {"logprobs": 6}, "logprobs"),
        ("completions", {"echo": True, "suffix": "x"}, "echo"),
        ("completions", {"n": 17}, "n"),
        ("completions", {"presence_penalty": 3}, "presence_penalty"),
        ("completions", {"extra_body": {"repetition_penalty": 1.2}}, "repetition_penalty"),
    ],
)
def test_unsupported_options_are_a_400_naming_them(client, endpoint, options, param):
    with pytest.raises(openai.BadRequestError) as caught:
        if endpoint == "chat":
            chat(client, "a", max_tokens=2, **options)
        else:
            completion(client, "a", max_tokens=2, **options)
    assert param in caught.value.message and caught.value.body["param"] == param


def test_harmless_options_are_accepted(client):
    answer = chat(
        client,
        "a",
        max_tokens=3,
        user="someone",
        response_format={"type": "text"},
        tool_choice="none",
        store=False,
        metadata={"team": "claims"},
    )
    assert answer.choices[0].message.content == chat(client, "a", max_tokens=3).choices[0].message.content
    assert completion(client, "a", max_tokens=2, best_of=1, user="x").choices[0].text


# -- the serving policy ---------------------------------------------------------------------------------


def test_a_policy_that_scans_outputs_streams_only_scanned_text(runs, monkeypatch, tmp_path):  # noqa: F811
    """Under the default policy (outputs scanned) a stream is sent after the scan, redacted."""
    application = build_app_from_runs(plugin_manager(), [runs["a"]], batch_wait_ms=0, audit_log=tmp_path / "audit")
    servable = application.state.registry.bases[BASE].servable
    email = "jane.doe@example.com"

    def leaking(requests):
        for request in requests:
            assert request.on_token is None  # nothing is reported before the scan
        return [GenerationResult(f"write to {email} today", 3, 5, "length") for _ in requests]

    with serving(application) as url:
        sdk = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
        ask = {"model": f"{BASE}:a", "prompt": PROMPTS["a"], "max_tokens": 6, "temperature": 0}
        texts, chunks, _ = collect(sdk.completions.create(**ask, stream=True, stream_options={"include_usage": True}))
        whole = sdk.completions.create(**ask)
        assert texts == {0: whole.choices[0].text} and chunks[-1].usage == whole.usage
        monkeypatch.setattr(servable, "generate", leaking)
        raw = httpx.post(
            f"{url}/completions",
            json={"model": f"{BASE}:a", "prompt": "Who?", "max_tokens": 5, "stream": True, "logprobs": 2},
        )
        assert raw.status_code == 200 and raw.headers["x-polyadapt-stream"] == "after-policy-scan"
        assert email not in raw.text and "example.com" not in raw.text
        texts, _, _ = collect(sdk.completions.create(model=f"{BASE}:a", prompt="Who?", max_tokens=5, stream=True))
        whole = sdk.completions.create(model=f"{BASE}:a", prompt="Who?", max_tokens=5)
        assert texts == {0: whole.choices[0].text} and email not in texts[0] and texts[0].startswith("write to ")
