"""MSE against an adversarial loss when the future is multimodal (the lecture's seed 003).

The task: given an MNIST digit, predict the same digit moved 6 pixels left or right, each with
probability 1/2 (`gankit.data.shifted`). Nothing in the input says which, so the right answer
is a distribution with two sharp modes.

Three models, one network (`gankit.nets.paired.PairedGenerator`, an encoder-decoder fed the
digit and a noise vector), all trained by gankit's training loop:

- regression: the network fed zero noise and trained with MSE. MSE is minimised by the
  conditional mean, here the average of the two shifted digits: a ghosted double image that is
  near neither answer;
- conditional GAN: the network fed N(0, I) noise and trained against a pair discriminator that
  sees (input, output) stacked as channels (pix2pix's conditional D), with gankit's standard D
  loss and non-saturating G loss. A sample that D cannot tell from a real target is one of the
  two shifted digits, sharp. But like pix2pix's, this G learns to ignore its noise: each digit
  always goes the same way;
- the same conditional GAN plus MSGAN's mode-seeking term (Mao et al. 2019), which pays G for
  outputs that differ when the noise does, so one digit's noise draws reach both futures.

Each is an ordinary run config (`model_config`: `model.arch=paired`, `model.objective=paired-mse`
or `paired-gan`, `data.name=shifted-mnist`), so `gankit train RUN/config.yaml` retrains one.

`gankit.eval.multimodal` measures, on held-out MNIST test digits, how far each output is from
the nearer of its two possible targets, whether it is "near" one (closer than a quarter of the
distance between the targets: the average sits at one half), and how outputs split between
left and right.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from gankit.config import ModelConfig, RunConfig, load_config
from gankit.data import resolve_data_root
from gankit.data.images import load_idx_dataset
from gankit.data.shifted import SHIFT, ShiftedDigits
from gankit.eval.multimodal import (
    BLUR_SIGMA,
    CENTROID_TOLERANCE,
    DRAWS,
    NEAR_FRACTION,
    draw_outputs,
    model_summary,
    multimodal_summary,
)
from gankit.objectives.paired import PairedObjective
from gankit.train.loop import Trainer
from gankit.train.report import read_metrics

DESCRIPTION = ("MSE against a conditional GAN on a two-mode future (a digit moved 6 px left or "
               "right): MSE predicts the blurry average, the GAN one sharp mode, and with mode "
               "seeking both")

SEED = 0
NOISE_DIM = 8
G_WIDTH = 16  # channels of G's first conv: small enough for a CPU
D_WIDTH = 32  # D needs the capacity to check that the output is the input, moved
D_HIDDEN = 128
BATCH = 64
LEARNING_RATE = 2e-4
# Regression learns fast: by 1,000 steps its output is the ghosted average (the loss still
# creeps down towards the conditional mean's, which report.md prints beside it).
MSE_STEPS = 1000
# The GAN with mode seeking still sharpens after 3,000 steps: 80.9% of outputs near a mode at
# 3,000, 85.9% at 6,000 (weight 0.1, one run each).
GAN_STEPS = 6000
# pix2pix's L1 term; 0 keeps the game purely adversarial.
RECONSTRUCTION_WEIGHT = 0.0
# At 3,000 steps, weights 0.1, 0.3 and 1 put 80.9%, 78.6% and 73.3% of outputs near a mode,
# and 91.7%, 92.9% and 87.1% of digits reached both modes (one run each).
MODE_SEEKING_WEIGHT = 0.1
SEEKING = "GAN + mode seeking"  # the name of the second GAN's row
N_EVAL = 1000  # held-out test digits
FIGURE_DRAWS = 4  # figure rows per GAN


# ----------------------------------------------------------------------------- the models


def model_config(objective: str, name: str, steps: int, seed: int = SEED,
                 reconstruction_weight: float = 0.0, mode_seeking_weight: float = 0.0
                 ) -> RunConfig:
    """The run config of one of the study's models: the whole run, players included.

    All three share the network (`model.arch=paired`) and the loop's settings and differ only
    in the game, so they start from the same G; `gankit train RUN/config.yaml` trains one again.

    Args:
        objective: "paired-mse" (the regressor) or "paired-gan".
        name: the run's name.
        steps: generator steps.
        seed: initial weights, batches and noise.
        reconstruction_weight, mode_seeking_weight: the GAN's extra G loss terms.
    """
    game = ("MSE regression, G fed zero noise" if objective == "paired-mse" else
            "a conditional GAN whose D judges (input, output) pairs"
            + (f", plus mode seeking x {mode_seeking_weight:g}" if mode_seeking_weight else "")
            + (f", plus L1 x {reconstruction_weight:g}" if reconstruction_weight else ""))
    # The regressor has no D, and the paired games take none of the DCGAN preset's GAN-only
    # speed levers: those settings go back to their defaults.
    regressor = objective == "paired-mse"
    return load_config("mnist-dcgan", {
        "name": name, "seed": seed,
        "description": f"An MNIST digit to the same digit moved {SHIFT} px left or right: {game}",
        "data.name": "shifted-mnist",
        "model.objective": objective, "model.arch": "paired", "model.latent_dim": NOISE_DIM,
        "model.g_width": G_WIDTH, "model.width": ModelConfig().width if regressor else D_WIDTH,
        "model.d_fc_width": ModelConfig().d_fc_width if regressor else D_HIDDEN,
        "model.g_batchnorm": True,
        "loss.reconstruction_weight": reconstruction_weight,
        "loss.mode_seeking_weight": mode_seeking_weight,
        "train.steps": steps, "train.batch_size": BATCH, "train.optimizer": "adam",
        "train.g_lr": LEARNING_RATE, "train.d_lr": LEARNING_RATE, "train.betas": [0.5, 0.999],
        "train.ema": 0.0, "train.threads": 1, "train.share_fake": False,
        "train.joint_d_batch": False,
        "log.every": 50, "log.sample_every": max(steps // 5, 1), "log.checkpoint_every": steps,
        "log.keep_checkpoints": 1, "log.n_samples": 32, "log.tensorboard": False})


def train(config: RunConfig, task: ShiftedDigits, run_dir: Path, progress: bool = False
          ) -> tuple[PairedObjective, float]:
    """Train one model with gankit's loop into `run_dir` (emptied first: it belongs to this
    study); returns the trained objective and the wall time in seconds."""
    run_dir = Path(run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)  # metrics.jsonl appends: start clean
    started = time.perf_counter()
    trainer = Trainer(config, run_dir, task, progress=progress)
    trainer.fit()
    return trainer.objective, time.perf_counter() - started


# ----------------------------------------------------------------------------- measuring


def figure_inputs(task: ShiftedDigits, n: int = 10) -> torch.Tensor:
    """One digit of each class 0..n-1 (the first in the set), in [-1, 1]."""
    labels = torch.as_tensor(task.digits.labels)
    index = [int(torch.nonzero(labels == digit)[0]) for digit in range(n)
             if (labels == digit).any()]
    return task.pairs_at(torch.tensor(index), torch.ones(len(index), dtype=torch.int64))[0]


def measure(test: ShiftedDigits, mse, gans: dict, n_inputs: int = N_EVAL, draws: int = DRAWS,
            seed: int = SEED) -> dict[str, dict[str, float]]:
    """The table: each model's outputs on the first n test digits, and two references.

    Rows: "real target" (each input's target with a fair coin for the direction: what a
    perfect sampler would give), "average of targets" (the exact conditional mean, MSE's
    optimum), "MSE", and one row per GAN in `gans` ({name: objective}; `draws` outputs per
    input). Each row is `multimodal_summary`, plus "both_modes": the fraction of inputs whose
    outputs reach both modes (GANs only).
    """
    inputs, targets, _ = test.first_pairs(n_inputs)
    left, right = test.both_targets(inputs)
    rows = {"real target": multimodal_summary(targets, left, right, inputs),
            "average of targets": multimodal_summary((left + right) / 2, left, right, inputs),
            "MSE": multimodal_summary(mse.predict(inputs).float().cpu(), left, right, inputs)}
    for row in rows.values():
        row["both_modes"] = float("nan")  # one output per input
    for name, gan in gans.items():
        rows[name] = model_summary(gan, test, n_inputs, draws, seed)
    return rows


# ----------------------------------------------------------------------------- outputs


def plot_comparison(path: Path, inputs: torch.Tensor, left: torch.Tensor, right: torch.Tensor,
                    mse_out: torch.Tensor, gan_out: dict[str, torch.Tensor]) -> Path:
    """Rows: input, the two targets, the MSE output, then each GAN's rows, one per noise draw; a
    digit a column.

    Args:
        path: the PNG to write.
        inputs, left, right, mse_out: (N, 1, H, W) in [-1, 1].
        gan_out: {GAN name: (draws, N, 1, H, W) in [-1, 1]}.

    Returns:
        `path`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [("input", inputs), (f"target: {SHIFT} px left", left),
            (f"target: {SHIFT} px right", right), ("MSE", mse_out)]
    rows += [(f"{name}, noise {k + 1}", images) for name, outputs in gan_out.items()
             for k, images in enumerate(outputs)]
    pad = 2
    side = inputs.shape[-1] + pad
    canvas = np.ones((len(rows) * side + pad, inputs.shape[0] * side + pad))
    for r, (_, images) in enumerate(rows):
        for c, image in enumerate(images):
            canvas[pad + r * side: (r + 1) * side, pad + c * side: (c + 1) * side] = \
                ((image[0].clamp(-1, 1) + 1) / 2).numpy()
    figure, axes = plt.subplots(figsize=(1.0 + 0.6 * inputs.shape[0], 0.6 * len(rows) + 0.3))
    axes.imshow(canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    axes.set_yticks([pad + r * side + side / 2 - 1 for r in range(len(rows))],
                    [name for name, _ in rows], fontsize=8)
    axes.set_xticks([])
    for spine in axes.spines.values():
        spine.set_visible(False)
    axes.tick_params(length=0)
    figure.tight_layout()
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)
    return path


def write_outputs(folder: Path, rows: dict, setup: dict) -> None:
    """report.md (the table and how it was measured) and results.json into `folder`."""
    # NaN (no value: one output per input, or all ties) is written as null, so the file is JSON.
    plain = {name: {key: (None if value != value else value) for key, value in row.items()}
             for name, row in rows.items()}
    (folder / "results.json").write_text(json.dumps({"setup": setup, "rows": plain},
                                                    indent=2) + "\n")

    def percent(value: float) -> str:
        return "–" if value != value else f"{100 * value:.1f}%"

    lines = [
        "# MSE against an adversarial loss on a two-mode future", "",
        f"Input: an MNIST digit. Target: the same digit moved {SHIFT} px left or right with "
        f"probability 1/2 each (background fills the uncovered columns). Measured on the first "
        f"{setup['n_eval']} MNIST test digits; each GAN gives {setup['draws']} outputs per digit "
        f"(one per noise draw).", "",
        "| outputs | near a mode | near left | near right | nearer the left | RMSE ratio | "
        "near a mode, per pixel | RMSE ratio, per pixel | centroid at a mode | mean abs shift | "
        "mean abs pixel | digits reaching both modes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        lines.append(
            f"| {name} | {percent(row['near_mode'])} | {percent(row['near_left'])} | "
            f"{percent(row['near_right'])} | {percent(row['left_share'])} | "
            f"{row['nearer_ratio']:.3f} | {percent(row['pixel_near_mode'])} | "
            f"{row['pixel_nearer_ratio']:.3f} | {percent(row['centroid_at_mode'])} | "
            f"{row['abs_shift_px']:.1f} px | {row['saturation']:.3f} | "
            f"{percent(row['both_modes'])} |")
    lines += [
        "", "How to read it:", "",
        f"- Distances are RMSE in [-1, 1] units after a Gaussian blur of {BLUR_SIGMA:g} px, "
        "applied to outputs and targets alike; the *per pixel* columns use no blur. Per-pixel "
        "RMSE is the MSE loss itself and scores a sharp digit whose strokes are a pixel or two "
        "off as far as a grey ghost, the bias that makes regression blur; the blur forgives "
        "that and still separates two modes 12 px apart. The blur is linear, so the average of "
        "the targets stays exactly halfway either way.",
        f"- *RMSE ratio*: the RMSE to the nearer target over the RMSE between that digit's two "
        f"targets (on average {rows['real target']['between_rmse']:.3f} blurred): 0 on a mode, "
        f"0.5 at their average. An output is *near a mode* when the ratio is below "
        f"{NEAR_FRACTION:g}, halfway between a sharp answer and the blur.",
        "- *nearer the left*: the share of outputs closer to the left target than to the right "
        "one (near or not); a fair sampler gives 50%. The average of the targets is a tie, "
        "so it has none.",
        f"- *centroid at a mode*: the output's horizontal ink centroid moved, relative to the "
        f"input's, to within {CENTROID_TOLERANCE:g} px of where one of the targets' centroids "
        f"moved (±{SHIFT} px, less where the edge crops a digit); *mean abs shift*: the mean "
        f"size of that move. Both ignore the digit's shape.",
        "- *mean abs pixel*: 1 for pure black and white, lower for grey ghosts.",
        "- *digits reaching both modes*: for the GANs, the share of test digits with at least "
        f"one of its {setup['draws']} outputs near the left target and one near the right "
        "target: 0% for a generator that ignores its noise, and "
        f"{percent(1 - 2 ** (1 - setup['draws']))} expected of a fair sampler (1 - 2 x "
        f"2^-{setup['draws']}).",
        "- *real target* and *average of targets* are references, not models: the first is "
        "what a perfect sampler of the future gives, the second is the exact conditional mean, "
        "which MSE regression converges to.", "",
        "![inputs, targets, MSE output and GAN outputs](multimodal.png)", "",
        "## In numbers", "",
        f"MSE: {percent(rows['MSE']['near_mode'])} of outputs near a mode, RMSE ratio "
        f"{rows['MSE']['nearer_ratio']:.2f} (the average of the targets: 0.50), ink centroid "
        f"moved {rows['MSE']['abs_shift_px']:.1f} px on average. GAN: "
        f"{percent(rows['GAN']['near_mode'])} near a mode ({percent(rows['GAN']['near_left'])} "
        f"left, {percent(rows['GAN']['near_right'])} right), RMSE ratio "
        f"{rows['GAN']['nearer_ratio']:.2f}, centroid at a mode for "
        f"{percent(rows['GAN']['centroid_at_mode'])}, {percent(rows['GAN']['left_share'])} of "
        f"outputs nearer the left target; {percent(rows['GAN']['both_modes'])} of digits reach "
        f"both modes over {setup['draws']} noise draws. With mode seeking: "
        f"{percent(rows[SEEKING]['near_mode'])} near a mode, RMSE ratio "
        f"{rows[SEEKING]['nearer_ratio']:.2f}, and {percent(rows[SEEKING]['both_modes'])} of "
        "digits reach both modes.", "",
        "## Setup", "",
        f"- Network (all three models): `PairedGenerator`, an encoder-decoder (width "
        f"{setup['g_width']}, dense bottleneck, batch norm in the decoder) fed the digit and "
        f"a noise vector ({setup['noise_dim']} entries); the same initial weights for all three.",
        f"- MSE: noise fed as zeros, {setup['mse_steps']} steps of batch {setup['batch']}, Adam "
        f"{setup['lr']:g}; {setup['mse_seconds']:.0f} s; final training loss "
        f"{setup['mse_final_loss']:.3f} per pixel, where the exact conditional mean scores "
        f"{setup['conditional_mean_loss']:.3f} on the test digits. Run folder: "
        f"`{setup['mse_run']}`.",
        f"- GAN: noise N(0, I); D = `PairedDiscriminator` (input and output stacked as "
        f"channels; width {setup['d_width']}, a hidden dense layer of {setup['d_hidden']}), "
        f"standard D loss, non-saturating G loss"
        + (f", plus L1 to the target × {setup['reconstruction_weight']:g}"
           if setup["reconstruction_weight"] else ", no reconstruction term: purely adversarial")
        + f"; {setup['gan_steps']} steps of batch {setup['batch']}, Adam {setup['lr']:g} for both "
        f"players; {setup['gan_seconds']:.0f} s. Run folder: `{setup['gan_run']}`.",
        f"- GAN + mode seeking: the same GAN from the same initial weights, plus MSGAN's "
        f"mode-seeking term x {setup['mode_seeking_weight']:g} in G's loss: each G step feeds "
        "half its batch's inputs twice, with two noise draws, and adds 1 / (mean |output "
        "difference| / mean |noise difference| + 1e-5); "
        f"{setup['seeking_seconds']:.0f} s. Run folder: `{setup['seeking_run']}`.",
        f"- Reproduce with `gankit study multimodal` (seed {setup['seed']}), or retrain one "
        "model with `gankit train RUN/config.yaml`: each run folder's config describes its "
        "whole run.", ""]
    (folder / "report.md").write_text("\n".join(lines))


# ----------------------------------------------------------------------------- the study


def compare(folder: Path, task: ShiftedDigits, test: ShiftedDigits, mse_steps: int = MSE_STEPS,
            gan_steps: int = GAN_STEPS, n_eval: int = N_EVAL, draws: int = DRAWS,
            reconstruction_weight: float = RECONSTRUCTION_WEIGHT,
            mode_seeking_weight: float = MODE_SEEKING_WEIGHT, seed: int = SEED,
            progress: bool = False) -> dict:
    """Train the three models on `task`, measure them on `test`, write the figure and report.

    Args:
        folder: the study's output folder (its run folders go in `runs/` inside it).
        task: training pairs; test: held-out pairs.
        mse_steps: the regressor's training steps; gan_steps: each GAN's.
        n_eval: test digits measured; draws: GAN outputs per test digit.
        reconstruction_weight: the GANs' L1 weight (0: pure adversarial).
        mode_seeking_weight: the second GAN's mode-seeking weight.
        seed: initial weights, batches and noise.
        progress: show the loop's progress bars.

    Returns:
        {"setup": ..., "rows": ...}, as written to results.json.
    """
    folder = Path(folder)
    runs = folder / "runs"
    mse, mse_seconds = train(
        model_config("paired-mse", "multimodal-mse", mse_steps, seed), task, runs / "mse",
        progress)
    gan, gan_seconds = train(
        model_config("paired-gan", "multimodal-gan", gan_steps, seed, reconstruction_weight),
        task, runs / "gan", progress)
    seeking, seeking_seconds = train(
        model_config("paired-gan", "multimodal-gan-mode-seeking", gan_steps, seed,
                     reconstruction_weight, mode_seeking_weight),
        task, runs / "gan-mode-seeking", progress)
    gans = {"GAN": gan, SEEKING: seeking}
    rows = measure(test, mse, gans, min(n_eval, len(test)), draws, seed)
    inputs = figure_inputs(test)
    left, right = test.both_targets(inputs)
    plot_comparison(folder / "multimodal.png", inputs, left, right,
                    mse.predict(inputs).float().cpu(),
                    {name: draw_outputs(gan, inputs, FIGURE_DRAWS, seed + 1)
                     for name, gan in gans.items()})
    setup = {"seed": seed, "shift": SHIFT, "noise_dim": NOISE_DIM, "g_width": G_WIDTH,
             "d_width": D_WIDTH, "d_hidden": D_HIDDEN,
             "batch": BATCH, "lr": LEARNING_RATE, "mse_steps": mse_steps,
             "gan_steps": gan_steps, "reconstruction_weight": reconstruction_weight,
             "mode_seeking_weight": mode_seeking_weight,
             "n_eval": min(n_eval, len(test)), "draws": draws, "near_fraction": NEAR_FRACTION,
             "mse_seconds": round(mse_seconds, 1), "gan_seconds": round(gan_seconds, 1),
             "seeking_seconds": round(seeking_seconds, 1),
             "mse_run": str(runs / "mse"), "gan_run": str(runs / "gan"),
             "seeking_run": str(runs / "gan-mode-seeking"),
             "train_set": task.name, "test_set": test.name}
    # The regressor's last logged training loss beside the loss of the exact conditional mean
    # (the average of the two targets), E[(y - mean)^2] = E[((left - right) / 2)^2] per pixel.
    inputs = test.first_pairs(setup["n_eval"])[0]
    left, right = test.both_targets(inputs)
    setup["mse_final_loss"] = read_metrics(runs / "mse")[-1]["g_loss"]
    setup["conditional_mean_loss"] = float(((left - right) / 2).square().mean())
    write_outputs(folder, rows, setup)
    return {"setup": setup, "rows": rows}


def run(out: str | Path, data_root: str | Path | None = None, progress: bool = True) -> Path:
    """Train the regressor and the conditional GAN on MNIST, measure them, write the study.

    Args:
        out: the folder to write: multimodal.png, report.md, results.json and runs/.
        data_root: where MNIST lives (see `gankit.data.resolve_data_root`).
        progress: show the loop's progress bars.

    Returns:
        `out` as a Path.
    """
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    root = resolve_data_root(data_root)
    task = ShiftedDigits(load_idx_dataset("mnist", root, "train"), seed=SEED)
    test = ShiftedDigits(load_idx_dataset("mnist", root, "test"), seed=SEED)
    compare(folder, task, test, progress=progress)
    return folder
