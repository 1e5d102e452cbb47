#!/usr/bin/env python3
"""Synthesise the speech walkthrough's audio with espeak-ng: an invented insurer's jargon.

    python examples/speech/make_data.py [OUT]      # default: examples/speech/data

Writes four audio folders (16 kHz WAV + metadata.csv, the audiofolder layout polyadapt reads):

  train/    sentences full of invented insurance terms ("Solvanta rider", "Marlowe
            deductible"...), each in two or three espeak-ng voices and speeds;
  eval/     held-out jargon: the same terms in sentence frames training never saw, in a
            voice training never used for that sentence;
  general/  plain English sentences (no jargon): the forgetting check;
  replay/   other plain sentences, mixed into training (``data.replay``) so plain speech
            does not get worse.

Every sentence is fixed here and the voices are chosen with a fixed seed, so two runs write
the same transcripts (espeak-ng's audio is deterministic for one version of it). Every
record says ``consent: yes`` (synthetic speech: no speaker to ask) and names its voice as
``speaker_id``. Needs the ``espeak-ng`` program (Debian: ``apt-get install espeak-ng``).
"""

from __future__ import annotations

import csv
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

#: The glossary (also in configs/speech-whisper-tiny-insurance.yaml, task_options.glossary).
TERMS = [
    "Solvanta rider",
    "Marlowe deductible",
    "Quintrel premium",
    "Brackenfield endorsement",
    "Tessary waiver",
    "Orlovan excess",
    "Castellan clause",
    "Vireo schedule",
]
#: Frames for training; {a} and {b} are two different terms.
TRAIN_FRAMES = [
    "The {a} covers the {b}.",
    "Ask your agent about the {a} and the {b}.",
    "Every policy with a {a} also needs a {b}.",
    "Your {a} was renewed, but the {b} was not.",
    "We added a {a} to the claim after the {b} was paid.",
    "Please confirm the {a} before you change the {b}.",
    "The {a} is cheaper than the {b} this year.",
    "A {b} never replaces the {a}.",
    "She asked whether the {a} applies to the {b}.",
    "Without the {a}, the {b} doubles.",
]
#: Held-out frames: wording training never saw.
EVAL_FRAMES = [
    "My neighbour says the {a} saved him when the {b} ran out.",
    "Could you explain how the {a} works with a {b}?",
    "The letter mentions a {a} and a new {b}.",
    "I think the {b} is higher because of the {a}.",
]
#: Plain English, no jargon: the first 24 are the general (evaluation) set, the rest replay.
PLAIN = [
    "Water boils at one hundred degrees at sea level.",
    "The train to the city leaves every twenty minutes.",
    "She planted tomatoes and beans in the garden this spring.",
    "Please close the window before you leave the house.",
    "The museum is open from nine in the morning until five.",
    "He reads the newspaper with his coffee every day.",
    "Our team won the match by two goals.",
    "The children walked to school in the rain.",
    "Turn left at the bakery and the library is on your right.",
    "The weather will be cold and windy tomorrow.",
    "I forgot my umbrella on the bus this morning.",
    "The doctor said I should drink more water.",
    "They painted the kitchen a bright shade of yellow.",
    "The river flows through the middle of the town.",
    "We need milk, bread and eggs from the shop.",
    "My brother is learning to play the piano.",
    "The meeting has been moved to Thursday afternoon.",
    "A small dog was sleeping under the table.",
    "The mountains were covered in snow last winter.",
    "Can you send me the report by Friday?",
    "The restaurant on the corner serves good soup.",
    "Please speak slowly so everyone can follow.",
    "The light in the hallway needs a new bulb.",
    "Birds fly south when the days get shorter.",
    "The car would not start on a cold morning.",
    "We watched a film about the history of the sea.",
    "The price of apples went up this week.",
    "Her phone rang twice during the lecture.",
    "The bridge was closed for repairs all summer.",
    "He carried the heavy boxes up the stairs.",
    "The shop closes early on public holidays.",
    "A warm cup of tea helps on a rainy day.",
    "The teacher wrote the answer on the board.",
    "We cleaned the house before our guests arrived.",
    "The bus was late because of the traffic.",
    "They built a new school near the park.",
    "I like to walk by the lake in the evening.",
    "The printer on the second floor is out of paper.",
    "Fresh bread smells wonderful in the morning.",
    "The concert starts at eight o'clock tonight.",
]
GENERAL_COUNT = 24
#: espeak-ng voices ("accents") and speeds (words per minute).
VOICES = ["en-us", "en", "en-us+m3", "en+f2", "en-gb-scotland", "en-us+f3"]
SPEEDS = [140, 160, 175]
SAMPLE_RATE = 16_000


def jargon_sentences(frames: list[str], per_frame: int, seed: int) -> list[str]:
    """``per_frame`` sentences per frame, each with two different terms; every term used."""
    rng = random.Random(seed)
    out = []
    for frame in frames:
        for _ in range(per_frame):
            a, b = rng.sample(TERMS, 2)
            out.append(frame.format(a=a, b=b))
    return out


def speak(text: str, voice: str, speed: int, target: Path) -> None:
    """espeak-ng ``text`` to a 16 kHz mono WAV at ``target`` (espeak writes 22.05 kHz)."""
    import numpy as np
    import soundfile
    import torch
    import torchaudio.functional as AF

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        samples, rate = soundfile.read(str(raw), dtype="float32", always_2d=True)
    audio = torch.from_numpy(samples.mean(axis=1))
    if rate != SAMPLE_RATE:
        audio = AF.resample(audio, rate, SAMPLE_RATE)
    target.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(target), np.asarray(audio, dtype=np.float32), SAMPLE_RATE, subtype="PCM_16")


def write_folder(folder: Path, items: list[tuple[str, str, int]]) -> int:
    """Speak every (text, voice, speed) into ``folder`` with a metadata.csv; the clip count."""
    if folder.exists():
        shutil.rmtree(folder)
    rows = []
    for i, (text, voice, speed) in enumerate(items):
        name = f"clip{i:03d}.wav"
        speak(text, voice, speed, folder / name)
        rows.append(
            {
                "file_name": name,
                "transcription": text,
                "speaker_id": f"espeak-{voice}-{speed}",
                "consent": "yes",
                "language": "en",
            }
        )
    with (folder / "metadata.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def build(out: Path) -> dict[str, int]:
    """Write train/, eval/, general/ and replay/ under ``out``; the clip count of each."""
    rng = random.Random(7)
    train = []
    for text in jargon_sentences(TRAIN_FRAMES, 3, seed=1):
        for voice in rng.sample(VOICES[:4], 2):  # two of the four training voices per sentence
            train.append((text, voice, rng.choice(SPEEDS)))
    heldout = [(text, rng.choice(VOICES), rng.choice(SPEEDS)) for text in jargon_sentences(EVAL_FRAMES, 4, seed=2)]
    general = [(text, rng.choice(VOICES), rng.choice(SPEEDS)) for text in PLAIN[:GENERAL_COUNT]]
    replay = [(text, rng.choice(VOICES[:4]), rng.choice(SPEEDS)) for text in PLAIN[GENERAL_COUNT:]]
    counts = {}
    for name, items in (("train", train), ("eval", heldout), ("general", general), ("replay", replay)):
        counts[name] = write_folder(out / name, items)
    return counts


def main(argv: list[str]) -> int:
    if shutil.which("espeak-ng") is None:
        print("error: espeak-ng is not installed (Debian/Ubuntu: apt-get install espeak-ng)", file=sys.stderr)
        return 1
    out = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent / "data"
    counts = build(out)
    print(f"wrote {', '.join(f'{n} {k}' for k, n in counts.items())} clips under {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
