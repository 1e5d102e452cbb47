"""The ``text-to-image`` task: what polyadapt's shared run needs to know about diffusion pipelines.

The core runs the steps (governance, data files, the shared trainer, the atomic save,
evaluation, serving); this task fills in the image-specific parts:

- data: captioned image folders (:func:`polyadapt.modalities.image.load_image_folder`),
  each image re-saved without EXIF/GPS into ``<run>/images/``;
- base: a Stable-Diffusion-style pipeline (SD 1.x/2.x, SDXL; :mod:`polyadapt_image.model`);
- LoRA on the UNet (and optionally every text encoder), saved in diffusers' format;
- training: the noise-prediction loss (:mod:`polyadapt_image.loss`) on examples built by
  :mod:`polyadapt_image.data`, latents cached when the crop is fixed;
- evaluation: held-out denoising loss and a base | adapted grid (:mod:`polyadapt_image.evaluate`);
- serving: :class:`polyadapt_image.serve.ImageServable` behind ``POST /v1/images/generations``
  (:mod:`polyadapt_image.routes`).

Importing this module imports no torch or diffusers: the methods import them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polyadapt.task import Task
from polyadapt_image.options import ImageOptions

if TYPE_CHECKING:  # pragma: no cover
    from polyadapt.modalities.records import Dataset, RunData
    from polyadapt.serving.routes import Route
    from polyadapt.training import TrainingJob
    from polyadapt.types import AdapterArtifact, EvalReport, Run, Servable, ServeSpec


def _noise_scheduler(run: Run) -> Any:
    """The run's training noise scheduler (the pipeline's, with the configured prediction type)."""
    from polyadapt_image.model import noise_scheduler

    base = run.config.base_model
    return noise_scheduler(base.id, run.options.prediction_type, base.revision)


class TextToImageTask(Task):
    """LoRA for Stable-Diffusion-style diffusers pipelines on captioned images."""

    name = "text-to-image"
    modality = "image"
    description = (
        "Stable-Diffusion-style pipelines (UNet + VAE + CLIP; SD 1.x/2.x, SDXL) adapted to captioned images with LoRA"
    )
    default_base = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    options_model = ImageOptions
    record_noun = "images"
    #: Images may show people: every record needs consent unless the policy's
    #: ``consent.required`` says otherwise for ``image``.
    consent_required = True
    library_name = "diffusers"  # pipe.load_lora_weights reads the adapter folder
    #: ``polyadapt export --format``: the adapter folder, the LoRA file alone, a fused pipeline.
    export_formats = {
        "peft": "the adapter folder as the run saved it (diffusers LoRA file and its record)",
        "lora": "the diffusers LoRA weights file (pipeline.load_lora_weights) and the card",
        "merged": "the base pipeline with the LoRA fused into its UNet and text encoders (save_pretrained)",
    }
    data_fields = {
        "train": "An image folder: metadata.jsonl or metadata.csv (file_name, text) beside the images, or a .txt "
        "caption beside each image",
        "eval": "A held-out image folder of the same layout; default: data.eval_fraction of train",
        "format": "Not read: the folder's layout decides",
        "kind": "Not read: every image with its caption is one record",
    }

    def load_dataset(self, run: Run, path: Path, role: str) -> Dataset:
        """The captioned images under ``path`` (``metadata.jsonl``/``.csv`` or a ``.txt`` per
        image), each copied without metadata into ``<run>/images/``; unreadable, missing and
        too-small files quarantined with their reason."""
        from polyadapt.modalities.image import load_image_folder
        from polyadapt_image.data import CLEAN_DIR

        options: ImageOptions = run.options
        return load_image_folder(
            path,
            clean_dir=run.dir / CLEAN_DIR,
            min_size=options.min_size(),
            caption_field=options.caption_field,
            follow_external_symlinks=run.config.data.follow_external_symlinks,
        )

    def load_base(self, run: Run) -> Any:
        """The frozen diffusers pipeline (UNet and text encoders in ``base_model.dtype``, VAE fp32)."""
        from polyadapt_image.model import load_pipeline

        return load_pipeline(run.config.base_model)

    def attach_lora(self, run: Run, base: Any) -> Any:
        """LoRA on the UNet (``lora.target_modules``; ``auto`` = the attention projections) and,
        with ``task_options.train_text_encoder``, on every text encoder. Returns the
        pipeline's models in a ``ModuleDict`` (``unet``, text encoders, ``vae``)."""
        from polyadapt_image.model import attach_lora

        options: ImageOptions = run.options
        return attach_lora(
            base,
            run.config.lora,
            text_encoder=options.train_text_encoder,
            text_encoder_targets=options.text_encoder_targets,
        )

    def training_job(self, run: Run, base: Any, model: Any, data: RunData) -> TrainingJob:
        """The diffusion loss on the training (and replay) images; latents cached with the
        frozen VAE when the crop is fixed. Facts: ``train_images``, ``latents_cached``,
        ``prepare_s`` (building examples and the cache) and ``metadata_stripped``."""
        from polyadapt.errors import ConfigError
        from polyadapt.lora import inference_device
        from polyadapt.training import TrainingJob
        from polyadapt_image.conditioning import text_conditioning
        from polyadapt_image.data import (
            CLEAN_DIR,
            Collator,
            build_examples,
            cache_latents,
            metadata_stripped,
            size_multiple,
        )
        from polyadapt_image.loss import DiffusionLoss, summed_loss

        options: ImageOptions = run.options
        conditioning = text_conditioning(base)
        multiple = size_multiple(base)
        if options.resolution % multiple:
            raise ConfigError(
                f"task_options.resolution: {options.resolution} is not a multiple of {multiple}, "
                "which this pipeline's VAE and UNet need"
            )
        started = time.perf_counter()
        examples = build_examples(run.dir / CLEAN_DIR, data.train + data.replay, conditioning, options, multiple)
        cached = options.caches_latents()
        vae = model["vae"]
        if cached:
            vae.to(inference_device())
            examples = cache_latents(examples, vae)
            vae.to("cpu")
        prepare_s = time.perf_counter() - started
        if options.cache_latents and not cached:
            run.say("latents are encoded every step: a random crop or flip changes the pixels each time")
        stripped = metadata_stripped(data.sources)
        if stripped:
            run.say("metadata stripped from the images: " + ", ".join(f"{k} {v}" for k, v in stripped.items()))
        loss_model = DiffusionLoss(
            model["unet"],
            conditioning,
            _noise_scheduler(run),
            None if cached else vae,
            vae_config=vae.config,
            min_snr_gamma=options.min_snr_gamma,
            train_text_encoder=options.train_text_encoder,
        )
        facts = {
            "train_images": len(examples),
            "latents_cached": cached,
            "prepare_s": round(prepare_s, 3),
            "metadata_stripped": stripped,
        }
        return TrainingJob(
            model=loss_model,
            train_data=examples,
            collate=Collator(options.crop, options.random_flip),
            loss=summed_loss,
            facts=facts,
        )

    def save_adapter(self, run: Run, base: Any, model: Any, folder: Path) -> None:
        """``pytorch_lora_weights.safetensors`` by the architecture's ``save_lora_weights``
        (``pipeline.load_lora_weights(folder)`` uses it) and ``polyadapt_image.json``."""
        from polyadapt_image.conditioning import text_conditioning
        from polyadapt_image.model import save_adapter, unet_targets

        config, options = run.config, run.options
        conditioning = text_conditioning(base)
        info = {
            "base_model": config.base_model.id,
            "architecture": conditioning.kind,
            "resolution": options.resolution,
            "prediction_type": _noise_scheduler(run).config.prediction_type,
            "unet_targets": unet_targets(config.lora),
            "text_encoder": options.train_text_encoder,
            "r": config.lora.r,
            "alpha": config.lora.alpha,
            "inference_steps": options.inference_steps,
            "guidance_scale": options.guidance_scale,
        }
        save_adapter(base, folder, text_encoder=options.train_text_encoder, info=info, conditioning=conditioning)

    def export(self, run: Run, adapter: AdapterArtifact, fmt: str, options: Any, folder: Path) -> dict[str, Any]:
        """``lora``: the diffusers weights file; ``merged``: the pipeline with the LoRA fused in,
        checked against base + LoRA (:mod:`polyadapt_image.export`); ``peft``: a copy."""
        if fmt == "peft":
            return super().export(run, adapter, fmt, options, folder)
        from polyadapt_image.export import export

        return export(run, adapter, fmt, options, folder)

    def evaluate(self, run: Run, adapter: AdapterArtifact, data: RunData) -> EvalReport:
        """Held-out (and general) denoising loss base vs adapted, the ``samples/grid.png`` of
        fixed prompts and seeds, and a CLIP score when ``task_options.clip_model`` is set."""
        from polyadapt_image.evaluate import evaluate

        return evaluate(run, adapter, data)

    def servable(self, spec: ServeSpec) -> Servable:
        """The pipeline loaded once, drawing images with per-request adapters."""
        from polyadapt_image.serve import ImageServable

        return ImageServable(spec)

    def routes(self) -> list[Route]:
        """``POST /v1/images/generations``."""
        from polyadapt_image.routes import image_routes

        return image_routes()

    def tiny_models(self) -> dict[str, tuple[Callable[[Path], Path], str]]:
        """``image``: a tiny Stable Diffusion pipeline (``tiny-sd``); ``image-sdxl``: a tiny SDXL one."""
        from polyadapt_image import testing

        return {
            "image": (testing.build_tiny_sd_pipeline, testing.TINY_NAME),
            "image-sdxl": (testing.build_tiny_sdxl_pipeline, testing.TINY_SDXL_NAME),
        }
