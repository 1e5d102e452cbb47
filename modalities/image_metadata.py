"""Strip the metadata an image carries (EXIF with GPS position, XMP, IPTC, comments).

Part of governance for images (re-exported as ``polyadapt.governance.strip_image_metadata``);
it lives with the image modality because it is about pixels and files, not policy.

Photos tell where and when they were taken, on which device, sometimes by whom. Before an
image reaches a model it is re-saved from its pixels only. Decisions:

- the EXIF orientation is applied to the pixels first, so the image looks the same
  without the tag;
- the ICC colour profile is **kept**: it describes how to render colours, not the person
  or the place, and dropping it would change how the image looks;
- transparency and the palette of palette images are kept (they are pixels);
- of an animated or multi-page image only the first frame is kept (reported as ``frames``);
- JPEGs are re-encoded (quality 95), so their bytes change even when nothing is removed.

A file Pillow cannot read whole (truncated, corrupt, not an image, a decompression bomb,
a FIFO or folder in its place) is a :class:`~polyadapt.errors.DataError` naming it, never
a Pillow traceback; Pillow's ``LOAD_TRUNCATED_IMAGES`` is not turned on.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from polyadapt.errors import DataError

_PNG_TEXT_AS = {"XML:com.adobe.xmp": "xmp", "Raw profile type exif": "exif", "Raw profile type iptc": "iptc"}


def _found_metadata(image) -> list[str]:
    from PIL.ExifTags import IFD

    found: set[str] = set()
    info = image.info
    exif = image.getexif()
    if len(exif) or info.get("exif"):
        found.add("exif")
        try:
            if exif.get_ifd(IFD.GPSInfo) or IFD.GPSInfo in exif:
                found.add("gps")
        except Exception:  # noqa: BLE001 - a malformed GPS block is still GPS data
            found.add("gps")
    if info.get("xmp"):
        found.add("xmp")
    if info.get("photoshop") or info.get("iptc"):
        found.add("iptc")
    if info.get("comment"):
        found.add("comment")
    for key in getattr(image, "text", {}) or {}:
        found.add(_PNG_TEXT_AS.get(key, f"text:{key}"))
    if getattr(image, "n_frames", 1) > 1:
        found.add("frames")
    return sorted(found)


def strip_image_metadata(src: Path, dst: Path) -> list[str]:
    """Write ``src``'s pixels to ``dst`` (same format, atomically) without its metadata.

    Returns the names of what was removed: ``exif``, ``gps``, ``xmp``, ``iptc``,
    ``comment``, ``text:<key>`` (PNG text chunks), ``frames``; empty when there was none.
    ``src`` and ``dst`` may be the same file.
    """
    import warnings

    from PIL import Image, ImageOps

    from polyadapt.fileio import atomic_write_bytes
    from polyadapt.modalities.datafolder import FileProblem, open_regular

    src, dst = Path(src), Path(dst)
    if not os.path.lexists(src):
        raise DataError(f"{src}: no such image file")
    try:
        handle = open_regular(src)
    except FileProblem as exc:
        raise DataError(f"{src}: cannot read the image ({exc})") from None
    try:
        with handle, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(handle) as image:
                image.load()
                removed = _found_metadata(image)
                fmt = image.format or Image.registered_extensions().get(dst.suffix.lower())
                icc = image.info.get("icc_profile")
                transparency = image.info.get("transparency")
                upright = ImageOps.exif_transpose(image) or image
                clean = Image.frombytes(upright.mode, upright.size, upright.tobytes())
                if upright.mode in ("P", "PA"):
                    palette = upright.getpalette(rawmode=None)
                    if palette is not None and upright.palette is not None:
                        clean.putpalette(palette, rawmode=upright.palette.mode)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(f"{src}: too large to decode ({exc}); downscale the image") from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises OSError, SyntaxError, ValueError, EOFError...
        raise DataError(f"{src}: cannot read the image ({exc}); check the file or remove it") from None
    if fmt is None:
        raise DataError(f"{src}: unknown image format; give {dst} a known extension (.png, .jpg)")
    params: dict = {}
    if icc:
        params["icc_profile"] = icc
    if transparency is not None and clean.mode in ("P", "L", "RGB"):
        params["transparency"] = transparency
    if fmt == "JPEG":
        params["quality"] = 95
    buffer = io.BytesIO()
    clean.save(buffer, format=fmt, **params)
    atomic_write_bytes(dst, buffer.getvalue())
    return removed
