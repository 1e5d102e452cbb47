"""polyadapt-image: LoRA adaptation of Stable-Diffusion-style diffusers pipelines (SD 1.x/2.x, SDXL).

This entry module is imported when polyadapt starts, so it imports nothing heavy: the hook
implementations import torch, diffusers and peft inside their bodies.
"""

from __future__ import annotations

from polyadapt.hookspecs import hookimpl
from polyadapt.types import Task
from polyadapt_image.options import ImageOptions

POLYADAPT_API = ">=1,<2"

TASK = Task(
    name="text-to-image",
    modality="image",
    description="Stable-Diffusion-style pipelines (UNet + VAE + CLIP; SD 1.x/2.x, SDXL) adapted to "
                "captioned images with LoRA",
    default_base="stable-diffusion-v1-5/stable-diffusion-v1-5",
    options_model=ImageOptions,
)


@hookimpl
def polyadapt_tasks():
    """Declare the text-to-image task."""
    return [TASK]


@hookimpl
def polyadapt_adapt(run):
    """Train a UNet (and optionally text-encoder) LoRA with the shared trainer; save it for diffusers."""
    from polyadapt_image.adapt import adapt

    return adapt(run)


@hookimpl
def polyadapt_evaluate(run, adapter):
    """Held-out denoising loss base vs adapted, and a PNG grid of fixed prompts and seeds."""
    from polyadapt_image.evaluate import evaluate

    return evaluate(run, adapter)


@hookimpl
def polyadapt_serve(spec):
    """Load the pipeline once and generate images with per-request adapters."""
    from polyadapt_image.serve import ImageServable

    return ImageServable(spec)
