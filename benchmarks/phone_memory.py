"""Peak resident memory (VmHWM) of `daif predict` on five 4000x3000 JPEGs, in a fresh process per setting.

    PYTHONPATH=. python benchmarks/phone_memory.py ["OPTIONS" ...]    # e.g. "--max-size 256 --refine-steps 5"
"""
import json, shutil, subprocess, sys, tempfile
from pathlib import Path
import numpy as np
from PIL import Image
from daif.data.synthetic import make_texture
from daif.model import DAIFNet
from daif.pretrained import read_meta
from tests.test_predict import write_checkpoint

root = Path(tempfile.mkdtemp(prefix="daif-mem-"))
try:
    base = (make_texture(np.random.default_rng(0), (750, 1000)) * 255).astype(np.uint8)
    large = Image.fromarray(base).resize((4000, 3000), Image.Resampling.BICUBIC)
    images = []
    for k in range(5):
        images.append(root / f"{k}.jpg")
        scale = 1 + 0.005 * k
        box = (2000 - 2000 / scale, 1500 - 1500 / scale, 2000 + 2000 / scale, 1500 + 1500 / scale)
        large.resize((4000, 3000), Image.Resampling.BILINEAR, box=box).save(images[-1], quality=90)
    del large
    checkpoint = write_checkpoint(root / "ckpt", DAIFNet.from_config(read_meta()["model"]))
    script = ("import sys, time; from daif.cli import main; t = time.time(); code = main(sys.argv[1:]); "
              "print('seconds', round(time.time() - t, 1)); "
              "print('VmHWM_kB', [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0]); sys.exit(code)")
    for extra in sys.argv[1:] or [""]:
        argv = [sys.executable, "-c", script, "predict", "--model", str(checkpoint), "--images", *map(str, images),
                "--focus-distances", "0.35", "0.5", "0.8", "1.3", "2.2", "--camera", "0.0042,1.8,1.4e-6",
                "--out", str(root / ("out" + extra.replace(" ", "_"))), *extra.split()]
        done = subprocess.run(argv, capture_output=True, text=True)
        print("options:", extra or "(defaults)", "rc", done.returncode)
        print(done.stdout[-1500:], done.stderr[-1500:])
finally:
    shutil.rmtree(root)
