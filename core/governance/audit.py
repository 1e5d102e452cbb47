"""The serving audit log: one JSON line per governance decision, never any content.

Each line is ``{"time", "model", "adapter", "direction", "rule", "action", "count"}``:
when, which base model and adapter, whether a prompt or an output (named by its route) was
scanned, which rule fired (``pii.email``, ``blocked_terms``), what was done and how many
times. Several threads and processes may append to the same file: every line is written
with one ``write`` on a descriptor opened with ``O_APPEND``, under a lock per process.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: ``prompt`` for what reaches a model, ``output`` for what it gives back; a route may name
#: its output more precisely (a lower-case word, such as the kind of output it is).
DIRECTION_PATTERN = re.compile(r"^[a-z][a-z_]{0,31}$")


class AuditLog:
    """Append-only JSON-lines audit log at ``path`` (created with mode 0600 on first write)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def record(
        self,
        adapter: str | None,
        model: str,
        direction: str,
        rule: str,
        action: str,
        count: int = 1,
    ) -> dict[str, Any]:
        """Append one decision and return the entry written.

        ``direction`` is ``"prompt"``, ``"output"`` or a route's name for its output; ``rule`` names
        the policy rule (``"pii.email"``); ``action`` what was done (``"redact"``).
        """
        if not DIRECTION_PATTERN.match(direction):
            raise ValueError(f"direction must be a lower-case word such as 'prompt' or 'output', got {direction!r}")
        if not isinstance(count, int) or count < 0:
            raise ValueError(f"count must be a non-negative integer, got {count!r}")
        entry = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "model": model,
            "adapter": adapter,
            "direction": direction,
            "rule": rule,
            "action": action,
            "count": count,
        }
        data = (json.dumps(entry, ensure_ascii=True) + "\n").encode("ascii")
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                written = os.write(fd, data)
                if written != len(data):  # pragma: no cover - only on a full disk
                    raise OSError(f"{self.path}: short write to the audit log ({written} of {len(data)} bytes)")
            finally:
                os.close(fd)
        return entry

    def read(self) -> list[dict[str, Any]]:
        """Every entry so far, oldest first (an absent file reads as empty)."""
        try:
            text = self.path.read_bytes().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return []
        entries, damaged = [], []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entries.append(json.loads(line))
            except ValueError:
                damaged.append(number)
        if damaged:  # a write torn by a crash, or an edit: the rest of the log still counts
            shown = ", ".join(map(str, damaged[:5])) + (" ..." if len(damaged) > 5 else "")
            log.warning("%s: %d damaged line(s) skipped (line %s)", self.path, len(damaged), shown)
        return entries
