#!/usr/bin/env bash
# Set up .venv with polyadapt, the first-party plugins and the test tools. Idempotent.
# torch comes first and pinned: torchaudio (speech plugin) pins the torch version.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt)
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  echo "installing torch (a few minutes the first time)..."
  "${PIP[@]}" torch==2.9.1
fi
"${PIP[@]}" -e ".[test]" -e plugins/text -e plugins/code -e plugins/image -e plugins/speech
echo "polyadapt is set up in .venv ($(.venv/bin/polyadapt --version))"
