"""The three generator losses of the standard GAN: their cost curves and what they do early on.

Goodfellow's NIPS 2016 tutorial (Fig. 16) plots each generator cost J(G) against D(G(z)).
The minimax cost 1/2 log(1 - D) is flat where D(G(z)) is near 0, which is where a generator
starts, since D rejects its first samples easily: its gradient vanishes when G needs it most.
The non-saturating cost -1/2 log D is steep there. The maximum-likelihood cost -1/2 D/(1 - D)
is flat there too, and its gradient comes from the few samples D already accepts.

The study draws the curves from gankit's own loss functions, then trains toy-gaussian and a
short mnist-mlp once per generator loss from the same seed, and records G's gradient norm and
D(G(z)) at every step, and the final quality.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from gankit import losses
from gankit.api import train
from gankit.config import load_config
from gankit.data.images import idx_paths
from gankit.data.root import resolve_data_root
from gankit.errors import GankitError
from gankit.eval.evaluate import evaluate
from gankit.train.report import read_metrics

DESCRIPTION = ("The three generator losses: J(G) against D(G(z)), and G's gradient when D "
               "rejects its samples (toy-gaussian, short mnist-mlp)")

KINDS = losses.SATURATING_FAMILY  # minimax, non-saturating, maximum-likelihood
TOY_PRESET, MNIST_PRESET = "toy-gaussian", "mnist-mlp"
TOY_STEPS = None  # None: the preset's own 6000 steps
MNIST_STEPS = 1500  # of the preset's 25,000: a few minutes per loss on 2 cores
TOY_EVAL_N = 20000
MNIST_FID_N = 5000
EARLY_STEPS = 100  # "the first steps" of the table
LAST_STEPS = 100  # the steady-state column: the last steps' D(G(z))
# A step where mean D(G(z)) is below this counts as one where D rejects the fakes.
REJECTED_BELOW = 0.05
# Density frames / sample grids per run, besides step 0: a 1D frame costs more than 100 steps.
PICTURES_PER_RUN = 5
COLOURS = {"minimax": "tab:red", "non-saturating": "tab:green",
           "maximum-likelihood": "tab:blue"}


# ----------------------------------------------------------------------------- the curves


def generator_cost_curve(kind: str, d_values: np.ndarray) -> np.ndarray:
    """Per-sample generator cost J(G) at each D(G(z)), from `gankit.losses.generator_loss`.

    Each value is the loss of a batch of one sample whose logit is logit(D), so the curve is
    exactly what training minimises, not a retyped formula.

    Args:
        kind: one of `KINDS`.
        d_values: discriminator outputs in (0, 1).

    Returns:
        J(G) at each value, float64.
    """
    d_values = np.asarray(d_values, dtype=np.float64)
    if d_values.size == 0 or not ((d_values > 0) & (d_values < 1)).all():
        raise GankitError("D(G(z)) values must lie strictly between 0 and 1")
    if kind not in KINDS:
        raise GankitError(f"unknown generator loss {kind!r}; choose from {', '.join(KINDS)}")
    logits = torch.logit(torch.from_numpy(d_values))
    return np.array([float(losses.generator_loss(logit.reshape(1), kind)) for logit in logits])


def plot_cost_curves(path: Path) -> Path:
    """losses.png: J(G) against D(G(z)) for the three losses (Goodfellow 2016, Fig. 16)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d_values = np.linspace(1e-3, 1 - 1e-3, 999)
    figure, axes = plt.subplots(figsize=(6.5, 4.5))
    for kind in KINDS:
        axes.plot(d_values, generator_cost_curve(kind, d_values), color=COLOURS[kind],
                  linewidth=2, label=kind)
    axes.axhline(0.0, color="0.7", linewidth=0.8)
    axes.set(xlabel="D(G(z))", ylabel="J(G) per sample", ylim=(-10, 4), xlim=(0, 1),
             title="Generator costs from gankit.losses.generator_loss")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


# ----------------------------------------------------------------------------- the runs


def mnist_available(data_root: str | Path | None = None) -> bool:
    """Whether MNIST's train and test files are in the resolved data root."""
    root = resolve_data_root(data_root)
    return all(path.is_file() for split in ("train", "test")
               for path in idx_paths(root, "mnist", split))


def train_with_loss(preset: str, kind: str, run_dir: Path, steps: int | None = None,
                    data_root: str | Path | None = None, progress: bool = True) -> Path:
    """Train `preset` with generator loss `kind`, logging every step, into `run_dir`.

    Args:
        preset: a preset name.
        kind: one of `KINDS`.
        run_dir: the run folder; replaced if it exists (it belongs to this study).
        steps: generator steps; None keeps the preset's.
        data_root: where datasets live.
        progress: show the progress bar.

    Returns:
        The run folder.
    """
    shutil.rmtree(run_dir, ignore_errors=True)  # train() refuses a folder that holds a run
    # log.every=1: the loop measures |grad G| only on logged steps, and this study wants each
    # step's value. One thread: these nets are small, and the machine is shared.
    overrides = [f"loss.generator={kind}", "log.every=1", "log.tensorboard=false",
                 "train.threads=1"]
    if steps is not None:
        overrides.append(f"train.steps={steps}")
    total = steps if steps is not None else _preset_steps(preset)
    overrides += [f"log.sample_every={max(total // PICTURES_PER_RUN, 1)}",
                  f"log.checkpoint_every={total}", "log.keep_checkpoints=1"]
    return train(preset, out=run_dir, data_root=data_root, progress=progress,
                 overrides=overrides)


def _preset_steps(preset: str) -> int:
    return load_config(preset).train.steps


def read_trace(run_dir: Path) -> dict[str, np.ndarray]:
    """Per-step training curves of a run logged every step: step, g_grad_norm, d_fake, d_real."""
    records = [r for r in read_metrics(run_dir) if "g_grad_norm" in r]
    return {key: np.array([r[key] for r in records], dtype=np.float64)
            for key in ("step", "g_grad_norm", "d_fake", "d_real")}


def summarise_trace(trace: dict[str, np.ndarray], early: int = EARLY_STEPS,
                    last: int = LAST_STEPS) -> dict[str, float | None]:
    """The table's numbers for one run.

    Args:
        trace: `read_trace` output.
        early: how many first steps count as early.
        last: how many last steps give the final D(G(z)).

    Returns:
        grad_step1 (|grad G| at step 1), grad_early_median (median over the first `early`
        steps), grad_median (over the whole run), d_fake_early (mean D(G(z)) over the first
        `early` steps), d_fake_last (over the last `last` steps), rejected_steps (how many
        steps had D(G(z)) < REJECTED_BELOW) and grad_rejected_median (the median |grad G|
        over those steps; None when there are none).
    """
    grads, d_fake = trace["g_grad_norm"], trace["d_fake"]
    rejected = d_fake < REJECTED_BELOW
    return {"grad_step1": float(grads[0]), "grad_early_median": float(np.median(grads[:early])),
            "grad_median": float(np.median(grads)),
            "d_fake_early": float(d_fake[:early].mean()),
            "d_fake_last": float(d_fake[-last:].mean()),
            "rejected_steps": int(rejected.sum()),
            "grad_rejected_median": float(np.median(grads[rejected])) if rejected.any() else None}


def final_quality(preset: str, run_dir: Path, data_root: str | Path | None = None
                  ) -> dict[str, float | None]:
    """Exact 1D divergences for toy-gaussian, FID against MNIST test for mnist-mlp.

    A toy generator that collapsed to one point has no density: its divergences are None.
    """
    if preset == TOY_PRESET:
        try:
            return evaluate(run_dir, metrics=["divergences"], n=TOY_EVAL_N)
        except ValueError:  # every sample equal: kde_density has nothing to spread
            return {f"{key}/n{TOY_EVAL_N}": None for key in ("kl_data_g", "kl_g_data", "jsd")}
    return evaluate(run_dir, "mnist:test", ["fid"], features="mnist", n=MNIST_FID_N,
                    data_root=data_root)


def run_experiment(preset: str, folder: Path, steps: int | None = None,
                   data_root: str | Path | None = None, progress: bool = True
                   ) -> dict[str, dict]:
    """Train `preset` once per generator loss from the same seed and measure each run.

    Args:
        preset: TOY_PRESET or MNIST_PRESET.
        folder: the study folder; runs go to folder/runs/<preset>-<kind>.
        steps: generator steps; None keeps the preset's.
        data_root: where datasets live.
        progress: show progress bars.

    Returns:
        kind -> {"run_dir", "train_seconds", "eval_seconds", the `summarise_trace` numbers,
        "quality": {metric key: value}, "trace": the per-step curves as lists}.
    """
    results = {}
    for kind in KINDS:
        started = time.perf_counter()
        run_dir = train_with_loss(preset, kind, folder / "runs" / f"{preset}-{kind}", steps,
                                  data_root, progress)
        trained = time.perf_counter()
        quality = final_quality(preset, run_dir, data_root)
        trace = read_trace(run_dir)
        results[kind] = {"run_dir": str(run_dir), "steps": int(trace["step"][-1]),
                         "train_seconds": trained - started,
                         "eval_seconds": time.perf_counter() - trained,
                         **summarise_trace(trace), "quality": quality,
                         "trace": {key: values.tolist() for key, values in trace.items()}}
    return results


# ----------------------------------------------------------------------------- outputs


def plot_gradients(path: Path, experiments: dict[str, dict[str, dict]]) -> Path:
    """gradients.png: ‖grad G‖ (log scale) above mean D(G(z)), against step, per loss and preset.

    Args:
        path: the PNG to write.
        experiments: preset -> `run_experiment` results.

    Returns:
        `path`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    presets = list(experiments)
    figure, axes = plt.subplots(2, len(presets), figsize=(6.5 * len(presets), 7),
                                sharex="col", squeeze=False,
                                gridspec_kw={"height_ratios": [3, 2]})
    for column, preset in enumerate(presets):
        norms, d_fake = axes[0, column], axes[1, column]
        for kind, result in experiments[preset].items():
            trace = result["trace"]
            for axes_, key in ((norms, "g_grad_norm"), (d_fake, "d_fake")):
                # Every step faintly; a running median over ±10% of the step on top.
                axes_.plot(trace["step"], trace[key], color=COLOURS[kind], linewidth=0.5,
                           alpha=0.25)
                axes_.plot(trace["step"], log_running_median(trace[key]), color=COLOURS[kind],
                           linewidth=1.6, label=kind)
        norms.set(yscale="log", xscale="log", ylabel="‖∇G‖ (every step)", title=preset)
        d_fake.set(xscale="log", xlabel="generator step (log scale)",
                   ylabel="mean D(G(z)) in the D step", ylim=(0, 1))
        d_fake.axhline(REJECTED_BELOW, color="0.6", linewidth=0.8, linestyle=":")
        norms.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def log_running_median(values, spread: float = 0.1) -> np.ndarray:
    """Median of values[j] over steps within ±`spread` of step i, for every i (steps 1, 2, ...).

    The window grows with the step, so the smoothing looks even on a log-scaled step axis:
    the first steps stay as they are and the long tail is calmed.
    """
    values = np.asarray(values, dtype=np.float64)
    smoothed = np.empty_like(values)
    for index in range(len(values)):
        step = index + 1
        low = int(np.ceil(step / (1 + spread))) - 1  # index of the first step in the window
        high = min(int(np.floor(step * (1 + spread))), len(values))  # one past the last
        smoothed[index] = np.median(values[low:high])
    return smoothed


def _number(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def experiment_table(preset: str, results: dict[str, dict]) -> list[str]:
    """Markdown table lines for one preset's three runs."""
    quality_keys = list(next(iter(results.values()))["quality"])
    # ‖ rather than |: a | inside a cell would split the markdown table.
    header = ["G loss", "steps", "‖∇G‖ step 1", f"median ‖∇G‖ steps 1–{EARLY_STEPS}",
              "median ‖∇G‖ all steps", f"D(G(z)) steps 1–{EARLY_STEPS}",
              f"D(G(z)) last {LAST_STEPS}", f"steps with D(G(z)) < {REJECTED_BELOW:g}",
              "median ‖∇G‖ on those steps", *quality_keys, "train s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for kind, result in results.items():
        cells = [kind, str(result["steps"]), _number(result["grad_step1"]),
                 _number(result["grad_early_median"]), _number(result["grad_median"]),
                 f"{result['d_fake_early']:.3f}", f"{result['d_fake_last']:.3f}",
                 str(result["rejected_steps"]), _number(result["grad_rejected_median"]),
                 *(_number(result["quality"][key], 4) for key in quality_keys),
                 f"{result['train_seconds']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def observations(results: dict[str, dict]) -> list[str]:
    """Sentences read off one preset's numbers, for the report (no claim is assumed)."""
    early = {kind: r["grad_early_median"] for kind, r in results.items()}
    minimax = max(early["minimax"], 1e-30)
    lines = [f"- Over the first {EARLY_STEPS} steps the median ‖∇G‖ of non-saturating is "
             f"{early['non-saturating'] / minimax:.3g}× that of minimax (maximum-likelihood: "
             f"{early['maximum-likelihood'] / minimax:.3g}×), while D(G(z)) averaged "
             + ", ".join(f"{r['d_fake_early']:.3f} ({kind})" for kind, r in results.items())
             + "."]
    rejected = [f"{r['grad_rejected_median']:.3g} ({kind}, {r['rejected_steps']} steps)"
                for kind, r in results.items() if r["grad_rejected_median"] is not None]
    if rejected:
        lines.append(f"- On the steps where D rejected the fakes (D(G(z)) < "
                     f"{REJECTED_BELOW:g}) the median ‖∇G‖ was " + ", ".join(rejected) + ".")
    return lines


def write_outputs(folder: Path, experiments: dict[str, dict], skipped: list[str],
                  settings: dict) -> None:
    """report.md and results.json into `folder`."""
    slim = {preset: {kind: {k: v for k, v in result.items() if k != "trace"}
                     for kind, result in runs.items()} for preset, runs in experiments.items()}
    (folder / "results.json").write_text(json.dumps(
        {"settings": settings, "experiments": slim, "skipped": skipped}, indent=2) + "\n")
    d_values = [0.01, 0.1, 0.5, 0.9, 0.99]
    lines = ["# The three generator losses", "",
             "![J(G) against D(G(z))](losses.png)", "",
             "Per-sample costs J(G) computed by `gankit.losses.generator_loss` on logit(D) "
             "(with the tutorial's 1/2 factors):", "",
             "| D(G(z)) | " + " | ".join(f"{d:g}" for d in d_values) + " |",
             "|---|" + "---|" * len(d_values)]
    for kind in KINDS:
        costs = generator_cost_curve(kind, np.array(d_values))
        lines.append(f"| {kind} | " + " | ".join(f"{c:.3f}" for c in costs) + " |")
    lines += ["", "## Training once per loss, same seed", "",
              "Each preset as shipped, from its own seed, with only `loss.generator` changed "
              "(and logging every step). ‖∇G‖ is the norm of the generator's gradient before "
              "its update, D(G(z)) the mean discriminator output on fakes in that step's D "
              f"phase. toy-gaussian: divergences of a KDE of {TOY_EVAL_N} samples against "
              "N(5, 1), in nats (— where G collapsed to a point). mnist-mlp: FID of its "
              "sampling (EMA) generator against MNIST test, mnist-cnn features, n = "
              f"{MNIST_FID_N}. 'train s' is the wall time of `gankit.api.train`, pictures "
              "included, one thread.", "",
              "![gradients](gradients.png)", ""]
    for preset, results in experiments.items():
        lines += [f"### {preset}", "", *experiment_table(preset, results), "",
                  *observations(results), ""]
        steps, preset_steps = settings["steps"][preset], _preset_steps(preset)
        if steps < preset_steps:
            lines += [f"These runs stop at {steps:,} of the preset's {preset_steps:,} steps: "
                      "the quality column compares early generators, not trained ones.", ""]
    for message in skipped:
        lines += [message, ""]
    (folder / "report.md").write_text("\n".join(lines))


def run(out: str | Path, data_root: str | Path | None = None, progress: bool = True,
        toy_steps: int | None = TOY_STEPS, mnist_steps: int = MNIST_STEPS,
        include_mnist: bool = True) -> Path:
    """Draw the cost curves, train each preset once per loss, and write the study into `out`.

    Args:
        out: the study folder: losses.png, gradients.png, report.md, results.json, runs/.
        data_root: where MNIST lives (else the default data root).
        progress: show progress bars.
        toy_steps: toy-gaussian steps per run; None keeps the preset's.
        mnist_steps: mnist-mlp steps per run.
        include_mnist: train mnist-mlp too (skipped with a note when MNIST is absent).

    Returns:
        The study folder.
    """
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    plot_cost_curves(folder / "losses.png")
    experiments = {TOY_PRESET: run_experiment(TOY_PRESET, folder, toy_steps, data_root,
                                              progress)}
    skipped = []
    if not include_mnist:
        skipped.append("mnist-mlp was not trained (include_mnist=False).")
    elif not mnist_available(data_root):
        skipped.append(f"mnist-mlp was skipped: MNIST is not in {resolve_data_root(data_root)} "
                       "(pass --data-root DIR with DIR/MNIST/raw/*.gz).")
    else:
        experiments[MNIST_PRESET] = run_experiment(MNIST_PRESET, folder, mnist_steps,
                                                   data_root, progress)
    plot_gradients(folder / "gradients.png", experiments)
    settings = {"steps": {TOY_PRESET: toy_steps or _preset_steps(TOY_PRESET),
                          MNIST_PRESET: mnist_steps},
                "toy_eval_n": TOY_EVAL_N, "mnist_fid_n": MNIST_FID_N,
                "early_steps": EARLY_STEPS, "last_steps": LAST_STEPS}
    write_outputs(folder, experiments, skipped, settings)
    return folder
