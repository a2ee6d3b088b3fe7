"""Pictures of GAN training on 1D and 2D toy data, and GIFs assembled from them.

The 1D frame redraws Goodfellow et al. (2014), Fig. 1: the data density, the generator's
density (its own where it knows it, else a Gaussian KDE from ``scipy.stats.gaussian_kde``),
the discriminator D(x) and the optimal discriminator D*(x) = p_data / (p_data + p_g). Plots
use matplotlib (Agg backend); GIFs use Pillow.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from PIL import Image
from scipy.stats import gaussian_kde, norm

matplotlib.use("Agg")  # no screen: render to files only; must precede the pyplot import
import matplotlib.pyplot as plt  # noqa: E402

_DPI = 100
# Where p_data + p_g is below this fraction of its peak (less than a pixel in the picture),
# both densities count as zero: D* there is a ratio of two tails, noise rather than signal,
# so it is set to 0.5 (nothing to tell apart).
_ZERO_DENSITY = 1e-3
_HIST_BINS = 60
_REAL_COLOR = "black"
_FAKE_COLOR = "#00b050"  # green, as p_g in the 1D picture

Limits = tuple[float, float]


def _to_numpy(values: Any) -> np.ndarray:
    """Return ``values`` (numpy array, torch tensor or sequence) as a float numpy array."""
    if hasattr(values, "detach"):  # a torch tensor; avoid importing torch here
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=float)


def _as_curve(values: Any, name: str, length: int) -> np.ndarray:
    """Flatten a per-grid-point curve and check that it has one value per grid point."""
    curve = _to_numpy(values).ravel()
    if curve.shape[0] != length:
        raise ValueError(f"{name} has {curve.shape[0]} values but the grid has {length} points")
    return curve


def _as_points(values: Any, name: str) -> np.ndarray:
    """Return 2D points as an (N, 2) array, rejecting any other shape."""
    points = _to_numpy(values)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"{name} must have shape (N, 2), got shape {points.shape}")
    return points


def _density_on_grid(grid: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """Estimate the density of 1D ``samples`` on ``grid`` with a Gaussian KDE.

    Collapsed samples (all equal, or a KDE narrower than one grid cell, which the grid could
    not show) get a single Gaussian one grid cell wide instead: a visible spike rather
    than a ``LinAlgError`` from the singular covariance.
    """
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return np.zeros_like(grid)
    cell = float(np.ptp(grid)) / max(grid.size - 1, 1) or 1.0
    spread = float(samples.std())
    if samples.size >= 2 and spread > 0:
        try:
            kde = gaussian_kde(samples)
        except np.linalg.LinAlgError:
            kde = None
        if kde is not None and float(np.sqrt(kde.covariance[0, 0])) >= cell:
            return kde(grid)
    return norm.pdf(grid, loc=float(samples.mean()), scale=max(spread, cell))


def optimal_discriminator(p_data: np.ndarray, p_g: np.ndarray) -> np.ndarray:
    """D*(x) = p_data(x) / (p_data(x) + p_g(x)) on a grid (Goodfellow et al. 2014, Prop. 1),
    0.5 where both densities are about zero."""
    total = p_data + p_g
    d_star = np.full_like(total, 0.5)
    support = total > _ZERO_DENSITY * max(float(total.max(initial=0.0)), np.finfo(float).tiny)
    d_star[support] = p_data[support] / total[support]
    return d_star


def kde_optimal_discriminator(
    grid: Any, p_data: Any, fake_samples: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Estimate p_g from generated samples and the optimal discriminator it implies.

    For a fixed generator the best discriminator is D*(x) = p_data(x) / (p_data(x) + p_g(x))
    (Goodfellow et al. 2014, Prop. 1). p_g is a Gaussian KDE of ``fake_samples``; where both
    densities are about zero D* is set to 0.5.

    Args:
        grid: 1D array of G points x where the densities are evaluated.
        p_data: The data density at each grid point (G values).
        fake_samples: Generated samples, shape (N,) or (N, 1); non-finite values are ignored.

    Returns:
        ``(p_g, d_star)``: two arrays of G values, the estimated generator density and D*.

    Raises:
        ValueError: If ``p_data`` does not have one value per grid point.
    """
    grid = _to_numpy(grid).ravel()
    p_data = _as_curve(p_data, "p_data", grid.size)
    p_g = _density_on_grid(grid, _to_numpy(fake_samples).ravel())
    return p_g, optimal_discriminator(p_data, p_g)


@contextmanager
def _figure_saved_to(path: Path, figsize: tuple[float, float]) -> Iterator[tuple[Any, Any]]:
    """Yield a new (figure, axes); on leaving, write it to ``path`` and always close it."""
    fig, ax = plt.subplots(figsize=figsize)
    try:
        yield fig, ax
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=_DPI)
    finally:
        plt.close(fig)  # pyplot keeps every open figure alive otherwise


def plot_1d_frame(
    path: str | Path,
    grid: Any,
    p_data: Any,
    fake_samples: Any,
    d_prob: Any,
    step: int | None = None,
    xlim: Limits | None = None,
    ylim: Limits | None = None,
    p_g: Any = None,
) -> Path:
    """Draw one moment of 1D GAN training, as in Goodfellow et al. (2014), Fig. 1.

    Black dotted: p_data. Green: p_g (exact where given, else a KDE of the generated samples)
    over a light green histogram of them. Blue: D(x). Blue dashed: D*(x) = p_data / (p_data +
    p_g). Densities and probabilities share the y axis. Collapsed samples are drawn as a narrow
    spike.

    Args:
        path: Where to write the PNG; parent folders are created.
        grid: 1D array of G points x.
        p_data: The data density at each grid point (G values).
        fake_samples: Generated samples, shape (N,) or (N, 1).
        d_prob: The discriminator's D(x) at each grid point (G values).
        step: Training step, shown as the title "step N" when given.
        xlim: Fixed x range; defaults to the grid's range. Fix it (and ``ylim``) for GIF
            frames so the axes do not jump.
        ylim: Fixed y range; defaults to (0, 1.05), raised to fit p_data if it peaks higher.
        p_g: The generator's own density at each grid point (G values), for a generator that
            knows it; None estimates it from ``fake_samples`` with a KDE.

    Returns:
        The path written, as a ``pathlib.Path``.

    Raises:
        ValueError: If ``p_data``, ``d_prob`` or ``p_g`` does not have one value per grid
            point.
    """
    grid = _to_numpy(grid).ravel()
    p_data = _as_curve(p_data, "p_data", grid.size)
    d_prob = _as_curve(d_prob, "d_prob", grid.size)
    samples = _to_numpy(fake_samples).ravel()
    if p_g is None:
        p_g, d_star = kde_optimal_discriminator(grid, p_data, samples)
        p_g_label = r"$p_g$ (KDE)"
    else:
        p_g = _as_curve(p_g, "p_g", grid.size)
        d_star = optimal_discriminator(p_data, p_g)
        p_g_label = r"$p_g$"
    x_lo, x_hi = xlim if xlim is not None else (float(grid.min()), float(grid.max()))
    if ylim is None:
        ylim = (0.0, max(1.05, 1.1 * float(p_data.max(initial=0.0))))

    path = Path(path)
    with _figure_saved_to(path, figsize=(6.4, 4.6)) as (_, ax):
        # Fixed bins over the x range keep the histogram's look stable from frame to frame.
        shown = samples[np.isfinite(samples) & (samples >= x_lo) & (samples <= x_hi)]
        if shown.size:
            bins = np.linspace(x_lo, x_hi, _HIST_BINS + 1)
            ax.hist(
                shown,
                bins=bins,
                density=True,
                color=_FAKE_COLOR,
                alpha=0.2,
                label="generated samples",
            )
        ax.plot(grid, p_data, color="black", linestyle=":", linewidth=2, label=r"$p_\mathrm{data}$")
        ax.plot(grid, p_g, color=_FAKE_COLOR, linewidth=2, label=p_g_label)
        ax.plot(grid, d_prob, color="tab:blue", linewidth=2, label=r"$D(x)$")
        ax.plot(
            grid,
            d_star,
            color="tab:blue",
            linestyle="--",
            linewidth=1.5,
            alpha=0.7,
            label=r"$D^*(x) = p_\mathrm{data} / (p_\mathrm{data} + p_g)$",
        )
        ax.set_xlim(x_lo, x_hi)
        ax.set_ylim(*ylim)
        ax.set_xlabel("x")
        ax.set_ylabel("density / probability")
        if step is not None:
            ax.set_title(f"step {step}")
        # Below the axes: curves can be anywhere, and a fixed spot keeps GIF frames steady.
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=3, fontsize=8)
    return path


def _axis_limits(limits: Any, default: tuple[Limits, Limits]) -> tuple[Limits, Limits]:
    """Read ``limits`` as (lo, hi) for both axes or ((x_lo, x_hi), (y_lo, y_hi))."""
    if limits is None:
        return default
    if np.ndim(limits) == 1:
        lo, hi = (float(v) for v in limits)
        return (lo, hi), (lo, hi)
    (x_lo, x_hi), (y_lo, y_hi) = limits
    return (float(x_lo), float(x_hi)), (float(y_lo), float(y_hi))


def plot_2d_frame(
    path: str | Path,
    real: Any,
    fake: Any,
    heat_x: Any,
    heat_y: Any,
    d_prob: Any,
    step: int | None = None,
    limits: Limits | tuple[Limits, Limits] | None = None,
) -> Path:
    """Draw one moment of 2D GAN training: D(x) as a heatmap, real and generated points on it.

    Args:
        path: Where to write the PNG; parent folders are created.
        real: Real points, shape (N, 2), drawn as black dots.
        fake: Generated points, shape (M, 2), drawn as green dots.
        heat_x: The mesh's x coordinates (length W, increasing).
        heat_y: The mesh's y coordinates (length H, increasing).
        d_prob: D(x) on the mesh, shape (H, W): row i is y = heat_y[i]. Coloured from 0 to 1.
        step: Training step, shown as the title "step N" when given.
        limits: Axis range, either (lo, hi) for both axes or ((x_lo, x_hi), (y_lo, y_hi));
            defaults to the mesh's extent.

    Returns:
        The path written, as a ``pathlib.Path``.

    Raises:
        ValueError: If the points are not (N, 2) or ``d_prob`` does not match the mesh.
    """
    real = _as_points(real, "real")
    fake = _as_points(fake, "fake")
    heat_x = _to_numpy(heat_x).ravel()
    heat_y = _to_numpy(heat_y).ravel()
    d_prob = _to_numpy(d_prob)
    if d_prob.shape != (heat_y.size, heat_x.size):
        raise ValueError(
            f"d_prob must have shape (len(heat_y), len(heat_x)) = {(heat_y.size, heat_x.size)}, "
            f"got shape {d_prob.shape}"
        )
    mesh_extent = (
        (float(heat_x.min()), float(heat_x.max())),
        (float(heat_y.min()), float(heat_y.max())),
    )
    x_range, y_range = _axis_limits(limits, mesh_extent)

    path = Path(path)
    with _figure_saved_to(path, figsize=(5.8, 5.2)) as (fig, ax):
        heat = ax.pcolormesh(
            heat_x, heat_y, d_prob, cmap="coolwarm", vmin=0.0, vmax=1.0, shading="nearest"
        )
        fig.colorbar(heat, ax=ax, label="D(x)")
        ax.scatter(
            real[:, 0], real[:, 1], s=6, color=_REAL_COLOR, alpha=0.6, linewidths=0, label="real"
        )
        ax.scatter(
            fake[:, 0],
            fake[:, 1],
            s=6,
            color=_FAKE_COLOR,
            alpha=0.7,
            linewidths=0,
            label="generated",
        )
        ax.set_xlim(*x_range)
        ax.set_ylim(*y_range)
        ax.set_aspect("equal")
        if step is not None:
            ax.set_title(f"step {step}")
        ax.legend(
            loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2, fontsize=8, markerscale=3
        )
    return path


def plot_samples(samples: Any, path: str | Path, title: str | None = None) -> Path:
    """Draw toy samples: a histogram with a KDE line for 1D, a scatter plot for 2D.

    Args:
        samples: Samples of shape (N, 1) (or (N,)) or (N, 2); non-finite values are dropped.
        path: Where to write the PNG; parent folders are created.
        title: Figure title; defaults to "N samples".

    Returns:
        The path written, as a ``pathlib.Path``.

    Raises:
        ValueError: If ``samples`` is not (N, 1), (N,) or (N, 2).
    """
    values = _to_numpy(samples)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2 or values.shape[1] not in (1, 2):
        raise ValueError(f"samples must have shape (N, 1) or (N, 2), got shape {values.shape}")
    values = values[np.isfinite(values).all(axis=1)]
    title = title if title is not None else f"{values.shape[0]} samples"

    path = Path(path)
    one_d = values.shape[1] == 1
    with _figure_saved_to(path, figsize=(6.4, 4.0) if one_d else (5.0, 5.0)) as (_, ax):
        if one_d:
            xs = values[:, 0]
            lo, hi = (float(xs.min()), float(xs.max())) if xs.size else (0.0, 1.0)
            margin = 0.1 * (hi - lo) or 0.5
            grid = np.linspace(lo - margin, hi + margin, 400)
            ax.hist(
                xs, bins=_HIST_BINS, density=True, color=_FAKE_COLOR, alpha=0.3, label="histogram"
            )
            ax.plot(grid, _density_on_grid(grid, xs), color=_FAKE_COLOR, linewidth=2, label="KDE")
            ax.set_xlabel("x")
            ax.set_ylabel("density")
            ax.legend(loc="upper right", fontsize=8)
        else:
            ax.scatter(values[:, 0], values[:, 1], s=6, color=_FAKE_COLOR, alpha=0.5, linewidths=0)
            ax.set_aspect("equal", adjustable="datalim")
            ax.set_xlabel("$x_1$")
            ax.set_ylabel("$x_2$")
        ax.set_title(title)
    return path


def save_gif(
    frame_paths: Sequence[str | Path],
    path: str | Path,
    duration_ms: int = 120,
    final_hold_ms: int = 1200,
) -> Path:
    """Assemble PNG frames into an animated GIF that loops forever.

    Frames whose size differs from the first frame's are resized to it. Pillow merges
    consecutive identical frames into one (adding up their durations).

    Args:
        frame_paths: The frames in order (paths to images Pillow can read).
        path: Where to write the GIF; parent folders are created.
        duration_ms: How long each frame is shown, in milliseconds.
        final_hold_ms: How long the last frame is shown, so the end result can be read.

    Returns:
        The path written, as a ``pathlib.Path``.

    Raises:
        ValueError: If ``frame_paths`` is empty.
    """
    frame_paths = list(frame_paths)
    if not frame_paths:
        raise ValueError("save_gif needs at least one frame, got an empty list")
    frames: list[Image.Image] = []
    for frame_path in frame_paths:
        with Image.open(frame_path) as image:
            frame = image.convert("RGB")
        if frames and frame.size != frames[0].size:
            frame = frame.resize(frames[0].size, Image.Resampling.LANCZOS)
        # GIF frames are paletted anyway; converting now also keeps memory at 1 byte/pixel.
        frames.append(frame.convert("P", palette=Image.Palette.ADAPTIVE))
    durations = [duration_ms] * (len(frames) - 1) + [final_hold_ms]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(
        path, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0
    )
    return path
