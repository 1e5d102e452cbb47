"""``POST /v1/images/generations``: one tiny pipeline serves its base and two LoRA adapters,
switched per request; each answer equals a plain diffusers pipeline with only that adapter
(``load_lora_weights``); concurrent requests are micro-batched into shared pipeline calls
without changing what a seed draws; prompts pass the serving policy."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("fastapi")

import httpx  # noqa: E402
import numpy as np  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402

from image_helpers import one_thread  # noqa: E402, F401
import polyadapt_image  # noqa: E402
from polyadapt.config import LoraConfig, RunConfig  # noqa: E402
from polyadapt.plugins import PluginManager  # noqa: E402
from polyadapt.serving.app import build_app_from_runs  # noqa: E402
from polyadapt.types import AdapterArtifact  # noqa: E402
from polyadapt_image.batching import ImageJob, group_calls  # noqa: E402
from polyadapt_image.model import attach_lora, load_pipeline, save_adapter  # noqa: E402
from polyadapt_image.testing import TINY_NAME  # noqa: E402
from polyadapt_image.types import ImageRequest  # noqa: E402

OPTIONS = {"resolution": 16, "inference_steps": 2, "guidance_scale": 3.0}
PROMPT = "a solvanta style banner"
SECRET = "AKIAQ7XYZ2M4N5P6R3TU"


def save_random_adapter(model: Path, target: Path, seed: int, text_encoder: bool = False) -> None:
    """A diffusers LoRA with random (non-zero) weights, saved the way ``adapt`` saves one."""
    pipeline = load_pipeline(
        RunConfig.model_validate(
            {"task": "text-to-image", "base_model": {"id": str(model), "dtype": "float32"}, "data": {"train": "x"}}
        ).base_model
    )
    torch.manual_seed(seed)
    attach_lora(pipeline, LoraConfig(r=4, alpha=8), text_encoder=text_encoder)
    with torch.no_grad():
        for name, param in pipeline.unet.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.3)
    target.mkdir(parents=True)
    save_adapter(pipeline, target, text_encoder=text_encoder, info={"resolution": 16})


def make_run_folder(root: Path, model: Path, name: str, seed: int) -> Path:
    run_dir = root / name
    run_dir.mkdir(parents=True)
    config = RunConfig.model_validate(
        {
            "task": "text-to-image",
            "base_model": {"id": str(model), "dtype": "float32"},
            "data": {"train": str(root / "images")},
            "task_options": OPTIONS,
            "output": {"dir": str(root), "name": name, "adapter_name": name},
        }
    )
    (run_dir / "config.yaml").write_text(config.to_yaml())
    save_random_adapter(model, run_dir / "adapter", seed)
    (run_dir / "adapter.json").write_text(
        json.dumps(AdapterArtifact(path=run_dir / "adapter", base_model=str(model)).to_dict())
    )
    return run_dir


@pytest.fixture(scope="module")
def served(tiny_base_model, tmp_path_factory):
    model = tiny_base_model("image")
    root = tmp_path_factory.mktemp("image-serve")
    runs = [make_run_folder(root, model, "brand-a", seed=1), make_run_folder(root, model, "brand-b", seed=2)]
    pm = PluginManager(load_entrypoints=False, plugins={"image": polyadapt_image})
    app = build_app_from_runs(pm, runs, audit_log=root / "audit.jsonl")
    with TestClient(app) as client:
        yield {"client": client, "model": model, "runs": runs, "app": app, "audit": root / "audit.jsonl"}


def decode(item: dict) -> np.ndarray:
    raw = base64.b64decode(item["b64_json"])
    with Image.open(io.BytesIO(raw)) as image:
        assert image.format == "PNG" and not len(image.getexif())
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def reference(model: Path, adapter: Path | None, seed: int, n: int = 1) -> list[np.ndarray]:
    """The same request on a plain diffusers pipeline (no polyadapt) with only ``adapter``."""
    from diffusers import DiffusionPipeline

    pipeline = DiffusionPipeline.from_pretrained(model)
    pipeline.set_progress_bar_config(disable=True)
    if adapter is not None:
        pipeline.load_lora_weights(str(adapter))
    images = pipeline(
        PROMPT,
        num_images_per_prompt=n,
        height=16,
        width=16,
        num_inference_steps=2,
        guidance_scale=3.0,
        generator=torch.Generator().manual_seed(seed),
    ).images
    return [np.asarray(image, dtype=np.int16) for image in images]


def generate(client, model: str, **extra):
    return client.post("/v1/images/generations", json={"model": model, "prompt": PROMPT, "seed": 7, **extra})


def test_images_endpoint_switches_two_adapters_per_request(served):
    client, model = served["client"], served["model"]
    names = {m["id"] for m in client.get("/v1/models").json()["data"]}
    assert names == {TINY_NAME, f"{TINY_NAME}:brand-a", f"{TINY_NAME}:brand-b"}

    answers = {}
    # interleaved, so each request must switch the adapter on the one loaded pipeline
    for name in ("brand-a", None, "brand-b", "brand-a"):
        reply = generate(client, f"{TINY_NAME}:{name}" if name else TINY_NAME)
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["seed"] == 7 and len(body["data"]) == 1
        answers.setdefault(name, []).append(decode(body["data"][0]))
    assert (answers["brand-a"][0] == answers["brand-a"][1]).all()
    servable = served["app"].state.registry.bases[TINY_NAME].servable
    assert sorted(servable.adapter_names()) == ["brand-a", "brand-b"]

    runs = dict(zip(["brand-a", "brand-b"], served["runs"]))
    for name, images in answers.items():
        expected = reference(model, runs[name] / "adapter" if name else None, seed=7)[0]
        assert np.abs(images[0] - expected).max() <= 1, name
    assert np.abs(answers["brand-a"][0] - answers[None][0]).max() > 2
    assert np.abs(answers["brand-a"][0] - answers["brand-b"][0]).max() > 2

    two = generate(client, f"{TINY_NAME}:brand-b", n=2, size="16x16")
    assert two.status_code == 200 and len(two.json()["data"]) == 2
    expected = reference(model, runs["brand-b"] / "adapter", seed=7, n=2)
    for item, image in zip(two.json()["data"], expected):
        assert np.abs(decode(item) - image).max() <= 1


def test_images_endpoint_errors_and_policy(served):
    client = served["client"]
    unknown = generate(client, f"{TINY_NAME}:nope")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    url = generate(client, TINY_NAME, response_format="url")
    assert url.status_code == 400 and "b64_json" in url.json()["error"]["message"]
    for bad in ({"size": "big"}, {"size": "17x16"}, {"n": 11}):
        reply = generate(client, TINY_NAME, **bad)
        assert reply.status_code == 400, (bad, reply.text)
    text = client.post("/v1/completions", json={"model": TINY_NAME, "prompt": "hello"})
    assert text.status_code == 400 and "images/generations" in text.json()["error"]["message"]

    refused = client.post("/v1/images/generations", json={"model": TINY_NAME, "prompt": f"a banner {SECRET}"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "content_policy"
    assert SECRET not in served["audit"].read_text()
    assert any(json.loads(line)["direction"] == "prompt" for line in served["audit"].read_text().splitlines())


# -- micro-batching ------------------------------------------------------------------------


class CountingPipeline:
    """Forwards to a pipeline and records the prompts of every call."""

    def __init__(self, pipeline):
        self.pipeline, self.calls = pipeline, []

    def __call__(self, prompt, **kwargs):
        self.calls.append(list(prompt))
        return self.pipeline(prompt, **kwargs)

    def __getattr__(self, name):
        return getattr(self.pipeline, name)


def servable_of(served):
    servable = served["app"].state.registry.bases[TINY_NAME].servable
    for run in served["runs"]:
        servable.load_adapter(run.name, run / "adapter")
    return servable


def pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_group_calls_by_settings_and_image_limit():
    def job(index, adapter="a", n=1, steps=2):
        return ImageJob(index, "p", adapter, n, 16, 16, steps, 3.0, index)

    jobs = [job(0), job(1, None), job(2, n=4), job(3, steps=3), job(4, n=6), job(5, None), job(6, n=11)]
    calls = [[j.index for j in call] for call in group_calls(jobs, max_images=10)]
    assert calls == [[0, 2], [4], [6], [1, 5], [3]]


def test_batched_requests_match_alone_with_fewer_pipeline_calls(served, monkeypatch):
    """Two adapters and the base in one batch: each request's images equal its images alone
    (same seed), while requests with equal settings share a pipeline call."""
    servable = servable_of(served)
    requests = [
        ImageRequest(PROMPT, adapter="brand-a", seed=7),
        ImageRequest(PROMPT, adapter=None, seed=7),
        ImageRequest("a marlowe style banner", adapter="brand-b", seed=8, n=2),
        ImageRequest("a marlowe style banner", adapter="brand-a", seed=9, n=2),
        ImageRequest(PROMPT, adapter=None, seed=10),
        ImageRequest(PROMPT, adapter="brand-b", seed=11),
        ImageRequest(PROMPT, adapter=None, seed=7, steps=3),  # other settings: a call of its own
    ]
    alone = [servable.generate_images([request])[0] for request in requests]
    counting = CountingPipeline(servable.pipeline)
    monkeypatch.setattr(servable, "pipeline", counting)
    batched = servable.generate_images(requests)

    assert [len(prompts) for prompts in counting.calls] == [3, 2, 3, 1]  # 4 calls for 7 requests
    for request, one, many in zip(requests, alone, batched):
        assert many.seed == one.seed == request.seed and len(many.images) == len(one.images) == request.n
        for single, shared in zip(one.images, many.images):
            assert np.abs(pixels(single) - pixels(shared)).max() <= 1, request
    # the images of one request differ: each has its own share of the request's noise
    assert np.abs(pixels(batched[2].images[0]) - pixels(batched[2].images[1])).max() > 2


def test_concurrent_http_requests_share_one_batch(served, monkeypatch):
    app = served["app"]
    registry = app.state.registry
    monkeypatch.setattr(registry.bases[TINY_NAME].batcher_for("generate_images"), "batch_wait", 0.5)
    servable = servable_of(served)
    batches, real = [], servable.generate_images

    def recording(requests):
        batches.append([r.adapter for r in requests])
        return real(requests)

    monkeypatch.setattr(servable, "generate_images", recording)
    counting = CountingPipeline(servable.pipeline)
    monkeypatch.setattr(servable, "pipeline", counting)
    asks = [("brand-a", 7), (None, 7), ("brand-b", 7), ("brand-a", 3)]

    async def ask_all():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            replies = await asyncio.gather(
                *(
                    http.post(
                        "/v1/images/generations",
                        json={
                            "model": f"{TINY_NAME}:{adapter}" if adapter else TINY_NAME,
                            "prompt": PROMPT,
                            "seed": seed,
                        },
                    )
                    for adapter, seed in asks
                )
            )
        await registry.close()
        return replies

    replies = asyncio.run(ask_all())
    assert [r.status_code for r in replies] == [200] * 4, [r.text for r in replies]
    assert len(batches) == 1 and sorted(map(str, batches[0])) == ["None", "brand-a", "brand-a", "brand-b"]
    assert sorted(len(prompts) for prompts in counting.calls) == [1, 1, 2]
    runs = dict(zip(["brand-a", "brand-b"], served["runs"]))
    for (adapter, seed), reply in zip(asks, replies):
        (item,) = reply.json()["data"]
        expected = reference(served["model"], runs[adapter] / "adapter" if adapter else None, seed=seed)[0]
        assert reply.json()["seed"] == seed and np.abs(decode(item) - expected).max() <= 1, adapter
