#!/usr/bin/env bash
# Adapt SmolLM2-135M-Instruct to the source of toolz 1.0.0 (a small pure-Python package,
# BSD-3-Clause), downloaded once as its source distribution with `pip download --no-deps`
# (never installed), then served with fill-in-the-middle:
#
#   bash examples/code/adapt_toolz.sh [--set training.max_steps=20 ...]
#
# Needs the set-up of scripts/setup.sh; the model comes from examples/fetch_smollm2.py.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
CACHE=${POLYADAPT_CACHE:-$HOME/.cache/polyadapt}
GGUF=$($PY examples/fetch_smollm2.py)
SRC="$CACHE/code/toolz-1.0.0"
if [ ! -f "$SRC/LICENSE.txt" ]; then
  mkdir -p "$CACHE/downloads" "$CACHE/code"
  $PY -m pip download --no-deps --no-binary :all: --disable-pip-version-check \
      toolz==1.0.0 -d "$CACHE/downloads"
  tar -xzf "$CACHE/downloads/toolz-1.0.0.tar.gz" -C "$CACHE/code"
fi
NAME="code-toolz-$(date +%Y%m%d-%H%M%S)"
.venv/bin/polyadapt adapt configs/code-smollm2-toolz.yaml \
  --set base_model.id="$GGUF" --set data.train="$SRC" --set output.name="$NAME" "$@"
echo
echo "what was skipped and why:   runs/$NAME/quarantine.jsonl"
echo "base vs adapted:             runs/$NAME/metrics.json"
echo "serve it:  .venv/bin/polyadapt serve runs/$NAME"
echo "then (fill-in-the-middle):"
echo "  curl -s localhost:8000/v1/completions -H 'content-type: application/json' -d '{\"model\": \"SmolLM2-135M-Instruct.Q4_1:toolz\", \"prompt\": \"def first(seq):\\n    \", \"suffix\": \"\\n\\ndef second(seq):\\n\", \"max_tokens\": 24, \"temperature\": 0}'"
