"""The image plugin's reduced-precision path on CPU: bf16 weights and bf16 autocast through
the shared trainer's ``training.precision``, LoRA weights kept and saved in fp32."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

import yaml  # noqa: E402

import polyadapt.training  # noqa: E402
import polyadapt_image  # noqa: E402
from polyadapt import runner  # noqa: E402
from polyadapt.config import load_config  # noqa: E402
from polyadapt.errors import ConfigError  # noqa: E402
from polyadapt.plugins import PluginManager  # noqa: E402
from polyadapt_image.model import WEIGHTS_NAME  # noqa: E402
from polyadapt_image.testing import make_test_images  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _config(tmp_path, model, *, precision: str, dtype: str, name: str):
    make_test_images(tmp_path / "data", n=8, size=24, bad=False)
    config = {
        "task": "text-to-image",
        "base_model": {"id": str(model), "dtype": dtype},
        "data": {"train": str(tmp_path / "data"), "licence": "CC0-1.0", "eval_fraction": 0.25},
        "lora": {"r": 4, "alpha": 4},
        "training": {
            "max_steps": 4,
            "batch_size": 2,
            "learning_rate": 1e-2,
            "precision": precision,
            "warmup_ratio": 0.0,
            "seed": 1,
        },
        "evaluation": {"num_samples": 1},
        "task_options": {"resolution": 16, "min_image_size": 8, "inference_steps": 2, "eval_seeds": [0]},
        "output": {"dir": str(tmp_path / "runs"), "name": name},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return load_config(path)


def test_bf16_weights_and_autocast_on_cpu(tiny_base_model, tmp_path, monkeypatch):
    from safetensors import safe_open

    pm = PluginManager(load_entrypoints=False, plugins={"image": polyadapt_image})
    trained = []
    real_train = polyadapt.training.train

    def spy(job, *args, **kwargs):
        result = real_train(job, *args, **kwargs)
        trained.append((job.model, result))
        return result

    monkeypatch.setattr(polyadapt.training, "train", spy)
    config = _config(tmp_path, tiny_base_model("image"), precision="bf16", dtype="bfloat16", name="bf16")
    run, adapter, report = runner.adapt(pm, config)
    model, result = trained[0]
    assert result.precision == "bf16" and adapter.train_metrics["precision"] == "bf16"
    assert all(math.isfinite(row["train_loss"]) for row in result.log)
    # frozen UNet and text encoder in bf16, the VAE (used once, for the latent cache) in fp32
    frozen = {p.dtype for n, p in model.unet.named_parameters() if "lora_" not in n}
    assert frozen == {torch.bfloat16}
    assert next(model.text_encoder.parameters()).dtype == torch.bfloat16
    assert adapter.train_metrics["latents_cached"] is True
    # LoRA weights train in fp32 and are saved in fp32
    assert {p.dtype for p in model.unet.parameters() if p.requires_grad} == {torch.float32}
    with safe_open(str(run.adapter_dir / WEIGHTS_NAME), "pt") as handle:
        assert {handle.get_tensor(k).dtype for k in handle.keys()} == {torch.float32}
    (row,) = report.rows  # evaluation loads the adapter into an fp32 pipeline
    assert math.isfinite(row.base) and math.isfinite(row.adapted) and row.adapted != row.base


def test_fp16_on_cpu_is_refused(tiny_base_model, tmp_path):
    pm = PluginManager(load_entrypoints=False, plugins={"image": polyadapt_image})
    config = _config(tmp_path, tiny_base_model("image"), precision="fp16", dtype="float32", name="fp16")
    if torch.cuda.is_available():
        pytest.skip("fp16 is allowed where CUDA is")
    with pytest.raises(ConfigError, match="fp16 needs a CUDA GPU"):
        runner.adapt(pm, config)
