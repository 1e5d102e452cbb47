"""Memory options: gradient checkpointing (on/off as configured, same loss either way),
QLoRA's clear error off CUDA, and the text loss never holding full fp32 logits."""

from __future__ import annotations

import pytest
import torch

from polyadapt.config import BaseModelConfig, LoraConfig, TrainingConfig, parse_config
from polyadapt.errors import ConfigError
from polyadapt.training import TrainingJob, train
from polyadapt.training.checkpointing import apply_gradient_checkpointing, is_checkpointing


def _job(folder, seed: int = 0) -> TrainingJob:
    from conftest import domain_text
    from polyadapt_text.data import Collator, build_examples
    from polyadapt_text.loss import CausalLMLoss, summed_loss
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from polyadapt.lora import attach_lora

    tokenizer = AutoTokenizer.from_pretrained(folder)
    base = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    base.requires_grad_(False)
    torch.manual_seed(seed)
    model = attach_lora(base, LoraConfig(r=8, alpha=16, dropout=0.1), ["q_proj", "v_proj"], task_type="CAUSAL_LM")
    examples = build_examples(tokenizer, [{"text": t} for t in domain_text(48, 3)], 64, True)
    return TrainingJob(
        model=CausalLMLoss(model), train_data=examples, collate=Collator(tokenizer.pad_token_id), loss=summed_loss
    )


def _settings(checkpointing) -> TrainingConfig:
    return TrainingConfig(
        max_steps=4,
        batch_size=4,
        max_length=64,
        learning_rate=5e-3,
        precision="fp32",
        warmup_ratio=0.0,
        seed=3,
        gradient_checkpointing=checkpointing,
    )


def test_gradient_checkpointing_is_on_or_off_as_configured_and_keeps_the_loss(tiny_llama, tmp_path):
    runs = {}
    for setting in (False, True):
        job = _job(tiny_llama)
        result = train(job, _settings(setting), tmp_path / str(setting), progress=False)
        assert result.gradient_checkpointing is setting
        assert is_checkpointing(job.model) is setting
        adapter = {n: p.detach().clone() for n, p in job.model.named_parameters() if p.requires_grad}
        runs[setting] = ([r["train_loss"] for r in result.log], adapter)
    (loss_off, adapter_off), (loss_on, adapter_on) = runs[False], runs[True]
    # dropout 0.1: the recomputed forward must draw the same masks (RNG restored)
    assert loss_on == pytest.approx(loss_off, rel=1e-5, abs=1e-6)
    assert adapter_on.keys() == adapter_off.keys()
    for name in adapter_off:
        assert torch.allclose(adapter_on[name], adapter_off[name], atol=1e-5), name


def test_auto_follows_the_activation_memory_rule(tiny_llama):
    job = _job(tiny_llama)
    cpu = torch.device("cpu")
    small = apply_gradient_checkpointing(job.model, "auto", tokens_per_micro_batch=4 * 256, device=cpu)
    assert not small.enabled and not is_checkpointing(job.model) and "auto" in small.reason
    # tiny llama: 34 bytes x hidden 64 x 2 layers per token; 1e9 tokens is ~4.4 TB > a quarter of any RAM
    huge = apply_gradient_checkpointing(job.model, "auto", tokens_per_micro_batch=10**9, device=cpu)
    assert huge.enabled and is_checkpointing(job.model)
    assert huge.estimated_activation_bytes == 34 * 64 * 2 * 10**9


def test_true_on_a_model_that_cannot_checkpoint_names_the_field():
    with pytest.raises(ConfigError, match="training.gradient_checkpointing"):
        apply_gradient_checkpointing(torch.nn.Linear(2, 2), True, tokens_per_micro_batch=8, device=torch.device("cpu"))
    off = apply_gradient_checkpointing(
        torch.nn.Linear(2, 2), "auto", tokens_per_micro_batch=8, device=torch.device("cpu")
    )
    assert not off.enabled


def test_config_accepts_the_three_settings():
    base = "task: text-generation\nbase_model: {id: x}\ndata: {train: t.jsonl}\n"
    for text, expected in (("auto", "auto"), ("true", True), ("false", False)):
        config = parse_config(base + f"training: {{gradient_checkpointing: {text}}}\n", "run.yaml")
        assert config.training.gradient_checkpointing == expected
    with pytest.raises(ConfigError, match="gradient_checkpointing"):
        parse_config(base + "training: {gradient_checkpointing: sometimes}\n", "run.yaml")
    with pytest.raises(ConfigError, match="quantization"):
        parse_config(base + "base_model: {id: x, quantization: 3bit}\n", "run.yaml")


@pytest.mark.parametrize("mode", ["4bit", "8bit"])
def test_qlora_off_cuda_is_a_clear_config_error(tiny_llama, monkeypatch, mode):
    from polyadapt_text.model import load_base

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError) as caught:
        load_base(BaseModelConfig(id=str(tiny_llama), quantization=mode))
    message = str(caught.value)
    assert f"base_model.quantization: {mode}" in message
    assert "CUDA" in message and "CPU" in message
    assert "base_model.quantization: none" in message  # what to do


def test_qlora_without_bitsandbytes_says_what_to_install(tiny_llama, monkeypatch):
    import builtins

    from polyadapt_text.quantization import quantization_kwargs

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    real_import = builtins.__import__

    def no_bnb(name, *args, **kwargs):
        if name == "bitsandbytes":
            raise ImportError("No module named 'bitsandbytes'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_bnb)
    with pytest.raises(ConfigError, match=r"pip install 'polyadapt\[qlora\]'"):
        quantization_kwargs(BaseModelConfig(id=str(tiny_llama), quantization="4bit"))


def test_no_quantization_loads_as_before(tiny_llama):
    from polyadapt_text.model import load_base

    model, _ = load_base(BaseModelConfig(id=str(tiny_llama), dtype="float32"))
    assert next(model.parameters()).dtype == torch.float32
    assert not any(p.requires_grad for p in model.parameters())
