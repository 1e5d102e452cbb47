"""The trainer's side of the launchers (polyadapt.training.parallel), without launching:
FSDP's sharding units found inside wrappers, DeepSpeed missing, CPU processes detected."""

from __future__ import annotations

import pytest

from polyadapt.config import TrainingConfig


def test_fsdp_units_are_found_inside_the_loss_wrapper_and_peft(tiny_llama):
    from polyadapt_text.loss import CausalLMLoss
    from transformers import AutoModelForCausalLM

    from polyadapt.config import LoraConfig
    from polyadapt.lora import attach_lora
    from polyadapt.training.parallel import wrap_classes

    model = attach_lora(
        AutoModelForCausalLM.from_pretrained(tiny_llama), LoraConfig(r=4), ["q_proj"], task_type="CAUSAL_LM"
    )
    wrapper = CausalLMLoss(model)
    assert not getattr(wrapper, "_no_split_modules", None)  # accelerate would find nothing on the wrapper
    assert wrap_classes(wrapper) == ["LlamaDecoderLayer"]


def test_cpu_processes_are_detected(monkeypatch):
    import torch

    from polyadapt.distributed import on_cpu_only

    monkeypatch.delenv("ACCELERATE_USE_CPU", raising=False)
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert not on_cpu_only()  # one process: accelerate's own device choice
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert on_cpu_only()  # torchrun on a machine without GPUs: gloo on the CPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert not on_cpu_only()
    monkeypatch.setenv("ACCELERATE_USE_CPU", "true")  # accelerate launch --cpu
    assert on_cpu_only()


def test_deepspeed_launch_without_deepspeed_says_what_to_install(monkeypatch):
    from accelerate.state import AcceleratorState

    from polyadapt.errors import PolyadaptError
    from polyadapt.training.parallel import make_accelerator

    try:
        import deepspeed  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("DeepSpeed is installed here")
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")  # what `accelerate launch` sets for DEEPSPEED
    AcceleratorState._reset_state(reset_partial_state=False)
    try:
        with pytest.raises(PolyadaptError, match=r"pip install 'polyadapt\[deepspeed\]'"):
            make_accelerator("fp32", TrainingConfig())
    finally:
        AcceleratorState._reset_state(reset_partial_state=False)
