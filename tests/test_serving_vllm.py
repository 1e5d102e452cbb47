"""``polyadapt serve --engine vllm`` against a fake ``vllm`` package (tests/fake_vllm.py).

No GPU and no vLLM here: the fake mimics the API surface the servable uses (vLLM 0.11's
names and signatures) and records each call, so these tests check what reaches vLLM (per
request LoRA, sampling settings, engine sizes), what comes back (text, finish reasons, usage,
logprobs), what is refused, the adapter cache's loads and evictions, the start-up checks through
the CLI, and a request through the HTTP app with its keys and metrics. Whether real vLLM answers
as the fake does is benchmarks/vllm_check.py's business, on a GPU.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
torch = pytest.importorskip("torch")
pytest.importorskip("peft")

import fake_vllm  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from polyadapt_text.vllm_engine import VllmServable, engine_rank, lora_rank, max_lora_rank  # noqa: E402
from test_serving import make_run_folder, plugin_manager  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from polyadapt.cli import app as cli_app  # noqa: E402
from polyadapt.errors import PolyadaptError  # noqa: E402
from polyadapt.serving.app import build_app_from_runs, serve_specs  # noqa: E402
from polyadapt.serving.engines import check_engine  # noqa: E402
from polyadapt.serving.keys import KeyChecker, create_key  # noqa: E402
from polyadapt.serving.settings import ServeSettings  # noqa: E402
from polyadapt.task import Task  # noqa: E402
from polyadapt.types import GenerationRequest, ServeSpec  # noqa: E402

BASE = "tiny-llama"


@pytest.fixture(scope="module")
def runs(tiny_llama, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("vllm-runs")
    return {name: make_run_folder(root, tiny_llama, name, seed=seed) for name, seed in (("a", 1), ("b", 2))}


@pytest.fixture
def vllm(monkeypatch):
    """The fake vllm package installed, and torch told a CUDA device is there."""
    fake_vllm.install(monkeypatch)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    return fake_vllm


def make_servable(runs, settings: ServeSettings | None = None, **engine_args) -> VllmServable:
    (spec,) = serve_specs(plugin_manager(), [runs["a"], runs["b"]])
    spec = dataclasses.replace(spec, settings=settings or ServeSettings(engine="vllm"))
    return VllmServable(spec, engine_args=engine_args or None)


def adapter_copy(runs, tmp_path: Path, **config_changes) -> Path:
    """A copy of adapter a's folder with its adapter_config.json changed."""
    import shutil

    folder = tmp_path / "adapter"
    shutil.copytree(runs["a"] / "adapter", folder)
    config = json.loads((folder / "adapter_config.json").read_text())
    config.update(config_changes)
    (folder / "adapter_config.json").write_text(json.dumps(config))
    return folder


# -- the engine -------------------------------------------------------------------------


def test_the_llm_gets_lora_on_sized_from_settings_and_adapter_ranks(vllm, runs):
    servable = make_servable(runs, ServeSettings(engine="vllm", max_batch=4, max_adapters=6))
    (llm,) = vllm.LLM.instances
    assert Path(llm.model).is_dir() and llm.init_kwargs["tokenizer"] == llm.model  # the base's folder
    kwargs = llm.init_kwargs
    assert (kwargs["enable_lora"], kwargs["max_loras"], kwargs["max_cpu_loras"]) == (True, 4, 6)
    assert kwargs["max_lora_rank"] == 8  # the adapters' r=4, rounded up to a rank vLLM accepts
    assert kwargs["dtype"] == "float32"  # the run config's base_model.dtype, as the transformers engine loads it
    assert servable.context == 2048  # vLLM's max_model_len


def test_engine_args_reach_the_llm_and_unknown_ones_fail_as_in_vllm(vllm, runs):
    make_servable(runs, gpu_memory_utilization=0.5, max_model_len=256)
    assert vllm.LLM.instances[-1].init_kwargs["gpu_memory_utilization"] == 0.5
    assert make_servable(runs, max_model_len=64).context == 64
    with pytest.raises(TypeError, match="no_such_argument"):
        make_servable(runs, no_such_argument=1)


def test_each_request_gets_its_adapters_lora_request_and_the_base_none(vllm, runs):
    servable = make_servable(runs)
    results = servable.generate(
        [GenerationRequest(prompt="hello", adapter=name, max_tokens=2) for name in (None, "a", "b", "a")]
    )
    call = vllm.LLM.instances[0].calls[-1]
    assert len(call.prompts) == 4  # one generate for the whole batch
    names = [(r.lora_name, r.lora_int_id) if r is not None else None for r in call.lora_request]
    assert names == [None, ("a", 1), ("b", 2), ("a", 1)]
    assert call.lora_request[1].lora_path == str((runs["a"] / "adapter").resolve())
    assert [r.text.split()[0] for r in results] == ["[base]", "[a]", "[b]", "[a]"]
    # prompts go as token ids, encoded as the transformers engine encodes them
    assert call.prompts[0]["prompt_token_ids"] == servable.encode(GenerationRequest(prompt="hello"))


def test_adapter_ids_are_stable_across_unload_and_new_for_a_new_folder(vllm, runs, tmp_path):
    servable = make_servable(runs)
    servable.load_adapter("a", runs["a"] / "adapter")
    servable.load_adapter("b", runs["b"] / "adapter")
    engine = vllm.LLM.instances[0].llm_engine
    assert engine.list_loras() == {1, 2}
    servable.unload_adapter("a")
    assert engine.list_loras() == {2} and servable.adapter_names() == ["b"]
    servable.load_adapter("a", runs["a"] / "adapter")
    assert engine.added[-1].lora_int_id == 1  # back under its old id
    servable.load_adapter("c", adapter_copy(runs, tmp_path))
    assert engine.added[-1].lora_int_id == 3


def test_sampling_settings_map_to_sampling_params(vllm, runs):
    servable = make_servable(runs)
    sampled = GenerationRequest(
        prompt="x",
        max_tokens=7,
        temperature=0.7,
        top_p=0.9,
        seed=5,
        stop=["\n", "END"],
        logprobs=2,
        frequency_penalty=0.5,
        presence_penalty=-0.25,
        logit_bias={17: 3.0},
    )
    greedy = GenerationRequest(prompt="x", max_tokens=3, temperature=0.0, top_p=0.5, seed=9)
    servable.generate([sampled, greedy])
    first, second = vllm.LLM.instances[0].calls[-1].sampling_params
    assert (first.n, first.max_tokens, first.temperature, first.top_p, first.seed) == (1, 7, 0.7, 0.9, 5)
    assert (first.stop, first.logprobs, first.logit_bias) == (["\n", "END"], 2, {17: 3.0})
    assert (first.frequency_penalty, first.presence_penalty, first.skip_special_tokens) == (0.5, -0.25, True)
    assert (second.temperature, second.top_p, second.seed, second.stop, second.logprobs) == (0.0, 1.0, None, None, None)


def test_finish_reasons_and_usage(vllm, runs):
    servable = make_servable(runs)
    prompt_tokens = len(servable.encode(GenerationRequest(prompt="hello there")))
    short, long = servable.generate(
        [GenerationRequest(prompt="hello there", max_tokens=2), GenerationRequest(prompt="hello there", max_tokens=9)]
    )
    assert (short.finish_reason, short.completion_tokens, short.prompt_tokens) == ("length", 2, prompt_tokens)
    # ended by end-of-sequence: counted through the EOS token, as the transformers engine counts
    assert (long.finish_reason, long.completion_tokens) == ("stop", len(fake_vllm.GENERATED) + 1)
    vllm.LLM.finish_reason_override = "abort"
    with pytest.raises(RuntimeError, match="abort"):
        servable.generate([GenerationRequest(prompt="hello", max_tokens=2)])


def test_logprobs_cover_the_generated_tokens_without_the_final_eos(vllm, runs):
    servable = make_servable(runs)
    (result,) = servable.generate([GenerationRequest(prompt="hello", max_tokens=9, logprobs=2)])
    assert len(result.logprobs) == len(fake_vllm.GENERATED)  # the EOS entry is left out
    entry = result.logprobs[0]
    assert entry.token == servable.texts(fake_vllm.GENERATED[0])[0] and entry.logprob == -0.5
    assert [alt[0] for alt in entry.top] == [servable.texts(t)[0] for t in fake_vllm.ALTERNATIVES[:2]]
    assert [alt[2] for alt in entry.top] == pytest.approx([-0.1, -0.2])
    (zero,) = servable.generate([GenerationRequest(prompt="hello", max_tokens=2, logprobs=0)])
    assert len(zero.logprobs) == 2 and zero.logprobs[0].top == []


@pytest.mark.parametrize(
    ("request_fields", "option"),
    [({"echo": True}, "echo"), ({"stop_after_content": True, "stop": ["\n"]}, "stop_after_content")],
)
def test_options_vllm_cannot_honour_are_refused(vllm, runs, request_fields, option):
    servable = make_servable(runs)
    with pytest.raises(PolyadaptError, match=f"^{option}: .*--engine transformers"):
        servable.generate([GenerationRequest(prompt="x", **request_fields)])
    assert vllm.LLM.instances[0].calls == []  # nothing reached vLLM


def test_vllm_validation_errors_become_bad_requests_and_context_is_checked(vllm, runs):
    servable = make_servable(runs, max_model_len=64)
    with pytest.raises(PolyadaptError, match="vLLM refused the request: .*logit_bias"):
        servable.generate([GenerationRequest(prompt="x", max_tokens=2, logit_bias={-1: 1.0})])
    with pytest.raises(PolyadaptError, match="plus max_tokens .* reads \\(64 positions\\)"):
        servable.generate([GenerationRequest(prompt="x", max_tokens=64)])


def test_tasks_hand_out_the_vllm_servable_and_code_keeps_its_fim_prompts(vllm, tiny_llama, tmp_path, monkeypatch):
    import polyadapt_code
    import polyadapt_text
    import polyadapt_text.vllm_engine as engine_module
    from code_helpers import tiny_fim_model
    from polyadapt_code.serve import CodeServable, CodeVllmServable

    # base_model.dtype auto: bf16 where it is fast, as the transformers engine resolves it (no GPU here to ask)
    monkeypatch.setattr(engine_module, "resolve_dtype", lambda name: torch.bfloat16 if name == "auto" else None)
    settings = ServeSettings(engine="vllm")
    text = ServeSpec(task=polyadapt_text.TASK, base_model=str(tiny_llama), base_name="t", settings=settings)
    assert type(polyadapt_text.TASK.servable(text)) is VllmServable
    assert vllm.LLM.instances[-1].init_kwargs["dtype"] == "bfloat16"
    model = tiny_fim_model(tiny_llama, tmp_path / "tiny-fim")
    spec = ServeSpec(task=polyadapt_code.TASK, base_model=str(model), base_name="c", settings=settings)
    servable = polyadapt_code.TASK.servable(spec)
    assert isinstance(servable, CodeVllmServable)
    fim = GenerationRequest(prompt="def f(x):\n    return ", suffix="\n\nprint(f(2))\n", max_tokens=2)
    servable.generate([fim])
    sent = vllm.LLM.instances[-1].calls[-1].prompts[0]["prompt_token_ids"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the in-process servable on the CPU
    in_process = CodeServable(dataclasses.replace(spec, settings=None))
    assert sent == in_process.encode(fim)  # the same FIM prompt as the transformers engine's
    assert servable.tokenizer.convert_ids_to_tokens(sent[0]) == "<fim_prefix>"
    with pytest.raises(PolyadaptError, match="suffix"):  # a text base has no FIM
        polyadapt_text.TASK.servable(text).generate([fim])


# -- adapter configs ----------------------------------------------------------------------


def test_max_lora_rank_is_the_largest_r_rounded_up_to_a_vllm_rank(runs, tmp_path):
    assert lora_rank(runs["a"] / "adapter") == 4
    assert [engine_rank(r) for r in (1, 4, 8, 9, 20, 300, 512)] == [8, 8, 8, 16, 32, 320, 512]  # 0.11.0 has no rank 1
    big = adapter_copy(runs, tmp_path, r=20)
    assert max_lora_rank({"a": runs["a"] / "adapter", "big": big}) == 32
    assert max_lora_rank({}) == 16
    with pytest.raises(PolyadaptError, match="largest rank vLLM serves"):
        engine_rank(1024)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"use_dora": True}, "use_dora"),
        ({"modules_to_save": ["lm_head"]}, "modules_to_save"),
        ({"bias": "lora_only"}, "bias"),
        ({"rank_pattern": {"q_proj": 8}}, "rank_pattern"),
        ({"r": 0}, "r"),
    ],
)
def test_adapter_configs_vllm_cannot_load_are_refused_naming_the_field(runs, tmp_path, change, field):
    folder = adapter_copy(runs, tmp_path, **change)
    with pytest.raises(PolyadaptError, match=f"adapter_config.json: field '{field}'"):
        lora_rank(folder)


def test_an_adapter_above_the_started_rank_is_refused_at_load(vllm, runs, tmp_path):
    servable = make_servable(runs)  # started at max_lora_rank 8
    with pytest.raises(PolyadaptError, match="r=20, above the max_lora_rank 8"):
        servable.load_adapter("big", adapter_copy(runs, tmp_path, r=20))
    with pytest.raises(PolyadaptError, match="no adapter_config.json"):
        servable.load_adapter("missing", tmp_path / "nowhere")
    roomy = make_servable(runs, max_lora_rank=32)  # --engine-arg max_lora_rank=32 admits it
    roomy.load_adapter("big", tmp_path / "adapter")
    assert vllm.LLM.instances[-1].llm_engine.added[-1].lora_name == "big"


# -- start-up checks ----------------------------------------------------------------------


def test_a_task_without_vllm_is_refused_naming_the_base_and_the_task():
    spec = ServeSpec(task=Task(name="transcription"), base_model="m", base_name="whisper-small")
    with pytest.raises(
        PolyadaptError, match="base 'whisper-small' \\(task 'transcription'\\) cannot be served with --engine vllm"
    ):
        check_engine([spec], "vllm")
    check_engine([spec], "transformers")  # the default engine serves every task


def serve_cli(run: Path, *extra: str):
    return CliRunner().invoke(
        cli_app, ["serve", str(run), "--engine", "vllm", "--no-keys", "--no-monitor", *extra], catch_exceptions=False
    )


def test_cli_says_how_to_install_vllm_when_it_is_missing(runs, project_state, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` fails as when it is not installed
    result = serve_cli(runs["a"])
    assert result.exit_code == 1
    assert "needs the vllm package, which is not installed" in result.output
    assert "pip install vllm" in result.output and "Traceback" not in result.output


def test_cli_says_vllm_needs_a_gpu_when_cuda_is_absent(runs, project_state, monkeypatch):
    fake_vllm.install(monkeypatch)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = serve_cli(runs["a"])
    assert result.exit_code == 1
    assert "needs an NVIDIA GPU" in result.output and "--engine transformers" in result.output
    assert fake_vllm.LLM.instances == []  # nothing loaded


def test_cli_refuses_an_unknown_engine(runs, project_state):
    result = CliRunner().invoke(cli_app, ["serve", str(runs["a"]), "--engine", "tgi", "--no-keys"])
    assert result.exit_code == 1 and "serve option engine" in result.output


def test_cli_serves_with_vllm_and_passes_engine_args_on(vllm, runs, project_state, monkeypatch):
    started = []
    monkeypatch.setattr("polyadapt.serving.shutdown.run_server", lambda app, **options: started.append(app))
    result = serve_cli(runs["a"], "--engine-arg", "gpu_memory_utilization=0.4", "--engine-arg", "max_model_len=256")
    assert result.exit_code == 0, result.output
    (llm,) = vllm.LLM.instances
    assert llm.init_kwargs["gpu_memory_utilization"] == 0.4 and llm.init_kwargs["max_model_len"] == 256
    (app,) = started
    assert isinstance(app.state.registry.bases[BASE].servable, VllmServable)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--engine-arg", "max_model_len=256"], "--engine-arg goes with --engine vllm"),
        (["--engine", "vllm", "--engine-arg", "max_model_len"], "write KEY=VALUE"),
    ],
)
def test_cli_refuses_engine_args_it_cannot_use(runs, project_state, options, message):
    result = CliRunner().invoke(cli_app, ["serve", str(runs["a"]), "--no-keys", *options])
    assert result.exit_code == 1 and message in result.output


# -- through the server -------------------------------------------------------------------


@pytest.fixture
def served(vllm, runs, project_state):
    """The HTTP app on the fake engine, with API keys required and one adapter kept loaded."""
    from polyadapt.lineage.store import LineageStore

    with LineageStore.open() as store:
        secret, _ = create_key(store, "all", adapters=None, rate=None)
        settings = ServeSettings(engine="vllm", require_keys=True, max_adapters=1, metrics_public=True)
        app = build_app_from_runs(
            plugin_manager(), [runs["a"], runs["b"]], settings=settings, api_keys=KeyChecker(store)
        )
        with TestClient(app) as client:
            yield client, {"Authorization": f"Bearer {secret}"}, app


def test_a_request_is_served_through_vllm_behind_keys_limits_and_metrics(served):
    client, auth, app = served
    body = {"model": f"{BASE}:a", "prompt": "hello", "max_tokens": 2}
    assert client.post("/v1/completions", json=body).status_code == 401  # keys still required
    response = client.post("/v1/completions", json=body, headers=auth)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["choices"][0]["text"].startswith("[a]") and answer["choices"][0]["finish_reason"] == "length"
    assert answer["usage"]["completion_tokens"] == 2
    servable = app.state.registry.bases[BASE].servable
    assert isinstance(servable, VllmServable)
    too_long = {**body, "max_tokens": 10**9}
    assert client.post("/v1/completions", json=too_long, headers=auth).status_code == 400  # limits unchanged
    metrics = client.get("/metrics").text
    assert 'adapter="a"' in metrics or "tiny-llama:a" in metrics


def test_the_adapter_cache_evicts_through_vllm_and_reloads_under_the_same_id(served):
    client, auth, app = served
    for adapter in ("a", "b", "a"):
        body = {"model": f"{BASE}:{adapter}", "prompt": "hello", "max_tokens": 2}
        assert client.post("/v1/completions", json=body, headers=auth).status_code == 200
    engine = fake_vllm.LLM.instances[-1].llm_engine
    assert [(r.lora_name, r.lora_int_id) for r in engine.added] == [("a", 1), ("b", 2), ("a", 1)]
    assert engine.removed == [1, 2]  # max_adapters=1: a out for b, b out for a
    assert engine.list_loras() == {1}
    cache = app.state.registry.bases[BASE].cache
    assert (cache.loads, cache.evictions) == (3, 2)


def test_what_vllm_cannot_do_is_a_400_over_http(served):
    client, auth, _ = served
    echo = {"model": BASE, "prompt": "hello", "max_tokens": 2, "echo": True}
    response = client.post("/v1/completions", json=echo, headers=auth)
    assert response.status_code == 400 and response.json()["error"]["param"] == "echo"
    embedding = client.post("/v1/embeddings", json={"model": BASE, "input": "hello"}, headers=auth)
    assert embedding.status_code == 400 and "does not embed" in embedding.json()["error"]["message"]


def test_a_streamed_request_arrives_whole_in_one_chunk(served):
    from polyadapt.serving.streaming import streams_tokens

    client, auth, app = served
    assert not streams_tokens(app.state.registry, BASE)  # without a scanning policy its header says "whole"
    body = {"model": f"{BASE}:b", "prompt": "hello", "max_tokens": 2, "stream": True}
    with client.stream("POST", "/v1/completions", json=body, headers=auth) as response:
        assert response.status_code == 200
        events = [line for line in response.iter_lines() if line.startswith("data: ") and line != "data: [DONE]"]
        mode = response.headers["X-Polyadapt-Stream"]
    texts = [json.loads(e[len("data: ") :])["choices"][0]["text"] for e in events]
    assert "".join(texts).startswith("[b]") and len([t for t in texts if t]) == 1
    assert mode != "live"  # the header does not claim token-by-token streaming


# -- behaviours of real vLLM found by reading its source (tests/test_vllm_api_contract.py) ----


def test_a_refused_batch_leaves_no_requests_behind_for_the_next(vllm, runs):
    """vLLM 0.11 queues a batch's valid requests before raising on an invalid one; they are aborted."""
    servable = make_servable(runs)
    good, bad = GenerationRequest(prompt="x", max_tokens=2), GenerationRequest(prompt="y", logit_bias={-1: 1.0})
    with pytest.raises(PolyadaptError, match="vLLM refused the request"):
        servable.generate([good, good, bad])
    engine = vllm.LLM.instances[0].llm_engine
    assert engine.aborted == ["0", "1"] and not engine.has_unfinished_requests()
    results = servable.generate([good])  # answered alone, not with the two left over
    assert len(results) == 1 and results[0].completion_tokens == 2


def test_sampling_settings_vllm_refuses_are_bad_requests(vllm, runs):
    servable = make_servable(runs)
    with pytest.raises(PolyadaptError, match="vLLM refused the sampling settings: top_p"):
        servable.generate([GenerationRequest(prompt="x", temperature=0.5, top_p=0.0)])
    with pytest.raises(PolyadaptError, match="vLLM refused the sampling settings: frequency_penalty"):
        servable.generate([GenerationRequest(prompt="x", frequency_penalty=3.0)])
    assert vllm.LLM.instances[0].calls == []


def test_a_generation_config_eos_counts_as_the_end_of_sequence_for_logprobs(vllm, runs):
    """vLLM reports a stop on one of generation_config's other eos ids with that id as stop_reason."""
    servable = make_servable(runs)
    vllm.LLM.eos_stop_reason = fake_vllm.EOS
    (result,) = servable.generate([GenerationRequest(prompt="hello", max_tokens=9, logprobs=1)])
    assert result.finish_reason == "stop" and result.completion_tokens == len(fake_vllm.GENERATED) + 1
    assert len(result.logprobs) == len(fake_vllm.GENERATED)  # the eos entry is left out


def test_an_adapter_vllm_fails_to_load_names_it(vllm, runs, tmp_path):
    """The engine-core client reports a failed add_lora as a bare Exception."""
    servable = make_servable(runs)
    folder = adapter_copy(runs, tmp_path)
    servable.llm.llm_engine.add_lora = lambda request: (_ for _ in ()).throw(Exception("bad lora weights"))
    with pytest.raises(PolyadaptError, match="cannot load adapter 'c' from .*: bad lora weights"):
        servable.load_adapter("c", folder)
    assert "c" not in servable.adapter_names()
