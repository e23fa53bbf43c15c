"""The per-worker training loop (`train_loop_per_worker`) that Ray Train runs on every worker.

Each epoch: draw the bins (seeded by (seed, epoch, rank)), train over this worker's shard, validate on the
fixed middle-of-bin stacks (rank 0, whole split), decide early stopping (rank 0, broadcast), log to MLflow
(rank 0) and report metrics and a checkpoint (rank 0 writes it). A restart after a worker failure, or
`--resume`, continues from the checkpoint exactly: model, optimiser, schedule, epoch, best score and
patience counter.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
from collections import defaultdict
from typing import Any

import numpy as np
import torch

from daif.checkpoint import load_checkpoint, save_checkpoint
from daif.config import Config, LossConfig, OptimConfig, from_dict, to_yaml
from daif.data.bins import BinSampler, make_batch
from daif.losses import Objective, objective, term_names
from daif.metrics import AIF_METRIC_NAMES, DEPTH_METRIC_NAMES, aif_metrics, depth_metrics, psnr, ssim
from daif.model import DAIFNet, depth_head_type
from daif.optics import ThinLensCamera, defocus_sigma
from daif.runtime import cpu_threads
from daif.storage import local_copy


def build_model(config: Config, near: float, far: float, camera: ThinLensCamera | None = None) -> DAIFNet:
    """The network of `config.model` over [near, far] metres, its depth head's options from `config`
    (`DepthHead.options`); `camera` is the model's default (the select head's defocus prior, the "search" head)."""
    head = depth_head_type(config.model.depth_head)
    return DAIFNet(
        width=config.model.width, levels=config.model.levels, near=near, far=far, focus_scale=config.model.focus_scale or None,
        aif_head=config.model.aif_head, depth_head=config.model.depth_head, camera=camera.to_dict() if camera is not None else None,
        aif_temperature=config.model.aif_temperature, detail_input=config.model.detail_input, **head.options(config),
    )


def forward_objective(net: DAIFNet, model: torch.nn.Module, stack: torch.Tensor, focus: torch.Tensor, camera: ThinLensCamera,
                      loss: LossConfig, autocast: bool = False) -> tuple[dict[str, torch.Tensor], Objective]:
    """(the network's `details` in float32, the objective) of one batch as training computes them: `model` (`net`,
    or `net` wrapped in DDP) runs with its depth head's `training_options` (bf16 autocast on CUDA with `autocast`),
    and the objective adds the head's own `terms` to the paper's."""
    options = net.depth_head.training_options(loss)
    if autocast:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(stack, focus, details=True, **options)
        out = {k: v.float() for k, v in out.items()}  # the renderer and losses run in float32
    else:
        out = model(stack, focus, details=True, **options)
    return out, objective(stack, focus, out["aif"], out["depth"], camera, loss, extra_terms=net.depth_head.terms(loss, out))


def lr_factor(step: int, total_steps: int, schedule: str, warmup_steps: int = 0) -> float:
    """The learning rate's factor at optimiser step `step` (0-based) of `total_steps`.

    Warm-up: (step + 1) / warmup_steps while step < warmup_steps. Then "constant": 1, or "cosine":
    0.5 (1 + cos(pi t)) with t = (step - warmup_steps) / (total_steps - warmup_steps), held at t = 1 if training
    runs longer."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    span = max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(step - warmup_steps, span) / span))


def make_optimiser(parameters, optim: OptimConfig, total_steps: int,
                   epochs: int) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW at optim.lr with optim.weight_decay, and its LambdaLR scheduler: the factor `lr_factor` at each of
    `total_steps` optimiser steps (spread over `epochs` epochs), `optim.schedule` after a linear warm-up over
    round(total_steps * optim.warmup_epochs / epochs) steps: the warm-up's share of the training, at any step count."""
    warmup_steps = round(total_steps * optim.warmup_epochs / epochs)
    optimiser = torch.optim.AdamW(parameters, lr=optim.lr, weight_decay=optim.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: lr_factor(step, total_steps, optim.schedule, warmup_steps))
    return optimiser, scheduler


def samplers(config: Config, num_images: int) -> tuple[BinSampler, BinSampler]:
    """(train, validation) samplers: binned draws and middle-of-bin stacks, or the fixed indices."""
    if config.data.mode == "fixed":
        indices = list(config.data.fixed_indices) or list(range(num_images))
        train = validation = BinSampler(num_images, len(indices), "fixed", indices)
    elif config.data.mode == "binned":
        train, validation = BinSampler(num_images, config.data.num_bins, "random"), BinSampler(num_images, config.data.num_bins, "middle")
    else:
        raise ValueError(f"data.mode: expected 'binned' or 'fixed', got {config.data.mode!r}")
    return train, validation


class _Reducer:
    """Sums of (value x count) per key, averaged over all workers."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, float] = defaultdict(float)

    def add(self, values: dict[str, float], count: int) -> None:
        for key, value in values.items():
            if value == value:  # NaN (no valid pixel) does not count
                self.sums[key] += float(value) * count
                self.counts[key] += count

    def mean(self, keys: list[str], world_size: int, device: torch.device | None = None) -> dict[str, float]:
        totals = torch.tensor([[self.sums[k], self.counts[k]] for k in keys], dtype=torch.float64, device=device)
        if world_size > 1:
            torch.distributed.all_reduce(totals)  # on the worker's device: NCCL takes no CPU tensors
        return {k: (float(s / c) if c else float("nan")) for k, (s, c) in zip(keys, totals.tolist())}


@dataclasses.dataclass
class Worker:
    """Everything one worker trains with; `step`, `epoch`, `best` and `stale` are what a checkpoint restores."""

    config: Config
    loop_config: dict[str, Any]
    rank: int
    world_size: int
    device: torch.device
    camera: ThinLensCamera
    focus_all: np.ndarray  # (F,) metres, the store's stack
    depth_range: tuple[float, float]
    net: DAIFNet  # unwrapped (rank 0 validates and checkpoints it)
    model: torch.nn.Module  # DDP-wrapped when world_size > 1
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    total_steps: int
    step: int = 0
    start_epoch: int = 0
    best: float | None = None
    stale: int = 0


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    import ray
    import ray.train

    from daif.tracking import RunLogger

    worker = _setup(loop_config)
    _restore(worker, ray.train.get_checkpoint(), loop_config.get("resume_from"))
    train_sampler, val_sampler = samplers(worker.config, len(worker.focus_all))
    run_id = loop_config.get("run_id")
    run_logger = RunLogger(loop_config["tracking_uri"], run_id) if run_id else None
    if run_logger is not None:  # every worker says where it runs (a restart after a lost node overwrites it)
        node_id = ray.get_runtime_context().get_node_id()
        node_ip = next((n["NodeManagerAddress"] for n in ray.nodes() if n["NodeID"] == node_id), "")
        run_logger.tags({f"daif.worker.{worker.rank}.node_id": node_id, f"daif.worker.{worker.rank}.node_ip": node_ip})
    tracker = run_logger if worker.rank == 0 else None
    # Epochs are logged before their checkpoint is written: one that was logged and then lost to a kill is run
    # again after a resume, and its first logging is kept (each epoch is logged once).
    logged = tracker.logged_steps("train/total") if tracker is not None and worker.start_epoch > 0 else set()
    epochs, stop_after = worker.config.train.epochs, worker.config.train.stop_after
    for epochs_this_run, epoch in enumerate(range(worker.start_epoch, epochs), start=1):
        metrics = _train_epoch(worker, train_sampler, epoch)
        figure_batch = None
        if worker.rank == 0:  # the whole (small) validation split, on the unwrapped net: no collectives
            val_metrics, figure_batch = _validate(worker, val_sampler, _wants_figures(worker.config, epoch))
            metrics.update(val_metrics)
        metrics["epoch"] = epoch
        stop = _update_best(worker, metrics) or (stop_after > 0 and epochs_this_run >= stop_after)
        if tracker is not None and epoch not in logged:
            _log_epoch(tracker, metrics, figure_batch, epoch)
        _report(worker, metrics, epoch)
        if stop:
            break


def _setup(loop_config: dict[str, Any]) -> Worker:
    import ray.train
    import ray.train.torch

    config = from_dict(loop_config["config"])
    context = ray.train.get_context()
    torch.manual_seed(config.train.seed)
    device = ray.train.torch.get_device()
    if device.type == "cpu":  # torch defaults to every core of the node; a worker uses the CPUs it reserved
        torch.set_num_threads(cpu_threads(config.scaling.cpus_per_worker))
    near, far = loop_config["depth_range"]
    camera = ThinLensCamera.from_dict(loop_config["camera"])
    net = build_model(config, near, far, camera)
    model = ray.train.torch.prepare_model(net)  # to the device; DDP when world_size > 1
    total_steps = loop_config["steps_per_epoch"] * config.train.epochs
    optimizer, scheduler = make_optimiser(model.parameters(), config.optim, total_steps, config.train.epochs)
    return Worker(
        config=config, loop_config=loop_config, rank=context.get_world_rank(), world_size=context.get_world_size(),
        device=device, camera=camera,
        focus_all=np.asarray(loop_config["focus_distances"], dtype=np.float32), depth_range=(near, far),
        net=net, model=model, optimizer=optimizer, scheduler=scheduler, total_steps=total_steps,
    )


def _restore(worker: Worker, checkpoint, resume_dir: str | None) -> None:
    """Continue from Ray Train's latest checkpoint (a restart) or else `resume_dir` (`--resume`, a path or a storage
    URI); else start from `train.init_from`'s weights (the driver's "init_state") when given."""
    if checkpoint is None and not resume_dir:
        if worker.loop_config.get("init_state"):
            worker.net.load_state_dict({name: torch.tensor(array) for name, array in worker.loop_config["init_state"].items()})
        return
    with (checkpoint.as_directory() if checkpoint is not None else local_copy(resume_dir)) as directory:
        state, meta = load_checkpoint(directory)
    worker.net.load_state_dict(state["model"])
    worker.optimizer.load_state_dict(state["optimizer"])
    worker.step, worker.start_epoch = int(state["step"]), int(state["epoch"]) + 1
    worker.scheduler.last_epoch = worker.step
    for group in worker.optimizer.param_groups:
        group["lr"] = group["initial_lr"] * worker.scheduler.lr_lambdas[0](worker.step)
    worker.best, worker.stale = meta.get("best"), int(meta.get("stale", 0))


def _score(worker: Worker, model, batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], Objective]:
    """`forward_objective` of one batch on this worker (a "search" head reads its cost volume with the weight the
    energy scores, in training and validation alike; the saved model reads it with its own: daif.search_head)."""
    autocast = worker.device.type == "cuda" and worker.config.train.mixed_precision
    return forward_objective(worker.net, model, batch["stack"], batch["focus_distances"], worker.camera, worker.config.loss, autocast)


def _batches(worker: Worker, split: str, sampler: BinSampler, rng: np.random.Generator, batch_size: int):
    """This worker's `split` shard as batches on its device (`daif.data.bins.make_batch`)."""
    import ray.train

    for rows in ray.train.get_dataset_shard(split).iter_batches(batch_size=batch_size, batch_format="numpy"):
        batch = make_batch(rows, sampler.draw(rng, len(rows["scene_id"])), worker.focus_all)
        yield {k: v.to(worker.device, non_blocking=True) for k, v in batch.items()}


def _train_epoch(worker: Worker, sampler: BinSampler, epoch: int) -> dict[str, float]:
    """One pass over this worker's shard; returns train/<term> means over all workers, throughput, lr."""
    config = worker.config
    worker.model.train()
    rng = np.random.default_rng([config.train.seed, epoch, worker.rank])
    sums = _Reducer()
    started, samples = time.perf_counter(), 0
    per_worker_batch = max(1, config.optim.batch_size // worker.world_size)
    for batch in _batches(worker, "train", sampler, rng, per_worker_batch):
        _, result = _score(worker, worker.model, batch)
        worker.optimizer.zero_grad(set_to_none=True)
        result.total.backward()
        if config.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(worker.model.parameters(), config.optim.grad_clip)
        worker.optimizer.step()
        worker.scheduler.step()
        worker.step += 1
        count = batch["stack"].shape[0]
        samples += count
        sums.add({"total": float(result.total.detach()), **{k: float(v.detach()) for k, v in result.terms.items()}}, count)
    seconds = time.perf_counter() - started
    keys = ["total", *term_names(config.loss)]
    metrics = {f"train/{k}": v for k, v in sums.mean(keys, worker.world_size, worker.device).items()}
    throughput = torch.tensor([samples / max(seconds, 1e-9)], dtype=torch.float64, device=worker.device)
    if worker.world_size > 1:
        torch.distributed.all_reduce(throughput)
    metrics["train/samples_per_s"] = float(throughput)
    metrics["lr"] = worker.optimizer.param_groups[0]["lr"]
    return metrics


def _wants_figures(config: Config, epoch: int) -> bool:
    every = config.train.figures_every
    return epoch == config.train.epochs - 1 or (every > 0 and epoch % every == 0)


@torch.no_grad()
def _validate(worker: Worker, sampler: BinSampler, want_figures: bool) -> tuple[dict[str, float], dict | None]:
    """val/<term>, val/<depth metric>, val/<AIF metric> over the whole validation split, and the first
    batch's first scene as `daif.viz.training_figure` arguments when `want_figures`. Depth metrics count
    valid pixels only and psnr / ssim the scenes with a true AIF (`has_aif`); a split with none logs no such
    metric (NaN, skipped by the tracker)."""
    config, net = worker.config, worker.net
    net.eval()
    sums = _Reducer()
    figure_batch = None
    rng = np.random.default_rng(0)  # unused by middle/fixed draws
    for batch in _batches(worker, "val", sampler, rng, config.optim.batch_size):
        out, result = _score(worker, net, batch)
        aif, depth = out["aif"], out["depth"]
        count = batch["stack"].shape[0]
        sums.add({"total": float(result.total), **{k: float(v) for k, v in result.terms.items()}}, count)
        sums.add(depth_metrics(depth, batch["depth"], batch["valid"]), count)
        sums.add(aif_metrics(aif), count)  # mg, sf: no ground truth
        known = batch["has_aif"] if "has_aif" in batch else torch.ones(count, dtype=torch.bool, device=aif.device)
        if known.any():  # a captured stack's stored AIF may be zeros, not a true AIF
            pred, true = aif[known], batch["aif"][known]
            sums.add({"psnr": float(psnr(pred, true).mean()), "ssim": float(ssim(pred, true).mean())}, int(known.sum()))
        if want_figures and figure_batch is None:
            figure_batch = _figure_batch(worker, batch, result, aif, depth)
    keys = ["total", *term_names(config.loss), *DEPTH_METRIC_NAMES, *AIF_METRIC_NAMES]
    net.train()
    return {f"val/{k}": v for k, v in sums.mean(keys, world_size=1).items()}, figure_batch


def _figure_batch(worker: Worker, batch: dict, result, aif: torch.Tensor, depth: torch.Tensor) -> dict[str, np.ndarray]:
    return {
        "stack": batch["stack"][0].cpu().numpy(), "focus_distances": batch["focus_distances"][0].cpu().numpy(),
        "reconstruction": result.reconstruction[0].cpu().numpy(), "aif": aif[0].cpu().numpy(),
        "coarse_aif": result.coarse_aif[0].cpu().numpy(), "depth": depth[0, 0].cpu().numpy(),
        "true_depth": batch["depth"][0, 0].cpu().numpy() if bool(batch["valid"][0].any()) else None,
        "true_aif": batch["aif"][0].cpu().numpy() if "has_aif" not in batch or bool(batch["has_aif"][0]) else None,
        "sigma": defocus_sigma(depth[:1], batch["focus_distances"][:1], worker.camera)[0].cpu().numpy(),
    }


def _update_best(worker: Worker, metrics: dict[str, float]) -> bool:
    """Track the best validation score (rank 0 has it) and return whether to stop early, the same on every worker."""
    config = worker.config
    sign = 1.0 if config.train.val_mode == "max" else -1.0
    score = metrics.get(config.train.val_metric)
    if score is not None and score == score and (worker.best is None or sign * score > sign * worker.best):
        worker.best, worker.stale = score, 0
    else:
        worker.stale += 1
    metrics["best_score"] = worker.best if worker.best is not None else float("nan")
    stop = config.train.patience > 0 and worker.stale >= config.train.patience
    if worker.world_size > 1:  # only rank 0 validated: its decision holds for every worker, or DDP would hang
        decision = torch.tensor([float(stop)], device=worker.device)
        torch.distributed.broadcast(decision, src=0)
        stop = bool(decision.item())
    return stop


def _log_epoch(tracker, metrics: dict[str, float], figure_batch: dict | None, epoch: int) -> None:
    tracker.metrics({k: v for k, v in metrics.items() if k != "epoch"}, step=epoch)
    if figure_batch is not None:
        from daif.viz import training_figure

        tracker.figure(training_figure(**figure_batch, epoch=epoch), f"epoch_{epoch:04d}.png")


def _report(worker: Worker, metrics: dict[str, float], epoch: int) -> None:
    """ray.train.report of the epoch's metrics, with rank 0's checkpoint (`daif.checkpoint`)."""
    import ray.train

    loop_config = worker.loop_config
    with tempfile.TemporaryDirectory() as directory:
        checkpoint = None
        if worker.rank == 0:
            meta = {"best": worker.best, "stale": worker.stale, "run_id": loop_config.get("run_id"),
                    "manifest_hash": loop_config["manifest_hash"], "camera": worker.camera.to_dict(),
                    "focus_distances": worker.focus_all.tolist(), "depth_range": list(worker.depth_range), "metrics": metrics}
            save_checkpoint(directory, worker.net, meta, worker.optimizer, worker.step, epoch, to_yaml(worker.config))
            checkpoint = ray.train.Checkpoint.from_directory(directory)
        ray.train.report(metrics, checkpoint=checkpoint)
