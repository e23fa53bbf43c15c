"""The Ray Tune trainables of a trial (see daif.tune.trial for what a trial is and reports)."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

from ray import tune

from daif.runtime import cpu_threads
from daif.tune.trial import (
    STATUS, TrialSettings, TrialStopped, _train, diverged_result, final_result, is_non_finite_error, scored, trial_config,
)


# ------------------------------------------------------------------ one worker, in the trial's process

class InProcessTrial(tune.Trainable):
    """Runs the trial's training in a thread of this actor; `step()` returns its next epoch.

    The actor is reused for the next trial (`reset_config`, TuneConfig(reuse_actors=True)): torch, Ray Train,
    Ray Data and MLflow are imported and the renderer compiled once per actor, not once per trial."""

    def setup(self, config: dict[str, Any], settings: TrialSettings | None = None):
        import torch

        self.settings = settings
        torch.set_num_threads(cpu_threads(settings.cpus_per_trial))
        self._start(config)

    def reset_config(self, new_config: dict[str, Any]) -> bool:
        """The next trial in this actor (Tune has set its trial id): stop what is left of the last one, start anew."""
        self.cleanup()
        self._start(new_config)
        return True

    def _start(self, config: dict[str, Any]) -> None:
        self.trial = _with_threads(trial_config(self.settings, config, self.trial_id), self.settings.cpus_per_trial)
        self.metric, self.mode = self.trial.train.val_metric, self.trial.train.val_mode
        self.started = time.perf_counter()
        self.started_at = time.time()  # wall clock, for benchmarks/tune_overhead.py: set-up, epoch ends, final result
        self.epoch_ends: list[float] = []
        self.events: queue.Queue = queue.Queue()
        self.proceed = threading.Semaphore(0)
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name=f"daif-trial-{self.trial_id}", daemon=True)
        self.thread.start()

    def _on_report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:  # training thread
        self.epoch_ends.append(time.time())
        self.events.put(("epoch", metrics))
        self.proceed.acquire()  # wait for Tune's verdict: continue, or stop
        if self.stopping:
            raise TrialStopped()

    def _run(self) -> None:  # training thread
        try:
            result = _train(self.settings, self.trial, self.trial_id, in_process=True, on_report=self._on_report)
            self.events.put(("done", result))
        except TrialStopped:
            self.events.put(("stopped", None))
        except Exception as error:  # noqa: BLE001 - a numeric blow-up is a result, anything else goes to Tune
            self.events.put(("diverged" if is_non_finite_error(error) else "error", error))
        except BaseException as error:  # noqa: BLE001 - handed to step(), which raises it: Tune records the error
            self.events.put(("error", error))

    def step(self) -> dict[str, Any]:
        kind, payload = self.events.get()
        if kind == "epoch":
            result = scored(payload, self.metric, self.mode)
            if result.get(STATUS) == "diverged":
                self._stop_thread()
                result["done"] = True
                result["trial_seconds"] = time.perf_counter() - self.started
                return result
            self.proceed.release()
            if result["epochs_done"] >= self.trial.train.epochs:  # the last epoch: its result is the final one, with
                return self.step()  # the status (a scheduler stops a trial at max_t before asking for more)
            return result
        if kind == "done":
            result = final_result(payload, self.trial, self.metric, self.mode, self.started, self.settings.min_depth_gain)
            result.update(done=True, started_at=self.started_at, epoch_ends=list(self.epoch_ends), finished_at=time.time())
            return result
        if kind == "diverged":
            return {**diverged_result(payload, self.started, self.mode), "done": True}
        if kind == "error":
            raise payload
        raise RuntimeError(f"trial {self.trial_id}: training stopped unexpectedly")

    def _stop_thread(self, timeout: float = 30.0) -> None:
        self.stopping = True
        self.proceed.release()
        self.thread.join(timeout)

    def cleanup(self) -> None:
        if getattr(self, "thread", None) is not None and self.thread.is_alive():
            self._stop_thread()

    def save_checkpoint(self, checkpoint_dir: str):  # the trial keeps its own checkpoints (trial_dir)
        return None

    def load_checkpoint(self, checkpoint) -> None:
        return None


def _with_threads(config, cpus: float):
    from daif.config import replace

    return replace(config, scaling={"num_workers": 1, "cpus_per_worker": float(cpus)})


# ------------------------------------------------------------------ several workers: the Train V2 pattern

def scored_report_callback(metric: str, mode: str):
    """A TuneReportCallback that adds `score`, `epochs_done` and a divergence status to each epoch."""
    from ray.tune.integration.ray_train import TuneReportCallback

    class ScoredTuneReport(TuneReportCallback):
        def after_report(self, run_context, metrics, checkpoint):
            super().after_report(run_context, [scored(metrics[0], metric, mode), *metrics[1:]], checkpoint)

    return ScoredTuneReport()


def trainer_trial(config: dict[str, Any], settings: TrialSettings | None = None) -> None:
    """Tune function trainable: the trial's TorchTrainer (DDP workers, GPUs) reports through Tune."""
    started = time.perf_counter()
    trial_id = tune.get_context().get_trial_id()
    trial = trial_config(settings, config, trial_id)
    metric, mode = trial.train.val_metric, trial.train.val_mode
    try:
        result = _train(settings, trial, trial_id, callbacks=[scored_report_callback(metric, mode)])
    except Exception as error:  # noqa: BLE001 - a numeric blow-up is a result, anything else goes to Tune
        if not is_non_finite_error(error):
            raise
        tune.report(diverged_result(error, started, mode))
        return
    tune.report(final_result(result, trial, metric, mode, started, settings.min_depth_gain))
