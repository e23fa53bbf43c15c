"""Per-image metrics of every method under every condition, computed in this process or on Ray Data."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from daif.config import SEARCH_INTENSITY_WEIGHT
from daif.data.store import COLUMNS
from daif.evaluate.plan import ANALYTIC, BASELINE, BATCH_SIZE, SEARCH, Condition, mask_name
from daif.evaluate.rows import AIF_KEYS, ImageRow, from_columns, to_columns
from daif.images import to_float_chw


class SceneEvaluator:
    """Per-image metrics of every method under every condition for a batch of store rows.

    A Ray Data class UDF: the models load once per actor in __init__. The same object evaluates
    batches in-process on the small path. Input batch: the store columns (numpy, see
    daif.data.store). Output: `daif.evaluate.rows.to_columns` of one ImageRow per (scene,
    condition, method, mask), in that nesting order from the outside: condition, method, mask, scene.
    A scene whose stored AIF is no ground truth (`has_aif` False: a captured stack without one) gets NaN
    PSNR and SSIM (MG, SF, recon and detail need no ground truth and are kept).
    """

    def __init__(
        self,
        model_sources: Sequence[str],
        method_names: Sequence[str],
        conditions: Sequence[Condition],
        camera: dict[str, float],
        kernel_size: int,
        max_depths: Sequence[float | None] = (None,),
        tracking_uri: str = "",
        device: str = "cpu",
        threads: int | None = None,
        recon_psf: str = "gaussian",
    ):
        import torch

        from daif.model_io import load_model
        from daif.optics import ThinLensCamera

        if threads:
            torch.set_num_threads(threads)
        self.device = torch.device(device)
        self.models = {name: load_model(source, tracking_uri)[0].to(self.device) for name, source in zip(method_names, model_sources)}
        self.conditions = list(conditions)
        self.camera = ThinLensCamera.from_dict(camera)
        self.kernel_size = kernel_size
        self.max_depths = list(max_depths)
        self.recon_psf = recon_psf
        first = next(iter(self.models.values()))
        # the defocus search spans the first model's depth range, with the error its cost volume is read with (a
        # "search" head's own, else the default)
        self.search_range = (first.near, first.far)
        self.search_intensity = first.config.get("cost_intensity_weight", SEARCH_INTENSITY_WEIGHT)

    def inputs(self, batch: dict[str, np.ndarray], condition: Condition):
        """stack (B, K, 3, H, W) in [0, 1] and focus distances (B, K) of `condition` for the batch."""
        import torch

        from daif.optics import render_focal_stack

        if condition.indices is not None:
            chosen = np.asarray(batch["stack"])[:, list(condition.indices)]  # (B, K, H, W, 3) uint8
            focus = torch.tensor(condition.focus_distances, dtype=torch.float32).expand(len(chosen), -1)
            return to_float_chw(chosen).to(self.device), focus.to(self.device)
        aif = to_float_chw(batch["aif"])
        depth = torch.from_numpy(np.asarray(batch["depth"], dtype=np.float32))[:, None]
        focus = torch.tensor(condition.focus_distances, dtype=torch.float32)
        with torch.no_grad():
            stack = render_focal_stack(aif.to(self.device), depth.to(self.device), focus.to(self.device), self.camera, self.kernel_size)
        stack = stack.mul(255.0).round().div(255.0)  # the store keeps 8-bit stacks; so do these
        return stack, focus.to(self.device).expand(len(aif), -1)

    def predict(self, method: str, stack, focus):
        """(depth (B, 1, H, W) metres, aif (B, 3, H, W)) of one method."""
        import torch

        from daif.baseline import depth_from_focus
        from daif.losses import coarse_aif
        from daif.search import defocus_search

        with torch.no_grad():
            if method == BASELINE:
                return depth_from_focus(stack, focus, self.camera)
            if method == SEARCH:
                depth = defocus_search(stack, focus, self.camera, *self.search_range, kernel_size=self.kernel_size,
                                       intensity_weight=self.search_intensity)
                return depth, coarse_aif(stack, focus, depth, self.camera)
            aif, depth = self.models[method](stack, focus, camera=self.camera)  # a "search" head uses the store's camera
            return depth, aif

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        from daif.losses import reconstruction_errors

        gt_depth = torch.from_numpy(np.asarray(batch["depth"], dtype=np.float32))[:, None]
        valid = torch.from_numpy(np.asarray(batch["valid"], dtype=bool))[:, None]
        gt_aif = to_float_chw(batch["aif"])
        scene_ids = [str(s) for s in batch["scene_id"]]
        rows: list[ImageRow] = []
        for condition in self.conditions:
            stack, focus = self.inputs(batch, condition)
            for method in [*self.models, *ANALYTIC]:
                depth, aif = (t.float() for t in self.predict(method, stack, focus))
                main = condition.study == "main"
                fit = reconstruction_errors(stack, focus, aif, depth, self.camera, psf=self.recon_psf) if main else None
                depth, aif = depth.cpu(), aif.cpu()
                if main:
                    aif_values = image_metrics(aif, gt_aif, fit)
                    for values, known in zip(aif_values, np.asarray(batch["has_aif"], dtype=bool)):
                        if not known:
                            values.update(psnr=math.nan, ssim=math.nan)
                else:
                    aif_values = [{key: math.nan for key in AIF_KEYS} for _ in scene_ids]
                for max_depth in self.max_depths:
                    rows += depth_rows(scene_ids, condition.name, method, max_depth, depth, gt_depth, valid, aif_values)
        return to_columns(rows)


def image_metrics(aif, gt_aif, fit) -> list[dict[str, float]]:
    """Per image of the batch: {AIF_KEYS: value}, of predicted `aif` against `gt_aif` (B, 3, H, W), and `fit`,
    the method's `daif.losses.reconstruction_errors` of the stack it was given ({"recon": (B,), "detail": (B,)}, no
    ground truth)."""
    from daif.metrics import mean_gradient, psnr, spatial_frequency, ssim

    values = {"mg": mean_gradient(aif).tolist(), "sf": spatial_frequency(aif).tolist(),
              "psnr": psnr(aif, gt_aif).tolist(), "ssim": ssim(aif, gt_aif).tolist(),
              **{key: errors.cpu().tolist() for key, errors in fit.items()}}
    return [{key: float(values[key][i]) for key in AIF_KEYS} for i in range(len(aif))]


def depth_rows(
    scene_ids: Sequence[str], condition: str, method: str, max_depth: float | None, depth, gt_depth, valid,
    aif_values: Sequence[dict[str, float]],
) -> list[ImageRow]:
    """One ImageRow per image of the batch: depth metrics of `depth` (B, 1, H, W) under one mask."""
    import torch

    from daif.metrics import depth_metrics

    rows = []
    for i, scene_id in enumerate(scene_ids):
        one = slice(i, i + 1)
        mask = valid[one] & torch.isfinite(gt_depth[one]) & (gt_depth[one] > 0)
        if max_depth is not None:
            mask &= gt_depth[one] < max_depth
        values = depth_metrics(depth[one], gt_depth[one], valid[one], max_depth, "image")
        rows.append(ImageRow(scene_id, condition, method, mask_name(max_depth), int(mask.sum()), values, aif_values[i]))
    return rows


# ------------------------------------------------------------------ running it


def scenes_to_batch(scenes: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Store scenes -> a numpy batch shaped like Ray Data's (scene_id as an object array)."""
    batch = {c: np.stack([s[c] for s in scenes]) for c in COLUMNS if c != "scene_id"}
    batch["scene_id"] = np.array([s["scene_id"] for s in scenes], dtype=object)
    return batch


def _local_batches(store, split: str, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    scenes: list[dict[str, Any]] = []
    for scene in store.iter_scenes(split, COLUMNS):
        scenes.append(scene)
        if len(scenes) == batch_size:
            yield scenes_to_batch(scenes)
            scenes = []
    if scenes:
        yield scenes_to_batch(scenes)


def run_scenes(
    data: str, split: str, evaluator_kwargs: dict[str, Any], backend: str, batch_size: int = BATCH_SIZE, use_gpu: bool = False
) -> list[ImageRow]:
    """The ImageRows of the split (SceneEvaluator(**evaluator_kwargs) on every batch), in-process
    ("local") or on a Ray Data actor pool ("ray")."""
    from daif.data.store import open_store

    if backend == "local":
        evaluator = SceneEvaluator(**evaluator_kwargs)
        return [row for batch in _local_batches(open_store(data), split, batch_size) for row in from_columns(evaluator(batch))]

    import ray

    from daif.data.dataset import read_split
    from daif.runtime import ensure_ray

    ensure_ray()
    cpus = int(ray.cluster_resources().get("CPU", 1))
    if use_gpu:
        max_actors, per_actor = max(1, int(ray.cluster_resources().get("GPU", 1))), {"num_gpus": 1, "num_cpus": 1}
    else:
        max_actors, per_actor = max(1, cpus - 1), {"num_cpus": 1}  # leave a CPU for the read tasks
    dataset = read_split(data, split, COLUMNS).map_batches(
        SceneEvaluator,
        fn_constructor_kwargs={**evaluator_kwargs, "threads": 1 if not use_gpu else None},
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=max_actors),
        **per_actor,
    )
    return [row for batch in dataset.iter_batches(batch_size=None, batch_format="numpy") for row in from_columns(batch)]
