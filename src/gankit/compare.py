"""`gankit compare`: real images beside the samples of several runs, and their numbers.

The lecture's "MNIST: Image Generation" figure: (a) real digits, (b) VAE samples, (c) GAN
samples, side by side; here one panel per run after the real one. Every run is measured the
same way (`gankit.eval.evaluate` with the data's feature extractor, the same reference and the
same n), so the table's numbers are comparable, and its header says how they were measured.
"""

from __future__ import annotations

import json
import string
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from gankit.errors import GankitError

FIGURE_FILE = "compare.png"
REPORT_FILE = "report.md"
RESULTS_FILE = "results.json"
METRICS = ("fid", "pr")
SAMPLES_SHOWN = 64  # images per panel (an 8 x 8 grid)


def compare(runs: Sequence[str | Path], out: str | Path, n: int = 10000,
            reference: Any = None, data_root: str | Path | None = None, *,
            features: str | None = None, seed: int = 0,
            cache_dir: str | Path | None = None) -> Path:
    """Draw real images beside each run's samples and measure FID, precision and recall.

    Args:
        runs: run folders trained on the same dataset (e.g. a VAE and a GAN on MNIST).
        out: the folder to write compare.png, report.md and results.json into (created).
        n: samples per run for the metrics (and reference images drawn from a dataset).
        reference: the real images: a dataset with split ("mnist:test"), an image folder or a
            tensor in [-1, 1]; default: the protocol of the runs' data (mnist:test for MNIST),
            else its test split.
        data_root: where datasets live.
        features: the feature extractor; default: the one of the runs' data ("mnist" for
            MNIST). With none known (e.g. 8x8 digits), the figure is drawn and no metric is.
        seed: seed of the noise of every run (panels and metrics) and of the reference subset.
        cache_dir: where reference features are cached (default ~/.cache/gankit/features).

    Returns:
        The folder written.

    Raises:
        GankitError: one line naming the folder when a folder is not a run, when the runs were
            trained on different datasets, or when a run does not make images.
    """
    from gankit.api import load
    from gankit.eval.evaluate import PROTOCOLS, evaluate

    if not runs:
        raise GankitError("compare needs at least one run folder")
    models = [_load_run(Path(run), load, data_root) for run in runs]
    data_name = models[0].config.data.name
    for run, model in zip(runs, models, strict=True):
        if _data_label(model.config) != _data_label(models[0].config):
            raise GankitError(f"{run}: trained on {_data_label(model.config)}, but {runs[0]} on "
                              f"{_data_label(models[0].config)}; compare runs on the same data")
    protocol = PROTOCOLS.get(data_name, ((), None, None, 0))
    if reference is None and data_name == "folder":
        # A folder run's real images are its training folder, cropped and resized as trained.
        from gankit.data import build_dataset

        real = build_dataset(models[0].config.data, data_root)
        reference = real.first(len(real))
        reference_name = f"{_data_label(models[0].config)} ({len(real)} images)"
    else:
        if reference is None:
            reference = protocol[1] or f"{data_name}:test"
        reference_name = _reference_name(reference)
    features = features or protocol[2]

    panels = [(f"real: {reference_name}", _reference_images(reference, data_root))]
    for model in models:
        samples = model.sample(SAMPLES_SHOWN, seed=seed)
        panels.append((f"{model.config.name} ({model.config.model.objective}, "
                       f"step {model.step:,})",
                       _crop_padding(samples, model.config)))

    # Data whose protocol has no FID (Stacked MNIST's three-channel digits: modes and KL, each
    # channel classified) is compared by its own protocol's metrics.
    metrics = protocol[0] if protocol[0] and "fid" not in protocol[0] else METRICS
    rows = []
    for run, model in zip(runs, models, strict=True):
        results = {}
        if features is not None or metrics == ("multimodal",):  # paired runs: no extractor
            results = evaluate(model, reference, metrics, features=features, n=n, seed=seed,
                               data_root=data_root, cache_dir=cache_dir)
        rows.append({"run": str(run), "name": model.config.name,
                     "objective": model.config.model.objective, "step": model.step,
                     "metrics": {key: float(value) for key, value in results.items()}})
    header_keys = list(rows[0]["metrics"])

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    draw_panels(panels, out / FIGURE_FILE)
    summary = {"data": _data_label(models[0].config), "reference": reference_name,
               "features": features, "metrics": list(metrics), "n": n, "seed": seed,
               "runs": rows}
    (out / RESULTS_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    (out / REPORT_FILE).write_text(_report(summary, header_keys, models))
    return out


def draw_panels(panels: Sequence[tuple[str, torch.Tensor]], path: Path) -> Path:
    """One row of image grids, lettered (a), (b), ... with their titles.

    Args:
        panels: (title, images in [-1, 1] as N x C x H x W) per panel.
        path: the PNG to write.

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")  # no screen: render to files only
    import matplotlib.pyplot as plt

    from gankit.viz.grid import image_grid

    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.6), squeeze=False)
    try:
        for index, (title, images) in enumerate(panels):
            axis, letter = axes[0][index], string.ascii_lowercase[index % 26]
            grid = image_grid(images, nrow=8, min_size=28).permute(1, 2, 0).numpy()
            if grid.shape[2] == 1:
                axis.imshow(grid[:, :, 0], cmap="gray", vmin=0, vmax=255,
                            interpolation="nearest")
            else:
                axis.imshow(grid, interpolation="nearest")
            axis.set_title(f"({letter}) {title}", fontsize=11)
            axis.axis("off")
        figure.tight_layout()
        figure.savefig(path, dpi=100)
    finally:
        plt.close(figure)
    return path


def _load_run(path: Path, load, data_root):
    """The trained model of a run folder, or one line saying the folder is not a run."""
    from gankit.data.toy import TOY_DATASETS

    if not path.is_dir():
        raise GankitError(f"{path}: no such run folder")
    try:
        model = load(path, data_root=data_root)
    except GankitError as error:
        raise GankitError(f"{path} is not a run folder ({error})") from None
    if model.config.data.name in TOY_DATASETS:
        raise GankitError(f"{path}: compare needs image runs; {model.config.name} was trained "
                          f"on {model.config.data.name} points")
    return model


def _crop_padding(samples: torch.Tensor, config) -> torch.Tensor:
    """Samples at the dataset's own size (runs trained on padded images make padded ones)."""
    pad = getattr(config.data, "pad", 0)
    return samples[..., pad:samples.shape[-2] - pad, pad:samples.shape[-1] - pad]


def _data_label(config) -> str:
    """The data a run was trained on: its dataset name, and a folder's path."""
    data = config.data
    return f"folder {data.path}" if data.name == "folder" else data.name


def _reference_name(reference: Any) -> str:
    if isinstance(reference, torch.Tensor):
        return f"a tensor of {len(reference)} images"
    return str(reference)


def _reference_images(reference: Any, data_root) -> torch.Tensor:
    """The first SAMPLES_SHOWN images of the reference, in [-1, 1]."""
    from gankit.config import DataConfig
    from gankit.data import build_dataset
    from gankit.eval.evaluate import image_files, read_image_folder

    if isinstance(reference, torch.Tensor):
        return reference[:SAMPLES_SHOWN].float()
    if isinstance(reference, Path) or ":" not in str(reference):
        folder = Path(reference)
        if not folder.is_dir():
            raise GankitError(f"reference {reference}: not a folder of images nor a dataset "
                              "with its split (e.g. mnist:test)")
        # A folder of fewer images shows them all; an empty one is refused by name.
        return read_image_folder(folder, min(len(image_files(folder)), SAMPLES_SHOWN) or None)
    name, _, split = str(reference).partition(":")
    try:
        data = build_dataset(DataConfig(name=name, split=split or "test"), data_root)
    except ValueError:
        raise GankitError(f"unknown reference dataset {name!r} (as in mnist:test)") from None
    if getattr(data, "kind", None) != "images":
        raise GankitError(f"reference {reference!r} is not an image dataset")
    return data.first(SAMPLES_SHOWN)


def _report(summary: dict, header_keys: list[str], models) -> str:
    lines = [f"# Comparison on {summary['data']}", "",
             f"![real images beside each run's samples]({FIGURE_FILE})", "",
             f"Panel (a): the first {SAMPLES_SHOWN} images of {summary['reference']}; then "
             f"{SAMPLES_SHOWN} samples of each run at noise seed {summary['seed']}.", ""]
    if header_keys:
        against = (f"against {summary['reference']} ({summary['n']:,} images)"
                   if "fid" in summary["metrics"]
                   else f"by the {summary['data']} protocol, which needs no reference images")
        measured = (f"Metrics: {summary['n']:,} samples per run {against}, features of the "
                    f"{summary['features']} extractor; the keys name the extractor's weights "
                    "and n." if summary["features"] is not None else
                    f"Metrics: each run's outputs for the first {summary['n']:,} inputs of "
                    f"{summary['data']}:test, several noise draws each (`gankit eval`'s "
                    "multimodal measure); the keys name n and the draws.")
        lines += [measured, "",
                  "| run | objective | step | " + " | ".join(header_keys) + " |",
                  "|---|---|---|" + "---|" * len(header_keys)]
        for row in summary["runs"]:
            values = [f"{row['metrics'][key]:.4g}" if key in row["metrics"] else ""
                      for key in header_keys]
            lines.append(f"| {row['name']} | {row['objective']} | {row['step']:,} | "
                         + " | ".join(values) + " |")
    else:
        lines.append(f"No metrics: gankit has no feature extractor for {summary['data']} "
                     "images (pass features= to name one).")
    lines += ["", "## Runs", ""]
    for row, model in zip(summary["runs"], models, strict=True):
        description = model.config.description or "(no description)"
        lines.append(f"- `{row['run']}`: {row['name']}, step {row['step']:,}: {description}")
    return "\n".join(lines) + "\n"
