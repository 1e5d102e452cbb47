"""``POST /v1/images/generations``: OpenAI's image endpoint over any servable that has a
``generate_images`` method (the image plugin's, say).

The JSON body takes OpenAI's fields ``model`` (``base`` or ``base:adapter``, resolved like
every other endpoint, so adapters switch per request on one loaded pipeline), ``prompt``,
``n`` (1–10), ``size`` (``"WIDTHxHEIGHT"``, default the model's trained resolution) and
``response_format`` (``b64_json`` only: the server keeps no files to link to), plus
``seed``, ``num_inference_steps`` and ``guidance_scale`` as extensions. Unknown OpenAI
fields (``quality``, ``style``, ``user``) are ignored.

The prompt passes the serving policy exactly as a completion prompt does (redacted, or
refused with 400 ``content_policy``; audited). Images carry no text, so there is no output
scan.

Requests are micro-batched like completions (``--max-batch``, ``--batch-wait-ms``): the
requests of one base that arrive together reach ``servable.generate_images`` as one list, in
a worker thread, one batch at a time per base. The servable decides which of them can share
a pipeline call; a request's images depend on its seed only, not on its batch companions.
"""

from __future__ import annotations

import base64
import re
import time
from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field, field_validator

from polyadapt.serving.schemas import ApiError
from polyadapt.types import GenerationRequest, ImageRequest, ImageResult

MAX_IMAGES = 10


class ImageGenerationBody(BaseModel):
    """``POST /v1/images/generations``."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    prompt: str = Field(min_length=1)
    n: int = Field(1, ge=1, le=MAX_IMAGES)
    size: str | None = None
    response_format: Literal["b64_json", "url"] = "b64_json"
    seed: int | None = None
    num_inference_steps: int | None = Field(None, ge=1, le=200)
    guidance_scale: float | None = Field(None, ge=0, le=50)

    @field_validator("size")
    @classmethod
    def _size(cls, value: str | None) -> str | None:
        if value is not None and value != "auto" and not re.fullmatch(r"\d{1,5}x\d{1,5}", value):
            raise ValueError("size must be WIDTHxHEIGHT in pixels, e.g. 512x512")
        return value

    def dimensions(self) -> tuple[int | None, int | None]:
        """(width, height), or (None, None) for the model's own resolution."""
        if self.size in (None, "auto"):
            return None, None
        width, height = self.size.split("x")
        return int(width), int(height)


def image_request(body: ImageGenerationBody, adapter: str | None, prompt: str) -> ImageRequest:
    """The :class:`ImageRequest` for ``body`` on ``adapter``."""
    width, height = body.dimensions()
    return ImageRequest(prompt=prompt, adapter=adapter, n=body.n, width=width, height=height, seed=body.seed,
                        steps=body.num_inference_steps, guidance_scale=body.guidance_scale)


async def generate_images(registry: Any, base: str, body: ImageGenerationBody,
                          adapter: str | None) -> ImageResult:
    """Draw the images of ``body`` on ``base`` (its adapter loaded on first use) through the policy."""
    if not callable(getattr(registry.bases[base].servable, "generate_images", None)):
        raise ApiError(400, f"the model {body.model!r} does not generate images; use an image model",
                       param="model", code="model_not_supported")
    prompt = body.prompt
    if registry.guard is not None:  # the same prompt policy as completions
        prompt = registry.guard.check_request(GenerationRequest(prompt=prompt, adapter=adapter),
                                              model=body.model).prompt
    (result,) = await registry.submit(base, "generate_images", [image_request(body, adapter, prompt)],
                                      what="image generation")
    return result


def add_image_routes(app: FastAPI, registry: Any) -> None:
    """Add ``POST /v1/images/generations`` for the servables of ``registry``."""

    @app.post("/v1/images/generations")
    async def images_generations(body: ImageGenerationBody) -> dict[str, Any]:
        """Draw ``n`` images for a prompt with a base or ``base:adapter`` image model."""
        if body.response_format != "b64_json":
            raise ApiError(400, "response_format 'url' is not supported: the server stores no images; "
                           "use b64_json", param="response_format")
        base, adapter = registry.resolve(body.model)
        result = await generate_images(registry, base, body, adapter)
        data = [{"b64_json": base64.b64encode(png).decode("ascii"), "revised_prompt": None}
                for png in result.images]
        return {"created": int(time.time()), "data": data, "seed": result.seed}
