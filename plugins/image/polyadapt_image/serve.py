"""The image plugin's ``serve``: one pipeline in memory, LoRA adapters switched per request.

:class:`ImageServable` loads the base pipeline once. Each adapter joins it on first use
with ``pipeline.load_lora_weights(folder, adapter_name=...)`` (named ``adapter0``,
``adapter1`` … inside diffusers: client names with dots or peft's ``lora_`` prefix would
break module naming). A request for the base disables LoRA; one for an adapter enables it
and makes that adapter the only active one (``set_adapters``). The pipeline is used by one
request at a time (a lock), so switching never races a running generation.

Images are returned as PNG bytes without metadata. Text endpoints are refused: this
servable only has :meth:`generate_images`.
"""

from __future__ import annotations

import io
import threading
import warnings
from pathlib import Path

import torch

from polyadapt.config import BaseModelConfig
from polyadapt.errors import PolyadaptError
from polyadapt.types import GenerationRequest, GenerationResult, ImageRequest, ImageResult, ServeSpec
from polyadapt_image.model import device, load_pipeline
from polyadapt_image.options import ImageOptions

#: Largest side a request may ask for, in multiples of the served resolution.
MAX_SIZE_FACTOR = 2


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
        self.pipeline = load_pipeline(base, dtype=dtype).to(device())
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
                    self.pipeline.load_lora_weights(str(path), adapter_name=internal)
            except (OSError, ValueError, KeyError) as exc:
                raise PolyadaptError(f"cannot load adapter {name!r} from {path}: {exc}") from None
            self._internal[name] = internal

    def adapter_names(self) -> list[str]:
        return list(self._internal)

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
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

    def generate_images(self, requests: list[ImageRequest]) -> list[ImageResult]:
        """Answer each request with ``n`` PNG images from its adapter (or the base)."""
        results = []
        for request in requests:
            width, height = self._size(request)
            seed = request.seed if request.seed is not None else int(torch.randint(0, 2**31 - 1, ()).item())
            with self._lock:
                self._activate(request.adapter)
                images = self.pipeline(
                    request.prompt, num_images_per_prompt=request.n, height=height, width=width,
                    num_inference_steps=request.steps or self.options.inference_steps,
                    guidance_scale=(request.guidance_scale if request.guidance_scale is not None
                                    else self.options.guidance_scale),
                    generator=torch.Generator().manual_seed(seed), output_type="pil",
                ).images
            pngs = []
            for image in images:
                buffer = io.BytesIO()
                image.save(buffer, format="PNG")
                pngs.append(buffer.getvalue())
            results.append(ImageResult(images=pngs, seed=seed))
        return results
