"""Adapters travel: each modality's adapter (and the Whisper export) loads in a fresh Python
process that never imports polyadapt (plain peft + transformers, diffusers, openai-whisper),
with every warning an error, and gives what polyadapt's trained model gives on the same
input; every adapter folder holds a model card filled from the run's lineage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

torch = pytest.importorskip("torch")

import polyadapt.training  # noqa: E402
from conftest import make_config  # noqa: E402
from polyadapt import runner  # noqa: E402
from polyadapt.config import RunConfig, load_config  # noqa: E402
from polyadapt.lineage.card import CARD_MARK  # noqa: E402
from polyadapt.plugins import PluginManager  # noqa: E402

#: Prepended to every script: the outside user's process must not load polyadapt at all.
_PRELUDE = """
import json, sys, warnings
# The one warning let through: peft 0.21 calls a transformers 5 method that was renamed. Any
# adapter triggers it (polyadapt has no part in it); every other warning is an error (-W error).
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
import torch
torch.set_num_threads(1)
args = json.loads(sys.argv[1])
"""
_EPILOGUE = """
assert not [m for m in sys.modules if m.split(".")[0].startswith("polyadapt")], "polyadapt was imported"
"""


def run_fresh(script: str, cwd: Path, **args: Any) -> None:
    """Run ``script`` in a new interpreter with ``-W error`` (a warning fails it), offline."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    for name in ("PYTHONPATH", "PYTHONWARNINGS"):
        env.pop(name, None)
    code = _PRELUDE + textwrap.dedent(script) + _EPILOGUE
    done = subprocess.run(
        [
            sys.executable,
            "-W",
            "error",
            "-c",
            code,
            json.dumps({k: str(v) for k, v in args.items()}),
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"the plain loader failed:\n{done.stderr[-4000:]}"
    assert "Unexpected keyword" not in done.stderr and "polyadapt" not in done.stderr, done.stderr


def keeping_trained_model(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The models the shared trainer trained (the one polyadapt saved as the adapter)."""
    trained: list[Any] = []
    real_train = polyadapt.training.train

    def spy(job, *args, **kwargs):
        result = real_train(job, *args, **kwargs)
        trained.append(job.model)
        return result

    monkeypatch.setattr(polyadapt.training, "train", spy)
    return trained


def check_card(run_dir: Path, folder: Path, library_name: str) -> dict[str, Any]:
    """The folder's README.md is polyadapt's card, with the run's figures in its model-index."""
    card = (folder / "README.md").read_text()
    assert CARD_MARK in card and "More Information Needed" not in card
    matter = yaml.safe_load(card[4:].split("\n---\n", 1)[0])
    assert matter["library_name"] == library_name
    metrics = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    indexed = {
        (result["dataset"]["name"], metric["name"]): metric["value"]
        for result in matter["model-index"][0]["results"]
        for metric in result["metrics"]
    }
    for row in metrics:
        assert indexed[(row["dataset"], f"{row['metric']} (adapted)")] == row["adapted"]
        assert indexed[(row["dataset"], f"{row['metric']} (base)")] == row["base"]
    root = json.loads((run_dir / "manifests" / "train.json").read_text())["root_hash"]
    assert f"polyadapt-manifest/train@sha256:{root}" in matter["datasets"]
    return matter


def check_plain_config(adapter_dir: Path, base_id: str) -> None:
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    assert "polyadapt" not in config
    if config.get("base_model_name_or_path"):
        assert config["base_model_name_or_path"] == base_id  # the base the user named, portable


@pytest.mark.slow
def test_text_adapter_loads_in_plain_peft_silently_and_identically(tiny_llama, text_data, tmp_path, monkeypatch):
    import polyadapt_text

    pm = PluginManager(load_entrypoints=False, plugins={"text": polyadapt_text})
    trained = keeping_trained_model(monkeypatch)
    config = load_config(make_config(tmp_path, tiny_llama, text_data, max_steps=8))
    run, _, _ = runner.adapt(pm, config)
    check_plain_config(run.adapter_dir, str(tiny_llama))
    assert json.loads((run.adapter_dir / "adapter_config.json").read_text())["base_model_name_or_path"]
    matter = check_card(run.dir, run.adapter_dir, "peft")
    # a hub reads base_model as a repository id: a local base is named by its folder's name
    assert matter["base_model"] == tiny_llama.name and matter["license"] == "cc0-1.0"

    ids = [[5, 17, 42, 99, 7, 3]]
    out = tmp_path / "plain.pt"
    run_fresh(
        """
        from peft import AutoPeftModelForCausalLM, PeftModel
        from transformers import AutoModelForCausalLM

        ids = torch.tensor(json.loads(args["ids"]))
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(args["base"]), args["adapter"])
        auto = AutoPeftModelForCausalLM.from_pretrained(args["adapter"])  # the base from adapter_config.json
        with torch.no_grad():
            logits = {"peft": model.eval()(input_ids=ids).logits, "auto": auto.eval()(input_ids=ids).logits}
        torch.save(logits, args["out"])
        """,
        cwd=tmp_path,
        ids=json.dumps(ids),
        base=tiny_llama,
        adapter=run.adapter_dir,
        out=out,
    )
    plain = torch.load(out)
    with torch.no_grad():
        ours = trained[0].lm.eval()(input_ids=torch.tensor(ids)).logits
    assert torch.allclose(plain["peft"], ours, atol=1e-5)
    assert torch.equal(plain["auto"], plain["peft"])

    # lineage show links the card
    from typer.testing import CliRunner

    from polyadapt.cli import app

    shown = CliRunner().invoke(app, ["lineage", "show", run.id, "--json"])
    assert shown.exit_code == 0, shown.output
    (adapter,) = json.loads(shown.output)["adapters"]
    assert adapter["card"] == str(run.adapter_dir / "README.md")


@pytest.mark.slow
def test_speech_adapter_and_merged_export_load_in_plain_whisper(tmp_path, monkeypatch):
    pytest.importorskip("whisper")
    import polyadapt_speech
    from polyadapt_speech.export import merge_adapter
    from polyadapt_speech.testing import build_tiny_whisper
    from speech_helpers import audio_folder, sentences, speech_config

    pm = PluginManager(load_entrypoints=False, plugins={"speech": polyadapt_speech})
    base = build_tiny_whisper(tmp_path / "base" / "tiny-whisper.pt")
    data = {
        "train": audio_folder(tmp_path / "train", sentences(8, 1)),
        "eval": audio_folder(tmp_path / "eval", sentences(2, 2), seed=100),
        "general": audio_folder(tmp_path / "general", ["Water boils at one hundred degrees."] * 2, seed=200),
    }
    trained = keeping_trained_model(monkeypatch)
    config = speech_config(tmp_path, base, data, max_steps=4)
    run, _, _ = runner.adapt(pm, RunConfig.model_validate(config))
    check_plain_config(run.adapter_dir, str(base))
    check_card(run.dir, run.adapter_dir, "peft")

    umask = os.umask(0o022)
    try:
        merged = merge_adapter(base, run.adapter_dir, tmp_path / "export" / "merged.pt")
    finally:
        os.umask(umask)
    assert merged.stat().st_mode & 0o777 == 0o644  # the umask's mode, not mkstemp's 0600
    check_card(run.dir, merged.parent, "openai-whisper")
    assert "soundfile.read" in (merged.parent / "README.md").read_text()

    out = tmp_path / "plain.pt"
    tokens = [[50257, 50362, 383, 1757]]
    run_fresh(
        """
        import soundfile
        import whisper
        from peft import PeftModel

        # a .wav read as an array: plain whisper needs no ffmpeg program for it
        audio, rate = soundfile.read(args["wav"], dtype="float32")
        assert rate == 16000
        mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(torch.from_numpy(audio)))[None, :, :300]
        tokens = torch.tensor(json.loads(args["tokens"]))
        adapted = PeftModel.from_pretrained(whisper.load_model(args["base"], device="cpu"), args["adapter"]).eval()
        merged = whisper.load_model(args["merged"], device="cpu").eval()
        with torch.no_grad():
            torch.save({"mel": mel, "peft": adapted(mel, tokens), "merged": merged(mel, tokens)}, args["out"])
        """,
        cwd=tmp_path,
        wav=data["eval"] / "clip000.wav",
        tokens=json.dumps(tokens),
        base=base,
        adapter=run.adapter_dir,
        merged=merged,
        out=out,
    )
    plain = torch.load(out)
    with torch.no_grad():
        ours = trained[0].model.eval()(plain["mel"], torch.tensor(tokens))
    assert torch.allclose(plain["peft"], ours, atol=1e-5)
    assert torch.allclose(plain["merged"], ours, atol=1e-4)


@pytest.mark.slow
def test_image_adapter_loads_in_plain_diffusers(tiny_base_model, tmp_path, monkeypatch):
    pytest.importorskip("diffusers")
    import polyadapt_image
    from diffusers import DiffusionPipeline
    from image_helpers import write_image_config
    from polyadapt_image.testing import make_test_images

    pm = PluginManager(load_entrypoints=False, plugins={"image": polyadapt_image})
    base = tiny_base_model("image")
    make_test_images(tmp_path / "data", n=8, size=24, bad=False)
    options = {"resolution": 16, "min_image_size": 8, "inference_steps": 2, "eval_seeds": [0]}
    path = write_image_config(tmp_path, base, tmp_path / "data", name="brand", task_options=options, max_steps=6)
    trained = keeping_trained_model(monkeypatch)
    torch.set_num_threads(1)
    run, _, _ = runner.adapt(pm, load_config(path))
    assert not (run.adapter_dir / "adapter_config.json").exists()  # diffusers' own format
    check_card(run.dir, run.adapter_dir, "diffusers")

    out = tmp_path / "plain.pt"
    script = """
        from diffusers import DiffusionPipeline

        pipe = DiffusionPipeline.from_pretrained(args["base"])
        pipe.set_progress_bar_config(disable=True)
        pipe.load_lora_weights(args["adapter"])
        image = pipe("a solvanta style banner", num_inference_steps=2, height=16, width=16,
                     generator=torch.Generator().manual_seed(5), output_type="pt").images
        torch.save(image, args["out"])
        """
    run_fresh(script, cwd=tmp_path, base=base, adapter=run.adapter_dir, out=out)
    ours_pipe = DiffusionPipeline.from_pretrained(base, unet=trained[0].unet.eval())
    ours_pipe.set_progress_bar_config(disable=True)
    with torch.no_grad():
        ours = ours_pipe(
            "a solvanta style banner",
            num_inference_steps=2,
            height=16,
            width=16,
            generator=torch.Generator().manual_seed(5),
            output_type="pt",
        ).images
    assert torch.allclose(torch.load(out), ours, atol=1e-5)
