"""Loading a pretrained base by name, with one clear line when it cannot be had.

Plugins load their bases with a library's ``from_pretrained`` (transformers and the like).
Given a hub id on a machine without network, or a folder that holds no model, those raise
long multi-line errors after retrying for a while. :func:`load_pretrained` turns them into
one :class:`~polyadapt.errors.ConfigError` that names the config field, says what was
wrong in a line, and what to give instead.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from polyadapt.errors import ConfigError, PolyadaptError

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
        with refusing_unsafe_pickles(path, what=f"{field}: {name!r}", error=ConfigError):
            return loader(source, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        if looks_like_hub_id(source):
            reason = f"hub id {name!r} could not be loaded (offline, or not in the local cache): {first_line(exc)}"
        else:
            reason = f"{name!r} holds no model that can be loaded: {first_line(exc)}"
        raise ConfigError(f"{field}: {reason}; {INSTEAD}") from None


#: Weight files that are pickles (``torch.save``); libraries read them with ``torch.load``.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def pickle_files(path: Path | str) -> list[Path]:
    """``path`` if it is a file, else the pickled weight files in the folder ``path`` and its
    subfolders (a diffusers pipeline keeps its weights in ``unet/``, ``vae/``...)."""
    path = Path(path).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        found = [*path.glob("*"), *path.glob("*/*")]
        return sorted(p for p in found if p.suffix in PICKLE_SUFFIXES and p.is_file())
    return []


@contextlib.contextmanager
def refusing_unsafe_pickles(
    path: Path | str, *, what: str | None = None, error: type[PolyadaptError] = PolyadaptError
) -> Iterator[None]:
    """Turn a library's refusal of a pickle that holds more than tensors into one clear error.

    transformers, peft, diffusers and whisper read ``.bin``/``.pt`` weights with
    ``torch.load(weights_only=True)``, which stops, without running it, at a pickle that
    would call code; its error is a page that suggests ``weights_only=False``. This names
    the file(s) under ``path`` and says what to do instead. ``what`` starts the message
    (default: ``path``).
    """
    try:
        yield
    except Exception as exc:
        refusal = _unpickling_error(exc)
        if refusal is None:
            raise
        files = ", ".join(str(p) for p in pickle_files(path)) or f"a pickled weight file under {path}"
        if "Weights only load failed" not in str(refusal):  # not code, just bytes that are no pickle
            raise error(f"{what or path}: {files} is not a readable weight file ({first_line(refusal)})") from None
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(refusal))
        calls = f" (it calls {found.group(1)})" if found else ""
        raise error(
            f"{what or path}: refused {files}: it is a pickle that holds more than tensors{calls}, and "
            "loading it could run code. Use a copy that holds only tensors (a .safetensors file where the "
            "loader takes one), or get the files again from a source you trust"
        ) from None


def _unpickling_error(exc: BaseException) -> pickle.UnpicklingError | None:
    """The unpickling error behind ``exc``: diffusers, for one, re-raises it as an OSError."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, pickle.UnpicklingError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
