"""The direction of the layers: the core and the shared data layer know no plugin and (almost)
no modality, so that a plugin written from the docs gets everything a first-party one does."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The first-party plugins' import names.
PLUGIN_PACKAGE = re.compile(r"^polyadapt_\w+")
MODALITY_WORDS = re.compile(r"whisper|diffusers|transcri|speech", re.IGNORECASE)


def _imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_core_and_modalities_import_no_plugin():
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for folder in ("core", "modalities")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for name in _imported_modules(path)
        if PLUGIN_PACKAGE.match(name)
    ]
    assert offenders == []


def test_core_names_at_most_five_modality_words():
    lines = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sorted((ROOT / "core").rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1)
        if MODALITY_WORDS.search(line)
    ]
    assert len(lines) <= 5, "\n".join(lines)
