"""Image folders with captions: loading, cleaning, quarantine, resizing and cropping.

Two layouts are read (the Hugging Face ``imagefolder`` one and the caption-file one):

- ``metadata.jsonl`` or ``metadata.csv`` in the folder, one row per image with
  ``file_name`` (relative to the folder), the caption in ``text`` (or ``caption``) and,
  optionally, ``consent`` (the policy may require it for images of people);
- no metadata file: every image in the folder (and its sub-folders) with a ``.txt`` file
  of the same name beside it holding the caption. This layout carries no consent field.

Every image is re-saved from its pixels only
(:func:`polyadapt.modalities.image_metadata.strip_image_metadata`: EXIF with GPS, XMP, IPTC,
comments and text chunks removed, orientation applied) into ``clean_dir`` under the hash of
its clean bytes; nothing downstream reads the original.
A file that is missing, not an image, corrupt, truncated or smaller than ``min_size`` is
quarantined with its reason (never its content) and the load goes on.

A record is JSON (so governance hashes and scans it)::

    {"file_name": "photos/a.jpg", "image": "<sha256>.jpg", "image_sha256": "<sha256>",
     "width": 640, "height": 480, "text": "a caption", "consent": true,
     "stripped": ["exif", "gps"]}

``text`` and ``file_name`` are the scanned fields: captions pass the PII scanners and
the policy's blocked terms. No model code lives here: resizing and cropping to a
training size are plain Pillow functions the plugins call.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path, PurePosixPath
from typing import Any

from polyadapt.errors import DataError
from polyadapt.modalities.records import Dataset, Quarantined
from polyadapt.modalities.tabular import ParseFailure, read_records

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
METADATA_FILES = ("metadata.jsonl", "metadata.csv")
CAPTION_FIELDS = ("text", "caption")
KIND = "image-caption"
#: Aspect ratios (width / height) the buckets cover when aspect-ratio bucketing is on.
BUCKET_RATIOS = (1.0, 4 / 3, 3 / 4, 3 / 2, 2 / 3, 16 / 9, 9 / 16)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _rows(folder: Path, caption_field: str | None) -> tuple[list[tuple[int | None, Any]], str]:
    """(line, row) pairs and the layout name; rows are dicts with file_name and a caption."""
    for name in METADATA_FILES:
        path = folder / name
        if path.is_file():
            return read_records(path), name
    rows: list[tuple[int | None, Any]] = []
    for image in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS):
        caption_file = image.with_suffix(".txt")
        row: dict[str, Any] = {"file_name": image.relative_to(folder).as_posix()}
        if caption_file.is_file():
            row[caption_field or "text"] = caption_file.read_text(encoding="utf-8", errors="replace").strip()
        rows.append((None, row))
    return rows, "caption files"


def _caption(row: dict[str, Any], caption_field: str | None) -> Any:
    if caption_field:
        return row.get(caption_field)
    return next((row[f] for f in CAPTION_FIELDS if row.get(f) not in (None, "")), None)


def _inside(folder: Path, file_name: str) -> Path | None:
    """The file ``file_name`` names inside ``folder``; None when it points outside."""
    relative = PurePosixPath(file_name.replace("\\", "/"))
    if relative.is_absolute() or ".." in relative.parts:
        return None
    return folder / Path(*relative.parts)


def _unreadable_reason(exc: BaseException) -> str:
    text = str(exc)
    if "truncated" in text.lower():
        return "corrupt image: the file is truncated"
    if "cannot identify" in text.lower() or "unknown image format" in text.lower():
        return "not an image: the file's content is no image format Pillow reads"
    return f"corrupt image: {type(exc).__name__}"


def clean_image(source: Path, clean_dir: Path) -> tuple[Path, list[str], tuple[int, int]]:
    """Write ``source``'s pixels without metadata into ``clean_dir`` under their hash.

    Returns (clean path, what was removed, (width, height)); raises :class:`DataError` for
    a file Pillow cannot read whole.
    """
    from PIL import Image

    from polyadapt.modalities.image_metadata import strip_image_metadata

    clean_dir.mkdir(parents=True, exist_ok=True)
    staging = clean_dir / f".incoming-{os.getpid()}{source.suffix.lower()}"
    try:
        removed = strip_image_metadata(source, staging)
        digest = _sha256(staging)
        target = clean_dir / f"{digest}{source.suffix.lower()}"
        os.replace(staging, target)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    with Image.open(target) as image:
        size = image.size
    return target, removed, size


def load_image_folder(
    path: Path | str,
    *,
    clean_dir: Path | str,
    min_size: int = 8,
    caption_field: str | None = None,
    consent_field: str = "consent",
) -> Dataset:
    """Load the captioned images under ``path`` (a folder, or its ``metadata.jsonl``/``.csv``).

    :param clean_dir: where the metadata-free copies go (the plugin's run folder).
    :param min_size: images whose shorter side is below this many pixels are quarantined.
    :param caption_field: the caption column; by default ``text``, else ``caption``.
    :param consent_field: the column copied into records as ``consent`` when present.
    :raises DataError: ``path`` is neither a folder nor a metadata file.
    """
    path, clean_dir = Path(path), Path(clean_dir)
    folder = path.parent if path.is_file() and path.name in METADATA_FILES else path
    if not folder.is_dir():
        raise DataError(
            f"{path}: not an image folder; give a folder with metadata.jsonl/metadata.csv "
            "(file_name, text) or images with a .txt caption beside each"
        )
    rows, _layout = _rows(folder, caption_field)
    dataset = Dataset(source=folder, kind=KIND, scanned_fields=("text", "file_name"))
    seen: set[str] = set()
    for index, (line, row) in enumerate(rows):

        def reject(reason: str, line: int | None = line, index: int = index) -> None:
            dataset.quarantined.append(Quarantined(source=str(folder), index=index, reason=reason, line=line))

        if isinstance(row, ParseFailure):
            reject(str(row))
            continue
        if not isinstance(row, dict) or not isinstance(row.get("file_name"), str) or not row["file_name"].strip():
            reject("missing field: file_name")
            continue
        file_name = row["file_name"].strip()
        caption = _caption(row, caption_field)
        if not isinstance(caption, str) or not caption.strip():
            reject("missing caption: no text/caption (or .txt file) for this image")
            continue
        source = _inside(folder, file_name)
        if source is None:
            reject("bad file_name: it points outside the image folder")
            continue
        if not source.is_file():
            reject("missing file: no such image in the folder")
            continue
        if source.suffix.lower() not in IMAGE_EXTENSIONS:
            reject(
                f"not an image: extension {source.suffix or '(none)'!r} is not one of "
                f"{', '.join(sorted(IMAGE_EXTENSIONS))}"
            )
            continue
        try:
            clean, removed, (width, height) = clean_image(source, clean_dir)
        except DataError as exc:
            reject(_unreadable_reason(exc.__context__ or exc))
            continue
        except Exception as exc:  # noqa: BLE001 - decompression bombs and other Pillow errors
            reject(_unreadable_reason(exc))
            continue
        if min(width, height) < min_size:
            clean.unlink(missing_ok=True)  # nothing refers to it
            reject(f"too small: {width}x{height} pixels, the shorter side must be at least {min_size}")
            continue
        digest = clean.stem
        if digest in seen:
            reject("duplicate image: the same pixels appear earlier in the folder")
            continue
        seen.add(digest)
        record: dict[str, Any] = {
            "file_name": file_name,
            "image": clean.name,
            "image_sha256": digest,
            "width": width,
            "height": height,
            "text": caption.strip(),
            "stripped": removed,
        }
        if consent_field in row and row[consent_field] not in (None, ""):
            record["consent"] = row[consent_field]
        dataset.records.append(record)
        dataset.lines.append(line)
    return dataset


# ---------------------------------------------------------------------------------------
# Pixels
# ---------------------------------------------------------------------------------------


def open_rgb(path: Path | str):
    """The image at ``path`` as RGB; transparent pixels are put on white."""
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
            rgba = image.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(white, rgba).convert("RGB")
        return image.convert("RGB")


def make_buckets(resolution: int, multiple: int, ratios: tuple[float, ...] = BUCKET_RATIOS) -> list[tuple[int, int]]:
    """(width, height) sizes of about ``resolution``² pixels, each side a multiple of ``multiple``."""
    buckets: list[tuple[int, int]] = []
    for ratio in ratios:
        width = max(multiple, round(resolution * ratio**0.5 / multiple) * multiple)
        height = max(multiple, round(resolution / ratio**0.5 / multiple) * multiple)
        if (width, height) not in buckets:
            buckets.append((width, height))
    return buckets


def nearest_bucket(width: int, height: int, buckets: list[tuple[int, int]]) -> tuple[int, int]:
    """The bucket whose aspect ratio is closest to ``width / height`` (in log terms)."""
    import math

    aspect = math.log(width / height)
    return min(buckets, key=lambda b: abs(math.log(b[0] / b[1]) - aspect))


def resize_to_cover(image, size: tuple[int, int]):
    """``image`` scaled (Lanczos) so that it covers ``size`` = (width, height) with the least excess."""
    from PIL import Image

    width, height = size
    scale = max(width / image.width, height / image.height)
    new = (max(width, round(image.width * scale)), max(height, round(image.height * scale)))
    return image if new == image.size else image.resize(new, Image.Resampling.LANCZOS)


def center_crop(image, size: tuple[int, int]):
    """The centre ``size`` = (width, height) of ``image`` (which must cover it)."""
    width, height = size
    left, top = (image.width - width) // 2, (image.height - height) // 2
    return image.crop((left, top, left + width, top + height))


def resize_and_crop(image, size: tuple[int, int], crop: str = "center"):
    """``image`` resized to cover ``size`` and cropped to it (``center``; ``none`` only resizes)."""
    covered = resize_to_cover(image, size)
    return center_crop(covered, size) if crop == "center" else covered
