"""Whisper's seek over long audio: windows placed by the timestamps decoded so far.

A clip longer than the model's window (30 s) is decoded window by window. Where the next
window starts depends on the last one's timestamps (:func:`polyadapt_speech.segments.parse_window`):
at the end of its last complete segment when it ended inside a sentence, so no word is cut
in half, else right after it. Clips are decoded together: each step decodes the current
window of every clip not yet finished in one call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from polyadapt_speech.segments import (
    TIME_PRECISION,
    Segment,
    TimestampTokenizer,
    parse_window,
)

#: A window to decode: (clip index, first sample, end sample).
Window = tuple[int, int, int]


def seek_segments(
    lengths: Sequence[int],
    decode: Callable[[list[Window]], Sequence[Sequence[int]]],
    tokenizer: TimestampTokenizer,
    *,
    window: int,
    sample_rate: int = 16_000,
    precision: float = TIME_PRECISION,
) -> list[list[Segment]]:
    """The timestamped segments of clips of ``lengths`` samples, one list per clip.

    ``decode(windows)`` returns, for each window, the tokens whisper wrote for those
    samples of that clip decoded with timestamps; ``window`` is the model's window in
    samples. Every step advances each clip by at least one sample, so it ends.
    """
    seeks = [0] * len(lengths)
    segments: list[list[Segment]] = [[] for _ in lengths]
    while True:
        windows = [
            (i, seek, min(length, seek + window))
            for i, (seek, length) in enumerate(zip(seeks, lengths))
            if seek < length
        ]
        if not windows:
            return segments
        decoded = decode(windows)
        if len(decoded) != len(windows):
            raise ValueError(f"decode returned {len(decoded)} token lists for {len(windows)} windows")
        for (i, start, end), tokens in zip(windows, decoded):
            parsed = parse_window(
                tokens, tokenizer, offset=start / sample_rate, duration=(end - start) / sample_rate, precision=precision
            )
            segments[i].extend(parsed.segments)
            seeks[i] = min(end, start + max(1, round(parsed.advance * sample_rate)))


__all__ = ["Window", "seek_segments"]
