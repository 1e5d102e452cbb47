"""Merge an adapter into a plain openai-whisper checkpoint (no polyadapt or peft needed to load it).

The result is what :func:`whisper.load_model` reads: ``{"dims": ..., "model_state_dict": ...}``
saved with ``torch.save``; every LoRA update is folded into the base weights, so the
merged model gives the logits of base + adapter. It needs nothing from a run's config.
The file gets the mode the umask gives a new file, and the adapter's model card goes beside
it as ``README.md`` (with how to load the export), when the folder holds no other README.

Plain whisper's ``model.transcribe("clip.wav")`` runs the ``ffmpeg`` program to read the
file; give it an array instead (``soundfile.read(path, dtype="float32")``, 16 kHz mono) and
no ffmpeg is needed (see the plugin's README).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from polyadapt.errors import PolyadaptError
from polyadapt.lineage.card import write_export_card
from polyadapt.pretrained import refusing_unsafe_pickles


def merge_adapter(base_checkpoint: Path | str, adapter_dir: Path | str, output: Path | str) -> Path:
    """Write ``base_checkpoint`` + the peft adapter in ``adapter_dir`` merged to ``output`` (.pt).

    ``base_checkpoint`` is a whisper checkpoint file, a CTranslate2 (faster-whisper) folder
    (converted, see :mod:`polyadapt_speech.ct2`) or, online, a whisper model name. The file
    is written atomically (a temporary file renamed into place) with the mode a plain
    ``open`` would give it.
    """
    import whisper
    from peft import PeftModel

    from polyadapt_speech.model import check_loadable, whisper_cache

    check_loadable(Path(adapter_dir))
    if Path(base_checkpoint).is_dir() and (Path(base_checkpoint) / "model.bin").is_file():
        from polyadapt_speech.ct2 import converted_checkpoint

        base_checkpoint = converted_checkpoint(base_checkpoint)
    with refusing_unsafe_pickles(base_checkpoint, what="base checkpoint"):
        base = whisper.load_model(str(base_checkpoint), device="cpu", download_root=str(whisper_cache())).float()
    expected = set(base.state_dict())
    with refusing_unsafe_pickles(adapter_dir, what="adapter"):
        merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    state = {k: v.detach().contiguous() for k, v in merged.state_dict().items()}
    if set(state) != expected:
        raise PolyadaptError(f"merging {adapter_dir} left unexpected weights: {sorted(set(state) ^ expected)[:5]}")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".tmp")
    os.close(handle)
    try:
        torch.save({"dims": asdict(merged.dims), "model_state_dict": state}, tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it owner-only
        os.replace(tmp, output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    write_export_card(adapter_dir, output, library_name="openai-whisper", how_to_load=_HOW_TO_LOAD.format(output.name))
    return output


_HOW_TO_LOAD = """Load it with plain openai-whisper (no polyadapt, no peft):

```python
import soundfile, whisper
model = whisper.load_model("{}")
audio, rate = soundfile.read("clip.wav", dtype="float32")  # 16 kHz mono; no ffmpeg needed
print(model.transcribe(audio)["text"])
```

`model.transcribe("clip.wav")` (a path) needs the `ffmpeg` program on the PATH."""


def _umask() -> int:
    """The process's umask (reading it means setting it; it is put back at once)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


def export_run(run: Any, adapter: Any, fmt: str, options: Any, folder: Path) -> dict[str, Any]:
    """``polyadapt export --format merged`` of a speech run: ``RUN.pt`` in ``folder``, the run's
    base (``base_model.id``) with the adapter merged (:func:`merge_adapter`), and its card."""
    from polyadapt.errors import ConfigError
    from polyadapt_speech.model import checkpoint_path

    if fmt != "merged":
        raise ConfigError(f"--format {fmt!r}: a speech run exports peft or merged")
    if options.get("quant"):
        raise ConfigError("--quant means nothing to a speech export (the checkpoint keeps the base's fp32 weights)")
    output = merge_adapter(checkpoint_path(run.config.base_model), adapter.path, Path(folder) / f"{run.id}.pt")
    return {"file": output.name, "library": "openai-whisper"}
