"""CTranslate2 (faster-whisper) folders convert on load into openai-whisper: a tiny whisper
written as a CTranslate2 WhisperSpec folder comes back with the same weights and logits,
is converted once (cached), and odd files are refused with a reason."""

from __future__ import annotations

import struct

import numpy as np
import pytest

torch = pytest.importorskip("torch")
whisper = pytest.importorskip("whisper")

from polyadapt.config import BaseModelConfig
from polyadapt.errors import ConfigError
from polyadapt_speech import ct2
from polyadapt_speech.model import load_whisper
from polyadapt_speech.testing import build_tiny_whisper

HEADS = [[1, 0], [1, 1]]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = build_tiny_whisper(tmp_path_factory.mktemp("ct2") / "tiny.pt", seed=5)
    return whisper.load_model(str(path), device="cpu").float().eval()


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYADAPT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _logits(model):
    mel = torch.randn(2, 80, 300, generator=torch.Generator().manual_seed(0))
    tokens = torch.tensor([[50257, 50362, 383, 1757, 13], [50257, 50362, 1081, 13, 50256]])
    with torch.no_grad():
        return model(mel, tokens)


def test_ct2_folder_converts_to_the_same_whisper_once(tiny, tmp_path, cache, monkeypatch):
    folder = ct2.save_ct2(tiny, tmp_path / "faster-whisper-tiny", alignment_heads=HEADS)
    name, revision, variables = ct2.read_model_bin(folder / "model.bin")
    assert (name, revision) == ("WhisperSpec", 3)
    assert variables["encoder/layer_0/self_attention/linear_0/weight"].shape == (192, 64)  # fused q/k/v
    assert variables["decoder/layer_1/attention/linear_1/weight"].shape == (128, 64)  # fused cross k/v
    assert variables["decoder/projection/weight"] is variables["decoder/embeddings/weight"]  # an alias

    converted = load_whisper(BaseModelConfig(id=str(folder)))
    assert converted.dims == tiny.dims
    original, state = tiny.state_dict(), converted.state_dict()
    assert set(state) == set(original)
    for key, value in original.items():
        assert torch.equal(state[key], value), key
    assert torch.equal(_logits(converted), _logits(tiny))
    heads = converted.alignment_heads.to_dense()
    assert heads.nonzero().tolist() == HEADS
    # the plain whisper loader reads the cached checkpoint too (and ignores the extra key)
    cached = list(cache.glob("whisper/*/model.pt"))
    assert len(cached) == 1
    assert torch.equal(_logits(whisper.load_model(str(cached[0]), device="cpu")), _logits(tiny))

    monkeypatch.setattr(ct2, "convert_ct2", lambda *a, **k: pytest.fail("converted twice"))
    again = load_whisper(BaseModelConfig(id=str(folder)))
    assert torch.equal(_logits(again), _logits(tiny))


@pytest.mark.parametrize("dtype, tolerance", [("float16", 2e-3), ("int8", 5e-2)])
def test_half_and_int8_folders_dequantise(tiny, tmp_path, dtype, tolerance):
    folder = ct2.save_ct2(tiny, tmp_path / dtype, dtype=dtype)
    model = load_whisper(BaseModelConfig(id=str(folder)))
    state = model.state_dict()
    for key, value in tiny.state_dict().items():
        if dtype == "float16":  # exactly the fp16 rounding of the original
            assert torch.equal(state[key], value.half().float()), key
        else:
            assert torch.allclose(state[key], value, atol=tolerance * value.abs().max().item()), key
    assert torch.allclose(_logits(model), _logits(tiny), atol=tolerance * 20)


def test_reader_follows_ctranslate2_layout(tmp_path):
    def string(text):
        return struct.pack("<H", len(text) + 1) + text.encode() + b"\0"

    blob = (
        struct.pack("<I", 6)
        + string("WhisperSpec")
        + struct.pack("<I", 3)
        + struct.pack("<I", 2)
        + string("a/weight")
        + struct.pack("<B", 2)
        + struct.pack("<II", 2, 3)
        + struct.pack("<B", 4)
        + struct.pack("<I", 12)
        + np.arange(6, dtype="<f2").tobytes()
        + string("a/num_heads")
        + struct.pack("<B", 0)
        + struct.pack("<B", 2)
        + struct.pack("<I", 2)
        + struct.pack("<h", 6)
        + struct.pack("<I", 1)
        + string("b/weight")
        + string("a/weight")
    )
    (tmp_path / "model.bin").write_bytes(blob)
    name, revision, variables = ct2.read_model_bin(tmp_path / "model.bin")
    assert (name, revision) == ("WhisperSpec", 3)
    assert variables["a/weight"].tolist() == [[0, 1, 2], [3, 4, 5]] and variables["a/weight"].dtype == np.float16
    assert int(variables["a/num_heads"]) == 6 and variables["b/weight"] is variables["a/weight"]

    (tmp_path / "model.bin").write_bytes(blob[:40])
    with pytest.raises(ConfigError, match="truncated"):
        ct2.read_model_bin(tmp_path / "model.bin")


def test_odd_ctranslate2_models_are_refused(tiny, tmp_path):
    folder = ct2.save_ct2(tiny, tmp_path / "m")
    _, _, variables = ct2.read_model_bin(folder / "model.bin")
    ct2.write_model_bin(folder / "model.bin", "TransformerSpec", 1, dict(variables))
    with pytest.raises(ConfigError, match="not a WhisperSpec"):
        load_whisper(BaseModelConfig(id=str(folder)))
    extra = dict(variables, **{"decoder/extra/weight": np.ones((2, 2), np.float32)})
    ct2.write_model_bin(folder / "model.bin", "WhisperSpec", 3, extra)
    with pytest.raises(ConfigError, match="no place for: decoder/extra/weight"):
        ct2.convert_ct2(folder, tmp_path / "out.pt")
    ct2.write_model_bin(
        folder / "model.bin", "WhisperSpec", 3, dict(variables, **{"decoder/pre_norm": np.array(0, np.int8)})
    )
    with pytest.raises(ConfigError, match="pre_norm is 0"):
        ct2.convert_ct2(folder, tmp_path / "out.pt")
