"""The training loop shared by every plugin (see :mod:`polyadapt.training`)."""

from __future__ import annotations

import contextlib
import logging
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
from polyadapt.training.checkpointing import apply_gradient_checkpointing
from polyadapt.training.host_memory import bound_host_allocator
from polyadapt.training.losslog import write_loss_log
from polyadapt.training.parallel import (
    check_supported,
    gather_for_saving,
    make_accelerator,
    prepare_backend,
    sync_micro_batch,
)
from polyadapt.training.precision import resolve_precision
from polyadapt.training.progress import progress_bar as _progress_bar
from polyadapt.training.schedule import make_scheduler

log = logging.getLogger(__name__)

LossFn = Callable[[torch.nn.Module, dict[str, Any]], torch.Tensor]
#: Receives each training log record (see :func:`train`).
LogCallback = Callable[[dict[str, Any]], None]


@dataclass
class TrainingJob:
    """What a plugin gives the trainer.

    ``collate`` turns a list of examples into a batch dict of tensors that must include
    ``num_items``: how many loss terms the batch holds (e.g. target tokens). ``loss``
    returns the *sum* of the loss over those items; the trainer normalises by the items of
    the whole optimizer step, so gradient accumulation gives the same update as one big
    batch. An optional ``num_tokens`` entry is counted for the tokens/s figure.

    ``facts`` are counts a task found while building the examples (sequences, samples of
    each kind, seconds of audio): the runner adds them to ``data_summary.json`` (under
    ``examples``) and to the adapter's train metrics.
    """

    model: torch.nn.Module
    train_data: Sequence[Any]
    collate: Callable[[list[Any]], dict[str, Any]]
    loss: LossFn
    eval_data: Sequence[Any] | None = None
    facts: dict[str, Any] = field(default_factory=dict)


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
    #: Training examples (sequences, clips, images) per second over the run, this session.
    examples_per_s: float
    precision: str
    resumed_from: int | None = None
    #: Whether activations were recomputed in the backward pass (training.gradient_checkpointing).
    gradient_checkpointing: bool = False
    #: Processes that trained together (``accelerate launch``); tokens and examples count them all.
    processes: int = 1
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
    model: torch.nn.Module,
    data: Sequence[Any],
    collate: Callable[[list[Any]], dict[str, Any]],
    loss_fn: LossFn,
    batch_size: int,
    device: torch.device,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]],
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
    on_log: LogCallback | None = None,
) -> TrainingResult:
    """Train ``job.model``'s trainable parameters; checkpoints and logs go under ``run_dir``.

    ``on_log`` receives each log record as the main process logs it (``step``, ``epoch``,
    ``train_loss``, ``learning_rate``, ``tokens_per_s``, ``elapsed_s``, ``eval_loss`` when
    evaluated), and a last ``{"step", "eval_loss"}`` after the final evaluation: the run's
    experiment trackers follow training through it.

    With ``resume``, training continues from the newest checkpoint in
    ``run_dir/checkpoints`` (model, optimizer, scheduler, RNG and data position), so the
    result equals an uninterrupted run. Ctrl-C saves a checkpoint at the last completed
    step before stopping.
    """
    if len(job.train_data) == 0:
        raise PolyadaptError("no training examples left after loading and filtering the data")
    bound_host_allocator()  # glibc: ~30% lower peak resident memory on CPU, same speed
    loop = _TrainingLoop(job, config, Path(run_dir), show_progress=progress, on_log=on_log)
    if resume:
        loop.restore_latest_checkpoint()
    return loop.run()


class _TrainingLoop:
    """The state of one training run and the steps that advance it.

    Read :meth:`run` top to bottom: gather the micro-batches of one optimizer step,
    accumulate their gradients, step, log, evaluate and checkpoint when due.
    """

    def __init__(
        self,
        job: TrainingJob,
        config: TrainingConfig,
        run_dir: Path,
        show_progress: bool,
        on_log: LogCallback | None = None,
    ):
        from accelerate.state import AcceleratorState
        from accelerate.utils import set_seed

        self.job, self.config = job, config
        # accelerate keeps one precision per process; several runs in one process (a
        # notebook, the tests) may each ask for their own. The process group is kept.
        AcceleratorState._reset_state(reset_partial_state=False)
        self.checkpoint_dir, self.logs_dir = run_dir / "checkpoints", run_dir / "logs"
        self.precision = resolve_precision(config.precision)
        self.accelerator = make_accelerator(self.precision, config)
        set_seed(config.seed)

        self.checkpointing = apply_gradient_checkpointing(
            job.model,
            config.gradient_checkpointing,
            tokens_per_micro_batch=config.batch_size * config.max_length,
            device=self.accelerator.device,
        )
        self.params = [p for p in job.model.parameters() if p.requires_grad]
        if not self.params:
            raise PolyadaptError("the model has no trainable parameters; was the adapter attached?")
        optimizer = torch.optim.AdamW(self.params, lr=config.learning_rate, weight_decay=config.weight_decay)
        prepare_backend(self.accelerator, job.model, config)
        check_supported(self.accelerator, config)
        self.model, self.optimizer = self.accelerator.prepare(job.model, optimizer)

        acc = self.accelerator
        self.batches = _Batches(
            len(job.train_data), config.batch_size, config.seed, acc.process_index, acc.num_processes
        )
        steps_per_epoch = max(1, math.ceil(self.batches.per_epoch / config.grad_accumulation))
        self.total_steps = config.max_steps or max(1, math.ceil(config.epochs * steps_per_epoch))
        warmup = int(config.warmup_ratio * self.total_steps)
        self.scheduler = make_scheduler(self.optimizer, config.schedule, warmup, self.total_steps)

        self.step, self.epoch, self.batch_pos = 0, 0, 0
        self.log: list[dict[str, Any]] = []
        self.resumed_from: int | None = None
        self.tokens_seen = 0
        self.examples_seen = 0
        self.show_progress = show_progress and acc.is_main_process
        self.on_log = on_log if acc.is_main_process else None

    # -- checkpoints --------------------------------------------------------------------

    def restore_latest_checkpoint(self) -> None:
        """Continue from the newest complete checkpoint; with none yet (the run stopped before
        its first), start from the first step, which is what that run would have done."""
        existing = ckpt.list_checkpoints(self.checkpoint_dir)
        if not existing:
            log.warning("--resume: no checkpoint in %s yet; training from the first step", self.checkpoint_dir)
            return
        state = ckpt.load_checkpoint(
            existing[-1],
            model=self.accelerator.unwrap_model(self.model),
            optimizer=self.optimizer,
            scheduler=self.scheduler,
        )
        self.step, self.epoch, self.batch_pos = state["step"], state["epoch"], state["batch"]
        self.log, self.resumed_from = state.get("log", []), self.step

    def position(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batch": self.batch_pos}

    def save_checkpoint(self, rng_state: dict[str, Any], position: dict[str, int]) -> None:
        if self.accelerator.is_main_process:
            ckpt.save_checkpoint(
                self.checkpoint_dir,
                self.step,
                model=self.accelerator.unwrap_model(self.model),
                optimizer=self.optimizer,
                scheduler=self.scheduler,
                rng_state=rng_state,
                position={**position, "log": self.log},
                keep=self.config.keep_checkpoints,
            )
            write_loss_log(self.logs_dir, self.log)
        self.accelerator.wait_for_everyone()

    # -- one step -----------------------------------------------------------------------

    def next_micro_batches(self) -> list[dict[str, Any]]:
        """The collated micro-batches of the next optimizer step (never spanning two epochs)."""
        micro: list[dict[str, Any]] = []
        epoch_batches = self.batches.epoch_batches(self.epoch)
        while len(micro) < self.config.grad_accumulation:
            if self.batch_pos >= len(epoch_batches):
                self.epoch, self.batch_pos = self.epoch + 1, 0
                epoch_batches = self.batches.epoch_batches(self.epoch)
                if micro:
                    break
                continue
            indices = epoch_batches[self.batch_pos]
            micro.append(self.job.collate([self.job.train_data[i] for i in indices]))
            self.examples_seen += len(indices)
            self.batch_pos += 1
        return micro

    def optimizer_step(self, micro: list[dict[str, Any]]) -> float:
        """Accumulate the gradients of ``micro`` and update; return the mean loss per item
        of the whole step (all processes)."""
        acc = self.accelerator
        local_items = sum(_items(b) for b in micro)
        step_items = local_items
        if acc.num_processes > 1:
            step_items = int(acc.reduce(torch.tensor(local_items, device=acc.device), "sum"))
        step_loss = torch.zeros((), device=acc.device)  # summed on the device: no sync per micro-batch
        for index, batch in enumerate(micro):
            batch = _move(batch, acc.device)
            # Gradients sync across processes only on the last micro-batch.
            last = index == len(micro) - 1
            sync_micro_batch(acc, last)
            with contextlib.nullcontext() if last else acc.no_sync(self.model), acc.autocast():
                loss_sum = self.job.loss(self.model, batch)
                # DDP averages gradients over processes; scale so the update is the mean
                # over every item of the step on every process.
                loss = loss_sum * acc.num_processes / max(step_items, 1)
            acc.backward(loss)
            step_loss += loss_sum.detach().float()
            self.tokens_seen += int(batch.get("num_tokens", 0))
        if self.config.max_grad_norm:
            acc.clip_grad_norm_(self.params, self.config.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        if acc.num_processes > 1:  # the logged loss is the step's, over every process's items
            step_loss = acc.reduce(step_loss, "sum")
        return float(step_loss) / max(step_items, 1)

    def eval_loss(self) -> float:
        eval_data = self.job.eval_data
        assert eval_data is not None  # asked only when the job has evaluation data
        return evaluate_loss(
            self.model,
            eval_data,
            self.job.collate,
            self.job.loss,
            self.config.batch_size,
            self.accelerator.device,
            self.accelerator.autocast,
        )

    def epoch_progress(self) -> float:
        return round(self.epoch + self.batch_pos / max(self.batches.per_epoch, 1), 4)

    # -- the loop -----------------------------------------------------------------------

    def run(self) -> TrainingResult:
        config, total = self.config, self.total_steps
        bar = _progress_bar(self.show_progress, total, self.step)
        started = time.perf_counter()
        train_loss: float | None = None
        eval_loss: float | None = None
        # RNG and position at the start of the step in progress: what a checkpoint taken on
        # Ctrl-C must restore, since a half-done step is thrown away.
        step_rng: dict[str, Any] | None = None
        step_position, step_started_at = self.position(), -1
        self.model.train()
        try:
            while self.step < total:
                step_rng, step_position, step_started_at = ckpt.capture_rng_state(), self.position(), self.step
                train_loss = self.optimizer_step(self.next_micro_batches())
                if not math.isfinite(train_loss):
                    raise PolyadaptError(
                        f"training loss became {train_loss} at step {self.step}; the adapter is "
                        "not saved. Lower training.learning_rate, or set training.precision: fp32 "
                        f"if it happens in bf16/fp16 ({self.precision} now); checkpoints before "
                        "this step are kept"
                    )
                elapsed = time.perf_counter() - started
                record: dict[str, Any] = {
                    "step": self.step,
                    "epoch": self.epoch_progress(),
                    "train_loss": round(train_loss, 6),
                    "learning_rate": self.scheduler.get_last_lr()[0],
                    "tokens_per_s": round(self.tokens_seen / elapsed, 2) if elapsed else None,
                    "elapsed_s": round(elapsed, 3),
                }
                due = lambda every: bool(every) and self.step % every == 0 and self.step < total  # noqa: E731
                if self.job.eval_data and due(config.eval_every):
                    eval_loss = self.eval_loss()
                    record["eval_loss"] = round(eval_loss, 6)
                logged = "eval_loss" in record or self.step % config.log_every == 0 or self.step == total
                if logged:
                    self.log.append(record)
                    if self.accelerator.is_main_process:  # a long run can be followed in loss.csv
                        write_loss_log(self.logs_dir, self.log, plot=False)
                    if self.on_log is not None:
                        self.on_log(dict(record))
                bar.update(self.step, record, logged=logged)
                if due(config.checkpoint_every):
                    self.save_checkpoint(ckpt.capture_rng_state(), self.position())
        except KeyboardInterrupt:
            bar.close()
            if self.step > 0:
                if self.step == step_started_at:  # stopped inside a step: redo that step
                    assert step_rng is not None  # captured when that step started
                    self.save_checkpoint(step_rng, step_position)
                else:  # stopped between steps
                    self.save_checkpoint(ckpt.capture_rng_state(), self.position())
            raise
        bar.close()
        if self.job.eval_data:
            try:
                eval_loss = self.eval_loss()
            except KeyboardInterrupt:
                # every step is done: a checkpoint at the last one lets --resume skip to here
                self.save_checkpoint(ckpt.capture_rng_state(), self.position())
                raise
            if self.log:
                self.log[-1]["eval_loss"] = round(eval_loss, 6)
            if self.on_log is not None:
                self.on_log({"step": self.step, "eval_loss": round(eval_loss, 6)})
        if self.accelerator.is_main_process:
            write_loss_log(self.logs_dir, self.log)
        wall = time.perf_counter() - started
        acc = self.accelerator
        # every process counted its own tokens; the figure is for the whole run
        tokens = int(acc.reduce(torch.tensor(self.tokens_seen, device=acc.device), "sum"))
        examples = int(acc.reduce(torch.tensor(self.examples_seen, device=acc.device), "sum"))
        gather_for_saving(acc, self.model)  # FSDP, ZeRO-3: whole adapter weights for the save
        self.job.model = acc.unwrap_model(self.model)
        return TrainingResult(
            steps=self.step,
            epochs=self.epoch_progress(),
            train_loss=train_loss,
            eval_loss=eval_loss,
            tokens=tokens,
            wall_s=round(wall, 3),
            tokens_per_s=round(tokens / wall, 2) if wall else 0.0,
            examples_per_s=round(examples / wall, 3) if wall else 0.0,
            precision=self.precision,
            resumed_from=self.resumed_from,
            gradient_checkpointing=self.checkpointing.enabled,
            processes=acc.num_processes,
            log=self.log,
        )
