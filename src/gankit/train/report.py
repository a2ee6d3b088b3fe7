"""report.md: what was trained, how long it took, its curves, its pictures, its final numbers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from gankit.config import RunConfig
from gankit.eval.divergences import known_density, toy_divergences
from gankit.train.checkpoint import atomic_write_text
from gankit.viz.curves import plot_metric_curves, plot_training_curves

REPORT_FILE = "report.md"
METRICS_FILE = "metrics.jsonl"


def read_metrics(run_dir: Path) -> list[dict]:
    """The records of a run's metrics.jsonl (an empty list when there is none)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    return [record for _, record in _metric_lines(path.read_text().splitlines())]


def drop_metrics_after(run_dir: Path, step: int) -> None:
    """Remove the metrics.jsonl records of steps after `step`, which a resumed run is about to
    log again (a run killed after its last checkpoint had logged them), so that its curves do
    not double back, and a line torn by a kill mid-write. Rewritten atomically; untouched when
    there is nothing to drop."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return
    lines = path.read_text().splitlines()
    kept = [line for line, record in _metric_lines(lines) if record["step"] <= step]
    if len(kept) < len(lines):
        atomic_write_text(path, "".join(line + "\n" for line in kept))


def append_metrics(run_dir: Path, record: dict) -> None:
    """Add one record to the run's metrics.jsonl, on a line of its own even after a line torn
    by a kill."""
    with open(Path(run_dir) / METRICS_FILE, "ab+") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size:
            handle.seek(size - 1)
            if handle.read(1) != b"\n":
                handle.write(b"\n")  # append mode writes at the end whatever was read
        handle.write((json.dumps(record) + "\n").encode())


def _metric_lines(lines: list[str]) -> list[tuple[str, dict]]:
    """(line, record) for each record among a metrics.jsonl's lines; blank lines and a line
    torn by a kill in the middle of a write are left out."""
    pairs = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "step" in record:
            pairs.append((line, record))
    return pairs


def append_evaluation(run_dir: Path, step: int, elapsed: float, results: dict[str, float]) -> None:
    """Record an evaluation in the run's metrics.jsonl and report.md."""
    run_dir = Path(run_dir)
    append_metrics(run_dir, {"step": step, "time": round(elapsed, 3),
                             **{k: float(v) for k, v in results.items()}})
    lines = ["", f"## Evaluation at step {step}", "", "| metric | value |", "|---|---|"]
    lines += [f"| {key} | {value:.6g} |" for key, value in results.items()]
    with open(run_dir / REPORT_FILE, "a") as handle:
        handle.write("\n".join(lines) + "\n")


def toy_summary(objective, data, n: int = 20000) -> dict[str, float]:
    """Numbers that say how close p_g is to a 1D toy p_data: moments, and divergences from the
    exact p_data to a KDE of p_g (to G's own density where it knows it)."""
    latent = objective.sample_latent(n, torch.Generator().manual_seed(12345), objective.device)
    samples = objective.sample(latent).float().cpu().numpy()[:, 0]
    p_data = data.distribution.distribution  # torch's mixture: exact moments of all modes
    summary = {"sample_mean": float(samples.mean()), "sample_std": float(samples.std()),
               "data_mean": float(p_data.mean[0]), "data_std": float(p_data.variance[0].sqrt())}
    density = known_density(objective.sampler)
    try:
        summary.update(toy_divergences(samples, data.distribution, density))
    except ValueError:  # every sample equal: a collapsed G has no density to compare
        pass
    return summary


def write_report(run_dir: Path, config: RunConfig, objective, data, elapsed: float, step: int,
                 figures: dict[str, Path], processes: int = 1, precision: str = "") -> Path:
    """Write report.md (and curves.png) into the run folder; `processes` > 1 for a run
    trained under torchrun, whose batch is per process; `precision` is what the run computed
    in (train.precision, or what its "auto" chose)."""
    run_dir = Path(run_dir)
    records = read_metrics(run_dir)
    lines = [f"# {config.name}", ""]
    if config.description:
        lines += [config.description, ""]
    lines += [f"Reproduce with `gankit train {run_dir / 'config.yaml'}`.", "",
              "| | |", "|---|---|",
              f"| data | {data.name}, samples of shape {tuple(data.shape)} |"]
    for name, net in objective.players().items():
        count = sum(p.numel() for p in net.parameters())
        lines.append(f"| {name} | {type(net).__name__}, {count:,} parameters |")
    loss = config.loss
    g_loss = loss.generator if loss.name == "standard" else loss.name
    train = config.train
    loss_row = (f"| loss | D: {loss.name}, G: {g_loss}"
                + (f", GP {loss.gp_weight:g}" if loss.gp_weight else "")
                + (f", R1 {loss.r1_weight:g}" if loss.r1_weight else "") + " |")
    if hasattr(objective, "describe"):  # a game that is not the GAN's (the VAE) says what it is
        loss_row = f"| objective | {objective.describe()} |"
    lines += [loss_row,
              f"| optimizer | {train.optimizer}, lr G {train.g_lr:g} / D {train.d_lr:g}"
              + (f", momentum {train.momentum:g}" if train.optimizer == "sgd" else
                 f", betas {tuple(train.betas)}") + " |",
              f"| schedule | {step} steps"
              + (f" of k = {train.d_steps} D steps + 1 G step" if objective.discriminator
                 is not None else "") + f", batch {train.batch_size}"
              + (f" per process x {processes} processes" if processes > 1 else "")
              + f", seed {config.seed} |",
              f"| precision | {precision or train.precision}"
              + (" (train.precision=auto)" if train.precision == "auto" else "") + " |",
              f"| wall time | {elapsed:.1f} s ({step / max(elapsed, 1e-9):.1f} steps/s) |", ""]
    training = [r for r in records if "d_loss" in r or "g_loss" in r]
    if training:
        lines += ["## Final logged values", "", "| metric | value |", "|---|---|"]
        lines += [f"| {key} | {value:.4g} |" for key, value in training[-1].items()
                  if key not in ("step", "time")]
        lines.append("")
        plot_training_curves(training, run_dir / "curves.png")
        lines += ["## Training curves", "", "![curves](curves.png)", ""]
    evaluations = [r for r in records if any("/" in key for key in r)]
    if evaluations:
        plot_metric_curves(evaluations, run_dir / "metrics.png")
        keys = sorted({k for r in evaluations for k in r if "/" in k})
        lines += ["## Metrics during training", "", "| step | seconds | " +
                  " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
        lines += [f"| {r['step']} | {r['time']:.0f} | " +
                  " | ".join(f"{r[k]:.4g}" if k in r else "" for k in keys) + " |"
                  for r in evaluations]
        lines += ["", "![metrics over step and wall-clock time](metrics.png)", ""]
    if data.kind == "points" and data.shape[0] == 1:
        summary = toy_summary(objective, data)
        source = "KDE for p_g" if known_density(objective.sampler) is None else "p_g exact"
        lines += [f"## p_g against p_data (20,000 samples, {source})", "",
                  "| | data | generated |", "|---|---|---|",
                  f"| mean | {summary['data_mean']:.3f} | {summary['sample_mean']:.3f} |",
                  f"| std | {summary['data_std']:.3f} | {summary['sample_std']:.3f} |", ""]
        if "jsd" in summary:
            lines += [f"KL(p_data‖p_g) = {summary['kl_data_g']:.4f}, "
                      f"KL(p_g‖p_data) = {summary['kl_g_data']:.4f}, "
                      f"JSD = {summary['jsd']:.4f} nats (log 2 = 0.6931 is the maximum).", ""]
        else:
            lines += ["Every generated sample is the same point: p_g has collapsed.", ""]
    lines += ["## Samples at fixed noise", ""]
    for name, path in figures.items():
        lines.append(f"![{name}]({path.name})")
    lines += ["", "Snapshots over training are in `samples/`."]
    path = run_dir / REPORT_FILE
    path.write_text("\n".join(lines) + "\n")
    return path
