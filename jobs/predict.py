"""Ray job entrypoint: depth and AIF from one focal stack (`daif predict`).

    ray job submit --working-dir . -- python jobs/predict.py --model runs:/<run_id>/model \
        --images /shared/my_stack --out /shared/pred
    python jobs/predict.py --smoke-test      # seconds on a laptop: a synthetic stack, an untrained model
"""

import sys
import tempfile

from daif.cli import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    if "--smoke-test" in argv:
        argv.remove("--smoke-test")
        from _smoke import stack_folder, untrained_checkpoint

        from daif.optics import get_preset

        root = tempfile.mkdtemp(prefix="daif-smoke-predict-")
        preset = get_preset("nyuv2-5")
        if "--model" not in argv:
            print("smoke test: predicting with an untrained model (the pipeline, not the accuracy)")
            argv += ["--model", untrained_checkpoint(f"{root}/ckpt", preset.camera.to_dict(), list(preset.focus_distances))]
        if "--images" not in argv:
            argv += ["--images", stack_folder(f"{root}/stack")]
        if "--out" not in argv:
            argv += ["--out", f"{root}/prediction"]
    sys.exit(main(["predict", *argv]))
