"""Whisper's timestamp tokens → transcript segments of one decoding window (pure Python).

Decoded with timestamps, Whisper writes each segment as ``<|t0|> text <|t1|>``: a segment
ends with a timestamp and the next one starts with another, so two *consecutive*
timestamp tokens mark a boundary. A timestamp token is ``timestamp_begin + k`` for ``k``
steps of :data:`TIME_PRECISION` seconds from the window's start. The rules below are those
of openai-whisper's ``whisper/transcribe.py`` (``transcribe``), plus clamping to the window,
which a well-trained model never needs but a random or adapted one may:

* the tokens are cut after every pair of consecutive timestamps; each piece is a segment
  from its first timestamp to its last;
* a single timestamp at the very end (after text) closes the last segment: the window is
  done and the next one starts after it;
* otherwise the last piece is unfinished (the window, or the token budget, ended inside
  it): it is dropped and the next window starts at the last complete segment's end, so
  the words it held are decoded again whole;
* with no consecutive timestamps at all the whole window is one segment and the next
  window starts after it. It runs from the opening timestamp (whisper: the window's
  start) to the closing one when the text ends with one, else to the window's end
  (whisper takes any last timestamp but ``<|0.00|>`` as the end, so an unclosed
  ``<|0.04|> text...`` would last 0.04 s).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

#: Seconds per timestamp step: one encoder position, i.e. two 10 ms log-mel frames.
TIME_PRECISION = 0.02


class TimestampTokenizer(Protocol):
    """What parsing needs of a whisper tokenizer (``whisper.tokenizer.Tokenizer`` has it)."""

    timestamp_begin: int
    eot: int

    def decode(self, tokens: list[int]) -> str: ...


@dataclass(frozen=True)
class Segment:
    """A stretch of the clip (seconds from the clip's start) and what was said in it."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class WindowSegments:
    """The segments of one window and ``advance``: seconds from the window's start to where
    the next window begins (always > 0 and at most the window's duration)."""

    segments: list[Segment]
    advance: float


def parse_window(
    tokens: Sequence[int],
    tokenizer: TimestampTokenizer,
    *,
    duration: float,
    offset: float = 0.0,
    precision: float = TIME_PRECISION,
) -> WindowSegments:
    """The segments of a window decoded with timestamps, and how far to seek.

    ``tokens`` are what whisper's decoder wrote after the start-of-transcript sequence (no
    end-of-text); ``duration`` is the length in seconds of the audio in the window (less
    than the model's window for a clip's last one) and ``offset`` where the window starts
    in the clip. Times are clamped into ``[offset, offset + duration]``. Segments whose text
    is blank are left out; a window that held no text gives no segment.
    """
    tokens = [int(t) for t in tokens]
    is_time = [t >= tokenizer.timestamp_begin for t in tokens]

    def seconds(token: int) -> float:
        return min(max((token - tokenizer.timestamp_begin) * precision, 0.0), duration)

    def segment(start: float, end: float, piece: list[int]) -> Segment:
        text = tokenizer.decode([t for t in piece if t < tokenizer.eot]).strip()
        return Segment(start=offset + start, end=offset + end, text=text)

    single_timestamp_ending = is_time[-2:] == [False, True]
    boundaries = [i + 1 for i in range(len(tokens) - 1) if is_time[i] and is_time[i + 1]]
    if not boundaries:
        start = seconds(tokens[0]) if is_time[:1] == [True] else 0.0
        end = max(seconds(tokens[-1]) if single_timestamp_ending else duration, start)
        pieces = [segment(start, end, tokens)]
        advance = duration
    else:
        if single_timestamp_ending:
            boundaries.append(len(tokens))
        pieces, last, previous_end = [], 0, 0.0
        for boundary in boundaries:
            piece = tokens[last:boundary]
            # Whisper's rules make every piece start and end with a timestamp, never earlier
            # than the one before; tokens that break them still give ordered segments.
            start = max(seconds(piece[0]) if is_time[last] else previous_end, previous_end)
            end = max(seconds(piece[-1]) if is_time[boundary - 1] else duration, start)
            pieces.append(segment(start, end, piece))
            previous_end, last = end, boundary
        advance = duration if single_timestamp_ending else previous_end
    if advance <= 0:  # only a zero-length segment was complete: seeking 0 s would loop forever
        advance = duration
    return WindowSegments(segments=[s for s in pieces if s.text], advance=advance)


__all__ = ["TIME_PRECISION", "Segment", "TimestampTokenizer", "WindowSegments", "parse_window"]
