"""Ray job entrypoint: evaluate models against the analytic baseline (`daif evaluate`).

    ray job submit --working-dir . -- python jobs/evaluate.py --model runs:/<run_id>/model \
        --data /shared/store --split test --out /shared/eval --tracking-uri http://mlflow:5000
    python jobs/evaluate.py --smoke-test     # seconds on a laptop: tiny store, untrained model, Ray Data path
"""

import sys
import tempfile

from daif.cli import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    if "--smoke-test" in argv:
        argv.remove("--smoke-test")
        from _smoke import tiny_store, untrained_checkpoint

        from daif.data.store import open_store
        from daif.runtime import ensure_ray

        ensure_ray()
        root = tempfile.mkdtemp(prefix="daif-smoke-eval-")
        store = open_store(tiny_store(f"{root}/store"))
        if "--model" not in argv:
            print("smoke test: evaluating an untrained model (the pipeline, not the accuracy)")
            argv += ["--model", untrained_checkpoint(f"{root}/ckpt", store.camera.to_dict(), store.focus_distances.tolist())]
        defaults = {"--out": f"{root}/eval", "--tracking-uri": f"sqlite:///{root}/mlflow.db"}
        argv += [arg for key, value in defaults.items() if key not in argv for arg in (key, value)]
        argv = ["--data", store.path, "--stack-sizes", "2", "3", "5", "--backend", "ray", *argv]
    sys.exit(main(["evaluate", *argv]))
