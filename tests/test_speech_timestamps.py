"""Real segment timestamps for speech transcription: whisper's timestamp tokens parsed into
segments, whisper's seek over long audio, and the subtitle formats of
``POST /v1/audio/transcriptions`` built from them."""

from __future__ import annotations

import re
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from polyadapt_speech.seek import seek_segments
from polyadapt_speech.segments import Segment, parse_window

RATE = 16_000
TS = 1000  # timestamp_begin of the fake tokenizer
WORDS = {1: " Hello", 2: " world", 3: ".", 4: " Bye", 5: " now"}


class FakeTokenizer:
    """Text tokens 1..5 (:data:`WORDS`), end-of-text 999, timestamps from 1000 on."""

    timestamp_begin = TS
    eot = 999

    def decode(self, tokens):
        assert all(t < self.eot for t in tokens), tokens
        return "".join(WORDS[t] for t in tokens)


def t(seconds: float) -> int:
    """The timestamp token of ``seconds`` (steps of 0.02 s)."""
    return TS + round(seconds / 0.02)


def spans(segments):
    return [(pytest.approx(s.start, abs=1e-9), pytest.approx(s.end, abs=1e-9), s.text) for s in segments]


# -- parsing one window ---------------------------------------------------------------------


def test_consecutive_timestamp_pairs_split_segments_and_a_closing_timestamp_ends_the_window():
    tokens = [t(0.0), 1, 2, 3, t(1.2), t(1.5), 4, 5, t(2.5)]
    parsed = parse_window(tokens, FakeTokenizer(), duration=30.0)
    assert parsed.segments == [Segment(0.0, 1.2, "Hello world."), Segment(1.5, 2.5, "Bye now")]
    assert parsed.advance == 30.0  # every segment closed: the next window starts after this one


def test_a_trailing_open_segment_is_dropped_and_the_window_advances_to_the_last_complete_end():
    tokens = [t(0.0), 1, 2, t(1.2), t(1.4), 4, 5]  # the window (or token budget) ended mid-sentence
    parsed = parse_window(tokens, FakeTokenizer(), duration=30.0)
    assert parsed.segments == [Segment(0.0, 1.2, "Hello world")]
    assert parsed.advance == pytest.approx(1.2)
    # a pair at the very end also leaves the next segment unwritten
    parsed = parse_window([t(0.4), 1, t(2.0), t(2.0)], FakeTokenizer(), duration=30.0)
    assert spans(parsed.segments) == [(0.4, 2.0, "Hello")] and parsed.advance == pytest.approx(2.0)


def test_no_timestamps_at_all_give_one_segment_over_the_window():
    parsed = parse_window([1, 2, 3], FakeTokenizer(), duration=12.5, offset=30.0)
    assert parsed.segments == [Segment(30.0, 42.5, "Hello world.")]
    assert parsed.advance == 12.5
    # a single timestamp after the text (no pair) ends the segment there
    parsed = parse_window([t(0.0), 4, t(4.0)], FakeTokenizer(), duration=30.0)
    assert parsed.segments == [Segment(0.0, 4.0, "Bye")] and parsed.advance == 30.0
    # an opening timestamp never closed (the token budget ran out): to the window's end
    parsed = parse_window([t(0.4), 1, 2], FakeTokenizer(), duration=30.0)
    assert spans(parsed.segments) == [(0.4, 30.0, "Hello world")] and parsed.advance == 30.0
    assert parse_window([], FakeTokenizer(), duration=30.0).segments == []  # nothing said


def test_later_windows_are_offset_and_times_stay_inside_the_window():
    tokens = [t(0.5), 1, t(2.0), t(2.0), 4, t(9.0)]
    parsed = parse_window(tokens, FakeTokenizer(), duration=3.0, offset=28.4)
    # 9.0 s lies past this 3 s window (a confused model): clamped to its end
    assert spans(parsed.segments) == [(28.9, 30.4, "Hello"), (30.4, 31.4, "Bye")]
    assert parsed.advance == 3.0


def test_blank_segments_and_special_tokens_leave_no_text():
    tokens = [t(0.0), t(1.0), t(1.0), 1, 50, t(2.0)]  # an empty first segment; 50 is no text token
    tokenizer = FakeTokenizer()
    tokenizer.eot = 40
    parsed = parse_window(tokens, tokenizer, duration=30.0)
    assert parsed.segments == [Segment(1.0, 2.0, "Hello")]


def test_whisper_tokenizer_tokens_parse_to_their_text():
    pytest.importorskip("whisper")
    from whisper.tokenizer import get_tokenizer

    tokenizer = get_tokenizer(False)
    begin = tokenizer.timestamp_begin
    tokens = [
        begin,
        *tokenizer.encode(" The rider covers it."),
        begin + 110,
        begin + 120,
        *tokenizer.encode(" Call us."),
        begin + 200,
    ]
    parsed = parse_window(tokens, tokenizer, duration=30.0, offset=30.0)
    assert spans(parsed.segments) == [(30.0, 32.2, "The rider covers it."), (32.4, 34.0, "Call us.")]


# -- seeking over long audio ----------------------------------------------------------------

#: Sentences of a 70 s clip: (start, end) seconds and a word each (token = position + 1).
SENTENCES = [
    (0.5, 7.5),
    (8.5, 15.5),
    (16.5, 23.5),
    (24.5, 31.5),
    (32.5, 39.5),
    (40.5, 47.5),
    (48.5, 55.5),
    (56.5, 63.5),
    (64.5, 69.5),
]


class SentenceModel:
    """A stand-in for whisper: it 'hears' :data:`SENTENCES` and writes each one inside a
    window as ``<|start|> word <|end|>``; one cut by the window's end has no end timestamp."""

    def __init__(self):
        self.windows = []

    def __call__(self, windows):
        self.windows.append(list(windows))
        out = []
        for _, start, end in windows:
            offset, stop = start / RATE, end / RATE
            tokens = []
            for n, (s, e) in enumerate(SENTENCES):
                if offset <= s < stop:
                    tokens += [t(s - offset), n + 1]
                    if e <= stop:
                        tokens.append(t(e - offset))
                    else:
                        break
            out.append(tokens)
        return out


class Words(FakeTokenizer):
    def decode(self, tokens):
        return " ".join(f"s{token - 1}" for token in tokens)


def test_seek_covers_a_70_s_clip_without_gaps_or_overlaps_and_restarts_at_the_last_complete_end():
    model = SentenceModel()
    (segments,) = seek_segments([70 * RATE], model, Words(), window=30 * RATE)
    # the window starts: 0, then the end of the last sentence complete in the window before
    assert [w[0][1] / RATE for w in model.windows] == [0.0, 23.5, 47.5]
    assert [w[0][2] / RATE for w in model.windows] == [30.0, 53.5, 70.0]
    # every sentence exactly once, where it was said (the cut ones decoded whole later)
    assert spans(segments) == [(s, e, f"s{n}") for n, (s, e) in enumerate(SENTENCES)]
    assert all(a.end <= b.start for a, b in pairwise(segments))


def test_clips_are_decoded_together_each_step_until_each_is_done():
    model = SentenceModel()
    short, long = seek_segments([24 * RATE, 70 * RATE], model, Words(), window=30 * RATE)
    assert [[w[0] for w in step] for step in model.windows] == [[0, 1], [1], [1]]
    assert [s.text for s in short] == ["s0", "s1", "s2"] and len(long) == len(SENTENCES)


def test_windows_without_timestamps_fall_back_to_consecutive_windows():
    calls = []

    def decode(windows):
        calls.extend(windows)
        return [[1, 2] for _ in windows]

    (segments,) = seek_segments([70 * RATE], decode, FakeTokenizer(), window=30 * RATE)
    assert [(start / RATE, end / RATE) for _, start, end in calls] == [(0, 30), (30, 60), (60, 70)]
    assert spans(segments) == [(0, 30, "Hello world"), (30, 60, "Hello world"), (60, 70, "Hello world")]


# -- the endpoint ---------------------------------------------------------------------------

CUE = re.compile(r"(\d\d):(\d\d):(\d\d)[,.](\d\d\d) --> (\d\d):(\d\d):(\d\d)[,.](\d\d\d)")
#: Bursts of tone in a 7.5 s clip (seconds); the tiny whisper's window is 3 s.
BURSTS = [(0.2, 1.0), (1.4, 2.2), (2.6, 3.4), (3.8, 4.6), (5.0, 5.8), (6.2, 7.0)]
CLIP_S = 7.5


def cue_times(subtitles: str) -> list[tuple[float, float]]:
    def seconds(h, m, s, ms):
        return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000

    return [(seconds(*m.groups()[:4]), seconds(*m.groups()[4:])) for m in CUE.finditer(subtitles)]


def assert_ordered_within(times: list[tuple[float, float]], duration: float) -> None:
    assert times, "no cues"
    assert times[0][0] >= 0 and times[-1][1] <= duration
    assert all(start < end for start, end in times), times
    assert all(a[1] <= b[0] for a, b in pairwise(times)), times


@pytest.fixture(scope="module")
def tiny_server(tmp_path_factory):
    pytest.importorskip("whisper")
    pytest.importorskip("multipart")
    from speech_helpers import write_clip

    from polyadapt.types import ServeSpec
    from polyadapt_speech.serve import SpeechServable
    from polyadapt_speech.task import SpeechRecognitionTask
    from polyadapt_speech.testing import build_tiny_whisper, tone

    root = tmp_path_factory.mktemp("speech-timestamps")
    checkpoint = build_tiny_whisper(root / "tiny-whisper.pt")
    servable = SpeechServable(ServeSpec(task=SpeechRecognitionTask(), base_model=str(checkpoint), base_name="tiny"))
    samples = np.zeros(int(CLIP_S * RATE), dtype=np.float32)
    for n, (s, e) in enumerate(BURSTS):
        first, end = round(s * RATE), round(e * RATE)
        samples[first:end] = tone(1.0, 300 + 50 * n, seed=n)[: end - first]
    return {"servable": servable, "clip": write_clip(root / "bursts.wav", samples)}


def post(client, clip: Path, **form):
    with clip.open("rb") as handle:
        response = client.post(
            "/v1/audio/transcriptions", data={"model": "tiny", **form}, files={"file": (clip.name, handle, "audio/wav")}
        )
    assert response.status_code == 200, response.text
    return response


def test_subtitles_of_a_multi_window_clip_on_the_tiny_whisper_are_ordered_and_inside_the_clip(tiny_server):
    from fastapi.testclient import TestClient

    from polyadapt.serving.app import build_app
    from polyadapt_speech.task import SpeechRecognitionTask

    asked = []
    servable = tiny_server["servable"]
    transcribe = servable.transcribe

    def spy(requests):
        asked.extend(r.timestamps for r in requests)
        return transcribe(requests)

    servable.transcribe = spy
    try:
        with TestClient(build_app({"tiny": servable}, endpoints=SpeechRecognitionTask().routes())) as client:
            srt = post(client, tiny_server["clip"], response_format="srt").text
            vtt = post(client, tiny_server["clip"], response_format="vtt").text
            verbose = post(client, tiny_server["clip"], response_format="verbose_json").json()
            post(client, tiny_server["clip"], response_format="json")
    finally:
        del servable.transcribe
    assert asked == [True, True, True, False]
    assert_ordered_within(cue_times(srt), CLIP_S)
    assert cue_times(vtt) == cue_times(srt)
    assert verbose["duration"] == CLIP_S
    assert_ordered_within([(s["start"], s["end"]) for s in verbose["segments"]], CLIP_S)


def burst_model(tokenizer):
    """A stand-in for ``transcribe_samples`` that 'hears' bursts of sound: each burst inside
    the window is ``<|start|> word <|end|>``; one cut by the window's end has no end."""
    from polyadapt_speech.transcribe import Transcript

    word = tokenizer.encode(" word")

    def transcribe_samples(model, samples, *, timestamps=False, **options):
        out = []
        for clip in samples:
            loud = np.abs(np.asarray(clip)).reshape(-1, 320).max(axis=1) > 0.1  # 20 ms steps
            edges = np.flatnonzero(np.diff(np.concatenate([[0], loud.astype(int), [0]])))
            tokens = []
            for start, end in zip(edges[::2], edges[1::2]):
                tokens += [tokenizer.timestamp_begin + int(start), *word]
                if end < len(loud):
                    tokens.append(tokenizer.timestamp_begin + int(end))
            if not timestamps:
                tokens = [token for token in tokens if token < tokenizer.eot]
            out.append(
                Transcript(
                    text=tokenizer.decode([x for x in tokens if x < tokenizer.eot]).strip(),
                    tokens=tokens,
                    language="en",
                    avg_logprob=0.0,
                )
            )
        return out

    return transcribe_samples


def test_srt_and_verbose_json_carry_the_decoded_timestamps_across_windows(tiny_server, monkeypatch):
    from fastapi.testclient import TestClient

    import polyadapt_speech.serve
    from polyadapt.serving.app import build_app
    from polyadapt_speech.model import tokenizer_for
    from polyadapt_speech.task import SpeechRecognitionTask

    servable = tiny_server["servable"]
    monkeypatch.setattr(polyadapt_speech.serve, "transcribe_samples", burst_model(tokenizer_for(servable.whisper)))
    with TestClient(build_app({"tiny": servable}, endpoints=SpeechRecognitionTask().routes())) as client:
        srt = post(client, tiny_server["clip"], response_format="srt").text
        verbose = post(client, tiny_server["clip"], response_format="verbose_json").json()
        text = post(client, tiny_server["clip"], response_format="json").json()["text"]
    # the burst cut by each 3 s window comes whole from the next window (seek to 2.2 s, 4.6 s)
    assert cue_times(srt) == BURSTS
    assert srt.startswith("1\n00:00:00,200 --> 00:00:01,000\nword\n\n2\n00:00:01,400 --> 00:00:02,200\nword\n")
    assert [(s["start"], s["end"]) for s in verbose["segments"]] == BURSTS
    assert verbose["text"] == " ".join(["word"] * len(BURSTS))
    # json keeps consecutive 3 s windows without timestamps: the cut bursts are heard twice
    assert text.split().count("word") == len(BURSTS) + 1
