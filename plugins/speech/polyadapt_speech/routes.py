"""``POST /v1/audio/transcriptions``: OpenAI's speech-to-text endpoint, mounted by
``polyadapt serve`` when a speech-recognition base is served.

The request is a multipart form: ``file`` (the audio, at most 25 MB: 413 beyond),
``model`` (``base`` or ``base:adapter``, resolved like every other endpoint, so adapters
switch per request on one loaded base), and optionally ``response_format`` (``json``,
``text``, ``verbose_json``, ``srt``, ``vtt``), ``language``, ``prompt`` and ``temperature``
(decoding is greedy; the value is accepted and echoed, not used). The text prompt passes
the serving policy as a prompt, the transcript as ``transcript`` (audited with that
direction); its segments are redacted the same way, and a withheld transcript comes back
empty, without segments.

The subtitle-like formats (``verbose_json``, ``srt``, ``vtt``) ask the servable for real
segment timestamps (``TranscriptionRequest.timestamps``); ``json`` and ``text`` do not, so
the servable may decode the faster way.

Requests are micro-batched like completions (``--max-batch``, ``--batch-wait-ms``): the
uploads of one base that arrive together reach ``servable.transcribe`` as one list, in a
worker thread, one batch at a time per base; the servable decodes those that share an
adapter, language, prompt and timestamp setting in one batch.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from polyadapt.serving.routes import Route, RouteContext, TextResponse, Upload
from polyadapt_speech.types import TranscriptionRequest, TranscriptionResult

ResponseFormat = Literal["json", "text", "verbose_json", "srt", "vtt"]
RESPONSE_FORMATS: tuple[str, ...] = get_args(ResponseFormat)
#: The formats that show segment times.
TIMESTAMP_FORMATS = ("verbose_json", "srt", "vtt")
#: Largest upload accepted (OpenAI's limit).
MAX_UPLOAD_BYTES = 25 * 1024 * 1024


class TranscriptionBody(BaseModel):
    """The multipart form of ``/v1/audio/transcriptions`` (unknown OpenAI fields are ignored)."""

    model_config = ConfigDict(extra="ignore")

    file: Upload
    model: str = Field(min_length=1)
    response_format: ResponseFormat = "json"
    language: str | None = None
    prompt: str | None = None
    temperature: float = Field(0.0, ge=0, le=1)


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
        {
            "id": s.get("id", i),
            "seek": int(round(float(s["start"]) * 100)),
            "start": s["start"],
            "end": s["end"],
            "text": s["text"],
            "temperature": temperature,
        }
        for i, s in enumerate(_segments(result))
    ]
    return {
        "task": "transcribe",
        "language": result.language,
        "duration": result.duration_s,
        "text": result.text,
        "segments": segments,
    }


def format_response(
    result: TranscriptionResult, response_format: str, temperature: float = 0.0
) -> dict[str, Any] | TextResponse:
    """The answer for ``result`` in ``response_format``: JSON, or text for ``text``, ``srt``, ``vtt``."""
    if response_format == "text":
        return TextResponse(result.text)
    if response_format == "srt":
        return TextResponse(to_srt(result))
    if response_format == "vtt":
        return TextResponse(to_vtt(result), media_type="text/vtt")
    if response_format == "verbose_json":
        return verbose_json(result, temperature)
    return {"text": result.text}


async def transcriptions(body: TranscriptionBody, ctx: RouteContext) -> dict[str, Any] | TextResponse:
    """Transcribe an uploaded audio file with a base or ``base:adapter`` speech model,
    through the serving policy (prompt in, transcript and segments out)."""
    target = ctx.resolve(body.model, method="transcribe", what="audio transcription")
    prompt = ctx.check_prompt(body.prompt, target) if body.prompt else None
    request = TranscriptionRequest(
        audio=body.file.data,
        adapter=target.adapter,
        language=body.language or None,
        prompt=prompt,
        temperature=body.temperature,
        filename=body.file.filename,
        timestamps=body.response_format in TIMESTAMP_FORMATS,
    )
    (result,) = await ctx.submit(target, "transcribe", [request], what="transcription")
    ctx.note_input(target, audio_seconds=result.duration_s)  # drift monitoring, as input_sample measures
    text, withheld = ctx.check_output(result.text, target, direction="transcript")
    segments = (
        []
        if withheld
        else [{**segment, "text": ctx.redact(str(segment.get("text", "")))} for segment in result.segments]
    )
    return format_response(replace(result, text=text, segments=segments), body.response_format, body.temperature)


#: The endpoint the speech-recognition task adds to ``polyadapt serve``.
TRANSCRIPTIONS = Route(
    "/v1/audio/transcriptions",
    transcriptions,
    body=TranscriptionBody,
    form=True,
    summary="Transcribe an audio file (OpenAI's speech-to-text)",
    max_upload_bytes=MAX_UPLOAD_BYTES,
)
