"""Hostile files in audio and image folders: each bad file is quarantined with its name and a
reason a user can act on, the good files beside it still load, and nothing raises, hangs
(FIFOs) or decodes a bomb. Every bad file is built here, small, in ``tmp_path``."""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("soundfile")
pytest.importorskip("PIL")

import soundfile  # noqa: E402
from conftest import without_hanging  # noqa: E402
from PIL import Image, ImageFile  # noqa: E402

from polyadapt.modalities.audio import MAX_DECODE_S, decode_audio, load_audio_dataset  # noqa: E402
from polyadapt.modalities.image import load_image_folder  # noqa: E402


def reasons_by_name(dataset) -> dict[str, str]:
    """Quarantine reasons keyed by the file name each ends with, in parentheses."""
    out = {}
    for item in dataset.quarantined:
        assert item.reason.endswith(")"), item.reason
        out[item.reason.rsplit(" (", 1)[1][:-1]] = item.reason
    return out


# ---------------------------------------------------------------------------------------
# Audio
# ---------------------------------------------------------------------------------------


def tone(seconds: float, hz: float = 300.0, rate: int = 16_000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def audio_folder(root: Path, bad: dict[str, Any]) -> Path:
    """``root`` with ``good.wav`` and the ``bad`` files (name -> bytes, or None when the test
    makes the file itself), and a metadata.jsonl row for each."""
    root.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(root / "good.wav"), tone(1.0), 16_000)
    for name, data in bad.items():
        if data is not None:
            (root / name).write_bytes(data)
    rows = [{"file_name": name, "transcription": f"clip {name}"} for name in ["good.wav", *bad]]
    (root / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def load_audio(root: Path, **options: Any) -> tuple[list[str], dict[str, str]]:
    """(transcripts of the kept clips, quarantine reasons by file name)."""
    dataset = without_hanging(load_audio_dataset, root, **options)
    return [r["text"] for r in dataset.records], reasons_by_name(dataset)


def wav_bytes(samples: np.ndarray, tmp_path: Path, **options: Any) -> bytes:
    path = tmp_path / f"made.{options.get('format', 'wav').lower()}"
    soundfile.write(str(path), samples, 16_000, **options)
    return path.read_bytes()


def test_zero_length_audio_is_quarantined(tmp_path):
    kept, reasons = load_audio(audio_folder(tmp_path / "clips", {"empty.wav": b""}))
    assert kept == ["clip good.wav"]
    assert reasons["empty.wav"].startswith("empty: the file has no bytes")


def test_truncated_wav_is_quarantined_not_read_short(tmp_path):
    whole = wav_bytes(tone(2.0), tmp_path)
    cut = whole[: len(whole) // 3]
    assert len(soundfile.read(io.BytesIO(cut))[0]) > 0  # libsndfile alone reads it silently
    kept, reasons = load_audio(audio_folder(tmp_path / "clips", {"cut.wav": cut}))
    assert kept == ["clip good.wav"]
    assert reasons["cut.wav"].startswith("truncated: the WAV header announces 64000 bytes of samples but the file")
    assert "copy or export the file again" in reasons["cut.wav"]


def test_streamed_wav_with_unknown_length_is_not_called_truncated(tmp_path):
    """ffmpeg writing to a pipe leaves 0xFFFFFFFF as the data length: that is no truncation."""
    whole = bytearray(wav_bytes(tone(1.0), tmp_path))
    data_at = whole.index(b"data")
    whole[data_at + 4 : data_at + 8] = struct.pack("<I", 0xFFFFFFFF)
    kept, reasons = load_audio(audio_folder(tmp_path / "clips", {"streamed.wav": bytes(whole)}))
    assert kept == ["clip good.wav", "clip streamed.wav"] and not reasons


def test_text_renamed_wav_is_not_audio(tmp_path):
    text = b"file_name,transcription\na.wav,hello there\n" * 20
    kept, reasons = load_audio(audio_folder(tmp_path / "clips", {"notes.wav": text}))
    assert kept == ["clip good.wav"]
    assert reasons["notes.wav"].startswith("not audio: the file holds text, not sound")


@pytest.mark.parametrize("kind", ["flac-truncated", "ogg-corrupt-body"])
def test_compressed_audio_with_a_corrupt_body_is_quarantined(tmp_path, kind):
    if kind == "flac-truncated":
        data = wav_bytes(tone(2.0), tmp_path, format="FLAC")
        name, data = "cut.flac", data[: len(data) // 2]
    else:
        data = bytearray(wav_bytes(tone(2.0), tmp_path, format="OGG", subtype="VORBIS"))
        for i in range(400, len(data), 5):
            data[i] ^= 0x5A
        name, data = "bad.ogg", bytes(data)
    kept, reasons = load_audio(audio_folder(tmp_path / "clips", {name: data}))
    assert kept == ["clip good.wav"]
    assert reasons[name].startswith("corrupt: soundfile cannot decode it") or reasons[name].startswith(
        "corrupt: neither soundfile nor ffmpeg"
    )


def test_absurdly_long_audio_is_refused_from_its_header_without_decoding(tmp_path, monkeypatch):
    """31 minutes of FLAC silence is about 40 kB on disk; decoding it would take 120 MB."""
    rate = 8_000
    long_path = tmp_path / "clips" / "long.flac"
    long_path.parent.mkdir()
    with soundfile.SoundFile(str(long_path), "w", rate, 1, format="FLAC") as handle:
        block = np.zeros(rate * 60, dtype=np.int16)
        for _ in range(31):
            handle.write(block)
    assert long_path.stat().st_size < 1_000_000
    audio_folder(tmp_path / "clips", {"long.flac": None})
    decoded = []
    real_read = soundfile.read
    monkeypatch.setattr(soundfile, "read", lambda *a, **k: decoded.append(a) or real_read(*a, **k))

    kept, reasons = load_audio(tmp_path / "clips")
    assert kept == ["clip good.wav"]
    assert reasons["long.flac"].startswith("too long: 1860.0 s is over the 30 s limit")
    assert len(decoded) == 1  # good.wav only
    # any caller of decode_audio (serving too) has the MAX_DECODE_S ceiling
    with pytest.raises(Exception, match=f"too long: 1860.0 s is over the {MAX_DECODE_S:g} s limit"):
        decode_audio(long_path)
    assert len(decoded) == 1


def test_metadata_naming_a_missing_file(tmp_path):
    root = audio_folder(tmp_path / "clips", {"gone.wav": None})
    kept, reasons = load_audio(root)
    assert kept == ["clip good.wav"]
    assert reasons["gone.wav"].startswith("missing file: no such file in the data folder")


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "sub/../../outside.wav", "C:\\clips\\a.wav"])
def test_metadata_paths_that_leave_the_data_folder(tmp_path, name):
    soundfile.write(str(tmp_path / "outside.wav"), tone(1.0), 16_000)  # a real clip, outside
    root = audio_folder(tmp_path / "data" / "clips", {name: None})
    kept, reasons = load_audio(root)
    assert kept == ["clip good.wav"]
    assert reasons[name].startswith("bad file_name: path leaves the data folder")


def test_symlinks_leading_outside_are_refused_unless_allowed(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    soundfile.write(str(outside / "secret.wav"), tone(1.0, 500), 16_000)
    root = audio_folder(tmp_path / "clips", {"link.wav": None, "inner.wav": None})
    (root / "link.wav").symlink_to(outside / "secret.wav")
    (root / "inner.wav").symlink_to("good.wav")  # a link inside the folder is fine

    kept, reasons = load_audio(root)
    assert kept == ["clip good.wav", "clip inner.wav"]
    assert reasons["link.wav"].startswith("symlink leaves the data folder")
    assert "copy the file into the folder" in reasons["link.wav"]

    kept, reasons = load_audio(root, follow_external_symlinks=True)
    assert kept == ["clip good.wav", "clip link.wav", "clip inner.wav"] and not reasons


def test_symlink_loop_in_an_audio_folder(tmp_path):
    root = audio_folder(tmp_path / "clips", {"loop.wav": None})
    (root / "loop.wav").symlink_to("loop.wav")
    kept, reasons = load_audio(root)
    assert kept == ["clip good.wav"]
    assert reasons["loop.wav"].startswith("symlink loop")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_fifo_in_an_audio_folder_does_not_hang(tmp_path):
    root = audio_folder(tmp_path / "clips", {"pipe.wav": None, "folder.wav": None})
    os.mkfifo(root / "pipe.wav")
    (root / "folder.wav").mkdir()
    kept, reasons = load_audio(root)
    assert kept == ["clip good.wav"]
    assert reasons["pipe.wav"].startswith("not a regular file: it is a FIFO (named pipe)")
    assert reasons["folder.wav"].startswith("not a regular file: it is a folder")


# ---------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------


def noise_image(size: tuple[int, int] = (32, 32), seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


def image_bytes(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels, with a few bytes of data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def image_folder(root: Path, bad: dict[str, bytes | None], *, layout: str = "jsonl") -> Path:
    """``root`` with two good images and the ``bad`` files, captioned in ``layout``
    (``jsonl``: metadata.jsonl; ``txt``: a .txt beside each image)."""
    root.mkdir(parents=True, exist_ok=True)
    files = {"good1.png": image_bytes(noise_image(seed=1)), "good2.jpg": image_bytes(noise_image(seed=2), "JPEG")}
    for name, data in {**files, **bad}.items():
        if data is not None:
            (root / name).write_bytes(data)
    names = [*files, *bad]
    if layout == "jsonl":
        rows = [{"file_name": name, "text": f"caption of {name}"} for name in names]
        (root / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        for name in names:
            (root / name).with_suffix(".txt").write_text(f"caption of {name}")
    return root


def load_images(root: Path, tmp_path: Path, **options: Any) -> tuple[list[str], dict[str, str]]:
    """(file names of the kept images, quarantine reasons by file name)."""
    dataset = without_hanging(load_image_folder, root, clean_dir=tmp_path / "clean", min_size=8, **options)
    return [r["file_name"] for r in dataset.records], reasons_by_name(dataset)


GOOD = ["good1.png", "good2.jpg"]


def test_zero_length_image_is_quarantined(tmp_path):
    kept, reasons = load_images(image_folder(tmp_path / "data", {"empty.png": b""}), tmp_path)
    assert kept == GOOD
    assert reasons["empty.png"].startswith("empty: the file has no bytes")


@pytest.mark.parametrize("name, fmt", [("cut.png", "PNG"), ("cut.jpg", "JPEG")])
def test_truncated_image_is_quarantined(tmp_path, name, fmt):
    whole = image_bytes(noise_image((64, 64), seed=3), fmt)
    kept, reasons = load_images(image_folder(tmp_path / "data", {name: whole[: len(whole) // 2]}), tmp_path)
    assert kept == GOOD
    assert reasons[name].startswith("corrupt image:")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # nobody turned it on to let the file through
    assert len(list((tmp_path / "clean").iterdir())) == 2  # nothing left of the bad one


def test_header_claiming_a_bomb_is_refused_undecoded(tmp_path):
    bomb = png_header_only(50_000, 50_000)  # 2.5 G pixels claimed, about 100 bytes on disk
    assert len(bomb) < 200
    kept, reasons = load_images(image_folder(tmp_path / "data", {"bomb.png": bomb}), tmp_path)
    assert kept == GOOD
    assert reasons["bomb.png"].startswith("too large: the header claims more than")
    assert "not decoded" in reasons["bomb.png"]


def test_compressed_bomb_over_pillows_limit_is_refused(tmp_path, monkeypatch):
    """A single-colour PNG compresses about 1000:1; Pillow's limit is lowered so that a
    small one counts as a bomb (the default limit would need a 100 MP image), with both of
    Pillow's thresholds: the warning (over the limit) and the error (over twice it)."""
    flat = Image.new("L", (400, 400), 0)
    warn_size, error_size = image_bytes(flat), image_bytes(Image.new("L", (800, 800), 0))
    assert len(error_size) < 2_000  # 640,000 pixels in a few hundred bytes
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 150_000)
    root = image_folder(tmp_path / "data", {"warn.png": warn_size, "bomb.png": error_size})
    kept, reasons = load_images(root, tmp_path, max_pixels=10**9)
    assert kept == GOOD
    for name in ("warn.png", "bomb.png"):
        assert reasons[name].startswith("too large: the header claims more than 150,000 pixels"), reasons[name]


def test_huge_image_under_pillows_limit_is_refused_by_the_pixel_bound(tmp_path):
    """9000 x 9000 = 81 MP: under Pillow's bomb limit, over MAX_IMAGE_PIXELS (67 MP)."""
    huge = png_header_only(9_000, 9_000)
    bounded = image_bytes(noise_image((150, 150), seed=4))
    root = image_folder(tmp_path / "data", {"huge.png": huge, "big.png": bounded})
    kept, reasons = load_images(root, tmp_path)
    assert kept == [*GOOD, "big.png"]
    assert reasons["huge.png"].startswith("too large: 9000x9000 pixels is over the limit of 67,108,864 pixels")

    kept, reasons = load_images(root, tmp_path, max_pixels=10_000)
    assert kept == GOOD
    assert reasons["big.png"].startswith("too large: 150x150 pixels is over the limit of 10,000 pixels")


def test_text_renamed_png_is_not_an_image(tmp_path):
    kept, reasons = load_images(image_folder(tmp_path / "data", {"notes.png": b"a shopping list\n" * 30}), tmp_path)
    assert kept == GOOD
    assert reasons["notes.png"].startswith("not an image: the file's content is no image format Pillow reads")


def test_missing_and_bad_caption_files(tmp_path):
    root = image_folder(tmp_path / "data", {}, layout="txt")
    for name, caption in [("nocap.png", None), ("latin.png", "caf\xe9 au lait".encode("latin-1"))]:
        (root / name).write_bytes(image_bytes(noise_image(seed=len(name))))
        if caption is not None:
            (root / name).with_suffix(".txt").write_bytes(caption)
    (root / "long.png").write_bytes(image_bytes(noise_image(seed=9)))
    (root / "long.txt").write_text("tag, " * 20_000)
    (root / "utf16.png").write_bytes(image_bytes(noise_image(seed=10)))
    (root / "utf16.txt").write_text("a red barn", encoding="utf-16")  # with a byte-order mark: decoded

    dataset = without_hanging(load_image_folder, root, clean_dir=tmp_path / "clean", min_size=8)
    assert [r["file_name"] for r in dataset.records] == [*GOOD, "utf16.png"]
    assert dataset.records[-1]["text"] == "a red barn"
    reasons = reasons_by_name(dataset)
    assert reasons["nocap.png"].startswith("missing caption")
    assert reasons["latin.txt"].startswith("bad caption file: not valid UTF-8 text: byte 0xe9 at line 1, column 4")
    assert reasons["long.txt"].startswith("bad caption file: oversize")


def test_metadata_rows_with_bad_captions_or_paths(tmp_path):
    root = image_folder(tmp_path / "data", {})
    (tmp_path / "outside.png").write_bytes(image_bytes(noise_image(seed=7)))
    rows = [json.loads(line) for line in (root / "metadata.jsonl").read_text().splitlines()]
    rows += [
        {"file_name": "good1.png", "text": 42},
        {"file_name": "../outside.png", "text": "escapes"},
        {"file_name": str(tmp_path / "outside.png"), "text": "absolute"},
        {"file_name": "gone.png", "text": "not there"},
    ]
    (root / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    kept, reasons = load_images(root, tmp_path)
    assert kept == GOOD
    assert reasons["good1.png"].startswith("missing caption")
    assert reasons["../outside.png"].startswith("bad file_name: path leaves the data folder")
    assert reasons[str(tmp_path / "outside.png")].startswith("bad file_name: path leaves the data folder")
    assert reasons["gone.png"].startswith("missing file")


@pytest.mark.parametrize("layout", ["jsonl", "txt"])
def test_image_symlinks_leading_outside_are_refused_unless_allowed(tmp_path, layout):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "private.png").write_bytes(image_bytes(noise_image(seed=8)))
    root = image_folder(tmp_path / "data", {"link.png": None, "inner.png": None, "loop.png": None}, layout=layout)
    (root / "link.png").symlink_to(outside / "private.png")
    (root / "inner.png").symlink_to("good1.png")  # inside: read (and found a duplicate of good1)
    (root / "loop.png").symlink_to("loop.png")

    kept, reasons = load_images(root, tmp_path)
    assert kept == GOOD
    assert reasons["link.png"].startswith("symlink leaves the data folder")
    assert reasons["inner.png"].startswith("duplicate image")
    assert reasons["loop.png"].startswith("symlink loop")

    kept, reasons = load_images(root, tmp_path, follow_external_symlinks=True)
    assert sorted(kept) == sorted([*GOOD, "link.png"])


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
@pytest.mark.parametrize("layout", ["jsonl", "txt"])
def test_fifo_in_an_image_folder_does_not_hang(tmp_path, layout):
    root = image_folder(tmp_path / "data", {"pipe.png": None}, layout=layout)
    os.mkfifo(root / "pipe.png")
    if layout == "txt":  # a caption file that is a FIFO too
        (root / "capfifo.png").write_bytes(image_bytes(noise_image(seed=11)))
        os.mkfifo(root / "capfifo.txt")
    kept, reasons = load_images(root, tmp_path)
    assert kept == GOOD
    assert reasons["pipe.png"].startswith("not a regular file: it is a FIFO (named pipe)")
    if layout == "txt":
        assert reasons["capfifo.txt"].startswith("bad caption file: not a regular file: it is a FIFO")


def test_the_metadata_stripper_names_the_file_instead_of_a_pillow_traceback(tmp_path, monkeypatch):
    """``strip_image_metadata`` is public (governance re-exports it): bombs, broken files and
    FIFOs are DataErrors naming the file."""
    from polyadapt.errors import DataError
    from polyadapt.governance import strip_image_metadata

    (tmp_path / "bomb.png").write_bytes(png_header_only(50_000, 50_000))
    whole = image_bytes(noise_image((64, 64)))
    (tmp_path / "broken.png").write_bytes(whole[:8] + struct.pack(">I", 5) + whole[12:])  # Pillow: ValueError
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)
    (tmp_path / "warn.png").write_bytes(image_bytes(Image.new("L", (40, 40), 0)))  # over the limit, under twice it
    for name, message in [("bomb.png", "too large to decode"), ("warn.png", "too large to decode")]:
        with pytest.raises(DataError, match=rf"{name}: {message}"):
            strip_image_metadata(tmp_path / name, tmp_path / "out.png")
    monkeypatch.undo()
    with pytest.raises(DataError, match=r"broken\.png: cannot read the image"):
        strip_image_metadata(tmp_path / "broken.png", tmp_path / "out.png")
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe.png")
        with pytest.raises(DataError, match=r"pipe\.png: cannot read the image \(not a regular file: it is a FIFO"):
            without_hanging(strip_image_metadata, tmp_path / "pipe.png", tmp_path / "out.png")
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("plugin", ["speech", "image"])
def test_the_symlink_setting_reaches_the_folder_readers_from_the_run_config(monkeypatch, tmp_path, plugin):
    from types import SimpleNamespace

    from polyadapt.config import RunConfig

    if plugin == "speech":
        import polyadapt.modalities.audio as reader
        from polyadapt_speech import polyadapt_tasks
        from polyadapt_speech.options import SpeechOptions as Options

        name = "load_audio_dataset"
    else:
        import polyadapt.modalities.image as reader
        from polyadapt_image import polyadapt_tasks
        from polyadapt_image.options import ImageOptions as Options

        name = "load_image_folder"
    (task,) = polyadapt_tasks()
    seen: dict = {}
    monkeypatch.setattr(reader, name, lambda path, **kwargs: seen.update(kwargs))
    for allowed in (False, True):
        config = RunConfig.model_validate(
            {
                "task": task.name,
                "base_model": {"id": "x"},
                "data": {"train": "d", "follow_external_symlinks": allowed},
            }
        )
        run = SimpleNamespace(config=config, options=Options(), dir=tmp_path)
        task.load_dataset(run, tmp_path, "train")
        assert seen["follow_external_symlinks"] is allowed
