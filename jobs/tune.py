"""Ray job entrypoint: the loss-scale search (`daif tune`).

    ray job submit --working-dir . -- python jobs/tune.py --data /shared/nyuv2-dense --preset nyuv2-robust \
        --space table4 --epochs 40 --gpu --cpus-per-trial 4 --max-concurrent 8 \
        --storage /shared/runs --tracking-uri http://mlflow:5000 --evaluate-best
    python jobs/tune.py --smoke-test     # a minute on a laptop: a tiny store, a 2x2 grid of 1-epoch trials
"""

import sys
import tempfile
from pathlib import Path

from daif.cli import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    if "--smoke-test" in argv:
        argv.remove("--smoke-test")
        from _smoke import tiny_store

        from daif.runtime import ensure_ray

        ensure_ray(num_cpus=2)
        root = tempfile.mkdtemp(prefix="daif-smoke-tune-")
        space = Path(root, "space.yaml")
        space.write_text("loss.recon: {grid: [10, 1000]}\nloss.blur: {grid: [1, 10]}\n")
        argv = ["--data", tiny_store(f"{root}/store"), "--space", str(space), "--epochs", "1", "--set", "model.width=4",
                "--set", "model.levels=2", "--set", "optim.batch_size=4", "--set", "train.figures_every=0",
                "--min-depth-gain", "0",  # 1-epoch tiny nets have learned no depth: still write best.yaml
                "--storage", f"{root}/runs", "--tracking-uri", f"sqlite:///{root}/mlflow.db", *argv]
    sys.exit(main(["tune", *argv]))
