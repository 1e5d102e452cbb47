"""The image plugin's ``adapt``: images → governance → LoRA on the UNet → shared trainer → diffusers LoRA.

The same steps for every architecture (Stable Diffusion 1.x/2.x, SDXL); how captions
condition the UNet comes from the pipeline's :mod:`~polyadapt_image.conditioning`.
"""

from __future__ import annotations

import time

import torch

from polyadapt.distributed import is_main_process
from polyadapt.fileio import atomic_directory
from polyadapt.training import TrainingJob, train
from polyadapt.types import AdapterArtifact, Run
from polyadapt_image.data import (
    Collator, build_examples, cache_latents, load_run_data, size_multiple, write_data_files,
)
from polyadapt_image.conditioning import text_conditioning
from polyadapt_image.loss import DiffusionLoss, summed_loss
from polyadapt_image.model import (
    attach_lora, count_parameters, load_pipeline, noise_scheduler, save_adapter, unet_targets,
)
from polyadapt_image.options import ImageOptions


def options_of(run: Run) -> ImageOptions:
    """The run's validated task options (defaults when the config has none)."""
    options = run.task_options
    if isinstance(options, ImageOptions):
        return options
    return ImageOptions.model_validate(options or {})


def adapt(run: Run) -> AdapterArtifact:
    """Train and save a LoRA adapter for ``run`` (see ``polyadapt_adapt``)."""
    config, options = run.config, options_of(run)
    run_data = load_run_data(run, options)
    summary = write_data_files(run, run_data)
    rejected = sum(d["quarantined"] for d in summary["datasets"])
    run.say(
        f"data: {summary['train_records']} training images, {summary['heldout_records']} held out, "
        f"{rejected} quarantined" + (f" (reasons in {run.dir / 'quarantine.jsonl'})" if rejected else "")
        + (f"; metadata stripped: {summary['metadata_stripped']}" if summary["metadata_stripped"] else "")
    )

    run.say(f"loading base pipeline {config.base_model.id}")
    pipeline = load_pipeline(config.base_model)
    conditioning = text_conditioning(pipeline)
    scheduler = noise_scheduler(config.base_model.id, options.prediction_type, config.base_model.revision)
    attach_lora(pipeline, config.lora, text_encoder=options.train_text_encoder,
                text_encoder_targets=options.text_encoder_targets, conditioning=conditioning)
    multiple = size_multiple(pipeline)
    if options.resolution % multiple:
        from polyadapt.errors import ConfigError

        raise ConfigError(f"task_options.resolution: {options.resolution} is not a multiple of {multiple}, "
                          "which this pipeline's VAE and UNet need")

    started = time.perf_counter()
    examples = build_examples(run_data, run_data.train, conditioning, options, multiple)
    cached = options.caches_latents()
    if cached:
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        pipeline.vae.to(dev)
        examples = cache_latents(examples, pipeline.vae)
        pipeline.vae.to("cpu")
    prepare_s = time.perf_counter() - started
    if options.cache_latents and not cached:
        run.say("latents are encoded every step: a random crop or flip changes the pixels each time")

    model = DiffusionLoss(
        pipeline.unet, conditioning, scheduler, None if cached else pipeline.vae,
        vae_config=pipeline.vae.config, min_snr_gamma=options.min_snr_gamma,
        train_text_encoder=options.train_text_encoder,
    )
    trainable, total = count_parameters(pipeline.unet, *conditioning.encoders.values(), pipeline.vae)
    run.say(f"LoRA: {trainable:,} trainable of {total:,} parameters; {len(examples)} training images"
            + (", latents cached" if cached else ""))
    job = TrainingJob(model=model, train_data=examples,
                      collate=Collator(options.crop, options.random_flip), loss=summed_loss)
    result = train(job, config.training, run.dir, resume=run.resume)

    if is_main_process():
        info = {
            "base_model": config.base_model.id, "architecture": conditioning.kind, "resolution": options.resolution,
            "prediction_type": scheduler.config.prediction_type, "unet_targets": unet_targets(config.lora),
            "text_encoder": options.train_text_encoder, "r": config.lora.r, "alpha": config.lora.alpha,
            "inference_steps": options.inference_steps, "guidance_scale": options.guidance_scale,
        }
        with atomic_directory(run.adapter_dir) as tmp:
            save_adapter(pipeline, tmp, text_encoder=options.train_text_encoder, info=info, conditioning=conditioning)
    images_per_s = result.steps * config.training.batch_size * config.training.grad_accumulation / max(result.wall_s, 1e-9)
    return AdapterArtifact(
        path=run.adapter_dir,
        base_model=config.base_model.id,
        trainable_parameters=trainable,
        total_parameters=total,
        train_metrics=result.to_dict() | {
            "train_images": len(examples), "latents_cached": cached,
            "prepare_s": round(prepare_s, 3), "images_per_s": round(images_per_s, 3),
        },
    )
