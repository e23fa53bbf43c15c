"""A phone-like focal stack with focus breathing: depth with and without alignment, the pretrained model and
the analytic depth-from-focus baseline. Writes docs/figures/phone_stack.png and benchmarks/results/phone_stack.json.

    python benchmarks/phone_stack.py [SCENES]

Camera: f = 4.2 mm, f/1.8, pitch 1.4 um on a 4000x3000 sensor, seen at `daif predict`'s default size 1024x768
(resize factor 3.906: effective pitch 5.47 um; rendering at 1024x768 with that pitch is what resizing a
full-size render gives, tests/test_predict.py). Focus 0.35..2.2 m. Scene: a receding textured floor (0.37 m at
the bottom row to a back wall at 3 m) with two textured cards, 0.6 m and 1.3 m. Rendered with
`daif.optics.psf`'s "layered" PSF (discs with occlusion, as a lens; the disc radius here stays under 2.4 px, and
the paper's Gaussian layer would pass everything under 1 px through unblurred) on a canvas 6 % larger than the frame; each image is
then scaled about the centre by its breathing magnification (1.00 at 2.2 m ... 1.04 at 0.35 m) and shifted by
up to 1.5 px (scipy, cubic), cropped to 1024x768 and written as 8-bit PNG.

The pretrained model learned the defocus of f = 50 mm, f/8, 12 um at focus 1..6 m. The blur of a thin lens is
sigma = K s / (s - f) |1/s - 1/d| with K = A f / (2 p): an affine map of inverse depth u' = a u + b with
a = K_phone / K_model gives the phone's blur to the model's camera within the s / (s - f) factors (< 3 %). So the
model is run through `daif predict` on the same files with its own camera and focus distances s' = 1 / (a / s + b),
and its depth mapped back, d = a / (1 / d' - b). This is an experiment's device, not a feature of `daif predict`.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.ndimage import map_coordinates

from daif.align import align_stack
from daif.baseline import depth_from_focus
from daif.data.synthetic import make_texture
from daif.metrics import depth_metrics
from daif.optics import ThinLensCamera
from daif.optics.psf import render_stack
from daif.pretrained import read_meta
from daif.predict import predict
from daif.viz import grid_figure, save_figure

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
SIZE = (768, 1024)
FULL_PITCH, FULL_WIDTH = 1.4e-6, 4000
PHONE = ThinLensCamera(4.2e-3, 1.8, FULL_PITCH * FULL_WIDTH / SIZE[1])
FOCUS = [2.2, 1.35, 0.85, 0.55, 0.35]  # files 0..4, far to near
MAGNIFICATION = [1.00, 1.01, 1.02, 1.03, 1.04]
SHIFTS = [(0.0, 0.0), (1.2, -0.6), (-0.9, 1.4), (0.5, 1.1), (-1.4, -0.8)]  # (dx, dy) px


class FloorScene:
    """A receding textured floor (0.37 m at the bottom row), a back wall at 3 m and two textured cards (1.3 m,
    0.6 m), evaluated for any view: every texture is anchored to its surface and read with cubic interpolation at
    the continuous point a pixel sees, so each breathing image is sampled directly, as a sensor samples the
    lens's image (resampling rendered images instead leaves a phase-dependent interpolation blur that differs
    from image to image, which a focus measure reads as defocus)."""

    def __init__(self, seed: int):
        rng = np.random.default_rng(seed)
        self.tilt = np.radians(20 + rng.uniform(-3, 3))
        self.floor = make_texture(rng, (1024, 1024))
        self.wall = make_texture(rng, (512, 640))
        self.cards = [(1.3, (-0.12, -0.2, 0.42, 0.2), make_texture(rng, (256, 256))),  # depth, (x0, y0, x1, y1) / depth, texture
                      (0.6, (-0.45, -0.02, -0.12, 0.28), make_texture(rng, (256, 256)))]

    def view(self, magnification: float, shift: tuple[float, float]):
        """(aif (H, W, 3), depth (H, W)) of the frame whose pixel x sees the base view's point c + (x - c) / m - d."""
        focal_px = PHONE.focal_length / PHONE.pixel_size  # 768 px
        rows, cols = np.mgrid[0 : SIZE[0], 0 : SIZE[1]].astype(np.float64)
        centre_y, centre_x = (SIZE[0] - 1) / 2, (SIZE[1] - 1) / 2
        base_x = centre_x + (cols - centre_x) / magnification - shift[0]
        base_y = centre_y + (rows - centre_y) / magnification - shift[1]
        x, y = (base_x - centre_x) / focal_px, (base_y - centre_y) / focal_px  # ray (x, y, 1), y down
        with np.errstate(divide="ignore"):
            t = 0.3 / (y * np.cos(self.tilt) + np.sin(self.tilt))  # camera 0.3 m above the floor
        floor = (t > 0) & (t < 3.0)
        depth = np.where(floor, t, 3.0)
        texel = 0.003  # m per floor texel
        forward, side = t * (np.cos(self.tilt) - y * np.sin(self.tilt)), t * x
        aif = self._read(self.floor, np.where(floor, forward / texel, 0), np.where(floor, side / texel, 0), "grid-wrap")
        wall = self._read(self.wall, y * 3.0 / 0.0025 + 256, x * 3.0 / 0.0025 + 320, "mirror")  # 2.5 mm texels at 3 m
        aif = np.where(floor[..., None], aif, wall)
        for card_depth, (x0, y0, x1, y1), texture in self.cards:
            on_card = (x >= x0) & (x < x1) & (y >= y0) & (y < y1) & (depth > card_depth)
            depth[on_card] = card_depth
            card_texel = card_depth / focal_px * 1.5  # 1.5 px per texel
            read = self._read(texture, (y - y0) * card_depth / card_texel, (x - x0) * card_depth / card_texel, "mirror")
            aif[on_card] = read[on_card]
        return np.clip(aif, 0, 1).astype(np.float32), depth.astype(np.float32)

    @staticmethod
    def _read(texture: np.ndarray, rows: np.ndarray, cols: np.ndarray, mode: str) -> np.ndarray:
        return np.stack([map_coordinates(texture[..., c], [rows, cols], order=3, mode=mode) for c in range(3)], axis=-1)


def make_stack(seed: int, breathing: bool):
    """(images (5, H, W, 3) uint8, ground-truth depth (H, W) in the frame of the narrowest field of view)."""
    scene = FloorScene(seed)
    images = []
    for k, focus in enumerate(FOCUS):
        aif, depth = scene.view(*((MAGNIFICATION[k], SHIFTS[k]) if breathing else (1.0, (0.0, 0.0))))
        with torch.no_grad():
            image = render_stack(torch.from_numpy(aif).permute(2, 0, 1), torch.from_numpy(depth)[None], [focus], PHONE, psf="layered")[0]
        images.append(np.round(image.permute(1, 2, 0).numpy().clip(0, 1) * 255).astype(np.uint8))
    _, gt = scene.view(*((MAGNIFICATION[4], SHIFTS[4]) if breathing else (1.0, (0.0, 0.0))))
    return np.stack(images), gt


def model_mapping():
    meta = read_meta()
    trained = ThinLensCamera.from_dict(meta["camera"])
    k_phone = PHONE.aperture * PHONE.focal_length / (2 * PHONE.pixel_size)
    k_model = trained.aperture * trained.focal_length / (2 * trained.pixel_size)
    a = k_phone / k_model
    phone_mid = (1 / min(FOCUS) + 1 / max(FOCUS)) / 2
    model_focus = meta["focus_distances"]
    b = (1 / min(model_focus) + 1 / max(model_focus)) / 2 - a * phone_mid
    return a, b


def write_files(folder: Path, images: np.ndarray) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for k, image in enumerate(images):
        files.append(folder / f"img{k}.png")
        Image.fromarray(image).save(files[-1])
    return files


def metrics(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """delta1 and AbsRel over all pixels, and over those inside the focus range (gt <= 2.2 m: depth from focus
    cannot answer beyond the farthest focus)."""
    pred_t, gt_t = torch.from_numpy(np.ascontiguousarray(pred))[None, None].float(), torch.from_numpy(gt)[None, None].float()
    every, inside = depth_metrics(pred_t, gt_t), depth_metrics(pred_t, gt_t, max_depth=max(FOCUS) + 1e-6)
    return {"delta1": round(every["delta1"], 4), "abs_rel": round(every["abs_rel"], 4),
            "delta1_in_range": round(inside["delta1"], 4), "abs_rel_in_range": round(inside["abs_rel"], 4)}


def fitted(raw: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """The model's depth with its inverse depth fitted to the ground truth's by least squares, 1/d = alpha / raw + beta
    (structure only: it uses the answer, so it says what the map holds, not what predict gives)."""
    design = np.stack([1 / raw.ravel(), np.ones(raw.size)], axis=1)
    (alpha, beta), *_ = np.linalg.lstsq(design, 1 / gt.ravel(), rcond=None)
    return 1 / np.maximum(alpha / raw + beta, 1 / 100)


def run_scene(seed: int, root: Path):
    rows, shown = {}, {}
    a, b = model_mapping()
    model_focus = [1 / (a / s + b) for s in FOCUS]
    for case, breathing in (("no breathing", False), ("breathing", True)):
        images, gt = make_stack(seed, breathing)
        files = write_files(root / f"{seed}-{case.replace(' ', '-')}", images)
        for align in ("none", "scale"):
            if not breathing and align == "scale":
                continue
            label = f"{case}, align {align}"
            out = root / f"{seed}-{label.replace(' ', '-').replace(',', '')}"
            lines: list[str] = []
            paths = predict("pretrained", files, model_focus, out=out, align=align, echo=lines.append)
            summary = json.loads(Path(paths["json"]).read_text())
            top, left, height, width = summary["crop"]
            gt_crop = gt[top : top + height, left : left + width]
            raw = np.load(paths["depth_npy"])
            mapped = np.clip(a / np.maximum(1 / raw - b, 1e-9), 0.1, 10.0)  # d = a / (1 / d' - b), within 0.1..10 m
            stack = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
            if align == "scale":
                stack = align_stack(stack, FOCUS, [str(f) for f in files])[0]
            stack = stack[..., top : top + height, left : left + width]
            dff = depth_from_focus(stack[None], torch.tensor(FOCUS), PHONE)[0][0, 0].numpy()
            structure = fitted(raw, gt_crop)
            rows[label] = {"pretrained (mapped)": metrics(mapped, gt_crop), "pretrained (fitted to gt)": metrics(structure, gt_crop),
                           "depth from focus": metrics(dff, gt_crop), "crop": summary["crop"],
                           "model_raw_depth_percentiles_1_50_99": np.percentile(raw, [1, 50, 99]).round(3).tolist(),
                           "alignment": [ln for ln in lines if ln.startswith("align:")]}
            shown[label] = (structure, dff, gt_crop, images, stack.numpy(), mapped)
    return rows, shown


METHODS = ("depth from focus", "pretrained (mapped)", "pretrained (fitted to gt)")


def main() -> None:
    scenes = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    root = Path(tempfile.mkdtemp(prefix="daif-phone-"))
    results, first = {}, None
    for seed in range(scenes):
        rows, shown = run_scene(seed, root)
        results[seed] = rows
        first = first or shown
        print(seed, json.dumps({k: {m: v for m, v in r.items() if m != "alignment"} for k, r in rows.items()}), flush=True)
    labels = list(results[0])
    mean = {label: {method: {key: round(float(np.mean([results[s][label][method][key] for s in results])), 4)
                             for key in ("delta1", "abs_rel", "delta1_in_range", "abs_rel_in_range")} for method in METHODS}
            for label in labels}
    (ROOT / "benchmarks/results/phone_stack.json").write_text(json.dumps({"per_scene": results, "mean": mean, "mapping_a_b": model_mapping(),
                                                        "camera": PHONE.to_dict(), "focus": FOCUS}, indent=1))
    print(json.dumps(mean, indent=1))

    panel = {"cmap": "magma_r", "vmin": 0.35, "vmax": 3.0, "label": "m"}
    fit_none, dff_none, gt_b, breath_images, _, _ = first["breathing, align none"]
    fit_al, dff_al, _, _, aligned, mapped_al = first["breathing, align scale"]
    fit_clean, dff_clean, _, _, _, _ = first["no breathing, align none"]
    difference = np.abs(breath_images[0].astype(float) - breath_images[4].astype(float)).mean(-1)
    difference_aligned = np.abs(aligned[0] - aligned[4]).mean(0) * 255

    def title(method: str, label: str, name: str) -> str:
        found = mean[label][method]
        return f"{name}\nd1 {found['delta1']:.2f} (in focus range {found['delta1_in_range']:.2f})"

    figure = grid_figure([
        [{"image": breath_images[0], "title": "focus 2.2 m (scale 1.00)"}, {"image": breath_images[4], "title": "focus 0.35 m (scale 1.04)"},
         {"map": difference, "cmap": "viridis", "vmin": 0, "vmax": 60, "title": "|far - near| as captured"},
         {"map": gt_b, **panel, "title": "ground truth (frame of the 0.35 m image)"}],
        [{"map": dff_none, **panel, "title": title("depth from focus", "breathing, align none", "depth from focus, --align none")},
         {"map": dff_al, **panel, "title": title("depth from focus", "breathing, align scale", "depth from focus, aligned")},
         {"map": dff_clean, **panel, "title": title("depth from focus", "no breathing, align none", "depth from focus, no breathing")},
         {"map": difference_aligned, "cmap": "viridis", "vmin": 0, "vmax": 60, "title": "|far - near| aligned"}],
        [{"map": fit_none, **panel, "title": title("pretrained (fitted to gt)", "breathing, align none", "pretrained (fitted), --align none")},
         {"map": fit_al, **panel, "title": title("pretrained (fitted to gt)", "breathing, align scale", "pretrained (fitted), aligned")},
         {"map": fit_clean, **panel, "title": title("pretrained (fitted to gt)", "no breathing, align none", "pretrained (fitted), no breathing")},
         {"map": mapped_al, **panel, "title": title("pretrained (mapped)", "breathing, align scale", "pretrained (mapped), aligned")}],
    ], title=f"phone-like stack (4.2 mm f/1.8, 1.4 um at 4000 px, seen at 1024x768), focus 0.35-2.2 m; first scene shown, "
             f"d1 = mean of {scenes} scenes")
    save_figure(figure, ROOT / "docs/figures/phone_stack.png")


if __name__ == "__main__":
    main()
