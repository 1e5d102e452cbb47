"""``POST /v1/audio/transcriptions``: OpenAI's speech-to-text endpoint over any servable that
has a ``transcribe`` method (the speech plugin's, say).

The request is a multipart form: ``file`` (the audio), ``model`` (``base`` or
``base:adapter``, resolved like every other endpoint, so adapters switch per request on one
loaded base), and optionally ``response_format`` (``json``, ``text``, ``verbose_json``,
``srt``, ``vtt``), ``language``, ``prompt`` and ``temperature`` (decoding is greedy; the
value is accepted and echoed, not used). The text prompt passes the serving policy as a
prompt, the transcript as ``transcript`` (audited with that direction).

The subtitle-like formats (``verbose_json``, ``srt``, ``vtt``) ask the servable for real
segment timestamps (``TranscriptionRequest.timestamps``); ``json`` and ``text`` do not, so
the servable may decode the faster way.

Requests are micro-batched like completions (``--max-batch``, ``--batch-wait-ms``): the
uploads of one base that arrive together reach ``servable.transcribe`` as one list, in a
worker thread, one batch at a time per base; the servable decodes those that share an
adapter, language, prompt and timestamp setting in one batch.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, File, Form, UploadFile
from fastapi.responses import PlainTextResponse

from polyadapt.serving.schemas import ApiError
from polyadapt.types import TranscriptionRequest, TranscriptionResult

RESPONSE_FORMATS = ("json", "text", "verbose_json", "srt", "vtt")
#: The formats that show segment times.
TIMESTAMP_FORMATS = ("verbose_json", "srt", "vtt")
#: Largest upload accepted (OpenAI's limit).
MAX_UPLOAD_BYTES = 25 * 1024 * 1024


def _timestamp(seconds: float, separator: str) -> str:
    millis = int(round(max(seconds, 0.0) * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _segments(result: TranscriptionResult) -> list[dict[str, Any]]:
    """The result's segments, or one segment over the whole clip when it gave none."""
    if result.segments:
        return result.segments
    return [{"id": 0, "start": 0.0, "end": result.duration_s, "text": result.text}]


def to_srt(result: TranscriptionResult) -> str:
    """SubRip subtitles of ``result`` (one cue per segment)."""
    cues = [
        f"{n}\n{_timestamp(s['start'], ',')} --> {_timestamp(s['end'], ',')}\n{str(s['text']).strip()}\n"
        for n, s in enumerate(_segments(result), start=1)
    ]
    return "\n".join(cues)


def to_vtt(result: TranscriptionResult) -> str:
    """WebVTT subtitles of ``result`` (one cue per segment)."""
    cues = [
        f"{_timestamp(s['start'], '.')} --> {_timestamp(s['end'], '.')}\n{str(s['text']).strip()}\n"
        for s in _segments(result)
    ]
    return "WEBVTT\n\n" + "\n".join(cues)


def verbose_json(result: TranscriptionResult, temperature: float) -> dict[str, Any]:
    """OpenAI's ``verbose_json`` shape: task, language, duration, text and segments."""
    segments = [
        {"id": s.get("id", i), "seek": int(round(float(s["start"]) * 100)), "start": s["start"], "end": s["end"],
         "text": s["text"], "temperature": temperature}
        for i, s in enumerate(_segments(result))
    ]
    return {"task": "transcribe", "language": result.language, "duration": result.duration_s,
            "text": result.text, "segments": segments}


def format_response(result: TranscriptionResult, response_format: str, temperature: float = 0.0) -> Any:
    """The HTTP answer for ``result`` in ``response_format``."""
    if response_format == "text":
        return PlainTextResponse(result.text)
    if response_format == "srt":
        return PlainTextResponse(to_srt(result))
    if response_format == "vtt":
        return PlainTextResponse(to_vtt(result), media_type="text/vtt")
    if response_format == "verbose_json":
        return verbose_json(result, temperature)
    return {"text": result.text}


async def transcribe(registry: Any, base: str, request: TranscriptionRequest,
                     *, model: str) -> TranscriptionResult:
    """Transcribe ``request`` on ``base`` (its adapter loaded on first use) through the policy."""
    if not callable(getattr(registry.bases[base].servable, "transcribe", None)):
        raise ApiError(400, f"the model {model!r} does not transcribe audio; use a speech model",
                       param="model", code="model_not_supported")
    guard = registry.guard
    if guard is not None:
        request = guard.check_transcription_request(request, model=model)
    (result,) = await registry.submit(base, "transcribe", [request], what="transcription")
    if guard is not None:
        result = guard.check_transcript(result, model=model, adapter=request.adapter)
    return result


def add_transcription_routes(app: FastAPI, registry: Any) -> None:
    """Add ``POST /v1/audio/transcriptions`` for the servables of ``registry``."""

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(
        file: UploadFile = File(...),
        model: str = Form(..., min_length=1),
        response_format: str = Form("json"),
        language: str | None = Form(None),
        prompt: str | None = Form(None),
        temperature: float = Form(0.0, ge=0, le=1),
    ) -> Any:
        """Transcribe an uploaded audio file with a base or ``base:adapter`` speech model."""
        if response_format not in RESPONSE_FORMATS:
            raise ApiError(400, f"response_format must be one of {', '.join(RESPONSE_FORMATS)}, "
                           f"got {response_format!r}", param="response_format")
        base, adapter = registry.resolve(model)
        audio = await file.read(MAX_UPLOAD_BYTES + 1)
        if len(audio) > MAX_UPLOAD_BYTES:
            raise ApiError(413, f"the audio file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB", param="file")
        request = TranscriptionRequest(audio=audio, adapter=adapter, language=language or None,
                                       prompt=prompt or None, temperature=temperature, filename=file.filename or "",
                                       timestamps=response_format in TIMESTAMP_FORMATS)
        result = await transcribe(registry, base, request, model=model)
        return format_response(result, response_format, temperature)
