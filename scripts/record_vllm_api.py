"""Record the parts of vLLM's API that ``--engine vllm`` uses, read from an unpacked vLLM wheel.

Usage (no vLLM install, no GPU: the wheel's Python sources are parsed, never imported)::

    pip download --no-deps vllm==0.11.0 -d /tmp/vllm_wheels
    mkdir -p /tmp/vllm_src/0.11.0 && unzip -q /tmp/vllm_wheels/vllm-0.11.0-*.whl '*.py' -d /tmp/vllm_src/0.11.0
    python scripts/record_vllm_api.py /tmp/vllm_src/0.11.0 [/tmp/vllm_src/0.34.0 ...] > tests/data/vllm_api.json

It writes, per version: the parameters of ``LLM.__init__`` and ``LLM.generate`` (name, kind,
default as source text), the fields of ``EngineArgs``, ``SamplingParams``, ``LoRARequest``,
``TokensPrompt``, ``Logprob`` and ``CompletionOutput`` (in order, with defaults), the
parameters of ``RequestOutput.__init__``, the LoRA methods of the V1 ``LLMEngine`` with the
attributes it sets, the attributes ``LLM.__init__`` sets, and the ranks ``LoRAConfig`` accepts
for ``max_lora_rank``. tests/test_vllm_api_contract.py checks tests/fake_vllm.py and
polyadapt_text.vllm_engine against that record.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path
from typing import Any

#: The V1 ``LLMEngine`` methods the servable calls.
ENGINE_METHODS = ("add_lora", "remove_lora", "list_loras", "has_unfinished_requests", "abort_request")


def _tree(root: Path, relative: str) -> ast.Module:
    return ast.parse((root / "vllm" / relative).read_text(encoding="utf-8"))


def _class(tree: ast.Module, name: str) -> ast.ClassDef:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node
    raise LookupError(f"no class {name}")


def _method(cls: ast.ClassDef, name: str) -> ast.FunctionDef:
    for node in cls.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    raise LookupError(f"no method {cls.name}.{name}")


def parameters(function: ast.FunctionDef) -> list[dict[str, Any]]:
    """A function's parameters (``self`` left out): name, kind and default source text."""
    args = function.args
    positional = [*args.posonlyargs, *args.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    rows = [
        {"name": a.arg, "kind": "positional", "default": ast.unparse(d) if d is not None else None}
        for a, d in zip(positional, defaults)
    ]
    rows += [
        {"name": a.arg, "kind": "keyword", "default": ast.unparse(d) if d is not None else None}
        for a, d in zip(args.kwonlyargs, args.kw_defaults)
    ]
    if args.vararg:
        rows.append({"name": args.vararg.arg, "kind": "var_positional", "default": None})
    if args.kwarg:
        rows.append({"name": args.kwarg.arg, "kind": "var_keyword", "default": None})
    return [row for row in rows if row["name"] != "self"]


def fields(cls: ast.ClassDef) -> list[dict[str, Any]]:
    """A dataclass / msgspec Struct / TypedDict's annotated fields, in order, with defaults."""
    rows = []
    for node in cls.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            annotation = ast.unparse(node.annotation)
            if annotation.startswith("ClassVar"):
                continue
            default = ast.unparse(node.value) if node.value is not None else None
            rows.append({"name": node.target.id, "default": default, "annotation": annotation})
    return rows


def self_attributes(function: ast.FunctionDef) -> list[str]:
    """The ``self.X`` a method assigns."""
    names = []
    for node in ast.walk(function):
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        for target in targets:
            if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self":
                names.append(target.attr)
    return sorted(set(names))


def lora_ranks(tree: ast.Module) -> list[int]:
    """The ranks ``LoRAConfig`` accepts: ``MaxLoRARanks = Literal[...]`` or ``possible_max_ranks = (...)``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name == "MaxLoRARanks" and isinstance(node.value, ast.Subscript):
                return [
                    e.value
                    for e in ast.walk(node.value.slice)
                    if isinstance(e, ast.Constant) and isinstance(e.value, int)
                ]
            if name == "possible_max_ranks":
                return list(ast.literal_eval(node.value))
    raise LookupError("no MaxLoRARanks / possible_max_ranks in vllm/config/lora.py")


def class_fields(tree: ast.Module, name: str) -> list[dict[str, Any]]:
    """``fields`` of class ``name``, after those of its bases defined in the same module."""
    cls = _class(tree, name)
    inherited: list[dict[str, Any]] = []
    local = {node.name for node in tree.body if isinstance(node, ast.ClassDef)}
    for base in cls.bases:
        if isinstance(base, ast.Name) and base.id in local:
            inherited += class_fields(tree, base.id)
    return inherited + fields(cls)


def _defining(root: Path, name: str, candidates: tuple[str, ...]) -> ast.Module:
    for relative in candidates:
        path = root / "vllm" / relative
        if path.is_file() and f"class {name}(" in path.read_text(encoding="utf-8"):
            return _tree(root, relative)
    raise LookupError(f"no class {name} in {candidates}")


def exports(tree: ast.Module) -> list[str]:
    """A package's ``__all__``."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return sorted(ast.literal_eval(node.value))
    return []


def _counter_file(root: Path) -> str:
    for relative in ("utils/counter.py", "utils/__init__.py"):
        path = root / "vllm" / relative
        if path.is_file() and "class Counter" in path.read_text(encoding="utf-8"):
            return relative
    raise LookupError("no class Counter in vllm/utils")


def record(root: Path) -> dict[str, Any]:
    """Everything the contract test compares, read from the unpacked wheel at ``root``."""
    llm = _class(_tree(root, "entrypoints/llm.py"), "LLM")
    engine = _class(_tree(root, "v1/engine/llm_engine.py"), "LLMEngine")
    outputs = _tree(root, "outputs.py")
    counter = _class(_tree(root, _counter_file(root)), "Counter")
    version = next(iter((root).glob("vllm-*.dist-info")), None)
    return {
        "version": version.name.removeprefix("vllm-").removesuffix(".dist-info") if version else root.name,
        "LLM.__init__": parameters(_method(llm, "__init__")),
        "LLM.generate": parameters(_method(llm, "generate")),
        "LLM attributes": self_attributes(_method(llm, "__init__")),
        "Counter attributes": self_attributes(_method(counter, "__init__")),
        "EngineArgs": [row["name"] for row in fields(_class(_tree(root, "engine/arg_utils.py"), "EngineArgs"))],
        "SamplingParams": fields(_class(_tree(root, "sampling_params.py"), "SamplingParams")),
        "LoRARequest": fields(_class(_tree(root, "lora/request.py"), "LoRARequest")),
        "TokensPrompt": class_fields(
            _defining(root, "TokensPrompt", ("inputs/data.py", "inputs/llm.py")), "TokensPrompt"
        ),
        "vllm exports": exports(_tree(root, "__init__.py")),
        "vllm.inputs exports": exports(_tree(root, "inputs/__init__.py")),
        "Logprob": fields(_class(_tree(root, "logprobs.py"), "Logprob")),
        "CompletionOutput": fields(_class(outputs, "CompletionOutput")),
        "RequestOutput.__init__": parameters(_method(_class(outputs, "RequestOutput"), "__init__")),
        "LLMEngine methods": {name: parameters(_method(engine, name)) for name in ENGINE_METHODS},
        "LLMEngine attributes": self_attributes(_method(engine, "__init__")),
        "max_lora_rank values": lora_ranks(_tree(root, "config/lora.py")),
    }


def main(argv: list[str]) -> None:
    """Print the JSON record of every unpacked wheel named on the command line."""
    if not argv:
        raise SystemExit("usage: record_vllm_api.py UNPACKED_WHEEL_DIR [...]  (see the module docs)")
    records = [record(Path(path)) for path in argv]
    print(json.dumps({"versions": records}, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
