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
A file that is missing, empty, not an image, corrupt, truncated, smaller than
``min_size``, larger than ``max_pixels`` (judged from its header, before any pixel is
decoded: a decompression bomb is never expanded), or whose caption file is missing,
oversize or not text, is quarantined with its reason and its name (never its content) and
the load goes on. Names must stay inside the folder and symbolic links must not lead out
of it (unless ``follow_external_symlinks``); FIFOs and other special files are refused
without being opened (see :mod:`polyadapt.modalities.datafolder`). Pillow's
``LOAD_TRUNCATED_IMAGES`` is left off: a truncated image is an error, not grey pixels.

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
from polyadapt.modalities.datafolder import FOLLOW_EXTERNAL_SYMLINKS, FileProblem, locate, open_regular, read_regular
from polyadapt.modalities.records import Dataset, Origins, Quarantined
from polyadapt.modalities.tabular import ParseFailure, read_records

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
METADATA_FILES = ("metadata.jsonl", "metadata.csv")
CAPTION_FIELDS = ("text", "caption")
KIND = "image-caption"
#: Aspect ratios (width / height) the buckets cover when aspect-ratio bucketing is on.
BUCKET_RATIOS = (1.0, 4 / 3, 3 / 4, 3 / 2, 2 / 3, 16 / 9, 9 / 16)
#: The most pixels an image may have (width x height, from its header): 8192 x 8192, above
#: the 61 MP of today's largest camera sensors and far above any training resolution,
#: below Pillow's decompression-bomb warning (89.5 MP). Decoding and re-saving one such
#: image takes about 1 GB. Meant to become ``task_options.max_image_pixels``.
MAX_IMAGE_PIXELS = 8192 * 8192
#: The largest caption file read (bytes): a caption is a sentence or a list of tags; CLIP
#: reads 77 tokens. Meant to become ``task_options.max_caption_bytes``.
MAX_CAPTION_BYTES = 64 * 1024


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_caption(folder: Path, name: str, follow_external_symlinks: bool) -> str | ParseFailure | None:
    """The caption in the file ``name`` inside ``folder``; None when there is none, a
    :class:`ParseFailure` (the quarantine reason) when it cannot be used."""
    from polyadapt.textfiles import TextDecodeError, decode_text

    if not os.path.lexists(folder / name):
        return None
    where = locate(folder, name, follow_external_symlinks=follow_external_symlinks)
    try:
        if isinstance(where, str):
            raise FileProblem(where)
        data = read_regular(where, MAX_CAPTION_BYTES)
        if len(data) > MAX_CAPTION_BYTES:
            raise FileProblem(f"oversize: over {MAX_CAPTION_BYTES} bytes; a caption is a sentence or a list of tags")
        return decode_text(data).strip()
    except (FileProblem, TextDecodeError) as exc:
        return ParseFailure(f"bad caption file: {exc} ({name})")


def _rows(
    folder: Path, caption_field: str | None, follow_external_symlinks: bool
) -> tuple[list[tuple[int | None, Any]], str]:
    """(line, row) pairs and the layout name; rows are dicts with file_name and a caption
    (or the :class:`ParseFailure` that says why there is none)."""
    for name in METADATA_FILES:
        path = folder / name
        if path.is_file():
            return read_records(path), name
    rows: list[tuple[int | None, Any]] = []
    # links and special files with an image's name are listed too, to be refused by name
    found = (p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    for image in sorted(p for p in found if p.is_symlink() or not p.is_dir()):
        file_name = image.relative_to(folder).as_posix()
        caption = _read_caption(folder, Path(file_name).with_suffix(".txt").as_posix(), follow_external_symlinks)
        if isinstance(caption, ParseFailure):
            rows.append((None, caption))
            continue
        row: dict[str, Any] = {"file_name": file_name}
        if caption is not None:
            row[caption_field or "text"] = caption
        rows.append((None, row))
    return rows, "caption files"


def _caption(row: dict[str, Any], caption_field: str | None) -> Any:
    if caption_field:
        return row.get(caption_field)
    return next((row[f] for f in CAPTION_FIELDS if row.get(f) not in (None, "")), None)


def _unreadable_reason(exc: BaseException) -> str:
    text = str(exc)
    if "truncated" in text.lower():
        return "corrupt image: the file is truncated"
    if "cannot identify" in text.lower() or "unknown image format" in text.lower():
        return "not an image: the file's content is no image format Pillow reads"
    detail = text.splitlines()[0][:200] if text.strip() else "no detail"
    return f"corrupt image: {detail} ({type(exc).__name__})"


def check_image_header(path: Path, max_pixels: int = MAX_IMAGE_PIXELS) -> str | None:
    """Why the image at ``path`` must not be decoded (empty, not an image, over
    ``max_pixels``, a decompression bomb), judged from its header alone; None when it may."""
    import warnings

    from PIL import Image

    try:
        with open_regular(path) as handle:
            if os.fstat(handle.fileno()).st_size == 0:
                return "empty: the file has no bytes"
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(handle) as image:
                    width, height = image.size
    except FileProblem as exc:
        return str(exc)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return (
            f"too large: the header claims more than {Image.MAX_IMAGE_PIXELS:,} pixels, Pillow's "
            "decompression-bomb limit; the file was not decoded"
        )
    except Exception as exc:  # noqa: BLE001 - any Pillow error while parsing a header
        return _unreadable_reason(exc)
    if width * height > max_pixels:
        return (
            f"too large: {width}x{height} pixels is over the limit of {max_pixels:,} pixels; "
            "downscale the image (the file was not decoded)"
        )
    return None


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
    max_pixels: int = MAX_IMAGE_PIXELS,
    follow_external_symlinks: bool = FOLLOW_EXTERNAL_SYMLINKS,
) -> Dataset:
    """Load the captioned images under ``path`` (a folder, or its ``metadata.jsonl``/``.csv``).

    :param clean_dir: where the metadata-free copies go (the plugin's run folder).
    :param min_size: images whose shorter side is below this many pixels are quarantined.
    :param caption_field: the caption column; by default ``text``, else ``caption``.
    :param consent_field: the column copied into records as ``consent`` when present.
    :param max_pixels: images with more pixels (width x height) are quarantined undecoded.
    :param follow_external_symlinks: read images whose symbolic link leads outside the
        folder (off: they are quarantined).
    :raises DataError: ``path`` is neither a folder nor a metadata file.
    """
    path, clean_dir = Path(path), Path(clean_dir)
    folder = path.parent if path.is_file() and path.name in METADATA_FILES else path
    if not folder.is_dir():
        raise DataError(
            f"{path}: not an image folder; give a folder with metadata.jsonl/metadata.csv "
            "(file_name, text) or images with a .txt caption beside each"
        )
    rows, _layout = _rows(folder, caption_field, follow_external_symlinks)
    # a finding in a caption is named by its image (the caption's metadata line is kept too)
    dataset = Dataset(source=folder, kind=KIND, scanned_fields=("text", "file_name"), origins=Origins("file_name"))
    seen: set[str] = set()
    for index, (line, row) in enumerate(rows):

        def reject(reason: str, name: str | None = None, line: int | None = line, index: int = index) -> None:
            named = f"{reason} ({name})" if name else reason
            dataset.quarantined.append(Quarantined(source=str(folder), index=index, reason=named, line=line))

        if isinstance(row, ParseFailure):
            reject(str(row))
            continue
        if not isinstance(row, dict) or not isinstance(row.get("file_name"), str) or not row["file_name"].strip():
            reject("missing field: file_name")
            continue
        file_name = row["file_name"].strip()
        caption = _caption(row, caption_field)
        if not isinstance(caption, str) or not caption.strip():
            reject("missing caption: no text/caption (or .txt file) for this image", file_name)
            continue
        source = locate(folder, file_name, follow_external_symlinks=follow_external_symlinks)
        if isinstance(source, str):
            reject(source, file_name)
            continue
        suffix = PurePosixPath(file_name).suffix
        if suffix.lower() not in IMAGE_EXTENSIONS:
            reject(
                f"not an image: extension {suffix or '(none)'!r} is not one of {', '.join(sorted(IMAGE_EXTENSIONS))}",
                file_name,
            )
            continue
        problem = check_image_header(source, max_pixels)
        if problem:
            reject(problem, file_name)
            continue
        try:
            clean, removed, (width, height) = clean_image(source, clean_dir)
        except DataError as exc:
            reject(_unreadable_reason(exc.__context__ or exc), file_name)
            continue
        except Exception as exc:  # noqa: BLE001 - any other Pillow error while decoding
            reject(_unreadable_reason(exc), file_name)
            continue
        if min(width, height) < min_size:
            clean.unlink(missing_ok=True)  # nothing refers to it
            reject(f"too small: {width}x{height} pixels, the shorter side must be at least {min_size}", file_name)
            continue
        digest = clean.stem
        if digest in seen:
            reject("duplicate image: the same pixels appear earlier in the folder", file_name)
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
