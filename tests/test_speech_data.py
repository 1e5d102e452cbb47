"""Speech data: audio folders decode, downmix and resample; bad clips are quarantined with
their reason; governance scans transcripts and refuses clips without consent."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("soundfile")
pytest.importorskip("torchaudio")

from polyadapt.config import RunConfig  # noqa: E402
from polyadapt.errors import DataError, GovernanceError  # noqa: E402
from polyadapt.modalities.audio import decode_audio, load_audio_dataset, load_waveform  # noqa: E402
from polyadapt.plugins import PluginManager  # noqa: E402
from polyadapt.runner import prepare_run  # noqa: E402
from polyadapt_speech.testing import tone  # noqa: E402
from speech_helpers import audio_folder, write_clip, write_metadata  # noqa: E402


@pytest.fixture(scope="module")
def pm():
    import polyadapt_speech

    return PluginManager(load_entrypoints=False, plugins={"speech": polyadapt_speech})


def test_stereo_44k_is_downmixed_and_resampled(tmp_path):
    left, right = tone(0.5, 440, sample_rate=44_100), tone(0.5, 440, sample_rate=44_100, seed=1)
    path = write_clip(tmp_path / "stereo.flac", np.stack([left, right], axis=1), rate=44_100)
    samples = decode_audio(path)
    assert samples.ndim == 1 and samples.dtype == np.float32
    assert abs(len(samples) - 8000) <= 1  # 0.5 s at 16 kHz
    assert decode_audio(path.read_bytes()).shape == samples.shape  # bytes as uploaded decode the same


def test_bad_clips_are_quarantined_with_reasons(tmp_path):
    root = tmp_path / "clips"
    write_clip(root / "good.wav", tone(1.0, 300))
    write_clip(root / "good.ogg", tone(1.0, 500), format="OGG", subtype="VORBIS")
    write_clip(root / "silent.wav", np.zeros(16_000, dtype=np.float32))
    write_clip(root / "long.wav", tone(31.0, 200, noise=0.0))
    (root / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio" * 10)
    (root / "empty.wav").write_bytes(b"")
    write_metadata(
        root,
        [
            {"file_name": "good.wav", "transcription": "The Solvanta rider.", "consent": True, "language": "en"},
            {"file_name": "good.ogg", "text": "The Marlowe deductible.", "consent": "yes"},
            {"file_name": "silent.wav", "transcription": "nothing", "consent": True},
            {"file_name": "long.wav", "transcription": "too long", "consent": True},
            {"file_name": "corrupt.wav", "transcription": "broken", "consent": True},
            {"file_name": "empty.wav", "transcription": "empty", "consent": True},
            {"file_name": "missing.wav", "transcription": "gone", "consent": True},
            {"file_name": "good.wav", "transcription": "  ", "consent": True},
        ],
        fmt="csv",
    )
    dataset = load_audio_dataset(root)
    assert [r["text"] for r in dataset.records] == ["The Solvanta rider.", "The Marlowe deductible."]
    first = dataset.records[0]
    assert first["duration_s"] == 1.0 and first["language"] == "en" and len(first["audio_sha256"]) == 64
    assert dataset.scanned_fields == ("text",)
    json.dumps(dataset.records)  # records are JSON: governance and lineage hash them
    reasons = {q.line: q.reason for q in dataset.quarantined}
    assert reasons[4].startswith("silent: RMS level -inf dBFS")
    assert reasons[5].startswith("too long: 31.0 s is over the 30 s limit")
    assert reasons[6].startswith("corrupt")
    assert reasons[7].startswith("empty: the file has no bytes")
    assert reasons[8].startswith("missing file")
    assert reasons[9].startswith("empty transcript")
    assert dataset.summary()["quarantine_reasons"] == {
        "silent": 1,
        "too long": 1,
        "corrupt": 1,
        "empty": 1,
        "missing file": 1,
        "empty transcript": 1,
    }
    assert load_waveform(first).shape == (16_000,)
    write_clip(root / "good.wav", tone(1.0, 900))  # changed after admission
    with pytest.raises(DataError, match="changed after it was admitted"):
        load_waveform(first)


def test_folder_without_usable_clips_is_an_error(tmp_path):
    root = tmp_path / "clips"
    write_clip(root / "silent.wav", np.zeros(1600, dtype=np.float32))
    write_metadata(root, [{"file_name": "silent.wav", "transcription": "x"}])
    with pytest.raises(DataError, match="no usable audio clips.*silent"):
        load_audio_dataset(root)
    with pytest.raises(DataError, match="metadata file"):
        load_audio_dataset(tmp_path)


def _run(pm, tmp_path, train):
    config = RunConfig.model_validate(
        {
            "task": "speech-recognition",
            "base_model": "unused.pt",
            "data": {"train": str(train), "licence": "CC0-1.0"},
            "output": {"dir": str(tmp_path / "runs"), "name": "gov"},
        }
    )
    return prepare_run(pm, config)


def test_strict_policy_refuses_clips_without_consent(pm, tmp_path):
    texts = ["The Solvanta rider covers it.", "The Marlowe deductible applies.", "Call the Quintrel desk."]
    root = audio_folder(tmp_path / "clips", texts, consent="yes")
    rows = [json.loads(line) for line in (root / "metadata.jsonl").read_text().splitlines()]
    rows[1]["consent"] = "no"
    del rows[2]["consent"]
    write_metadata(root, rows)
    run = _run(pm, tmp_path, root)
    with pytest.raises(GovernanceError, match=r"rule consent.*2 of 3 records lack.*line 2, line 3"):
        run.admit(load_audio_dataset(root), role="train")


def test_transcripts_pass_the_pii_scanners(pm, tmp_path):
    texts = ["The Solvanta rider covers it.", "Write to jane.doe@example.com about the claim."] + [
        f"The Marlowe deductible number {i}." for i in range(8)
    ]
    root = audio_folder(tmp_path / "clips", texts)
    run = _run(pm, tmp_path, root)
    admitted = run.admit(load_audio_dataset(root), role="train")
    assert "jane.doe@example.com" not in json.dumps(admitted.records)
    assert "<EMAIL_1>" in admitted.records[1]["text"]
    decisions = [json.loads(line) for line in (run.dir / "governance" / "train.jsonl").read_text().splitlines()]
    assert decisions[1]["action"] == "redacted" and decisions[1]["findings"] == {"email": 1}


def _dominant_hz(samples, rate=16_000):
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(spectrum.argmax())])


def test_mp3_decodes_through_soundfile(tmp_path):
    import soundfile

    if "MP3" not in soundfile.available_formats():
        pytest.skip("this libsndfile has no MP3 support")
    path = write_clip(
        tmp_path / "clip.mp3", tone(1.0, 440, sample_rate=22_050), rate=22_050, format="MP3", subtype="MPEG_LAYER_III"
    )
    samples = decode_audio(path)
    assert abs(len(samples) - 16_000) < 1_600  # the MP3 frame padding adds a little
    assert abs(_dominant_hz(samples) - 440) < 5


def _fake_ffmpeg(folder, body: str):
    """An ``ffmpeg`` on PATH that runs ``body`` (Python) with ``args`` = its arguments."""
    import os
    import stat
    import sys

    folder.mkdir()
    script = folder / "ffmpeg"
    script.write_text(f"#!{sys.executable}\nimport sys\nimport numpy as np\nargs = sys.argv[1:]\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return f"{folder}{os.pathsep}{os.environ['PATH']}"


def test_formats_soundfile_lacks_go_through_ffmpeg(tmp_path, monkeypatch):
    """Bytes soundfile cannot read are piped to ffmpeg, asked for mono 16-bit PCM at 16 kHz."""
    body = (
        "assert args[args.index('-ar') + 1] == '16000' and args[args.index('-ac') + 1] == '1'\n"
        "assert args[args.index('-i') + 1] == 'pipe:0' and sys.stdin.buffer.read() == b'm4a bytes'\n"
        "t = np.arange(8000) / 16000\n"
        "sys.stdout.buffer.write((np.sin(2 * np.pi * 300 * t) * 16000).astype('<i2').tobytes())"
    )
    monkeypatch.setenv("PATH", _fake_ffmpeg(tmp_path / "bin", body))
    samples = decode_audio(b"m4a bytes")
    assert len(samples) == 8000 and abs(_dominant_hz(samples) - 300) < 3
    assert 0.45 < float(np.abs(samples).max()) < 0.5


def test_undecodable_audio_says_why(tmp_path, monkeypatch):
    from polyadapt.modalities.audio import AudioError

    monkeypatch.setenv("PATH", _fake_ffmpeg(tmp_path / "bin", "sys.exit(1)"))
    with pytest.raises(AudioError, match="neither soundfile nor ffmpeg"):
        decode_audio(b"garbage")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(AudioError, match="ffmpeg is not installed"):
        decode_audio(b"garbage")
