"""The shipped presets do what they promise (the fast ones, trained in full here)."""

from __future__ import annotations

import json

import pytest
from PIL import Image

import gankit
from gankit.train.checkpoint import load_checkpoint


@pytest.mark.slow
def test_toy_gaussian_preset_learns_the_seeds_n5_1_in_under_a_minute(tmp_path):
    run = gankit.train("toy-gaussian", out=tmp_path / "toy", progress=False)
    model = gankit.load(run)
    config = model.config
    # The seed's example exactly: N(5, 1) data, U[-8, 8] noise, SGD with momentum.
    assert config.data.name == "gaussian-1d"
    assert (config.model.latent, config.model.latent_range, config.model.latent_dim) == (
        "uniform", 8.0, 1)
    assert config.train.optimizer == "sgd" and config.train.momentum > 0
    assert len(config.model.g_hidden) == 1 and len(config.model.d_hidden) == 4

    samples = model.sample(20000, seed=0)[:, 0]
    print(f"toy-gaussian: mean {samples.mean():.3f}, std {samples.std():.3f}")
    assert abs(samples.mean().item() - 5.0) < 0.25
    assert abs(samples.std().item() - 1.0) < 0.25
    _, state, _ = load_checkpoint(run)
    assert state["elapsed"] < 60, state["elapsed"]

    for name in ("density.png", "density.gif", "report.md", "curves.png"):
        assert (run / name).is_file(), name
    gif = Image.open(run / "density.gif")
    assert gif.n_frames > 10
    assert "| mean | 5.000 |" in (run / "report.md").read_text()


@pytest.mark.parametrize("preset, modes", [("toy-ring", 8), ("toy-grid", 25)])
def test_2d_presets_write_the_scatter_over_the_heatmap(tmp_path, preset, modes):
    run = gankit.train(preset, out=tmp_path / preset, progress=False,
                       train={"steps": 40}, log={"every": 20, "sample_every": 20})
    assert Image.open(run / "scatter.png").size[0] > 300
    assert Image.open(run / "scatter.gif").n_frames >= 2
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 40
    assert gankit.load(run).sample(100, seed=0).shape == (100, 2)
