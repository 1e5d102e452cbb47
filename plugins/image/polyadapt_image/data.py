"""Which images a run trains and evaluates on, and how they become training examples.

The same function loads the data in ``adapt`` and ``evaluate``: every set passes
``run.admit`` (licence, consent, caption scanning, blocked terms) before any pixel is
read. The metadata-free copies live in ``<run>/images/`` (named by the hash of their
pixels' file); the originals are never read again after cleaning.

An example is a dict of tensors for one image: its caption's ``input_ids`` and either
its pixels (``[-1, 1]``, channels first) or, when latents are cached, the mean and standard
deviation of its VAE latent distribution (a fresh latent is sampled from them each step,
as encoding every step would).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from polyadapt.modalities.image import (
    load_image_folder, make_buckets, nearest_bucket, open_rgb, resize_and_crop, resize_to_cover,
)
from polyadapt.modalities.records import Dataset, quarantine_rows, split_holdout
from polyadapt.types import Run
from polyadapt_image.options import ImageOptions

CLEAN_DIR = "images"


@dataclass
class RunData:
    """Training and held-out records of one run, and the datasets they came from."""

    train: list[dict[str, Any]]
    heldout: list[dict[str, Any]]
    sources: list[Dataset]
    clean_dir: Path

    def summary(self) -> dict[str, Any]:
        stripped: dict[str, int] = {}
        for source in self.sources:
            for record in source.records:
                for item in record.get("stripped", []):
                    stripped[item] = stripped.get(item, 0) + 1
        return {
            "train_records": len(self.train),
            "heldout_records": len(self.heldout),
            "metadata_stripped": dict(sorted(stripped.items())),
            "datasets": [source.summary() for source in self.sources],
        }

    def quarantine_rows(self) -> list[dict[str, Any]]:
        return quarantine_rows(self.sources)

    def path(self, record: dict[str, Any]) -> Path:
        """The clean copy of ``record``'s image."""
        return self.clean_dir / record["image"]


def load_run_data(run: Run, options: ImageOptions) -> RunData:
    """Load, govern and split the run's images as its config says."""
    config, data = run.config, run.config.data
    clean_dir = run.dir / CLEAN_DIR

    def governed(path: Path, role: str) -> Dataset:
        loaded = load_image_folder(path, clean_dir=clean_dir, min_size=options.min_size(),
                                   caption_field=options.caption_field)
        return run.admit(loaded, role=role)

    train_set = governed(data.train, "train")
    sources = [train_set]
    if data.eval is not None:
        eval_set = governed(data.eval, "eval")
        sources.append(eval_set)
        train, heldout = train_set.records, eval_set.records
    else:
        train, heldout = split_holdout(train_set.records, data.eval_fraction, config.training.seed)
    if config.evaluation.max_examples:
        heldout = heldout[: config.evaluation.max_examples]
    return RunData(train=train, heldout=heldout, sources=sources, clean_dir=clean_dir)


def write_data_files(run: Run, run_data: RunData) -> dict[str, Any]:
    """``data_summary.json`` and ``quarantine.jsonl`` in the run folder; returns the summary."""
    summary = run_data.summary()
    run.write_json("data_summary.json", summary)
    run.write_text("quarantine.jsonl", "".join(json.dumps(q) + "\n" for q in run_data.quarantine_rows()))
    return summary


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


def tokenize(tokenizer: Any, captions: list[str]) -> torch.Tensor:
    """Caption token ids padded to the tokenizer's length (77 for CLIP), as the pipeline does."""
    return tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length,
                     truncation=True, return_tensors="pt").input_ids


def build_examples(run_data: RunData, records: list[dict[str, Any]], tokenizer: Any, options: ImageOptions,
                   multiple: int, *, fixed_crop: bool = False) -> list[dict[str, Any]]:
    """One example per record: ``input_ids``, ``size`` and ``pixels``.

    With a random crop (and not ``fixed_crop``) the pixels are only resized to cover the
    target size; :class:`Collator` cuts them each step.
    """
    examples = []
    ids = tokenize(tokenizer, [r["text"] for r in records]) if records else None
    for index, record in enumerate(records):
        size = target_size(record, options, multiple)
        image = open_rgb(run_data.path(record))
        random_crop = options.crop == "random" and not fixed_crop
        image = resize_to_cover(image, size) if random_crop else resize_and_crop(image, size, "center")
        examples.append({"input_ids": ids[index], "size": size, "pixels": to_tensor(image)})
    return examples


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
                results[i] = {"input_ids": chunk[i]["input_ids"], "size": chunk[i]["size"],
                              "latent_mean": dist.mean[j].float().cpu(), "latent_std": dist.std[j].float().cpu()}
        cached.extend(results[i] for i in range(len(chunk)))
    return cached


class Collator:
    """Batches of examples grouped by size (buckets): ``{"groups": [...], "num_items": n}``.

    Each group holds stacked ``input_ids`` and ``pixels`` (or ``latent_mean``/``latent_std``).
    With a random crop or flip the cut and the mirror are drawn here from torch's RNG, which
    the trainer seeds and checkpoints, so ``--resume`` repeats them exactly.
    """

    def __init__(self, crop: str = "center", random_flip: bool = False):
        self.crop, self.random_flip = crop, random_flip

    def _pixels(self, example: dict[str, Any]) -> torch.Tensor:
        pixels = example["pixels"]
        width, height = example["size"]
        if pixels.shape[1:] != (height, width):  # resized to cover: cut at random
            top = int(torch.randint(0, pixels.shape[1] - height + 1, ()))
            left = int(torch.randint(0, pixels.shape[2] - width + 1, ()))
            pixels = pixels[:, top : top + height, left : left + width]
        if self.random_flip and bool(torch.rand(()) < 0.5):
            pixels = pixels.flip(-1)
        return pixels

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        groups: dict[tuple, list[dict[str, Any]]] = {}
        for example in examples:
            groups.setdefault(tuple(example["size"]), []).append(example)
        batch_groups = []
        for members in groups.values():
            group = {"input_ids": torch.stack([m["input_ids"] for m in members])}
            if "latent_mean" in members[0]:
                group["latent_mean"] = torch.stack([m["latent_mean"] for m in members])
                group["latent_std"] = torch.stack([m["latent_std"] for m in members])
            else:
                group["pixels"] = torch.stack([self._pixels(m) for m in members])
            batch_groups.append(group)
        return {"groups": batch_groups, "num_items": len(examples)}
