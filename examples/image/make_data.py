#!/usr/bin/env python3
"""Generate the image walkthrough's brand data: flat geometric logos of an invented brand (CC0-1.0).

    python examples/image/make_data.py            # (re)writes examples/image/brand/{train,eval}

*Kelvarra* (invented) has a strict visual language, which is what an adapter should learn:

- a warm sand background, no gradients, no texture;
- one to three flat shapes (circle, ring, square, diamond, triangle, bar) in the brand's
  three ink colours: teal, coral and navy, never two touching shapes of one colour;
- a navy base rule across the bottom, a little above the edge (the brand mark);
- shapes on a loose grid, left / centre / right.

Each image has a caption that says what is drawn ("a kelvarra logo, flat style: a coral
circle left, a teal triangle right"), in ``metadata.jsonl`` with ``consent: true`` (the
images show no people; the field records that the rights are cleared, as the strict policy
asks of every image record). Images are drawn at 4x and downsampled, so edges are smooth;
a quarter of them are not square (the loader crops them). Deterministic: the same files
every time. Pillow only.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "brand"
SEED = 20250301
N_TRAIN = 96
N_EVAL = 24

BRAND = "kelvarra"
BACKGROUND = (244, 226, 193)  # sand
INKS = {"teal": (15, 94, 110), "coral": (238, 108, 77), "navy": (22, 38, 64)}
SHAPES = ["circle", "ring", "square", "diamond", "triangle", "bar"]
SLOTS = {1: ["centre"], 2: ["left", "right"], 3: ["left", "centre", "right"]}


def _draw_shape(draw, shape: str, box: tuple[float, float, float, float], colour, background) -> None:
    left, top, right, bottom = box
    cx, cy, w = (left + right) / 2, (top + bottom) / 2, right - left
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "ring":
        draw.ellipse(box, fill=colour)
        inset = w * 0.22
        draw.ellipse((left + inset, top + inset, right - inset, bottom - inset), fill=background)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    elif shape == "diamond":
        draw.polygon([(cx, top), (right, cy), (cx, bottom), (left, cy)], fill=colour)
    elif shape == "triangle":
        draw.polygon([(cx, top), (right, bottom), (left, bottom)], fill=colour)
    elif shape == "bar":
        draw.rectangle((left, cy - w * 0.18, right, cy + w * 0.18), fill=colour)
    else:
        raise ValueError(shape)


def brand_logo(rng: random.Random, size: tuple[int, int] = (256, 256)):
    """One logo and its caption."""
    from PIL import Image, ImageDraw

    scale = 4
    width, height = size[0] * scale, size[1] * scale
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    count = rng.choice([1, 2, 2, 3])
    slots = SLOTS[count]
    colours: list[str] = []
    for _ in slots:  # neighbours never share a colour
        colours.append(rng.choice([c for c in INKS if not colours or c != colours[-1]]))
    shapes = [rng.choice(SHAPES) for _ in slots]
    side = min(width / (count + 0.6), height * 0.55) * rng.uniform(0.8, 1.0)
    centre_y = height * rng.uniform(0.40, 0.48)
    parts = []
    for index, (slot, shape, colour) in enumerate(zip(slots, shapes, colours, strict=True)):
        centre_x = width * (index + 1) / (count + 1)
        box = (centre_x - side / 2, centre_y - side / 2, centre_x + side / 2, centre_y + side / 2)
        _draw_shape(draw, shape, box, INKS[colour], BACKGROUND)
        parts.append(f"a {colour} {shape}" + ("" if count == 1 else f" {slot}"))
    rule_top = height * 0.86
    draw.rectangle((width * 0.08, rule_top, width * 0.92, rule_top + height * 0.035), fill=INKS["navy"])
    image = image.resize(size, Image.LANCZOS)
    caption = f"a {BRAND} logo, flat style: " + ", ".join(parts)
    return image, caption


def write_split(folder: Path, count: int, seed: int) -> list[dict]:
    """``count`` logos and their ``metadata.jsonl`` in ``folder`` (old files removed)."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        size = (256, 256) if index % 4 else rng.choice([(288, 256), (256, 288)])
        image, caption = brand_logo(rng, size)
        name = f"logo-{index:03d}.png"
        image.save(folder / name, format="PNG", optimize=True)
        rows.append({"file_name": name, "text": caption, "consent": True})
    (folder / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return rows


def main(out: Path = OUT) -> None:
    train = write_split(out / "train", N_TRAIN, SEED)
    held_out = write_split(out / "eval", N_EVAL, SEED + 1)
    print(f"{len(train)} training and {len(held_out)} held-out logos in {out}")


if __name__ == "__main__":
    main()
