"""The serving audit log (JSON lines, safe under threads and processes) and image metadata."""

from __future__ import annotations

import functools
import json
import multiprocessing
import stat
import threading
from pathlib import Path

import pytest
from PIL import Image
from PIL.ExifTags import GPS, IFD, Base
from PIL.PngImagePlugin import PngInfo
from polyadapt.errors import DataError
from polyadapt.governance.audit import AuditLog
from polyadapt.modalities.image_metadata import strip_image_metadata
from polyadapt.governance.policy import Policy
from polyadapt.governance.redact import Redactor
from polyadapt.governance.scanners import builtin_scanners

# -- audit log -----------------------------------------------------------------------------


def test_audit_lines_have_the_fields_and_no_content(tmp_path: Path):
    log = AuditLog(tmp_path / "audit" / "audit.jsonl")
    redactor = Redactor(Policy(), builtin_scanners(), b"k" * 32)
    outcome = redactor.apply("mail ann@example.com or bob@example.com, call (415) 555-2671")
    for rule, action, count in outcome.audit_entries():
        log.record("insurance", "smollm2", "output", rule, action, count)
    log.record(None, "smollm2", "prompt", "pii.email", "redact", 1)
    entries = log.read()
    assert [(e["rule"], e["action"], e["count"]) for e in entries[:2]] == [
        ("pii.email", "redact", 2),
        ("pii.phone", "redact", 1),
    ]
    assert set(entries[0]) == {"time", "model", "adapter", "direction", "rule", "action", "count"}
    assert entries[0]["adapter"] == "insurance" and entries[2]["adapter"] is None
    assert entries[0]["time"].endswith("Z") and entries[2]["direction"] == "prompt"
    raw = log.path.read_text()
    assert "ann@" not in raw and "555" not in raw
    assert stat.S_IMODE(log.path.stat().st_mode) == 0o600


def test_audit_rejects_bad_direction_and_count(tmp_path: Path):
    log = AuditLog(tmp_path / "a.jsonl")
    with pytest.raises(ValueError, match="direction"):
        log.record(None, "m", "Side ways!", "pii.email", "redact", 1)  # not a lower-case word
    with pytest.raises(ValueError, match="count"):
        log.record(None, "m", "output", "pii.email", "redact", -1)
    assert log.read() == []


def _write_many(path: str, worker: int, n: int) -> None:
    log = AuditLog(path)
    for i in range(n):
        log.record(f"adapter-{worker}", "model-" + "x" * 200, "output", "pii.email", "redact", i)


def test_audit_appends_whole_lines_under_threads_and_processes(tmp_path: Path):
    path = str(tmp_path / "audit.jsonl")
    threads = [threading.Thread(target=_write_many, args=(path, w, 200)) for w in range(4)]
    ctx = multiprocessing.get_context("spawn")
    processes = [ctx.Process(target=_write_many, args=(path, 10 + w, 200)) for w in range(2)]
    for worker in [*threads, *processes]:
        worker.start()
    for worker in [*threads, *processes]:
        worker.join(timeout=60)
    assert all(p.exitcode == 0 for p in processes)
    lines = Path(path).read_text().splitlines()
    assert len(lines) == 6 * 200
    entries = [json.loads(line) for line in lines]  # every line is whole JSON
    for worker in [0, 1, 2, 3, 10, 11]:
        counts = [e["count"] for e in entries if e["adapter"] == f"adapter-{worker}"]
        assert counts == list(range(200))


# -- images --------------------------------------------------------------------------------


def _photo(path: Path) -> None:
    image = Image.new("RGB", (8, 6), (200, 10, 10))
    image.putpixel((0, 0), (0, 0, 255))
    exif = Image.Exif()
    exif[Base.Make] = "Canon"
    exif[Base.Orientation] = 6  # rotated 90 degrees clockwise
    exif.get_ifd(IFD.GPSInfo).update(
        {
            GPS.GPSLatitudeRef: "N",
            GPS.GPSLatitude: (51.0, 30.0, 0.0),
            GPS.GPSLongitudeRef: "W",
            GPS.GPSLongitude: (0.0, 7.0, 0.0),
        }
    )
    image.save(path, exif=exif, comment=b"taken by Jane", xmp=b"<x:xmpmeta>Jane</x:xmpmeta>", icc_profile=_srgb())


@functools.lru_cache(maxsize=1)  # built once: the profile's header holds its creation time (to the second)
def _srgb() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def test_exif_gps_xmp_and_comment_are_stripped(tmp_path: Path):
    src, dst = tmp_path / "photo.jpg", tmp_path / "clean" / "photo.jpg"
    _photo(src)
    with Image.open(src) as before:
        assert before.getexif().get_ifd(IFD.GPSInfo)
    removed = strip_image_metadata(src, dst)
    assert removed == ["comment", "exif", "gps", "xmp"]
    with Image.open(dst) as after:
        assert len(after.getexif()) == 0
        assert not after.getexif().get_ifd(IFD.GPSInfo)
        assert not {"exif", "xmp", "comment"} & set(after.info)
        assert after.size == (6, 8)  # the orientation was applied to the pixels
        assert after.format == "JPEG"
        assert after.info.get("icc_profile") == _srgb()  # the colour profile is kept, on purpose
    data = dst.read_bytes()
    assert b"Jane" not in data and b"Canon" not in data
    assert strip_image_metadata(dst, dst) == []  # nothing left to remove


def test_png_text_chunks_are_stripped_and_palette_kept(tmp_path: Path):
    info = PngInfo()
    info.add_text("Author", "Jane Doe")
    info.add_itxt("Location", "51.5N 0.1W")
    image = Image.new("P", (4, 4))
    image.putpalette([0, 0, 0, 255, 0, 0] * 128)
    image.putpixel((1, 1), 1)
    path = tmp_path / "a.png"
    image.save(path, pnginfo=info, transparency=0)
    assert strip_image_metadata(path, path) == ["text:Author", "text:Location"]
    with Image.open(path) as clean:
        assert clean.mode == "P" and clean.info.get("transparency") == 0
        assert clean.getpixel((1, 1)) == 1 and clean.getpalette()[3:6] == [255, 0, 0]
        assert not getattr(clean, "text", {})
    assert b"Jane" not in path.read_bytes()


def test_unreadable_image_is_a_data_error(tmp_path: Path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(DataError, match="cannot read the image"):
        strip_image_metadata(bad, tmp_path / "out.jpg")
    with pytest.raises(DataError, match="no such image"):
        strip_image_metadata(tmp_path / "absent.png", tmp_path / "out.png")


def test_governance_still_exports_the_image_metadata_stripper():
    import polyadapt.governance as governance

    assert governance.strip_image_metadata is strip_image_metadata
