#!/usr/bin/env bash
# Adapt a small Stable-Diffusion-style pipeline to an invented brand's flat logos, offline:
#
#   bash examples/image/adapt_brand.sh [--set training.max_steps=40 ...]
#
# 1. draws the brand data once (examples/image/make_data.py: 96 + 24 logos, CC0, Pillow);
# 2. builds once a small pipeline with SD 1.x's layout and RANDOM weights
#    (examples/image/make_pipeline.py): no real Stable Diffusion weights are reachable
#    offline, so the images it generates are noise, before and after; the held-out
#    denoising loss is the figure to look at;
# 3. runs `polyadapt adapt configs/image-tiny-brand.yaml` on it.
#
# Needs the set-up of scripts/setup.sh (the image plugin installed). For a real SD 1.5
# folder see plugins/image/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
if [ ! -f examples/image/brand/train/metadata.jsonl ] || [ ! -f examples/image/brand/eval/metadata.jsonl ]; then
  $PY examples/image/make_data.py
fi
PIPELINE=$($PY examples/image/make_pipeline.py)
NAME="image-kelvarra-$(date +%Y%m%d-%H%M%S)"
.venv/bin/polyadapt adapt configs/image-tiny-brand.yaml \
  --set base_model.id="$PIPELINE" --set output.name="$NAME" "$@"
echo
echo "base vs adapted:             runs/$NAME/metrics.json"
echo "what was skipped and why:   runs/$NAME/quarantine.jsonl"
echo "grid (base | adapted):      runs/$NAME/samples/grid.png"
echo "serve it:  .venv/bin/polyadapt serve runs/$NAME"
echo "then:"
echo "  curl -s localhost:8000/v1/images/generations -H 'content-type: application/json' -d '{\"model\": \"small-sd-random:kelvarra\", \"prompt\": \"a kelvarra logo, flat style: a teal ring\", \"size\": \"128x128\", \"response_format\": \"b64_json\", \"seed\": 0}'"
