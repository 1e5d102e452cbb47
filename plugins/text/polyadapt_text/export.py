"""Exporting a text run: the adapter merged into its base, as safetensors or as GGUF.

``merged``: base + adapter (``merge_and_unload``) saved with ``save_pretrained``: config,
generation config, safetensors and tokenizer, so ``AutoModelForCausalLM.from_pretrained``
(or vLLM, or llama.cpp's own converter) reads the folder with no peft. ``gguf``: the same
merged model written by :mod:`polyadapt_text.gguf_export` as one file for llama.cpp,
Ollama and LM Studio, with an Ollama ``Modelfile`` beside it.

Every export is checked before it is kept: the written model is loaded back with
transformers (the GGUF through transformers' own GGUF reader, which undoes llama.cpp's
layout) and its logits on a few prompts are compared with the merged model in memory; the
tokenizer read back must split the prompts the same way. The figures are printed and go
into the export's lineage record; an export whose top-1 agreement falls under
:data:`MIN_TOP1` is refused (nothing is left behind).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from polyadapt.errors import ConfigError, PolyadaptError
from polyadapt_text.gguf_export import QUANTS as GGUF_QUANTS

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Mapping

    from polyadapt.types import AdapterArtifact, Run

FORMATS = {
    "peft": "the PEFT adapter folder as the run saved it",
    "merged": "base + adapter merged: safetensors, config and tokenizer that "
    "AutoModelForCausalLM.from_pretrained(folder) loads (--quant f32, f16 or bf16)",
    "gguf": "base + adapter merged as one GGUF file for llama.cpp, Ollama and LM Studio "
    "(--quant f16, q8_0, q5_1, q5_0, q4_1 or q4_0), checked by reloading it",
}
#: ``--quant`` of ``merged`` -> the dtype the weights are saved in.
MERGED_DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
DEFAULT_QUANT = {"merged": "f32", "gguf": "f16"}
#: The least share of positions whose most likely next token must be the merged model's. A file
#: in the wrong layout agrees almost nowhere; the 4/5-bit floors sit under what SmolLM2-135M
#: measured (benchmarks/gguf_agreement.py: q8_0 0.97, q5_1 0.74, q5_0 0.77, q4_1 0.85, q4_0
#: 0.64 over 101 positions): a model that small loses many near-tied top-1s to 4/5-bit weights.
MIN_TOP1 = {
    "f32": 0.999,
    "f16": 0.98,
    "bf16": 0.95,
    "q8_0": 0.90,
    "q5_1": 0.65,
    "q5_0": 0.65,
    "q4_1": 0.50,
    "q4_0": 0.50,
}
#: The least top-1 agreement with the merged model rounded as the file stores it
#: (:mod:`polyadapt_text.gguf_twin`): the same weights, so only float noise may flip a position.
LAYOUT_MIN_TOP1 = 0.99
#: What the written model is checked on (with the chat template's rendering of the first).
CHECK_PROMPTS = (
    "The policy covers water damage from burst pipes, but not gradual leaks.",
    "def add(a, b):\n    return a + b\n",
    "Question: what is 17 times 23? Answer:",
    "Hello, how are you today? I am fine, thank you very much.",
)


def _quant(fmt: str, options: Mapping[str, Any]) -> str:
    quant = str(options.get("quant") or DEFAULT_QUANT[fmt])
    allowed = list(MERGED_DTYPES) if fmt == "merged" else list(GGUF_QUANTS)
    if quant not in allowed:
        raise ConfigError(f"--quant {quant!r} is not one --format {fmt} writes; choose one of {', '.join(allowed)}")
    return quant


def merged_model(run: Run, adapter: AdapterArtifact) -> tuple[Any, Any]:
    """The run's base in fp32 (a GGUF base dequantized, a QLoRA base unquantized) with the
    adapter merged into its weights, in eval mode; and the tokenizer."""
    from peft import PeftModel

    from polyadapt.pretrained import refusing_unsafe_pickles
    from polyadapt_text.model import load_base

    config = run.config.base_model
    if getattr(config, "quantization", "none") != "none":
        config = config.model_copy(update={"quantization": "none"})  # merge into the full-precision weights
    base, tokenizer = load_base(config, dtype=torch.float32)
    with refusing_unsafe_pickles(adapter.path, what="adapter"):
        model = PeftModel.from_pretrained(base, str(adapter.path)).merge_and_unload()
    return model.eval(), tokenizer


def check_prompts(tokenizer: Any) -> list[str]:
    """:data:`CHECK_PROMPTS`, plus the first as a chat when the tokenizer has a template."""
    prompts = list(CHECK_PROMPTS)
    if getattr(tokenizer, "chat_template", None):
        chat = [{"role": "user", "content": CHECK_PROMPTS[0]}]
        prompts.append(tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True))
    return prompts


@torch.no_grad()
def reference_logits(model: Any, tokenizer: Any, prompts: list[str]) -> list[tuple[list[int], torch.Tensor]]:
    """(token ids, fp32 logits) of ``model`` on each prompt."""
    out = []
    for prompt in prompts:
        ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
        out.append((ids, model(torch.tensor([ids])).logits[0].float()))
    return out


@torch.no_grad()
def compare(reference: list[tuple[list[int], torch.Tensor]], model: Any, tokenizer: Any, prompts: list[str]) -> dict:
    """How ``model`` (read back from the export) agrees with the reference logits: max and
    mean absolute difference, top-1 agreement over every position, and whether its
    tokenizer splits each prompt into the same ids."""
    diffs, agree, positions, same_ids = [], 0, 0, True
    for (ids, logits), prompt in zip(reference, prompts, strict=True):
        same_ids = same_ids and tokenizer(prompt, add_special_tokens=True)["input_ids"] == ids
        other = model(torch.tensor([ids])).logits[0].float()
        diffs.append((other - logits).abs())
        agree += int((other.argmax(-1) == logits.argmax(-1)).sum())
        positions += len(ids)
    every = torch.cat([d.flatten() for d in diffs])
    scale = torch.cat([logits.flatten() for _, logits in reference]).abs().max()
    return {
        "prompts": len(prompts),
        "positions": positions,
        "max_abs_diff": round(float(every.max()), 6),
        "mean_abs_diff": round(float(every.mean()), 6),
        "max_abs_logit": round(float(scale), 4),
        "top1_agreement": round(agree / positions, 4),
        "tokenizer_identical": same_ids,
    }


def _judge(run: Run, what: str, quant: str, figures: dict) -> dict:
    run.say(
        f"check {what} ({quant}) against the merged model: top-1 agreement {figures['top1_agreement']:.2%} "
        f"over {figures['positions']} positions, max |Δlogit| {figures['max_abs_diff']:.4g}, "
        f"mean {figures['mean_abs_diff']:.3g}; tokenizer {'identical' if figures['tokenizer_identical'] else 'DIFFERS'}"
    )
    if figures["top1_agreement"] < MIN_TOP1[quant] or not figures["tokenizer_identical"]:
        raise PolyadaptError(
            f"the {what} export ({quant}) does not reproduce the merged model: top-1 agreement "
            f"{figures['top1_agreement']:.2%} (at least {MIN_TOP1[quant]:.0%} needed), tokenizer "
            f"{'identical' if figures['tokenizer_identical'] else 'different'}; nothing was written. "
            "Try a wider type (--quant f16) or --format merged"
        )
    return figures


def _judge_layout(run: Run, quant: str, layout: dict) -> None:
    """Refuse a GGUF that does not reproduce the merged model with its weights rounded as the
    file stores them (:mod:`polyadapt_text.gguf_twin`): that is a layout fault, whatever the type."""
    run.say(
        f"check GGUF ({quant}) against the merged model rounded to {quant}: top-1 agreement "
        f"{layout['top1_agreement']:.2%}, max |Δlogit| {layout['max_abs_diff']:.4g}"
    )
    if layout["top1_agreement"] < LAYOUT_MIN_TOP1:
        raise PolyadaptError(
            f"the GGUF export ({quant}) does not reproduce the merged model even with its weights rounded "
            f"to {quant}: top-1 agreement {layout['top1_agreement']:.2%} (at least {LAYOUT_MIN_TOP1:.0%} "
            "needed), so a tensor or setting is laid out wrongly; nothing was written. Export with "
            "--format merged and report this with the base model's config"
        )


def _quiet_transformers() -> None:
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()


def export_merged(run: Run, adapter: AdapterArtifact, quant: str, folder: Path) -> dict[str, Any]:
    """Write the merged model into ``folder`` and check it by loading it back."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _quiet_transformers()
    model, tokenizer = merged_model(run, adapter)
    prompts = check_prompts(tokenizer)
    reference = reference_logits(model, tokenizer, prompts)
    model.to(MERGED_DTYPES[quant]).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    del model
    reloaded = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    figures = _judge(run, "merged", quant, compare(reference, reloaded, AutoTokenizer.from_pretrained(folder), prompts))
    _write_card(adapter, folder / "model.safetensors", "transformers", _MERGED_HOW_TO)
    return {"dtype": quant, "verification": figures}


def export_gguf(run: Run, adapter: AdapterArtifact, quant: str, folder: Path) -> dict[str, Any]:
    """Write the merged model as ``RUN-QUANT.gguf`` into ``folder`` (with an Ollama
    ``Modelfile``) and check it by reading it back with transformers."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from polyadapt_text.gguf_export import check_supported, source_pre_tokenizer, write_gguf
    from polyadapt_text.gguf_twin import round_like_gguf
    from polyadapt_text.model import _gguf_location, model_source

    _quiet_transformers()
    base = run.config.base_model
    config = AutoConfig.from_pretrained(model_source(base), trust_remote_code=base.trust_remote_code)
    check_supported(config.to_dict())  # before loading anything: the architecture is refused by name
    source = _gguf_location(base)
    pre = source_pre_tokenizer(Path(*source)) if source and Path(*source).is_file() else None
    model, tokenizer = merged_model(run, adapter)
    prompts = check_prompts(tokenizer)
    reference = reference_logits(model, tokenizer, prompts)
    name = f"{run.id}-{quant}.gguf"
    with tempfile.TemporaryDirectory(prefix="polyadapt-merged-") as scratch:
        model.save_pretrained(scratch, safe_serialization=True)
        tokenizer.save_pretrained(scratch)
        facts = write_gguf(
            Path(scratch), folder / name, quant, name=run.config.output.adapter_name or run.id, pre_tokenizer=pre
        )
    round_like_gguf(model, quant)  # the twin: what the file should hold, rounded the same way
    rounded_reference = reference_logits(model, tokenizer, prompts)
    del model
    try:
        reloaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()
        read_back = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise PolyadaptError(
            f"the GGUF written does not load back in transformers: {type(exc).__name__}: {exc}"
        ) from None
    layout = compare(rounded_reference, reloaded, read_back, prompts)
    _judge_layout(run, quant, layout)
    figures = _judge(run, "GGUF", quant, compare(reference, reloaded, read_back, prompts))
    figures["against_rounded_twin"] = layout
    (folder / "Modelfile").write_text(f"FROM ./{name}\n", encoding="utf-8")
    _write_card(adapter, folder / name, "gguf", _GGUF_HOW_TO.format(name=name))
    return {**facts, "file": name, "verification": figures}


def _write_card(adapter: AdapterArtifact, export: Path, library_name: str, how_to_load: str) -> None:
    from polyadapt.lineage.card import write_export_card

    write_export_card(adapter.path, export, library_name=library_name, how_to_load=how_to_load)


_MERGED_HOW_TO = """Load it with plain transformers (no polyadapt, no peft):

```python
from transformers import AutoModelForCausalLM, AutoTokenizer
model = AutoModelForCausalLM.from_pretrained("path/to/this/folder")
tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")
```"""

_GGUF_HOW_TO = """Run it with llama.cpp (`llama-cli -m {name}`), with Ollama (`ollama create my-model -f Modelfile`,
then `ollama run my-model`) or open it in LM Studio; in Python, `transformers` reads it too:
`AutoModelForCausalLM.from_pretrained(".", gguf_file="{name}")`."""


def export(run: Run, adapter: AdapterArtifact, fmt: str, options: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    """``polyadapt export`` of a text run: ``merged`` or ``gguf`` (``peft`` is the core's copy)."""
    quant = _quant(fmt, options)
    if fmt == "merged":
        return export_merged(run, adapter, quant, folder)
    if fmt == "gguf":
        return export_gguf(run, adapter, quant, folder)
    raise ConfigError(f"--format {fmt!r}: a text run exports {', '.join(FORMATS)}")
