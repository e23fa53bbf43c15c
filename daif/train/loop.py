"""The per-worker training loop (`train_loop_per_worker`) that Ray Train runs on every worker.

Each epoch: draw the bins (seeded by (seed, epoch, rank)), train over this worker's shard, validate
on the fixed middle-of-bin stacks (rank 0, whole split), report metrics and a checkpoint (rank 0 writes it), log to MLflow
(rank 0). A restart after a worker failure, or `--resume`, continues from the checkpoint exactly:
model, optimiser, schedule, epoch, best score and patience counter.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from daif.config import Config, from_dict, to_yaml
from daif.data.bins import BinSampler, make_batch, subsample_stack
from daif.losses import objective
from daif.metrics import aif_metrics, depth_metrics
from daif.model import DAIFNet
from daif.optics import ThinLensCamera, defocus_sigma

STATE_FILE = "state.pt"
META_FILE = "meta.json"
CONFIG_FILE = "config.yaml"


def build_model(config: Config, near: float, far: float) -> DAIFNet:
    return DAIFNet(
        width=config.model.width, levels=config.model.levels, depth_mapping=config.model.depth_mapping, near=near, far=far,
        focus_scale=config.model.focus_scale or None, aif_head=config.model.aif_head,
    )


def lr_factor(step: int, total_steps: int, schedule: str) -> float:
    """Cosine annealing over all iterations (held at its end if training runs longer)."""
    if schedule == "constant":
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / max(1, total_steps)))


def samplers(config: Config, num_images: int) -> tuple[BinSampler, BinSampler]:
    """(train, validation) samplers: binned draws and middle-of-bin stacks, or the fixed indices.
    `data.min_stack_size` (training only, validation keeps the full stack) must lie in 0..K."""
    if config.data.mode == "fixed":
        indices = list(config.data.fixed_indices) or list(range(num_images))
        train = validation = BinSampler(num_images, len(indices), "fixed", indices)
    elif config.data.mode == "binned":
        train, validation = BinSampler(num_images, config.data.num_bins, "random"), BinSampler(num_images, config.data.num_bins, "middle")
    else:
        raise ValueError(f"data.mode: expected 'binned' or 'fixed', got {config.data.mode!r}")
    if not 0 <= config.data.min_stack_size <= train.num_bins:
        raise ValueError(f"data.min_stack_size: expected 0 (off) or 1..{train.num_bins} (the stack size), got {config.data.min_stack_size}")
    return train, validation


def save_checkpoint(directory: Path, net: DAIFNet, optimizer, step: int, epoch: int, config: Config, meta: dict[str, Any]) -> None:
    """state.pt (tensors and plain values only: loads with weights_only=True), config.yaml, meta.json."""
    torch.save(
        {"model": net.state_dict(), "optimizer": optimizer.state_dict(), "step": step, "epoch": epoch}, directory / STATE_FILE
    )
    (directory / CONFIG_FILE).write_text(to_yaml(config))
    (directory / META_FILE).write_text(json.dumps({**meta, "epoch": epoch, "step": step, "model": net.config}, indent=2))


def load_state(directory: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """(state, meta) of a checkpoint directory."""
    directory = Path(directory)
    state = torch.load(directory / STATE_FILE, map_location="cpu", weights_only=True)
    return state, json.loads((directory / META_FILE).read_text())


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


def _to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _predict(model, stack: torch.Tensor, focus: torch.Tensor, device: torch.device, mixed_precision: bool):
    if device.type == "cuda" and mixed_precision:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            aif, depth = model(stack, focus)
        return aif.float(), depth.float()  # the renderer and losses run in float32
    return model(stack, focus)


TERM_KEYS = ["total", "recon", "blur", "aif_recon", "aif_blur", "smooth", "sharpness"]


def _term_keys(config: Config, training: bool) -> list[str]:
    """The loss terms a run reports (`daif.losses.objective`): coarse_recon in validation always, in training
    where it is weighted; search only where it is weighted (it costs a search per batch)."""
    keys = list(TERM_KEYS)
    if config.loss.coarse_recon or not training:
        keys.append("coarse_recon")
    if config.loss.search:
        keys.append("search")
    return keys


DEPTH_KEYS = ["abs_rel", "sq_rel", "rmse", "rmse_log10", "rmse_log", "delta1", "delta2", "delta3"]
AIF_KEYS = ["mg", "sf", "psnr", "ssim"]


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    import ray.train
    import ray.train.torch

    from daif.tracking import RunLogger

    config = from_dict(loop_config["config"])
    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    torch.manual_seed(config.train.seed)
    device = ray.train.torch.get_device()
    if device.type == "cpu":  # torch defaults to every core of the node; a worker uses the CPUs it reserved
        torch.set_num_threads(max(1, int(config.scaling.cpus_per_worker)))
    camera = ThinLensCamera.from_dict(loop_config["camera"])
    focus_all = np.asarray(loop_config["focus_distances"], dtype=np.float32)
    near, far = loop_config["depth_range"]
    search_range = (near, far) if config.loss.search else None  # the search term's candidates span the model's range

    net = build_model(config, near, far)
    model = ray.train.torch.prepare_model(net)  # to the device; DDP when world_size > 1
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.optim.lr, weight_decay=config.optim.weight_decay)
    total_steps = loop_config["steps_per_epoch"] * config.train.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, config.optim.schedule)
    )

    start_epoch, step, best, stale = 0, 0, None, 0
    checkpoint = ray.train.get_checkpoint()
    resume_dir = loop_config.get("resume_from")
    if checkpoint is not None or resume_dir:
        with (checkpoint.as_directory() if checkpoint is not None else contextlib.nullcontext(resume_dir)) as directory:
            state, meta = load_state(directory)
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, start_epoch = int(state["step"]), int(state["epoch"]) + 1
        scheduler.last_epoch = step
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] * lr_factor(step, total_steps, config.optim.schedule)
        best, stale = meta.get("best"), int(meta.get("stale", 0))

    train_sampler, val_sampler = samplers(config, len(focus_all))
    tracker = RunLogger(loop_config["tracking_uri"], loop_config["run_id"]) if rank == 0 and loop_config.get("run_id") else None
    per_worker_batch = max(1, config.optim.batch_size // world_size)
    sign = 1.0 if config.train.val_mode == "max" else -1.0
    epochs_this_run = 0

    for epoch in range(start_epoch, config.train.epochs):
        _inject_fault(config, epoch, loop_config.get("storage_dir", ""))
        model.train()
        rng = np.random.default_rng([config.train.seed, epoch, rank])
        # the depth jitter's draws, fixed by (seed, epoch, rank) like the bins, so a resumed run repeats them
        jitter_seed = np.random.default_rng([config.train.seed, epoch, rank, 1]).integers(2**62)
        jitter = torch.Generator().manual_seed(int(jitter_seed))
        train_sums = _Reducer()
        started, samples = time.perf_counter(), 0
        for rows in ray.train.get_dataset_shard("train").iter_batches(batch_size=per_worker_batch, batch_format="numpy"):
            draw = train_sampler.draw(rng, len(rows["scene_id"]))
            if config.data.min_stack_size:  # a random stack size per batch (the network takes any)
                draw = subsample_stack(draw, rng, config.data.min_stack_size)
            batch = _to_device(make_batch(rows, draw, focus_all), device)
            aif, depth = _predict(model, batch["stack"], batch["focus_distances"], device, config.train.mixed_precision)
            result = objective(
                batch["stack"], batch["focus_distances"], aif, depth, camera, config.loss, generator=jitter, depth_range=search_range
            )
            optimizer.zero_grad(set_to_none=True)
            result.total.backward()
            if config.optim.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            count = batch["stack"].shape[0]
            samples += count
            train_sums.add({"total": float(result.total), **{k: float(v) for k, v in result.terms.items()}}, count)
        seconds = time.perf_counter() - started
        metrics = {f"train/{k}": v for k, v in train_sums.mean(_term_keys(config, training=True), world_size, device).items()}
        throughput = torch.tensor([samples / max(seconds, 1e-9)], dtype=torch.float64, device=device)
        if world_size > 1:
            torch.distributed.all_reduce(throughput)
        metrics["train/samples_per_s"] = float(throughput)
        metrics["lr"] = optimizer.param_groups[0]["lr"]

        last_epoch = epoch == config.train.epochs - 1
        figure_batch = None
        want_figures = rank == 0 and (last_epoch or (config.train.figures_every > 0 and epoch % config.train.figures_every == 0))
        if rank == 0:  # the whole (small) validation split, on the unwrapped net: no collectives
            val_metrics, figure_batch = _validate(net, config, camera, val_sampler, focus_all, device, want_figures, search_range)
            metrics.update(val_metrics)
        metrics["epoch"] = epoch

        score = metrics.get(config.train.val_metric)
        if score is not None and score == score and (best is None or sign * score > sign * best):
            best, stale = score, 0
        else:
            stale += 1
        metrics["best_score"] = best if best is not None else float("nan")
        stop_early = config.train.patience > 0 and stale >= config.train.patience
        if world_size > 1:  # only rank 0 validated: its decision holds for every worker, or DDP would hang
            decision = torch.tensor([float(stop_early)], device=device)
            torch.distributed.broadcast(decision, src=0)
            stop_early = bool(decision.item())
        epochs_this_run += 1
        stop_now = stop_early or (config.train.stop_after > 0 and epochs_this_run >= config.train.stop_after)

        if tracker is not None:
            tracker.metrics({k: v for k, v in metrics.items() if k != "epoch"}, step=epoch)
            if figure_batch is not None:
                from daif.viz import training_figure

                tracker.figure(training_figure(**figure_batch, epoch=epoch), f"epoch_{epoch:04d}.png")

        with tempfile.TemporaryDirectory() as directory:
            checkpoint_out = None
            if rank == 0:
                meta = {"best": best, "stale": stale, "run_id": loop_config.get("run_id"),
                        "manifest_hash": loop_config["manifest_hash"], "camera": camera.to_dict(),
                        "focus_distances": focus_all.tolist(), "depth_range": [near, far], "metrics": metrics}
                save_checkpoint(Path(directory), net, optimizer, step, epoch, config, meta)
                checkpoint_out = ray.train.Checkpoint.from_directory(directory)
            ray.train.report(metrics, checkpoint=checkpoint_out)
        if stop_now:
            break


def _inject_fault(config: Config, epoch: int, storage_dir: str) -> None:
    """Test hook: raise once at `train.fail_at_epoch` (a marker file in the run's storage makes it once)."""
    if config.train.fail_at_epoch != epoch:
        return
    marker = Path(storage_dir or tempfile.gettempdir()) / f".daif-fault-injected-{epoch}"
    if marker.exists():
        return
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("injected")
    raise RuntimeError(f"injected fault at epoch {epoch} (train.fail_at_epoch)")


@torch.no_grad()
def _validate(model, config: Config, camera, sampler: BinSampler, focus_all, device, want_figures: bool, search_range):
    import ray.train

    model.eval()
    sums = _Reducer()
    figure_batch = None
    rng = np.random.default_rng(0)  # unused by middle/fixed draws
    for rows in ray.train.get_dataset_shard("val").iter_batches(batch_size=config.optim.batch_size, batch_format="numpy"):
        batch = _to_device(make_batch(rows, sampler.draw(rng, len(rows["scene_id"])), focus_all), device)
        aif, depth = _predict(model, batch["stack"], batch["focus_distances"], device, config.train.mixed_precision)
        result = objective(batch["stack"], batch["focus_distances"], aif, depth, camera, config.loss, depth_range=search_range)
        count = batch["stack"].shape[0]
        sums.add({"total": float(result.total), **{k: float(v) for k, v in result.terms.items()}}, count)
        sums.add(depth_metrics(depth, batch["depth"], batch["valid"]), count)
        sums.add(aif_metrics(aif, batch["aif"]), count)
        if want_figures and figure_batch is None:
            figure_batch = {
                "stack": batch["stack"][0].cpu().numpy(), "focus_distances": batch["focus_distances"][0].cpu().numpy(),
                "reconstruction": result.reconstruction[0].cpu().numpy(), "aif": aif[0].cpu().numpy(),
                "coarse_aif": result.coarse_aif[0].cpu().numpy(), "depth": depth[0, 0].cpu().numpy(),
                "true_depth": batch["depth"][0, 0].cpu().numpy(), "true_aif": batch["aif"][0].cpu().numpy(),
                "sigma": defocus_sigma(depth[:1], batch["focus_distances"][:1], camera)[0].cpu().numpy(),
            }
    keys = _term_keys(config, training=False) + DEPTH_KEYS + AIF_KEYS
    model.train()
    return {f"val/{k}": v for k, v in sums.mean(keys, world_size=1).items()}, figure_batch
