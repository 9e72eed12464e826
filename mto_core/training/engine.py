"""The pre-training loop: AdamW, warmup + cosine, accumulation, autocast, checkpoints, resume.

Randomness is derived from (seed, purpose, counter) for every epoch and step, so a run resumed
from any checkpoint draws the same data order, augmentations and masks as an uninterrupted one.
Under ``torchrun`` each of the W processes takes its slice of one global batch (DDP); rank 0
alone writes checkpoints and logs.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm import tqdm

from ..analysis.trace import Tracer
from ..config import ConfigError, MTOWarning, RunConfig, parse_points, validate
from ..data.hf_stream import StreamedImages, StreamReader
from ..data.images import ImageSet, augment, prepare_images
from ..data.masking import hidden_count, make_mask
from ..data.seeding import generator
from ..data.sources import open_dataset
from ..data.streaming import LazyImages, Skipped, read_batches, resolve_workers
from ..eval.schedule import ProbeSchedule
from ..models.build import build_model
from ..models.checkpoint import (
    WEIGHTS,
    list_checkpoints,
    load_train_state,
    load_weights,
    save_checkpoint,
    save_snapshot,
)
from ..models.objective import MIMModel, check_model_fits
from ..models.vit import VisibleFirst
from .allocator import keep_freed_memory
from .compiled import compile_model
from .run_folder import TrainingError, append_metrics, check_resumable, prepare_run_dir
from .runlock import run_folder_lock
from .warm_start import init_source, load_init


def resolve_device(name: str) -> torch.device:
    if not (name in ("auto", "cpu", "cuda") or (name.startswith("cuda:") and name[5:].isdigit())):
        raise ConfigError(f"unknown device '{name}'; use auto, cpu, cuda or cuda:N")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but no CUDA GPU is available; use --device cpu")
    return torch.device(name)


def lr_at(step: int, total: int, peak: float, warmup: int, min_fraction: float,
          schedule: str = "cosine") -> float:
    """Linear warmup to ``peak`` over ``warmup`` steps, then cosine down to ``min_fraction`` x peak
    (``cosine``) or ``peak`` for good (``constant``)."""
    if step < warmup:
        return peak * (step + 1) / warmup
    if schedule == "constant":
        return peak
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (min_fraction + (1 - min_fraction) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> Distributed:
    """Join the torchrun process group if WORLD_SIZE > 1 (gloo on CPU, NCCL on GPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    info = Distributed(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return info


@dataclass
class Plan:
    """Step arithmetic of a run."""

    micro_batch: int
    global_batch: int
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    peak_lr: float


def make_plan(config: RunConfig, n_images: int | None, world_size: int) -> Plan:
    """``n_images`` None: a stream of unknown length, one epoch of ``train.max_steps`` steps."""
    t = config.train
    global_batch = t.batch_size * t.accum_steps * world_size
    if n_images is None and not t.max_steps:
        raise ConfigError(f"the streamed set {config.data.root} does not say how many images it holds, so an epoch "
                          "has no length; set train.max_steps (its passes are read one after another)")
    steps_per_epoch = t.max_steps if n_images is None else n_images // global_batch
    if steps_per_epoch == 0:
        raise ConfigError(f"the training split has {n_images} images, fewer than one global batch "
                          f"({t.batch_size} x {t.accum_steps} accumulation x {world_size} processes); "
                          "lower train.batch_size")
    total = t.epochs * steps_per_epoch if t.epochs else t.max_steps
    if t.max_steps:
        total = min(total, t.max_steps)
    warmup = t.warmup_steps if t.warmup_steps else round(t.warmup_fraction * total)
    return Plan(t.batch_size, global_batch, steps_per_epoch, total, warmup, t.base_lr * global_batch / 256)


def batches(data: ImageSet | LazyImages | StreamedImages, config: RunConfig, plan: Plan, epoch: int, start: int,
            info: Distributed, workers: int = 0, skipped: Skipped | None = None,
            reader: StreamReader | None = None,
            ) -> Iterator[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]]:
    """This rank's micro-batches (uint8 images, mask, augmentation draws) for each step of
    ``epoch`` from step ``start`` on.

    The global batch, its augmentation draws and its masks are the same whatever the number
    of processes; each rank keeps its own slice, and reads only its own images. A lazily read
    set comes augmented from its workers (each sample's crop drawn from the seed, the epoch and
    its index), so its draws are None. A streamed set's micro-batches come from ``reader``, this
    process's slice of the stream read on from one epoch to the next.
    """
    t, m, k = config.train, config.model, config.mask
    if reader is not None:
        yield from _streamed(reader, config, plan, epoch, start, info)
        return
    order = torch.randperm(len(data), generator=generator(t.seed, "order", epoch))
    parts = [slice((a * info.world_size + info.rank) * plan.micro_batch,
                   (a * info.world_size + info.rank + 1) * plan.micro_batch) for a in range(t.accum_steps)]
    steps = range(start, plan.steps_per_epoch)
    mine = [order[i * plan.global_batch:(i + 1) * plan.global_batch][part] for i in steps for part in parts]
    reader = read_batches(data, mine, m.img_size, m.in_chans, epoch=epoch, seed=t.seed,
                          augment=config.data.augment, workers=workers, skipped=skipped)
    for i in steps:
        g = generator(t.seed, "step", epoch * plan.steps_per_epoch + i)
        masks = make_mask(plan.global_batch, m.grid, k.ratio, g, k.kind, k.mask_patch_size, k.min_block)
        draws = torch.rand(plan.global_batch, 4, generator=g)
        micro = []
        for part in parts:
            batch = next(reader)
            micro.append((batch.images, masks[part], None if batch.augmented else draws[part]))
        yield micro


def _streamed(reader: StreamReader, config: RunConfig, plan: Plan, epoch: int, start: int,
              info: Distributed) -> Iterator[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]]:
    """:func:`batches` of a streamed set: this process's next micro-batches, the masks of the step."""
    t, m, k = config.train, config.model, config.mask
    for i in range(start, plan.steps_per_epoch):
        g = generator(t.seed, "step", epoch * plan.steps_per_epoch + i)
        masks = make_mask(plan.global_batch, m.grid, k.ratio, g, k.kind, k.mask_patch_size, k.min_block)
        draws = torch.rand(plan.global_batch, 4, generator=g)
        micro = []
        for a in range(t.accum_steps):
            part = slice((a * info.world_size + info.rank) * plan.micro_batch,
                         (a * info.world_size + info.rank + 1) * plan.micro_batch)
            batch = reader.next_batch()
            micro.append((batch.images, masks[part], None if batch.augmented else draws[part]))
        yield micro


def to_batch(item: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None], config: RunConfig,
             device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 images, mask, draws) -> float images in [0, 1] on ``device`` (augmented if
    ``data.augment`` and the images were not augmented when read: draws None) and the mask."""
    images, mask, draws = item
    images = prepare_images(images.to(device, non_blocking=True), config.model.img_size,
                            config.model.in_chans)
    if config.data.augment and draws is not None:
        images = augment(images, draws.to(device))
    return images, mask.to(device, non_blocking=True)


def build_optimizer(model: torch.nn.Module, config: RunConfig) -> torch.optim.AdamW:
    """AdamW (0.9, 0.95); no weight decay on biases, norms, tokens (1-D or token tensors)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim <= 1 or name.endswith("_token") else decay).append(param)
    groups = [{"params": decay, "weight_decay": config.train.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.train.base_lr, betas=(0.9, 0.95),
                             fused=config.train.fused_optimizer or None)


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    epochs_done: float
    last_checkpoint: Path | None
    final_loss: float


def train(config: RunConfig, run_dir: str | Path, resume: bool = False, progress: bool = True,
          on_log: Callable[[dict[str, Any]], None] | None = None,
          should_stop: Callable[[], bool] | None = None) -> TrainResult:
    """Pre-train ``config`` into ``run_dir``; resume from its newest checkpoint if asked.

    ``on_log`` receives each metrics row as it is written; ``should_stop`` is polled every step
    and ends the run early with a checkpoint (the app's stop button). The run folder has one
    writer at a time: ``runlock.RunFolderBusy`` if another process or thread trains into it.
    """
    with run_folder_lock(run_dir, enabled=os.environ.get("RANK", "0") == "0"):
        return _train(config, run_dir, resume, progress, on_log, should_stop)


def _train(config: RunConfig, run_dir: str | Path, resume: bool, progress: bool,
           on_log: Callable[[dict[str, Any]], None] | None,
           should_stop: Callable[[], bool] | None) -> TrainResult:
    run = _prepare(config, run_dir, resume)
    loop = _Loop(run, _resume(run), progress, on_log)
    plan, t = run.plan, config.train
    if loop.step == 0:
        loop.at_point()
    run.model.train()
    stopped = False
    try:
        while loop.step < plan.total_steps and not stopped:
            epoch, start = divmod(loop.step, plan.steps_per_epoch)
            for micro in batches(run.data, config, plan, epoch, start, run.info, run.workers, run.skipped,
                                 run.reader):
                loop.train_step(micro)
                end_of_epoch = loop.step % plan.steps_per_epoch == 0
                last = loop.step == plan.total_steps
                if loop.step % t.log_every == 0 or end_of_epoch or last:
                    loop.log_train()
                stopped = should_stop is not None and should_stop()
                loop.at_point(last or stopped)
                if end_of_epoch or last or stopped:
                    loop.end_epoch(end_of_epoch)
                elif t.checkpoint_every and loop.step % t.checkpoint_every == 0:
                    loop.within_epoch_checkpoint()
                if stopped or last:
                    break
    finally:
        if run.reader is not None:
            run.reader.close()
    return loop.finish()


@dataclass
class _Run:
    """What a run trains with, before any checkpoint is loaded."""

    config: RunConfig
    run_dir: Path
    device: torch.device
    info: Distributed
    resume_from: Path | None
    data: ImageSet | LazyImages | StreamedImages
    plan: Plan
    model: MIMModel
    optimizer: torch.optim.AdamW
    workers: int = 0
    skipped: Skipped = field(default_factory=Skipped)
    reader: StreamReader | None = None


def _prepare(config: RunConfig, run_dir: str | Path, resume: bool) -> _Run:
    """Check the config, pick the device, join DDP, load the data, plan the steps, make or check
    the run folder (rank 0), build the model and the optimizer."""
    validate(config)
    check_model_fits(config.model)
    run_dir = Path(run_dir)
    check_resumable(run_dir, resume)
    device = resolve_device(config.train.device)
    if device.type == "cpu":
        keep_freed_memory()
    info = init_distributed(device)
    if info.world_size > 1 and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    data = open_dataset(config.data, config.model, "train")
    streamed = isinstance(data, StreamedImages)
    workers = resolve_workers(config.data.workers) if streamed or isinstance(data, LazyImages) else 0
    plan = make_plan(config, data.length if streamed else len(data), info.world_size)  # all three may refuse

    if streamed and resume and list_checkpoints(run_dir):  # refused before prepare_run_dir trims metrics
        saved = load_train_state(list_checkpoints(run_dir)[-1]).get("stream")
        if saved and int(saved["world_size"]) != info.world_size:
            raise ConfigError(f"this streamed run was checkpointed with {saved['world_size']} process(es) and is "
                              f"resumed with {info.world_size}; each process reads its own slice of the stream, "
                              f"so resume it with {saved['world_size']} process(es); nothing was changed")
    if config.train.init and not (resume and list_checkpoints(run_dir)):
        init_source(config)  # another shape or method is refused before writing too
    resume_from = prepare_run_dir(run_dir, config, resume) if info.main else None
    if info.world_size > 1:
        box = [str(resume_from) if resume_from else ""]
        dist.broadcast_object_list(box, src=0)
        resume_from = Path(box[0]) if box[0] else None
    torch.manual_seed(config.train.seed)
    model: MIMModel = build_model(config.model, config.mto).to(device)
    if config.train.init and resume_from is None:
        load_init(model, config)
    optimizer = build_optimizer(model, config)
    run = _Run(config, run_dir, device, info, resume_from, data, plan, model, optimizer, workers)
    if streamed:
        m = config.model
        run.reader = StreamReader(data, plan.micro_batch, m.img_size, m.in_chans, config.train.seed, info.rank,
                                  info.world_size, config.data.augment, workers, run.skipped)
    return run


def _resume(run: _Run) -> dict[str, Any]:
    """Load the weights and optimizer state of the checkpoint to resume from, if any; return
    its training state (the step to go on from, the loss sums since the last logged row)."""
    if run.resume_from is None:
        return {"step": 0}
    load_weights(run.model, run.resume_from / WEIGHTS)
    state = load_train_state(run.resume_from)
    run.optimizer.load_state_dict(state["optimizer"])
    if run.reader is not None:  # the stream's reader goes on from where the checkpoint's step left it
        per_step = run.plan.micro_batch * run.config.train.accum_steps
        run.reader.restore(state.get("stream"), int(state["step"]) * per_step)
    return state


class _Loop:
    """The training loop's state between steps: the step, the running sums, the clocks."""

    def __init__(self, run: _Run, state: dict[str, Any], progress: bool,
                 on_log: Callable[[dict[str, Any]], None] | None) -> None:
        """Wrap the model for DDP and torch.compile; start the sums (those of the checkpoint's
        ``state`` when resuming), clocks and progress bar."""
        step = int(state["step"])
        self.run, self.step, self.on_log = run, step, on_log
        info, device = run.info, run.device
        self.net: torch.nn.Module = run.model
        if info.world_size > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                run.model, device_ids=[device.index] if device.type == "cuda" else None)
        if run.config.train.compile:
            self.net = compile_model(self.net, device)  # type: ignore[assignment]
        self.path = VisibleFirst(hidden_count(run.config.model.grid, run.config.mask))
        self.autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                         else contextlib.nullcontext())
        self.last_checkpoint = run.resume_from
        self.bad = torch.zeros((), dtype=torch.bool, device=device)
        self.running: dict[str, torch.Tensor] = {}
        self.epoch_sum, self.epoch_count = torch.zeros((), device=device), 0
        self.tick, self.tick_step = time.perf_counter(), step
        self.tick_from = step  # the step self.tick was taken at (a resumed run's sums start earlier)
        if "sums" in state and info.world_size == 1:  # under DDP each process has its own sums
            self.restore_sums(state["sums"])
        self.epoch_tick = self.tick
        self.lr = 0.0
        self.warned_skip = False
        self.final_loss = float("nan")
        self.bar = tqdm(total=run.plan.total_steps, initial=step, desc=f"{run.config.preset}", unit="step",
                        disable=not (progress and info.main), dynamic_ncols=True)
        self.probes = ProbeSchedule(run.config, run.plan.steps_per_epoch, device)
        self.snapshots = {round(p * run.plan.steps_per_epoch): p for p in parse_points(run.config.train.snapshot_points)}
        self.point_s = 0.0  # time spent in point probes since the epoch began, not counted as training
        self.tracer = (Tracer(run.config, run.run_dir, run.plan.total_steps, run.plan.steps_per_epoch, step)
                       if run.config.train.trace_every and info.main else None)

    def train_step(self, micro: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> None:
        """One optimizer step over this rank's micro-batches (gradient accumulation)."""
        run, t = self.run, self.run.config.train
        plan, optimizer = run.plan, run.optimizer
        self.lr = lr_at(self.step, plan.total_steps, plan.peak_lr, plan.warmup_steps, t.min_lr_fraction,
                        t.schedule)
        for group in optimizer.param_groups:
            group["lr"] = self.lr
        parts: dict[str, torch.Tensor] = {}
        for a, item in enumerate(micro):
            images, mask = to_batch(item, run.config, run.device)
            sync = a == len(micro) - 1 or run.info.world_size == 1
            ctx = contextlib.nullcontext() if sync else self.net.no_sync()  # type: ignore[operator]
            with ctx, self.autocast:
                out = self.net(images, mask, path=self.path)
            (out.loss / t.accum_steps).backward()
            for name, value in {"loss": out.loss, "mim": out.mim_loss, **out.mto}.items():
                parts[name] = parts.get(name, 0) + value.detach().float() / t.accum_steps
        if t.clip_grad:
            torch.nn.utils.clip_grad_norm_(run.model.parameters(), t.clip_grad)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        run.model.after_step(self.step, plan.total_steps)  # the momentum teacher, where the method has one
        self.bad |= ~torch.isfinite(parts["loss"])
        for name, value in parts.items():
            self.running[name] = self.running.get(name, 0) + value
        self.epoch_sum += parts["loss"]
        self.epoch_count += 1
        self.step += 1
        self.bar.update(1)

    def log_train(self) -> None:
        """The 'train' row: mean losses since the last row (over all processes) and images/s."""
        run = self.run
        if run.info.world_size > 1:
            self.running = _all_reduce_mean(self.running)
            self.bad = _all_reduce_mean({"bad": self.bad.float()})["bad"] > 0
        self.stop_if_bad()
        n = self.step - self.tick_step
        now = time.perf_counter()
        row = {"kind": "train", "step": self.step, "epoch": round(self.step / run.plan.steps_per_epoch, 4),
               "lr": self.lr, **{k: float(v) / n for k, v in self.running.items()},
               "images_per_s": (self.step - self.tick_from) * run.plan.global_batch
               / max(now - self.tick, 1e-9)}
        self.skipped_row(row)
        self.final_loss = row["loss"]
        self.bar.set_postfix(loss=f"{row['loss']:.4f}")
        if run.info.main:
            append_metrics(run.run_dir, row)
        if self.on_log:
            self.on_log(row)
        self.running, self.tick, self.tick_step, self.tick_from = {}, now, self.step, self.step

    def skipped_row(self, row: dict[str, Any]) -> None:
        """The unreadable images skipped so far (over all processes) in ``row``, with a warning
        the first time there are any."""
        skipped = self.run.skipped
        count = torch.tensor(float(skipped.count), device=self.run.device)
        if self.run.info.world_size > 1:
            dist.all_reduce(count)
        if count:
            row["skipped_images"] = int(count)
            if not self.warned_skip and self.run.info.main:
                warnings.warn(f"unreadable images are skipped, each replaced by the next readable one "
                              f"({skipped.first or 'on another process'} first); the count so far is "
                              "logged as skipped_images in metrics.jsonl", MTOWarning, stacklevel=2)
            self.warned_skip = True

    def at_point(self, last: bool = False) -> None:
        """Probe rows and snapshots due at this step (rank 0 only); ``last``: the run ends or stops here."""
        run = self.run
        if not run.info.main:
            return
        row = self.probes.at_step(run.model, self.step)
        if row:
            self.point_s += row["probe_s"]
            append_metrics(run.run_dir, row)
            if self.on_log:
                self.on_log(row)
        if self.step in self.snapshots:
            save_snapshot(run.run_dir / "snapshots" / f"epoch-{self.snapshots[self.step]:g}", run.model, run.config)
        if self.tracer is not None:
            start = time.perf_counter()
            for row in self.tracer(run.model, self.step, last):
                append_metrics(run.run_dir, row)
                if self.on_log:
                    self.on_log(row)
            self.point_s += time.perf_counter() - start

    def end_epoch(self, end_of_epoch: bool) -> None:
        """At the end of an epoch, the last step or a stop: the 'epoch' row with its probes
        (rank 0, at the end of an epoch only), then a checkpoint."""
        run = self.run
        self.stop_if_bad()
        epochs_done = self.step / run.plan.steps_per_epoch
        if end_of_epoch and run.info.main:
            row = {"kind": "epoch", "step": self.step, "epoch": self.step // run.plan.steps_per_epoch,
                   "loss": float(self.epoch_sum) / max(self.epoch_count, 1)}
            probe_start = time.perf_counter()
            row.update(self.probes.at_epoch(run.model, row["epoch"], self.step == run.plan.total_steps))
            row["train_s"] = round(probe_start - self.epoch_tick - self.point_s, 3)
            row["probe_s"] = round(time.perf_counter() - probe_start, 3)
            append_metrics(run.run_dir, row)
            if self.on_log:
                self.on_log(row)
            self.epoch_sum, self.epoch_count = torch.zeros((), device=run.device), 0
        self.last_checkpoint = self.checkpoint(epochs_done) or self.last_checkpoint
        self.epoch_tick, self.point_s = time.perf_counter(), 0.0

    def within_epoch_checkpoint(self) -> None:
        """A checkpoint between epoch ends (``train.checkpoint_every``); its time is left out of
        the epoch's train_s, as the probes' is."""
        start = time.perf_counter()
        self.stop_if_bad()
        self.last_checkpoint = self.checkpoint(self.step / self.run.plan.steps_per_epoch) or self.last_checkpoint
        self.point_s += time.perf_counter() - start

    def checkpoint(self, epochs_done: float) -> Path | None:
        """Save weights and optimizer state at this step (rank 0 only); its folder."""
        run = self.run
        positions = [run.reader.state()] if run.reader is not None else []
        if positions and run.info.world_size > 1:  # every process's place in its slice of the stream
            positions = [None] * run.info.world_size
            dist.all_gather_object(positions, run.reader.state())
        if not run.info.main:
            return None
        state = {"optimizer": run.optimizer.state_dict(), "step": self.step, "epoch": epochs_done,
                 "sums": self.sums()}
        if positions:
            state["stream"] = {"world_size": run.info.world_size, "positions": positions}
        try:
            return save_checkpoint(run.run_dir, self.step, run.model, run.config, state,
                                   run.config.train.keep_checkpoints)
        except OSError as error:
            raise TrainingError(f"could not write a checkpoint to {run.run_dir}: "
                                f"{error.strerror or error}. The previous checkpoint "
                                f"({self.last_checkpoint}) is intact; free space and --resume.") from None

    def sums(self) -> dict[str, Any]:
        """The loss sums since the last 'train' row and since the epoch began: a run resumed at
        this step logs from them the same losses as the uninterrupted run."""
        return {"running": {k: v.cpu() for k, v in self.running.items()}, "since": self.tick_step,
                "epoch_sum": self.epoch_sum.cpu(), "epoch_count": self.epoch_count}

    def restore_sums(self, sums: dict[str, Any]) -> None:
        device = self.run.device
        self.running = {k: v.to(device) for k, v in sums["running"].items()}
        self.tick_step, self.epoch_count = int(sums["since"]), int(sums["epoch_count"])
        self.epoch_sum = sums["epoch_sum"].to(device)

    def stop_if_bad(self) -> None:
        """TrainingError if the loss has become non-finite, naming the last good checkpoint."""
        if bool(self.bad):
            t = self.run.config.train
            raise TrainingError(f"the loss became non-finite (NaN or inf) by step {self.step}. Training "
                                f"stopped; the last good checkpoint is {self.last_checkpoint or 'none'}. "
                                "Resume from it with a lower learning rate or a longer warmup: --resume --set "
                                f"train.base_lr=LOWER (now {t.base_lr:g}) or --set train.warmup_fraction=HIGHER "
                                f"(now {t.warmup_fraction:g}); the change is recorded in metrics.jsonl.")

    def finish(self) -> TrainResult:
        """Close the progress bar, wait for every process, and sum up the run."""
        run = self.run
        self.bar.close()
        if run.info.world_size > 1:
            dist.barrier()
        return TrainResult(run.run_dir, self.step, self.step / run.plan.steps_per_epoch,
                           self.last_checkpoint, self.final_loss)


def _all_reduce_mean(values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Average metric tensors over all processes (one collective for all of them)."""
    names = sorted(values)
    stacked = torch.stack([torch.as_tensor(values[n], dtype=torch.float32) for n in names])
    dist.all_reduce(stacked)
    return dict(zip(names, stacked / dist.get_world_size()))
