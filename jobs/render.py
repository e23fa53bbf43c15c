"""Ray job: render a focal-stack store (`daif render`).

    python jobs/render.py --source synthetic --scenes 200 --out /shared/stores/synthetic
    ray job submit --working-dir . -- python jobs/render.py --source nyuv2-mat --input /shared/nyu.mat --out /shared/stores/nyu
    python jobs/render.py --smoke-test --out /tmp/daif-smoke    # seconds on a laptop
"""

from __future__ import annotations

import sys

import daif.cli

SMOKE_TEST = ["--source", "synthetic", "--scenes", "6", "--size", "64x48", "--shard-size", "2", "--camera", "nyuv2-5"]


def main(argv: list[str]) -> int:
    if "--smoke-test" in argv:
        argv = [a for a in argv if a != "--smoke-test"] + SMOKE_TEST
        if "--out" not in argv:
            argv += ["--out", "daif-smoke-store"]
    return daif.cli.main(["render", *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
