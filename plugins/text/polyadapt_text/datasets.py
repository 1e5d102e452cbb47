"""The general-English text sets the text plugin ships (for the forgetting check and replay)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def builtin_path(name: str) -> Path:
    """A text file shipped with the plugin (``general_eval`` or ``general_replay``)."""
    return Path(str(resources.files("polyadapt_text") / "data" / f"{name}.jsonl"))


#: The licence of the general-English sets shipped with the plugin (written for polyadapt).
BUILTIN_LICENCE = "CC0-1.0"
