"""Tests for gankit.viz.curves: training curves from metrics.jsonl records."""

from __future__ import annotations

import json
import math

import matplotlib.pyplot as plt
import pytest
from PIL import Image

from gankit.viz.curves import plot_training_curves


def _records(n=50):
    return [
        {
            "step": 10 * i,
            "d_loss": 1.4 - 0.01 * i,
            "g_loss": 0.7 + 0.01 * i,
            "d_real": 0.5 + 0.3 * math.exp(-i / 10),
            "d_fake": 0.5 - 0.3 * math.exp(-i / 10),
        }
        for i in range(n)
    ]


def _assert_png(path):
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert min(image.size) >= 100
        image.load()


def test_writes_png_from_jsonl_records(tmp_path):
    jsonl = tmp_path / "metrics.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in _records()))
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    path = plot_training_curves(records, tmp_path / "plots" / "curves.png")
    assert path == tmp_path / "plots" / "curves.png"
    _assert_png(path)
    assert plt.get_fignums() == []  # the figure was closed


def test_missing_keys_and_records_without_step_are_skipped(tmp_path):
    records = [{"step": i, "d_loss": 1.0 / (i + 1)} for i in range(20)]  # no g_loss, no D outputs
    records += [{"d_loss": 5.0}, {"step": 20, "d_loss": None}, {"step": 21, "d_loss": float("nan")}]
    records.append({"step": 22, "d_real": 0.6})  # one key that appears once
    _assert_png(plot_training_curves(records, tmp_path / "c.png"))


def test_records_with_only_steps_still_draw(tmp_path):
    _assert_png(plot_training_curves([{"step": 0}, {"step": 1}], tmp_path / "c.png"))


def test_out_of_order_steps_are_accepted(tmp_path):
    _assert_png(plot_training_curves(list(reversed(_records(10))), tmp_path / "c.png"))


def test_empty_input_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="at least one record"):
        plot_training_curves([], tmp_path / "c.png")
    with pytest.raises(ValueError, match="step"):
        plot_training_curves([{"d_loss": 1.0}], tmp_path / "c.png")
    assert not (tmp_path / "c.png").exists()
