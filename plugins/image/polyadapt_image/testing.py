"""Tiny Stable-Diffusion-style pipelines for tests, built from configs; nothing is downloaded.

:func:`build_tiny_sd_pipeline` saves a complete ``StableDiffusionPipeline`` folder (UNet,
VAE, CLIP text model, a CLIP tokenizer made here, DDPM-compatible scheduler) that the
plugin loads through its real loading code (``DiffusionPipeline.from_pretrained``). It
trains a step in milliseconds on a CPU. :func:`build_tiny_sdxl_pipeline` does the same for
a ``StableDiffusionXLPipeline`` (two text encoders, the second with a projection, a UNet
with ``text_time`` added embeddings, an Euler scheduler as SDXL ships).
:func:`make_test_images` writes the images the tests use: plain PNGs and JPEGs with
captions, one photo with EXIF and GPS, a corrupt file, a truncated one, a too-small one and
a text file dressed as an image.

The task offers both to :mod:`polyadapt.testing` (``TextToImageTask.tiny_models``):
``tiny_base_model("image")`` builds the SD one (folder ``tiny-sd``),
``tiny_base_model("image-sdxl")`` the SDXL one (``tiny-sdxl``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: The tiny pipeline's native resolution (pixels); its VAE downsamples by 2.
TINY_RESOLUTION = 16
#: The small pipeline's native resolution (pixels); its VAE downsamples by 8, like SD's.
SMALL_RESOLUTION = 128
#: The name of the tiny pipeline's folder (its display name at serving).
TINY_NAME = "tiny-sd"
#: The same for the tiny SDXL pipeline.
TINY_SDXL_NAME = "tiny-sdxl"

_SPECIALS = ["<|startoftext|>", "<|endoftext|>"]


def build_clip_tokenizer(folder: Path, model_max_length: int = 32):
    """A character-level CLIP tokenizer (byte-level alphabet, with and without ``</w>``).

    Real CLIP vocabularies have 49k merges; this one has none, which is enough for tests:
    every caption still tokenises, and ``CLIPTokenizer.from_pretrained`` loads it.
    """
    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab: dict[str, int] = {}
    for token in [*_SPECIALS, *alphabet, *(f"{c}</w>" for c in alphabet)]:
        vocab.setdefault(token, len(vocab))
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=model_max_length)
    tokenizer.save_pretrained(folder)
    return tokenizer


def build_tiny_sd_pipeline(folder: Path, *, seed: int = 0, prediction_type: str = "epsilon") -> Path:
    """Save a tiny random ``StableDiffusionPipeline`` to ``folder`` and return the folder."""
    return build_sd_pipeline(
        folder,
        seed=seed,
        prediction_type=prediction_type,
        resolution=TINY_RESOLUTION,
        unet_channels=(16, 32),
        unet_layers=1,
        attention_heads=4,
        unet_groups=8,
        vae_channels=(8, 16),
        vae_groups=8,
        text_hidden=32,
        text_layers=2,
        text_heads=4,
        max_length=32,
    )


def build_small_sd_pipeline(folder: Path, *, seed: int = 0, prediction_type: str = "epsilon") -> Path:
    """Save a small random ``StableDiffusionPipeline`` (SD 1.x layout, ~10M parameters) to ``folder``.

    For walkthroughs and benchmarks where no real weights can be fetched: 128x128 images, a
    VAE that downsamples 8x like SD's (4 blocks, 32-128 channels), a UNet with
    ``block_out_channels`` (64, 128), two layers per block and cross-attention, a 4-layer CLIP
    text model of hidden size 128 with 77 tokens. Its weights are random: it learns
    noise prediction on the adapter's data but generates nothing recognisable.
    """
    return build_sd_pipeline(
        folder,
        seed=seed,
        prediction_type=prediction_type,
        resolution=SMALL_RESOLUTION,
        unet_channels=(64, 128),
        unet_layers=2,
        attention_heads=8,
        unet_groups=32,
        vae_channels=(32, 64, 128, 128),
        vae_groups=16,
        text_hidden=128,
        text_layers=4,
        text_heads=4,
        max_length=77,
    )


def build_sd_pipeline(
    folder: Path,
    *,
    seed: int,
    prediction_type: str,
    resolution: int,
    unet_channels: tuple[int, ...],
    unet_layers: int,
    attention_heads: int,
    unet_groups: int,
    vae_channels: tuple[int, ...],
    vae_groups: int,
    text_hidden: int,
    text_layers: int,
    text_heads: int,
    max_length: int,
) -> Path:
    """Save a random ``StableDiffusionPipeline`` of the given sizes to ``folder``.

    The UNet's first block has cross-attention and its last none (and the reverse going up),
    as in SD 1.x; the mid block has cross-attention. ``resolution`` is the native image size.
    """
    import torch
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTextModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    unet = _unet(
        resolution,
        vae_channels,
        unet_channels,
        unet_layers,
        attention_heads,
        unet_groups,
        cross_attention_dim=text_hidden,
    )
    vae = _vae(resolution, vae_channels, vae_groups)
    tokenizer = build_clip_tokenizer(folder / "tokenizer", model_max_length=max_length)
    text_encoder = CLIPTextModel(_text_config(tokenizer, text_hidden, text_layers, text_heads))
    pipeline = StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=_ddim(prediction_type),
        safety_checker=None,
        feature_extractor=None,
        image_encoder=None,
        requires_safety_checker=False,
    )
    pipeline.save_pretrained(folder, safe_serialization=True)
    return folder


def build_tiny_sdxl_pipeline(folder: Path, *, seed: int = 0, prediction_type: str = "epsilon") -> Path:
    """Save a tiny random ``StableDiffusionXLPipeline`` to ``folder`` and return the folder.

    Built like diffusers' own SDXL test components: two 2-layer CLIP text encoders of width
    32 (the second a ``CLIPTextModelWithProjection`` projecting to 32), a UNet that
    cross-attends to both (64 wide) and has ``text_time`` added embeddings
    (``projection_class_embeddings_input_dim`` = 6 size numbers x 8 + 32), an Euler
    scheduler with SDXL's settings. Images are 16 px, like :func:`build_tiny_sd_pipeline`'s.
    """
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    text_hidden, projection, time_dim, vae_channels = 32, 32, 8, (8, 16)
    unet = _unet(
        TINY_RESOLUTION,
        vae_channels,
        (16, 32),
        1,
        4,
        8,
        cross_attention_dim=2 * text_hidden,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_dim,
        projection_class_embeddings_input_dim=6 * time_dim + projection,
        use_linear_projection=True,
    )
    vae = _vae(TINY_RESOLUTION, vae_channels, 8)
    tokenizer = build_clip_tokenizer(folder / "tokenizer")
    tokenizer_2 = build_clip_tokenizer(folder / "tokenizer_2")
    text_encoder = CLIPTextModel(_text_config(tokenizer, text_hidden, 2, 4))
    text_encoder_2 = CLIPTextModelWithProjection(
        _text_config(tokenizer_2, text_hidden, 2, 4, projection_dim=projection)
    )
    scheduler = EulerDiscreteScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
        timestep_spacing="leading",
        interpolation_type="linear",
        prediction_type=prediction_type,
    )
    pipeline = StableDiffusionXLPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        scheduler=scheduler,
        add_watermarker=False,
    )
    pipeline.save_pretrained(folder, safe_serialization=True)
    return folder


def _unet(
    resolution: int,
    vae_channels: tuple[int, ...],
    channels: tuple[int, ...],
    layers: int,
    heads: int,
    groups: int,
    **extra: Any,
):
    """A UNet whose first levels cross-attend and whose last does not (the reverse going up)."""
    from diffusers import UNet2DConditionModel

    levels = len(channels)
    return UNet2DConditionModel(
        sample_size=resolution // 2 ** (len(vae_channels) - 1),
        in_channels=4,
        out_channels=4,
        layers_per_block=layers,
        block_out_channels=channels,
        down_block_types=("CrossAttnDownBlock2D",) * (levels - 1) + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (levels - 1),
        attention_head_dim=heads,
        norm_num_groups=groups,
        **extra,
    )


def _vae(resolution: int, channels: tuple[int, ...], groups: int):
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=channels,
        down_block_types=("DownEncoderBlock2D",) * len(channels),
        up_block_types=("UpDecoderBlock2D",) * len(channels),
        norm_num_groups=groups,
        sample_size=resolution,
    )


def _text_config(tokenizer: Any, hidden: int, layers: int, heads: int, **extra: Any):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        max_position_embeddings=tokenizer.model_max_length,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **extra,
    )


def _ddim(prediction_type: str):
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type=prediction_type,
    )


# ---------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------

#: Two visual "brands" the tests adapt to: a colour scheme per caption word.
PALETTES = {
    "solvanta": [(200, 30, 40), (250, 220, 40)],
    "marlowe": [(20, 60, 200), (240, 240, 240)],
}


def brand_image(brand: str, size: int, seed: int):
    """A striped image in ``brand``'s colours (learnable by a tiny model), with a little noise."""
    import random

    from PIL import Image

    rng = random.Random(seed)
    first, second = PALETTES[brand]
    image = Image.new("RGB", (size, size))
    pixels = image.load()
    stripe = max(2, size // 4)
    offset = rng.randrange(stripe)
    for y in range(size):
        for x in range(size):
            base = first if ((x + offset) // stripe) % 2 == 0 else second
            pixels[x, y] = tuple(max(0, min(255, c + rng.randint(-12, 12))) for c in base)
    return image


def exif_with_gps():
    """EXIF with a camera model, a date and a GPS position (Berlin)."""
    from PIL import Image
    from PIL.ExifTags import GPS, IFD, Base

    exif = Image.Exif()
    exif[Base.Model] = "TestCam 3000"
    exif[Base.DateTime] = "2024:05:01 12:00:00"
    gps = exif.get_ifd(IFD.GPSInfo)
    gps[GPS.GPSLatitudeRef] = "N"
    gps[GPS.GPSLatitude] = (52.0, 31.0, 12.0)
    gps[GPS.GPSLongitudeRef] = "E"
    gps[GPS.GPSLongitude] = (13.0, 24.0, 18.0)
    return exif


def make_test_images(
    folder: Path,
    *,
    n: int = 12,
    size: int = 24,
    layout: str = "jsonl",
    bad: bool = True,
    consent: Any = True,
    brand: str = "solvanta",
    seed: int = 0,
) -> dict[str, Any]:
    """Write an image folder with captions and return what was written.

    ``layout`` is ``jsonl`` (``metadata.jsonl``), ``csv`` (``metadata.csv``) or ``txt`` (a
    caption file beside each image). Image 0 is a JPEG with EXIF and GPS. With ``bad``,
    more files must be quarantined: ``corrupt.png`` (random bytes), ``truncated.jpg``
    (half a JPEG), ``tiny.png`` (4x4 pixels), ``notes.png`` (text) and, in the metadata
    layouts, ``readme.txt`` (listed as an image). ``consent`` goes into
    every metadata row (None leaves the column out).
    """
    import csv
    import io
    import random

    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for index in range(n):
        image = brand_image(brand, size, seed * 1000 + index)
        if index == 0:
            name = "photo-000.jpg"
            image.save(folder / name, format="JPEG", quality=95, exif=exif_with_gps())
        else:
            name = f"img-{index:03d}.png"
            image.save(folder / name)
        rows.append({"file_name": name, "text": f"a {brand} style banner, variant {index % 3}"})
    bad_names: list[str] = []
    if bad:
        rng = random.Random(seed)
        (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(rng.randrange(256) for _ in range(300)))
        buffer = io.BytesIO()
        brand_image(brand, size, 99).save(buffer, format="JPEG", quality=95)
        (folder / "truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        Image.new("RGB", (4, 4), (10, 10, 10)).save(folder / "tiny.png")
        (folder / "notes.png").write_text("these are notes, not an image\n")
        bad_names = ["corrupt.png", "truncated.jpg", "tiny.png", "notes.png"]
        if layout != "txt":  # (in the caption-file layout a .txt file is a caption)
            (folder / "readme.txt").write_text("a text file listed as an image\n")
            bad_names.append("readme.txt")
        rows.extend({"file_name": name, "text": f"a {brand} style banner, broken"} for name in bad_names)
    if consent is not None:
        for row in rows:
            row["consent"] = consent
    if layout == "jsonl":
        (folder / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    elif layout == "csv":
        with (folder / "metadata.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    elif layout == "txt":
        for row in rows:
            (folder / row["file_name"]).with_suffix(".txt").write_text(row["text"] + "\n")
    else:
        raise ValueError(f"layout must be jsonl, csv or txt, not {layout!r}")
    return {"folder": folder, "rows": rows, "bad": bad_names, "exif_image": rows[0]["file_name"]}


def build_tiny_clip(folder: Path, *, seed: int = 0) -> Path:
    """A tiny random CLIP model and processor (for ``task_options.clip_model``), saved to ``folder``."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_clip_tokenizer(folder)
    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "max_position_embeddings": tokenizer.model_max_length,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={
            "image_size": TINY_RESOLUTION,
            "patch_size": 8,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
        },
        projection_dim=16,
    )
    CLIPModel(config).save_pretrained(folder, safe_serialization=True)
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": TINY_RESOLUTION}, crop_size={"height": TINY_RESOLUTION, "width": TINY_RESOLUTION}
    )
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder
