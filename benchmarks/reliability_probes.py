"""Issue 25's probes: each misuse run as a user would, in a fresh `daif` process, with a table of outcomes.

    .venv/bin/python benchmarks/reliability_probes.py                   # this checkout
    .venv/bin/python benchmarks/reliability_probes.py --before 7f5e2ee  # and a commit's code beside it

`--before` checks the commit out into a temporary git worktree and runs the same probes with that code on
PYTHONPATH (the inputs are made once, by this checkout). A probe is "ok" when the command ends as a user
should see it end: exit 2 (bad input) or the exit a signal calls for, stderr one line with no traceback
naming what it must name, within the probe's time limit, and the files it must not touch untouched.
Otherwise the outcome says what happened: the exit status, the last line of a traceback, or "hang" when
the time limit passed. Peak memory is the process's maximum resident set (os.wait4). Cases that need a
running job to be killed or a cluster (runs left RUNNING, SIGTERM during training, Ray leftovers) are
covered by the tests named in the last column and not re-run here.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "jobs"))


@dataclasses.dataclass
class Probe:
    item: str  # the item number
    name: str
    args: list[str]  # daif arguments; {work} and the fixtures' names are filled in
    expect: list[str]  # fragments the one stderr line must hold
    code: int = 2
    limit_s: float = 120.0
    check: Callable[[Path], str] | None = None  # "" when the files are as they must be, else what is wrong
    test: str = ""  # the test that covers the case


@dataclasses.dataclass
class Outcome:
    verdict: str
    seconds: float
    peak_mb: float


# ------------------------------------------------------------------ inputs, made once by this checkout


def _png(path: Path, array: np.ndarray) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def _bomb_png(path: Path, width: int, height: int) -> Path:
    """A valid PNG header declaring width x height, with a tiny (truncated) image stream."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    stream = zlib.compress(b"\0" * (1 + 3 * width) * 64, 9)  # 64 rows of zeros: the rest is missing
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", stream) + chunk(b"IEND", b""))
    return path


def _captured_scene(root: Path, name: str, size=(24, 32), focus=(0.8, 1.5, 3.0), stack: dict | None = None) -> Path:
    scene = root / "train" / name
    rng = np.random.default_rng(0)
    images = [_png(scene / f"{k:02d}.png", rng.integers(0, 255, (*size, 3), dtype=np.uint8)).name for k in range(len(focus))]
    body = {"images": images, "focus_distances": list(focus), "camera": {"focal_length": 0.05, "f_number": 2.0, "pixel_size": 2e-5}}
    (scene / "stack.json").write_text(json.dumps({**body, **(stack or {})}))
    return scene


def make_inputs(work: Path) -> dict[str, str]:
    """Files every probe reads: a store, an untrained checkpoint, a stack folder, bad images and stores."""
    from _smoke import stack_folder, untrained_checkpoint

    from daif.optics import get_preset

    preset = get_preset("nyuv2-5")
    work.mkdir(parents=True)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run([sys.executable, "-m", "daif.cli", "render", "--source", "synthetic", "--out", str(work / "store"), "--size", "32x32",
                    "--scenes", "12", "--shard-size", "6", "--seed", "0"], check=True, env=env, cwd=work, capture_output=True)
    fixtures = {"work": str(work), "store": str(work / "store"),
                "ckpt": untrained_checkpoint(work / "ckpt", preset.camera.to_dict(), list(preset.focus_distances)),
                "stack": stack_folder(work / "stack")}
    meta = json.loads(Path(fixtures["ckpt"], "meta.json").read_text())
    del meta["model"]["aif_temperature"]  # a key the older code does not know (missing means 0)
    Path(fixtures["ckpt"], "meta.json").write_text(json.dumps(meta))
    shutil.copytree(fixtures["ckpt"], work / "ckpt_wide")
    meta = json.loads((work / "ckpt_wide" / "meta.json").read_text())
    meta["model"]["width"] = 1_000_000
    (work / "ckpt_wide" / "meta.json").write_text(json.dumps(meta))
    fixtures["ckpt_wide"] = str(work / "ckpt_wide")

    nan_stack = work / "nan_stack"
    shutil.copytree(fixtures["stack"], nan_stack)
    from PIL import Image

    first = sorted(nan_stack.glob("*.png"))[0]
    values = np.asarray(Image.open(first).convert("L"), dtype=np.float32) / 255
    values[3, 3] = np.nan
    Image.fromarray(values, mode="F").save(nan_stack / first.with_suffix(".tif").name)
    first.unlink()
    fixtures["nan_stack"] = str(nan_stack)
    bomb = work / "bomb"
    shutil.copytree(fixtures["stack"], bomb)
    _bomb_png(sorted(bomb.glob("*.png"))[0], 30000, 30000)
    fixtures["bomb"] = str(bomb)
    big = work / "big"
    shutil.copytree(fixtures["stack"], big)
    _bomb_png(sorted(big.glob("*.png"))[0], 10000, 10000)
    fixtures["big"] = str(big)

    (work / "a_file").write_text("x")
    (work / "with_folder" / "aif.png").mkdir(parents=True)
    (work / "grid.yaml").write_text(f"loss.recon: {{grid: {list(range(1, 1001))}}}\nloss.blur: {{grid: {list(range(1, 1001))}}}\n")

    def broken_store(name: str, edit: Callable[[Path], None]) -> None:
        shutil.copytree(fixtures["store"], work / name)
        edit(work / name)
        fixtures[name] = str(work / name)

    def manifest(path: Path) -> dict:
        return json.loads((path / "manifest.json").read_text())

    def rewrite(change: Callable[[dict], object]) -> Callable[[Path], None]:
        return lambda path: (path / "manifest.json").write_text(json.dumps(change(manifest(path))))

    def first_shard(path: Path) -> Path:
        return path / json.loads((path / "manifest.json").read_text())["splits"]["train"][0]

    def shard_to_folder(path: Path) -> None:
        first_shard(path).unlink()
        first_shard(path).mkdir()

    broken_store("store_list", lambda path: (path / "manifest.json").write_text("[1, 2]"))
    broken_store("store_nocamera", rewrite(lambda m: {k: v for k, v in m.items() if k != "camera"}))
    broken_store("store_bins", rewrite(lambda m: {**m, "num_bins": "abc"}))
    broken_store("store_latin1", lambda path: (path / "manifest.json").write_bytes(b'{"camera": "\xe9"}'))
    broken_store("store_traversal", lambda path: (path / "manifest.json").write_text(
        (path / "manifest.json").read_text().replace(first_shard(path).name, "../../outside.h5")))
    broken_store("store_shard_dir", shard_to_folder)
    broken_store("store_truncated", lambda path: _truncate(first_shard(path)))

    captured = work / "captured_ok"
    _captured_scene(captured, "scene0")
    fixtures["captured_link"] = str(_captured_copy(work, captured, "captured_link", lambda scene: os.symlink(
        _png(work / "outside_depth.png", np.full((24, 32), 1000, np.uint16)), scene / "depth.png")))
    fixtures["captured_bomb"] = str(_captured_copy(work, captured, "captured_bomb", lambda scene: _bomb_png(scene / "00.png", 30000, 30000)))
    for name, stack in (("captured_1x1", None), ("captured_nan", {"focus_distances": [0.8, float("nan"), 3.0]}),
                        ("captured_huge_focus", {"focus_distances": [0.8, 1.5, 1e301]})):
        _captured_scene(work / name, "scene0", size=(1, 1) if name == "captured_1x1" else (24, 32), stack=stack)
        fixtures[name] = str(work / name)
    deep = work / "captured_deep"
    _captured_scene(deep, "scene0")
    (deep / "train" / "scene0" / "stack.json").write_text("[" * 100_000 + "]" * 100_000)
    fixtures["captured_deep"] = str(deep)
    return fixtures


def _truncate(shard: Path) -> None:
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 3])


def _captured_copy(work: Path, source: Path, name: str, edit: Callable[[Path], object]) -> Path:
    shutil.copytree(source, work / name, symlinks=True)
    edit(work / name / "train" / "scene0")
    return work / name


# ------------------------------------------------------------------ the probes


def _unchanged(path: str, text: str) -> Callable[[Path], str]:
    return lambda work: "" if (work / path).read_text() == text else f"{path} was changed"


def _absent(*paths: str) -> Callable[[Path], str]:
    return lambda work: ", ".join(f"{p} was written" for p in paths if (work / p).exists())


def _only(folder: str, names: list[str]) -> Callable[[Path], str]:
    return lambda work: "" if sorted(p.name for p in (work / folder).iterdir()) == names else f"{folder} holds files left behind"


TRAIN = ["train", "--num-cpus", "2", "--set", "train.epochs=1"]
PREDICT = ["predict", "--model", "{ckpt}", "--images", "{stack}"]
CAPTURED = ["render", "--source", "focal-stack-folder", "--split", "train", "--num-bins", "3"]

PROBES = [
    Probe("1", "train --num-cpus 1 asks for more CPUs than exist", ["train", "--data", "{store}", "--preset", "quickstart", "--num-cpus", "1"],
          ["CPU"], limit_s=90, test="tests/test_errors.py::test_a_run_that_would_wait_forever_for_cpus_is_refused_before_ray"),
    Probe("2", "tune: a million-trial grid", ["tune", "--data", "{store}", "--space", "{work}/grid.yaml", "--num-cpus", "2"],
          ["1,000,000"], test="tests/test_tune.py::test_a_million_trial_grid_is_refused_before_ray"),
    Probe("3", "predict: a TIFF with one NaN pixel", [*PREDICT[:4], "{nan_stack}", "--out", "{work}/out_nan"], ["NaN", ".tif"],
          check=_absent("out_nan"), test="tests/test_predict.py::test_predict_rejects_stacks_that_cannot_give_depth"),
    Probe("4", "--set model.width=0", [*TRAIN, "--data", "{store}", "--set", "model.width=0"], ["width"], limit_s=60,
          check=_absent("runs"), test="tests/test_errors.py::test_bad_train_input_is_one_line_before_ray"),
    Probe("4", "--set model.near=5 --set model.far=1", [*TRAIN, "--data", "{store}", "--set", "model.near=5", "--set", "model.far=1"],
          ["near, far"], limit_s=60, check=_absent("runs"), test="tests/test_errors.py::test_bad_train_input_is_one_line_before_ray"),
    Probe("4", "--tracking-uri foo://bar", [*TRAIN, "--data", "{store}", "--tracking-uri", "foo://bar"], ["--tracking-uri", "foo"],
          limit_s=60, check=_absent("runs"), test="tests/train/test_inputs.py::test_an_unknown_tracking_scheme_is_refused_before_ray"),
    Probe("4", "--set loss.kernel_size=1", [*TRAIN, "--data", "{store}", "--set", "loss.kernel_size=1"], ["kernel_size"], limit_s=60,
          check=_absent("runs"), test="tests/test_errors.py::test_bad_train_input_is_one_line_before_ray"),
    Probe("4", "a checkpoint whose meta asks for width 1e6", [*PREDICT[:1], "--model", "{ckpt_wide}", "--images", "{stack}", "--out",
          "{work}/out_wide"], ["meta.json", "width"], test="tests/test_model_io.py::test_a_checkpoint_cannot_ask_for_an_unbounded_network_or_file"),
    Probe("5", "predict: a decompression-bomb PNG (30000x30000 declared)", [*PREDICT[:4], "{bomb}", "--out", "{work}/out_bomb"],
          ["pixels"], test="tests/test_predict.py::test_predict_rejects_stacks_that_cannot_give_depth"),
    Probe("5", "predict: a 10000x10000 PNG header, checked before decoding", [*PREDICT[:4], "{big}", "--out", "{work}/out_big"],
          ["pixels"], test="tests/test_predict.py::test_predict_rejects_stacks_that_cannot_give_depth"),
    Probe("5", "a captured scene with a decompression-bomb PNG", [*CAPTURED, "--input", "{captured_bomb}", "--out", "{work}/s_bomb"],
          ["00.png"], check=_absent("s_bomb"), test="tests/data/test_captured.py::test_bad_captured_folders_are_one_line_errors_before_a_store"),
    Probe("6", "predict --out is a file", [*PREDICT, "--out", "{work}/a_file"], ["--out", "a_file"], check=_unchanged("a_file", "x"),
          test="tests/test_predict.py::test_predict_checks_its_output_folder_before_the_model_runs"),
    Probe("6", "predict --out under a file", [*PREDICT, "--out", "{work}/a_file/sub"], ["--out", "a_file"],
          test="tests/test_predict.py::test_predict_checks_its_output_folder_before_the_model_runs"),
    Probe("6", "predict --out holds aif.png as a folder", [*PREDICT, "--out", "{work}/with_folder"], ["aif.png"],
          check=_only("with_folder", ["aif.png"]), test="tests/test_predict.py::test_predict_checks_its_output_folder_before_the_model_runs"),
    Probe("6", "render --out is a file", ["render", "--out", "{work}/a_file", "--size", "16x16", "--scenes", "2"], ["--out", "a_file"],
          check=_unchanged("a_file", "x"), test="tests/data/test_pipeline.py::test_render_out_that_is_a_file_is_one_line_before_ray"),
    *[Probe("7", f"train on a store whose manifest {what}", [*TRAIN, "--data", "{" + name + "}"], ["manifest.json"], limit_s=60,
            test="tests/data/test_store_schema.py::test_a_hand_edited_manifest_is_one_line_naming_the_file_and_field")
      for name, what in (("store_list", "is a JSON list"), ("store_nocamera", "has no camera"), ("store_bins", 'has num_bins "abc"'),
                         ("store_latin1", "is not UTF-8"), ("store_traversal", "names a shard ../../outside.h5"))],
    Probe("7", "train on a store whose shard is a directory", [*TRAIN, "--data", "{store_shard_dir}"], [".h5"], limit_s=60,
          test="tests/data/test_store_schema.py::test_a_shard_replaced_by_a_directory_is_one_line"),
    Probe("7", "train on a truncated shard", [*TRAIN, "--data", "{store_truncated}"], [".h5"], limit_s=300,
          test="tests/data/test_store_schema.py::test_train_on_a_cut_shard_is_one_line_before_ray"),
    Probe("7", "a captured depth.png linked to a file outside the scene", [*CAPTURED, "--input", "{captured_link}", "--out",
          "{work}/s_link"], ["depth.png"], check=_absent("s_link"), test="tests/data/test_captured.py::test_bad_captured_folders_are_one_line_errors_before_a_store"),
    Probe("8", "daif ui on a port in use", ["ui", "--port", "{busy_port}"], ["--port", "{busy_port}"], limit_s=30, test="tests/test_ui.py::test_ui_on_a_busy_port_is_refused"),
    Probe("8", "a tracking port that answers non-HTTP", [*TRAIN, "--data", "{store}", "--tracking-uri", "http://127.0.0.1:{garbage_port}"],
          ["127.0.0.1:{garbage_port}"], limit_s=60, test="tests/test_tracking.py::test_a_port_that_answers_non_http_is_a_one_line_error"),
    Probe("9", "captured 1x1 images", [*CAPTURED, "--input", "{captured_1x1}", "--out", "{work}/s_1x1"], ["00.png"],
          check=_absent("s_1x1"), test="tests/data/test_captured.py::test_bad_captured_folders_are_one_line_errors_before_a_store"),
    Probe("9", "a camera with N = 1e-300 and p = 1e-300", ["render", "--out", "{work}/s_camera", "--size", "16x16", "--scenes", "2",
          "--camera", "0.05,1e-300,1e-300"], ["--camera"], check=_absent("s_camera"), test="tests/data/test_pipeline.py::test_implausible_render_options_are_one_line_before_ray"),
    Probe("9", "stack.json nested 100,000 deep", [*CAPTURED, "--input", "{captured_deep}", "--out", "{work}/s_deep"], ["stack.json"],
          check=_absent("s_deep"), test="tests/data/test_captured.py::test_bad_captured_folders_are_one_line_errors_before_a_store"),
    Probe("9", "a NaN focus distance is called non-finite", [*CAPTURED, "--input", "{captured_nan}", "--out", "{work}/s_nan"],
          ["finite"], check=_absent("s_nan"), test="tests/data/test_captured.py::test_bad_captured_folders_are_one_line_errors_before_a_store"),
    Probe("9", "predict: a NaN focus distance is called non-finite", [*PREDICT, "--focus-distances", "nan", "1.5", "2.5", "4", "6",
          "--out", "{work}/out_nanfocus"], ["nan must be finite"], check=_absent("out_nanfocus"),
          test="tests/test_predict.py::test_predict_rejects_bad_inputs"),
    Probe("9", "a focus distance of 1e301 is called too far", [*CAPTURED, "--input", "{captured_huge_focus}", "--out",
          "{work}/s_far"], ["1e+301"], check=_absent("s_far"), test="tests/data/test_captured.py::test_bad_captured_folders_are_one_line_errors_before_a_store"),
]
TEST_ONLY = [
    ("2", "tune --data store (relative) runs its trials in the command's folder", "tests/test_config.py::test_relative_paths_mean_the_folder_the_command_runs_in"),
    ("2", "a search killed or failing ends its MLflow runs KILLED or FAILED", "tests/test_tune.py::test_a_search_that_fails_or_is_interrupted_leaves_no_run_running"),
    ("8", "SIGTERM or Ctrl-C during training: KILLED, exit 143 / 130, resumable", "tests/train/test_signals.py"),
    ("8", "pytest -m cluster leaves no Ray process running", "tests/test_cluster.py"),
]


# ------------------------------------------------------------------ running them


def _fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def run_probe(probe: Probe, values: dict[str, str], code_root: Path | None) -> Outcome:
    """Run one probe in a fresh process (`code_root`'s daif on PYTHONPATH when given) and judge it."""
    args = [_fill(a, values) for a in probe.args]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(code_root) if code_root else ""}
    env.pop("MLFLOW_TRACKING_URI", None)
    work = Path(values["work"])
    start = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen([sys.executable, "-m", "daif.cli", *args], cwd=work, env=env, stdout=out, stderr=err,
                                   start_new_session=True)
        timer = threading.Timer(probe.limit_s, lambda: os.killpg(process.pid, signal.SIGKILL))
        timer.start()
        _, status, usage = os.wait4(process.pid, 0)
        timed_out = not timer.is_alive()
        timer.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
        with contextlib.suppress(OSError):
            os.killpg(process.pid, signal.SIGKILL)  # what the command left running (Ray's processes)
        seconds = time.monotonic() - start
        err.seek(0)
        stderr = re.sub(r"\x1b\[[0-9;]*m", "", err.read().decode(errors="replace"))  # Ray's colours
    peak_mb = usage.ru_maxrss / 1024
    lines = [line for line in stderr.strip().splitlines() if "Warning" not in line and line.strip()]
    if timed_out:
        verdict = f"hang (no end in {probe.limit_s:.0f} s)"
    elif "Traceback" in stderr:
        verdict = f"exit {process.returncode}, traceback: {lines[-1][:90] if lines else ''}"
    elif process.returncode != probe.code:
        verdict = f"exit {process.returncode}: {lines[-1][:90] if lines else '(no message)'}"
    elif len(lines) != 1:
        verdict = f"exit {process.returncode}, {len(lines)} lines on stderr"
    elif missing := [f for f in (_fill(e, values) for e in probe.expect) if f not in lines[0]]:
        verdict = f"message lacks {missing}: {lines[0][:90]}"
    else:
        verdict = (probe.check(work) if probe.check else "") or "ok"
    return Outcome(verdict, seconds, peak_mb)


def _servers() -> tuple[dict[str, str], list[socket.socket]]:
    """A busy port (something listening) and a port that answers garbage instead of HTTP."""
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    garbage = socket.socket()
    garbage.bind(("127.0.0.1", 0))
    garbage.listen()

    def answer() -> None:
        while True:
            try:
                connection, _ = garbage.accept()
            except OSError:
                return
            with connection:
                connection.recv(1024)
                connection.sendall(b"SSH-2.0-not-http\r\n\r\n")

    threading.Thread(target=answer, daemon=True).start()
    return {"busy_port": str(busy.getsockname()[1]), "garbage_port": str(garbage.getsockname()[1])}, [busy, garbage]


def _worktree(commit: str, directory: Path) -> Path:
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(directory), commit], check=True, capture_output=True)
    return directory


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="", help="a commit whose code runs the same probes (a temporary git worktree)")
    parser.add_argument("--only", default="", help="run the probes whose name holds this text")
    args = parser.parse_args()
    probes = [p for p in PROBES if args.only in p.name]
    with tempfile.TemporaryDirectory(prefix="daif-probes-") as directory:
        root = Path(directory)
        values, sockets = _servers()
        values.update(make_inputs(root / "inputs"))
        columns = [("after", None)]
        if args.before:
            columns.insert(0, (f"before ({args.before})", _worktree(args.before, root / "before")))
        rows = []
        try:
            for probe in probes:
                outcomes = []
                for _, code_root in columns:
                    work = root / f"run-{len(rows)}-{len(outcomes)}"
                    shutil.copytree(values["work"], work, symlinks=True)
                    outcome = run_probe(probe, {**values, **{k: v.replace(values["work"], str(work)) for k, v in values.items()}},
                                        code_root)
                    outcomes.append(outcome)
                    print(f"  [{probe.item}] {probe.name}: {outcome.verdict} ({outcome.seconds:.1f} s, {outcome.peak_mb:.0f} MB)",
                          file=sys.stderr, flush=True)
                rows.append((probe, outcomes))
        finally:
            for sock in sockets:
                sock.close()
            if args.before:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(root / "before")], capture_output=True)
    header = "| item | case | " + " | ".join(f"{name} | s | MB" for name, _ in columns) + " | test |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for probe, outcomes in rows:
        cells = " | ".join(f"{o.verdict} | {o.seconds:.1f} | {o.peak_mb:.0f}" for o in outcomes)
        print(f"| {probe.item} | {probe.name} | {cells} | {probe.test} |")
    for item, name, test in TEST_ONLY:
        print(f"| {item} | {name} | " + " | ".join("(test) | | " for _ in columns) + f" | {test} |")
    failed = sum(outcomes[-1].verdict != "ok" for _, outcomes in rows)
    print(f"\n{len(rows) - failed} of {len(rows)} probes ok with this checkout.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
