"""``POST /v1/images/generations``: OpenAI's image endpoint, a route of the text-to-image task.

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

Importing this module imports no torch or diffusers.
"""

from __future__ import annotations

import base64
import re
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from polyadapt.serving.routes import Route, RouteContext
from polyadapt.serving.schemas import ApiError
from polyadapt_image.types import ImageRequest

MAX_IMAGES = 10
#: The servable's batch method the route submits to, and how errors name it.
METHOD, WHAT = "generate_images", "image generation"


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
    """The :class:`ImageRequest` for ``body`` on ``adapter`` with the policy-checked ``prompt``."""
    width, height = body.dimensions()
    return ImageRequest(
        prompt=prompt,
        adapter=adapter,
        n=body.n,
        width=width,
        height=height,
        seed=body.seed,
        steps=body.num_inference_steps,
        guidance_scale=body.guidance_scale,
    )


async def images_generations(body: ImageGenerationBody, ctx: RouteContext) -> dict[str, Any]:
    """Draw ``n`` images for a prompt with a base or ``base:adapter`` image model."""
    if body.response_format != "b64_json":
        raise ApiError(
            400,
            "response_format 'url' is not supported: the server stores no images; use b64_json",
            param="response_format",
        )
    target = ctx.resolve(body.model, method=METHOD, what=WHAT)
    prompt = ctx.check_prompt(body.prompt, target)  # the same prompt policy as completions
    ctx.note_input(target, prompt)  # drift monitoring: prompts against the training captions
    (result,) = await ctx.submit(target, METHOD, [image_request(body, target.adapter, prompt)], what=WHAT)
    data = [{"b64_json": base64.b64encode(png).decode("ascii"), "revised_prompt": None} for png in result.images]
    return {"created": int(time.time()), "data": data, "seed": result.seed}


def image_routes() -> list[Route]:
    """The routes the text-to-image task adds to ``polyadapt serve``."""
    return [
        Route(
            "/v1/images/generations",
            images_generations,
            body=ImageGenerationBody,
            summary="Draw images for a prompt (OpenAI's images API, b64_json)",
        )
    ]
