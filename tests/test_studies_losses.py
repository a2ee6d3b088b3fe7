"""The losses study: cost curves from gankit's loss functions, trace summaries, a tiny run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from gankit.errors import GankitError
from gankit.studies import losses
from gankit.studies.losses import (
    generator_cost_curve,
    log_running_median,
    mnist_available,
    plot_cost_curves,
    summarise_trace,
)

D_VALUES = np.array([0.01, 0.2, 0.5, 0.8, 0.99])


@pytest.mark.parametrize("kind, expected", [
    ("minimax", 0.5 * np.log(1 - D_VALUES)),
    ("non-saturating", -0.5 * np.log(D_VALUES)),
    ("maximum-likelihood", -0.5 * D_VALUES / (1 - D_VALUES)),
])
def test_cost_curve_from_the_loss_functions_matches_the_tutorial_costs(kind, expected):
    np.testing.assert_allclose(generator_cost_curve(kind, D_VALUES), expected, rtol=1e-9,
                               atol=1e-12)


@pytest.mark.parametrize("kind, d_values", [
    ("minimax", [0.0, 0.5]), ("minimax", [0.5, 1.0]), ("minimax", []), ("hinge", [0.5])])
def test_cost_curve_rejects_bad_input(kind, d_values):
    with pytest.raises(GankitError):
        generator_cost_curve(kind, np.array(d_values))


def test_plot_cost_curves_writes_a_png(tmp_path):
    path = plot_cost_curves(tmp_path / "losses.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_summarise_trace_reads_early_late_and_rejected_steps():
    steps = np.arange(1, 201, dtype=np.float64)
    trace = {"step": steps, "g_grad_norm": np.where(steps <= 100, 0.01, 1.0),
             "d_fake": np.where(steps <= 100, 0.02, 0.4), "d_real": np.full(200, 0.6)}
    summary = summarise_trace(trace, early=100, last=50)
    assert summary["grad_step1"] == 0.01
    assert summary["grad_early_median"] == 0.01
    assert summary["d_fake_early"] == pytest.approx(0.02)
    assert summary["d_fake_last"] == pytest.approx(0.4)
    assert summary["rejected_steps"] == 100
    assert summary["grad_rejected_median"] == 0.01
    trace["d_fake"] = np.full(200, 0.5)
    assert summarise_trace(trace)["grad_rejected_median"] is None


def test_log_running_median_keeps_the_first_steps_and_calms_the_tail():
    values = np.ones(300)
    values[:3] = [5.0, 1.0, 3.0]
    values[9::10] = 100.0  # a spike every tenth step
    smoothed = log_running_median(values)
    assert smoothed[:3].tolist() == [5.0, 1.0, 3.0]  # a ±10% window holds only the step itself
    assert np.all(smoothed[100:] == 1.0)


def test_mnist_is_reported_absent_from_an_empty_root(tmp_path):
    assert not mnist_available(tmp_path)


def test_tiny_toy_study_logs_every_step_and_skips_absent_mnist(tmp_path, monkeypatch):
    # The slow parts are the 1D pictures and the KDE of 20,000 points: fewer of both.
    monkeypatch.setattr(losses, "TOY_EVAL_N", 2000)
    monkeypatch.setattr(losses, "PICTURES_PER_RUN", 1)
    empty_root = tmp_path / "no-data"
    empty_root.mkdir()
    folder = losses.run(tmp_path / "study", data_root=empty_root, progress=False, toy_steps=20)
    names = {p.name for p in folder.iterdir()}
    assert {"losses.png", "gradients.png", "report.md", "results.json"} <= names
    results = json.loads((folder / "results.json").read_text())
    assert set(results["experiments"]) == {"toy-gaussian"}
    toy = results["experiments"]["toy-gaussian"]
    assert set(toy) == set(losses.KINDS)
    for kind, result in toy.items():
        assert result["steps"] == 20
        assert result["grad_step1"] > 0
        assert set(result["quality"]) == {"kl_data_g/n2000", "kl_g_data/n2000", "jsd/n2000"}
        config = yaml.safe_load((folder / "runs" / f"toy-gaussian-{kind}" / "config.yaml")
                                .read_text())
        assert config["loss"]["generator"] == kind
        assert config["log"]["every"] == 1
    assert "mnist-mlp was skipped: MNIST is not in" in (folder / "report.md").read_text()
    assert results["skipped"]
