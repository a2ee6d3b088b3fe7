"""Training curves: losses and the discriminator's outputs over training steps.

Reads the records of a run's ``metrics.jsonl`` (one dict per logged step) and draws them
with matplotlib (Agg backend).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no screen: render to files only; must precede the pyplot import
import matplotlib.pyplot as plt  # noqa: E402

_DPI = 100
_LOSS_SERIES = (("d_loss", "D loss", "tab:blue"), ("g_loss", "G loss", "tab:green"))
_PROB_SERIES = (("d_real", "D(x)", "black"), ("d_fake", "D(G(z))", "tab:green"))


def _series(records: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """Return the (steps, values) of the records that hold a finite number under ``key``."""
    steps, values = [], []
    for record in records:
        value = record.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            steps.append(float(record["step"]))
            values.append(float(value))
    return steps, values


def _draw_panel(
    ax: Any, records: Sequence[Mapping[str, Any]], series: tuple[tuple[str, str, str], ...]
) -> None:
    """Plot each series that has at least one value, or say that none was logged."""
    drawn = 0
    for key, label, color in series:
        steps, values = _series(records, key)
        if steps:
            ax.plot(steps, values, color=color, linewidth=1.2, label=label)
            drawn += 1
    if drawn:
        ax.legend(loc="upper right", fontsize=8)
    else:
        names = ", ".join(key for key, _, _ in series)
        ax.text(0.5, 0.5, f"no {names} logged", transform=ax.transAxes, ha="center")


def plot_training_curves(records: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Draw losses (top) and mean discriminator outputs (bottom) against the training step.

    The bottom panel shows D(x) on real data and D(G(z)) on generated data in [0, 1], with a
    dashed line at 0.5, where both sit at the optimum of the game (p_g = p_data).

    Args:
        records: One dict per logged step, each with "step" and any of "d_loss", "g_loss",
            "d_real" (mean D(x)) and "d_fake" (mean D(G(z))). Records without "step" are
            ignored; keys missing from every record are left out; missing or non-finite
            values only leave a gap in their own line.
        path: Where to write the PNG; parent folders are created.

    Returns:
        The path written, as a ``pathlib.Path``.

    Raises:
        ValueError: If ``records`` is empty or no record has a "step".
    """
    if not records:
        raise ValueError("plot_training_curves needs at least one record, got none")
    # Resumed runs may log out of order; lines should still run left to right.
    stepped = sorted((r for r in records if "step" in r), key=lambda r: float(r["step"]))
    if not stepped:
        raise ValueError(f"none of the {len(records)} records has a 'step'")

    fig, (loss_ax, prob_ax) = plt.subplots(2, 1, sharex=True, figsize=(7.0, 5.6))
    try:
        _draw_panel(loss_ax, stepped, _LOSS_SERIES)
        loss_ax.set_ylabel("loss")
        loss_ax.grid(alpha=0.3)

        prob_ax.axhline(0.5, color="grey", linestyle="--", linewidth=1, label="optimum (0.5)")
        _draw_panel(prob_ax, stepped, _PROB_SERIES)
        prob_ax.set_ylim(0.0, 1.0)
        prob_ax.set_ylabel("mean D output")
        prob_ax.set_xlabel("step")
        prob_ax.grid(alpha=0.3)
        return _save_figure(fig, path)
    finally:
        plt.close(fig)


def plot_metric_curves(records: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Each evaluation metric against training step (left) and wall-clock seconds (right).

    Args:
        records: metrics.jsonl records; metric keys are those holding a "/" (such as
            "fid/mnist-cnn/n10000"), and each record needs "step" and "time".
        path: where to write the PNG.

    Returns:
        The path written.

    Raises:
        ValueError: if no record holds a metric.
    """
    keys = sorted({k for r in records for k in r if "/" in k})
    if not keys:
        raise ValueError("no evaluation metrics in these records")
    fig, axes = plt.subplots(len(keys), 2, figsize=(9, 2.4 * len(keys)), squeeze=False)
    try:
        for row, key in enumerate(keys):
            points = [(r["step"], r["time"], r[key]) for r in records
                      if key in r and "step" in r and "time" in r]
            steps, seconds, values = zip(*points, strict=True) if points else ((), (), ())
            for column, (xs, label) in enumerate(((steps, "step"), (seconds, "seconds"))):
                ax = axes[row][column]
                ax.plot(xs, values, marker="o", color="tab:purple")
                ax.set_xlabel(label)
                ax.set_ylabel(key, fontsize=8)
                ax.grid(alpha=0.3)
        return _save_figure(fig, path)
    finally:
        plt.close(fig)


def _save_figure(fig: Any, path: str | Path) -> Path:
    """Lay out and write a figure as PNG, creating parent folders; the caller closes it."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=_DPI)
    return path
