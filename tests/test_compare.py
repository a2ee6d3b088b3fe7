"""gankit compare: real images beside each run's samples, and FID/precision/recall per run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import gankit
from conftest import TINY, tiny_config
from gankit.cli import main
from gankit.compare import compare
from gankit.data import build_dataset
from gankit.data.root import resolve_data_root
from gankit.errors import GankitError
from gankit.eval.evaluate import evaluate
from gankit.train.loop import Trainer

HAS_MNIST = (resolve_data_root() / "MNIST" / "raw").is_dir()
VAE = {"model.objective": "vae", "train.g_lr": 1e-3}


def tiny_run(folder, preset="digits-mlp", steps=4, **values):
    return gankit.train(preset, out=folder, **{**TINY, "train.steps": steps,
                                               "log.checkpoint_every": steps, **values})


@pytest.fixture(scope="module")
def digits_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs")
    return tiny_run(folder / "vae", **VAE), tiny_run(folder / "gan")


def test_digits_runs_get_the_figure_and_a_report_without_metrics(digits_runs, tmp_path):
    out = compare(digits_runs, tmp_path / "cmp", n=100)
    figure = Image.open(out / "compare.png")
    assert figure.size[0] > 2.5 * figure.size[1]  # three panels in a row
    results = json.loads((out / "results.json").read_text())
    assert results["data"] == "digits" and results["reference"] == "digits:test"
    assert [(r["name"], r["objective"], r["step"]) for r in results["runs"]] == [
        ("digits-mlp", "vae", 4), ("digits-mlp", "gan", 4)]
    assert all(r["metrics"] == {} for r in results["runs"])
    report = (out / "report.md").read_text()
    assert "![real images beside each run's samples](compare.png)" in report
    assert "no feature extractor for digits" in report


def test_a_tensor_reference_and_the_command_line(digits_runs, tmp_path, capsys):
    real = build_dataset(tiny_config().data).first(64)
    out = compare(digits_runs[:1], tmp_path / "one", n=10, reference=real)
    assert "a tensor of 64 images" in (out / "report.md").read_text()
    width, height = Image.open(out / "compare.png").size
    assert 1.5 * height < width < 2.5 * height  # two panels: the real one and the run's
    target = tmp_path / "cli"
    assert main(["compare", *map(str, digits_runs), "--out", str(target), "-n", "50"]) == 0
    assert capsys.readouterr().out.strip() == str(target)
    assert json.loads((target / "results.json").read_text())["n"] == 50


def test_a_reference_folder_of_few_images_shows_them_and_an_empty_one_is_named(digits_runs,
                                                                             tmp_path):
    # Its panel asked for 64 images: "n=64 is larger than FOLDER", a count nobody gave.
    folder = tmp_path / "three"
    folder.mkdir()
    for index in range(3):
        Image.fromarray(np.full((8, 8), 40 * index, np.uint8)).save(folder / f"{index}.png")
    out = compare(digits_runs[:1], tmp_path / "few", reference=folder)
    assert (out / "compare.png").is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(GankitError, match=f"^{empty} holds no images"):
        compare(digits_runs[:1], tmp_path / "none", reference=empty)


def test_bad_folders_and_mixed_datasets_are_one_line_naming_the_folder(digits_runs, tmp_path,
                                                                        capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(GankitError, match=f"{empty} is not a run folder"):
        compare([digits_runs[0], empty], tmp_path / "out")
    with pytest.raises(GankitError, match="no such run folder"):
        compare([tmp_path / "missing"], tmp_path / "out")
    # A run whose config names other data (trained on digits images, so no files are needed).
    config = tiny_config(**{"data.name": "usps", "train.steps": 2})
    other = Trainer(config, tmp_path / "usps", build_dataset(tiny_config().data)).fit()
    with pytest.raises(GankitError, match=f"{other}: trained on usps, but .* on digits"):
        compare([digits_runs[1], other], tmp_path / "out")
    assert main(["compare", str(empty), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"gankit: error: {empty}") and "\n" not in error
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not HAS_MNIST, reason="MNIST not found under the data root")
def test_mnist_runs_are_measured_with_the_mnist_extractor(tmp_path, monkeypatch):
    vae = tiny_run(tmp_path / "vae", "mnist-mlp", **VAE)
    gan = tiny_run(tmp_path / "gan", "mnist-mlp")
    loaded = []
    real_load = gankit.api.load
    monkeypatch.setattr(gankit.api, "load", lambda path, **kw: loaded.append(path)
                        or real_load(path, **kw))
    out = compare([vae, gan], tmp_path / "cmp", n=200, cache_dir=tmp_path / "cache")
    assert loaded == [vae, gan]  # each run once: the metrics measure the model drawn
    results = json.loads((out / "results.json").read_text())
    assert results["reference"] == "mnist:test" and results["features"] == "mnist"
    keys = ["fid/mnist-cnn/n200", "precision/mnist-cnn/n200", "recall/mnist-cnn/n200"]
    for row in results["runs"]:
        assert sorted(row["metrics"]) == sorted(keys)
        assert row["metrics"]["fid/mnist-cnn/n200"] > 0
        assert all(0 <= row["metrics"][key] <= 1 for key in keys[1:])
    report = (out / "report.md").read_text()
    assert "| run | objective | step | " + " | ".join(keys) + " |" in report
    assert "| mnist-mlp | vae | 4 |" in report
    panels = Image.open(out / "compare.png")
    assert panels.size[0] > 2.5 * panels.size[1]


@pytest.mark.skipif(not HAS_MNIST, reason="MNIST not found under the data root")
def test_stacked_mnist_runs_are_compared_by_their_own_protocol(tmp_path):
    # Three-channel digits have no FID extractor: modes and KL, each channel classified.
    run = tiny_run(tmp_path / "run", "stacked-mnist", **{"model.width": 8})
    out = compare([run], tmp_path / "cmp", n=200)
    results = json.loads((out / "results.json").read_text())
    assert results["metrics"] == ["stacked-modes"]
    measured = results["runs"][0]["metrics"]
    keys = ["stacked_modes/mnist-cnn/n200", "stacked_reverse_kl/mnist-cnn/n200"]
    assert sorted(measured) == keys
    assert 1 <= measured[keys[0]] <= 200 and measured[keys[1]] >= 0
    direct = evaluate(run, metrics=["stacked-modes"], features="mnist", n=200)
    assert measured == pytest.approx(direct)
    report = (out / "report.md").read_text()
    assert "by the stacked-mnist protocol" in report
    assert "| run | objective | step | " + " | ".join(keys) + " |" in report
