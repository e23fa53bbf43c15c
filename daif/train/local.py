"""One training worker in this process: `train_loop_per_worker` under Ray Train's local-mode API.

    trainer = InProcessTrainer(train_loop_per_worker, loop_config, datasets, run_folder, "val/delta1", "max",
                               on_report=lambda metrics, checkpoint_dir: ...)
    result = trainer.fit()   # a ray.train.Result: metrics, checkpoint (latest), best_checkpoints

Why: a TorchTrainer starts a controller and a worker group for every fit (about 16 s on 2 cores, measured in
benchmarks/tune_overhead.py), which dominates a small Tune trial. Ray Train V2's local mode
(`ScalingConfig(num_workers=0)`) runs the function here but keeps only the last report and loses the
checkpoints, which live in temporary directories. This runs the same function under the same local-mode
utilities, except that every reported checkpoint is copied to `run_folder` (a path or any `daif.storage`
location, as Ray Train's storage would hold it; the best by `metric` and the
latest are kept, like `CheckpointConfig(num_to_keep=1)`) and `on_report` sees every report, so a Tune
trainable can forward the epochs. It must not run inside a Ray Tune *function* trainable: Ray raises there on
`ray.train.report` (use a class `ray.tune.Trainable`, see daif.tune.trial).

`on_report` may raise to end training at once (the exception leaves `fit`); the MLflow run is ended by the caller.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

from daif import storage

ReportHook = Callable[[dict[str, Any], "str | None"], None]


def _utils_class():
    """The local-mode utilities with persisted checkpoints (Ray's internal API; its V2 local mode)."""
    from ray.train import Checkpoint
    from ray.train.v2._internal.execution.train_fn_utils import LocalTrainFnUtils

    class PersistingLocalUtils(LocalTrainFnUtils):
        def __init__(self, run_folder: storage.Location, metric: str, mode: str, on_report: ReportHook | None, **kwargs):
            super().__init__(**kwargs)
            self.run_folder, self.metric, self.sign, self.on_report = run_folder, metric, 1.0 if mode == "max" else -1.0, on_report
            self.history: list[dict[str, Any]] = []
            self.best: tuple[Checkpoint, dict[str, Any]] | None = None
            self.count = 0

        def _score(self, metrics: dict[str, Any]) -> float:
            value = metrics.get(self.metric)
            return self.sign * float(value) if isinstance(value, (int, float)) and math.isfinite(value) else -math.inf

        def report(self, metrics, checkpoint=None, checkpoint_dir_name=None, **kwargs) -> None:
            self._last_metrics = dict(metrics)
            self.history.append(dict(metrics))
            persisted, shown = None, None
            if checkpoint is not None:
                target = self.run_folder / (checkpoint_dir_name or f"checkpoint_{self.count:06d}")
                self.count += 1
                with checkpoint.as_directory() as source:
                    target.upload(source)
                persisted, shown = Checkpoint(target.path, target.filesystem), target.uri
                previous_latest = self._last_checkpoint
                keep = {persisted.path}
                if self.best is None or self._score(metrics) > self._score(self.best[1]):
                    self.best = (persisted, dict(metrics))
                keep.add(self.best[0].path)
                self._last_checkpoint = persisted
                if previous_latest is not None and previous_latest.path not in keep:
                    self.run_folder.at(previous_latest.path).delete()
            if self.on_report is not None:
                self.on_report(dict(metrics), shown)

    return PersistingLocalUtils


class InProcessTrainer:
    """`fit()` like a TorchTrainer with one CPU or GPU worker, in this process (see the module docstring)."""

    def __init__(
        self,
        train_loop_per_worker: Callable[[dict[str, Any]], Any],
        loop_config: dict[str, Any],
        datasets: dict[str, Any],
        run_folder: str | os.PathLike | storage.Location,
        metric: str,
        mode: str,
        on_report: ReportHook | None = None,
        experiment_name: str = "daif-local",
    ):
        self.train_loop_per_worker, self.loop_config, self.datasets = train_loop_per_worker, loop_config, datasets
        self.run_folder, self.metric, self.mode, self.on_report = storage.resolve(run_folder), metric, mode, on_report
        self.experiment_name = experiment_name

    def fit(self):
        from ray.train import Result
        from ray.train.v2._internal.execution.train_fn_utils import set_train_fn_utils

        self.run_folder.makedirs()
        utils = _utils_class()(
            self.run_folder, self.metric, self.mode, self.on_report,
            experiment_name=self.experiment_name, dataset_shards=self.datasets,
        )
        set_train_fn_utils(utils)
        try:
            self.train_loop_per_worker(self.loop_config)
        finally:
            set_train_fn_utils(None)
        return Result(
            metrics=utils._last_metrics,
            checkpoint=utils._last_checkpoint,
            error=None,
            path=self.run_folder.path,
            _storage_filesystem=self.run_folder.filesystem,
            best_checkpoints=[utils.best] if utils.best is not None else [],
        )
