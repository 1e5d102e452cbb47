"""The text-to-image task's evaluation: held-out denoising loss base vs adapted, and a PNG grid.

The same for every architecture (Stable Diffusion 1.x/2.x, SDXL), on the governed images
the core passes in (:class:`~polyadapt.modalities.records.RunData`). The adapter is loaded
the way a user would load it, ``pipeline.load_lora_weights(folder)``, so evaluation also
proves the saved format. The base is the same pipeline with LoRA disabled. These are
measured or drawn:

- **held-out denoising loss** (role ``domain``): the mean squared error of the UNet's
  prediction on the held-out images at fixed timesteps with noise from fixed seeds and the
  latent distribution's mean: a deterministic number, comparable between base and
  adapted and between runs; the same on the ``data.general_eval`` images (role
  ``general``: the forgetting check) when the config names an image folder there;
- **a grid** ``samples/grid.png``: one row per prompt and seed, base on the left, adapted
  on the right, from the same initial noise. Prompts are ``evaluation.samples`` (governed
  by the core like any config text), else the first held-out captions;
- **CLIP score** (role ``other``) of the grid's images against their prompts, only when
  ``task_options.clip_model`` names a CLIP model.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from polyadapt.fileio import atomic_write_bytes
from polyadapt.lora import inference_device
from polyadapt.modalities.records import RunData
from polyadapt.pretrained import refusing_unsafe_pickles
from polyadapt.types import AdapterArtifact, EvalReport, MetricRow, Run
from polyadapt_image.conditioning import TextConditioning, text_conditioning
from polyadapt_image.data import CLEAN_DIR, build_examples, condition_of, size_multiple
from polyadapt_image.loss import DiffusionLoss, default_eval_timesteps, fixed_denoising_loss, scale_latents
from polyadapt_image.model import adapter_info, load_pipeline, noise_scheduler
from polyadapt_image.options import ImageOptions

GRID_FILE = "samples/grid.png"
ADAPTER_NAME = "adapted"
#: Sample prompts the policy withheld begin like this (see polyadapt.gate.shown_text).
WITHHELD_PREFIX = "[withheld by policy"


def png_bytes(image: Any) -> bytes:
    """``image`` as PNG bytes with no metadata chunks (no EXIF, no text)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def make_grid(rows: list[list[Any]]) -> Any:
    """The images of ``rows`` pasted side by side, rows stacked, 2 px white gaps."""
    from PIL import Image

    gap = 2
    width = max(sum(im.width for im in row) + gap * (len(row) - 1) for row in rows)
    height = sum(max(im.height for im in row) for row in rows) + gap * (len(rows) - 1)
    grid = Image.new("RGB", (width, height), (255, 255, 255))
    top = 0
    for row in rows:
        left = 0
        for image in row:
            grid.paste(image.convert("RGB"), (left, top))
            left += image.width + gap
        top += max(im.height for im in row) + gap
    return grid


@torch.no_grad()
def heldout_latents(
    pipeline: Any, conditioning: TextConditioning, clean_dir: Path, records: list[dict[str, Any]], options: ImageOptions
) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    """Scaled latents (distribution means) and conditioning fields of the images of ``records``
    (in ``clean_dir``), centre-cropped."""
    examples = build_examples(clean_dir, records, conditioning, options, size_multiple(pipeline), fixed_crop=True)
    vae = pipeline.vae
    latents = []
    for example in examples:
        pixels = example["pixels"].unsqueeze(0).to(vae.device, vae.dtype)
        latents.append(scale_latents(vae.encode(pixels).latent_dist.mean[0].float(), vae.config).cpu())
    return latents, [condition_of(example) for example in examples]


def generate(pipeline: Any, prompt: str, seed: int, options: ImageOptions) -> Any:
    """One image for ``prompt`` from ``seed``'s initial noise (CPU generator: the same everywhere)."""
    return pipeline(
        prompt,
        num_inference_steps=options.inference_steps,
        guidance_scale=options.guidance_scale,
        height=options.resolution,
        width=options.resolution,
        generator=torch.Generator().manual_seed(seed),
        output_type="pil",
    ).images[0]


def sample_prompts(run: Run, heldout: list[dict[str, Any]]) -> list[str]:
    """The grid's prompts: the config's samples (minus withheld ones), else held-out captions."""
    evaluation = run.config.evaluation
    if evaluation.samples:
        return [p for p in evaluation.samples if not p.startswith(WITHHELD_PREFIX)]
    captions = list(dict.fromkeys(record["text"] for record in heldout))
    return captions[: evaluation.num_samples]


@torch.no_grad()
def clip_scores(model_id: str, images: list[Any], prompts: list[str]) -> float:
    """Mean CLIP score, 100 x max(cos(image, text), 0), as torchmetrics defines it."""
    from transformers import CLIPModel, CLIPProcessor

    with refusing_unsafe_pickles(model_id, what=f"task_options.clip_model: {model_id!r}"):
        model = CLIPModel.from_pretrained(model_id).eval()
    processor = CLIPProcessor.from_pretrained(model_id)
    inputs = processor(text=prompts, images=images, return_tensors="pt", padding=True, truncation=True)
    image_emb = model.get_image_features(pixel_values=inputs["pixel_values"])
    text_emb = model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"))
    image_emb = getattr(image_emb, "pooler_output", image_emb)
    text_emb = getattr(text_emb, "pooler_output", text_emb)
    cosine = torch.nn.functional.cosine_similarity(image_emb, text_emb, dim=-1)
    return float((100 * cosine.clamp_min(0)).mean())


def evaluate(run: Run, adapter: AdapterArtifact, data: RunData) -> EvalReport:
    """Score base and adapted on ``data`` (the run's governed images); writes the grid into
    the run folder."""
    config, options = run.config, run.options
    clean_dir = run.dir / CLEAN_DIR
    pipeline = load_pipeline(config.base_model, dtype=torch.float32).to(inference_device())
    with refusing_unsafe_pickles(adapter.path, what="adapter"):
        pipeline.load_lora_weights(str(adapter.path), adapter_name=ADAPTER_NAME)
    prediction = adapter_info(adapter.path).get("prediction_type", options.prediction_type)
    scheduler = noise_scheduler(config.base_model.id, prediction, config.base_model.revision)
    conditioning = text_conditioning(pipeline)
    scorer = DiffusionLoss(pipeline.unet, conditioning, scheduler, vae_config=pipeline.vae.config)
    timesteps = options.eval_timesteps or default_eval_timesteps(scheduler)

    rows: list[MetricRow] = []
    for records, dataset, role in (
        (data.heldout, "domain (held-out images)", "domain"),
        (data.general, "general (images)", "general"),
    ):
        if not records:
            continue
        latents, conditions = heldout_latents(pipeline, conditioning, clean_dir, records, options)
        pipeline.disable_lora()
        base_loss = fixed_denoising_loss(scorer, latents, conditions, timesteps, options.eval_noise_seed)
        pipeline.enable_lora()
        adapted_loss = fixed_denoising_loss(scorer, latents, conditions, timesteps, options.eval_noise_seed)
        rows.append(MetricRow(dataset, "denoising_mse", round(base_loss, 6), round(adapted_loss, 6), role=role))

    prompts = sample_prompts(run, data.heldout)
    samples: list[dict[str, Any]] = []
    if prompts:
        grid_rows, base_images, adapted_images, grid_prompts = [], [], [], []
        for prompt in prompts:
            for seed in options.eval_seeds:
                pipeline.disable_lora()
                base_image = generate(pipeline, prompt, seed, options)
                pipeline.enable_lora()
                adapted_image = generate(pipeline, prompt, seed, options)
                grid_rows.append([base_image, adapted_image])
                base_images.append(base_image)
                adapted_images.append(adapted_image)
                grid_prompts.append(prompt)
                samples.append(
                    {
                        "prompt": prompt,
                        "seed": seed,
                        "grid": GRID_FILE,
                        "row": len(grid_rows) - 1,
                        "base": "left column",
                        "adapted": "right column",
                    }
                )
        atomic_write_bytes(run.dir / GRID_FILE, png_bytes(make_grid(grid_rows)))
        if options.clip_model:
            rows.append(
                MetricRow(
                    "grid prompts",
                    "clip_score",
                    round(clip_scores(options.clip_model, base_images, grid_prompts), 4),
                    round(clip_scores(options.clip_model, adapted_images, grid_prompts), 4),
                    lower_is_better=False,
                    role="other",
                )
            )
    return EvalReport(rows=rows, samples=samples)
