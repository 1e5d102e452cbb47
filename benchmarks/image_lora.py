#!/usr/bin/env python3
"""Image LoRA training speed and memory: polyadapt against a plain diffusers + peft loop.

Trains the same Stable-Diffusion-style pipeline on the same images, in one run, four ways,
each in its own subprocess (so peak memory is per variant):

  (a) polyadapt: its own code path, as ``polyadapt adapt`` runs it: ``load_pipeline``
      (dtype auto), ``attach_lora``, ``build_examples``, latents cached once with the frozen
      VAE (``cache_latents``), ``DiffusionLoss`` and the shared ``train()`` (precision auto);
  (b) plain: the loop of diffusers' ``examples/text_to_image/train_text_to_image_lora.py``
      with its defaults (fp32, no ``--mixed_precision``): components loaded one by one,
      ``unet.add_adapter(LoraConfig(..., init_lora_weights="gaussian"))``, a DataLoader
      that opens, resizes, crops and normalises every image every time it is drawn, and
      ``vae.encode(...).latent_dist.sample()`` on every step (no latent cache);
  (c) the same script with ``--mixed_precision bf16`` (UNet, VAE and text encoder cast to
      bf16, accelerate's autocast; as in the script, LoRA weights are up-cast to fp32
      only for fp16);
  (d) polyadapt with ``cache_latents: false``: as (a), but the VAE encodes every step, which
      shows what the latent cache buys.

All variants share pipeline, images, LoRA (r, alpha = r, gaussian init, UNet to_q, to_k,
to_v, to_out.0), batch size, optimizer steps, learning rate (constant, no warm-up), AdamW
(weight decay 1e-2), gradient clipping 1.0, seed and threads. The first ``--warmup`` steps
are not timed. images/s counts training images of the timed steps. (a)'s one-time latent
encoding is reported separately (``prepare s``) with the number of steps after which it has
paid for itself. After training every variant scores the same held-out images with the
same function in fp32 (``polyadapt_image.loss.fixed_denoising_loss``: fixed timesteps, fixed
noise seeds), so speed is not bought with quality.

Model FLOPs per image (for MFU) are counted once with ``torch.utils.flop_counter`` on a
fp32 training step from cached latents: UNet forward + backward (activation gradients and
LoRA weight gradients) and the text encoder's forward. The VAE encoder's FLOPs per image
are counted too and shown, but not credited: encoding the same image again each step is
not useful work. So MFU ratios between variants are images/s ratios.

The model: without ``--model``, ``polyadapt_image.testing.build_small_sd_pipeline`` (SD 1.x
layout with random weights: 128x128 images, a VAE downsampling 8x, UNet
block_out_channels (64, 128), CLIP text model of hidden size 128). ``--model`` takes any
SD-style pipeline folder (e.g. Stable Diffusion 1.5 on a GPU). The images: the image
walkthrough's brand logos (``examples/image/make_data.py``, generated when missing).

On a CPU shared with other jobs give ``--threads`` no more than the idle cores.

    python benchmarks/image_lora.py --threads 1                  # CPU, a few minutes
    python benchmarks/image_lora.py --model /models/sd15 --resolution 512 --device cuda \\
        --batch 4 --steps 30 --peak-tflops 989 --json-out bench.json

The last line of the output, ``BENCH_JSON {...}``, holds every figure.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import measure  # benchmarks/measure.py: the helpers every benchmark shares
from measure import combine, fmt, matmul_peak, memory, reset_train_peak, sync

ROOT = Path(__file__).resolve().parent.parent
BRAND_DATA = ROOT / "examples" / "image" / "brand"
TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
WEIGHT_DECAY = 1e-2
VARIANTS = {
    "a": "polyadapt (latents cached, auto precision)",
    "b": "diffusers script (fp32, VAE every step)",
    "c": "diffusers script (--mixed_precision bf16)",
    "d": "polyadapt, cache_latents: false",
}


def _setup_worker(spec: dict[str, Any]) -> None:
    import torch

    torch.set_num_threads(spec["threads"])
    import diffusers
    import transformers

    transformers.logging.set_verbosity_error()
    diffusers.utils.logging.set_verbosity_error()


# ---------------------------------------------------------------------------------------
# Shared by the workers: held-out score, FLOPs
# ---------------------------------------------------------------------------------------


def _pixels(path: Path, resolution: int):
    """The diffusers script's transform without torchvision: shorter side to ``resolution``
    (bilinear), centre crop, [0, 1] -> [-1, 1], channels first."""
    import numpy as np
    import torch
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
        scale = resolution / min(image.size)
        size = (max(resolution, round(image.width * scale)), max(resolution, round(image.height * scale)))
        image = image.resize(size, Image.BILINEAR)
        left, top = (image.width - resolution) // 2, (image.height - resolution) // 2
        image = image.crop((left, top, left + resolution, top + resolution))
        array = np.asarray(image, dtype=np.float32) / 255.0
    return (torch.from_numpy(array).permute(2, 0, 1) - 0.5) / 0.5


def _rows(folder: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (Path(folder) / "metadata.jsonl").read_text().splitlines() if line]


def heldout_loss(unet: Any, text_encoder: Any, spec: dict[str, Any]) -> float:
    """Held-out denoising MSE in fp32 with polyadapt's fixed-seed scorer (same for every variant)."""
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler
    from polyadapt_image.conditioning import SDConditioning
    from polyadapt_image.loss import DiffusionLoss, default_eval_timesteps, fixed_denoising_loss, scale_latents
    from transformers import CLIPTokenizer

    source, folder = spec["source"], spec["eval_dir"]
    rows = _rows(folder)[: spec["eval_images"]]
    vae = AutoencoderKL.from_pretrained(source, subfolder="vae").eval()
    tokenizer = CLIPTokenizer.from_pretrained(source, subfolder="tokenizer")
    scheduler = DDPMScheduler.from_pretrained(source, subfolder="scheduler")
    dev = unet.device
    vae.to(dev)
    unet.float()
    text_encoder.float()
    was_training = unet.training
    unet.eval()
    with torch.no_grad():
        latents = []
        for row in rows:
            pixels = _pixels(Path(folder) / row["file_name"], spec["resolution"]).unsqueeze(0).to(dev)
            latents.append(scale_latents(vae.encode(pixels).latent_dist.mean[0].float(), vae.config).cpu())
    ids = tokenizer(
        [r["text"] for r in rows],
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids
    conditioning = SDConditioning(text_encoder=text_encoder, tokenizer=tokenizer)
    scorer = DiffusionLoss(unet, conditioning, scheduler, vae_config=vae.config)
    loss = fixed_denoising_loss(
        scorer, latents, [{"input_ids": row} for row in ids], default_eval_timesteps(scheduler), 1234
    )
    unet.train(was_training)
    return loss


def worker_flops(spec: dict[str, Any]) -> dict[str, Any]:
    """FLOPs per image of a fp32 training step from cached latents, and of one VAE encode."""
    import torch
    from diffusers import DiffusionPipeline
    from peft import LoraConfig
    from polyadapt_image.conditioning import text_conditioning
    from polyadapt_image.loss import DiffusionLoss
    from torch.utils.flop_counter import FlopCounterMode

    pipe = DiffusionPipeline.from_pretrained(spec["source"], dtype=torch.float32)
    for module in (pipe.unet, pipe.vae, pipe.text_encoder):
        module.requires_grad_(False)
    pipe.unet.add_adapter(
        LoraConfig(r=spec["rank"], lora_alpha=spec["rank"], init_lora_weights="gaussian", target_modules=TARGETS)
    )
    batch, res = spec["batch"], spec["resolution"]
    pixels = torch.randn(batch, 3, res, res)
    ids = torch.randint(0, len(pipe.tokenizer), (batch, pipe.tokenizer.model_max_length))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        latents = pipe.vae.encode(pixels).latent_dist.sample()
    vae_flops = counter.get_total_flops()
    scheduler = pipe.scheduler.__class__.from_config(pipe.scheduler.config)
    model = DiffusionLoss(pipe.unet, text_conditioning(pipe), scheduler, vae_config=pipe.vae.config)
    with FlopCounterMode(display=False) as counter:
        loss = model.summed_loss(
            latents, torch.randn_like(latents), torch.randint(0, 1000, (batch,)), {"input_ids": ids}
        )
        loss.backward()
    n_lora = sum(p.numel() for p in pipe.unet.parameters() if p.requires_grad)
    return {
        "train_flops_per_image": counter.get_total_flops() / batch,
        "vae_encode_flops_per_image": vae_flops / batch,
        "params_unet": sum(p.numel() for p in pipe.unet.parameters()) - n_lora,
        "params_vae": sum(p.numel() for p in pipe.vae.parameters()),
        "params_text_encoder": sum(p.numel() for p in pipe.text_encoder.parameters()),
        "params_lora": n_lora,
        "latent_shape": list(latents.shape[1:]),
    }


def _finish(spec, variant, unet, text_encoder, images, t_first, t_last, own, extra) -> dict[str, Any]:
    mem = memory(spec["device"])
    timed = t_last - t_first
    eval_loss = heldout_loss(unet, text_encoder, spec)
    return {
        "variant": variant,
        "name": VARIANTS[variant],
        "timed_steps": spec["steps"] - spec["warmup"],
        "timed_s": round(timed, 4),
        "timed_images": images,
        "images_per_s": round(images / timed, 3) if timed > 0 else None,
        "s_per_step": round(timed / max(spec["steps"] - spec["warmup"], 1), 4),
        "heldout_denoising_mse": round(eval_loss, 6),
        "own_precision": own,
        **mem,
        **extra,
    }


# ---------------------------------------------------------------------------------------
# Variants (a) and (d): polyadapt's own path
# ---------------------------------------------------------------------------------------


def worker_polyadapt(spec: dict[str, Any], variant: str) -> dict[str, Any]:
    import torch
    from polyadapt.config import BaseModelConfig, LoraConfig, TrainingConfig
    from polyadapt.modalities.image import load_image_folder
    from polyadapt.training import TrainingJob, train
    from polyadapt.training.precision import resolve_precision
    from polyadapt_image.conditioning import text_conditioning
    from polyadapt_image.data import Collator, build_examples, cache_latents, size_multiple
    from polyadapt_image.loss import DiffusionLoss, summed_loss
    from polyadapt_image.model import attach_lora, load_pipeline, noise_scheduler
    from polyadapt_image.options import ImageOptions

    work = Path(spec["work"])
    cached = variant == "a"
    options = ImageOptions(resolution=spec["resolution"], cache_latents=cached, min_image_size=8)
    started = time.perf_counter()
    base = BaseModelConfig(id=spec["source"], dtype="auto")
    pipeline = load_pipeline(base)
    scheduler = noise_scheduler(spec["source"])
    torch.manual_seed(spec["seed"])
    attach_lora(pipeline, LoraConfig(r=spec["rank"], alpha=spec["rank"], dropout=0.0, target_modules=TARGETS))
    clean_dir = work / f"images_{variant}"
    dataset = load_image_folder(spec["train_dir"], clean_dir=clean_dir, min_size=8)
    load_s = time.perf_counter() - started
    dev = torch.device(spec["device"])
    pipeline.unet.to(dev)
    pipeline.text_encoder.to(dev)
    reset_train_peak(spec["device"])
    started = time.perf_counter()
    conditioning = text_conditioning(pipeline)
    examples = build_examples(clean_dir, dataset.records, conditioning, options, size_multiple(pipeline))
    if cached:
        pipeline.vae.to(dev)
        examples = cache_latents(examples, pipeline.vae)
        pipeline.vae.to("cpu")
    else:
        pipeline.vae.to(dev)
    sync(spec["device"])
    prepare_s = time.perf_counter() - started
    model = DiffusionLoss(
        pipeline.unet, conditioning, scheduler, None if cached else pipeline.vae, vae_config=pipeline.vae.config
    )
    training = TrainingConfig(
        max_steps=spec["steps"],
        learning_rate=spec["lr"],
        batch_size=spec["batch"],
        seed=spec["seed"],
        precision="auto",
        schedule="constant",
        warmup_ratio=0.0,
        weight_decay=WEIGHT_DECAY,
        max_grad_norm=1.0,
        log_every=1,
    )
    job = TrainingJob(model=model, train_data=examples, collate=Collator(), loss=summed_loss)
    result = train(job, training, work / f"run_{variant}", progress=False)
    sync(spec["device"])
    elapsed = {r["step"]: r["elapsed_s"] for r in result.log}
    t_first = elapsed[spec["warmup"]] if spec["warmup"] else 0.0
    t_last = elapsed[spec["steps"]]
    extra = {
        "weights_dtype": str(next(pipeline.unet.parameters()).dtype).replace("torch.", ""),
        "train_images": len(examples),
        "latents_cached": cached,
        "prepare_s": round(prepare_s, 3),
        "final_train_loss": result.train_loss,
        "load_s": round(load_s, 3),
    }
    own = "bf16" if resolve_precision("auto") == "bf16" else "fp32"
    images = spec["batch"] * (spec["steps"] - spec["warmup"])
    return _finish(spec, variant, pipeline.unet, pipeline.text_encoder, images, t_first, t_last, own, extra)


# ---------------------------------------------------------------------------------------
# Variants (b) and (c): the loop of diffusers' train_text_to_image_lora.py
# ---------------------------------------------------------------------------------------


def worker_diffusers(spec: dict[str, Any], variant: str) -> dict[str, Any]:
    import torch
    import torch.nn.functional as F
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import cast_training_params
    from peft import LoraConfig
    from transformers import CLIPTextModel, CLIPTokenizer

    mixed = "bf16" if variant == "c" else "no"
    started = time.perf_counter()
    accelerator = Accelerator(gradient_accumulation_steps=1, mixed_precision=mixed, cpu=spec["device"] == "cpu")
    set_seed(spec["seed"])
    source = spec["source"]
    noise_scheduler = DDPMScheduler.from_pretrained(source, subfolder="scheduler")
    tokenizer = CLIPTokenizer.from_pretrained(source, subfolder="tokenizer")
    text_encoder = CLIPTextModel.from_pretrained(source, subfolder="text_encoder")
    vae = AutoencoderKL.from_pretrained(source, subfolder="vae")
    unet = UNet2DConditionModel.from_pretrained(source, subfolder="unet")
    unet.requires_grad_(False)
    vae.requires_grad_(False)
    text_encoder.requires_grad_(False)
    weight_dtype = torch.float32
    if accelerator.mixed_precision == "fp16":
        weight_dtype = torch.float16
    elif accelerator.mixed_precision == "bf16":
        weight_dtype = torch.bfloat16
    torch.manual_seed(spec["seed"])
    unet_lora_config = LoraConfig(
        r=spec["rank"], lora_alpha=spec["rank"], init_lora_weights="gaussian", target_modules=TARGETS
    )
    unet.to(accelerator.device, dtype=weight_dtype)
    vae.to(accelerator.device, dtype=weight_dtype)
    text_encoder.to(accelerator.device, dtype=weight_dtype)
    unet.add_adapter(unet_lora_config)
    if accelerator.mixed_precision == "fp16":
        cast_training_params(unet, dtype=torch.float32)
    lora_layers = [p for p in unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(lora_layers, lr=spec["lr"], betas=(0.9, 0.999), weight_decay=WEIGHT_DECAY, eps=1e-08)

    folder = Path(spec["train_dir"])
    rows = _rows(spec["train_dir"])
    resolution = spec["resolution"]

    class ImageFolder(torch.utils.data.Dataset):  # load_dataset("imagefolder").with_transform(...)
        def __len__(self):
            return len(rows)

        def __getitem__(self, index):
            row = rows[index]
            ids = tokenizer(
                [row["text"]],
                max_length=tokenizer.model_max_length,
                padding="max_length",
                truncation=True,
                return_tensors="pt",
            ).input_ids[0]
            return {"pixel_values": _pixels(folder / row["file_name"], resolution), "input_ids": ids}

    def collate_fn(examples):
        pixel_values = torch.stack([example["pixel_values"] for example in examples])
        pixel_values = pixel_values.to(memory_format=torch.contiguous_format).float()
        input_ids = torch.stack([example["input_ids"] for example in examples])
        return {"pixel_values": pixel_values, "input_ids": input_ids}

    train_dataloader = torch.utils.data.DataLoader(
        ImageFolder(), shuffle=True, collate_fn=collate_fn, batch_size=spec["batch"], num_workers=0
    )
    lr_scheduler = get_scheduler("constant", optimizer=optimizer, num_warmup_steps=0, num_training_steps=spec["steps"])
    unet, optimizer, train_dataloader, lr_scheduler = accelerator.prepare(
        unet, optimizer, train_dataloader, lr_scheduler
    )
    load_s = time.perf_counter() - started

    device = spec["device"]
    steps, warmup = spec["steps"], spec["warmup"]
    times: dict[int, float] = {}
    global_step, images, last_loss = 0, 0, None
    reset_train_peak(device)
    sync(device)
    times[0] = time.perf_counter()
    for _epoch in range(math.ceil(steps / max(len(train_dataloader), 1)) + 1):
        unet.train()
        for batch in train_dataloader:
            with accelerator.accumulate(unet):
                latents = vae.encode(batch["pixel_values"].to(dtype=weight_dtype)).latent_dist.sample()
                latents = latents * vae.config.scaling_factor
                noise = torch.randn_like(latents)
                bsz = latents.shape[0]
                timesteps = torch.randint(
                    0, noise_scheduler.config.num_train_timesteps, (bsz,), device=latents.device
                ).long()
                noisy_latents = noise_scheduler.add_noise(latents, noise, timesteps)
                encoder_hidden_states = text_encoder(batch["input_ids"], return_dict=False)[0]
                if noise_scheduler.config.prediction_type == "epsilon":
                    target = noise
                else:
                    target = noise_scheduler.get_velocity(latents, noise, timesteps)
                model_pred = unet(noisy_latents, timesteps, encoder_hidden_states, return_dict=False)[0]
                loss = F.mse_loss(model_pred.float(), target.float(), reduction="mean")
                avg_loss = accelerator.gather(loss.repeat(spec["batch"])).mean()
                last_loss = avg_loss.item()
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(lora_layers, 1.0)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad()
            if accelerator.sync_gradients:
                global_step += 1
                if global_step > warmup:
                    images += bsz
                if global_step in (warmup, steps):
                    sync(device)
                    times[global_step] = time.perf_counter()
            if global_step >= steps:
                break
        if global_step >= steps:
            break
    extra = {
        "weights_dtype": str(weight_dtype).replace("torch.", ""),
        "train_images": len(rows),
        "latents_cached": False,
        "prepare_s": 0.0,
        "final_train_loss": last_loss,
        "load_s": round(load_s, 3),
    }
    unet = accelerator.unwrap_model(unet)
    own = "bf16" if variant == "c" else "fp32"
    return _finish(spec, variant, unet, text_encoder, images, times[warmup], times[steps], own, extra)


def worker_peak(spec: dict[str, Any]) -> dict[str, Any]:
    return matmul_peak(spec["device"], spec["peak_seconds"])


# ---------------------------------------------------------------------------------------
# Parent: model, data, subprocesses, report
# ---------------------------------------------------------------------------------------


def report(
    spec: dict[str, Any], results: dict[str, Any], peak: dict[str, float], flops: dict[str, Any], args
) -> dict[str, Any]:
    threads = spec["threads"] if spec["device"] == "cpu" else "-"
    per_image = flops["train_flops_per_image"]
    print()
    print(
        f"model   {spec['model_label']}: UNet {flops['params_unet']:,}, VAE {flops['params_vae']:,}, "
        f"text encoder {flops['params_text_encoder']:,} parameters; LoRA {flops['params_lora']:,} "
        f"(r={spec['rank']} on {','.join(TARGETS)}); latents {'x'.join(map(str, flops['latent_shape']))}"
    )
    print(f"data    {spec['data_label']}")
    print(
        f"setup   device={spec['device']} threads={threads} resolution={spec['resolution']} batch={spec['batch']} "
        f"steps={spec['steps']} (first {spec['warmup']} untimed) lr={spec['lr']} constant, AdamW wd={WEIGHT_DECAY}"
    )
    print(
        f"peak    measured matmul: bf16 {peak['peak_bf16_tflops']:.3f} TFLOP/s, fp32 {peak['peak_fp32_tflops']:.3f} "
        "TFLOP/s" + (f"; nominal {args.peak_tflops} TFLOP/s" if args.peak_tflops else "")
    )
    print(
        f"FLOPs   per training image {per_image / 1e9:.2f} GFLOP (UNet fwd+bwd, text encoder fwd; "
        f"torch.utils.flop_counter); VAE encode {flops['vae_encode_flops_per_image'] / 1e9:.2f} GFLOP/image "
        "(not credited)"
    )
    print(
        "memory  peak = process peak (CPU: ru_maxrss incl. loading; CUDA: max_memory_allocated); "
        "train = peak since data preparation / training started"
    )
    print("eval    held-out denoising MSE in fp32, fixed timesteps and noise seeds (polyadapt_image.loss)")
    print()
    header = (
        f"{'variant':<48} | {'img/s':>7} | {'s/step':>6} | {'peak GB':>7} | {'train GB':>8} | "
        f"{'prepare s':>9} | {'held-out':>8} | {'MFU% own pk':>11}"
        + (f" | {'MFU% nominal':>12}" if args.peak_tflops else "")
        + f" | {'vs (b)':>6} | {'vs (c)':>6}"
    )
    print(header)
    print("-" * len(header))
    for key in ("a", "d", "b", "c"):
        if key not in results:
            continue
        r = results[key]
        rate = r["images_per_s"] or 0.0
        own_peak = peak["peak_bf16_tflops"] if r["own_precision"] == "bf16" else peak["peak_fp32_tflops"]
        r["model_tflops_per_s"] = round(rate * per_image / 1e12, 6)
        r["mfu_pct_own_peak"] = round(100 * r["model_tflops_per_s"] / own_peak, 3)
        if args.peak_tflops:
            r["mfu_pct_nominal"] = round(100 * r["model_tflops_per_s"] / args.peak_tflops, 3)
        vs = {
            ref: rate / results[ref]["images_per_s"]
            for ref in ("b", "c")
            if ref in results and results[ref]["images_per_s"]
        }
        print(
            f"({key}) {r['name']:<44} | {fmt(r['images_per_s'], '7.2f')} | {r['s_per_step']:6.3f} | "
            f"{fmt(r['peak_gb'], '7.3f')} | {fmt(r['train_peak_gb'], '8.3f')} | {r['prepare_s']:9.2f} | "
            f"{r['heldout_denoising_mse']:8.4f} | {r['mfu_pct_own_peak']:11.2f}"
            + (f" | {r['mfu_pct_nominal']:12.3f}" if args.peak_tflops else "")
            + f" | {fmt(vs.get('b'), '5.2f')}x | {fmt(vs.get('c'), '5.2f')}x"
        )
    print()
    for key, r in results.items():
        repeats = r["repeats_images_per_s"]
        if len(repeats) > 1:
            print(f"({key}) img/s over {len(repeats)} repeats: {', '.join(f'{x:.2f}' for x in repeats)} (median shown)")
    for key, r in results.items():
        print(
            f"({key}) weights {r['weights_dtype']}, {r['own_precision']} arithmetic, {r['timed_images']} images in "
            f"{r['timed_s']:.2f} s timed, final train loss {fmt(r.get('final_train_loss'), '.4f')}, "
            f"load {r['load_s']:.1f} s"
        )
    summary: dict[str, Any] = {}
    print()
    for key in ("a", "d"):
        for ref in ("b", "c"):
            if key in results and ref in results:
                summary[f"{key}_over_{ref}_images_per_s"] = round(
                    results[key]["images_per_s"] / results[ref]["images_per_s"], 3
                )
                summary[f"{key}_over_{ref}_peak_memory"] = round(results[key]["peak_gb"] / results[ref]["peak_gb"], 3)
    if "a" in results and "d" in results:
        a, d = results["a"], results["d"]
        speedup = a["images_per_s"] / d["images_per_s"]
        saved_per_step = d["s_per_step"] - a["s_per_step"]
        summary["cache_speedup"] = round(speedup, 3)
        line = (
            f"latent cache: (a) {speedup:.2f}x the images/s of (d); encoding {a['train_images']} images "
            f"once took {a['prepare_s']:.2f} s"
        )
        if saved_per_step > 0:
            break_even = a["prepare_s"] / saved_per_step
            summary["cache_break_even_steps"] = round(break_even, 1)
            epochs = break_even * spec["batch"] / max(a["train_images"], 1)
            line += f", paid back after {break_even:.0f} steps ({epochs:.2f} epochs)"
        print(line)
    for key, ref in (("a", "b"), ("a", "c")):
        if f"{key}_over_{ref}_images_per_s" in summary:
            print(
                f"({key}) vs ({ref}): {summary[f'{key}_over_{ref}_images_per_s']:.2f}x images/s, peak memory "
                f"{results[key]['peak_gb']:.3f} / {results[ref]['peak_gb']:.3f} GB"
            )
    return {
        "setup": {
            k: spec[k]
            for k in (
                "model_label",
                "data_label",
                "device",
                "threads",
                "resolution",
                "batch",
                "steps",
                "warmup",
                "lr",
                "seed",
                "rank",
            )
        }
        | {"targets": TARGETS, "weight_decay": WEIGHT_DECAY, "nominal_peak_tflops": args.peak_tflops},
        "peak": peak,
        "flops": flops,
        "variants": results,
        "summary": summary,
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="an SD-style pipeline folder (default: a small random one, built here)")
    parser.add_argument(
        "--data",
        type=Path,
        help=f"an image folder with metadata.jsonl (file_name, text); "
        f"default {BRAND_DATA}/train (generated when missing)",
    )
    parser.add_argument("--eval-data", type=Path, help="held-out images (default: the brand data's eval/)")
    parser.add_argument(
        "--resolution", type=int, help="training size (default: 128 for the small model, else the VAE's sample_size)"
    )
    parser.add_argument("--steps", type=int, default=12, help="optimizer steps per variant")
    parser.add_argument("--warmup", type=int, default=2, help="first steps left out of the timing")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rank", type=int, default=8, help="LoRA rank (alpha = rank, as in the script)")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (CPU)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--variants", default="bcda", help="which variants, in run order (default bcda)")
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="run each variant this many times, interleaved; report the median images/s",
    )
    parser.add_argument("--eval-images", type=int, default=8, help="held-out images scored after training")
    measure.add_run_arguments(parser)
    return parser.parse_args(argv)


def worker_main(args) -> None:
    spec = json.loads(args.spec.read_text())
    _setup_worker(spec)
    if spec["device"] == "cuda":
        import torch

        if not torch.cuda.is_available():
            sys.exit("error: --device cuda but torch sees no CUDA device")
    kind = args.worker
    if kind in ("a", "d"):
        result = worker_polyadapt(spec, kind)
    elif kind in ("b", "c"):
        result = worker_diffusers(spec, kind)
    elif kind == "peak":
        result = worker_peak(spec)
    elif kind == "flops":
        result = worker_flops(spec)
    else:
        sys.exit(f"unknown worker {kind}")
    args.out.write_text(json.dumps(result))


def resolve_data(args) -> tuple[Path, Path, str]:
    if args.data is not None:
        train = args.data.resolve()
        held_out = (args.eval_data or args.data).resolve()
        return train, held_out, f"{train}; held-out {held_out}"
    if not (BRAND_DATA / "train" / "metadata.jsonl").is_file():
        sys.path.insert(0, str(ROOT / "examples" / "image"))
        from make_data import main as make_brand_data

        make_brand_data(BRAND_DATA)
    return (
        BRAND_DATA / "train",
        (args.eval_data or BRAND_DATA / "eval").resolve(),
        "examples/image/brand: invented flat logos (examples/image/make_data.py), 96 train / 24 held-out",
    )


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker_main(args)
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not 0 <= args.warmup < args.steps:
        sys.exit("error: need 0 <= --warmup < --steps")
    variants = [v for v in args.variants if v in VARIANTS]
    if not variants:
        sys.exit("error: --variants must name some of a, b, c, d")
    holder = None
    if args.work_dir:
        work = args.work_dir.resolve()
        work.mkdir(parents=True, exist_ok=True)
    else:
        holder = tempfile.TemporaryDirectory(prefix="polyadapt-image-bench-")
        work = Path(holder.name)
    try:
        if args.model:
            source, label = str(Path(args.model).expanduser().resolve()), args.model
            if args.resolution is None:
                vae_config = json.loads((Path(source) / "vae" / "config.json").read_text())
                args.resolution = int(vae_config.get("sample_size") or 512)
        else:
            from polyadapt_image.testing import SMALL_RESOLUTION, build_small_sd_pipeline

            source = str(build_small_sd_pipeline(work / "small-sd", seed=args.seed))
            label = "small random SD-1.x-layout pipeline (polyadapt_image.testing.build_small_sd_pipeline)"
            args.resolution = args.resolution or SMALL_RESOLUTION
        train_dir, eval_dir, data_label = resolve_data(args)
        spec = {
            "source": source,
            "model_label": label,
            "data_label": data_label,
            "train_dir": str(train_dir),
            "eval_dir": str(eval_dir),
            "eval_images": args.eval_images,
            "device": args.device,
            "threads": args.threads,
            "resolution": args.resolution,
            "batch": args.batch,
            "steps": args.steps,
            "warmup": args.warmup,
            "lr": args.lr,
            "seed": args.seed,
            "rank": args.rank,
            "peak_seconds": args.peak_seconds,
            "work": str(work),
        }
        spec_path = work / "spec.json"
        spec_path.write_text(json.dumps(spec))
        print(f"work dir {work}; model {source}", file=sys.stderr)
        script = Path(__file__)
        peak = measure.run_worker(script, "peak", spec_path, work, spec, args.timeout)
        flops = measure.run_worker(script, "flops", spec_path, work, spec, args.timeout)
        print(f"  matmul peak {peak}; flops {flops}", file=sys.stderr)
        runs: dict[str, list[dict[str, Any]]] = {key: [] for key in variants}
        for repeat in range(args.repeats):  # interleaved, so a change in background load hits all
            order = variants if repeat % 2 == 0 else list(reversed(variants))
            for key in order:
                r = measure.run_worker(script, key, spec_path, work, spec, args.timeout)
                runs[key].append(r)
                print(
                    f"  ({key}) run {repeat + 1}/{args.repeats}: {r['images_per_s']} img/s, peak {r['peak_gb']} GB, "
                    f"held-out {r['heldout_denoising_mse']} [{r['subprocess_s']} s]",
                    file=sys.stderr,
                )
        results = {key: combine(runs[key], "images_per_s") for key in variants}
        payload = report(spec, results, peak, flops, args)
        line = json.dumps(payload, sort_keys=True)
        if args.json_out:
            args.json_out.write_text(line + "\n")
        print()
        print("BENCH_JSON " + line)
    finally:
        if holder is not None:
            holder.cleanup()


if __name__ == "__main__":
    main()
