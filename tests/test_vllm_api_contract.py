"""tests/fake_vllm.py and ``--engine vllm`` against a record of the real vLLM API.

tests/data/vllm_api.json was read from the real vLLM wheels (0.11.0, the version the engine
and the fake follow, and 0.34.0, the newest release when recorded) by
scripts/record_vllm_api.py, which parses their sources without importing them. These tests
keep the fake from drifting away from vLLM unnoticed (names, order, defaults), and check that
every name the engine passes to or reads from vLLM exists in each recorded release. They read
polyadapt_text/vllm_engine.py as source (no torch, no vLLM needed), so they run offline in a
fraction of a second.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
from pathlib import Path
from typing import Any, get_type_hints

import fake_vllm
import pytest

ROOT = Path(__file__).resolve().parents[1]
RECORD = json.loads((Path(__file__).parent / "data" / "vllm_api.json").read_text(encoding="utf-8"))
VERSIONS = {entry["version"]: entry for entry in RECORD["versions"]}
#: The release the fake mimics and the engine's docs cite.
FAKE_VERSION = "0.11.0"
REAL = VERSIONS[FAKE_VERSION]
ENGINE_SOURCE = ROOT / "plugins" / "text" / "polyadapt_text" / "vllm_engine.py"
ENGINE = ast.parse(ENGINE_SOURCE.read_text(encoding="utf-8"))

every_version = pytest.mark.parametrize("version", sorted(VERSIONS))


def names(rows: list[dict[str, Any]]) -> list[str]:
    return [row["name"] for row in rows]


def method(name: str) -> ast.FunctionDef:
    """A function or a ``VllmServable`` method of the engine module, by name."""
    for node in ast.walk(ENGINE):
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    raise LookupError(name)


def call_keywords(function: ast.FunctionDef, callee: str) -> set[str]:
    """The keyword names of every call to ``callee`` (a name, or an attribute's last part) in ``function``."""
    found: set[str] = set()
    for node in ast.walk(function):
        if isinstance(node, ast.Call):
            target = node.func
            called = target.id if isinstance(target, ast.Name) else getattr(target, "attr", None)
            if called == callee:
                assert node.keywords, f"{callee}(...) in {function.name} passes no keywords"
                found |= {keyword.arg for keyword in node.keywords if keyword.arg is not None}
    assert found, f"no call to {callee} in {function.name}"
    return found


def attributes_read(function: ast.FunctionDef, *variables: str) -> set[str]:
    """The attributes ``function`` reads from the local names ``variables``."""
    return {
        node.attr
        for node in ast.walk(function)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in variables
    }


def constant(name: str) -> Any:
    for node in ENGINE.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise LookupError(name)


def real_default(row: dict[str, Any]) -> Any:
    """A recorded default as a value, or ``...`` where it is not a literal (``ModelConfig.dtype``)."""
    try:
        return ast.literal_eval(row["default"])
    except (ValueError, SyntaxError):
        return ...


def fake_fields(cls: type) -> list[dataclasses.Field]:
    return list(dataclasses.fields(cls))


def test_the_record_holds_the_version_the_fake_follows_and_the_fake_says_so():
    assert FAKE_VERSION in VERSIONS and len(VERSIONS) >= 2
    assert "vLLM 0.11" in (fake_vllm.__doc__ or "")


# -- vllm.LLM -----------------------------------------------------------------------------


def test_fake_llm_constructor_has_real_names_order_kinds_and_defaults():
    real = REAL["LLM.__init__"]
    fake = list(inspect.signature(fake_vllm.LLM.__init__).parameters.values())[1:]  # without self
    kinds = {
        inspect.Parameter.POSITIONAL_OR_KEYWORD: "positional",
        inspect.Parameter.KEYWORD_ONLY: "keyword",
        inspect.Parameter.VAR_KEYWORD: "var_keyword",
    }
    assert [(p.name, kinds[p.kind]) for p in fake] == [(r["name"], r["kind"]) for r in real]
    for parameter, row in zip(fake, real):
        expected = real_default(row)
        if row["default"] is not None and expected is not ...:
            assert parameter.default == expected, f"LLM({parameter.name}=...) defaults to {row['default']} in vLLM"


def test_fake_engine_args_are_real_engine_args():
    assert fake_vllm.ENGINE_ARGS <= set(REAL["EngineArgs"])


@every_version
def test_every_argument_the_engine_gives_the_llm_exists(version):
    init = method("__init__")
    arguments = next(
        node.value
        for node in ast.walk(init)
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "arguments"
    )
    assert isinstance(arguments, ast.Dict)
    keys = {ast.literal_eval(key) for key in arguments.keys if key is not None}
    assert {"enable_lora", "max_loras", "max_lora_rank", "max_cpu_loras", "dtype", "tokenizer"} <= keys
    record = VERSIONS[version]
    known = set(names(record["LLM.__init__"])) | set(record["EngineArgs"])
    assert keys | {"model"} <= known, sorted(keys - known)


def test_fake_generate_has_real_names_and_kinds():
    real = REAL["LLM.generate"]
    fake = list(inspect.signature(fake_vllm.LLM.generate).parameters.values())[1:]
    assert [p.name for p in fake] == names(real)
    assert [p.kind == inspect.Parameter.KEYWORD_ONLY for p in fake] == [r["kind"] == "keyword" for r in real]


@every_version
def test_the_engines_generate_call_matches_real_generate(version):
    real = VERSIONS[version]["LLM.generate"]
    calls = [
        node
        for node in ast.walk(method("generate"))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "generate"
    ]
    (call,) = calls
    assert [r["name"] for r in real[: len(call.args)]] == ["prompts", "sampling_params"][: len(call.args)]
    assert all(r["kind"] == "positional" for r in real[: len(call.args)])
    keyword_names = {r["name"] for r in real if r["kind"] in ("positional", "keyword")}
    assert {k.arg for k in call.keywords} <= keyword_names
    assert {"use_tqdm", "lora_request"} <= {k.arg for k in call.keywords}


@every_version
def test_the_package_exports_what_the_engine_imports(version):
    record = VERSIONS[version]
    assert {"LLM", "SamplingParams", "TokensPrompt"} <= set(record["vllm exports"])
    assert "TokensPrompt" in record["vllm.inputs exports"]
    fake = fake_vllm.modules()
    assert {"LLM", "SamplingParams", "TokensPrompt"} <= set(vars(fake["vllm"]))
    assert "TokensPrompt" in vars(fake["vllm.inputs"]) and "LoRARequest" in vars(fake["vllm.lora.request"])


# -- SamplingParams, LoRARequest, TokensPrompt --------------------------------------------


@every_version
def test_the_engines_sampling_params_are_real_fields(version):
    real = {row["name"] for row in VERSIONS[version]["SamplingParams"]}
    passed = call_keywords(method("_sampling_params"), "factory")
    assert {"max_tokens", "temperature", "top_p", "stop", "seed", "logprobs", "logit_bias"} <= passed
    assert passed <= real, sorted(passed - real)


@every_version
def test_fake_sampling_params_fields_and_defaults_are_real(version):
    real = {row["name"]: row for row in VERSIONS[version]["SamplingParams"]}
    for field in fake_fields(fake_vllm.SamplingParams):
        assert field.name in real, f"SamplingParams.{field.name} is not in vLLM {version}"
        expected = real_default(real[field.name])
        if expected is not ...:
            assert field.default == expected, f"SamplingParams.{field.name} defaults to {expected!r} in {version}"


@every_version
def test_lora_request_takes_name_id_path_in_that_order(version):
    real = VERSIONS[version]["LoRARequest"]
    assert [(r["name"], r["default"]) for r in real[:3]] == [
        ("lora_name", None),
        ("lora_int_id", None),
        ("lora_path", "''"),
    ]
    fake = [(f.name, f.default) for f in fake_fields(fake_vllm.LoRARequest)]
    assert fake == [("lora_name", dataclasses.MISSING), ("lora_int_id", dataclasses.MISSING), ("lora_path", "")]
    assert call_keywords(method("load_adapter"), "LoRARequest") <= set(names(real))


@every_version
def test_tokens_prompt_keys_are_real(version):
    real = {row["name"]: row for row in VERSIONS[version]["TokensPrompt"]}
    assert call_keywords(method("generate"), "TokensPrompt") == {"prompt_token_ids"}
    assert not real["prompt_token_ids"]["annotation"].startswith("NotRequired")  # the one required key
    if version == FAKE_VERSION:
        assert set(get_type_hints(fake_vllm.TokensPrompt)) <= set(real)


# -- outputs ------------------------------------------------------------------------------


@every_version
def test_every_output_attribute_the_engine_reads_exists(version):
    record = VERSIONS[version]
    completion = set(names(record["CompletionOutput"]))
    request = set(names(record["RequestOutput.__init__"]))
    logprob = set(names(record["Logprob"]))
    result, entries = method("result"), method("logprob_entries")
    read_completion = attributes_read(result, "completion")
    assert {"text", "token_ids", "finish_reason", "stop_reason", "logprobs"} <= read_completion <= completion
    read_request = attributes_read(result, "output")
    assert read_request == {"outputs", "prompt_token_ids"} and read_request <= request
    assert attributes_read(entries, "entry", "chosen") == {"logprob", "rank"} and {"logprob", "rank"} <= logprob


def test_fake_outputs_have_the_real_fields_in_the_real_order():
    assert [f.name for f in fake_fields(fake_vllm.CompletionOutput)] == names(REAL["CompletionOutput"])
    request = [row for row in REAL["RequestOutput.__init__"] if row["kind"] == "positional"]
    fake = [f.name for f in fake_fields(fake_vllm.RequestOutput)]
    assert fake == names(request)[: len(fake)] and "lora_request" in fake
    assert [(f.name, f.default) for f in fake_fields(fake_vllm.Logprob)] == [
        (r["name"], real_default(r) if r["default"] is not None else dataclasses.MISSING) for r in REAL["Logprob"]
    ]


# -- the engine object and LoRA sizes -----------------------------------------------------


@every_version
def test_the_llm_engine_has_the_lora_methods_and_attributes_the_servable_uses(version):
    record = VERSIONS[version]
    methods = record["LLMEngine methods"]
    assert [r["name"] for r in methods["add_lora"]] == ["lora_request"]
    assert [r["name"] for r in methods["remove_lora"]][:1] == ["lora_id"]
    assert [r["name"] for r in methods["abort_request"]][:1] == ["request_ids"]
    assert "model_config" in record["LLMEngine attributes"]
    assert "llm_engine" in record["LLM attributes"]
    for name in methods:
        fake = [p for p in inspect.signature(getattr(fake_vllm.LLMEngine, name)).parameters][1:]
        assert fake == [r["name"] for r in methods[name] if r["default"] is None]


def test_the_request_counter_the_engine_aborts_by_is_real():
    """0.11 leaves a refused batch's earlier requests queued; the engine aborts them by their ids."""
    assert "request_counter" in REAL["LLM attributes"] and "counter" in REAL["Counter attributes"]
    llm = fake_vllm.LLM("model")
    fake_vllm.LLM.instances.remove(llm)
    assert isinstance(llm.request_counter.counter, int) and isinstance(llm.llm_engine.model_config.max_model_len, int)


@every_version
def test_the_engines_lora_ranks_are_accepted_by_every_release(version):
    allowed = set(VERSIONS[version]["max_lora_rank values"])
    assert set(constant("VLLM_LORA_RANKS")) <= allowed
    assert constant("DEFAULT_LORA_RANK") in allowed


def test_fake_lora_ranks_are_the_real_ones():
    assert list(fake_vllm.MAX_LORA_RANKS) == REAL["max_lora_rank values"]
