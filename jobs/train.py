"""Ray job entrypoint: train DAIF-Net.

    ray job submit --working-dir . -- python jobs/train.py --data /shared/store --num-workers 4 --gpu \
        --storage /shared/runs --tracking-uri http://mlflow:5000
    python jobs/train.py --smoke-test        # seconds on a laptop: renders a tiny store, trains 2 epochs
"""

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the working dir of `ray job submit`

from daif.cli import main  # noqa: E402

if __name__ == "__main__":
    argv = sys.argv[1:]
    if "--smoke-test" in argv:
        argv.remove("--smoke-test")
        from daif.data.pipeline import render_store
        from daif.runtime import ensure_ray

        ensure_ray()
        store = tempfile.mkdtemp(prefix="daif-smoke-store-")
        render_store(out=store, source="synthetic", preset="nyuv2-5", size=(32, 32), scenes=12, shard_size=8)
        argv = ["--data", store, "--epochs", "2", "--batch-size", "4", "--set", "model.width=4",
                "--set", "model.levels=2", "--set", "train.figures_every=1", *argv]
    sys.exit(main(["train", *argv]))
