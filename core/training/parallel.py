"""The trainer's side of ``accelerate launch``: which backend, and what it needs to know.

polyadapt's loop does not hand accelerate a data loader (it shards batches itself, see
``_Batches``), so what accelerate would read from one is filled in here before
``prepare``: DeepSpeed's micro-batch size, accumulation steps and clipping; FSDP's unit
of sharding (the model's own ``_no_split_modules``, found inside wrappers such as a
loss module or a PEFT model). Ready launcher configs are in ``configs/accelerate/``;
docs/distributed.md explains them.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from polyadapt.config import TrainingConfig
from polyadapt.distributed import on_cpu_only
from polyadapt.errors import PolyadaptError

log = logging.getLogger(__name__)


def make_accelerator(precision: str, config: TrainingConfig) -> Any:
    """The run's ``Accelerator``: CPU processes over gloo when there is no GPU, and a clear
    error when the launcher asked for DeepSpeed and it is not installed."""
    from accelerate import Accelerator

    try:
        return Accelerator(
            mixed_precision=precision if precision != "fp32" else "no",
            cpu=on_cpu_only(),
        )
    except ImportError as exc:
        if "deepspeed" in str(exc).lower():
            raise PolyadaptError(
                "the accelerate config asks for DeepSpeed (distributed_type: DEEPSPEED) but DeepSpeed is not "
                "installed; install it with `pip install 'polyadapt[deepspeed]'`, or launch with "
                "configs/accelerate/ddp.yaml or fsdp.yaml instead"
            ) from None
        raise


def wrap_classes(model: torch.nn.Module) -> list[str]:
    """The layer classes FSDP should shard as units: every ``_no_split_modules`` inside ``model``."""
    names: list[str] = []
    for module in model.modules():
        for name in getattr(module, "_no_split_modules", None) or []:
            if name not in names:
                names.append(name)
    return names


def prepare_backend(accelerator: Any, model: torch.nn.Module, config: TrainingConfig) -> None:
    """Tell the launcher's backend (FSDP, DeepSpeed) what it would otherwise read from a data
    loader or the top-level model; nothing to do for one process or DDP."""
    from accelerate.utils import DistributedType

    state = accelerator.state
    if state.distributed_type == DistributedType.FSDP:
        plugin = state.fsdp_plugin
        if getattr(plugin, "transformer_cls_names_to_wrap", None) is None:
            names = wrap_classes(model)
            if names:
                plugin.transformer_cls_names_to_wrap = names
                log.info("FSDP: sharding units %s (the model's _no_split_modules)", ", ".join(names))
        # accelerate reads _no_split_modules from the top-level module; ours may be a loss wrapper
        if not getattr(model, "_no_split_modules", None):
            model._no_split_modules = wrap_classes(model)  # type: ignore[assignment]
    elif state.distributed_type == DistributedType.DEEPSPEED:
        ds_config = state.deepspeed_plugin.deepspeed_config
        # the loop accumulates (it marks the last micro-batch of a step, see sync_micro_batch);
        # DeepSpeed's own accumulation would divide the already normalised loss again
        ds_config["train_micro_batch_size_per_gpu"] = config.batch_size
        ds_config["gradient_accumulation_steps"] = 1
        ds_config["train_batch_size"] = config.batch_size * accelerator.num_processes
        ds_config["gradient_clipping"] = config.max_grad_norm or 0.0


def sync_micro_batch(accelerator: Any, last: bool) -> None:
    """Under DeepSpeed, say whether the coming ``backward`` ends the optimizer step: its engine
    reduces gradients and steps inside ``backward`` at that boundary only. Elsewhere the loop's
    ``no_sync`` and its own ``optimizer.step`` do it."""
    from accelerate.utils import DistributedType

    if accelerator.state.distributed_type == DistributedType.DEEPSPEED:
        accelerator.gradient_state._set_sync_gradients(last)


def is_sharded(accelerator: Any) -> bool:
    """True under FSDP or DeepSpeed ZeRO-3: the weights live in shards across processes."""
    from accelerate.utils import DistributedType

    state = accelerator.state
    if state.distributed_type == DistributedType.FSDP:
        return True
    if state.distributed_type == DistributedType.DEEPSPEED:
        return int(state.deepspeed_plugin.zero_stage or 0) == 3
    return False


def check_supported(accelerator: Any, config: TrainingConfig) -> None:
    """Refuse what the sharded backends do not support yet, before any training is spent."""
    from accelerate.utils import DistributedType

    backend = accelerator.state.distributed_type
    if backend in (DistributedType.FSDP, DistributedType.DEEPSPEED) and config.checkpoint_every:
        raise PolyadaptError(
            f"training.checkpoint_every: polyadapt's checkpoints hold the whole optimizer state, which "
            f"{backend.value} shards across processes; checkpoints and --resume work with one process or "
            "DDP (configs/accelerate/ddp.yaml) so far. Unset training.checkpoint_every to train under "
            f"{backend.value} without them"
        )


def gather_for_saving(accelerator: Any, model: torch.nn.Module) -> None:
    """Make every process's copy of the trainable weights whole again after training, so the
    main process can save the adapter (call it on every process: it is a collective).

    FSDP2: each sharded unit is unsharded in place (and stays so). DeepSpeed ZeRO-3: the
    trainable parameters are gathered and their full values kept as plain tensors.
    Nothing to do for one process, DDP or ZeRO-2.
    """
    from accelerate.utils import DistributedType

    state = accelerator.state
    if state.distributed_type == DistributedType.FSDP:
        from torch.distributed.fsdp import FSDPModule

        for module in model.modules():
            if isinstance(module, FSDPModule):
                module.unshard()
    elif is_sharded(accelerator):  # ZeRO-3
        import deepspeed

        trainable = [p for p in model.parameters() if p.requires_grad]
        with deepspeed.zero.GatheredParameters(trainable, modifier_rank=None):
            full = [p.detach().clone() for p in trainable]
        for param, value in zip(trainable, full):
            param.data = value
