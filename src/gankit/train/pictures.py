"""The run folder's pictures: sample grids at fixed noise, and the 1D/2D training pictures.

Each snapshot writes `samples/step_XXXXXXXX.png`; `finish` writes the final picture at the run
folder's top level and, for toy data, an animated GIF of the snapshots over training.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from gankit.eval.divergences import known_density
from gankit.nets import eval_mode
from gankit.objectives import Objective
from gankit.viz.grid import save_image_grid
from gankit.viz.toy import plot_1d_frame, plot_2d_frame, save_gif

GRID_POINTS_1D = 400
GRID_POINTS_2D = 120


class RunPictures:
    """Draws what the objective's players do, at fixed noise, into a run folder."""

    def __init__(self, run_dir: Path, data, objective: Objective, fixed_latent: torch.Tensor):
        self.run_dir = Path(run_dir)
        self.data = data
        self.objective = objective
        self.fixed_latent = fixed_latent
        self.frames_dir = self.run_dir / "samples"
        if data.kind == "points":
            distribution = data.distribution
            means = distribution.means.numpy()
            low, high = means.min(axis=0), means.max(axis=0)
            pad = np.maximum(0.2 * (high - low), 6 * distribution.std)
            self.limits = (float((low - pad).min()), float((high + pad).max()))
            self.real_points = distribution.sample(len(fixed_latent),
                                                   torch.Generator().manual_seed(0)).numpy()

    @property
    def final_name(self) -> str:
        if self.data.kind == "images":
            return "samples"
        return "density" if self.data.shape[0] == 1 else "scatter"

    @torch.no_grad()
    def snapshot(self, step: int) -> Path:
        """Write the picture for `step` into samples/ and return its path."""
        path = self.frames_dir / f"step_{step:08d}.png"
        fake = self.objective.sample(self.fixed_latent).float().cpu()
        if self.data.kind == "images":
            return save_image_grid(fake, path)
        if self.data.shape[0] == 1:
            return self._frame_1d(path, fake.numpy(), step)
        return self._frame_2d(path, fake.numpy(), step)

    def finish(self, step: int) -> dict[str, Path]:
        """Copy the last snapshot to the top level; for toy data also write the GIF."""
        frames = sorted(self.frames_dir.glob("step_*.png"))
        figures = {}
        final = self.run_dir / f"{self.final_name}.png"
        shutil.copyfile(self.frames_dir / f"step_{step:08d}.png", final)
        figures[self.final_name] = final
        if self.data.kind == "points":
            figures["animation"] = save_gif(frames, self.run_dir / f"{self.final_name}.gif")
        else:  # real images at the same size, to compare by eye
            figures["real"] = save_image_grid(self.data.first(len(self.fixed_latent)),
                                              self.run_dir / "real.png")
        return figures

    @torch.no_grad()
    def _discriminator_probability(self, points: np.ndarray) -> np.ndarray:
        """D(x) at each point, with D in eval mode: the curve shows the function D computes,
        not one draw of its dropout masks (which made a D with dropout look jagged)."""
        points = torch.as_tensor(points, dtype=torch.float32, device=self.objective.device)
        with eval_mode(self.objective.discriminator) as discriminator:
            # A packed D judges packs, not points: its verdict on packs of one repeated point.
            logits = getattr(discriminator, "pointwise", discriminator)(points)
        return torch.sigmoid(logits).float().cpu().numpy()

    def _frame_1d(self, path: Path, fake: np.ndarray, step: int) -> Path:
        grid = np.linspace(*self.limits, GRID_POINTS_1D)
        p_data = self.data.distribution.density(torch.from_numpy(grid)[:, None]).numpy()
        d_prob = self._discriminator_probability(grid[:, None].astype(np.float32))
        # A generator that knows its density (model.arch=gaussian) is drawn exactly, not by KDE.
        density = known_density(self.objective.sampler)
        p_g = None if density is None else density(torch.from_numpy(grid)[:, None]).numpy()
        return plot_1d_frame(path, grid, p_data, fake[:, 0], d_prob, step=step,
                             xlim=self.limits, ylim=(0.0, 1.05), p_g=p_g)

    def _frame_2d(self, path: Path, fake: np.ndarray, step: int) -> Path:
        axis = np.linspace(*self.limits, GRID_POINTS_2D)
        mesh_x, mesh_y = np.meshgrid(axis, axis)
        points = np.stack([mesh_x.ravel(), mesh_y.ravel()], axis=1).astype(np.float32)
        d_prob = self._discriminator_probability(points).reshape(len(axis), len(axis))
        return plot_2d_frame(path, self.real_points, fake, axis, axis, d_prob, step=step,
                             limits=self.limits)
