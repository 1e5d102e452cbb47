"""The adapters loaded on one base, bounded by count and bytes, least recently used out first.

:class:`AdapterCache` loads an adapter on its first use and, when one more would take the
base past ``max_adapters`` adapters or ``max_bytes`` of adapter weights (the sizes of the
adapter folder's ``*.safetensors`` files), first unloads the least recently used one that
no running batch is using (the servable's optional ``unload_adapter(name)``). A servable
without ``unload_adapter`` keeps every adapter it loads (logged once).

A batch whose adapters cannot all be loaded at once is answered in parts
(:meth:`AdapterCache.groups`), so the bounds hold even then. Only an adapter the cache
cannot evict (in use by another batch on the base, or bigger than ``max_bytes`` alone)
takes the base past them, until a load after it is released.

The figures a monitor reads (attributes): ``loads``, ``evictions`` and ``hits`` (a batch
found an adapter loaded: once per adapter per batch), ``last_load_s`` and ``load_seconds``
(the last and the total time spent loading), ``last_evict_s`` and ``evict_seconds``
likewise, ``loaded_bytes()`` and ``loaded_names()``; ``on_event`` is told each ``"hit"``,
``"load"`` and ``"eviction"`` as it happens.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from polyadapt.errors import PolyadaptError
from polyadapt.types import Servable

log = logging.getLogger(__name__)


def adapter_bytes(path: Path) -> int:
    """Bytes of adapter weights in the folder ``path`` (its ``*.safetensors`` files; 0 if none)."""
    try:
        return sum(file.stat().st_size for file in Path(path).rglob("*.safetensors") if file.is_file())
    except OSError:
        return 0


class AdapterCache:
    """LRU bookkeeping of the adapters loaded on one servable (see the module docstring).

    ``paths`` maps adapter names to folders; it is read at each load, so names added to it
    later (the registry follower's) are served too. Adapters the servable had loaded
    before, and has no path for here, are neither counted nor evicted.

    Thread-safe: the batchers of one base call it from their worker threads.
    """

    def __init__(
        self,
        servable: Servable,
        paths: Mapping[str, Path],
        *,
        max_adapters: int,
        max_bytes: int | None = None,
        on_event: Callable[[str], None] | None = None,
    ):
        self.servable = servable
        self.on_event = on_event
        self.paths = paths
        self.max_adapters = max_adapters
        self.max_bytes = max_bytes
        self.loads = 0
        self.evictions = 0
        self.hits = 0
        self.last_load_s: float | None = None
        self.load_seconds = 0.0
        self.last_evict_s: float | None = None
        self.evict_seconds = 0.0
        self._lru: OrderedDict[str, int] = OrderedDict()  # name → bytes, least recently used first
        self._in_use: dict[str, int] = {}
        self._lock = threading.RLock()
        self._warned = False

    # -- figures ---------------------------------------------------------------------------

    def loaded_names(self) -> list[str]:
        """The adapters the cache holds loaded, least recently used first."""
        with self._lock:
            return list(self._lru)

    def loaded_bytes(self) -> int:
        """Bytes of adapter weights the cache holds loaded."""
        with self._lock:
            return sum(self._lru.values())

    @property
    def can_evict(self) -> bool:
        """Whether the servable can unload adapters (else every adapter stays loaded)."""
        return callable(getattr(self.servable, "unload_adapter", None))

    # -- planning --------------------------------------------------------------------------

    def _size(self, name: str) -> int:
        if name in self._lru:
            return self._lru[name]
        path = self.paths.get(name)
        return adapter_bytes(path) if path is not None else 0

    def groups(self, adapters: Sequence[str | None]) -> list[list[int]]:
        """Indices of ``adapters`` (one per request; None: the base) in parts whose adapters
        fit the bounds together, in first-seen order; one part when they all fit (or nothing
        can be evicted anyway)."""
        distinct = [name for name in dict.fromkeys(adapters) if name is not None]
        if not self.can_evict or len(distinct) <= 1:
            return [list(range(len(adapters)))]
        part_of: dict[str, int] = {}
        part, count, size = 0, 0, 0
        for name in distinct:
            weight = self._size(name)
            too_many = count + 1 > self.max_adapters
            too_big = self.max_bytes is not None and size + weight > self.max_bytes
            if count and (too_many or too_big):
                part, count, size = part + 1, 0, 0
            part_of[name] = part
            count, size = count + 1, size + weight
        parts: list[list[int]] = [[] for _ in range(part + 1)]
        for index, adapter in enumerate(adapters):
            parts[part_of[adapter] if adapter is not None else 0].append(index)
        return [indices for indices in parts if indices]

    # -- use -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def using(self, adapters: Sequence[str | None]) -> Iterator[dict[str, Exception]]:
        """Load the ``adapters`` (one per request; None: the base) and keep them from eviction
        inside the block; yields name → the error of each adapter that could not be loaded."""
        names = [name for name in dict.fromkeys(adapters) if name is not None]
        problems: dict[str, Exception] = {}
        with self._lock:
            for name in names:
                self._in_use[name] = self._in_use.get(name, 0) + 1
            for name in names:
                problem = self._ensure(name)
                if problem is not None:
                    problems[name] = problem
        try:
            yield problems
        finally:
            with self._lock:
                for name in names:
                    self._in_use[name] -= 1
                    if not self._in_use[name]:
                        del self._in_use[name]

    def _event(self, event: str) -> None:
        if self.on_event is not None:
            self.on_event(event)

    def _ensure(self, name: str) -> Exception | None:
        """Make ``name`` loaded, evicting first if need be."""
        path = self.paths.get(name)
        if name in self.servable.adapter_names():
            self.hits += 1
            self._event("hit")
            if path is not None:
                if name not in self._lru:  # loaded by someone else: count it from now on
                    self._lru[name] = adapter_bytes(path)
                self._lru.move_to_end(name)
            return None
        self._lru.pop(name, None)  # unloaded behind the cache's back
        if path is None:
            return PolyadaptError(f"adapter {name!r} is not served on {self.servable.base_name!r}")
        size = adapter_bytes(path)
        self._make_room(size, keep=name)
        started = time.perf_counter()
        try:
            self.servable.load_adapter(name, path)
        except Exception as exc:
            return exc
        self.last_load_s = time.perf_counter() - started
        self.load_seconds += self.last_load_s
        self.loads += 1
        self._lru[name] = size
        self._event("load")
        return None

    def _over(self, incoming: int) -> bool:
        count_over = len(self._lru) + 1 > self.max_adapters
        bytes_over = self.max_bytes is not None and sum(self._lru.values()) + incoming > self.max_bytes
        return count_over or bytes_over

    def _make_room(self, incoming: int, *, keep: str) -> None:
        """Unload least recently used adapters until one of ``incoming`` bytes fits."""
        if not self._over(incoming):
            return
        if not self.can_evict:
            if not self._warned:
                self._warned = True
                log.warning(
                    "the servable of %r cannot unload adapters (no unload_adapter): every adapter it loads "
                    "stays loaded, beyond max_adapters=%d",
                    self.servable.base_name,
                    self.max_adapters,
                )
            return
        for victim in list(self._lru):
            if not self._over(incoming):
                return
            if victim == keep or victim in self._in_use:
                continue
            started = time.perf_counter()
            try:
                self.servable.unload_adapter(victim)
            except Exception:  # noqa: BLE001 - a failed unload keeps the adapter; serving goes on
                log.exception("could not unload adapter %r from %r", victim, self.servable.base_name)
                continue
            self.last_evict_s = time.perf_counter() - started
            self.evict_seconds += self.last_evict_s
            self.evictions += 1
            del self._lru[victim]
            self._event("eviction")
        if self._over(incoming):
            log.warning(
                "adapters in use on %r take it past its bounds (max_adapters=%d, max_adapter_bytes=%s) "
                "until the next load after they are released",
                self.servable.base_name,
                self.max_adapters,
                self.max_bytes,
            )
