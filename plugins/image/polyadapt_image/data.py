"""How a run's images become training examples.

The images themselves are read by the task (:meth:`polyadapt_image.task.TextToImageTask.load_dataset`,
:func:`polyadapt.modalities.image.load_image_folder`) and governed by the core before any
pixel is used. The metadata-free copies live in ``<run>/images/`` (named by the hash of
their pixels' file); the originals are never read again after cleaning.

An example is a dict for one image: its training ``size`` (width, height), its pixels
(``[-1, 1]``, channels first) or, when latents are cached, the mean and standard deviation
of its VAE latent distribution (a fresh latent is sampled from them each step, as encoding
every step would), and its *conditioning fields* (:func:`condition_of`): the caption's
token ids for each text encoder (``input_ids``, SDXL's ``input_ids_2``) and the crop
geometry SDXL's micro-conditioning takes, each (height, width) or (top, left):
``original_size`` (the image before resizing), ``crop_top_left`` (where the cut starts in
the resized image) and ``target_size``. Stable Diffusion 1.x/2.x ignores the geometry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from polyadapt.modalities.image import center_crop, make_buckets, nearest_bucket, open_rgb, resize_to_cover
from polyadapt.modalities.records import Dataset
from polyadapt_image.conditioning import TextConditioning
from polyadapt_image.options import ImageOptions

#: The run sub-folder of the metadata-free image copies.
CLEAN_DIR = "images"
#: Example fields that are the image itself; every other field conditions the UNet.
IMAGE_FIELDS = ("size", "pixels", "latent_mean", "latent_std")


def metadata_stripped(sources: list[Dataset]) -> dict[str, int]:
    """How many kept images of ``sources`` had each kind of metadata removed (``exif``, ``gps``...)."""
    stripped: dict[str, int] = {}
    for source in sources:
        for record in source.records:
            for item in record.get("stripped", []):
                stripped[item] = stripped.get(item, 0) + 1
    return dict(sorted(stripped.items()))


# ---------------------------------------------------------------------------------------
# Examples
# ---------------------------------------------------------------------------------------


def size_multiple(pipeline: Any) -> int:
    """Image sides must be multiples of this: the VAE's scale times the UNet's downsampling."""
    vae_scale = 2 ** (len(pipeline.vae.config.block_out_channels) - 1)
    unet_scale = 2 ** (len(pipeline.unet.config.block_out_channels) - 1)
    return vae_scale * unet_scale


def target_size(record: dict[str, Any], options: ImageOptions, multiple: int) -> tuple[int, int]:
    """(width, height) an image trains at: the square resolution, or its aspect bucket."""
    if not options.buckets:
        return options.resolution, options.resolution
    return nearest_bucket(record["width"], record["height"], make_buckets(options.resolution, multiple))


def to_tensor(image) -> torch.Tensor:
    """An RGB PIL image as a float tensor in [-1, 1], channels first."""
    import numpy as np

    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def _pair(first: int, second: int) -> torch.Tensor:
    return torch.tensor([first, second], dtype=torch.long)


def build_examples(
    clean_dir: Path,
    records: list[dict[str, Any]],
    conditioning: TextConditioning,
    options: ImageOptions,
    multiple: int,
    *,
    fixed_crop: bool = False,
) -> list[dict[str, Any]]:
    """One example per record (its image read from ``clean_dir``): ``size``, ``pixels`` and
    the conditioning fields.

    With a random crop (and not ``fixed_crop``) the pixels are only resized to cover the
    target size; :class:`Collator` cuts them each step (and sets ``crop_top_left``).
    """
    examples = []
    ids = conditioning.tokenize([r["text"] for r in records]) if records else {}
    for index, record in enumerate(records):
        width, height = size = target_size(record, options, multiple)
        original = open_rgb(Path(clean_dir) / record["image"])
        image = resize_to_cover(original, size)
        top = left = 0
        if options.crop != "random" or fixed_crop:
            top, left = (image.height - height) // 2, (image.width - width) // 2
            image = center_crop(image, size)
        examples.append(
            {
                "size": size,
                "pixels": to_tensor(image),
                **{key: value[index] for key, value in ids.items()},
                "original_size": _pair(original.height, original.width),
                "crop_top_left": _pair(top, left),
                "target_size": _pair(height, width),
            }
        )
    return examples


def condition_of(example: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The fields of ``example`` that condition the UNet (token ids, crop geometry)."""
    return {key: value for key, value in example.items() if key not in IMAGE_FIELDS}


@torch.no_grad()
def cache_latents(examples: list[dict[str, Any]], vae: Any, *, batch_size: int = 8) -> list[dict[str, Any]]:
    """Replace each example's pixels by the mean and std of its VAE latent distribution."""
    dev = next(vae.parameters()).device
    cached = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        by_size: dict[tuple, list[int]] = {}
        for i, example in enumerate(chunk):
            by_size.setdefault(tuple(example["pixels"].shape), []).append(i)
        results: dict[int, dict[str, Any]] = {}
        for indices in by_size.values():
            pixels = torch.stack([chunk[i]["pixels"] for i in indices]).to(dev, vae.dtype)
            dist = vae.encode(pixels).latent_dist
            for j, i in enumerate(indices):
                kept = {key: value for key, value in chunk[i].items() if key != "pixels"}
                results[i] = {
                    **kept,
                    "latent_mean": dist.mean[j].float().cpu(),
                    "latent_std": dist.std[j].float().cpu(),
                }
        cached.extend(results[i] for i in range(len(chunk)))
    return cached


class Collator:
    """Batches of examples grouped by size (buckets): ``{"groups": [...], "num_items": n}``.

    Each group holds the stacked conditioning fields and ``pixels`` (or
    ``latent_mean``/``latent_std``). With a random crop or flip the cut and the mirror are
    drawn here from torch's RNG, which the trainer seeds and checkpoints, so ``--resume``
    repeats them exactly.
    """

    def __init__(self, crop: str = "center", random_flip: bool = False):
        self.crop, self.random_flip = crop, random_flip

    def _cut(self, example: dict[str, Any]) -> dict[str, Any]:
        """``example`` with its pixels cut (if still whole) and maybe mirrored, and the crop it got."""
        pixels, crop_top_left = example["pixels"], example["crop_top_left"]
        width, height = example["size"]
        if pixels.shape[1:] != (height, width):  # resized to cover: cut at random
            top = int(torch.randint(0, pixels.shape[1] - height + 1, ()))
            left = int(torch.randint(0, pixels.shape[2] - width + 1, ()))
            if self.random_flip and bool(torch.rand(()) < 0.5):
                # the cut's left edge as seen in the mirrored image, as SDXL's training script records it
                crop_top_left = _pair(top, pixels.shape[2] - width - left)
                pixels = pixels[:, top : top + height, left : left + width].flip(-1)
            else:
                crop_top_left = _pair(top, left)
                pixels = pixels[:, top : top + height, left : left + width]
        elif self.random_flip and bool(torch.rand(()) < 0.5):
            pixels = pixels.flip(-1)
        return {**example, "pixels": pixels, "crop_top_left": crop_top_left}

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        groups: dict[tuple, list[dict[str, Any]]] = {}
        for example in examples:
            groups.setdefault(tuple(example["size"]), []).append(example)
        batch_groups = []
        for members in groups.values():
            if "pixels" in members[0]:
                members = [self._cut(m) for m in members]
            keys = [key for key in members[0] if key != "size"]
            batch_groups.append({key: torch.stack([m[key] for m in members]) for key in keys})
        return {"groups": batch_groups, "num_items": len(examples)}
