"""The requests and results of ``POST /v1/images/generations``, as the server hands them to
:meth:`polyadapt_image.serve.ImageServable.generate_images` (a batch at a time).

Plain dataclasses: importing this module imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ImageRequest:
    """One prompt to draw ``n`` images for; ``adapter`` None is the base.

    ``width``/``height`` None mean the servable's trained resolution; ``seed`` None draws one.
    """

    prompt: str
    adapter: str | None = None
    n: int = 1
    width: int | None = None
    height: int | None = None
    seed: int | None = None
    steps: int | None = None
    guidance_scale: float | None = None


@dataclass
class ImageResult:
    """The images drawn for one :class:`ImageRequest`: PNG bytes without metadata, and the seed."""

    images: list[bytes]
    seed: int | None = None
