"""Speech records: an audio folder with a metadata file (the Hugging Face audiofolder layout).

A dataset is a folder holding audio files and ``metadata.csv`` or ``metadata.jsonl`` (or
that metadata file itself). Each metadata row names its audio file (``file_name``; also
``file``, ``audio`` or ``path``) relative to the metadata file, its transcript
(``transcription``; also ``text``, ``transcript`` or ``sentence``) and optionally
``speaker_id``, ``consent`` and ``language``::

    clips/metadata.csv
        file_name,transcription,speaker_id,consent
        a.wav,The Solvanta rider covers the Marlowe deductible.,spk1,yes

Every file is decoded once while loading (soundfile: WAV, FLAC, OGG/Vorbis/Opus, MP3; FFmpeg
for anything else when it is installed), downmixed to mono, resampled to 16 kHz and
checked: a missing, empty, truncated, corrupt, silent or too-long file, a file that is not
audio (text renamed ``.wav``), or a blank transcript, is quarantined with its reason and
the file's name, and the run goes on. The length is read from the file's header first, so
an hours-long file is refused without being decoded. A name must stay inside the folder
(no absolute path, no ``..``; a symbolic link leading outside is refused unless
``follow_external_symlinks``) and name a regular file (a FIFO would block the load), see
:mod:`polyadapt.modalities.datafolder`.

A normalised record holds no samples, only what governance and lineage need (it is hashed
and stored as JSON)::

    {"audio": "/abs/path/a.wav", "audio_sha256": "...", "duration_s": 3.2,
     "text": "The Solvanta rider ...", "speaker_id": "spk1", "consent": "yes", "language": "en"}

The transcript is in ``text`` (a scanned field: PII in transcripts is found and redacted
like any text), consent in ``consent`` for the policy's per-record consent rule. Models get
the samples with :func:`load_waveform`, which checks the file is still the one admitted.

This module imports numpy and soundfile inside its functions, torch (torchaudio) only to
resample: importing it is free.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polyadapt.errors import DataError
from polyadapt.modalities.datafolder import FOLLOW_EXTERNAL_SYMLINKS, FileProblem, locate, open_regular
from polyadapt.modalities.records import Dataset, Origins
from polyadapt.modalities.tabular import ParseFailure, read_records

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import numpy.typing as npt

#: Whisper's sample rate; every waveform is resampled to it.
SAMPLE_RATE = 16_000
#: Whisper's window: longer clips would be cut, so they are quarantined instead.
MAX_DURATION_S = 30.0
#: The longest audio :func:`decode_audio` decodes for any caller (serving included), in
#: seconds: 30 minutes is 115 MB of 16 kHz samples, and about 1 GB while a 48 kHz stereo
#: original is decoded. Longer files are refused from their header before decoding.
#: A 25 MB upload of low-bitrate Opus holds hours. Meant to become a speech task option
#: (``task_options.max_audio_seconds``, read at serving).
MAX_DECODE_S = 1800.0
#: The header's length may be an estimate (MP3): only a header this much over a limit
#: refuses a clip before decoding; the decoded length is checked exactly afterwards.
HEADER_SLACK_S = 1.0
#: A clip whose RMS level is below this (dB relative to full scale) counts as silent.
SILENCE_DBFS = -60.0
#: The metadata file names looked for in a folder, in order.
METADATA_FILES = ("metadata.jsonl", "metadata.csv", "metadata.json")
FILE_FIELDS = ("file_name", "file", "audio", "path")
TRANSCRIPT_FIELDS = ("transcription", "text", "transcript", "sentence")
OPTIONAL_FIELDS = ("speaker_id", "consent", "language")
#: The fields governance scans in a normalised record: the transcript.
SCANNED_FIELDS = ("text",)


class AudioError(Exception):
    """A clip that cannot be used; ``str(error)`` is the quarantine reason."""


def find_metadata(path: Path) -> Path:
    """The metadata file of ``path``: itself when a file, else the folder's metadata file."""
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        for name in METADATA_FILES:
            if (path / name).is_file():
                return path / name
        raise DataError(
            f"{path}: an audio folder needs a metadata file ({', '.join(METADATA_FILES)}) with "
            f"columns file_name and transcription (see polyadapt.modalities.audio)"
        )
    raise DataError(f"{path}: no such audio folder or metadata file")


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes; :class:`FileProblem` unless it is a regular file."""
    digest = hashlib.sha256()
    with open_regular(path) as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _ffmpeg_decode(source: Path | bytes, sample_rate: int, max_duration_s: float, failed: tuple[str, str]) -> Any:
    """Mono float32 samples at ``sample_rate`` through the ffmpeg command, or AudioError.

    ``failed`` is (reason key, what soundfile said) for the error; ffmpeg stops a little
    after ``max_duration_s`` so an endless stream cannot fill the memory.
    """
    key, detail = failed
    import numpy as np

    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise AudioError(
            f"{key}soundfile cannot decode it ({detail}), and ffmpeg is not installed to try other decoders"
        )
    command = [
        ffmpeg,
        "-nostdin",
        "-threads",
        "0",
        "-i",
        "pipe:0" if isinstance(source, bytes) else str(source),
        "-t",
        f"{max_duration_s + HEADER_SLACK_S:g}",
        "-f",
        "s16le",
        "-ac",
        "1",
        "-acodec",
        "pcm_s16le",
        "-ar",
        str(sample_rate),
        "-",
    ]
    try:
        out = subprocess.run(
            command, input=source if isinstance(source, bytes) else None, capture_output=True, check=True, timeout=120
        ).stdout
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        failure = f"{detail}; ffmpeg: {type(exc).__name__}"
        raise AudioError(f"{key}neither soundfile nor ffmpeg can decode it ({failure})") from None
    return np.frombuffer(out, np.int16).astype(np.float32) / 32768.0


def _looks_like_text(head: bytes) -> bool:
    """Whether a file's first bytes are text (a transcript or a list saved as ``.wav``)."""
    if not head or b"\0" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3  # a character cut at the end of the sample
    return True


def truncated_wav(head: bytes, size: int) -> str | None:
    """Why a WAV file of ``size`` bytes starting with ``head`` is truncated, or None.

    libsndfile reads a truncated WAV without a word (the samples that are there), so the
    ``data`` chunk's announced length is compared with the bytes that follow it. A length of
    0 or 0xFFFFFFFF means "unknown" (a streamed recording) and is not a truncation.
    """
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    offset = 12
    while offset + 8 <= len(head):
        chunk, length = head[offset : offset + 4], int.from_bytes(head[offset + 4 : offset + 8], "little")
        if chunk == b"data":
            present = size - (offset + 8)
            if length in (0, 0xFFFFFFFF) or present >= length:
                return None
            return (
                f"truncated: the WAV header announces {length} bytes of samples but the file holds {present}; "
                "copy or export the file again"
            )
        offset += 8 + length + (length & 1)
    return None


def _too_long(duration: float, limit: float) -> str:
    return f"too long: {duration:.1f} s is over the {limit:g} s limit"


def decode_audio(
    source: Path | bytes, sample_rate: int = SAMPLE_RATE, *, max_duration_s: float = MAX_DECODE_S
) -> npt.NDArray[np.float32]:
    """Decode a file (or its bytes) to mono float32 samples at ``sample_rate`` (numpy array).

    Raises :class:`AudioError` with the reason (``empty: ...``, ``truncated: ...``,
    ``not audio: ...``, ``corrupt: ...``, ``too long: ...``, ``not a regular file: ...``).
    A file whose header says it is longer than ``max_duration_s`` is refused undecoded.
    """
    import io

    import numpy as np
    import soundfile

    original: Path | bytes
    if isinstance(source, bytes | bytearray):
        original = bytes(source)
        size = len(original)
        handle: Any = io.BytesIO(original)
    else:
        original = Path(source)
        try:
            handle = open_regular(source)
        except FileProblem as exc:
            raise AudioError(str(exc)) from None
        size = os.fstat(handle.fileno()).st_size
    with handle:
        if size == 0:
            raise AudioError("empty: the file has no bytes")
        head = handle.read(1 << 16)
        handle.seek(0)
        problem = truncated_wav(head, size)
        if problem:
            raise AudioError(problem)
        try:
            info = soundfile.info(handle)
            handle.seek(0)
            if info.duration > max_duration_s + HEADER_SLACK_S:
                raise AudioError(_too_long(info.duration, max_duration_s))
            samples, rate = soundfile.read(handle, dtype="float32", always_2d=True)
        except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
            detail = (getattr(exc, "error_string", "") or type(exc).__name__).removeprefix("Error : ").strip(" .")
            key = "not audio: the file holds text, not sound; " if _looks_like_text(head[:512]) else "corrupt: "
            samples = _ffmpeg_decode(original, sample_rate, max_duration_s, (key, detail))
            rate = sample_rate
        else:
            samples = samples.mean(axis=1)  # downmix
    if samples.size == 0:
        raise AudioError("empty: the file holds no samples")
    if samples.size / rate > max_duration_s + HEADER_SLACK_S:
        raise AudioError(_too_long(samples.size / rate, max_duration_s))
    if not np.all(np.isfinite(samples)):
        raise AudioError("corrupt: the samples hold NaN or infinite values")
    if rate != sample_rate:
        import torch
        import torchaudio.functional as AF

        samples = AF.resample(torch.from_numpy(np.ascontiguousarray(samples)), rate, sample_rate).numpy()
    return np.ascontiguousarray(samples, dtype=np.float32)


def level_dbfs(samples: npt.ArrayLike) -> float:
    """RMS level of ``samples`` in dB relative to full scale (-inf for digital silence)."""
    import numpy as np

    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return 20 * math.log10(rms) if rms > 0 else float("-inf")


def check_clip(
    samples: npt.NDArray[np.float32],
    *,
    max_duration_s: float = MAX_DURATION_S,
    silence_dbfs: float = SILENCE_DBFS,
    sample_rate: int = SAMPLE_RATE,
) -> str | None:
    """Why the decoded clip cannot be used (``too long: ...``, ``silent: ...``), or None."""
    duration = len(samples) / sample_rate
    if duration > max_duration_s:
        return f"too long: {duration:.1f} s is over the {max_duration_s:g} s limit (Whisper's window)"
    level = level_dbfs(samples)
    if level < silence_dbfs:
        shown = "-inf" if math.isinf(level) else f"{level:.1f}"
        return f"silent: RMS level {shown} dBFS is under the {silence_dbfs:g} dBFS threshold"
    return None


def _first(record: dict[str, Any], fields: tuple[str, ...]) -> Any:
    return next((record[f] for f in fields if record.get(f) not in (None, "")), None)


def _normalise(
    raw: Any, root: Path, *, max_duration_s: float, silence_dbfs: float, follow_external_symlinks: bool
) -> dict[str, Any] | str:
    """The normalised record for one metadata row, or the reason it is rejected."""
    if isinstance(raw, ParseFailure):
        return str(raw)
    if not isinstance(raw, dict):
        return f"not an object: got {type(raw).__name__}"
    name = _first(raw, FILE_FIELDS)
    if not isinstance(name, str):
        return f"missing file: none of {', '.join(FILE_FIELDS)} names the audio file"
    text = _first(raw, TRANSCRIPT_FIELDS)
    if not isinstance(text, str) or not text.strip():
        return f"empty transcript: none of {', '.join(TRANSCRIPT_FIELDS)} holds text"
    path = locate(root, name, follow_external_symlinks=follow_external_symlinks)
    if isinstance(path, str):
        return f"{path} ({name})"
    try:
        samples = decode_audio(path, max_duration_s=max_duration_s)
        problem = check_clip(samples, max_duration_s=max_duration_s, silence_dbfs=silence_dbfs)
        digest = file_sha256(path)
    except (AudioError, FileProblem) as exc:
        return f"{exc} ({name})"
    if problem:
        return f"{problem} ({name})"
    record: dict[str, Any] = {
        "audio": str(path),
        "audio_sha256": digest,
        "duration_s": round(len(samples) / SAMPLE_RATE, 3),
        "text": text.strip(),
    }
    for field in OPTIONAL_FIELDS:
        if raw.get(field) not in (None, ""):
            record[field] = raw[field]
    return record


def load_audio_dataset(
    path: Path,
    *,
    max_duration_s: float = MAX_DURATION_S,
    silence_dbfs: float = SILENCE_DBFS,
    follow_external_symlinks: bool = FOLLOW_EXTERNAL_SYMLINKS,
) -> Dataset:
    """Load and check an audio folder (or its metadata file); bad clips are quarantined with
    the reason and the name the metadata gives them.

    :param follow_external_symlinks: read files whose symbolic link leads outside the
        metadata file's folder (off: they are quarantined).
    :raises DataError: when no clip is usable.
    """
    metadata = find_metadata(Path(path))
    rows = read_records(metadata, "jsonl" if metadata.suffix == ".json" else "auto")
    # a finding in a transcript is named by its clip (the metadata line is kept too)
    dataset = Dataset(source=metadata, kind="audio", scanned_fields=SCANNED_FIELDS, origins=Origins("audio"))
    for index, (line, raw) in enumerate(rows):
        result = _normalise(
            raw,
            metadata.parent,
            max_duration_s=max_duration_s,
            silence_dbfs=silence_dbfs,
            follow_external_symlinks=follow_external_symlinks,
        )
        dataset.take(index, line, result)
    return dataset.require_records("audio clips")


def load_waveform(record: dict[str, Any], sample_rate: int = SAMPLE_RATE) -> npt.NDArray[np.float32]:
    """The samples of an admitted record; DataError if the file changed since it was admitted."""
    path = Path(record["audio"])
    expected = record.get("audio_sha256")
    try:
        if expected and file_sha256(path) != expected:
            raise DataError(f"{path}: the audio file changed after it was admitted (hash differs); run again")
    except FileProblem as exc:
        raise DataError(f"{path}: {exc}; the audio file changed after it was admitted, run again") from None
    return decode_audio(path, sample_rate)
