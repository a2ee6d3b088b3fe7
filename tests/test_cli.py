"""The command line: train / presets / sample, with one-line errors for bad input."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from PIL import Image

from gankit.cli import main
from gankit.config import preset_names

TINY_ARGS = ["model.g_hidden=[16]", "model.d_hidden=[16]", "train.steps=8", "train.batch_size=16",
             "log.every=4", "log.sample_every=4", "log.toy_points=200"]


def test_presets_lists_one_line_each(capsys):
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(preset_names())
    assert any(line.startswith("digits-mlp") and "(default)" in line for line in lines)
    assert any(line.startswith("toy-gaussian") for line in lines)


def test_bad_overrides_fail_with_one_clear_line(capsys):
    assert main(["train", "toy-gaussian", "train.d_stepz=2"]) == 2
    error = capsys.readouterr().err.strip()
    assert error == ("gankit: error: unknown config key 'train.d_stepz' "
                     "(did you mean 'train.d_steps'?)")
    assert main(["train", "toy-gaussian", "train.d_steps=two"]) == 2
    error = capsys.readouterr().err.strip()
    assert error == "gankit: error: train.d_steps expects an int, got 'two'"


def test_train_prints_the_run_folder_and_sample_writes_png_and_npy(tmp_path, capsys):
    out = tmp_path / "ring"
    assert main(["train", "toy-ring", "--out", str(out), "--no-progress", *TINY_ARGS]) == 0
    assert capsys.readouterr().out.strip() == str(out)

    target = tmp_path / "points.png"
    assert main(["sample", str(out), "-n", "300", "--seed", "1", "--out", str(target),
                 "--npy"]) == 0
    points = np.load(tmp_path / "points.npy")
    assert points.shape == (300, 2)
    assert Image.open(target).size[0] > 100

    # A non-picture --out is refused before sampling (a toy run's plot failed on .npy).
    assert main(["sample", str(out), "--out", str(tmp_path / "points.npy"), "--npy"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "points.npy: the picture needs a .png/.jpg/.jpeg" in error

    assert main(["train", "--resume", str(out), "--no-progress", "train.steps=12"]) == 0
    assert "step_00000012" in (out / "checkpoints" / "latest").read_text()


def test_sample_of_an_image_run_writes_a_grid(tmp_path, capsys):
    out = tmp_path / "digits"
    assert main(["train", "--out", str(out), "--no-progress", *TINY_ARGS]) == 0
    assert main(["sample", str(out), "-n", "16", "--seed", "0"]) == 0
    grid = Image.open(out / "sample.png")
    assert grid.mode == "L" and grid.size[0] == grid.size[1]


def test_sampling_a_run_whose_latest_checkpoint_is_unreadable_warns_in_one_line(tmp_path,
                                                                               capsys):
    out = tmp_path / "digits"
    assert main(["train", "--out", str(out), "--no-progress", *TINY_ARGS,
                 "log.checkpoint_every=4"]) == 0
    broken = out / "checkpoints" / "step_00000008" / "generator.safetensors"
    broken.write_bytes(b"")
    capsys.readouterr()
    assert main(["sample", str(out), "-n", "4"]) == 0
    error = capsys.readouterr().err
    assert error.startswith(f"gankit: warning: {broken}: unreadable weights")
    assert error.count("\n") == 1 and error.rstrip().endswith("step_00000004")


def test_sample_of_a_folder_without_a_run_is_one_line(tmp_path, capsys):
    assert main(["sample", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "no checkpoint found" in error and str(tmp_path) in error
    assert error.count("\n") == 1
    # A run stopped before its first save: the message names where checkpoints would be.
    (tmp_path / "config.yaml").write_text("")
    assert main(["sample", str(tmp_path)]) == 2
    assert f"looked for {tmp_path / 'checkpoints' / 'latest'})" in capsys.readouterr().err
    for path, message in [(tmp_path / "missing", "no such run or checkpoint folder"),
                          (tmp_path / "config.yaml", "is a file, not a run or checkpoint folder")]:
        assert main(["sample", str(path)]) == 2
        assert f"{path}: {message}" in capsys.readouterr().err


def test_console_script_is_installed():
    result = subprocess.run([sys.executable, "-m", "gankit.cli", "presets"], capture_output=True,
                            text=True, check=True)
    assert "toy-gaussian" in result.stdout
    result = subprocess.run(["gankit", "--help"], capture_output=True, text=True, check=True)
    assert "train" in result.stdout and "sample" in result.stdout


def test_an_out_path_that_is_a_file_is_one_line(tmp_path, capsys):
    # Each was a FileExistsError traceback.
    blocker = tmp_path / "afile"
    blocker.write_text("keep me")
    for argv in (["train", "--out", str(blocker), "--no-progress", *TINY_ARGS],
                 ["study", "mixture", "--out", str(blocker), "--no-progress"]):
        assert main(argv) == 2
        error = capsys.readouterr().err
        assert error == f"gankit: error: {blocker}: exists and is not a folder\n"
    assert blocker.read_text() == "keep me"


def test_a_study_refused_at_its_start_leaves_no_folder(tmp_path, capsys):
    out = tmp_path / "study"
    assert main(["study", "multimodal", "--data-root", str(tmp_path / "nowhere"), "--out",
                 str(out), "--no-progress"]) == 2
    assert "mnist train split not found" in capsys.readouterr().err
    assert not out.exists()
