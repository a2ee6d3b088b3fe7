"""Tests for gankit.viz.toy: the D* estimate, 1D/2D frames, sample plots and GIFs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.stats import norm

from gankit.viz.toy import (
    kde_optimal_discriminator,
    optimal_discriminator,
    plot_1d_frame,
    plot_2d_frame,
    plot_samples,
    save_gif,
)

GRID = np.linspace(0.0, 10.0, 201)
P_DATA = norm.pdf(GRID, loc=5.0, scale=1.0)


def _assert_png(path, min_side=100):
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert min(image.size) >= min_side
        image.load()  # reads every pixel: fails on a truncated file


def test_d_star_is_one_half_when_generator_matches_data():
    fake = np.random.default_rng(0).normal(5.0, 1.0, size=(4000, 1))
    p_g, d_star = kde_optimal_discriminator(GRID, P_DATA, fake)
    near_mode = np.abs(GRID - 5.0) <= 1.0
    assert np.all(np.abs(d_star[near_mode] - 0.5) < 0.05)
    assert np.all(np.abs(p_g[near_mode] - P_DATA[near_mode]) < 0.05)
    assert np.trapezoid(p_g, GRID) == pytest.approx(1.0, abs=0.02)


def test_d_star_favours_data_where_generator_is_absent():
    fake = np.random.default_rng(0).normal(2.0, 0.5, size=1000)
    _, d_star = kde_optimal_discriminator(GRID, P_DATA, fake)
    assert d_star[np.argmin(np.abs(GRID - 6.0))] > 0.95  # only data there
    assert d_star[np.argmin(np.abs(GRID - 2.0))] < 0.05  # only generator there
    assert np.all((d_star >= 0.0) & (d_star <= 1.0))


def test_d_star_is_one_half_where_both_densities_vanish():
    grid = np.linspace(-50.0, 50.0, 1001)
    p_data = norm.pdf(grid, loc=0.0, scale=1.0)
    _, d_star = kde_optimal_discriminator(grid, p_data, np.random.default_rng(0).normal(size=500))
    assert d_star[0] == 0.5 and d_star[-1] == 0.5


def test_collapsed_samples_give_a_finite_narrow_spike():
    p_g, d_star = kde_optimal_discriminator(GRID, P_DATA, np.full((100, 1), 3.0))
    assert np.all(np.isfinite(p_g)) and np.all(np.isfinite(d_star))
    assert GRID[np.argmax(p_g)] == pytest.approx(3.0)
    assert p_g.max() > 5.0  # much taller than N(5, 1) (0.4): a spike
    assert np.trapezoid(p_g, GRID) == pytest.approx(1.0, abs=0.05)


def test_exact_d_star_of_two_known_densities():
    # p_g = 2 p_data on the mode: D* = 1/3 there (the mixture study's GAN on one of two modes).
    d_star = optimal_discriminator(P_DATA, 2 * P_DATA)
    assert d_star[np.argmin(np.abs(GRID - 5.0))] == pytest.approx(1 / 3)
    d_star = optimal_discriminator(norm.pdf(GRID, 4.0), norm.pdf(GRID, 6.0))
    assert d_star[np.argmin(np.abs(GRID - 5.0))] == pytest.approx(0.5)  # equal densities
    # log p_data - log p_g = -1/2 + 9/2 = 4 at x = 3
    assert d_star[np.argmin(np.abs(GRID - 3.0))] == pytest.approx(1 / (1 + np.exp(-4.0)))


def test_p_data_of_wrong_length_is_rejected():
    with pytest.raises(ValueError, match="p_data"):
        kde_optimal_discriminator(GRID, P_DATA[:-1], np.zeros(10))


def test_plot_1d_frame_writes_png(tmp_path):
    rng = np.random.default_rng(1)
    d_prob = 1.0 / (1.0 + np.exp(GRID - 5.0))
    path = plot_1d_frame(
        tmp_path / "frames" / "f.png",
        GRID,
        P_DATA,
        torch.from_numpy(rng.normal(4.0, 1.0, size=(500, 1))),  # tensors are accepted too
        d_prob,
        step=100,
        xlim=(0.0, 10.0),
        ylim=(0.0, 1.05),
    )
    assert path == tmp_path / "frames" / "f.png"
    _assert_png(path)


@pytest.mark.parametrize(
    "fake",
    [np.full((64, 1), 5.0), np.array([[5.0]]), np.array([5.0, np.nan, np.inf]), np.empty((0, 1))],
    ids=["collapsed", "one-sample", "non-finite", "empty"],
)
def test_plot_1d_frame_survives_degenerate_samples(tmp_path, fake):
    _assert_png(plot_1d_frame(tmp_path / "f.png", GRID, P_DATA, fake, np.full(GRID.size, 0.5)))


def test_plot_1d_frame_takes_an_exact_p_g(tmp_path):
    _assert_png(plot_1d_frame(tmp_path / "f.png", GRID, P_DATA, np.zeros(5),
                              np.full(GRID.size, 0.5), p_g=2 * P_DATA))
    with pytest.raises(ValueError, match="p_g"):
        plot_1d_frame(tmp_path / "g.png", GRID, P_DATA, np.zeros(5), np.full(GRID.size, 0.5),
                      p_g=P_DATA[:-1])


def test_plot_1d_frame_rejects_d_prob_of_wrong_length(tmp_path):
    with pytest.raises(ValueError, match="d_prob"):
        plot_1d_frame(tmp_path / "f.png", GRID, P_DATA, np.zeros(5), np.zeros(3))


def _mesh():
    xs = np.linspace(-2.0, 2.0, 41)
    ys = np.linspace(-1.0, 1.0, 21)
    d_prob = 1.0 / (1.0 + np.exp(-xs[None, :] - ys[:, None]))  # shape (len(ys), len(xs))
    return xs, ys, d_prob


def test_plot_2d_frame_writes_png(tmp_path):
    rng = np.random.default_rng(2)
    xs, ys, d_prob = _mesh()
    path = plot_2d_frame(
        tmp_path / "f2.png",
        rng.normal(size=(200, 2)),
        rng.normal(size=(200, 2)),
        xs,
        ys,
        d_prob,
        step=7,
        limits=(-2.0, 2.0),
    )
    _assert_png(path)
    collapsed = plot_2d_frame(
        tmp_path / "c.png",
        rng.normal(size=(200, 2)),
        np.zeros((200, 2)),
        xs,
        ys,
        d_prob,
        limits=((-2.0, 2.0), (-1.0, 1.0)),
    )
    _assert_png(collapsed)


def test_plot_2d_frame_rejects_bad_shapes(tmp_path):
    xs, ys, d_prob = _mesh()
    with pytest.raises(ValueError, match=r"\(21, 41\)"):
        plot_2d_frame(tmp_path / "f.png", np.zeros((3, 2)), np.zeros((3, 2)), xs, ys, d_prob.T)
    with pytest.raises(ValueError, match=r"\(3, 3\)"):
        plot_2d_frame(tmp_path / "f.png", np.zeros((3, 3)), np.zeros((3, 2)), xs, ys, d_prob)


@pytest.mark.parametrize(
    "samples",
    [
        np.random.default_rng(3).normal(size=(300, 1)),
        np.random.default_rng(3).normal(size=300),
        np.random.default_rng(3).normal(size=(300, 2)),
        np.full((50, 1), 2.0),
    ],
    ids=["N x 1", "N", "N x 2", "collapsed"],
)
def test_plot_samples_writes_png(tmp_path, samples):
    _assert_png(plot_samples(samples, tmp_path / "s.png", title="samples"))


@pytest.mark.parametrize("shape", [(10, 3), (2, 5, 1)])
def test_plot_samples_rejects_other_shapes_naming_them(tmp_path, shape):
    with pytest.raises(ValueError, match=str(shape).replace("(", r"\(").replace(")", r"\)")):
        plot_samples(np.zeros(shape), tmp_path / "s.png")


def _frame(path, shade, size=(40, 30)):
    Image.new("RGB", size, (shade, 255 - shade, 0)).save(path)
    return path


def test_save_gif_has_every_frame_and_loops(tmp_path):
    frames = [_frame(tmp_path / f"{i}.png", 60 * i) for i in range(4)]
    frames.append(_frame(tmp_path / "big.png", 250, size=(80, 60)))  # resized to the first
    path = save_gif(frames, tmp_path / "out" / "anim.gif", duration_ms=50, final_hold_ms=900)
    with Image.open(path) as gif:
        assert gif.format == "GIF"
        assert gif.n_frames == 5
        assert gif.size == (40, 30)
        assert gif.info["loop"] == 0
        gif.seek(4)
        assert gif.info["duration"] == 900  # the last frame is held longer
        gif.seek(1)
        assert gif.info["duration"] == 50


def test_save_gif_rejects_empty_list(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        save_gif([], tmp_path / "a.gif")
