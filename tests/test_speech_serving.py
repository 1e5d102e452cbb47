"""``POST /v1/audio/transcriptions``: two LoRA adapters on one tiny Whisper, switched per
request; every answer equals plain whisper + peft with only that adapter. Formats, errors
and the serving policy on transcripts (audited as ``transcript``)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
whisper = pytest.importorskip("whisper")
pytest.importorskip("multipart")

from fastapi.testclient import TestClient  # noqa: E402

import polyadapt_speech  # noqa: E402
from polyadapt.config import RunConfig  # noqa: E402
from polyadapt.gate import build_redactor  # noqa: E402
from polyadapt.governance.audit import AuditLog  # noqa: E402
from polyadapt.governance.policy import load_policy  # noqa: E402
from polyadapt.modalities.audio import decode_audio  # noqa: E402
from polyadapt.plugins import PluginManager  # noqa: E402
from polyadapt.serving.app import build_app, build_app_from_runs  # noqa: E402
from polyadapt.serving.guard import ServingGuard  # noqa: E402
from polyadapt.types import AdapterArtifact  # noqa: E402
from polyadapt_speech.model import whisper_of  # noqa: E402
from polyadapt_speech.task import SpeechRecognitionTask  # noqa: E402
from polyadapt_speech.testing import build_tiny_whisper, tone  # noqa: E402
from polyadapt_speech.transcribe import transcribe_samples  # noqa: E402
from polyadapt_speech.types import TranscriptionResult  # noqa: E402
from speech_helpers import write_clip  # noqa: E402

BASE = "tiny-whisper.pt"
MAX_TOKENS = 10


def plugin_manager() -> PluginManager:
    return PluginManager(load_entrypoints=False, plugins={"speech": polyadapt_speech})


def save_random_adapter(checkpoint: Path, target: Path, seed: int) -> None:
    """A LoRA adapter with random (non-zero) weights on the decoder's attention."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    base = whisper.load_model(str(checkpoint), device="cpu")
    config = LoraConfig(
        r=4,
        lora_alpha=32,
        target_modules=r"decoder\.blocks\.\d+\.(attn|cross_attn)\.(query|value|out)",
        init_lora_weights=False,
    )
    get_peft_model(base, config).save_pretrained(target)


def make_run_folder(root: Path, checkpoint: Path, name: str, seed: int) -> Path:
    run_dir = root / name
    run_dir.mkdir(parents=True)
    config = RunConfig.model_validate(
        {
            "task": "speech-recognition",
            "base_model": {"id": str(checkpoint), "dtype": "float32"},
            "data": {"train": str(root / "train")},
            "task_options": {"max_decode_tokens": MAX_TOKENS},
            "output": {"dir": str(root), "name": name, "adapter_name": name},
        }
    )
    (run_dir / "config.yaml").write_text(config.to_yaml())
    save_random_adapter(checkpoint, run_dir / "adapter", seed)
    (run_dir / "adapter.json").write_text(
        json.dumps(AdapterArtifact(path=run_dir / "adapter", base_model=str(checkpoint)).to_dict())
    )
    return run_dir


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("speech-serve")
    checkpoint = build_tiny_whisper(root / BASE)
    runs = [make_run_folder(root / "runs", checkpoint, name, seed) for name, seed in (("claims", 1), ("medical", 2))]
    clips = {
        name: write_clip(root / f"{name}.wav", tone(1.2, freq, seed=i))
        for i, (name, freq) in enumerate((("a", 330.0), ("b", 550.0)))
    }
    return {"checkpoint": checkpoint, "runs": runs, "clips": clips, "audit": root / "audit.jsonl"}


def plain_transcript(checkpoint: Path, adapter_dir: Path | None, clip: Path) -> str:
    """What plain whisper (+ peft with only that adapter) writes for ``clip``."""
    from peft import PeftModel

    model = whisper.load_model(str(checkpoint), device="cpu").eval()
    if adapter_dir is not None:
        model = whisper_of(PeftModel.from_pretrained(model, str(adapter_dir)).eval())
    (result,) = transcribe_samples(model, [decode_audio(clip)], max_tokens=MAX_TOKENS)
    return result.text


def post(client, clip: Path, model: str, **form):
    with clip.open("rb") as handle:
        return client.post(
            "/v1/audio/transcriptions", data={"model": model, **form}, files={"file": (clip.name, handle, "audio/wav")}
        )


def test_two_adapters_switched_per_request_match_plain_whisper(served):
    app = build_app_from_runs(plugin_manager(), served["runs"], audit_log=served["audit"])
    with TestClient(app) as client:
        models = {m["id"] for m in client.get("/v1/models").json()["data"]}
        assert models == {BASE, f"{BASE}:claims", f"{BASE}:medical"}
        answers = {}
        for model in (f"{BASE}:claims", BASE, f"{BASE}:medical", f"{BASE}:claims"):
            for clip_name, clip in served["clips"].items():
                response = post(client, clip, model)
                assert response.status_code == 200, response.text
                answers.setdefault((model, clip_name), set()).add(response.json()["text"])
        verbose = post(client, served["clips"]["a"], f"{BASE}:medical", response_format="verbose_json").json()
    assert all(len(texts) == 1 for texts in answers.values()), answers  # same answer after switching back
    adapters = {
        BASE: None,
        f"{BASE}:claims": served["runs"][0] / "adapter",
        f"{BASE}:medical": served["runs"][1] / "adapter",
    }
    for (model, clip_name), texts in answers.items():
        assert texts == {plain_transcript(served["checkpoint"], adapters[model], served["clips"][clip_name])}, model
    assert len({next(iter(answers[(m, "a")])) for m in adapters}) == 3, "base and adapters should differ"
    assert verbose["duration"] == 1.2 and verbose["language"] == "en"
    # verbose_json decodes with timestamps: the segment starts at the model's first timestamp
    first = verbose["segments"][0]
    assert 0.0 <= first["start"] < first["end"] <= 1.2 and first["text"] == verbose["text"]


class FakeSpeech:
    """A servable whose transcript holds an e-mail address, to test formats and the policy."""

    base_name = "fake"

    def load_adapter(self, name, path):
        pass

    def adapter_names(self):
        return []

    def generate(self, requests):
        raise AssertionError("not a text model")

    def transcribe(self, requests):
        return [
            TranscriptionResult(
                text="Write to jane.doe@example.com today. Thanks.",
                language="en",
                duration_s=65.5,
                segments=[
                    {"id": 0, "start": 0.0, "end": 30.0, "text": "Write to jane.doe@example.com today."},
                    {"id": 1, "start": 30.0, "end": 65.5, "text": "Thanks."},
                ],
            )
            for _ in requests
        ]


class TextOnly(FakeSpeech):
    base_name = "texty"
    transcribe = None


def test_formats_errors_and_the_policy_on_transcripts(tmp_path):
    policy = load_policy(None)
    audit = tmp_path / "audit.jsonl"
    guard = ServingGuard(policy, build_redactor(plugin_manager(), policy), AuditLog(audit))
    app = build_app(
        {"fake": FakeSpeech(), "texty": TextOnly()}, guard=guard, endpoints=SpeechRecognitionTask().routes()
    )
    clip = write_clip(tmp_path / "x.wav", tone(0.5, 400))
    with TestClient(app) as client:
        body = post(client, clip, "fake").json()
        assert body == {"text": "Write to <EMAIL_1> today. Thanks."}
        assert post(client, clip, "fake", response_format="text").text == "Write to <EMAIL_1> today. Thanks."
        srt = post(client, clip, "fake", response_format="srt").text
        assert srt == (
            "1\n00:00:00,000 --> 00:00:30,000\nWrite to <EMAIL_1> today.\n\n2\n00:00:30,000 --> 00:01:05,500\nThanks.\n"
        )
        vtt = post(client, clip, "fake", response_format="vtt").text
        assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:30.000\nWrite to <EMAIL_1> today.\n")
        verbose = post(client, clip, "fake", response_format="verbose_json").json()
        assert verbose["duration"] == 65.5 and [s["seek"] for s in verbose["segments"]] == [0, 3000]

        bad = post(client, clip, "fake", response_format="xml")
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "response_format"
        assert post(client, clip, "nope").status_code == 404
        texty = post(client, clip, "texty")
        assert texty.status_code == 400 and "does not offer audio transcription" in texty.json()["error"]["message"]
        missing = client.post("/v1/audio/transcriptions", data={"model": "fake"})
        assert missing.status_code == 400 and "file" in missing.json()["error"]["message"]
    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    assert {(e["direction"], e["rule"]) for e in lines} == {("transcript", "pii.email")}
    assert "jane" not in audit.read_text()


def test_unreadable_upload_is_a_bad_request(served):
    app = build_app_from_runs(plugin_manager(), served["runs"][:1], audit_log=served["audit"])
    with TestClient(app) as client:
        response = client.post(
            "/v1/audio/transcriptions",
            data={"model": BASE},
            files={"file": ("notes.txt", io.BytesIO(b"not audio at all"), "text/plain")},
        )
    assert response.status_code == 400 and "cannot read the audio file" in response.json()["error"]["message"]


def test_concurrent_uploads_share_one_transcribe_call(served, monkeypatch):
    """Uploads that arrive together reach ``servable.transcribe`` as one batch; each answer
    still equals plain whisper with that request's adapter."""
    import asyncio

    import httpx

    app = build_app_from_runs(plugin_manager(), served["runs"])
    registry = app.state.registry
    batcher = registry.bases[BASE].batcher_for("transcribe")
    monkeypatch.setattr(batcher, "batch_wait", 0.5)
    servable, batches = registry.bases[BASE].servable, []
    real = servable.transcribe

    def recording(requests):
        batches.append(sorted(str(r.adapter) for r in requests))
        return real(requests)

    monkeypatch.setattr(servable, "transcribe", recording)
    asks = [("claims", "a"), (None, "b"), ("medical", "a"), ("claims", "b")]

    async def ask_all():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            replies = await asyncio.gather(
                *(
                    http.post(
                        "/v1/audio/transcriptions",
                        data={"model": f"{BASE}:{adapter}" if adapter else BASE},
                        files={"file": ("clip.wav", served["clips"][clip].read_bytes(), "audio/wav")},
                    )
                    for adapter, clip in asks
                )
            )
        await registry.close()
        return replies

    replies = asyncio.run(ask_all())
    assert [r.status_code for r in replies] == [200] * 4, [r.text for r in replies]
    assert batches == [["None", "claims", "claims", "medical"]]
    adapters = {None: None, "claims": served["runs"][0] / "adapter", "medical": served["runs"][1] / "adapter"}
    for (adapter, clip), reply in zip(asks, replies):
        expected = plain_transcript(served["checkpoint"], adapters[adapter], served["clips"][clip])
        assert reply.json()["text"] == expected, adapter
