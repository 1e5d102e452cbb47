"""Stable Diffusion XL through the image plugin, on a tiny SDXL pipeline built from configs
and loaded with ``DiffusionPipeline.from_pretrained``: adapt lowers the held-out denoising
loss, the adapter is a plain diffusers SDXL LoRA (``StableDiffusionXLPipeline.load_lora_weights``
reproduces the adapted output), both text encoders take LoRA when asked, and the images
endpoint serves the adapter."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("fastapi")

import numpy as np  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402

from image_helpers import adapt_keeping_model, one_thread, write_image_config  # noqa: E402, F401
import polyadapt_image  # noqa: E402
from polyadapt import runner  # noqa: E402
from polyadapt.config import load_config  # noqa: E402
from polyadapt.plugins import PluginManager  # noqa: E402
from polyadapt.serving.app import build_app_from_runs  # noqa: E402
from polyadapt_image.model import WEIGHTS_NAME  # noqa: E402
from polyadapt_image.testing import TINY_SDXL_NAME, make_test_images  # noqa: E402

# diffusers' Euler scheduler builds its sigmas with a numpy call that numpy 2 deprecates
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy:DeprecationWarning")

TASK_OPTIONS = {"resolution": 16, "min_image_size": 8, "inference_steps": 2, "guidance_scale": 3.0, "eval_seeds": [0]}
PROMPT = "a solvanta style banner, variant 1"


@pytest.fixture(scope="module")
def pm():
    return PluginManager(load_entrypoints=False, plugins={"image": polyadapt_image})


@pytest.fixture(scope="module")
def tiny_sdxl(tiny_base_model) -> Path:
    return tiny_base_model("image-sdxl")


def write_config(
    root: Path, model: Path, train: Path, *, name: str, task_options: dict | None = None, **training
) -> Path:
    return write_image_config(
        root,
        model,
        train,
        name=name,
        num_samples=1,
        task_options={**TASK_OPTIONS, **(task_options or {})},
        **{"learning_rate": 3e-2, **training},
    )


@pytest.fixture(scope="module")
def adapted(pm, tiny_sdxl, tmp_path_factory):
    """One SDXL adapt run shared by the tests below, and the trained model the trainer returned."""
    root = tmp_path_factory.mktemp("sdxl-run")
    make_test_images(root / "data", n=12, size=24, bad=False)
    config = write_config(root, tiny_sdxl, root / "data", name="brand")
    return {**adapt_keeping_model(pm, config, root / "state"), "root": root}


def weight_names(folder: Path) -> list[str]:
    from safetensors import safe_open

    with safe_open(str(folder / WEIGHTS_NAME), "pt") as handle:
        return list(handle.keys())


def draw(pipeline, seed: int, n: int = 1, output_type: str = "np"):
    return pipeline(
        PROMPT,
        num_images_per_prompt=n,
        num_inference_steps=2,
        guidance_scale=3.0,
        height=16,
        width=16,
        generator=torch.Generator().manual_seed(seed),
        output_type=output_type,
    ).images


def plain_sdxl(model: Path, **components):
    from diffusers import StableDiffusionXLPipeline

    pipeline = StableDiffusionXLPipeline.from_pretrained(model, **components)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def test_sdxl_adapt_lowers_heldout_denoising_loss(adapted):
    run, report = adapted["run"], adapted["report"]
    (row,) = report.rows
    assert row.role == "domain" and row.metric == "denoising_mse"
    assert row.adapted < row.base * 0.95, row
    assert adapted["adapter"].train_metrics["latents_cached"] is True
    info = json.loads((run.adapter_dir / "polyadapt_image.json").read_text())
    assert info["architecture"] == "stable-diffusion-xl" and info["text_encoder"] is False
    with Image.open(run.dir / "samples/grid.png") as grid:  # one prompt, one seed: base | adapted
        assert grid.size == (16 * 2 + 2, 16)


def test_plain_sdxl_pipeline_loads_the_adapter_and_reproduces_the_adapted_output(adapted, tiny_sdxl):
    run = adapted["run"]
    assert weight_names(run.adapter_dir) and all(k.startswith("unet.") for k in weight_names(run.adapter_dir))
    adapted_pipe = plain_sdxl(tiny_sdxl, unet=adapted["model"].unet.eval())
    plain = plain_sdxl(tiny_sdxl)
    base_image = draw(plain, seed=5)
    plain.load_lora_weights(str(run.adapter_dir))  # no polyadapt involved
    assert np.abs(draw(plain, seed=5) - draw(adapted_pipe, seed=5)).max() < 1e-5
    assert np.abs(draw(plain, seed=5) - base_image).max() > 1e-3


def test_sdxl_text_encoder_lora_on_both_encoders_with_random_crops(pm, tiny_sdxl, tmp_path):
    """Text-encoder LoRA goes on both encoders; random crops and flips (latents encoded
    every step, crop positions in the time ids) and buckets train and evaluate."""
    from safetensors import safe_open

    make_test_images(tmp_path / "data", n=6, size=24, bad=False)
    options = {"train_text_encoder": True, "crop": "random", "random_flip": True, "buckets": True}
    config = load_config(
        write_config(tmp_path, tiny_sdxl, tmp_path / "data", name="encoders", task_options=options, max_steps=3)
    )
    run, adapter, report = runner.adapt(pm, config)
    assert adapter.train_metrics["latents_cached"] is False and report.rows
    names = weight_names(run.adapter_dir)
    assert {name.split(".")[0] for name in names} == {"unet", "text_encoder", "text_encoder_2"}
    with safe_open(str(run.adapter_dir / WEIGHTS_NAME), "pt") as handle:  # the second encoder trained
        assert any(
            handle.get_tensor(k).abs().max() > 0
            for k in names
            if k.startswith("text_encoder_2.") and (".up." in k or "lora_B" in k)
        )
    plain = plain_sdxl(tiny_sdxl)
    plain.load_lora_weights(str(run.adapter_dir))
    assert plain.get_list_adapters() == {
        "unet": ["default_0"],
        "text_encoder": ["default_0"],
        "text_encoder_2": ["default_0"],
    }


def test_images_endpoint_serves_an_sdxl_adapter(adapted, pm, tiny_sdxl):
    run = adapted["run"]
    app = build_app_from_runs(pm, [run.dir], audit_log=adapted["root"] / "audit.jsonl")
    reference = plain_sdxl(tiny_sdxl)
    expected_base = draw(reference, seed=5, n=2, output_type="pil")
    reference.load_lora_weights(str(run.adapter_dir))
    expected = {"brand": draw(reference, seed=5, n=2, output_type="pil"), None: expected_base}
    with TestClient(app) as client:
        for adapter in ("brand", None):
            model = f"{TINY_SDXL_NAME}:{adapter}" if adapter else TINY_SDXL_NAME
            reply = client.post("/v1/images/generations", json={"model": model, "prompt": PROMPT, "n": 2, "seed": 5})
            assert reply.status_code == 200, reply.text
            for item, image in zip(reply.json()["data"], expected[adapter], strict=True):
                with Image.open(io.BytesIO(base64.b64decode(item["b64_json"]))) as served:
                    got = np.asarray(served.convert("RGB"), dtype=np.int16)
                assert np.abs(got - np.asarray(image, dtype=np.int16)).max() <= 1, adapter
    assert (
        np.abs(np.asarray(expected["brand"][0], dtype=np.int16) - np.asarray(expected_base[0], dtype=np.int16)).max()
        > 2
    )


def test_unsupported_pipelines_are_refused_with_what_is_missing():
    from types import SimpleNamespace

    from polyadapt.errors import ConfigError
    from polyadapt_image.conditioning import SDConditioning, SDXLConditioning, text_conditioning

    def pipeline(embed_type, **parts):
        unet = SimpleNamespace(config=SimpleNamespace(addition_embed_type=embed_type))
        return SimpleNamespace(unet=unet, **parts)

    refiner = pipeline("text_time", text_encoder=None, tokenizer=None, text_encoder_2=object(), tokenizer_2=object())
    with pytest.raises(ConfigError, match=r"without text_encoder, tokenizer; .*refiner"):
        text_conditioning(refiner, "'/models/refiner'")
    plain_encoder = SimpleNamespace()  # a CLIPTextModel: no text_projection
    wrong = pipeline(
        "text_time", text_encoder=object(), tokenizer=object(), text_encoder_2=plain_encoder, tokenizer_2=object()
    )
    with pytest.raises(ConfigError, match="CLIPTextModelWithProjection"):
        text_conditioning(wrong)
    with pytest.raises(ConfigError, match="without tokenizer"):
        text_conditioning(pipeline(None, text_encoder=object()))
    assert isinstance(text_conditioning(pipeline(None, text_encoder=object(), tokenizer=object())), SDConditioning)
    sdxl = pipeline(
        "text_time",
        text_encoder=object(),
        tokenizer=object(),
        text_encoder_2=SimpleNamespace(text_projection=object()),
        tokenizer_2=object(),
    )
    assert isinstance(text_conditioning(sdxl), SDXLConditioning)
