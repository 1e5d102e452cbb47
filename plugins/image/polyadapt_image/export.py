"""Exporting an image run: the diffusers LoRA file alone, or a pipeline with the LoRA fused in.

``lora``: ``pytorch_lora_weights.safetensors`` (what ``pipeline.load_lora_weights`` reads)
and the adapter's card. ``merged``: the base pipeline with the LoRA loaded, fused into the
UNet (and the text encoders it trained) with ``fuse_lora``, unloaded, and saved with
``save_pretrained``: ``DiffusionPipeline.from_pretrained(folder)`` draws the adapted
images with no LoRA to load. The merged pipeline is checked before it is kept: its UNet
and text encoders, read back from the folder, must give what base + LoRA give on fixed
inputs (the figures go into the export's lineage record).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from polyadapt.errors import ConfigError, PolyadaptError

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Mapping

    from polyadapt.types import AdapterArtifact, Run

#: Largest |difference| allowed between the merged pipeline and base + LoRA, relative to the
#: largest |output| (fp32 throughout: fusing only reorders the same sums).
TOLERANCE = 1e-3
CHECK_PROMPT = "a photo of the product on a plain background"


@torch.no_grad()
def _outputs(pipeline: Any) -> dict[str, torch.Tensor]:
    """The UNet's noise prediction on fixed random inputs and each text encoder's hidden
    states for :data:`CHECK_PROMPT`: what fusing the LoRA must not change."""
    from polyadapt_image.conditioning import text_conditioning

    generator = torch.Generator().manual_seed(0)
    unet = pipeline.unet
    config = unet.config
    side = 2 ** len(config.block_out_channels)
    cross = config.cross_attention_dim
    cross = cross[0] if isinstance(cross, (list, tuple)) else cross
    sample = torch.randn(1, config.in_channels, side, side, generator=generator)
    states = torch.randn(1, 4, cross, generator=generator)
    kwargs: dict[str, Any] = {}
    if config.addition_embed_type == "text_time":  # SDXL's pooled text and size conditioning
        time_dim = config.addition_time_embed_dim
        text_dim = config.projection_class_embeddings_input_dim - 6 * time_dim
        kwargs["added_cond_kwargs"] = {
            "text_embeds": torch.randn(1, text_dim, generator=generator),
            "time_ids": torch.tensor([[side * 8.0, side * 8.0, 0.0, 0.0, side * 8.0, side * 8.0]]),
        }
    out = {"unet": unet(sample, torch.tensor([10]), states, **kwargs).sample.float()}
    conditioning = text_conditioning(pipeline)
    for (name, encoder), tokenizer_name in zip(
        conditioning.encoders.items(), conditioning.tokenizer_names, strict=True
    ):
        tokenizer = getattr(pipeline, tokenizer_name)
        ids = tokenizer(CHECK_PROMPT, padding="max_length", max_length=tokenizer.model_max_length, truncation=True)
        out[name] = encoder(torch.tensor([ids["input_ids"]]))[0].float()
    return out


def export_lora(adapter: AdapterArtifact, folder: Path) -> dict[str, Any]:
    """The diffusers LoRA weights file and the adapter's card."""
    from polyadapt_image.model import WEIGHTS_NAME

    source = Path(adapter.path)
    if not (source / WEIGHTS_NAME).is_file():
        raise PolyadaptError(f"{source}: no {WEIGHTS_NAME}; this adapter was not saved by the image plugin")
    for name in (WEIGHTS_NAME, "README.md"):
        if (source / name).is_file():
            shutil.copy2(source / name, folder / name)
    return {"file": WEIGHTS_NAME, "library": "diffusers"}


def export_merged(run: Run, adapter: AdapterArtifact, folder: Path) -> dict[str, Any]:
    """The base pipeline with the LoRA fused in, saved with ``save_pretrained`` and checked."""
    from diffusers import DiffusionPipeline

    from polyadapt.lineage.card import write_export_card
    from polyadapt.pretrained import refusing_unsafe_pickles
    from polyadapt_image.model import WEIGHTS_NAME, load_pipeline

    pipeline = load_pipeline(run.config.base_model, dtype=torch.float32)
    with refusing_unsafe_pickles(adapter.path, what="adapter"):
        pipeline.load_lora_weights(str(adapter.path), weight_name=WEIGHTS_NAME)
    reference = _outputs(pipeline)
    pipeline.fuse_lora(lora_scale=1.0)
    pipeline.unload_lora_weights()
    pipeline.save_pretrained(folder, safe_serialization=True)
    del pipeline
    reloaded = DiffusionPipeline.from_pretrained(folder, dtype=torch.float32)
    merged = _outputs(reloaded)
    figures: dict[str, Any] = {}
    for name, expected in reference.items():
        diff = float((merged[name] - expected).abs().max())
        scale = float(expected.abs().max())
        figures[f"{name}_max_abs_diff"] = round(diff, 8)
        if diff > TOLERANCE * max(scale, 1.0):
            raise PolyadaptError(
                f"the merged pipeline's {name} does not reproduce base + LoRA (max |difference| {diff:.3g} "
                f"for outputs up to {scale:.3g}); nothing was written. Use --format lora instead"
            )
    run.say("check merged pipeline against base + LoRA: " + ", ".join(f"{k} {v:.3g}" for k, v in figures.items()))
    write_export_card(adapter.path, folder / "model_index.json", library_name="diffusers", how_to_load=_MERGED_HOW_TO)
    return {"library": "diffusers", "verification": figures}


_MERGED_HOW_TO = """Load it with plain diffusers (no LoRA to load, no polyadapt):

```python
from diffusers import DiffusionPipeline
pipe = DiffusionPipeline.from_pretrained("path/to/this/folder")
image = pipe("your prompt").images[0]
```"""


def export(run: Run, adapter: AdapterArtifact, fmt: str, options: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    """``polyadapt export`` of an image run: ``lora`` or ``merged`` (``peft`` is the core's copy)."""
    if options.get("quant"):
        raise ConfigError(f"--quant means nothing to --format {fmt} of an image run (its weights stay fp32)")
    if fmt == "lora":
        return export_lora(adapter, folder)
    if fmt == "merged":
        return export_merged(run, adapter, folder)
    raise ConfigError(f"--format {fmt!r}: an image run exports peft, lora or merged")
