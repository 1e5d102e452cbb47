"""The image task's ``task_options:`` block (validated by pydantic; no heavy imports)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ImageOptions(BaseModel):
    """Settings of a ``text-to-image`` run beyond the shared config sections.

    LoRA size and targets come from the run config's ``lora:`` section (``target_modules:
    auto`` = the UNet attention projections ``to_q``, ``to_k``, ``to_v``, ``to_out.0``);
    steps, batch size, learning rate and precision from ``training:``.
    """

    model_config = ConfigDict(extra="forbid")

    resolution: int = Field(512, ge=8, le=4096, description="Training size in pixels (the square side)")
    crop: Literal["center", "random"] = Field(
        "center", description="How an image is cut to the training size after resizing"
    )
    random_flip: bool = Field(False, description="Mirror images left-right at random while training")
    buckets: bool = Field(
        False,
        description="Aspect-ratio buckets: train each image at the bucket of about "
        "resolution² pixels nearest its shape instead of a square crop",
    )
    min_image_size: int | None = Field(
        None, ge=1, description="Quarantine images whose shorter side is smaller; default resolution / 2"
    )
    caption_field: str | None = Field(None, description="Caption column; default text, else caption")
    prediction_type: Literal["auto", "epsilon", "v_prediction"] = Field(
        "auto", description="What the UNet predicts; auto = the pipeline scheduler's setting"
    )
    min_snr_gamma: float | None = Field(
        None, gt=0, description="Min-SNR loss weighting (5.0 is the paper's value); none = plain MSE"
    )
    train_text_encoder: bool = Field(False, description="Also put LoRA on the CLIP text encoder (both of SDXL's)")
    text_encoder_targets: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "out_proj"],
        description="Text-encoder modules LoRA attaches to when train_text_encoder is on",
    )
    cache_latents: bool = Field(
        True,
        description="Encode each training image with the frozen VAE once (needs crop: center, "
        "random_flip: false; otherwise images are encoded every step)",
    )
    eval_seeds: list[int] = Field(
        default_factory=lambda: [0],
        min_length=1,
        description="Seeds of the evaluation grid (one row per prompt and seed)",
    )
    eval_timesteps: list[int] | None = Field(
        None, description="Timesteps of the held-out denoising loss; default 5 spread over the schedule"
    )
    eval_noise_seed: int = Field(1234, description="Seed of the fixed noise of the held-out denoising loss")
    inference_steps: int = Field(30, ge=1, le=1000, description="Denoising steps for the grid and at serving")
    guidance_scale: float = Field(7.5, ge=0, description="Classifier-free guidance for the grid and at serving")
    clip_model: str | None = Field(
        None, description="A CLIP model (hub id or folder) for the CLIP score of the grid; none = no CLIP score"
    )

    @field_validator("resolution")
    @classmethod
    def _multiple_of_eight(cls, value: int) -> int:
        if value % 8:
            raise ValueError(f"must be a multiple of 8 (the VAE's scale), e.g. {value // 8 * 8 or 8}")
        return value

    @field_validator("eval_timesteps")
    @classmethod
    def _timesteps(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or any(t < 0 for t in value)):
            raise ValueError("give one or more timesteps >= 0 (e.g. [100, 500, 900])")
        return value

    def min_size(self) -> int:
        """The smallest shorter side an image may have."""
        return self.min_image_size or max(1, self.resolution // 2)

    def caches_latents(self) -> bool:
        """Whether latents can be computed once: the VAE is frozen and the crop is fixed."""
        return self.cache_latents and self.crop == "center" and not self.random_flip
