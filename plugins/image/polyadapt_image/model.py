"""Loading a Stable-Diffusion-style pipeline, attaching LoRA, saving it in diffusers' format.

A base is any ``DiffusionPipeline`` folder or hub id with a ``UNet2DConditionModel``
(``unet``), an ``AutoencoderKL`` (``vae``), a scheduler and the text encoders and
tokenizers of its architecture (:mod:`polyadapt_image.conditioning`): Stable Diffusion
1.x/2.x (one CLIP text encoder), Stable Diffusion XL (two) and their fine-tunes. LoRA goes
on the UNet's attention projections through peft (:func:`polyadapt.lora.inject_lora`, as
``unet.add_adapter`` does), optionally on every text encoder too. The adapter is saved with
the architecture's pipeline class (``StableDiffusionPipeline`` or
``StableDiffusionXLPipeline``) ``.save_lora_weights`` as
``pytorch_lora_weights.safetensors`` with its LoRA configs in the file's metadata, so a
plain ``pipeline.load_lora_weights(folder)`` uses it with the trained rank and alpha.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from polyadapt.config import BaseModelConfig, LoraConfig
from polyadapt.errors import ConfigError
from polyadapt.pretrained import refusing_unsafe_pickles
from polyadapt_image.conditioning import TextConditioning, text_conditioning

#: LoRA targets of the UNet for ``target_modules: auto``: the attention projections.
UNET_ATTENTION = ["to_q", "to_k", "to_v", "to_out.0"]
#: ``target_modules: all-linear`` on a UNet: attention, transformer projections and feed-forward.
UNET_ALL_LINEAR = [*UNET_ATTENTION, "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2"]
#: The file diffusers reads (``load_lora_weights``) and the record of how it was trained.
WEIGHTS_NAME = "pytorch_lora_weights.safetensors"
ADAPTER_INFO = "polyadapt_image.json"
#: Internal adapter name while training (diffusers names loaded ones itself).
TRAIN_ADAPTER = "default"


def weight_dtype(config: BaseModelConfig) -> torch.dtype:
    """The dtype of the frozen UNet and text encoder; ``auto`` is bf16 where bf16 is fast."""
    if config.dtype == "auto":
        from polyadapt.training.precision import fast_weight_dtype

        return fast_weight_dtype()
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[config.dtype]


def pipeline_source(model_id: str) -> str:
    """A hub id as it is; a local path with ``~`` expanded."""
    return str(Path(model_id).expanduser()) if model_id.startswith("~") else model_id


def load_pipeline(config: BaseModelConfig, *, dtype: torch.dtype | None = None):
    """The base pipeline from a folder or hub id, frozen, progress bars off.

    The VAE stays in fp32 whatever ``dtype`` says: SD VAEs overflow in fp16 and the VAE
    runs once per image when latents are cached.
    """
    from diffusers import DiffusionPipeline

    source = pipeline_source(config.id)
    try:
        with refusing_unsafe_pickles(source, what=f"base_model.id: {config.id!r}", error=ConfigError):
            pipeline = DiffusionPipeline.from_pretrained(source, revision=config.revision, dtype=torch.float32)
    except (OSError, ValueError, EnvironmentError) as exc:
        raise ConfigError(
            f"base_model.id: cannot load {config.id!r} as a diffusers pipeline: {exc}. Give a "
            "local pipeline folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, "
            "scheduler/; SDXL also text_encoder_2/, tokenizer_2/) or a hub id reachable from this machine"
        ) from None
    missing = [name for name in ("unet", "vae", "scheduler") if getattr(pipeline, name, None) is None]
    if missing:
        raise ConfigError(
            f"base_model.id: {config.id!r} is a {type(pipeline).__name__} without {', '.join(missing)}; "
            "the image plugin adapts Stable-Diffusion-style pipelines (UNet + VAE + CLIP text encoder) "
            "and Stable Diffusion XL"
        )
    encoders = list(text_conditioning(pipeline, repr(config.id)).encoders.values())
    dtype = dtype or weight_dtype(config)
    for module in (pipeline.unet, pipeline.vae, *encoders):
        module.requires_grad_(False)
        module.eval()
    if dtype != torch.float32:
        for module in (pipeline.unet, *encoders):
            module.to(dtype=dtype)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def noise_scheduler(model_id: str, prediction_type: str = "auto", revision: str | None = None):
    """The training noise scheduler: DDPM with the pipeline scheduler's betas and settings."""
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler.from_pretrained(pipeline_source(model_id), subfolder="scheduler", revision=revision)
    if prediction_type != "auto":
        scheduler.register_to_config(prediction_type=prediction_type)
    return scheduler


def unet_targets(lora: LoraConfig) -> list[str]:
    """The UNet module names LoRA attaches to."""
    if lora.target_modules == "auto":
        return list(UNET_ATTENTION)
    if lora.target_modules == "all-linear":
        return list(UNET_ALL_LINEAR)
    return list(lora.target_modules)


def attach_lora(
    pipeline: Any,
    lora: LoraConfig,
    *,
    text_encoder: bool = False,
    text_encoder_targets: list[str] | None = None,
    conditioning: TextConditioning | None = None,
) -> Any:
    """Add a fresh trainable LoRA adapter to the pipeline's UNet (and, with ``text_encoder``,
    to every text encoder of its architecture: both of SDXL's); returns :func:`lora_modules`.

    Gaussian-initialised, in fp32, under the adapter name diffusers gives a trained adapter
    (``default``), as diffusers' training scripts do. A target that matches nothing is a
    :class:`~polyadapt.errors.ConfigError` naming ``lora.target_modules`` (UNet) or
    ``task_options.text_encoder_targets (<encoder>)``. ``conditioning`` is the pipeline's
    :class:`TextConditioning` (detected when None).
    """
    from polyadapt.lora import inject_lora

    conditioning = conditioning or text_conditioning(pipeline)
    inject_lora(pipeline.unet, lora, unet_targets(lora), adapter_name=TRAIN_ADAPTER, init_lora_weights="gaussian")
    pipeline.unet._hf_peft_config_loaded = True  # what unet.add_adapter records: diffusers' LoRA calls work
    if text_encoder:
        for name, encoder in conditioning.encoders.items():
            inject_lora(
                encoder,
                lora,
                text_encoder_targets or ["q_proj", "k_proj", "v_proj", "out_proj"],
                adapter_name=TRAIN_ADAPTER,
                field=f"task_options.text_encoder_targets ({name})",
                init_lora_weights="gaussian",
            )
    return lora_modules(pipeline, conditioning)


def lora_modules(pipeline: Any, conditioning: TextConditioning | None = None) -> torch.nn.ModuleDict:
    """The pipeline's models under their pipeline names (``unet``, ``vae``, ``text_encoder``...):
    what the run counts the parameters of and saves the adapter from."""
    conditioning = conditioning or text_conditioning(pipeline)
    return torch.nn.ModuleDict({"unet": pipeline.unet, **conditioning.encoders, "vae": pipeline.vae})


def _lora_layers(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    state = get_peft_model_state_dict(module, adapter_name=TRAIN_ADAPTER)
    return {
        k: v.detach().to("cpu", torch.float32).contiguous() for k, v in convert_state_dict_to_diffusers(state).items()
    }


def save_adapter(
    pipeline: Any,
    folder: Path,
    *,
    text_encoder: bool,
    info: dict[str, Any],
    conditioning: TextConditioning | None = None,
) -> Path:
    """Save the trained LoRA into ``folder`` in diffusers' format, plus a small JSON record.

    The layout is that of the architecture's pipeline class (``unet.*``, ``text_encoder.*``,
    SDXL's ``text_encoder_2.*``); ``conditioning`` is detected from the pipeline when None.
    """
    import diffusers

    folder = Path(folder)
    conditioning = conditioning or text_conditioning(pipeline)
    modules = {"unet": pipeline.unet, **(conditioning.encoders if text_encoder else {})}
    kwargs: dict[str, Any] = {}
    for name, module in modules.items():
        kwargs[f"{name}_lora_layers"] = _lora_layers(module)
        kwargs[f"{name}_lora_adapter_metadata"] = module.peft_config[TRAIN_ADAPTER].to_dict()
    saver = getattr(diffusers, conditioning.pipeline_class)
    saver.save_lora_weights(folder, weight_name=WEIGHTS_NAME, safe_serialization=True, **kwargs)
    (folder / ADAPTER_INFO).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return folder / WEIGHTS_NAME


def adapter_info(folder: Path) -> dict[str, Any]:
    """The record :func:`save_adapter` wrote beside the weights (empty if absent)."""
    path = Path(folder) / ADAPTER_INFO
    return json.loads(path.read_text()) if path.is_file() else {}
