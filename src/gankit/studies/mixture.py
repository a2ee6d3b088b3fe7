"""One Gaussian fitted to a mixture of two: maximum likelihood, reverse KL and a GAN.

The seeds' picture of mode dropping (Goodfellow 2016, Fig. 5): a model that cannot represent
both modes of p must choose. Maximum likelihood minimises KL(p ‖ q), which is huge where q
misses mass of p, so q spreads over both modes. The reverse KL(q ‖ p) is huge where q puts
mass that p lacks, so q hides inside one mode. A GAN's generator, against a discriminator near
D*, follows KL(q ‖ p) - 2 JSD(p ‖ q) with the non-saturating loss (Arjovsky & Bottou 2017,
Thm. 2.5), which is mode-seeking too; the study measures whether a trained GAN does so.

The data is p = 0.5 N(-4, 1) + 0.5 N(4, 1): two modes eight standard deviations apart, so a
single Gaussian between them lands where p has almost no mass. The model is q = N(mu, sigma^2).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from scipy.integrate import trapezoid
from torch import distributions as D

from gankit.config import ModelConfig, RunConfig, load_config
from gankit.data import build_dataset
from gankit.data.toy import MIXTURE_MEANS, MIXTURE_STD
from gankit.errors import GankitError
from gankit.eval.divergences import js_divergence
from gankit.train.loop import Trainer
from gankit.train.report import read_metrics

DESCRIPTION = ("One Gaussian fitted to a two-mode mixture: maximum likelihood covers both modes, "
               "reverse KL and a GAN pick one")

# p = 0.5 N(-4, 1^2) + 0.5 N(4, 1^2): gankit's mixture-1d dataset, which the GAN trains on.
WEIGHTS = (0.5, 0.5)
MEANS, STD = MIXTURE_MEANS, MIXTURE_STD
# Where the numerical fits and the GAN start: off-centre, so symmetry does not decide for them
# (from mu = 0 exactly, the reverse-KL gradient in mu is 0 by symmetry).
INIT_MU, INIT_SIGMA = 1.0, 1.0
GAN_STEPS = 1500
# The GAN is trained twice: with D learning faster than G, so that G follows a discriminator
# near D* (the theory's assumption, and toy-gaussian's choice), and with G outpacing D.
GAN_SETTINGS = {"GAN": {"folder": "gan", "g_lr": 0.006, "d_lr": 0.01},
                "GAN, G outpaces D": {"folder": "gan-g-outpaces-d", "g_lr": 0.01, "d_lr": 0.002}}
GAN_D_HIDDEN = [64, 64]
GAN_BATCH = 256
GRID_POINTS = 20001  # for measuring a fit
# For the fits, which evaluate the integral hundreds of times. The integrands are smooth and
# decay like Gaussians, where the trapezoid rule converges very fast: these agree with the
# 20001-point grid to ~1e-15 nats.
FIT_POINTS = 2001
GRID_STDS = 12.0  # the integration grid reaches this many stds beyond every mode and beyond q


# ----------------------------------------------------------------------------- the densities


def gaussian_mixture(weights=WEIGHTS, means=MEANS, stds=(STD, STD)) -> D.MixtureSameFamily:
    """A 1D mixture of Gaussians in float64 (batch and event shape ()).

    Args:
        weights: mixing weights, positive, summing to 1.
        means: component means.
        stds: component standard deviations, positive.

    Returns:
        The mixture as a torch distribution.
    """
    weights, means, stds = (torch.as_tensor(v, dtype=torch.float64).flatten()
                            for v in (weights, means, stds))
    if not len(weights) == len(means) == len(stds) or len(weights) == 0:
        raise GankitError(f"a mixture needs as many weights, means and stds; got "
                          f"{len(weights)}, {len(means)} and {len(stds)}")
    if (weights <= 0).any() or abs(float(weights.sum()) - 1.0) > 1e-9:
        raise GankitError(f"mixture weights {weights.tolist()} must be positive and sum to 1")
    if (stds <= 0).any():
        raise GankitError(f"mixture stds {stds.tolist()} must be positive")
    return D.MixtureSameFamily(D.Categorical(probs=weights), D.Normal(means, stds))


def gaussian(mu: float, sigma: float) -> D.Normal:
    """The model q = N(mu, sigma^2) in float64."""
    return D.Normal(torch.tensor(float(mu), dtype=torch.float64),
                    torch.tensor(float(sigma), dtype=torch.float64))


def _components(p: D.Distribution) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(weights, means, stds) of a Gaussian mixture, or of one Gaussian as a 1-mixture."""
    if isinstance(p, D.Normal):
        return torch.ones(1, dtype=torch.float64), p.loc.reshape(1), p.scale.reshape(1)
    components = p.component_distribution
    return p.mixture_distribution.probs, components.loc, components.scale


# ----------------------------------------------------------------------------- the three fits


def maximum_likelihood_fit(p: D.Distribution) -> tuple[float, float]:
    """The Gaussian that maximises the expected likelihood under p, i.e. minimises KL(p ‖ q).

    For a Gaussian q this is moment matching: mu = sum_i w_i m_i and
    sigma^2 = sum_i w_i (s_i^2 + m_i^2) - mu^2.

    Args:
        p: a Gaussian mixture (or one Gaussian).

    Returns:
        (mu, sigma).
    """
    weights, means, stds = _components(p)
    mu = (weights * means).sum()
    variance = (weights * (stds ** 2 + means ** 2)).sum() - mu ** 2
    return float(mu), float(variance.sqrt())


def reverse_kl(p: D.Distribution, mu: torch.Tensor, log_sigma: torch.Tensor,
               points: int = FIT_POINTS) -> torch.Tensor:
    """KL(q ‖ p) for q = N(mu, exp(log_sigma)^2), differentiable in mu and log_sigma.

    KL(q ‖ p) = E_q[log q - log p], integrated by the trapezoid rule on x = mu + sigma u for a
    fixed grid of u in [-12, 12], so the grid always follows q, whatever sigma is. (Gauss-Hermite
    quadrature was tried first: with 100 nodes it is off by 0.01 nats for a q as wide as the
    mixture, because log p bends sharply between the modes, on a scale the nodes do not resolve.)

    Args:
        p: the data distribution (any scalar torch distribution with log_prob).
        mu: the model's mean, a 0-d tensor.
        log_sigma: the log of the model's std, a 0-d tensor.
        points: grid points.

    Returns:
        A 0-d tensor, in nats.
    """
    standard = torch.linspace(-GRID_STDS, GRID_STDS, points, dtype=torch.float64)
    log_q = D.Normal(0.0, 1.0).log_prob(standard) - log_sigma  # density of q at mu + sigma u
    log_p = p.log_prob(mu + log_sigma.exp() * standard)
    # dx = sigma du, so the integrand over u carries a factor sigma.
    return torch.trapezoid(log_q.exp() * log_sigma.exp() * (log_q - log_p), standard)


def jensen_shannon(p: D.Distribution, mu: torch.Tensor, log_sigma: torch.Tensor,
                   grid: torch.Tensor) -> torch.Tensor:
    """JSD(p ‖ q) for q = N(mu, exp(log_sigma)^2) on a fixed grid, differentiable in both.

    Args:
        p: the data distribution.
        mu: the model's mean, a 0-d tensor.
        log_sigma: the log of the model's std, a 0-d tensor.
        grid: increasing float64 grid covering p and q.

    Returns:
        A 0-d tensor, in nats (at most log 2).
    """
    q = D.Normal(mu, log_sigma.exp())
    log_p, log_q = p.log_prob(grid), q.log_prob(grid)
    log_m = torch.logaddexp(log_p, log_q) - math.log(2.0)
    integrand = 0.5 * log_p.exp() * (log_p - log_m) + 0.5 * log_q.exp() * (log_q - log_m)
    return torch.trapezoid(integrand, grid)


def starting_points(p: D.Distribution, mu: float = INIT_MU,
                    sigma: float = INIT_SIGMA) -> list[tuple[float, float]]:
    """Starts for a numerical fit: the given one, each component, and the moment-matched q.

    A divergence between a Gaussian and a well-separated mixture has several local minima (one
    per mode, and a wide one between them), so one start is not enough to find the best.
    """
    _, means, stds = _components(p)
    starts = [(float(mu), float(sigma))]
    starts += [(float(m), float(s)) for m, s in zip(means, stds, strict=True)]
    starts.append(maximum_likelihood_fit(p))
    return starts


def local_minimum(loss, mu: float, sigma: float) -> dict[str, float]:
    """Minimise `loss(mu, log_sigma)` by L-BFGS from (mu, sigma).

    Args:
        loss: maps 0-d float64 tensors (mu, log_sigma) to a differentiable 0-d tensor.
        mu: the starting mean.
        sigma: the starting std, positive.

    Returns:
        {"start_mu", "start_sigma", "mu", "sigma", "value"} at the minimum found.
    """
    if sigma <= 0:
        raise GankitError(f"starting sigma={sigma} must be positive")
    mean = torch.tensor(float(mu), dtype=torch.float64, requires_grad=True)
    log_sigma = torch.tensor(math.log(sigma), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([mean, log_sigma], max_iter=500, tolerance_grad=1e-10,
                                  tolerance_change=1e-14, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        value = loss(mean, log_sigma)
        value.backward()
        return value

    optimizer.step(closure)
    with torch.no_grad():
        value = float(loss(mean, log_sigma))
    return {"start_mu": float(mu), "start_sigma": float(sigma), "mu": mean.item(),
            "sigma": log_sigma.exp().item(), "value": value}


def best_minimum(loss, starts: list[tuple[float, float]]) -> tuple[dict, list[dict]]:
    """The lowest of the local minima reached from each start, and all of them.

    Minima within 1e-9 of the lowest count as equal (a symmetric p has two equal ones); of
    those, the one nearest the first start wins, so the answer does not hang on rounding.
    """
    minima = [local_minimum(loss, mu, sigma) for mu, sigma in starts]
    lowest = min(found["value"] for found in minima)
    tied = [found for found in minima if found["value"] <= lowest + 1e-9]
    first_mu = starts[0][0]
    return min(tied, key=lambda found: abs(found["mu"] - first_mu)), minima


def reverse_kl_loss(p: D.Distribution):
    """KL(N(mu, sigma^2) ‖ p) as a function of (mu, log_sigma)."""
    return lambda mean, log_sigma: reverse_kl(p, mean, log_sigma)


def jsd_loss(p: D.Distribution):
    """JSD(p ‖ N(mu, sigma^2)) as a function of (mu, log_sigma), on one fixed grid."""
    # Wide enough for any q between a component and the moment-matched Gaussian.
    grid = torch.from_numpy(integration_grid(p, *maximum_likelihood_fit(p),
                                             points=2 * FIT_POINTS - 1))
    return lambda mean, log_sigma: jensen_shannon(p, mean, log_sigma, grid)


def non_saturating_loss(p: D.Distribution):
    """KL(q ‖ p) - 2 JSD(p ‖ q): what the non-saturating G descends when D = D*.

    Arjovsky & Bottou (2017), Theorem 2.5: E_z[-grad log D*(G(z))] is the gradient of this.
    """
    reverse, jsd = reverse_kl_loss(p), jsd_loss(p)
    return lambda mean, log_sigma: reverse(mean, log_sigma) - 2.0 * jsd(mean, log_sigma)


# name -> builder(p) of a loss over (mu, log_sigma), for the numerical fits
DIVERGENCE_LOSSES = {"KL(q‖p)": reverse_kl_loss, "JSD(p‖q)": jsd_loss,
                     "KL(q‖p) − 2 JSD(p‖q)": non_saturating_loss}


def fit_reverse_kl(p: D.Distribution, starts: list[tuple[float, float]] | None = None
                   ) -> tuple[float, float]:
    """The Gaussian that minimises KL(q ‖ p): the best of L-BFGS runs from several starts.

    Args:
        p: the data distribution.
        starts: (mu, sigma) pairs to start from; default `starting_points(p)`.

    Returns:
        (mu, sigma) of the lowest minimum found.
    """
    best, _ = best_minimum(reverse_kl_loss(p), starts or starting_points(p))
    return best["mu"], best["sigma"]


def gan_config(steps: int = GAN_STEPS, g_lr: float = GAN_SETTINGS["GAN"]["g_lr"],
               d_lr: float = GAN_SETTINGS["GAN"]["d_lr"], mu: float = INIT_MU,
               sigma: float = INIT_SIGMA, seed: int = 0) -> RunConfig:
    """The run config of the study's GAN: q = N(mu, sigma^2) as G against an MLP D.

    It describes the whole run, so `gankit train RUN/config.yaml` trains the same GAN again.
    """
    return load_config("toy-gaussian", {
        "name": "mixture-gan", "seed": seed,
        "description": "A Gaussian generator N(mu, sigma^2) against an MLP D on "
                       "0.5 N(-4, 1) + 0.5 N(4, 1)",
        "data.name": "mixture-1d",
        "model.arch": "gaussian", "model.g_start": [mu, sigma],
        # Normal noise: the preset's U[-8, 8] bound (model.latent_range) goes back to its default.
        "model.latent": "normal", "model.latent_dim": 1, "model.latent_range": 1.0,
        "model.d_hidden": GAN_D_HIDDEN, "model.d_activation": "leaky_relu",
        # G is mu + sigma z: the preset's MLP G settings go back to their defaults.
        "model.g_hidden": ModelConfig().g_hidden, "model.g_activation": ModelConfig().g_activation,
        "model.g_output": ModelConfig().g_output,
        "train.steps": steps, "train.batch_size": GAN_BATCH, "train.optimizer": "adam",
        "train.g_lr": g_lr, "train.d_lr": d_lr, "train.betas": [0.5, 0.999],
        "train.threads": 1,
        # Two density frames (start, end): each costs more than a hundred steps.
        "log.every": 10, "log.sample_every": steps,
        "log.checkpoint_every": steps, "log.keep_checkpoints": 1, "log.tensorboard": False,
        "log.toy_points": 2000})


def fit_gan(run_dir: str | Path, steps: int = GAN_STEPS,
            g_lr: float = GAN_SETTINGS["GAN"]["g_lr"], d_lr: float = GAN_SETTINGS["GAN"]["d_lr"],
            mu: float = INIT_MU, sigma: float = INIT_SIGMA, seed: int = 0,
            progress: bool = False) -> tuple[float, float, Path]:
    """Fit q = N(mu, sigma^2) to the mixture as the generator of a GAN (non-saturating loss).

    gankit's own training loop runs the game from `gan_config`: model.arch=gaussian is the
    two-parameter generator G(z) = mu + sigma z, against an MLP discriminator with gankit's
    standard D loss. The loop logs G's (mu, sigma) as g_mu and g_sigma in metrics.jsonl.

    Args:
        run_dir: the run folder the loop writes (emptied first: it belongs to this study).
        steps: generator steps.
        g_lr: the generator's Adam learning rate.
        d_lr: the discriminator's Adam learning rate.
        mu: the generator's starting mean.
        sigma: the generator's starting std.
        seed: the run seed (D's initial weights, the batches).
        progress: show the loop's progress bar.

    Returns:
        (mu, sigma, run_dir) at the end of training.
    """
    run_dir = Path(run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)  # metrics.jsonl appends: start clean
    config = gan_config(steps, g_lr, d_lr, mu, sigma, seed)
    trainer = Trainer(config, run_dir, build_dataset(config.data), progress=progress)
    trainer.fit()
    generator = trainer.objective.generator
    return generator.mu.item(), generator.sigma.item(), run_dir


# ----------------------------------------------------------------------------- measuring a fit


def integration_grid(p: D.Distribution, mu: float, sigma: float,
                     points: int = GRID_POINTS) -> np.ndarray:
    """A grid wide enough for both p and q = N(mu, sigma^2): GRID_STDS stds beyond each."""
    _, means, stds = _components(p)
    low = min(float((means - GRID_STDS * stds).min()), mu - GRID_STDS * sigma)
    high = max(float((means + GRID_STDS * stds).max()), mu + GRID_STDS * sigma)
    return np.linspace(low, high, points)


def kl_on_grid(p: D.Distribution, q: D.Distribution, grid: np.ndarray) -> float:
    """KL(p ‖ q) = integral of p (log p - log q), by the trapezoid rule on `grid`.

    Log densities come straight from the distributions, so a q that is astronomically small
    where p has mass gives the true large number rather than an underflow.

    Args:
        p: scalar torch distribution.
        q: scalar torch distribution.
        grid: increasing 1D grid covering the mass of p.

    Returns:
        The divergence in nats.
    """
    points = torch.from_numpy(np.asarray(grid, dtype=np.float64))
    with torch.no_grad():
        log_p, log_q = p.log_prob(points), q.log_prob(points)
    integrand = (log_p.exp() * (log_p - log_q)).numpy()
    return float(trapezoid(integrand, grid))


def measure_fit(p: D.Distribution, mu: float, sigma: float) -> dict[str, float]:
    """How far q = N(mu, sigma^2) is from p, both ways, by numerical integration.

    Args:
        p: the data distribution.
        mu: the model's mean.
        sigma: the model's std.

    Returns:
        {"mu", "sigma", "kl_data_model" (KL(p ‖ q)), "kl_model_data" (KL(q ‖ p)), "jsd"}.
    """
    q = gaussian(mu, sigma)
    grid = integration_grid(p, mu, sigma)
    points = torch.from_numpy(grid)
    with torch.no_grad():
        p_density, q_density = p.log_prob(points).exp().numpy(), q.log_prob(points).exp().numpy()
    return {"mu": mu, "sigma": sigma, "kl_data_model": kl_on_grid(p, q, grid),
            "kl_model_data": kl_on_grid(q, p, grid),
            "jsd": js_divergence(p_density, q_density, grid)}


def describe_fit(p: D.Distribution, mu: float, sigma: float) -> str:
    """'covering both modes', 'on the mode at 4' or 'elsewhere', judged from mu and sigma.

    On a mode: mu within half a component std of its mean, sigma within [0.5, 1.5] of its std.
    Covering: every component mean within mu ± 2 sigma.
    """
    _, means, stds = _components(p)
    for mean, std in zip(means.tolist(), stds.tolist(), strict=True):
        if abs(mu - mean) <= 0.5 * std and 0.5 * std <= sigma <= 1.5 * std:
            return f"on the mode at {mean:g}"
    if all(abs(mu - mean) <= 2 * sigma for mean in means.tolist()):
        return "covering both modes" if len(means) == 2 else "covering every mode"
    return "elsewhere"


# ----------------------------------------------------------------------------- outputs

# fit name -> (colour, line style) in mixture.png
STYLES = {"maximum likelihood": ("tab:blue", "-"), "reverse KL": ("tab:orange", "--"),
          "GAN": ("tab:green", "-"), "GAN, G outpaces D": ("tab:red", "-."),
          "min JSD": ("0.35", ":"), "min KL(q‖p) − 2 JSD": ("tab:purple", ":")}


def plot_fits(path: Path, p: D.Distribution, fits: dict[str, dict[str, float]],
              gan_records: dict[str, list[dict]]) -> Path:
    """The data density with each fitted Gaussian, and each GAN's (mu, sigma) over training.

    Args:
        path: the PNG to write.
        p: the data distribution.
        fits: fit name -> {"mu", "sigma", ...}.
        gan_records: GAN name -> its metrics.jsonl records (with g_mu, g_sigma).

    Returns:
        `path`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.linspace(-10.0, 10.0, 2001)
    points = torch.from_numpy(grid)
    figure, (densities, trajectory) = plt.subplots(
        1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [3, 2]})
    with torch.no_grad():
        p_density = p.log_prob(points).exp().numpy()
    densities.fill_between(grid, p_density, color="0.85", label="data p")
    for name, fit in fits.items():
        color, line = STYLES.get(name, ("k", "-"))
        with torch.no_grad():
            q_density = gaussian(fit["mu"], fit["sigma"]).log_prob(points).exp().numpy()
        densities.plot(grid, q_density, color=color, linestyle=line, linewidth=2,
                       label=f"{name}: N({fit['mu']:.2f}, {fit['sigma']:.2f}²)")
    densities.set(xlabel="x", ylabel="density", ylim=(0, 0.45),
                  title="p and the single Gaussian q of each fit")
    densities.legend(fontsize=8, loc="upper left")
    for name, records in gan_records.items():
        color, _ = STYLES.get(name, ("k", "-"))
        logged = [r for r in records if "g_mu" in r]
        steps = [r["step"] for r in logged]
        trajectory.plot(steps, [r["g_mu"] for r in logged], color=color, label=f"{name}: mu")
        trajectory.plot(steps, [r["g_sigma"] for r in logged], color=color, linestyle="--",
                        label=f"{name}: sigma")
    for mean in MEANS:
        trajectory.axhline(mean, color="0.6", linewidth=0.8)
    trajectory.axhline(STD, color="0.6", linewidth=0.8, linestyle="--")
    trajectory.set(xlabel="generator step", ylabel="mu (solid), sigma (dashed)",
                   title="the GANs' generators during training")
    trajectory.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def settled(records: list[dict], tail: float = 0.1) -> dict[str, float]:
    """Mean and std of a GAN's mu and sigma over the last `tail` of its logged steps."""
    logged = [r for r in records if "g_mu" in r]
    last = logged[-max(1, int(len(logged) * tail)):]
    mus, sigmas = np.array([r["g_mu"] for r in last]), np.array([r["g_sigma"] for r in last])
    return {"last_mu_mean": float(mus.mean()), "last_mu_std": float(mus.std()),
            "last_sigma_mean": float(sigmas.mean()), "last_sigma_std": float(sigmas.std())}


def summary(verdicts: dict[str, str]) -> list[str]:
    """The claim, what was measured, and whether the claim held, as report lines."""
    holds = (verdicts["maximum likelihood"] == "covering both modes"
             and verdicts["reverse KL"].startswith("on the mode")
             and verdicts["GAN"].startswith("on the mode"))
    lines = ["**Claim:** maximum likelihood covers both modes (mu ≈ 0, wide sigma); the reverse "
             "KL and the GAN settle on one mode.", "",
             f"**Measured:** maximum likelihood: {verdicts['maximum likelihood']}; reverse KL: "
             f"{verdicts['reverse KL']}; GAN: {verdicts['GAN']}. The claim "
             f"{'holds' if holds else 'does not hold'} in this run.", "",
             f"For reference, with an optimal D the minimax game's target (min JSD) ends "
             f"{verdicts['min JSD']}, and the non-saturating generator's target "
             f"(min KL(q‖p) − 2 JSD) {verdicts['min KL(q‖p) − 2 JSD']}."]
    other = verdicts.get("GAN, G outpaces D")
    if other is not None and other != verdicts["GAN"]:
        lines += ["", f"With G outpacing D, the same GAN from the same start ends {other}: "
                  "which basin a GAN lands in depends on how well D keeps up, not only on the "
                  "divergence of the ideal game. The local minima below show why both "
                  "outcomes are stable: each divergence has a minimum on each mode and a wide "
                  "one between them."]
    return lines


def write_outputs(folder: Path, fits: dict[str, dict], verdicts: dict[str, str],
                  gans: dict[str, dict], minima: dict[str, list[dict]]) -> None:
    """report.md (tables and verdict) and results.json into `folder`.

    Args:
        folder: the study folder.
        fits: fit name -> `measure_fit` numbers.
        verdicts: fit name -> `describe_fit` text.
        gans: GAN name -> its settings, wall time, run folder and `settled` numbers.
        minima: divergence name -> the local minima found from each start.
    """
    results = {"data": {"weights": list(WEIGHTS), "means": list(MEANS), "std": STD},
               "init": {"mu": INIT_MU, "sigma": INIT_SIGMA},
               "fits": {name: {**fit, "verdict": verdicts[name]} for name, fit in fits.items()},
               "gans": gans, "local_minima": minima}
    (folder / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "# One Gaussian fitted to a mixture of two", "",
        f"Data p = {WEIGHTS[0]:g} N({MEANS[0]:g}, {STD:g}²) + {WEIGHTS[1]:g} N({MEANS[1]:g}, "
        f"{STD:g}²); model q = N(mu, sigma²). The GANs start from mu = {INIT_MU:g}, "
        f"sigma = {INIT_SIGMA:g}.", "",
        "| fit | mu | sigma | KL(p‖q) | KL(q‖p) | JSD(p‖q) | where q sits |",
        "|---|---|---|---|---|---|---|"]
    for name, fit in fits.items():
        lines.append(f"| {name} | {fit['mu']:.3f} | {fit['sigma']:.3f} | "
                     f"{fit['kl_data_model']:.3f} | {fit['kl_model_data']:.3f} | "
                     f"{fit['jsd']:.4f} | {verdicts[name]} |")
    lines += [
        "", "Divergences in nats, by the trapezoid rule on a grid reaching 12 stds beyond both "
        "modes and beyond q. How each fit is found:", "",
        "- maximum likelihood: closed form, mu = Σ w_i m_i, sigma² = Σ w_i (s_i² + m_i²) − mu².",
        "- reverse KL, min JSD and min KL(q‖p) − 2 JSD: L-BFGS on (mu, log sigma) from each "
        "start of the last table; the lowest minimum is kept (of equal ones, the one nearest "
        f"mu = {INIT_MU:g}). The last two are references: what the minimax and the "
        "non-saturating generator descend when D is optimal."]
    for name, gan in gans.items():
        lines.append(
            f"- {name}: gankit's training loop with the generator G(z) = mu + sigma·z, "
            f"z ~ N(0, 1), against an MLP discriminator ({'-'.join(map(str, GAN_D_HIDDEN))}, "
            f"leaky ReLU); standard D loss, non-saturating G loss, Adam (lr G {gan['g_lr']:g}, "
            f"D {gan['d_lr']:g}), {gan['steps']} steps of batch {GAN_BATCH}, "
            f"{gan['seconds']:.1f} s; run folder `{gan['run_dir']}`. Over the last 10% of "
            f"steps mu = {gan['last_mu_mean']:.3f} ± {gan['last_mu_std']:.3f}, sigma = "
            f"{gan['last_sigma_mean']:.3f} ± {gan['last_sigma_std']:.3f} (mean ± std).")
    lines += ["", "Each GAN's run folder is written by gankit's training loop (model.arch="
              "gaussian on data.name=mixture-1d): `gankit train RUN/config.yaml` trains the "
              "same GAN again.",
              "", "![fits](mixture.png)", "", "## What happened", "", *summary(verdicts), "",
              "## Local minima of each divergence over (mu, sigma)", "",
              "KL(q‖p) − 2 JSD(p‖q) is what the non-saturating generator descends when D = D* "
              "(Arjovsky & Bottou 2017, Thm. 2.5).", "",
              "| divergence | start (mu, sigma) | minimum (mu, sigma) | value |",
              "|---|---|---|---|"]
    for name, found in minima.items():
        for entry in found:
            lines.append(f"| {name} | ({entry['start_mu']:.2f}, {entry['start_sigma']:.2f}) | "
                         f"({entry['mu']:.3f}, {entry['sigma']:.3f}) | {entry['value']:.4f} |")
    (folder / "report.md").write_text("\n".join(lines) + "\n")


def run(out: str | Path, data_root: str | Path | None = None, progress: bool = True,
        gan_steps: int | None = None) -> Path:
    """Fit the mixture three ways (and the reference fits) and write the study into `out`.

    Args:
        out: the study folder: mixture.png, report.md, results.json and one run folder per GAN.
        data_root: unused (the data is synthetic); accepted like every study's.
        progress: show the GANs' progress bars.
        gan_steps: generator steps per GAN; default `GAN_STEPS`.

    Returns:
        The study folder.
    """
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    steps = gan_steps or GAN_STEPS
    p = gaussian_mixture()
    starts = starting_points(p)
    best, minima = {}, {}
    for name, build in DIVERGENCE_LOSSES.items():
        best[name], minima[name] = best_minimum(build(p), starts)
    fits = {"maximum likelihood": measure_fit(p, *maximum_likelihood_fit(p)),
            "reverse KL": measure_fit(p, best["KL(q‖p)"]["mu"], best["KL(q‖p)"]["sigma"])}
    gans, records = {}, {}
    for name, setting in GAN_SETTINGS.items():
        started = time.perf_counter()
        mu, sigma, run_dir = fit_gan(folder / setting["folder"], steps, setting["g_lr"],
                                     setting["d_lr"], progress=progress)
        fits[name] = measure_fit(p, mu, sigma)
        records[name] = read_metrics(run_dir)
        gans[name] = {"g_lr": setting["g_lr"], "d_lr": setting["d_lr"], "steps": steps,
                      "seconds": time.perf_counter() - started, "run_dir": str(run_dir),
                      **settled(records[name])}
    fits["min JSD"] = measure_fit(p, best["JSD(p‖q)"]["mu"], best["JSD(p‖q)"]["sigma"])
    ideal = best["KL(q‖p) − 2 JSD(p‖q)"]
    fits["min KL(q‖p) − 2 JSD"] = measure_fit(p, ideal["mu"], ideal["sigma"])
    verdicts = {name: describe_fit(p, fit["mu"], fit["sigma"]) for name, fit in fits.items()}
    plot_fits(folder / "mixture.png", p, fits, records)
    write_outputs(folder, fits, verdicts, gans, minima)
    return folder
