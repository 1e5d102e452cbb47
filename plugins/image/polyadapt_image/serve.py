"""The text-to-image task's servable: one pipeline in memory, LoRA adapters switched per call.

:class:`ImageServable` loads the base pipeline once. Each adapter joins it on first use
with ``pipeline.load_lora_weights(folder, adapter_name=...)`` (named ``adapter0``,
``adapter1`` … inside diffusers: client names with dots or peft's ``lora_`` prefix would
break module naming). A call for the base disables LoRA; one for an adapter enables it
and makes that adapter the only active one (``set_adapters``). The pipeline is used by one
call at a time (a lock), so switching never races a running generation.

The task's route (:mod:`polyadapt_image.routes`) hands :meth:`ImageServable.generate_images`
the requests that arrived together; those with the same adapter, size, steps and guidance
scale are drawn by one pipeline call with their prompts as a list
(:mod:`polyadapt_image.batching`). Batching does not change what a seed means: a request's
initial noise comes from its own generator seeded with its seed, drawn exactly as
``pipeline(prompt, num_images_per_prompt=n, generator=torch.Generator().manual_seed(seed))``
draws it, and is passed in as ``latents``; the same generator, listed once per image, feeds
whatever noise the scheduler draws while denoising. A request gets the same images alone or
batched with others.

Images are returned as PNG bytes without metadata. Text endpoints are refused: its
:meth:`~ImageServable.generate` only says to use ``/v1/images/generations``.
"""

from __future__ import annotations

import io
import threading
import warnings
from pathlib import Path

import torch

from polyadapt.config import BaseModelConfig
from polyadapt.errors import PolyadaptError
from polyadapt.lora import inference_device
from polyadapt.pretrained import refusing_unsafe_pickles
from polyadapt.types import GenerationRequest, GenerationResult, ServeSpec
from polyadapt_image.batching import ImageJob, group_calls
from polyadapt_image.model import load_pipeline
from polyadapt_image.options import ImageOptions
from polyadapt_image.types import ImageRequest, ImageResult

#: Largest side a request may ask for, in multiples of the served resolution.
MAX_SIZE_FACTOR = 2
#: The most images one pipeline call draws: as many as one request may ask for (the
#: endpoint's ``n``), so batching never needs more memory than one full request did.
MAX_IMAGES_PER_CALL = 10


def _options(spec: ServeSpec) -> ImageOptions:
    raw = spec.config.task_options if spec.config is not None else {}
    return ImageOptions.model_validate(raw or {})


class ImageServable:
    """A loaded diffusers pipeline answering image requests for the base and its adapters."""

    def __init__(self, spec: ServeSpec):
        self.base_name = spec.base_name
        self.options = _options(spec)
        base = spec.config.base_model if spec.config is not None else BaseModelConfig(id=spec.base_model)
        dtype = torch.float16 if torch.cuda.is_available() else torch.float32
        self.dtype = dtype
        self.pipeline = load_pipeline(base, dtype=dtype).to(inference_device())
        if dtype == torch.float16:
            self.pipeline.vae.to(dtype=torch.float16)
        self._internal: dict[str, str] = {}
        self._lock = threading.Lock()

    def load_adapter(self, name: str, path: Path) -> None:
        """Load the diffusers LoRA in ``path`` under ``name`` (no-op if already loaded)."""
        with self._lock:
            if name in self._internal:
                return
            internal = f"adapter{len(self._internal)}"
            try:
                with warnings.catch_warnings():  # a second adapter is what we want here
                    warnings.filterwarnings("ignore", message="Already found a `peft_config`")
                    with refusing_unsafe_pickles(path, what=f"adapter {name!r}"):
                        self.pipeline.load_lora_weights(str(path), adapter_name=internal)
            except (OSError, ValueError, KeyError) as exc:
                raise PolyadaptError(f"cannot load adapter {name!r} from {path}: {exc}") from None
            self._internal[name] = internal

    def adapter_names(self) -> list[str]:
        """The client names of the adapters loaded so far."""
        return list(self._internal)

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """Refuse text generation (``/v1/completions``, chat) with where to draw images instead."""
        raise PolyadaptError(f"{self.base_name!r} generates images; use POST /v1/images/generations")

    def _activate(self, adapter: str | None) -> None:
        if adapter is None:
            if self._internal:
                self.pipeline.disable_lora()
            return
        if adapter not in self._internal:
            raise PolyadaptError(f"adapter {adapter!r} is not loaded on {self.base_name!r}")
        self.pipeline.enable_lora()
        self.pipeline.set_adapters([self._internal[adapter]])

    def _size(self, request: ImageRequest) -> tuple[int, int]:
        resolution = self.options.resolution
        width, height = request.width or resolution, request.height or resolution
        limit = resolution * MAX_SIZE_FACTOR
        if width % 8 or height % 8 or not (8 <= width <= limit and 8 <= height <= limit):
            raise PolyadaptError(
                f"size {width}x{height} is not served on {self.base_name!r}: sides must be multiples "
                f"of 8 between 8 and {limit} (the model trains at {resolution}x{resolution})"
            )
        return width, height

    def _job(self, index: int, request: ImageRequest) -> ImageJob:
        """``request`` with the served defaults filled in (and a seed drawn if it has none)."""
        width, height = self._size(request)
        seed = request.seed if request.seed is not None else int(torch.randint(0, 2**31 - 1, ()).item())
        guidance = request.guidance_scale if request.guidance_scale is not None else self.options.guidance_scale
        return ImageJob(
            index=index,
            prompt=request.prompt,
            adapter=request.adapter,
            n=request.n,
            width=width,
            height=height,
            steps=request.steps or self.options.inference_steps,
            guidance_scale=guidance,
            seed=seed,
        )

    def generate_images(self, requests: list[ImageRequest]) -> list[ImageResult]:
        """Answer each request with ``n`` PNG images from its adapter (or the base).

        Requests that can share a pipeline call share one; every request is checked before
        any image is drawn, so a bad size fails the batch at once (the server then retries
        the others alone).
        """
        jobs = [self._job(index, request) for index, request in enumerate(requests)]
        pngs: dict[int, list[bytes]] = {}
        for call in group_calls(jobs, MAX_IMAGES_PER_CALL):
            drawn = iter(self._draw(call))
            for job in call:
                pngs[job.index] = [png_bytes(next(drawn)) for _ in range(job.n)]
        return [ImageResult(images=pngs[job.index], seed=job.seed) for job in jobs]

    def _draw(self, call: list[ImageJob]) -> list:
        """One pipeline call for ``call``'s jobs (equal call keys): their images, in order."""
        generators = [torch.Generator().manual_seed(job.seed) for job in call]
        latents = torch.cat([self._initial_noise(job, generator) for job, generator in zip(call, generators)])
        first = call[0]
        with self._lock:
            self._activate(first.adapter)
            return self.pipeline(
                [job.prompt for job in call for _ in range(job.n)],
                height=first.height,
                width=first.width,
                num_inference_steps=first.steps,
                guidance_scale=first.guidance_scale,
                latents=latents,
                output_type="pil",
                generator=[generator for job, generator in zip(call, generators) for _ in range(job.n)],
            ).images

    def _initial_noise(self, job: ImageJob, generator: torch.Generator) -> torch.Tensor:
        """The noise the pipeline would start ``job`` from, alone, with ``generator``."""
        from diffusers.utils.torch_utils import randn_tensor

        scale = self.pipeline.vae_scale_factor
        shape = (job.n, self.pipeline.unet.config.in_channels, job.height // scale, job.width // scale)
        # the pipeline draws in its prompt embeddings' dtype, which load_pipeline made self.dtype
        return randn_tensor(shape, generator=generator, device=inference_device(), dtype=self.dtype)


def png_bytes(image) -> bytes:
    """A PIL image as PNG bytes, without metadata."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
