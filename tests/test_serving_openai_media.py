"""The speech and image routes through the official ``openai`` client against a real server:
every transcription ``response_format`` (json, text, verbose_json, srt, vtt) and image
generation with ``b64_json``, compared with what the same server answers to plain HTTP."""

from __future__ import annotations

import base64
import io

import pytest

openai = pytest.importorskip("openai")
pytest.importorskip("whisper")
pytest.importorskip("diffusers")
pytest.importorskip("uvicorn")

import httpx  # noqa: E402
import polyadapt_image  # noqa: E402
import polyadapt_speech  # noqa: E402
from test_serving_openai import serving  # noqa: E402

from polyadapt.plugins import PluginManager  # noqa: E402
from polyadapt.serving.app import build_app_from_runs  # noqa: E402

pytestmark = pytest.mark.slow  # a Whisper and a diffusion pipeline behind a real server


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    from polyadapt_speech.testing import build_tiny_whisper, tone
    from speech_helpers import write_clip
    from test_speech_serving import BASE, make_run_folder

    root = tmp_path_factory.mktemp("openai-speech")
    checkpoint = build_tiny_whisper(root / BASE)
    run = make_run_folder(root / "runs", checkpoint, "claims", 1)
    clip = write_clip(root / "clip.wav", tone(1.2, 330.0, seed=0))
    pm = PluginManager(load_entrypoints=False, plugins={"speech": polyadapt_speech})
    app = build_app_from_runs(pm, [run], audit_log=root / "audit.jsonl")
    with serving(app) as url:
        yield {"url": url, "clip": clip, "model": f"{BASE}:claims"}


@pytest.fixture(scope="module")
def images(tmp_path_factory, tiny_base_model):
    from test_image_serving import TINY_NAME, make_run_folder

    root = tmp_path_factory.mktemp("openai-image")
    model = tiny_base_model("image")
    run = make_run_folder(root, model, "brand-a", seed=1)
    pm = PluginManager(load_entrypoints=False, plugins={"image": polyadapt_image})
    app = build_app_from_runs(pm, [run], audit_log=root / "audit.jsonl")
    with serving(app) as url:
        yield {"url": url, "model": f"{TINY_NAME}:brand-a"}


def client_for(url: str):
    return openai.OpenAI(base_url=url, api_key="unused", max_retries=0)


def plain_form(url: str, clip, model: str, response_format: str) -> httpx.Response:
    with clip.open("rb") as handle:
        return httpx.post(
            f"{url}/audio/transcriptions",
            data={"model": model, "response_format": response_format},
            files={"file": (clip.name, handle, "audio/wav")},
            timeout=120,
        )


def test_every_transcription_format_reads_back_in_the_official_client(speech):
    client, clip, model = client_for(speech["url"]), speech["clip"], speech["model"]
    expected = plain_form(speech["url"], clip, model, "json").json()["text"]

    with clip.open("rb") as handle:
        as_json = client.audio.transcriptions.create(model=model, file=handle)
    assert as_json.text == expected

    with clip.open("rb") as handle:
        as_text = client.audio.transcriptions.create(model=model, file=handle, response_format="text")
    assert isinstance(as_text, str) and as_text.strip() == expected.strip()

    with clip.open("rb") as handle:
        verbose = client.audio.transcriptions.create(model=model, file=handle, response_format="verbose_json")
    # timestamps change what Whisper decodes, so verbose_json is compared with its own plain answer
    plain_verbose = plain_form(speech["url"], clip, model, "verbose_json").json()
    assert verbose.text == plain_verbose["text"] and verbose.duration == pytest.approx(1.2, abs=0.05)
    assert len(verbose.segments or []) == len(plain_verbose["segments"])
    assert verbose.segments is not None and all(s.end >= s.start for s in verbose.segments)

    for fmt, marker in (("srt", " --> "), ("vtt", "WEBVTT")):
        with clip.open("rb") as handle:
            subtitles = client.audio.transcriptions.create(model=model, file=handle, response_format=fmt)
        assert isinstance(subtitles, str) and marker in subtitles
        assert subtitles == plain_form(speech["url"], clip, model, fmt).text

    with pytest.raises(openai.NotFoundError) as missing:
        with clip.open("rb") as handle:
            client.audio.transcriptions.create(model="no-such-model", file=handle)
    assert "no-such-model" in str(missing.value)


def test_images_come_back_as_base64_pngs_in_the_official_client(images):
    from PIL import Image

    client = client_for(images["url"])
    answer = client.images.generate(
        model=images["model"],
        prompt="a red square logo",
        n=2,
        size="16x16",
        response_format="b64_json",
        extra_body={"seed": 7, "num_inference_steps": 2},
    )
    assert len(answer.data) == 2
    pictures = [Image.open(io.BytesIO(base64.b64decode(item.b64_json))) for item in answer.data]
    assert all(p.format == "PNG" and p.size == (16, 16) for p in pictures)

    again = client.images.generate(
        model=images["model"],
        prompt="a red square logo",
        n=2,
        size="16x16",
        extra_body={"seed": 7, "num_inference_steps": 2},
    )
    assert [i.b64_json for i in again.data] == [i.b64_json for i in answer.data]  # the seed decides

    with pytest.raises(openai.BadRequestError) as refused:
        client.images.generate(model=images["model"], prompt="a logo", response_format="url")
    assert "b64_json" in str(refused.value)
