"""The `daif` command itself and its first subcommand, the render demo."""

import argparse
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from daif.cli import COMMANDS, main


def test_every_subcommand_has_help(capsys):
    for name in COMMANDS:
        try:
            main([name, "--help"])
        except SystemExit as done:
            assert done.code == 0, name
        assert f"daif {name}" in capsys.readouterr().out


def test_unknown_subcommand_is_an_error():
    result = subprocess.run([sys.executable, "-m", "daif.cli", "rendr"], capture_output=True, text=True)
    assert result.returncode == 2 and "invalid choice: 'rendr'" in result.stderr


def test_render_demo_writes_a_montage(tmp_path):
    assert main(["render-demo", "--out", str(tmp_path)]) == 0
    picture = np.asarray(Image.open(tmp_path / "render_demo.png").convert("RGB"))
    assert picture.shape[0] > 300 and picture.shape[1] > 600
    assert picture.std() > 20  # not a blank canvas


# ------------------------------------------------------------------ one vocabulary: one name per idea, old names for one release

# command -> the old spellings it still reads, each hidden from --help
DEPRECATED = {"render-demo": ["--preset"], "render": ["--preset"], "tune": ["--gpus-per-trial", "--workers-per-trial"],
              "evaluate": ["--focus-sets"]}


def parse(command: str, argv: list[str]):
    from daif.cli import command_parser

    return vars(command_parser(command)[1].parse_args(argv))


@pytest.mark.parametrize(
    ("command", "old", "new", "line"),
    [
        ("render-demo", ["--preset", "defocusnet"], ["--camera", "defocusnet"],
         "daif render-demo: --preset is deprecated, use --camera (it will be removed in the next release)"),
        ("render", ["--preset", "nyuv2-dense"], ["--camera", "nyuv2-dense"],
         "daif render: --preset is deprecated, use --camera (it will be removed in the next release)"),
        ("render", ["--preset", "nyuv2-dense", "--camera", "0.05,2,1e-5"], ["--camera", "nyuv2-dense", "0.05,2,1e-5"],
         "daif render: --preset is deprecated, use --camera (it will be removed in the next release)"),
        ("render", ["--focus-range", "1,9"], ["--focus-range", "1", "9"],
         "daif render: --focus-range 1,9 is deprecated, use --focus-range 1 9 (it will be removed in the next release)"),
        ("render", ["--depth-range", "0.5,8", "--depth-range", "1,7"], ["--depth-range", "1", "7"],
         "daif render: --depth-range 0.5,8 is deprecated, use --depth-range 0.5 8 (it will be removed in the next release)"),
        ("tune", ["--gpus-per-trial", "0.5"], ["--gpu", "0.5"],
         "daif tune: --gpus-per-trial is deprecated, use --gpu (it will be removed in the next release)"),
        ("tune", ["--workers-per-trial", "2", "--workers-per-trial", "3"], ["--num-workers", "3"],
         "daif tune: --workers-per-trial is deprecated, use --num-workers (it will be removed in the next release)"),
        ("evaluate", ["--stack-sizes", "2,3,5"], ["--stack-sizes", "2", "3", "5"],
         "daif evaluate: --stack-sizes 2,3,5 is deprecated, use --stack-sizes 2 3 5 (it will be removed in the next release)"),
        ("evaluate", ["--focus-sets", "1,1.5,2.5", "1.2,2,3"], ["--focus-set", "1", "1.5", "2.5", "--focus-set", "1.2", "2", "3"],
         "daif evaluate: --focus-sets is deprecated, use --focus-set F [F ...] once per set (it will be removed in the next release)"),
    ],
    ids=["demo-preset", "render-preset", "render-preset-and-lens", "focus-range-commas", "depth-range-commas-twice",
         "gpus-per-trial", "workers-per-trial-twice", "stack-sizes-commas", "focus-sets"],
)
def test_an_old_spelling_reads_as_the_new_one_with_one_deprecation_line(command, old, new, line, capsys):
    required = {"render-demo": ["--out", "o"], "render": ["--out", "o"], "tune": ["--data", "d", "--space", "table4"],
                "evaluate": ["--model", "m", "--data", "d", "--out", "o"]}[command]
    assert parse(command, [*required, *new]) == parse(command, [*required, *old]) != parse(command, required)
    assert capsys.readouterr().err.splitlines() == [line]  # the new spelling says nothing


@pytest.mark.parametrize("command", list(COMMANDS))
def test_help_shows_no_old_spelling_and_speaks_to_users(command, capsys):
    from daif.cli import command_parser

    parser = command_parser(command)[1]
    text = parser.format_help()
    hidden = [option for action in parser._actions if action.help == argparse.SUPPRESS for option in action.option_strings]
    assert sorted(hidden) == sorted(DEPRECATED.get(command, []))
    assert not [option for option in hidden if option in text]
    assert re.search(r"\bdaif\.\w", text) is None  # no module names
    assert [a.option_strings for a in parser._actions if not a.help] == []  # every option says what it is


def test_lists_are_space_separated_and_a_repeated_flag_adds_to_them():
    args = parse("evaluate", ["--model", "a", "b", "--model", "c", "--data", "d", "--out", "o", "--max-depth", "0.5",
                              "--max-depth", "1", "2", "--name", "x", "y", "z"])
    assert (args["model"], args["name"], args["max_depth"]) == (["a", "b", "c"], ["x", "y", "z"], [0.5, 1.0, 2.0])
    assert parse("evaluate", ["--model", "a", "--data", "d", "--out", "o"])["stack_sizes"] == [2, 3, 5, 8, 10]
    assert parse("evaluate", ["--model", "a", "--data", "d", "--out", "o", "--stack-sizes", "4"])["stack_sizes"] == [4]
    overrides = parse("train", ["--set", "a=1", "b=[1,2]", "--set", "c=3"])["overrides"]
    assert overrides == ["a=1", "b=[1,2]", "c=3"]  # commas inside a value stay
    assert parse("predict", ["--model", "m", "--images", "x.png", "y.png", "--focus-distances", "1", "2.5", "--out", "o"])[
        "focus_distances"] == [1.0, 2.5]


def test_a_bad_list_is_an_argparse_error_naming_the_flag(capsys):
    with pytest.raises(SystemExit) as done:
        parse("render", ["--out", "o", "--focus-range", "1", "2", "3"])
    assert done.value.code == 2 and capsys.readouterr().err.splitlines()[-1] == (
        "daif render: error: argument --focus-range: expected LOW HIGH, got 1 2 3")
    with pytest.raises(SystemExit):
        parse("evaluate", ["--model", "m", "--data", "d", "--out", "o", "--stack-sizes", "2", "x"])
    assert capsys.readouterr().err.splitlines()[-1] == "daif evaluate: error: argument --stack-sizes: expected an integer, got 'x'"


def test_render_camera_is_a_preset_a_lens_or_both(capsys):
    from daif.data.cli import preset_and_lens

    assert preset_and_lens(parse("render", ["--out", "o", "--camera", "defocusnet"])["camera"]) == ("defocusnet", None)
    assert preset_and_lens(parse("render", ["--out", "o", "--camera", "0.05,8,12e-6"])["camera"]) == (None, "0.05,8,12e-6")
    assert preset_and_lens(["0.05,8,12e-6", "nyuv2-dense"]) == ("nyuv2-dense", "0.05,8,12e-6")
    assert main(["render", "--out", "o", "--camera", "nyuv2-5", "defocusnet"]) == 2
    assert capsys.readouterr().err.strip() == (
        "daif render: error: --camera: expected a preset, a lens f,N,p or PRESET f,N,p, got nyuv2-5 defocusnet")


def test_resume_has_one_shape_and_one_help_in_train_and_tune():
    from daif.cli import command_parser

    helps = set()
    for command, required in (("train", []), ("tune", ["--data", "d", "--space", "table4"])):
        assert [parse(command, [*required, *resume])["resume"] for resume in ([], ["--resume"], ["--resume", "f"])] == [None, "", "f"]
        helps |= {a.help for a in command_parser(command)[1]._actions if "--resume" in a.option_strings}
    assert len(helps) == 1


def _run_folder(folder, epochs: int, written: float) -> None:
    """A Ray run folder holding `epochs` checkpoints of a tiny net, the last written at time `written`."""
    import os

    from daif.checkpoint import save_checkpoint
    from daif.model import DAIFNet

    for epoch in range(epochs):
        checkpoint = save_checkpoint(folder / f"checkpoint_{epoch:06d}", DAIFNet(width=4, levels=2), {}, epoch=epoch)
        os.utime(checkpoint / "meta.json", (written - epochs + epoch, written - epochs + epoch))


def test_train_resume_alone_takes_the_newest_run_and_a_folder_its_latest_checkpoint(tmp_path):
    from daif.errors import UsageError
    from daif.train.cli import resume_checkpoint

    runs = tmp_path / "runs"
    _run_folder(runs / "daif-older", 3, written=1_000_000)
    _run_folder(runs / "daif-newer", 2, written=2_000_000)
    (runs / "daif-tune" / "trials").mkdir(parents=True)  # a search under the same storage: no checkpoint of its own
    assert resume_checkpoint(None, str(runs)) is None
    assert resume_checkpoint("", str(runs)) == str(runs / "daif-newer" / "checkpoint_000001")
    assert resume_checkpoint(str(runs / "daif-older"), "") == str(runs / "daif-older" / "checkpoint_000002")
    assert resume_checkpoint(str(runs / "daif-older" / "checkpoint_000000"), "") == str(runs / "daif-older" / "checkpoint_000000")
    with pytest.raises(UsageError, match=f"^--resume: no run with a checkpoint under {tmp_path / 'empty'}; name one"):
        resume_checkpoint("", str(tmp_path / "empty"))


def test_tune_resume_folder_names_the_storage_and_the_search(tmp_path, capsys):
    from daif.tune.cli import _search_folder

    assert _search_folder(str(tmp_path / "runs" / "table4"), None, "daif-tune") == (str(tmp_path / "runs"), "table4")
    assert _search_folder("s3://bucket/runs/table4", "s3://bucket/runs/", "table4") == ("s3://bucket/runs", "table4")
    assert main(["tune", "--data", str(tmp_path), "--space", "table4", "--resume", str(tmp_path / "runs" / "table4"),
                 "--storage", str(tmp_path / "other")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"daif tune: error: --resume: {tmp_path / 'runs' / 'table4'} is not in --storage {tmp_path / 'other'}; give one of them")
