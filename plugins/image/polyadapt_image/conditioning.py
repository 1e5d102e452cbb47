"""How captions become the UNet's conditioning, per pipeline architecture.

Everything else in the plugin is the same for each supported architecture (a
``UNet2DConditionModel`` predicting noise on VAE latents); the text side differs, and this
module is the one place that knows how. :func:`text_conditioning` looks at a loaded
pipeline and returns its :class:`TextConditioning`:

- :class:`SDConditioning`, Stable Diffusion 1.x/2.x: one CLIP text encoder; the UNet
  cross-attends to its last hidden state.
- :class:`SDXLConditioning`, Stable Diffusion XL: two CLIP text encoders (``text_encoder``
  and ``text_encoder_2``, a ``CLIPTextModelWithProjection``); the UNet cross-attends to
  their penultimate hidden states side by side and takes ``added_cond_kwargs``: the second
  encoder's pooled, projected embedding (``text_embeds``) and the micro-conditioning
  ``time_ids`` = original size + crop top-left + target size, each (height, width), as
  ``StableDiffusionXLPipeline`` and diffusers' ``train_text_to_image_lora_sdxl.py`` build
  them.

Every example carries the token ids of :meth:`TextConditioning.tokenize` and its crop
geometry (``original_size``, ``crop_top_left``, ``target_size``; see
:mod:`polyadapt_image.data`) whatever the architecture; :meth:`TextConditioning.encode`
uses what its architecture needs.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from polyadapt.errors import ConfigError


class TextConditioning:
    """The text side of one architecture: its encoders, tokenizers and UNet conditioning."""

    #: Short name, recorded in the adapter's ``polyadapt_image.json``.
    kind = ""
    #: The diffusers pipeline class whose ``save_lora_weights`` writes this architecture's LoRA.
    pipeline_class = ""
    #: Pipeline attributes of the text encoders and tokenizers, in order.
    encoder_names: tuple[str, ...] = ()
    tokenizer_names: tuple[str, ...] = ()
    #: The example keys of each tokenizer's ids.
    id_keys: tuple[str, ...] = ()

    def __init__(self, **components: Any):
        """From the text encoders and tokenizers under their pipeline names
        (``SDConditioning(text_encoder=..., tokenizer=...)``)."""
        self.encoders: dict[str, torch.nn.Module] = {name: components[name] for name in self.encoder_names}
        self.tokenizers = [components[name] for name in self.tokenizer_names]

    @classmethod
    def from_pipeline(cls, pipeline: Any) -> TextConditioning:
        """The conditioning made of ``pipeline``'s own text encoders and tokenizers."""
        return cls(**{name: getattr(pipeline, name) for name in (*cls.encoder_names, *cls.tokenizer_names)})

    def tokenize(self, captions: list[str]) -> dict[str, torch.Tensor]:
        """Token ids of ``captions`` for each text encoder, padded to the tokenizer's length as the pipeline pads."""
        return {
            key: tokenizer(
                captions,
                padding="max_length",
                max_length=tokenizer.model_max_length,
                truncation=True,
                return_tensors="pt",
            ).input_ids
            for key, tokenizer in zip(self.id_keys, self.tokenizers)
        }

    def encode(
        self, group: dict[str, torch.Tensor], *, trainable: bool = False
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
        """(the hidden states the UNet cross-attends to, its ``added_cond_kwargs`` or None).

        ``group`` holds a batch's stacked example fields; gradients flow into the encoders
        only when ``trainable`` (text-encoder LoRA).
        """
        with contextlib.nullcontext() if trainable else torch.no_grad():
            return self._encode(group)

    def _encode(self, group: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
        raise NotImplementedError


class SDConditioning(TextConditioning):
    """Stable Diffusion 1.x/2.x: one CLIP text encoder, its last hidden state."""

    kind = "stable-diffusion"
    pipeline_class = "StableDiffusionPipeline"
    encoder_names = ("text_encoder",)
    tokenizer_names = ("tokenizer",)
    id_keys = ("input_ids",)

    def _encode(self, group: dict[str, torch.Tensor]) -> tuple[torch.Tensor, None]:
        return self.encoders["text_encoder"](group["input_ids"], return_dict=False)[0], None


class SDXLConditioning(TextConditioning):
    """Stable Diffusion XL: two CLIP text encoders, pooled embeddings and size ``time_ids``."""

    kind = "stable-diffusion-xl"
    pipeline_class = "StableDiffusionXLPipeline"
    encoder_names = ("text_encoder", "text_encoder_2")
    tokenizer_names = ("tokenizer", "tokenizer_2")
    id_keys = ("input_ids", "input_ids_2")

    def _encode(self, group: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        hidden = []
        for name, key in zip(self.encoder_names, self.id_keys):
            output = self.encoders[name](group[key], output_hidden_states=True)
            hidden.append(output.hidden_states[-2])  # the penultimate layer, as the pipeline uses
        pooled = output.text_embeds  # of the last encoder, the one with a projection
        time_ids = torch.cat([group["original_size"], group["crop_top_left"], group["target_size"]], dim=1)
        return torch.cat(hidden, dim=-1), {"text_embeds": pooled, "time_ids": time_ids.to(pooled.dtype)}


def text_conditioning(pipeline: Any, source: str = "the base model") -> TextConditioning:
    """The :class:`TextConditioning` of ``pipeline``'s architecture; :class:`ConfigError` if unsupported.

    SDXL is recognised by its UNet's ``addition_embed_type: text_time``; anything else with
    a CLIP text encoder is treated as Stable Diffusion 1.x/2.x. ``source`` names the base in
    messages.
    """
    unet = getattr(pipeline, "unet", None)
    sdxl = getattr(getattr(unet, "config", None), "addition_embed_type", None) == "text_time"
    kind = SDXLConditioning if sdxl else SDConditioning
    missing = [name for name in (*kind.encoder_names, *kind.tokenizer_names) if getattr(pipeline, name, None) is None]
    if missing:
        what = (
            "an SDXL UNet (addition_embed_type: text_time) needs both CLIP text encoders; the "
            "refiner, which has only text_encoder_2, is not supported"
            if sdxl
            else "the image plugin adapts Stable-Diffusion-style pipelines (UNet + VAE + CLIP text encoder) "
            "and Stable Diffusion XL"
        )
        raise ConfigError(
            f"base_model.id: {source} is a {type(pipeline).__name__} without {', '.join(missing)}; {what}"
        )
    if sdxl and not hasattr(pipeline.text_encoder_2, "text_projection"):
        raise ConfigError(
            f"base_model.id: {source}: text_encoder_2 is a {type(pipeline.text_encoder_2).__name__}; "
            "an SDXL pipeline's second text encoder must be a CLIPTextModelWithProjection"
        )
    return kind.from_pipeline(pipeline)
