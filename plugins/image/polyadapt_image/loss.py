"""The noise-prediction loss of latent diffusion, as the shared trainer wants it.

:class:`DiffusionLoss` is the ``model`` handed to :func:`polyadapt.training.train`: it holds
the UNet (with LoRA), the text encoders of the pipeline's architecture (frozen, or with
LoRA) with the :class:`~polyadapt_image.conditioning.TextConditioning` that says how they
condition the UNet, and, when latents are not cached, the frozen VAE. Its
``forward(batch)`` returns the *sum* over the batch's images of each image's mean squared
error between the UNet's prediction and the target (the noise for ``epsilon``, the
velocity for ``v_prediction``) at a random timestep, optionally weighted by Min-SNR (Hang
et al. 2023, as in diffusers' ``train_text_to_image_lora.py``). The trainer divides by the
images of the optimizer step.

:func:`fixed_denoising_loss` is the evaluation counterpart: no randomness of its own
(the latent distribution's mean, given timesteps, noise from fixed seeds), so base and
adapted are scored on exactly the same problems.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from polyadapt_image.conditioning import TextConditioning


def snr(scheduler: Any, timesteps: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio alpha_bar / (1 - alpha_bar) at ``timesteps``."""
    from diffusers.training_utils import compute_snr

    return compute_snr(scheduler, timesteps)


def min_snr_weights(scheduler: Any, timesteps: torch.Tensor, gamma: float, prediction_type: str) -> torch.Tensor:
    """Per-sample Min-SNR weights: min(SNR, gamma) / SNR (epsilon) or / (SNR + 1) (v)."""
    ratio = snr(scheduler, timesteps).float()
    clipped = torch.minimum(ratio, torch.full_like(ratio, gamma))
    if prediction_type == "v_prediction":
        return clipped / (ratio + 1)
    return clipped / ratio.clamp_min(1e-8)


def scale_latents(latents: torch.Tensor, vae_config: Any) -> torch.Tensor:
    """VAE latents in the UNet's range: shifted (SD3-style VAEs) and scaled."""
    shift = getattr(vae_config, "shift_factor", None) or 0.0
    return (latents - shift) * vae_config.scaling_factor


def target_for(scheduler: Any, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """What the UNet must predict under the scheduler's ``prediction_type``."""
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(latents, noise, timesteps)
    raise ValueError(f"prediction type {kind!r} is not supported; use epsilon or v_prediction")


class DiffusionLoss(torch.nn.Module):
    """UNet + text encoders (+ VAE when latents are not cached) and the training loss.

    The text encoders of ``conditioning`` are registered under their pipeline names
    (``text_encoder``, ``text_encoder_2``) so that their LoRA weights train and checkpoint.
    """

    def __init__(
        self,
        unet: Any,
        conditioning: TextConditioning,
        scheduler: Any,
        vae: Any | None = None,
        *,
        vae_config: Any,
        min_snr_gamma: float | None = None,
        train_text_encoder: bool = False,
    ):
        super().__init__()
        self.unet, self.vae = unet, vae
        for name, encoder in conditioning.encoders.items():
            self.add_module(name, encoder)
        self.conditioning = conditioning
        self.scheduler = scheduler
        self.vae_config = vae_config
        self.min_snr_gamma = min_snr_gamma
        self.train_text_encoder = train_text_encoder

    def latents(self, group: dict[str, torch.Tensor]) -> torch.Tensor:
        if "latent_mean" in group:
            mean, std = group["latent_mean"], group["latent_std"]
            latents = mean + std * torch.randn_like(mean)
        else:
            with torch.no_grad():
                pixels = group["pixels"].to(self.vae.dtype)
                latents = self.vae.encode(pixels).latent_dist.sample().float()
        return scale_latents(latents, self.vae_config)

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        dev = self.unet.device
        total = torch.zeros((), device=dev, dtype=torch.float32)
        for group in batch["groups"]:
            group = {k: v.to(dev, non_blocking=True) for k, v in group.items()}
            latents = self.latents(group)
            noise = torch.randn_like(latents)
            timesteps = torch.randint(
                0, self.scheduler.config.num_train_timesteps, (latents.shape[0],), device=dev, dtype=torch.long
            )
            total = total + self.summed_loss(latents, noise, timesteps, group, self.min_snr_gamma)
        return total

    def summed_loss(
        self,
        latents: torch.Tensor,
        noise: torch.Tensor,
        timesteps: torch.Tensor,
        condition: dict[str, torch.Tensor],
        min_snr_gamma: float | None = None,
    ) -> torch.Tensor:
        """Sum over the images of each one's (weighted) mean squared prediction error.

        ``condition`` holds the images' stacked example fields (token ids, crop geometry).
        """
        noisy = self.scheduler.add_noise(latents, noise, timesteps)
        hidden, added = self.conditioning.encode(condition, trainable=self.train_text_encoder)
        dtype = self.unet.dtype
        if added is not None:
            added = {key: value.to(dtype) for key, value in added.items()}
        prediction = self.unet(
            noisy.to(dtype), timesteps, hidden.to(dtype), added_cond_kwargs=added, return_dict=False
        )[0]
        target = target_for(self.scheduler, latents, noise, timesteps)
        per_image = F.mse_loss(prediction.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
        if min_snr_gamma:
            per_image = per_image * min_snr_weights(
                self.scheduler, timesteps, min_snr_gamma, self.scheduler.config.prediction_type
            ).to(per_image.device)
        return per_image.sum()


def summed_loss(model: DiffusionLoss, batch: dict[str, Any]) -> torch.Tensor:
    """The trainer's loss function: the model computes it (through DDP's forward when wrapped)."""
    return model(batch)


def default_eval_timesteps(scheduler: Any, count: int = 5) -> list[int]:
    """``count`` timesteps spread evenly over the schedule (centres of equal slices)."""
    total = scheduler.config.num_train_timesteps
    return [int((k + 0.5) * total / count) for k in range(count)]


@torch.no_grad()
def fixed_denoising_loss(
    scorer: DiffusionLoss,
    latents: list[torch.Tensor],
    conditions: list[dict[str, torch.Tensor]],
    timesteps: list[int],
    noise_seed: int,
) -> float:
    """Mean MSE over every (image, timestep) pair with noise from fixed seeds; no RNG state used.

    ``latents`` are scaled latents (one tensor per image, channels first) and ``conditions``
    each image's conditioning fields (:func:`polyadapt_image.data.condition_of`); image
    ``i`` at timestep number ``k`` gets noise from seed ``noise_seed + i * len(timesteps) + k``.
    """
    dev = scorer.unet.device
    total, count = 0.0, 0
    for i, (latent, condition) in enumerate(zip(latents, conditions)):
        noises, steps = [], []
        for k, step in enumerate(timesteps):
            generator = torch.Generator().manual_seed(noise_seed + i * len(timesteps) + k)
            noises.append(torch.randn(latent.shape, generator=generator))
            steps.append(step)
        batch_latents = latent.unsqueeze(0).expand(len(timesteps), *latent.shape).to(dev)
        noise = torch.stack(noises).to(dev)
        steps_tensor = torch.tensor(steps, device=dev, dtype=torch.long)
        repeated = {
            key: value.unsqueeze(0).expand(len(timesteps), *value.shape).to(dev) for key, value in condition.items()
        }
        total += float(scorer.summed_loss(batch_latents, noise, steps_tensor, repeated))
        count += len(timesteps)
    return total / max(count, 1)
