"""Ray job entrypoint: train DAIF-Net (`daif train`).

    ray job submit --working-dir . -- python jobs/train.py --data /shared/store --num-workers 4 --gpu \
        --storage /shared/runs --tracking-uri http://mlflow:5000
    python jobs/train.py --smoke-test        # seconds on a laptop: renders a tiny store, trains 2 epochs
"""

import sys
import tempfile

from daif.cli import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    if "--smoke-test" in argv:
        argv.remove("--smoke-test")
        from _smoke import tiny_store

        from daif.runtime import ensure_ray

        ensure_ray()
        root = tempfile.mkdtemp(prefix="daif-smoke-train-")
        argv = ["--data", tiny_store(f"{root}/store"), "--epochs", "2", "--batch-size", "4", "--set", "model.width=4",
                "--set", "model.levels=2", "--set", "train.figures_every=1", "--storage", f"{root}/runs", *argv]
    sys.exit(main(["train", *argv]))
