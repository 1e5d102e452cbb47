"""The training loop shared by every plugin (see :mod:`polyadapt.training`)."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from polyadapt.config import TrainingConfig
from polyadapt.errors import PolyadaptError
from polyadapt.training import checkpoint as ckpt
from polyadapt.training.losslog import write_loss_log
from polyadapt.training.precision import resolve_precision
from polyadapt.training.progress import progress_bar as _progress_bar
from polyadapt.training.schedule import make_scheduler

LossFn = Callable[[torch.nn.Module, dict[str, Any]], torch.Tensor]


@dataclass
class TrainingJob:
    """What a plugin gives the trainer.

    ``collate`` turns a list of examples into a batch dict of tensors that must include
    ``num_items``: how many loss terms the batch holds (e.g. target tokens). ``loss``
    returns the *sum* of the loss over those items; the trainer normalises by the items of
    the whole optimizer step, so gradient accumulation gives the same update as one big
    batch. An optional ``num_tokens`` entry is counted for the tokens/s figure.
    """

    model: torch.nn.Module
    train_data: Sequence[Any]
    collate: Callable[[list[Any]], dict[str, Any]]
    loss: LossFn
    eval_data: Sequence[Any] | None = None


@dataclass
class TrainingResult:
    """How a training run went; ``log`` is what the loss log files hold."""

    steps: int
    epochs: float
    train_loss: float | None
    eval_loss: float | None
    tokens: int
    wall_s: float
    tokens_per_s: float
    precision: str
    resumed_from: int | None = None
    log: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "log"}


class _Batches:
    """Deterministic batches: a fresh permutation per epoch from ``seed + epoch``.

    Under several processes each takes every ``world``-th batch, so the position
    ``(epoch, batch)`` means the same thing on all of them and resuming is exact.
    """

    def __init__(self, size: int, batch_size: int, seed: int, rank: int, world: int):
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.rank, self.world = rank, world
        self.per_epoch = math.ceil(math.ceil(size / batch_size) / world)

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + epoch)
        order = torch.randperm(self.size, generator=generator).tolist()
        batches = [order[i : i + self.batch_size] for i in range(0, self.size, self.batch_size)]
        mine = batches[self.rank :: self.world]
        return mine


def _move(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def _items(batch: dict[str, Any]) -> int:
    if "num_items" not in batch:
        raise PolyadaptError(
            "the plugin's collate function must put 'num_items' (the number of loss terms) "
            "in each batch; see polyadapt.training.TrainingJob"
        )
    return int(batch["num_items"])


def evaluate_loss(
    model: torch.nn.Module, data: Sequence[Any], collate, loss_fn: LossFn, batch_size: int,
    device: torch.device, autocast: Callable[[], Any],
) -> float:
    """Mean loss per item of ``model`` over ``data``, without gradients."""
    was_training = model.training
    model.eval()
    total, items = 0.0, 0
    with torch.no_grad(), autocast():
        for start in range(0, len(data), batch_size):
            batch = _move(collate([data[i] for i in range(start, min(start + batch_size, len(data)))]), device)
            total += float(loss_fn(model, batch))
            items += _items(batch)
    model.train(was_training)
    return total / max(items, 1)


def train(
    job: TrainingJob,
    config: TrainingConfig,
    run_dir: Path,
    *,
    resume: bool = False,
    progress: bool = True,
) -> TrainingResult:
    """Train ``job.model``'s trainable parameters; checkpoints and logs go under ``run_dir``.

    With ``resume``, training continues from the newest checkpoint in
    ``run_dir/checkpoints`` (model, optimizer, scheduler, RNG and data position), so the
    result equals an uninterrupted run. Ctrl-C saves a checkpoint at the last completed
    step before stopping.
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    if len(job.train_data) == 0:
        raise PolyadaptError("no training examples left after loading and filtering the data")
    precision = resolve_precision(config.precision)
    accelerator = Accelerator(mixed_precision=precision if precision != "fp32" else "no")
    set_seed(config.seed)
    run_dir = Path(run_dir)
    checkpoint_dir, logs_dir = run_dir / "checkpoints", run_dir / "logs"

    model = job.model
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise PolyadaptError("the model has no trainable parameters; was the adapter attached?")
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    model, optimizer = accelerator.prepare(model, optimizer)

    batches = _Batches(
        len(job.train_data), config.batch_size, config.seed,
        accelerator.process_index, accelerator.num_processes,
    )
    steps_per_epoch = max(1, math.ceil(batches.per_epoch / config.grad_accumulation))
    total_steps = config.max_steps or max(1, math.ceil(config.epochs * steps_per_epoch))
    warmup = int(config.warmup_ratio * total_steps)
    scheduler = make_scheduler(optimizer, config.schedule, warmup, total_steps)

    step, epoch, batch_pos, log, resumed_from = 0, 0, 0, [], None
    if resume:
        existing = ckpt.list_checkpoints(checkpoint_dir)
        if not existing:
            raise PolyadaptError(f"--resume: no checkpoint in {checkpoint_dir} to resume from")
        state = ckpt.load_checkpoint(
            existing[-1], model=accelerator.unwrap_model(model), optimizer=optimizer, scheduler=scheduler
        )
        step, epoch, batch_pos = state["step"], state["epoch"], state["batch"]
        log, resumed_from = state.get("log", []), step

    def autocast():
        return accelerator.autocast()

    def save(at_step: int, rng_state, position) -> None:
        if accelerator.is_main_process:
            ckpt.save_checkpoint(
                checkpoint_dir, at_step, model=accelerator.unwrap_model(model), optimizer=optimizer,
                scheduler=scheduler, rng_state=rng_state, position={**position, "log": log},
                keep=config.keep_checkpoints,
            )
            write_loss_log(logs_dir, log)
        accelerator.wait_for_everyone()

    bar = _progress_bar(progress and accelerator.is_main_process, total_steps, step)
    epoch_batches = batches.epoch_batches(epoch)
    tokens_seen, started = 0, time.perf_counter()
    last_train_loss: float | None = None
    eval_loss: float | None = None
    snapshot_step = -1
    model.train()
    try:
        while step < total_steps:
            # RNG and position at the start of the step: what a checkpoint taken on
            # interrupt must restore, since a half-done step is thrown away.
            step_rng, step_position = ckpt.capture_rng_state(), {"epoch": epoch, "batch": batch_pos}
            snapshot_step = step
            micro = []
            while len(micro) < config.grad_accumulation:
                if batch_pos >= len(epoch_batches):
                    epoch, batch_pos = epoch + 1, 0
                    epoch_batches = batches.epoch_batches(epoch)
                    if micro:  # an optimizer step never spans two epochs
                        break
                    continue
                micro.append(job.collate([job.train_data[i] for i in epoch_batches[batch_pos]]))
                batch_pos += 1
            local_items = sum(_items(b) for b in micro)
            step_items = int(accelerator.reduce(torch.tensor(local_items, device=accelerator.device), "sum"))
            step_loss = 0.0
            for index, batch in enumerate(micro):
                batch = _move(batch, accelerator.device)
                # Gradients sync across processes only on the last micro-batch.
                sync = index == len(micro) - 1
                with (accelerator.no_sync(model) if not sync else contextlib.nullcontext()), autocast():
                    loss_sum = job.loss(model, batch)
                    # DDP averages gradients over processes; scale so the update is the
                    # mean over every item of the step on every process.
                    loss = loss_sum * accelerator.num_processes / max(step_items, 1)
                accelerator.backward(loss)
                step_loss += float(loss_sum.detach())
                tokens_seen += int(batch.get("num_tokens", 0))
            if config.max_grad_norm:
                accelerator.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            last_train_loss = step_loss / max(local_items, 1)
            elapsed = time.perf_counter() - started
            record: dict[str, Any] = {
                "step": step,
                "epoch": round(epoch + batch_pos / max(len(epoch_batches), 1), 4),
                "train_loss": round(last_train_loss, 6),
                "learning_rate": scheduler.get_last_lr()[0],
                "tokens_per_s": round(tokens_seen / elapsed, 2) if elapsed else None,
                "elapsed_s": round(elapsed, 3),
            }
            if job.eval_data and config.eval_every and step % config.eval_every == 0 and step < total_steps:
                record["eval_loss"] = eval_loss = evaluate_loss(
                    model, job.eval_data, job.collate, job.loss, config.batch_size, accelerator.device, autocast
                )
            if step % config.log_every == 0 or step == total_steps:
                log.append(record)
            bar.update(step, record)
            if config.checkpoint_every and step % config.checkpoint_every == 0 and step < total_steps:
                save(step, ckpt.capture_rng_state(), {"epoch": epoch, "batch": batch_pos})
    except KeyboardInterrupt:
        bar.close()
        if step > 0:
            if step == snapshot_step:  # stopped inside a step: restart that step
                save(step, step_rng, step_position)
            else:  # stopped between steps
                save(step, ckpt.capture_rng_state(), {"epoch": epoch, "batch": batch_pos})
        raise
    bar.close()
    if job.eval_data:
        eval_loss = evaluate_loss(
            model, job.eval_data, job.collate, job.loss, config.batch_size, accelerator.device, autocast
        )
        if log:
            log[-1]["eval_loss"] = round(eval_loss, 6)
    if accelerator.is_main_process:
        write_loss_log(logs_dir, log)
    wall = time.perf_counter() - started
    # every process counted its own tokens; the figure is for the whole run
    tokens_seen = int(accelerator.reduce(torch.tensor(tokens_seen, device=accelerator.device), "sum"))
    job.model = accelerator.unwrap_model(model)
    return TrainingResult(
        steps=step,
        epochs=round(epoch + batch_pos / max(len(epoch_batches), 1), 4),
        train_loss=last_train_loss,
        eval_loss=eval_loss,
        tokens=tokens_seen,
        wall_s=round(wall, 3),
        tokens_per_s=round(tokens_seen / wall, 2) if wall else 0.0,
        precision=precision,
        resumed_from=resumed_from,
        log=log,
    )
