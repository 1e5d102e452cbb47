"""Which engine answers generation at serving, and the checks made before any base loads.

``polyadapt serve --engine transformers`` (the default) answers in this process with the
task's own servable; ``--engine vllm`` asks the task for one backed by vLLM's multi-LoRA
engine. Either way the server around it is the same: API keys, limits, metrics, the serving
policy and the adapter cache. A task lists the engines it serves with in
:attr:`polyadapt.task.Task.serve_engines`.

:func:`check_engine` runs before anything heavy loads and stops with one line each: a task
that does not serve with the engine (naming the base and the task), vLLM not installed (or
not importable), no CUDA device.
"""

from __future__ import annotations

from collections.abc import Iterable

from polyadapt.errors import PolyadaptError
from polyadapt.types import ServeSpec

#: The engines ``polyadapt serve --engine`` knows.
ENGINES = ("transformers", "vllm")
#: The default engine: the task's servable in this process.
DEFAULT_ENGINE = "transformers"

VLLM_INSTALL = (
    "install it with `pip install vllm` in an environment with CUDA (vllm pins its own torch version, "
    "so a separate virtual environment is the safe place), or serve with --engine transformers"
)


def check_engine(specs: Iterable[ServeSpec], engine: str) -> None:
    """Refuse to start when ``engine`` cannot serve ``specs`` (see the module docs).

    Nothing is loaded here but the engine's package (to see that it imports) and torch.
    """
    if engine not in ENGINES:
        raise PolyadaptError(f"--engine {engine!r} is not an engine; choose one of: {', '.join(ENGINES)}")
    for spec in specs:
        engines = getattr(spec.task, "serve_engines", frozenset({DEFAULT_ENGINE}))
        if engine not in engines:
            raise PolyadaptError(
                f"base {spec.base_name!r} (task {spec.task.name!r}) cannot be served with --engine {engine}: the task "
                f"serves with {', '.join(sorted(engines))}; serve it with --engine {DEFAULT_ENGINE}, or in another "
                "polyadapt serve"
            )
    if engine == "vllm":
        _check_vllm()


def _check_vllm() -> None:
    """vLLM imports, and torch sees a CUDA device."""
    try:  # `import vllm` alone imports little (its names load lazily); LLM pulls in the engine and its kernels
        from vllm import LLM  # noqa: F401  (only to see that it imports)
    except ImportError as exc:
        if exc.name == "vllm":
            raise PolyadaptError(
                f"--engine vllm needs the vllm package, which is not installed: {VLLM_INSTALL}"
            ) from None
        raise PolyadaptError(
            f"--engine vllm: the vllm package is installed but does not import ({exc}); {VLLM_INSTALL}"
        ) from None
    except Exception as exc:  # a CUDA library or torch version vllm was not built for
        raise PolyadaptError(
            f"--engine vllm: the vllm package is installed but does not import ({type(exc).__name__}: {exc}); "
            f"{VLLM_INSTALL}"
        ) from None
    import torch

    if not torch.cuda.is_available():
        raise PolyadaptError(
            "--engine vllm needs an NVIDIA GPU with CUDA, and torch sees none on this machine; "
            "serve with --engine transformers"
        )
