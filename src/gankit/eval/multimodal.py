"""Did a prediction pick one of two possible futures, or average them?

For a task with two equally likely targets per input (the digit shifted left or right, see
`gankit.data.shifted`), each output is compared with both targets by RMSE in [-1, 1] units.

Distances are taken after a Gaussian blur of BLUR_SIGMA = 1.5 px, applied alike to outputs and
targets. Per-pixel RMSE is the MSE loss itself: it scores a sharp digit drawn a pixel or two
off its target's strokes as far as, or farther than, a grey ghost, which is exactly the bias that
makes MSE regression blur. The blur forgives stroke errors of a pixel or two and still tells
apart two modes 12 px apart. Because the blur is linear, the average of the two targets stays
exactly halfway between them. `blur_sigma=0` gives plain per-pixel RMSE; the study reports both.

"Near a mode": the RMSE to the nearer target is below NEAR_FRACTION = 1/4 of the RMSE between
the two targets of that input. The threshold is set by the data, per input: on the segment
from one target (ratio 0) to the other (ratio 1), the ghosted average of the two, which is what
MSE regression converges to, sits at ratio exactly 1/2 from each. A quarter is halfway between
a mode and that average, so "near" means closer to a sharp answer than to the blur. An input
whose two targets are equal (a blank image) has no modes to tell apart and is never "near".

A threshold-free check goes with it: the horizontal shift of each output's ink centroid from
its input's (±6 px for either target, 0 for the ghost).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from gankit.errors import GankitError

NEAR_FRACTION = 0.25
DRAWS = 8  # outputs (noise draws) per input when a model is measured
BLUR_SIGMA = 1.5  # pixels
# Closer to one target than to the other by less than this share of their distance: a tie.
TIE_FRACTION = 1e-3
CENTROID_TOLERANCE = 1.5  # pixels; the two modes' centroids are ~12 px apart


def rmse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample root mean squared difference over all non-batch dims: (N, ...) -> (N,)."""
    return (a.float() - b.float()).square().flatten(1).mean(dim=1).sqrt()


def gaussian_blur(images: torch.Tensor, sigma: float = BLUR_SIGMA) -> torch.Tensor:
    """Blur (N, C, H, W) images in [-1, 1] with a Gaussian of `sigma` px (0: unchanged).

    The border is treated as background (-1), so a blurred blank image stays blank.

    Args:
        images: (N, C, H, W) float images in [-1, 1].
        sigma: the Gaussian's standard deviation in pixels; the kernel reaches 3 sigma.

    Returns:
        Float32 images of the same shape.
    """
    if sigma <= 0:
        return images.float()
    if images.dim() != 4:
        raise GankitError(f"gaussian_blur needs (N, C, H, W) images, got {tuple(images.shape)}")
    radius = max(1, math.ceil(3 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32, device=images.device)
    kernel = torch.exp(-taps.square() / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    # Blur the ink (background 0) with zero padding: the same as padding the image with -1.
    ink = images.float() + 1
    ink = F.conv2d(ink, kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1),
                   padding=(0, radius), groups=channels)
    ink = F.conv2d(ink, kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1),
                   padding=(radius, 0), groups=channels)
    return ink - 1


def ink_centroid_x(images: torch.Tensor) -> torch.Tensor:
    """The horizontal centre of mass of each image's ink ((x + 1) / 2), in pixels: (N,)."""
    ink = (images.float() + 1).clamp(min=0).flatten(1, -2).sum(dim=1)  # (N, W) column sums
    columns = torch.arange(ink.shape[1], dtype=torch.float32, device=ink.device)
    return (ink * columns).sum(dim=1) / ink.sum(dim=1).clamp_min(1e-6)


def mode_distances(outputs: torch.Tensor, left: torch.Tensor, right: torch.Tensor,
                   blur_sigma: float = BLUR_SIGMA) -> dict[str, torch.Tensor]:
    """RMSE of each output to its left and right target, and between the two targets.

    Args:
        outputs: (N, C, H, W) predictions in [-1, 1].
        left: (N, C, H, W) the left-shifted target of each output's input.
        right: (N, C, H, W) the right-shifted target.
        blur_sigma: Gaussian blur (px) applied to all three first; 0 for per-pixel RMSE.

    Returns:
        {"left", "right", "between"}: (N,) RMSEs.

    Raises:
        GankitError: the three batches differ in shape.
    """
    if not outputs.shape == left.shape == right.shape:
        raise GankitError(f"outputs {tuple(outputs.shape)} and targets {tuple(left.shape)}, "
                          f"{tuple(right.shape)} must have the same shape")
    outputs, left, right = (gaussian_blur(x, blur_sigma) for x in (outputs, left, right))
    return {"left": rmse(outputs, left), "right": rmse(outputs, right),
            "between": rmse(left, right)}


def classify_outputs(outputs: torch.Tensor, left: torch.Tensor, right: torch.Tensor,
                     near_fraction: float = NEAR_FRACTION, blur_sigma: float = BLUR_SIGMA
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Which target each output is nearer to, and whether it is near it.

    Args:
        outputs, left, right, blur_sigma: as in `mode_distances`.
        near_fraction: "near" when RMSE to the nearer target < near_fraction x RMSE(left, right).

    Returns:
        (side, near, ratio): int64 (N,) -1 where the left target is nearer, +1 where the right
        is, 0 for a tie (the two RMSEs within TIE_FRACTION x the RMSE between the targets, e.g.
        the average of the targets); bool (N,) near a mode; float (N,) the nearer RMSE divided
        by the RMSE between the targets (inf where the targets are equal).
    """
    distances = mode_distances(outputs, left, right, blur_sigma)
    nearer = torch.minimum(distances["left"], distances["right"])
    between = distances["between"]
    difference = distances["right"] - distances["left"]
    side = torch.where(difference.abs() <= TIE_FRACTION * between, 0,
                       torch.where(difference < 0, 1, -1))
    ratio = torch.where(between > 0, nearer / between.clamp_min(1e-12),
                        torch.full_like(nearer, float("inf")))
    return side, ratio < near_fraction, ratio


def multimodal_summary(outputs: torch.Tensor, left: torch.Tensor, right: torch.Tensor,
                       inputs: torch.Tensor | None = None, near_fraction: float = NEAR_FRACTION,
                       blur_sigma: float = BLUR_SIGMA) -> dict[str, float]:
    """How a set of predictions spreads over two modes, as a flat dict of floats.

    Args:
        outputs: (N, C, H, W) predictions in [-1, 1]; several outputs may share an input.
        left, right: the two targets of each output's input, same shape.
        inputs: the input of each output, same shape, for the centroid shift; optional.
        near_fraction, blur_sigma: see `classify_outputs`.

    Returns:
        With distances after the blur: "near_mode": fraction of outputs near a mode;
        "near_left" / "near_right": fractions of all outputs near each mode; "left_share":
        fraction of the outputs nearer the left target than the right one (near or not), among
        those that are not ties (NaN if all are);
        "nearer_rmse": mean RMSE to the nearer target; "nearer_ratio": mean of that RMSE over
        the targets' RMSE (0 on a mode, 0.5 at the average); "between_rmse": mean RMSE between
        the two targets. The same without blur: "pixel_near_mode", "pixel_nearer_ratio".
        "saturation": mean |pixel|, 1 for pure black and white, lower for grey ghosts. With
        `inputs`: "abs_shift_px", the mean |horizontal ink-centroid shift| from the input (the
        task's shift for either target, 0 for the average), and "centroid_at_mode", the share
        of outputs whose centroid moved to within CENTROID_TOLERANCE px of where one of the two
        targets' centroids moved.
    """
    if len(outputs) == 0:
        raise GankitError("multimodal_summary needs at least one output")
    summary = {"n": float(len(outputs))}
    for prefix, sigma in (("", blur_sigma), ("pixel_", 0.0)):
        side, near, ratio = classify_outputs(outputs, left, right, near_fraction, sigma)
        finite = torch.isfinite(ratio)
        summary[f"{prefix}near_mode"] = float(near.float().mean())
        summary[f"{prefix}nearer_ratio"] = (float(ratio[finite].mean()) if finite.any()
                                            else float("inf"))
        if prefix == "":
            distances = mode_distances(outputs, left, right, sigma)
            summary.update({
                "near_left": float((near & (side < 0)).float().mean()),
                "near_right": float((near & (side > 0)).float().mean()),
                "left_share": (float((side < 0).sum() / (side != 0).sum())
                               if (side != 0).any() else float("nan")),
                "nearer_rmse": float(torch.minimum(distances["left"],
                                                   distances["right"]).mean()),
                "between_rmse": float(distances["between"].mean())})
    summary["saturation"] = float(outputs.float().abs().mean())
    if inputs is not None:
        start = ink_centroid_x(inputs)
        shift = ink_centroid_x(outputs) - start
        # The targets' own centroid moves: the task's shift, less where the edge crops ink.
        off_mode = torch.minimum((shift - (ink_centroid_x(left) - start)).abs(),
                                 (shift - (ink_centroid_x(right) - start)).abs())
        summary["abs_shift_px"] = float(shift.abs().mean())
        summary["centroid_at_mode"] = float((off_mode < CENTROID_TOLERANCE).float().mean())
    return summary


def both_modes_fraction(side: torch.Tensor, near: torch.Tensor) -> float:
    """Fraction of inputs for which the outputs (several noise draws each) reach both modes.

    Args:
        side: (K, N) sides from `classify_outputs` of K outputs for each of N inputs.
        near: (K, N) near flags, same shape.

    Returns:
        The fraction of the N inputs with at least one output near the left target and at
        least one near the right one: 0 for a generator that ignores its noise.
    """
    if side.dim() != 2 or side.shape != near.shape:
        raise GankitError(f"side and near must be (K, N) of one shape, got {tuple(side.shape)} "
                          f"and {tuple(near.shape)}")
    reaches_left = (near & (side < 0)).any(dim=0)
    reaches_right = (near & (side > 0)).any(dim=0)
    return float((reaches_left & reaches_right).float().mean())


@torch.no_grad()
def draw_outputs(model, inputs: torch.Tensor, draws: int, seed: int) -> torch.Tensor:
    """`draws` outputs of a paired model (one noise draw each) per input: (draws, N, C, H, W)
    on the CPU, the noise seeded by `seed`."""
    generator = torch.Generator().manual_seed(seed)
    return torch.stack([model.predict(inputs, model.noise(len(inputs), generator)).float().cpu()
                        for _ in range(draws)])


@torch.no_grad()
def model_summary(model, task, n_inputs: int, draws: int = DRAWS, seed: int = 0
                  ) -> dict[str, float]:
    """`multimodal_summary` of a paired model on a task's first inputs, plus "both_modes".

    Args:
        model: a paired objective (`gankit.objectives.paired`): `predict(inputs, noise)` and
            `noise(n, generator)`.
        task: the held-out pairs, with `first_pairs(n)` and `both_targets(inputs)` (e.g.
            `gankit.data.shifted.ShiftedDigits` of the test split).
        n_inputs: how many of the task's first inputs.
        draws: outputs per input, one noise draw each (a regressor's are all alike).
        seed: seeds the noise.

    Returns:
        `multimodal_summary` of all n_inputs x draws outputs, with "both_modes" from
        `both_modes_fraction`.
    """
    inputs = task.first_pairs(n_inputs)[0]
    left, right = task.both_targets(inputs)
    outputs = draw_outputs(model, inputs, draws, seed).flatten(0, 1)
    repeat = (draws, 1, 1, 1)  # output k * N + i answers input i
    many_left, many_right, many_inputs = (x.repeat(repeat) for x in (left, right, inputs))
    summary = multimodal_summary(outputs, many_left, many_right, many_inputs)
    side, near, _ = classify_outputs(outputs, many_left, many_right)
    summary["both_modes"] = both_modes_fraction(side.view(draws, -1), near.view(draws, -1))
    return summary
