"""A Hugging Face model card for an adapter, filled from the run's lineage.

:func:`build_card` reads only what a finished run folder holds (``run.json``,
``config.yaml``, ``manifests/*.json``, ``metrics.json`` and the adapter's provenance), so it
knows no modality. The card is ``README.md`` in the adapter folder (replacing the empty
template PEFT writes) with YAML front matter a hub renders (``library_name``,
``base_model``, ``license``, ``tags``, ``datasets`` by manifest hash and a ``model-index``
holding the evaluation, base and adapted) and a body a reviewer reads: intended use, the
data, what governance did (counts only, never values), training, evaluation with the
general-capability guard, limitations and the command that reproduces the run.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from polyadapt.errors import PolyadaptError
from polyadapt.fileio import atomic_write_text, read_json_file

CARD_FILE = "README.md"
#: The line every card polyadapt writes carries: a card without it is someone else's.
CARD_MARK = "<!-- written by polyadapt from the run's lineage; `polyadapt card RUN` prints it again -->"
#: The HF ids of licences whose SPDX id, lower-cased, is also the hub's id.
_HUB_LICENCES = {
    "apache-2.0", "mit", "cc0-1.0", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0", "bsd-2-clause",
    "bsd-3-clause", "gpl-3.0", "lgpl-3.0", "mpl-2.0", "openrail", "unlicense", "agpl-3.0",
}  # fmt: skip


def _read_optional_json(path: Path, what: str) -> Any:
    return read_json_file(path, what) if path.is_file() else None


def _run_facts(run_dir: Path) -> dict[str, Any]:
    """Everything the card reads from ``run_dir``; a clear error when it is not a run folder."""
    run_dir = Path(run_dir)
    record_path = run_dir / "run.json"
    if not record_path.is_file():
        raise PolyadaptError(f"{run_dir}: not a run folder (no run.json); pass a folder made by `polyadapt adapt`")
    record = read_json_file(record_path, "run record")
    config: dict[str, Any] = {}
    config_path = run_dir / "config.yaml"
    if config_path.is_file():
        try:
            config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise PolyadaptError(f"{config_path}: the run config is damaged ({exc}); restore it from a copy") from None
    manifests = {}
    for path in sorted((run_dir / "manifests").glob("*.json")):
        manifest = read_json_file(path, "data manifest")
        manifests[manifest.get("role", path.stem)] = manifest
    metrics = (_read_optional_json(run_dir / "metrics.json", "evaluation report") or {}).get("metrics", [])
    provenance: dict[str, Any] = {}
    adapter_dir = run_dir / "adapter"
    if adapter_dir.is_dir():
        from polyadapt.lineage.provenance import read_provenance

        try:
            provenance = read_provenance(adapter_dir)
        except PolyadaptError:
            provenance = {}
    return {
        "dir": run_dir,
        "record": record,
        "config": config,
        "manifests": manifests,
        "metrics": metrics,
        "provenance": provenance,
    }


def _hub_licence(licences: list[str]) -> dict[str, str]:
    """The ``license`` front matter for the training data's licence (``other`` + name if unknown)."""
    if len(licences) == 1 and licences[0].lower() in _HUB_LICENCES:
        return {"license": licences[0].lower()}
    if licences:
        return {"license": "other", "license_name": " AND ".join(licences)}
    return {}


def _library_name(facts: dict[str, Any]) -> str | None:
    stamped = facts["provenance"].get("library_name")
    if stamped:
        return str(stamped)
    return "peft" if (facts["dir"] / "adapter" / "adapter_config.json").is_file() else None


def _adapter_name(facts: dict[str, Any]) -> str:
    record = facts["record"]
    return str((record.get("provenance") or {}).get("name") or record.get("task") or record.get("run_id"))


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def portable_base_name(base_id: str) -> str:
    """The base as another machine can name it: a hub id as it is, a local file or folder
    (``/root/.cache/.../SmolLM2-135M-Instruct.Q4_1.gguf``) by its name alone; the card's body
    keeps the full path with the weights' hashes."""
    if base_id.startswith(("/", "~", "./", "../")) or "\\" in base_id:
        return Path(base_id.replace("\\", "/")).name or base_id
    return base_id


def front_matter(facts: dict[str, Any]) -> dict[str, Any]:
    """The card's YAML front matter: what a hub indexes and renders."""
    record, manifests = facts["record"], facts["manifests"]
    base = record.get("base_model_record") or {}
    matter: dict[str, Any] = {}
    library = _library_name(facts)
    if library:
        matter["library_name"] = library
    matter["base_model"] = portable_base_name(str(base.get("id") or record.get("base_model") or ""))
    train_licence = (manifests.get("train", {}).get("governance") or {}).get("licence")
    matter.update(_hub_licence([train_licence] if train_licence else []))
    modality = (manifests.get("train", {}).get("governance") or {}).get("modality")
    tags = ["polyadapt", "lora", str(record.get("task", ""))]
    if modality:
        tags.append(str(modality))
    matter["tags"] = [tag for tag in dict.fromkeys(tags) if tag]
    matter["datasets"] = [
        f"polyadapt-manifest/{role}@sha256:{manifest.get('root_hash')}" for role, manifest in manifests.items()
    ]
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in facts["metrics"]:
        adapted, base_value = _number(row.get("adapted")), _number(row.get("base"))
        if adapted is None:
            continue
        metrics = grouped.setdefault(str(row.get("dataset")), [])
        metrics.append({"type": row.get("metric"), "name": f"{row.get('metric')} (adapted)", "value": adapted})
        if base_value is not None:
            metrics.append({"type": row.get("metric"), "name": f"{row.get('metric')} (base)", "value": base_value})
    results = [
        {
            "task": {"type": str(record.get("task", "")), "name": str(record.get("task", ""))},
            "dataset": {"type": "polyadapt-eval", "name": dataset},
            "metrics": metrics,
        }
        for dataset, metrics in grouped.items()
    ]
    if results:
        matter["model-index"] = [{"name": _adapter_name(facts), "results": results}]
    return matter


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def _intended_use(facts: dict[str, Any]) -> list[str]:
    record, config = facts["record"], facts["config"]
    provenance = facts["provenance"]
    lines = ["## Intended use", ""]
    description = provenance.get("task_description")
    lines.append(f"A LoRA adapter for the task `{record.get('task')}`" + (f": {description}" if description else "."))
    lines.append(
        f"It adapts `{record.get('base_model')}` to the domain of its training data (below) and is meant "
        "for that domain; outside it, use the base model."
    )
    options = {k: v for k, v in (config.get("task_options") or {}).items() if v not in (None, [], {})}
    if options:
        lines += ["", "Task options of the run:", ""]
        for key, value in options.items():
            shown = ", ".join(map(str, value)) if isinstance(value, list) else value
            lines.append(f"- `{key}`: {shown}")
    return lines


def _base_and_loading(facts: dict[str, Any], library: str | None) -> list[str]:
    base = facts["record"].get("base_model_record") or {}
    lines = ["## Base model", "", f"- id: `{base.get('id') or facts['record'].get('base_model')}`"]
    if base.get("revision"):
        lines.append(f"- revision: `{base['revision']}`")
    if base.get("gguf_file"):
        lines.append(f"- GGUF file: `{base['gguf_file']}` (load it with `gguf_file=` in transformers)")
    for name, digest in sorted((base.get("weight_hashes") or {}).items()):
        lines.append(f"- `{name}` sha256 `{digest}`")
    if library == "peft":
        lines += [
            "",
            "Load it with plain PEFT (no polyadapt needed):",
            "",
            "```python",
            "from peft import PeftModel",
            "model = PeftModel.from_pretrained(base_model, 'path/to/this/folder')",
            "```",
        ]
    elif library:
        lines += ["", f"The weights are in {library}'s own LoRA format; load them with {library}."]
    return lines


def _data(facts: dict[str, Any]) -> list[str]:
    rows = []
    for role, manifest in facts["manifests"].items():
        source = manifest.get("source") or {}
        governance = manifest.get("governance") or {}
        size = f"{source['bytes']:,} bytes" if isinstance(source.get("bytes"), int) else "-"
        consent = governance.get("consent", "not recorded")
        rows.append(
            [
                role,
                source.get("name", "-"),
                manifest.get("records", "-"),
                size,
                governance.get("licence") or "-",
                consent,
                f"`{manifest.get('root_hash')}`",
            ]
        )
    if not rows:
        return ["## Data", "", "The run folder holds no data manifests."]
    header = ["role", "source", "records", "size", "licence", "consent", "root hash (sha256)"]
    return ["## Data", "", *_table(header, rows)]


def _governance(facts: dict[str, Any]) -> list[str]:
    rows, findings = [], []
    policies = set()
    for role, manifest in facts["manifests"].items():
        summary = manifest.get("governance") or {}
        policies.add(str(summary.get("policy", "-")))
        quarantined = (manifest.get("quarantine") or {}).get("records", 0)
        rows.append(
            [role, summary.get("records_in", "-"), summary.get("kept", "-"), summary.get("redacted", "-"),
             summary.get("dropped", "-"), quarantined]
        )  # fmt: skip
        for kind, count in (summary.get("findings_by_type") or {}).items():
            findings.append([role, kind, count])
    if not rows:
        return []
    lines = ["## Governance", "", f"Policy: {', '.join(sorted(policies))}. Counts per set and action:", ""]
    lines += _table(["set", "records in", "kept", "redacted", "dropped", "quarantined"], rows)
    lines += ["", "Findings per rule (counts only; the values never leave the run folder):", ""]
    lines += _table(["set", "rule", "findings"], findings) if findings else ["- none"]
    return lines


def _training(facts: dict[str, Any]) -> list[str]:
    config, record = facts["config"], facts["record"]
    lora, training = config.get("lora") or {}, config.get("training") or {}
    adapter = record.get("adapter") or {}
    metrics = adapter.get("train_metrics") or {}
    lines = ["## Training", ""]
    lines.append(
        f"- LoRA: r={lora.get('r')}, alpha={lora.get('alpha')}, dropout={lora.get('dropout')}, "
        f"targets {lora.get('target_modules')}, DoRA {lora.get('dora')}, rsLoRA {lora.get('rslora')}"
    )
    if adapter.get("trainable_parameters"):
        lines.append(
            f"- trainable parameters: {adapter['trainable_parameters']:,} of {adapter.get('total_parameters', 0):,}"
        )
    keys = ("learning_rate", "schedule", "epochs", "max_steps", "batch_size", "grad_accumulation", "max_length",
            "precision", "seed")  # fmt: skip
    lines.append("- " + ", ".join(f"{key} {training[key]}" for key in keys if training.get(key) is not None))
    done = {k: metrics[k] for k in ("steps", "epochs", "train_loss", "eval_loss", "train_examples") if k in metrics}
    if done:
        lines.append("- result: " + ", ".join(f"{k} {_short(v)}" for k, v in done.items()))
    return lines


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _promotion_bound(facts: dict[str, Any]) -> float:
    """The policy's allowed general regression (the strict default when it cannot be read)."""
    from polyadapt.lineage.registry import PromotionGate

    policy = (facts["config"].get("governance") or {}).get("policy")
    try:
        from polyadapt.governance.policy import load_policy

        return float(load_policy(policy).promotion.max_general_regression)
    except (PolyadaptError, OSError, AttributeError, TypeError, ValueError):
        return PromotionGate().max_general_regression


def _evaluation(facts: dict[str, Any]) -> list[str]:
    from polyadapt.lineage.registry import relative_improvement

    if not facts["metrics"]:
        return ["## Evaluation", "", "The run was not evaluated (`polyadapt evaluate RUN` evaluates it)."]
    rows, general = [], []
    for row in facts["metrics"]:
        base, adapted = _number(row.get("base")), _number(row.get("adapted"))
        lower = bool(row.get("lower_is_better", True))
        gain = relative_improvement(base, adapted, lower) if base is not None and adapted is not None else math.nan
        change = "-" if math.isnan(gain) else f"{gain * 100:+.1f}%"
        rows.append([row.get("dataset"), row.get("metric"), _short(base), _short(adapted),
                     "lower" if lower else "higher", change])  # fmt: skip
        if row.get("role") == "general":
            general.append((row, gain))
    lines = ["## Evaluation", "", "Base model against base + adapter on the same sets:", ""]
    lines += _table(["set", "metric", "base", "adapted", "better is", "change (+ is better)"], rows)
    lines += _qa_table(facts["metrics"])
    bound = _promotion_bound(facts)
    lines += ["", f"General-capability guard (a general metric may regress by at most {bound * 100:.1f}%):", ""]
    if not general:
        lines.append("- no general set was evaluated: forgetting was not measured")
    for row, gain in general:
        held = not math.isnan(gain) and -gain <= bound
        verdict = "held" if held else "REGRESSED beyond the bound"
        change = "-" if math.isnan(gain) else f"{gain * 100:+.1f}%"
        lines.append(f"- {row.get('dataset')} {row.get('metric')}: {verdict} ({change})")
    return lines


def _qa_table(metrics: list[dict[str, Any]]) -> list[str]:
    """The question-answering rows as one table, a row per configuration (none without them)."""
    from polyadapt.retrieval.qa import markdown_table
    from polyadapt.types import EvalReport

    try:
        table = markdown_table(EvalReport.from_dict({"metrics": metrics}).rows)
    except TypeError:  # a metrics.json written by another version: the table above has it all
        return []
    if not table:
        return []
    intro = "Held-out questions (`evaluation.qa`), base and adapter, without and with retrieved passages:"
    return ["", intro, "", *table.rstrip("\n").split("\n")]


def _limitations(facts: dict[str, Any]) -> list[str]:
    train = facts["manifests"].get("train") or {}
    return [
        "## Limitations",
        "",
        f"- Trained on {train.get('records', 'an unknown number of')} records of one domain; the figures above "
        "come from the run's own held-out and general sets, not from a public benchmark.",
        "- The base model's own licence, biases and limitations apply to the adapted model.",
        "- Governance redacts or drops what its detectors find; a detector can miss something.",
    ]


def _reproduce(facts: dict[str, Any]) -> list[str]:
    record, provenance = facts["record"], facts["provenance"]
    version = (record.get("environment") or {}).get("polyadapt") or provenance.get("polyadapt_version") or "?"
    registry = record.get("provenance") or {}
    return [
        "## Reproduce",
        "",
        f"- polyadapt {version}; run `{record.get('run_id')}`, config hash `{record.get('config_hash')}`",
        f"- adapter weights sha256 `{registry.get('weights_hash') or provenance.get('weights_hash')}`"
        + (f", registry version {registry['version']}" if registry.get("version") else ""),
        "",
        "```bash",
        f"polyadapt reproduce runs/{record.get('run_id')}   # trains again from config.yaml, compares the weights",
        "```",
    ]


def build_card(run_dir: Path | str) -> str:
    """The model card of the run in ``run_dir`` (Markdown with YAML front matter)."""
    facts = _run_facts(Path(run_dir))
    matter = front_matter(facts)
    record = facts["record"]
    title = f"# {_adapter_name(facts)}: a LoRA adapter of {record.get('base_model')}"
    sections = [
        _intended_use(facts),
        _base_and_loading(facts, matter.get("library_name")),
        _data(facts),
        _governance(facts),
        _training(facts),
        _evaluation(facts),
        _limitations(facts),
        _reproduce(facts),
    ]
    body = [title, "", CARD_MARK, ""]
    for section in sections:
        if section:
            body += [*section, ""]
    head = yaml.safe_dump(matter, sort_keys=False, allow_unicode=True, width=1000)
    return f"---\n{head}---\n\n" + "\n".join(body).rstrip() + "\n"


def write_card(run_dir: Path | str, folder: Path | str | None = None) -> Path:
    """Write the card into ``folder`` (default: the run's adapter folder) atomically."""
    target = Path(folder if folder is not None else Path(run_dir) / "adapter") / CARD_FILE
    atomic_write_text(target, build_card(run_dir))
    return target


def upgrade_adapter_folder(run_dir: Path | str) -> Path:
    """Bring a run's adapter folder up to date: the card, and the provenance out of the
    PEFT config where an earlier polyadapt put it. Returns the card's path."""
    from polyadapt.lineage.provenance import move_old_block_out

    adapter_dir = Path(run_dir) / "adapter"
    if not adapter_dir.is_dir():
        raise PolyadaptError(f"{run_dir}: the run has no adapter folder; finish it with `polyadapt adapt --resume`")
    base = _run_facts(Path(run_dir))["record"].get("base_model")
    move_old_block_out(adapter_dir, base if isinstance(base, str) else None)
    return write_card(run_dir, adapter_dir)


def write_export_card(
    adapter_dir: Path | str, export: Path | str, *, library_name: str, how_to_load: str
) -> Path | None:
    """Write the adapter's card beside an export (``README.md`` in its folder), for that format.

    ``library_name`` replaces the front matter's; ``how_to_load`` (Markdown) is added as a
    section. A README.md there that polyadapt did not write is left alone (None returned).
    """
    source = Path(adapter_dir) / CARD_FILE
    target = Path(export).parent / CARD_FILE
    if not source.is_file():
        return None
    card = source.read_text(encoding="utf-8")
    if CARD_MARK not in card or (target.is_file() and CARD_MARK not in target.read_text(encoding="utf-8")):
        return None
    _, head, body = card.split("---\n", 2)
    matter = yaml.safe_load(head) or {}
    matter["library_name"] = library_name
    matter["tags"] = [*matter.get("tags", []), "merged"]
    section = f"## This export\n\n`{Path(export).name}`: the adapter merged into its base.\n\n{how_to_load.strip()}\n\n"
    head = yaml.safe_dump(matter, sort_keys=False, allow_unicode=True, width=1000)
    title, rest = body.lstrip("\n").split("\n", 1)
    atomic_write_text(target, f"---\n{head}---\n\n{title}\n{rest.rstrip()}\n\n{section}".rstrip() + "\n")
    return target
