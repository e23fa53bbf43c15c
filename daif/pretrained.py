"""Pretrained models shipped with the package: weights as safetensors, everything else as JSON.

    daif predict --model pretrained --images a.png b.png ... --focus-distances 1 1.5 ...
    daif train --data STORE --init-from pretrained          # fine-tune it on your camera's stacks

Each model is two files in `daif/pretrained/`: NAME.safetensors (the network's state dict, float32 tensors only;
safetensors has no code path, so loading it cannot run anything) and NAME.json:

    {"model": DAIFNet.config, "camera": ThinLensCamera.to_dict(), "focus_distances": [m], "depth_range": [near, far] m,
     "provenance": {"command", "commit", "selected_on", "test": {metric: value}, ...}}

The json is what a checkpoint's meta.json holds (`daif.checkpoint`), so the model loads through the same
checks (`DAIFNet.from_config`, the size bounds). The camera is part of the model: depth is learned from the
defocus of that camera at those focus distances, and the select AIF head's prior uses it. Predicting with
another camera is refused (`check_camera`); fine-tuning on the new camera's stacks is the way
(`daif train --init-from pretrained`, self-supervised, no depth needed).

`export` makes the two files from a training checkpoint:
    python -m daif.pretrained CHECKPOINT_DIR NAME --command "daif quickstart --seed 0 --epochs 80" --commit e9a965e
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from daif.errors import UsageError

DIRECTORY = Path(__file__).parent / "pretrained"
DEFAULT = "quickstart-seed0"  # what `--model pretrained` means
PREFIX = "pretrained"  # "pretrained" or "pretrained:NAME" as a model source


def names() -> list[str]:
    """The shipped models' names."""
    return sorted(path.stem for path in DIRECTORY.glob("*.safetensors"))


def is_pretrained(source: str | os.PathLike) -> bool:
    text = str(source)
    return text == PREFIX or text.startswith(PREFIX + ":")


def _files(source: str) -> tuple[Path, Path]:
    """(NAME.safetensors, NAME.json) of "pretrained" or "pretrained:NAME"; UsageError when not shipped."""
    name = str(source).partition(":")[2] or DEFAULT
    weights, meta_path = DIRECTORY / f"{name}.safetensors", DIRECTORY / f"{name}.json"
    if not weights.is_file() or not meta_path.is_file():
        raise UsageError(f"--model: no pretrained model {name!r}; shipped: {', '.join(names()) or 'none'}")
    return weights, meta_path


def read_meta(source: str = PREFIX) -> dict[str, Any]:
    """The json of "pretrained" or "pretrained:NAME" (module docstring), without building the network."""
    return json.loads(_files(source)[1].read_text())


def load(source: str = PREFIX):
    """(DAIFNet in eval mode, meta) of "pretrained" (the default model) or "pretrained:NAME"."""
    from safetensors.torch import load_file

    from daif.model import DAIFNet

    weights, _ = _files(source)
    meta = read_meta(source)
    model = DAIFNet.from_config(meta["model"])
    model.load_state_dict(load_file(str(weights)))
    return model.eval(), meta


def check_camera(meta: dict[str, Any], camera, source: str) -> None:
    """Refuse a camera other than the one the pretrained model learned (UsageError naming both and the way out)."""
    from daif.optics import ThinLensCamera

    trained = ThinLensCamera.from_dict(meta["camera"])
    if camera is not None and camera != trained:
        raise UsageError(
            f"--camera: {source} learned depth from the defocus of f={trained.focal_length:g} m, N={trained.f_number:g}, "
            f"p={trained.pixel_size:g} m; yours is f={camera.focal_length:g} m, N={camera.f_number:g}, p={camera.pixel_size:g} m. "
            f"Refine it on this stack through your camera (daif predict ... --refine-steps 100), or fine-tune it on your "
            f"camera's stacks first: daif render --source focal-stack-folder ... then daif train --data STORE --init-from {source}"
        )


def describe(meta: dict[str, Any]) -> str:
    """One line of a pretrained model's assumptions, printed by `daif predict`."""
    camera = meta["camera"]
    near, far = meta["depth_range"]
    focus = ", ".join(f"{f:g}" for f in meta["focus_distances"])
    return (f"pretrained model: camera f={camera['focal_length']:g} m, N={camera['f_number']:g}, p={camera['pixel_size']:g} m; "
            f"trained on stacks focused at {focus} m; depth {near:g}..{far:g} m; {meta['provenance']['command']} "
            f"at commit {meta['provenance']['commit']}")


def export(checkpoint: str | os.PathLike, name: str, provenance: dict[str, Any], directory: Path = DIRECTORY) -> Path:
    """Write NAME.safetensors and NAME.json from a training checkpoint (the network's weights only)."""
    from safetensors.torch import save_file

    from daif.checkpoint import load_checkpoint_model
    from daif.files import write_text_atomic

    model, meta = load_checkpoint_model(checkpoint)
    directory.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(directory / f"{name}.safetensors"))
    keep = {k: meta[k] for k in ("camera", "focus_distances", "depth_range")}
    return write_text_atomic(directory / f"{name}.json", json.dumps({"model": model.config, **keep, "provenance": provenance}, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="export a training checkpoint as a pretrained model of the package")
    parser.add_argument("checkpoint")
    parser.add_argument("name")
    parser.add_argument("--command", required=True, help="the command that trained it")
    parser.add_argument("--commit", required=True, help="the commit it was trained at")
    parser.add_argument("--selected-on", default="val/recon", help="the metric that chose the checkpoint")
    parser.add_argument("--test", default="{}", help="JSON of its test-split metrics")
    args = parser.parse_args(argv)
    path = export(args.checkpoint, args.name, {"command": args.command, "commit": args.commit, "selected_on": args.selected_on,
                                               "test": json.loads(args.test)})
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
