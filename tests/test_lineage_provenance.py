"""Adapters carry their provenance: safetensors metadata and polyadapt_provenance.json, never a
block inside adapter_config.json (plain PEFT loads them without a warning)."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from polyadapt.errors import PolyadaptError
from polyadapt.lineage.provenance import (
    PROVENANCE_FILE,
    read_provenance,
    stamp_adapter,
    weights_hash,
)
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

ROOT = "ab" * 32


@pytest.fixture
def adapter_dir(tmp_path) -> Path:
    folder = tmp_path / "adapter"
    folder.mkdir()
    rng = np.random.default_rng(0)
    save_file(
        {
            "base_model.model.layer.lora_A.weight": rng.standard_normal((4, 8)).astype(np.float32),
            "base_model.model.layer.lora_B.weight": rng.standard_normal((8, 4)).astype(np.float16),
        },
        folder / "adapter_model.safetensors",
        metadata={"format": "pt"},
    )
    (folder / "adapter_model.safetensors").chmod(0o644)
    from peft import LoraConfig

    LoraConfig(r=4, lora_alpha=8, target_modules=["layer"]).save_pretrained(str(folder))
    return folder


def test_stamp_writes_metadata_and_keeps_tensors(adapter_dir):
    file = adapter_dir / "adapter_model.safetensors"
    before = load_file(file)
    block = stamp_adapter(adapter_dir, run_id="run-1", dataset_root=ROOT, extra={"base_model": "org/m", "records": 12})
    assert block["run_id"] == "run-1" and block["dataset_root"] == ROOT and block["records"] == 12
    with safe_open(str(file), framework="np") as handle:
        metadata = handle.metadata()
    assert metadata["format"] == "pt"  # existing metadata kept
    assert metadata["polyadapt.run_id"] == "run-1"
    assert metadata["polyadapt.dataset_root"] == ROOT
    assert metadata["polyadapt.weights_hash"] == block["weights_hash"]
    assert metadata["polyadapt.records"] == "12"
    after = load_file(file)
    assert after.keys() == before.keys()
    for name, tensor in before.items():
        assert after[name].dtype == tensor.dtype and np.array_equal(after[name], tensor)
    assert oct(file.stat().st_mode & 0o777) == "0o644"
    assert not [p for p in adapter_dir.iterdir() if p.name.startswith(".")]  # no temp files left
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    assert "polyadapt" not in config and config["r"] == 4
    assert json.loads((adapter_dir / PROVENANCE_FILE).read_text()) == block


def test_stamp_sets_the_portable_base_and_moves_an_old_block_out(adapter_dir):
    path = adapter_dir / "adapter_config.json"
    config = json.loads(path.read_text())
    old_block = {"run_id": "run-0", "dataset_root": ROOT, "weights_hash": "0" * 64}
    path.write_text(json.dumps({**config, "base_model_name_or_path": "/home/u/.cache/polyadapt/gguf/x", "polyadapt": old_block}))
    (adapter_dir / PROVENANCE_FILE).unlink(missing_ok=True)
    assert read_provenance(adapter_dir)["run_id"] == "run-0"  # an adapter of polyadapt 0.2 still reads
    stamp_adapter(adapter_dir, run_id="run-1", dataset_root=ROOT, base_reference="org/model")
    config = json.loads(path.read_text())
    assert "polyadapt" not in config and config["base_model_name_or_path"] == "org/model"
    assert read_provenance(adapter_dir)["run_id"] == "run-1"


def test_restamp_replaces_the_block(adapter_dir):
    stamp_adapter(adapter_dir, run_id="run-1", dataset_root=ROOT, extra={"old": "x"})
    stamp_adapter(adapter_dir, run_id="run-2", dataset_root=ROOT)
    provenance = read_provenance(adapter_dir)
    assert provenance["run_id"] == "run-2" and "old" not in provenance
    assert "old" not in provenance["files"]["adapter_model.safetensors"]
    with pytest.raises(PolyadaptError, match="may not set run_id"):
        stamp_adapter(adapter_dir, run_id="r", dataset_root=ROOT, extra={"run_id": "other"})


def test_weights_hash_ignores_metadata_and_sees_every_byte(adapter_dir, tmp_path):
    first = weights_hash(adapter_dir)
    stamp_adapter(adapter_dir, run_id="run-1", dataset_root=ROOT)
    assert weights_hash(adapter_dir) == first
    copy = tmp_path / "copy"
    copy.mkdir()
    tensors = load_file(adapter_dir / "adapter_model.safetensors")
    save_file(tensors, copy / "adapter_model.safetensors", metadata={"other": "metadata"})
    assert weights_hash(copy) == first  # same tensors, other metadata and layout
    tensors["base_model.model.layer.lora_A.weight"][0, 0] += 1e-3
    save_file(tensors, copy / "adapter_model.safetensors")
    assert weights_hash(copy) != first
    tensors = load_file(adapter_dir / "adapter_model.safetensors")
    tensors["renamed"] = tensors.pop("base_model.model.layer.lora_A.weight")
    save_file(tensors, copy / "adapter_model.safetensors")
    assert weights_hash(copy) != first  # names count


def test_read_provenance_notices_tampering(adapter_dir):
    assert read_provenance(adapter_dir)["intact"] is None  # never stamped
    stamp_adapter(adapter_dir, run_id="run-1", dataset_root=ROOT)
    provenance = read_provenance(adapter_dir)
    assert provenance["intact"] is True and provenance["config"]["run_id"] == "run-1"
    file = adapter_dir / "adapter_model.safetensors"
    data = bytearray(file.read_bytes())
    data[-1] ^= 0xFF  # flip a byte of the last tensor
    file.write_bytes(bytes(data))
    assert read_provenance(adapter_dir)["intact"] is False
    (adapter_dir / "adapter_config.json").unlink()
    (adapter_dir / PROVENANCE_FILE).unlink()
    assert read_provenance(adapter_dir)["run_id"] == "run-1"  # the safetensors metadata alone


def test_truncated_file_is_an_error(adapter_dir):
    file = adapter_dir / "adapter_model.safetensors"
    file.write_bytes(file.read_bytes()[:-10])
    with pytest.raises(PolyadaptError, match="truncated"):
        weights_hash(adapter_dir)


def test_errors_name_the_folder(tmp_path):
    with pytest.raises(PolyadaptError, match="no \\*.safetensors"):
        weights_hash(tmp_path)
    (tmp_path / "broken.safetensors").write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00nope!")
    with pytest.raises(PolyadaptError, match="broken.safetensors: not a safetensors file"):
        stamp_adapter(tmp_path, run_id="r", dataset_root=ROOT)


def test_peft_loads_the_stamped_config_silently(adapter_dir):
    from peft import LoraConfig

    stamp_adapter(adapter_dir, run_id="run-1", dataset_root=ROOT)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning, peft's "unexpected keyword" included, fails
        config = LoraConfig.from_pretrained(str(adapter_dir))
    assert (config.r, config.lora_alpha, config.target_modules) == (4, 8, {"layer"})


def test_peft_model_loads_a_stamped_adapter(tmp_path):
    torch = pytest.importorskip("torch")
    from peft import LoraConfig, PeftModel, get_peft_model

    def base():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))

    model = get_peft_model(base(), LoraConfig(r=2, lora_alpha=4, target_modules=["0", "2"], init_lora_weights=False))
    model.save_pretrained(str(tmp_path / "adapter"))
    stamp_adapter(tmp_path / "adapter", run_id="run-1", dataset_root=ROOT)
    probe = torch.randn(3, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = PeftModel.from_pretrained(base(), str(tmp_path / "adapter"))
    with torch.no_grad():
        assert torch.equal(loaded(probe), model(probe))
        assert not torch.equal(loaded(probe), base()(probe))  # the adapter's weights took effect
    assert os.path.exists(tmp_path / "adapter" / "adapter_config.json")
