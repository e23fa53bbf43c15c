"""The `daif` command itself and its first subcommand, the render demo."""

import subprocess
import sys

import numpy as np
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
