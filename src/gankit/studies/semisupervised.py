"""Semi-supervised MNIST from 100 labels (Salimans et al. 2016): what the unlabelled images buy.

Two classifiers of the same architecture, initialisation and optimizer see the same 100
labelled training images (10 a class, chosen with the run seed):

- **gan**: the `mnist-semisupervised` preset, the discriminator of a feature-matching GAN that
  also sees all 60,000 training images without their labels;
- **baseline**: the same net trained with the cross-entropy of the 100 labels alone, for the
  same number of steps and batch size.

Both are measured on the 10,000 MNIST test images over training. The study writes
`report.md`, `results.json` and `test_error.png` (test error against step and wall-clock time)
into its folder, with the GAN's run folder under `gan/`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from gankit.config import RunConfig, load_config
from gankit.data import build_dataset
from gankit.data.images import to_float
from gankit.objectives.semisupervised import build_semi_supervised, labelled_indices
from gankit.train.loop import learning_rate_factor
from gankit.train.optimizers import make_optimizer

DESCRIPTION = ("Semi-supervised MNIST from 100 labels: the feature-matching GAN's D against the "
               "same net trained on the 100 labels alone")
PRESET = "mnist-semisupervised"
PUBLISHED_ERROR = 0.0093  # Salimans et al. 2016, Table 1: 93 +- 6.5 errors of 10,000, 100 labels
TARGET_ERROR = 0.025  # gankit's bar for the preset: under 2.5 % within an hour on 2 CPU cores


def train_supervised_baseline(config: RunConfig, data_root: str | Path | None = None,
                              progress: bool = True) -> list[dict[str, float]]:
    """Train the semi-supervised run's classifier on its labelled subset alone.

    Same net, data-dependent initialisation (on the GAN's first unlabelled batch), labelled
    subset, batch size, optimizer, learning-rate schedule and step count as the GAN run of
    `config`; only the unlabelled and generated batches are gone.

    Args:
        config: a semi-supervised run config (e.g. the mnist-semisupervised preset).
        data_root: where the dataset lives.
        progress: show a progress bar.

    Returns:
        One record {"step", "time", "test_error/nN", "test_error_raw/nN"} every
        log.eval_every steps (and at the end), measured like the GAN's D: with its averaged
        weights, and with its current ones; "time" is training seconds, evaluations included.
    """
    train = config.train
    if train.threads > 0:
        torch.set_num_threads(train.threads)
    torch.manual_seed(config.seed)
    data = build_dataset(config.data, data_root)
    objective = build_semi_supervised(config, tuple(data.shape))
    classifier = objective.discriminator
    objective.test_set(data_root)  # read the test split before the clock starts
    rng = torch.Generator().manual_seed(config.seed)
    subset = labelled_indices(data.labels, config.data.labelled_per_class,
                              config.model.num_classes, config.seed)
    # The GAN's first real batch, drawn as the loop draws it: its unlabelled images initialise
    # D's weight norm, so they initialise this net too.
    first = objective.real_batch(data, train.batch_size, torch.Generator().manual_seed(config.seed))
    classifier.initialize(first[2])
    params = [p for p in classifier.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, train.optimizer, train.d_lr, train.momentum, train.betas,
                               train.fused_optimizer)
    every = config.log.eval_every or train.steps
    records = []
    started = time.perf_counter()
    for step in tqdm(range(1, train.steps + 1), disable=not progress, desc="baseline",
                     dynamic_ncols=True):
        factor = learning_rate_factor(train, step - 1)  # the loop's schedule for D
        if factor is not None:
            for group in optimizer.param_groups:
                group["lr"] = train.d_lr * factor
        chosen = subset[torch.randint(len(subset), (train.batch_size,), generator=rng)]
        loss = F.cross_entropy(classifier(to_float(data.images[chosen])), data.labels[chosen])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        classifier.update_average()
        if step % every == 0 or step == train.steps:
            errors = objective.evaluate_extra(data_root)
            records.append({"step": step, "time": round(time.perf_counter() - started, 3),
                            **errors})
    return records


def run(out: str | Path, data_root: str | Path | None = None, progress: bool = True,
        overrides: dict | None = None) -> Path:
    """Train the preset's GAN and the supervised baseline; write the report into `out`.

    A finished GAN run already in `out/gan` (its report.md written) is reused, and an
    unfinished one is resumed, so the hour of GAN training is never repeated by accident.

    Args:
        out: the study folder.
        data_root: where MNIST lives.
        progress: show progress bars.
        overrides: dotted config keys applied to the preset for both runs (tests use tiny nets).

    Returns:
        `out`.
    """
    from gankit.api import train  # the API imports the loop; only a study run needs it
    from gankit.train.report import read_metrics

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = load_config(PRESET, overrides or {})
    gan_dir = out / "gan"
    if not (gan_dir / "report.md").is_file():
        resume = gan_dir if (gan_dir / "checkpoints").is_dir() else None
        train(config, out=None if resume else gan_dir, resume=resume, data_root=data_root,
              progress=progress)
    gan_records = [r for r in read_metrics(gan_dir) if any(k.startswith("test_error/") for k in r)]
    baseline_records = train_supervised_baseline(config, data_root, progress)
    key = next(k for k in baseline_records[-1] if k.startswith("test_error/"))
    results = {
        "labelled_images": config.data.labelled_per_class * config.model.num_classes,
        "test_images": int(key.split("/n")[-1]),
        "published_error": PUBLISHED_ERROR,
        "target_error": TARGET_ERROR,
        "gan": _summary(gan_records, key),
        "baseline": _summary(baseline_records, key),
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    _plot(gan_records, baseline_records, key, out / "test_error.png")
    (out / "report.md").write_text(_report(config, results))
    return out


def _summary(records: list[dict], key: str) -> dict:
    """Final and best test error of a run, with its steps, seconds and curve."""
    if not records:
        return {"test_error": None, "best_test_error": None, "steps": 0, "seconds": 0.0,
                "curve": []}
    best = min(records, key=lambda r: r[key])
    return {"test_error": records[-1][key], "best_test_error": best[key],
            "best_step": best["step"], "steps": records[-1]["step"],
            "seconds": records[-1]["time"],
            "curve": [{"step": r["step"], "time": r["time"], "test_error": r[key]}
                      for r in records]}


def _plot(gan: list[dict], baseline: list[dict], key: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    try:
        for records, label, color in ((gan, "feature-matching GAN", "tab:purple"),
                                      (baseline, "labels only", "tab:gray")):
            if not records:
                continue
            errors = [100 * r[key] for r in records]
            axes[0].plot([r["step"] for r in records], errors, marker=".", label=label,
                         color=color)
            axes[1].plot([r["time"] / 60 for r in records], errors, marker=".", label=label,
                         color=color)
        for ax, xlabel in ((axes[0], "step"), (axes[1], "minutes of training")):
            ax.axhline(100 * TARGET_ERROR, color="tab:red", linestyle="--", linewidth=1,
                       label="2.5 % bar")
            ax.axhline(100 * PUBLISHED_ERROR, color="tab:green", linestyle=":", linewidth=1,
                       label="published 0.93 %")
            ax.set_yscale("log")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("test error (%)")
            ax.grid(alpha=0.3, which="both")
        axes[1].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
    return path


def _report(config: RunConfig, results: dict) -> str:
    def percent(value):
        return "n/a" if value is None else f"{100 * value:.2f} %"

    gan, baseline = results["gan"], results["baseline"]
    lines = [
        "# Semi-supervised MNIST from "
        f"{results['labelled_images']} labels", "",
        DESCRIPTION + ".", "",
        f"Test error on the {results['test_images']:,} test images, the classifier without its "
        "noise layers. Training on "
        f"{torch.get_num_threads()} thread(s); seconds are wall-clock, evaluations included.", "",
        "| classifier | final test error | best (step) | steps | seconds |",
        "|---|---|---|---|---|",
        f"| feature-matching GAN (`gan/`) | {percent(gan['test_error'])} | "
        f"{percent(gan['best_test_error'])} ({gan.get('best_step', '-')}) | {gan['steps']} | "
        f"{gan['seconds']:.0f} |",
        f"| labels only | {percent(baseline['test_error'])} | "
        f"{percent(baseline['best_test_error'])} ({baseline.get('best_step', '-')}) | "
        f"{baseline['steps']} | {baseline['seconds']:.0f} |",
        f"| Salimans et al. 2016 (published) | {percent(results['published_error'])} | | | |",
        "",
        f"gankit's bar: under {percent(results['target_error'])} within an hour on 2 CPU cores.",
        "", "![test error over steps and time](test_error.png)", "",
        f"Settings: `{PRESET}`, batch {config.train.batch_size}, Adam lr "
        f"{config.train.d_lr:g} betas {tuple(config.train.betas)}, seed {config.seed}. "
        "The GAN run's own report is `gan/report.md`.", ""]
    return "\n".join(lines)
