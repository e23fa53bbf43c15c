"""The rendering pipeline behind `daif render`: scenes -> focal stacks -> a store, on Ray Data.

The driver lists the scene references of the chosen splits, cuts them into shards and skips the
shards a previous run of the same configuration already completed (file present, hash or content
verified). Ray Data then runs one `map_batches` task per pending shard (a batch of scenes): load,
resize, render every focus distance with `daif.optics.render_focal_stack_uint8`, and write the shard
under a temporary name renamed into place. Tasks spread over every CPU of the cluster (or GPU with
`gpu=True`). The manifest is written first with status "rendering" and completed at the end.
A captured source (`daif.data.captured`, CAPTURED_SOURCES) takes the same path without the renderer:
its photographs are written as given (resized only to --size), with its own focus distances and camera.
Bad options raise `daif.errors.UsageError` naming the option (`check_render_config`) before Ray starts or
the store folder is made, from the command and from Python alike.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Any

import numpy as np
import torch

from daif._checks import check_kernel_size
from daif.align import ALIGN_MODES
from daif.config import KERNEL_SIZE
from daif.data import store
from daif.data.bins import split_bins
from daif.data.progress import configure_progress
from daif.data.captured import common_stack, prepare_captured
from daif.data.registry import CAPTURED_SOURCES, SOURCES, get_source
from daif.data.sources import MAX_IMAGE_PIXELS, MIN_IMAGE_SIZE, DataError, Source, prepare_scene, train_val_split
from daif.errors import UsageError
from daif.files import check_output_folder
from daif.images import to_float_chw
from daif.optics import MAX_FOCUS_DISTANCE, ThinLensCamera, check_focus_distance, get_preset, max_defocus_sigma, render_focal_stack_uint8, to_uint8
from daif.optics.psf import PSF_MODELS, render_stack
from daif.runtime import cpu_threads, ensure_ray

DEFAULT_PRESET = "nyuv2-5"
SPLIT_CHOICES = {"train": ("train", "val"), "test": ("test",), "all": ("train", "val", "test")}


@dataclasses.dataclass(frozen=True)
class RenderConfig:
    """What to render. size is (H, W); None fields fall back to the preset."""

    out: str
    source: str = "synthetic"
    input: str | None = None
    split: str = "all"
    preset: str | None = None  # None: DEFAULT_PRESET (a captured source then takes the camera from stack.json)
    size: tuple[int, int] | None = None
    scenes: int | None = None  # synthetic: how many; other sources: at most this many per split
    seed: int = 0
    shard_size: int = 32
    num_focus: int | None = None
    focus_range: tuple[float, float] | None = None
    camera: str | None = None  # "f,N,p" in metres or a preset name; default the preset's camera
    kernel_size: int | None = KERNEL_SIZE  # the renderer window K; None: no window (the ladder renderer)
    psf: str = "gaussian"  # daif.optics.psf.PSF_MODELS: "gaussian" (the renderer above), "disc" or "layered"
    align: str = "scale"  # captured sources: "scale" aligns each stack for focus breathing, "none" (daif.data.captured)
    compression: str = store.DEFAULT_COMPRESSION
    num_bins: int = 5
    val_fraction: float = 0.1
    depth_scale: float = 1e4
    splits_mat: str | None = None
    depth_range: tuple[float, float] | None = None  # synthetic scene depths; default from the focus distances
    gpu: bool = False
    cpus_per_task: float = 1.0
    command: str | None = None  # the command line, recorded in the manifest

    # fields that do not change the store's content
    RUNTIME_FIELDS = ("out", "gpu", "cpus_per_task", "command")


@dataclasses.dataclass
class RenderPlan:
    config: RenderConfig
    source: Source
    camera: ThinLensCamera
    focus_distances: np.ndarray  # (F,) float32 metres
    size: tuple[int, int]
    clip_range: tuple[float, float]
    content: dict[str, Any]  # the configuration that decides the store's content
    config_hash: str
    shards: list[dict[str, Any]]  # {name, split, refs}


def resolve_focus_distances(config: RenderConfig, preset_focus: tuple[float, ...], camera: ThinLensCamera) -> np.ndarray:
    if config.num_focus is None and config.focus_range is None:
        focus = np.asarray(preset_focus, dtype=np.float64)
    else:
        low, high = config.focus_range or (min(preset_focus), max(preset_focus))
        count = config.num_focus or len(preset_focus)
        if count < 1 or not 0 < low <= high:
            raise ValueError(f"focus: expected --num-focus >= 1 and a range 0 < low <= high, got {count}, {low},{high}")
        focus = np.linspace(low, high, count)
    try:
        for value in focus:
            check_focus_distance(value, camera.focal_length)
    except ValueError as error:
        raise UsageError(f"focus distances: {error}") from None
    return focus.astype(np.float32)


def plan_render(config: RenderConfig) -> RenderPlan:
    """Validate the configuration (`check_render_config`, then the source, split and focus distances), list
    the scenes of the chosen splits and cut them into shards. A captured source's focus distances, camera
    and (without --size) image size come from its scenes (`plan_captured`)."""
    check_render_config(config)
    if config.source not in SOURCES:
        raise ValueError(f"source: expected one of {list(SOURCES)}, got {config.source!r}")
    if config.split not in SPLIT_CHOICES:
        raise ValueError(f"split: expected one of {list(SPLIT_CHOICES)}, got {config.split!r}")
    preset_name = config.preset or DEFAULT_PRESET
    preset = get_preset(preset_name)
    clip_range = tuple(float(v) for v in preset.depth_range)
    if config.source in CAPTURED_SOURCES:
        source = get_source(config.source, input=config.input, scenes=config.scenes, depth_scale=config.depth_scale,
                            align=config.align)
        refs_by_split = _refs_by_split(source, config)
        camera, focus, size = plan_captured(config, refs_by_split)
    else:
        camera = _parse_camera(config.camera) if config.camera else preset.camera
        size = tuple(int(v) for v in (config.size or preset.image_size))
        focus = resolve_focus_distances(config, preset.focus_distances, camera)
        split_bins(len(focus), config.num_bins)  # validates num_bins against F
        depth_range = config.depth_range or (
            max(clip_range[0], 0.75 * float(focus.min())),
            min(clip_range[1], 1.25 * float(focus.max())),
        )
        source = get_source(
            config.source,
            input=config.input,
            scenes=config.scenes,
            seed=config.seed,
            size=size,
            depth_range=depth_range,
            depth_scale=config.depth_scale,
            splits_mat=config.splits_mat,
        )
        refs_by_split = _refs_by_split(source, config)
    content = {
        "format_version": store.FORMAT_VERSION,
        "source": source.describe(),
        "split": config.split,
        "preset": preset_name,
        "camera": camera.to_dict(),
        "focus_distances": [float(f) for f in focus],
        "image_size": list(size),
        "depth_clip": list(clip_range),
        "kernel_size": config.kernel_size,
        **({"psf": config.psf} if config.psf != "gaussian" else {}),  # absent: gaussian (stores made before it resume)
        "compression": config.compression,
        "num_bins": config.num_bins,
        "val_fraction": config.val_fraction,
        "seed": config.seed,
        "shard_size": config.shard_size,
    }
    shards = []
    for split, refs in refs_by_split.items():
        for start in range(0, len(refs), config.shard_size):
            shards.append({"name": store.shard_name(len(shards)), "split": split, "refs": refs[start : start + config.shard_size]})
    return RenderPlan(config, source, camera, focus, size, clip_range, content, store.json_hash(content), shards)


def plan_captured(
    config: RenderConfig, refs_by_split: dict[str, list[dict[str, Any]]]
) -> tuple[ThinLensCamera, np.ndarray, tuple[int, int]]:
    """(camera, focus distances (F,) float32, size (H, W)) of a captured source's scenes (`daif.data.captured`).

    The camera: --camera's lens or preset, else stack.json's; given and stack.json
    cameras must agree. The size: --size, else the scenes' common native size.
    """
    refs = [ref for split_refs in refs_by_split.values() for ref in split_refs]
    if config.camera:
        given, given_by = _parse_camera(config.camera), f"--camera {config.camera}"
    elif config.preset:
        given, given_by = get_preset(config.preset).camera, f"--camera {config.preset}"
    else:
        given, given_by = None, ""
    focus, camera, native = common_stack(refs, given, given_by, config.size)
    if config.size is None:
        for ref in refs:
            if tuple(ref["size"]) != native:
                raise DataError(
                    f"{ref['images'][0]}: size {ref['size'][1]}x{ref['size'][0]} differs from {native[1]}x{native[0]} of "
                    f"{refs[0]['images'][0]}; give --size WIDTHxHEIGHT to resize every scene"
                )
    nearest = min(refs, key=lambda ref: min(ref["focus_distances"]))  # as written (float64), not rounded to float32
    try:
        check_focus_distance(min(nearest["focus_distances"]), camera.focal_length)
    except ValueError as error:
        raise DataError(f"{nearest['stack_json']}: 'focus_distances': {error}") from None
    if config.num_bins > len(focus):
        raise UsageError(
            f"--num-bins: {config.num_bins} bins need at least as many images; the stacks of {config.input} hold {len(focus)}"
        )
    return camera, focus, tuple(int(v) for v in (config.size or native))


def _parse_camera(text: str) -> ThinLensCamera:
    try:
        return ThinLensCamera.parse(text)
    except ValueError as error:
        raise UsageError(f"--camera: {error}") from None


def _refs_by_split(source: Source, config: RenderConfig) -> dict[str, list[dict[str, Any]]]:
    chosen = SPLIT_CHOICES[config.split]
    result: dict[str, list[dict[str, Any]]] = {}
    if "train" in chosen:
        train = source.refs("train")
        by_id = {ref["scene_id"]: ref for ref in train}
        train_ids, val_ids = train_val_split(list(by_id), config.val_fraction, config.seed)
        result["train"] = [by_id[i] for i in train_ids]
        if val_ids:
            result["val"] = [{**by_id[i], "split": "val"} for i in val_ids]
    if "test" in chosen:
        result["test"] = source.refs("test")
    empty = [split for split, refs in result.items() if not refs and split != "val"]
    if empty:
        raise DataError(f"{config.input or config.source}: no scenes in split(s) {empty}")
    return result


def render_scene_stack(
    scene: dict[str, Any],
    focus_distances: np.ndarray,
    camera: ThinLensCamera,
    kernel_size: int | None = KERNEL_SIZE,
    device: str = "cpu",
    psf: str = "gaussian",
) -> np.ndarray:
    """(F, H, W, 3) uint8 focal stack of one prepared scene: the Gaussian renderer
    (`daif.optics.render_focal_stack_uint8`), or a disc / layered-occlusion PSF (`daif.optics.psf.render_stack`)."""
    aif = to_float_chw(scene["aif"]).to(device)
    depth = torch.from_numpy(np.asarray(scene["depth"], dtype=np.float32))[None].to(device)
    focus = torch.as_tensor(np.asarray(focus_distances, dtype=np.float32), device=device)
    if psf == "gaussian":
        return render_focal_stack_uint8(aif, depth, focus, camera, kernel_size).cpu().numpy()
    with torch.no_grad():
        return to_uint8(render_stack(aif, depth, focus, camera, psf)).cpu().numpy()


def render_shard(plan_job: dict[str, Any], shard: dict[str, Any], directory: str) -> dict[str, Any]:
    """Load, prepare, render and write one shard; returns {name, split, scenes, bytes, sha256, seconds}."""
    started = time.perf_counter()
    source: Source = plan_job["source"]
    camera = ThinLensCamera.from_dict(plan_job["camera"])
    focus = np.asarray(plan_job["focus_distances"], dtype=np.float32)
    size = tuple(plan_job["size"])
    attrs = store.shard_attrs(camera, plan_job["kernel_size"], source.name, shard["split"], plan_job["config_hash"])
    path = os.path.join(directory, shard["name"])
    device = "cuda" if plan_job["gpu"] and torch.cuda.is_available() else "cpu"
    with store.ShardWriter(path, len(shard["refs"]), size, focus, attrs, plan_job["compression"]) as writer:
        for ref in shard["refs"]:
            if plan_job["captured"]:  # photographs: stored as given (resized to `size`), not rendered
                scene, stack = prepare_captured(source.load(ref), ref["scene_id"], size, tuple(plan_job["clip_range"]))
            else:
                scene = prepare_scene(source.load(ref), ref["scene_id"], size, tuple(plan_job["clip_range"]))
                stack = render_scene_stack(scene, focus, camera, plan_job["kernel_size"], device, plan_job["psf"])
            writer.add(scene, stack)
        info = writer.close()
    return {**info, "split": shard["split"], "seconds": time.perf_counter() - started}


def _render_batch(batch: dict[str, np.ndarray], plan_job: dict[str, Any], directory: str) -> dict[str, np.ndarray]:
    """Ray Data map_batches function: each row is one shard to render."""
    import ray

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    torch.set_num_threads(cpu_threads(cpus))
    results = []
    for text in batch["shard"]:
        shard = json.loads(str(text))
        try:
            results.append({**render_shard(plan_job, shard, directory), "error": "", "error_kind": ""})
        except (DataError, store.StoreError) as error:  # reported by the driver, not retried
            empty = {"scenes": 0, "bytes": 0, "sha256": "", "seconds": 0.0}
            results.append({"name": shard["name"], "split": shard["split"], **empty, "error": str(error), "error_kind": type(error).__name__})
    keys = ("name", "split", "scenes", "bytes", "sha256", "seconds", "error", "error_kind")
    return {key: np.array([r[key] for r in results]) for key in keys}


def _verified_shard(directory: str, shard: dict[str, Any], config_hash: str, previous: dict[str, Any] | None) -> dict[str, Any] | None:
    """Info of an already complete shard that matches the plan, or None when it must be (re-)rendered."""
    path = os.path.join(directory, shard["name"])
    if not os.path.lexists(path):
        return None
    if not os.path.isfile(path):
        raise store.StoreError(f"{path}: not a file (a shard of this store goes there); remove it")
    digest = store.file_sha256(path)
    if previous is not None and (not isinstance(previous, dict) or previous.get("sha256") not in (None, digest)):
        return None
    try:
        import h5py

        with h5py.File(path, "r") as file:
            ids = list(file["scene_id"].asstr()[()])
            if file.attrs["config_hash"] != config_hash or ids != [r["scene_id"] for r in shard["refs"]]:
                return None
    except Exception:  # not HDF5, truncated, or missing fields: render it again
        return None
    return {"name": shard["name"], "split": shard["split"], "scenes": len(ids), "bytes": os.path.getsize(path), "sha256": digest}


def _manifest(plan: RenderPlan, shard_infos: dict[str, dict[str, Any]], status: str) -> dict[str, Any]:
    config = dataclasses.asdict(plan.config)
    splits: dict[str, list[str]] = {}
    for shard in plan.shards:
        splits.setdefault(shard["split"], []).append(shard["name"])
    return {
        "format_version": store.FORMAT_VERSION,
        "status": status,
        "camera": plan.camera.to_dict(),
        "focus_distances": [float(f) for f in plan.focus_distances],
        "num_bins": plan.config.num_bins,
        "bins": [[int(b[0]), int(b[-1]) + 1] for b in split_bins(len(plan.focus_distances), plan.config.num_bins)],
        "image_size": list(plan.size),
        "kernel_size": plan.config.kernel_size,
        "psf": plan.config.psf,
        "max_sigma": _max_sigma(plan),
        "source": plan.source.name,
        "stacks": "captured" if plan.config.source in CAPTURED_SOURCES else "rendered",
        "compression": plan.config.compression,
        "config": config,
        "content": plan.content,
        "config_hash": plan.config_hash,
        "splits": splits,
        "shards": {name: {k: v for k, v in info.items() if k != "name"} for name, info in sorted(shard_infos.items())},
    }


def _max_sigma(plan: RenderPlan) -> float | None:
    """The largest defocus sigma [px] of the data (daif.optics.max_defocus_sigma over the scenes' depth range:
    a synthetic source's, else the preset's clip range); None for captured stacks, whose depth is not known."""
    if plan.config.source in CAPTURED_SOURCES:
        return None
    depth_range = plan.content["source"].get("depth_range") or plan.clip_range
    return max_defocus_sigma(plan.camera, plan.focus_distances, tuple(depth_range))


def _check_existing(directory: str, plan: RenderPlan) -> dict[str, Any] | None:
    existing = store.read_manifest(directory)
    if existing is None:
        return None
    if existing.get("config_hash") != plan.config_hash:
        old = existing.get("content") if isinstance(existing.get("content"), dict) else {}
        differing = sorted(k for k in set(old) | set(plan.content) if old.get(k) != plan.content.get(k))
        raise store.StoreError(
            f"{directory}: holds a store with a different configuration (differs in {differing}); "
            "choose another --out or remove it"
        )
    return existing


def check_render_config(config) -> None:
    """Reject what the Ray workers would fail on, or what would silently mean something else (0 is not
    "the default": None is), before anything starts. Raises UsageError naming the option."""

    def positive_int(flag: str, value, allow_none: bool = True) -> None:
        if value is None and allow_none:
            return
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UsageError(f"{flag}: expected a positive integer, got {value!r}")

    def positive(flag: str, value) -> None:
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise UsageError(f"{flag}: expected a positive number, got {value!r}")

    def metre_range(flag: str, pair, strict: bool) -> None:
        if pair is None:
            return
        low, high = pair
        ordered = low < high if strict else low <= high
        if not (math.isfinite(low) and math.isfinite(high) and 0 < low and ordered):
            relation = "<" if strict else "<="
            raise UsageError(f"{flag}: expected 0 < LOW {relation} HIGH metres, got {low:g} {high:g}")
        if high > MAX_FOCUS_DISTANCE:
            raise UsageError(f"{flag}: {high:g} m is beyond the farthest plausible distance, {MAX_FOCUS_DISTANCE:g} m "
                             "(daif.optics.MAX_FOCUS_DISTANCE)")

    try:
        check_kernel_size("--kernel-size", config.kernel_size)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if config.psf not in PSF_MODELS:
        raise UsageError(f"--psf: expected one of {list(PSF_MODELS)}, got {config.psf!r}")
    try:
        store._compression(config.compression)
    except ValueError as error:
        raise UsageError(f"--{error}") from None
    for flag, value in (("--scenes", config.scenes), ("--num-focus", config.num_focus)):
        positive_int(flag, value)
    for flag, value in (("--shard-size", config.shard_size), ("--num-bins", config.num_bins)):
        positive_int(flag, value, allow_none=False)
    positive("--cpus-per-task", config.cpus_per_task)
    positive("--depth-scale", config.depth_scale)
    try:
        store.check_local_path(config.out)
    except store.StoreError as error:
        raise UsageError(f"--out: {error}") from None
    check_output_folder(config.out, ())  # a folder, or one that can be made, and writable
    if config.size is not None:
        height, width = config.size
        if min(height, width) < MIN_IMAGE_SIZE or height * width > MAX_IMAGE_PIXELS:
            raise UsageError(f"--size: expected at least {MIN_IMAGE_SIZE}x{MIN_IMAGE_SIZE} and at most {MAX_IMAGE_PIXELS:,} pixels, "
                             f"got {width}x{height} (WxH)")
    if not 0 <= config.val_fraction < 1:
        raise UsageError(f"--val-fraction: expected a number in [0, 1), got {config.val_fraction!r}")
    metre_range("--depth-range", config.depth_range, strict=True)
    metre_range("--focus-range", config.focus_range, strict=False)
    if config.align not in ALIGN_MODES:
        raise UsageError(f"--align: expected one of {', '.join(ALIGN_MODES)}, got {config.align!r}")
    if config.source in CAPTURED_SOURCES:
        for flag, value in (("--num-focus", config.num_focus), ("--focus-range", config.focus_range)):
            if value is not None:
                raise UsageError(f"{flag}: source {config.source!r} takes its focus distances from each scene's stack.json; drop {flag}")
    if config.source != "synthetic":
        if not config.input:
            raise UsageError(f"--input: source {config.source!r} needs --input PATH")
        if not os.path.exists(config.input):
            raise UsageError(f"--input: {config.input} does not exist")


def render_store(config: RenderConfig | None = None, **overrides: Any) -> dict[str, Any]:
    """Render a store (module docstring); returns the summary dict.

    Uses the running Ray if `ray.is_initialized()`, else `daif.runtime.ensure_ray()` (honouring RAY_ADDRESS).
    Summary: scenes, images, bytes, seconds, scenes_per_s (of the scenes rendered in this run), path,
    rendered_shards, skipped_shards, splits {split: scenes}, manifest_hash.
    """
    config = dataclasses.replace(config, **overrides) if config else RenderConfig(**overrides)
    started = time.perf_counter()
    plan = plan_render(config)  # checks the options before Ray starts or the folder is made
    directory = os.path.abspath(config.out)
    os.makedirs(directory, exist_ok=True)
    existing = _check_existing(directory, plan)
    previous_shards = (existing or {}).get("shards")
    previous_shards = previous_shards if isinstance(previous_shards, dict) else {}
    for name in os.listdir(directory):  # temporary files of a killed run
        if name.startswith(".shard-") and ".tmp-" in name:
            os.remove(os.path.join(directory, name))
    done: dict[str, dict[str, Any]] = {}
    pending = []
    for shard in plan.shards:
        info = _verified_shard(directory, shard, plan.config_hash, previous_shards.get(shard["name"]))
        if info is None:
            pending.append(shard)
        else:
            done[shard["name"]] = info
    store.write_json_atomic(os.path.join(directory, store.MANIFEST), _manifest(plan, done, "rendering"))
    if pending:
        for info in _run_pending(plan, pending, directory):
            done[info["name"]] = info
    manifest = _manifest(plan, done, "complete")
    store.write_json_atomic(os.path.join(directory, store.MANIFEST), manifest)
    seconds = time.perf_counter() - started
    rendered = sum(len(s["refs"]) for s in pending)
    total = sum(info["scenes"] for info in done.values())
    return {
        "path": directory,
        "scenes": total,
        "images": total * len(plan.focus_distances),
        "bytes": sum(info["bytes"] for info in done.values()),
        "seconds": seconds,
        "rendered_scenes": rendered,
        "scenes_per_s": rendered / seconds if rendered else 0.0,
        "rendered_shards": len(pending),
        "skipped_shards": len(plan.shards) - len(pending),
        "splits": {split: sum(done[n]["scenes"] for n in names) for split, names in manifest["splits"].items()},
        "manifest_hash": store.json_hash(manifest),
    }


def _run_pending(plan: RenderPlan, pending: list[dict[str, Any]], directory: str) -> list[dict[str, Any]]:
    import ray

    ensure_ray()
    configure_progress()
    plan_job = {
        "source": plan.source,
        "camera": plan.camera.to_dict(),
        "focus_distances": [float(f) for f in plan.focus_distances],
        "size": list(plan.size),
        "clip_range": list(plan.clip_range),
        "kernel_size": plan.config.kernel_size,
        "psf": plan.config.psf,
        "compression": plan.config.compression,
        "config_hash": plan.config_hash,
        "gpu": plan.config.gpu,
        "captured": plan.config.source in CAPTURED_SOURCES,
    }
    rows = [{"shard": json.dumps(shard)} for shard in pending]
    dataset = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
        _render_batch,
        batch_size=1,
        fn_kwargs={"plan_job": plan_job, "directory": directory},
        num_cpus=plan.config.cpus_per_task,
        num_gpus=1 if plan.config.gpu else 0,
    )
    results = dataset.take_all()
    errors = [r for r in results if r["error"]]
    if errors:  # bad input: re-raised here with the message naming the file or scene
        kind = store.StoreError if errors[0]["error_kind"] == "StoreError" else DataError
        raise kind("; ".join(str(r["error"]) for r in errors))
    return [
        {
            "name": str(r["name"]),
            "split": str(r["split"]),
            "scenes": int(r["scenes"]),
            "bytes": int(r["bytes"]),
            "sha256": str(r["sha256"]),
            "seconds": float(r["seconds"]),
        }
        for r in results
    ]


def format_summary(summary: dict[str, Any]) -> str:
    splits = ", ".join(f"{k} {v}" for k, v in summary["splits"].items())
    return (
        f"store {summary['path']}: {summary['scenes']} scenes ({splits}), {summary['images']} images, "
        f"{summary['bytes'] / 1e6:.1f} MB; rendered {summary['rendered_scenes']} scenes "
        f"({summary['rendered_shards']} shards, {summary['skipped_shards']} skipped) in {summary['seconds']:.1f} s, "
        f"{summary['scenes_per_s']:.2f} scenes/s"
    )

