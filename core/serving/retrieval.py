"""Retrieval at serving: passages of a local index added to chat requests, sources returned.

An adapter's run config may name ``retrieval: {index, k}``
(:class:`polyadapt.config.RetrievalConfig`): every chat request to that adapter then gets the
``k`` passages of the index that best match its last user message, added to the messages by
:func:`polyadapt.retrieval.prompting.with_passages` (one system message listing the numbered
passages and their sources). A request may choose for itself with a body field ``retrieval``:

- ``{"index": "handbook", "k": 3}``: that index (``k`` defaults to the adapter's, else 4);
- ``{"k": 2}`` or ``true``: the adapter's own index (a 400 when it has none);
- ``false`` or ``null``: no retrieval for this request.

The answer lists what was added: non-streamed, a top-level ``sources`` field
``[{passage_id, source, score}]`` (an empty list when retrieval ran and found nothing); streamed,
the same field on the first chunk. Requests without retrieval answer exactly as before (no
``sources`` field). An index a served run names that does not exist stops the server at start;
an unknown index in a request is a 400 naming it. The passages are governed text (redacted when
the index was built) and the whole prompt still passes the serving policy.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from polyadapt.errors import PolyadaptError
from polyadapt.serving.metrics import note_retrieval
from polyadapt.serving.openai_compat import Plan
from polyadapt.serving.schemas import ApiError

if TYPE_CHECKING:  # pragma: no cover
    from polyadapt.config import RetrievalConfig
    from polyadapt.retrieval.index import Index
    from polyadapt.retrieval.passage import Passage
    from polyadapt.types import ServeSpec

#: The body field a chat request chooses retrieval with.
FIELD = "retrieval"
DEFAULT_K = 4
MAX_K = 50


class RetrievalOption(BaseModel):
    """A request's ``retrieval`` object: which index and how many passages."""

    model_config = ConfigDict(extra="forbid")

    index: str | None = Field(None, min_length=1)
    k: int | None = Field(None, ge=1, le=MAX_K)


@dataclass(frozen=True)
class Choice:
    """The retrieval one request gets: the index name and how many passages."""

    index: str
    k: int


@dataclass(frozen=True)
class Retrieved:
    """What a search found for one request."""

    choice: Choice
    passages: list[Passage]
    seconds: float

    def sources(self) -> list[dict[str, Any]]:
        """The ``sources`` field of the answer."""
        return [passage.reference() for passage in self.passages]


def run_config_of(adapter_folder: Path) -> Path:
    """The resolved config of the run an adapter folder belongs to (``<run>/config.yaml``)."""
    from polyadapt.runner import CONFIG_FILE

    return Path(adapter_folder).parent / CONFIG_FILE


def adapter_default(adapter_folder: Path) -> RetrievalConfig | None:
    """The ``retrieval`` section of the run config of ``adapter_folder`` (None when it has none
    or the folder is not inside a run folder)."""
    from polyadapt.config import parse_config
    from polyadapt.yamlfile import read_text

    path = run_config_of(adapter_folder)
    if not path.is_file():
        return None
    return parse_config(read_text(path, "run config"), str(path)).retrieval


def last_user_text(messages: list[dict[str, Any]]) -> str:
    """The text retrieval searches with: the last user message (else the last message)."""
    for message in reversed(messages):
        if message.get("role") == "user" and str(message.get("content") or "").strip():
            return str(message["content"])
    return str(messages[-1].get("content") or "") if messages else ""


class RetrievalService:
    """The indexes a server searches and each adapter's default (see the module docstring).

    ``root`` is the state folder the indexes live in (default: the project's). Defaults are
    found from each adapter folder's run config on first use (adapters the registry adds
    later included) and kept; indexes are opened once and shared between requests.
    """

    def __init__(self, root: Path | None = None):
        self.root = root
        self._defaults: dict[Path, Choice | None] = {}
        self._indexes: dict[str, Index] = {}
        self._lock = threading.Lock()

    def default_for(self, folder: Path | None) -> Choice | None:
        """The retrieval the run of adapter ``folder`` asks for (None for the base, or none)."""
        if folder is None:
            return None
        key = Path(folder).resolve()
        if key not in self._defaults:
            config = adapter_default(key)
            self._defaults[key] = Choice(config.index, config.k) if config is not None else None
        return self._defaults[key]

    def index(self, name: str) -> Index:
        """Index ``name``, opened once; :class:`~polyadapt.errors.ConfigError` when it does not exist."""
        with self._lock:
            if name not in self._indexes:
                from polyadapt.retrieval.index import open_index

                self._indexes[name] = open_index(name, self.root)
            return self._indexes[name]

    def check_specs(self, specs: list[ServeSpec]) -> None:
        """Open the index of every served adapter whose run asks for retrieval: a missing one
        stops the server at start with a message naming the adapter, the index and the fix."""
        for spec in specs:
            for name, folder in spec.adapters.items():
                choice = self.default_for(folder)
                if choice is None:
                    continue
                try:
                    self.index(choice.index)
                except PolyadaptError as exc:
                    raise PolyadaptError(
                        f"adapter {spec.base_name}:{name} (run config {run_config_of(folder)}, retrieval.index): {exc}"
                    ) from None

    def choose(self, value: Any, present: bool, folder: Path | None) -> Choice | None:
        """The retrieval for a request whose ``retrieval`` field is ``value`` (``present``:
        whether the field was sent) to the adapter in ``folder``; 400 for a bad value."""
        default = self.default_for(folder)
        if not present:
            return default
        if value is None or value is False:
            return None
        if value is True:
            value = {}
        try:
            option = RetrievalOption.model_validate(value)
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(p) for p in problem.get("loc", ()))
            raise ApiError(
                400,
                f"retrieval{'.' + where if where else ''}: {problem.get('msg', 'invalid')}; send "
                '{"index": NAME, "k": N}, true (the model\'s own index) or false (none)',
                param=f"{FIELD}.{where}" if where else FIELD,
            ) from None
        name = option.index or (default.index if default else None)
        if name is None:
            raise ApiError(
                400,
                'retrieval: this model has no index of its own; name one: {"index": NAME} (see `polyadapt index list`)',
                param=f"{FIELD}.index",
            )
        k = option.k or (default.k if default and default.index == name else DEFAULT_K)
        return Choice(name, k)

    async def retrieve(self, choice: Choice, messages: list[dict[str, Any]]) -> Retrieved:
        """Search ``choice``'s index with the conversation's last user message (in a worker
        thread); 400 naming the index when it does not exist."""
        try:
            index = self.index(choice.index)
        except PolyadaptError as exc:
            raise ApiError(400, f"retrieval.index: {exc}", param=f"{FIELD}.index", code="index_not_found") from None
        started = time.perf_counter()
        passages = await asyncio.to_thread(index.search, last_user_text(messages), choice.k)
        return Retrieved(choice, passages, time.perf_counter() - started)


def take_field(body: BaseModel) -> tuple[Any, bool]:
    """Remove the ``retrieval`` field from ``body``'s extra fields (so the option check does not
    refuse it): its value and whether it was sent."""
    extra = body.model_extra
    if extra is None or FIELD not in extra:
        return None, False
    return extra.pop(FIELD), True


def with_retrieved(plan: Plan, retrieved: Retrieved) -> Plan:
    """``plan`` with the passages added to every request's messages and ``sources`` to its answer."""
    from polyadapt.retrieval.prompting import with_passages

    requests = [replace(r, messages=with_passages(r.messages or [], retrieved.passages)) for r in plan.requests]
    note_retrieval(retrieved.choice.index, len(retrieved.passages), retrieved.seconds)
    return replace(plan, requests=requests, extra={**plan.extra, "sources": retrieved.sources()})
