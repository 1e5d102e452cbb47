"""How ``lineage show`` words the licences and copyright holders a dataset manifest records.

A loader that reads licences sets :attr:`polyadapt.modalities.records.Dataset.licensing`;
the manifest keeps it as it is: for one source, its licence, where it came from, the
engine, the engine's rule and score, the holders, authors and per-file findings; for several,
``{"repositories": [{"label": ..., <the same>}, ...]}``.
"""

from __future__ import annotations

from typing import Any

#: The most holders named on one line; the rest are counted.
MAX_HOLDERS = 5


def _names(label: str, names: list[str]) -> str | None:
    if not names:
        return None
    shown = ", ".join(names[:MAX_HOLDERS])
    more = len(names) - MAX_HOLDERS
    return f"{label} {shown}" + (f" and {more} more" if more > 0 else "")


def licensing_line(entry: dict[str, Any]) -> str:
    """One source's licence, how it was found, and its copyright holders and authors."""
    label = f"{entry['label']}: " if entry.get("label") else ""
    how = [entry.get("source") or "no licence found", f"engine {entry.get('engine') or '?'}"]
    if entry.get("rule"):
        how.append(f"rule {entry['rule']}")
    if entry.get("score") is not None:
        how.append(f"score {entry['score']:g}")
    files = entry.get("files") or {}
    own = sum(1 for finding in files.values() if finding.get("licence"))
    parts = [f"{label}licence {entry.get('licence') or 'none'} ({', '.join(how)})"]
    if own:
        parts.append(f"{own} files with a licence of their own")
    parts.append(_names("copyright", entry.get("holders") or []) or "no copyright holder found")
    authors = _names("authors", entry.get("authors") or [])
    if authors:
        parts.append(authors)
    return "; ".join(parts)


def licensing_lines(licensing: dict[str, Any] | None) -> list[str]:
    """The lines ``lineage show`` prints under a dataset (none when nothing was recorded)."""
    if not licensing:
        return []
    entries = licensing.get("repositories") if "repositories" in licensing else [licensing]
    return [licensing_line(entry) for entry in entries or [] if isinstance(entry, dict)]
