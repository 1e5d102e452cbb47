"""Loading a pretrained base by name, with one clear line when it cannot be had.

Plugins load their bases with a library's ``from_pretrained`` (transformers and the like).
Given a hub id on a machine without network, or a folder that holds no model, those raise
long multi-line errors after retrying for a while. :func:`load_pretrained` turns them into
one :class:`~polyadapt.errors.ConfigError` that names the config field, says what was
wrong in a line, and what to give instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from polyadapt.errors import ConfigError

T = TypeVar("T")


def cache_root() -> Path:
    """Where files fetched or converted once are kept (converted bases, model pipelines):
    ``$POLYADAPT_CACHE``, else ``~/.cache/polyadapt``. The example fetch scripts follow the
    same rule without importing polyadapt, since they run before it is installed."""
    return Path(os.environ.get("POLYADAPT_CACHE", Path.home() / ".cache" / "polyadapt"))


#: What every base-model error ends with: the three kinds of value that work.
INSTEAD = (
    "give a local folder with config.json and weights (or a .gguf file), or a hub id that is in the "
    "local Hugging Face cache or reachable from this machine"
)


def first_line(error: BaseException) -> str:
    """The first non-blank line of ``error``'s message (libraries append pages of advice)."""
    text = str(error).strip()
    line = next((line.strip() for line in text.splitlines() if line.strip()), type(error).__name__)
    return line.rstrip(".")


def looks_like_hub_id(source: str) -> bool:
    """Whether ``source`` reads as ``org/name`` rather than a path on this machine."""
    return not Path(source).expanduser().exists() and source.count("/") == 1 and not source.startswith((".", "/", "~"))


def load_pretrained(
    loader: Callable[..., T], source: str, *, field: str = "base_model.id", shown: str | None = None, **kwargs: Any
) -> T:
    """``loader(source, **kwargs)``; a :class:`ConfigError` naming ``field`` in one line when the
    source is not a model (a missing folder, a folder of data, a hub id that cannot be reached).

    ``shown`` is how the user wrote the source (the config's value) when ``source`` is a
    converted or cached copy of it.
    """
    name = shown or source
    path = Path(source).expanduser()
    if not looks_like_hub_id(source) and not path.exists():
        raise ConfigError(f"{field}: {name!r} is neither a folder or file on this machine nor a hub id; {INSTEAD}")
    try:
        return loader(source, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        if looks_like_hub_id(source):
            reason = f"hub id {name!r} could not be loaded (offline, or not in the local cache): {first_line(exc)}"
        else:
            reason = f"{name!r} holds no model that can be loaded: {first_line(exc)}"
        raise ConfigError(f"{field}: {reason}; {INSTEAD}") from None
