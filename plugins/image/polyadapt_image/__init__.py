"""polyadapt-image: LoRA adaptation of Stable-Diffusion-style diffusers pipelines (SD 1.x/2.x, SDXL).

The plugin offers one task, ``text-to-image`` (:class:`polyadapt_image.task.TextToImageTask`).
This entry module is imported when polyadapt starts, so it imports nothing heavy: the task's
methods import torch, diffusers and peft when a run needs them.
"""

from __future__ import annotations

from polyadapt.hookspecs import hookimpl
from polyadapt_image.task import TextToImageTask

POLYADAPT_API = ">=2,<3"


@hookimpl
def polyadapt_tasks():
    """Declare the text-to-image task."""
    return [TextToImageTask()]
