#!/usr/bin/env python3
"""Build (once) the walkthrough's small random Stable-Diffusion pipeline and print its folder.

    python examples/image/make_pipeline.py      # prints e.g. ~/.cache/polyadapt/models/small-sd-random

No real Stable Diffusion weights can be fetched offline (they live on the Hugging Face hub,
several GB), so the walkthrough uses a pipeline with SD 1.x's layout and *random* weights
(``polyadapt_image.testing.build_small_sd_pipeline``: 128x128 images, VAE downsampling 8x,
UNet block_out_channels (64, 128) with cross-attention, a 4-layer CLIP text model, ~10M
parameters, 36 MB). It goes through exactly the code a real pipeline goes through; what it
cannot do is draw anything recognisable, before or after adaptation. The folder goes under
``$POLYADAPT_CACHE`` (default ``~/.cache/polyadapt``)/models and is built again only when
missing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

NAME = "small-sd-random"


def main() -> Path:
    cache = Path(os.environ.get("POLYADAPT_CACHE", "~/.cache/polyadapt")).expanduser()
    folder = cache / "models" / NAME
    if not (folder / "model_index.json").is_file():
        from polyadapt_image.testing import build_small_sd_pipeline

        print(f"building a small random SD pipeline in {folder}", file=sys.stderr)
        build_small_sd_pipeline(folder, seed=0)
    return folder


if __name__ == "__main__":
    print(main())
