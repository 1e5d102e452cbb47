"""The image plugin end to end on a tiny Stable-Diffusion pipeline built from configs:
adapt lowers the held-out denoising loss, bad files are quarantined, nothing stored carries
EXIF/GPS, and a plain ``pipeline.load_lora_weights`` reproduces the adapted output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from PIL import Image  # noqa: E402

from image_helpers import adapt_keeping_model, one_thread, write_image_config  # noqa: E402, F401
import polyadapt_image  # noqa: E402
import polyadapt_image.loss as image_loss  # noqa: E402
from polyadapt import runner  # noqa: E402
from polyadapt.config import load_config  # noqa: E402
from polyadapt.errors import GovernanceError  # noqa: E402
from polyadapt.lineage.provenance import read_provenance, read_safetensors_metadata  # noqa: E402
from polyadapt.plugins import PluginManager  # noqa: E402
from polyadapt_image.model import WEIGHTS_NAME  # noqa: E402
from polyadapt_image.testing import make_test_images  # noqa: E402

TASK_OPTIONS = {"resolution": 16, "min_image_size": 8, "inference_steps": 2, "eval_seeds": [0, 1]}


@pytest.fixture(scope="module")
def pm():
    return PluginManager(load_entrypoints=False, plugins={"image": polyadapt_image})


@pytest.fixture(scope="module")
def tiny_sd(tiny_base_model) -> Path:
    return tiny_base_model("image")


def write_config(
    root: Path,
    model: Path,
    train: Path,
    *,
    name: str,
    eval_data: Path | None = None,
    task_options: dict | None = None,
    **training,
) -> Path:
    return write_image_config(
        root,
        model,
        train,
        name=name,
        eval_data=eval_data,
        task_options={**TASK_OPTIONS, **(task_options or {})},
        **training,
    )


@pytest.fixture(scope="module")
def adapted(pm, tiny_sd, tmp_path_factory):
    """One adapt run shared by the tests below, and the trained model the trainer returned."""
    root = tmp_path_factory.mktemp("image-run")
    made = make_test_images(root / "data", n=12, size=24)
    config = write_config(root, tiny_sd, root / "data", name="brand")
    return {**adapt_keeping_model(pm, config, root / "state"), "made": made, "root": root}


def test_adapt_lowers_heldout_denoising_loss(adapted):
    run, report = adapted["run"], adapted["report"]
    (row,) = report.rows
    assert row.role == "domain" and row.metric == "denoising_mse"
    assert row.adapted < row.base * 0.95, row
    for name in (
        "config.yaml",
        "run.json",
        "data_summary.json",
        "quarantine.jsonl",
        "metrics.json",
        "adapter.json",
        "logs/loss.csv",
        "samples/grid.png",
        "manifests/train.json",
        "governance/train.jsonl",
        f"adapter/{WEIGHTS_NAME}",
    ):
        assert (run.dir / name).is_file(), name
    record = json.loads((run.dir / "run.json").read_text())
    assert record["status"] == "completed"
    summary = json.loads((run.dir / "data_summary.json").read_text())
    assert summary["train_records"] == 9 and summary["heldout_records"] == 3
    assert summary["examples"]["metadata_stripped"] == {"exif": 1, "gps": 1}
    assert adapted["adapter"].train_metrics["latents_cached"] is True
    # the grid: one row per (distinct held-out caption, seed), base | adapted columns of 16 px
    rows = len(report.samples)
    assert rows >= 2 and rows % 2 == 0 and report.samples[0]["grid"] == "samples/grid.png"
    with Image.open(run.dir / "samples/grid.png") as grid:
        assert grid.size == (16 * 2 + 2, 16 * rows + 2 * (rows - 1))


def test_bad_files_are_quarantined_with_reasons(adapted):
    rows = [json.loads(line) for line in (adapted["run"].dir / "quarantine.jsonl").read_text().splitlines()]
    assert len(rows) == len(adapted["made"]["bad"]) == 5
    reasons = sorted(row["reason"].split(":")[0] for row in rows)
    assert reasons == ["corrupt image", "not an image", "not an image", "not an image", "too small"]
    assert all(row["line"] for row in rows)


def test_nothing_stored_carries_exif_or_gps(adapted):
    run = adapted["run"]
    images = [p for p in run.dir.rglob("*") if p.suffix.lower() in {".png", ".jpg", ".jpeg"}]
    assert len(images) >= 13  # 12 clean copies, the grid (and the loss curve)
    for path in images:
        with Image.open(path) as image:
            exif = image.getexif()
            assert not len(exif) and not exif.get_ifd(0x8825), path
            assert "exif" not in image.info, path
    assert "TestCam" not in "".join(p.read_text(errors="ignore") for p in run.dir.rglob("*.json*"))


def test_adapter_is_plain_diffusers_lora_with_provenance(adapted, tiny_sd):
    from diffusers import DiffusionPipeline

    run = adapted["run"]
    weights = run.adapter_dir / WEIGHTS_NAME
    metadata = read_safetensors_metadata(weights)
    assert metadata["polyadapt.run_id"] == run.id and "lora_adapter_metadata" in metadata
    assert read_provenance(run.adapter_dir)["intact"] is True

    def image(pipeline):
        return pipeline(
            "a solvanta style banner, variant 1",
            num_inference_steps=2,
            height=16,
            width=16,
            generator=torch.Generator().manual_seed(5),
            output_type="np",
        ).images

    trained_unet = adapted["model"].unet.eval()
    adapted_pipe = DiffusionPipeline.from_pretrained(tiny_sd, unet=trained_unet)
    plain = DiffusionPipeline.from_pretrained(tiny_sd)
    for pipe in (adapted_pipe, plain):
        pipe.set_progress_bar_config(disable=True)
    base_image = image(plain)
    plain.load_lora_weights(str(run.adapter_dir))  # no polyadapt involved
    assert abs(image(plain) - image(adapted_pipe)).max() < 1e-5
    assert abs(image(plain) - base_image).max() > 1e-3


def test_variants_random_crop_buckets_min_snr_v_prediction_text_encoder(pm, tiny_sd, tmp_path):
    """Random crop + flip (latents encoded every step), buckets, Min-SNR, v-prediction and a
    text-encoder LoRA, with a separate eval folder in the caption-file layout."""
    from diffusers import DiffusionPipeline
    from safetensors import safe_open

    make_test_images(tmp_path / "train", n=6, size=24, layout="csv", bad=False)
    make_test_images(tmp_path / "eval", n=2, size=20, layout="txt", bad=False, seed=1)
    options = {
        "crop": "random",
        "random_flip": True,
        "buckets": True,
        "min_snr_gamma": 5.0,
        "prediction_type": "v_prediction",
        "train_text_encoder": True,
        "eval_seeds": [0],
    }
    path = write_config(
        tmp_path,
        tiny_sd,
        tmp_path / "train",
        name="variants",
        eval_data=tmp_path / "eval",
        task_options=options,
        max_steps=3,
    )
    policy = tmp_path / "policy.yaml"  # the caption-file layout carries no consent
    policy.write_text("name: no-consent\nconsent:\n  required: {image: false}\n")
    config = load_config(path)
    config.governance.policy = policy
    run, adapter, report = runner.adapt(pm, config)
    assert adapter.train_metrics["latents_cached"] is False
    assert report.rows[0].dataset.startswith("domain")
    with safe_open(str(run.adapter_dir / WEIGHTS_NAME), "pt") as handle:
        keys = list(handle.keys())
    assert any(k.startswith("text_encoder.") for k in keys) and any(k.startswith("unet.") for k in keys)
    info = json.loads((run.adapter_dir / "polyadapt_image.json").read_text())
    assert info["prediction_type"] == "v_prediction" and info["text_encoder"] is True
    plain = DiffusionPipeline.from_pretrained(tiny_sd)
    plain.load_lora_weights(str(run.adapter_dir))
    assert plain.get_list_adapters() == {"unet": ["default_0"], "text_encoder": ["default_0"]}


def test_missing_consent_refuses_the_run_before_training(pm, tiny_sd, tmp_path):
    make_test_images(tmp_path / "data", n=4, bad=False, consent=None)
    config = load_config(write_config(tmp_path, tiny_sd, tmp_path / "data", name="no-consent"))
    with pytest.raises(GovernanceError, match="rule consent"):
        runner.adapt(pm, config)
    record = json.loads((tmp_path / "runs" / "no-consent" / "run.json").read_text())
    assert record["status"] == "refused"
    assert not (tmp_path / "runs" / "no-consent" / "adapter").exists()


def test_interrupted_run_resumes_to_identical_adapter(pm, tiny_sd, tmp_path, monkeypatch):
    """Random crops and flips are drawn from the trainer's checkpointed RNG: resume is exact."""
    from polyadapt.lineage.provenance import weights_hash

    make_test_images(tmp_path / "data", n=6, size=24, bad=False)
    options = {"crop": "random", "random_flip": True}
    ref_root = tmp_path / "ref"
    ref_root.mkdir()
    reference = load_config(
        write_config(
            ref_root,
            tiny_sd,
            tmp_path / "data",
            name="reference",
            task_options=options,
            max_steps=6,
            checkpoint_every=2,
            batch_size=2,
        )
    )
    reference.evaluation.enabled = False
    ref_run, _, _ = runner.adapt(pm, reference)

    config = load_config(
        write_config(
            tmp_path,
            tiny_sd,
            tmp_path / "data",
            name="resumed",
            task_options=options,
            max_steps=6,
            checkpoint_every=2,
            batch_size=2,
        )
    )
    config.evaluation.enabled = False
    real_loss, calls = image_loss.summed_loss, {"n": 0}

    def interrupting_loss(model, batch):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real_loss(model, batch)

    monkeypatch.setattr(image_loss, "summed_loss", interrupting_loss)
    with pytest.raises(KeyboardInterrupt):
        runner.adapt(pm, config)
    monkeypatch.setattr(image_loss, "summed_loss", real_loss)
    run, adapter, _ = runner.adapt(pm, config, resume=True)
    assert adapter.train_metrics["resumed_from"] == 3
    assert weights_hash(run.adapter_dir) == weights_hash(ref_run.adapter_dir)
