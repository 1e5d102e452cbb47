"""The speech plugin end to end on a tiny random Whisper: adapt lowers the held-out loss and
writes a plain peft adapter; evaluation reports WER, CER, term recall and loss for the
domain and general sets; the merged export loads in plain whisper with base+adapter logits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
whisper = pytest.importorskip("whisper")

import polyadapt.training  # noqa: E402
from polyadapt import runner  # noqa: E402
from polyadapt.config import RunConfig  # noqa: E402
from polyadapt.errors import GovernanceError  # noqa: E402
from polyadapt.plugins import PluginManager  # noqa: E402
from polyadapt_speech.evaluate import error_rates, term_recall  # noqa: E402
from polyadapt_speech.export import merge_adapter  # noqa: E402
from polyadapt_speech.model import lora_target_pattern  # noqa: E402
from polyadapt_speech.testing import build_tiny_whisper  # noqa: E402
from speech_helpers import audio_folder, sentences, speech_config  # noqa: E402


@pytest.fixture(scope="module")
def pm():
    import polyadapt_speech

    return PluginManager(load_entrypoints=False, plugins={"speech": polyadapt_speech})


@pytest.fixture(scope="module")
def tiny_whisper(tmp_path_factory) -> Path:
    return build_tiny_whisper(tmp_path_factory.mktemp("whisper") / "tiny-whisper.pt")


@pytest.fixture
def speech_data(tmp_path) -> dict[str, Path]:
    return {
        "train": audio_folder(tmp_path / "train", sentences(16, 1)),
        "eval": audio_folder(tmp_path / "eval", sentences(4, 2), seed=100),
        "general": audio_folder(tmp_path / "general", ["Water boils at one hundred degrees."] * 2, seed=200),
    }


def test_adapt_lowers_heldout_loss_and_exports_a_plain_whisper_checkpoint(
    pm, tiny_whisper, speech_data, tmp_path, monkeypatch
):
    trained = []
    real_train = polyadapt.training.train

    def spy(job, *args, **kwargs):
        trained.append(job.model.model)
        return real_train(job, *args, **kwargs)

    monkeypatch.setattr(polyadapt.training, "train", spy)
    options = {"spec_augment": {"enabled": True, "time_width": 20, "freq_width": 8}}
    config = RunConfig.model_validate(speech_config(tmp_path, tiny_whisper, speech_data, task_options=options))
    run, adapter, report = runner.adapt(pm, config)

    rows = {(r.dataset, r.metric): r for r in report.rows}
    loss = rows[("domain (held-out)", "loss")]
    assert loss.adapted < loss.base * 0.7, loss
    assert {("domain (held-out)", m) for m in ("wer", "cer", "term_recall", "loss")} <= set(rows)
    assert rows[("domain (held-out)", "wer")].role == "domain"
    assert rows[("domain (held-out)", "term_recall")].role == "domain"
    assert rows[("general", "wer")].role == "general"
    assert report.samples and {"audio", "reference", "base", "adapted"} <= set(report.samples[0])
    for name in (
        "config.yaml",
        "run.json",
        "data_summary.json",
        "metrics.json",
        "adapter.json",
        "logs/loss.csv",
        "adapter/adapter_model.safetensors",
        "adapter/adapter_config.json",
        "manifests/train.json",
        "manifests/eval.json",
        "manifests/general.json",
        "governance/train.jsonl",
    ):
        assert (run.dir / name).is_file(), name
    record = json.loads((run.dir / "run.json").read_text())
    assert record["status"] == "completed"
    summary = json.loads((run.dir / "data_summary.json").read_text())
    assert summary["train_records"] == 16 and summary["heldout_records"] == 4
    assert summary["examples"] == {"train_clips": 16, "train_audio_s": 16.0}  # the task's facts
    assert adapter.train_metrics["train_clips"] == 16 and adapter.train_metrics["train_audio_s"] == 16.0

    # the adapter is plain peft on plain whisper; LoRA sits on encoder and decoder attention
    from peft import PeftModel
    from safetensors.torch import load_file

    names = list(load_file(run.adapter_dir / "adapter_model.safetensors"))
    assert any(".encoder.blocks.0.attn.query.lora_A" in n for n in names)
    assert any(".decoder.blocks.1.cross_attn.value.lora_B" in n for n in names)
    assert not any("mlp" in n for n in names)
    peft_model = PeftModel.from_pretrained(whisper.load_model(str(tiny_whisper), device="cpu"), run.adapter_dir)
    peft_model.eval()

    # merged export: plain whisper.load_model, the logits of base + adapter
    merged_path = merge_adapter(tiny_whisper, run.adapter_dir, tmp_path / "export" / "merged.pt")
    merged = whisper.load_model(str(merged_path), device="cpu").eval()
    assert not list(merged_path.parent.glob("*.tmp"))
    mel = torch.randn(2, 80, 300)
    tokens = torch.tensor([[50257, 50362, 383, 1757], [50257, 50362, 1081, 13]])
    with torch.no_grad():
        expected = peft_model(mel, tokens)
        assert torch.allclose(merged(mel, tokens), expected, atol=1e-4)
        assert torch.allclose(trained[0].eval()(mel, tokens), expected, atol=1e-5)
        with peft_model.disable_adapter():
            base_logits = peft_model(mel, tokens)
    assert not torch.allclose(base_logits, expected, atol=1e-3)


def test_missing_consent_refuses_the_run_before_training(pm, tiny_whisper, speech_data, tmp_path, monkeypatch):
    called = []
    monkeypatch.setattr(polyadapt.training, "train", lambda *a, **k: called.append(1))
    speech_data["train"] = audio_folder(tmp_path / "noconsent", sentences(4, 5), consent=None)
    config = RunConfig.model_validate(speech_config(tmp_path, tiny_whisper, speech_data))
    with pytest.raises(GovernanceError, match="rule consent"):
        runner.adapt(pm, config)
    assert not called
    record = json.loads((tmp_path / "runs" / "speech-run" / "run.json").read_text())
    assert record["status"] == "refused"


def test_lora_targets_follow_the_config():
    from polyadapt.config import LoraConfig

    assert (
        lora_target_pattern(LoraConfig(), "decoder")
        == r"(decoder)\.blocks\.\d+\.((attn|cross_attn)\.(query|key|value|out))"
    )
    pattern = lora_target_pattern(LoraConfig(target_modules="all-linear"), "encoder")
    import re

    assert re.fullmatch(pattern, "encoder.blocks.3.mlp.2") and not re.fullmatch(pattern, "decoder.blocks.0.mlp.0")
    assert re.fullmatch(
        lora_target_pattern(LoraConfig(target_modules=["value", "mlp.0"]), "both"), "decoder.blocks.0.mlp.0"
    )


def test_wer_cer_and_term_recall():
    refs = ["The Solvanta rider covers the Marlowe deductible.", "Hello there."]
    hyps = ["the solvanta rider covers the marlow deductible", "hello there"]
    wer, cer = error_rates(refs, hyps)
    assert wer == pytest.approx(1 / 9) and 0 < cer < 0.05  # 1 of 9 words
    recall, per_term = term_recall(refs, hyps, ["Solvanta rider", "Marlowe deductible", "Quintrel premium"])
    assert recall == 0.5 and per_term == {"Solvanta rider": 1.0, "Marlowe deductible": 0.0}


def test_each_pair_is_normalised_for_its_own_language():
    refs, hyps = ["I have twenty one cats.", "Guten Tag, Welt!"], ["i have 21 cats", "guten tag welt"]
    assert error_rates(refs, hyps, ["en", "de"])[0] == 0.0  # English spells numbers as digits
    assert error_rates(refs, hyps, "de")[0] > 0  # the basic normaliser does not


def test_multilingual_run_trains_each_record_in_its_own_language(pm, speech_data, tmp_path, monkeypatch):
    """Per-record languages (metadata ``language``) reach the decoder prompt of training
    and evaluation; the run lowers the held-out loss on a multilingual model."""
    import polyadapt_speech.data as speech_data_module
    import polyadapt_speech.evaluate as speech_evaluate
    from speech_helpers import write_metadata

    model = build_tiny_whisper(tmp_path / "multi.pt", multilingual=True)
    for name in ("train", "eval"):
        folder = speech_data[name]
        rows = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]
        write_metadata(folder, [{**row, "language": ("de", "fr")[i % 2]} for i, row in enumerate(rows)])
    prompts, decoded = [], []
    real_tokens, real_transcribe = speech_data_module.transcript_tokens, speech_evaluate.transcribe_mels

    def tokens_spy(model, text, language, task):
        prompts.append((language, task))
        return real_tokens(model, text, language, task)

    def transcribe_spy(model, mels, **options):
        decoded.append(options["language"])
        return real_transcribe(model, mels, **options)

    monkeypatch.setattr(speech_data_module, "transcript_tokens", tokens_spy)
    monkeypatch.setattr(speech_evaluate, "transcribe_mels", transcribe_spy)
    config = RunConfig.model_validate(speech_config(tmp_path, model, speech_data, max_steps=12))
    _, _, report = runner.adapt(pm, config)
    assert set(prompts) == {("de", "transcribe"), ("fr", "transcribe"), ("en", "transcribe")}  # general: en
    assert {"de", "fr"} <= set(decoded)
    loss = {(r.dataset, r.metric): r for r in report.rows}[("domain (held-out)", "loss")]
    assert loss.adapted < loss.base, loss


def test_teacher_forcing_targets_only_the_transcript(tmp_path):
    from polyadapt_speech.data import IGNORE, collate, transcript_tokens
    from polyadapt_speech.model import tokenizer_for

    model = whisper.load_model(str(build_tiny_whisper(tmp_path / "multi.pt", multilingual=True)), device="cpu")
    tokenizer = tokenizer_for(model, "de", "translate")
    tokens, prefix = transcript_tokens(model, "Guten Tag.", "de", "translate")
    assert tokens[:prefix] == [tokenizer.sot, tokenizer.language_token, tokenizer.translate, tokenizer.no_timestamps]
    assert tokens[-1] == tokenizer.eot and tokenizer.decode(tokens[prefix:-1]) == " Guten Tag."
    short, short_prefix = transcript_tokens(model, "Ja.", "de", "transcribe")
    batch = collate(
        [
            {"mel": torch.zeros(80, 300), "tokens": tokens, "prefix": prefix},
            {"mel": torch.zeros(80, 300), "tokens": short, "prefix": short_prefix},
        ]
    )
    labels = batch["labels"]
    assert labels[0].tolist() == [IGNORE] * (prefix - 1) + tokens[prefix:]
    assert batch["num_items"] == (len(tokens) - prefix) + (len(short) - short_prefix)
    assert (labels[1, len(short) - 1 :] == IGNORE).all()
