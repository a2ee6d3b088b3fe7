"""Where a trained run's mode metrics lose: bridges on the 2D toys, digit balance on Stacked MNIST.

    python benchmarks/mode_balance.py runs/bench/toy-grid runs/stacked-mnist

For a 2D toy run: PacGAN's high-quality share on 2,500 samples (seed 0, as benchmarks/presets.py)
and 20,000 (seed 1), the median distance to the nearest centre in units of sigma (1.18 for the
data itself) and the share of samples more than 6 sigma from every centre (on bridges).
For a Stacked MNIST run (26,000 samples, seed 0): modes and KL to uniform, each channel's digit
frequencies and KL to uniform, and what is left of the total once the channels' KLs are taken
out (dependence between channels plus the histogram's noise, about 0.019). Prints one JSON line
per run and writes them all to a JSON file (default runs/bench/mode_balance.json).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import gankit
from gankit.data import build_dataset
from gankit.errors import GankitError
from gankit.eval.features import load_extractor
from gankit.eval.modes import (
    MNIST_CLASSES,
    kl_to_uniform,
    mode_metrics,
    stacked_mnist_counts,
    stacked_mnist_digits,
)


def toy_row(model, data) -> dict:
    distribution = data.distribution
    means = torch.as_tensor(distribution.means, dtype=torch.float64)
    row = {}
    for n, seed in [(2500, 0), (20000, 1)]:
        samples = model.sample(n, seed=seed).double()
        row[f"high_quality_n{n}"] = round(
            100 * mode_metrics(samples, means, distribution.std)["high_quality"], 1)
    # The 20,000-sample draw: how far samples sit from their nearest centre.
    distance = torch.cdist(samples, means).min(dim=1).values / distribution.std
    row["median_distance_sigmas"] = round(float(distance.median()), 2)
    row["beyond_6_sigma_percent"] = round(100 * float((distance > 6).double().mean()), 2)
    return row


def stacked_row(model) -> dict:
    # Classify once: the total and the channels' frequencies come from the same digits.
    digits = stacked_mnist_digits(model.sample(26000, seed=0), load_extractor("mnist").logits)
    counts = stacked_mnist_counts(digits)
    total_kl = kl_to_uniform(counts)
    row = {"modes": int((counts > 0).sum()), "reverse_kl": round(total_kl, 4)}
    channel_kls = []
    for channel in range(3):
        channel_counts = torch.bincount(digits[:, channel], minlength=MNIST_CLASSES)
        channel_kls.append(kl_to_uniform(channel_counts))
        row[f"channel{channel}_digit_percent"] = [
            round(100 * float(c) / len(digits), 1) for c in channel_counts]
    row["channel_kls"] = [round(k, 4) for k in channel_kls]
    row["remainder_kl"] = round(total_kl - sum(channel_kls), 4)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--json", type=Path, default=Path("runs/bench/mode_balance.json"))
    args = parser.parse_args()
    rows = []
    for run in args.runs:
        try:
            model = gankit.load(run)
        except GankitError as error:  # one line, not a traceback
            raise SystemExit(str(error)) from None
        data = build_dataset(model.config.data, args.data_root)
        if data.kind == "points" and data.shape[0] == 2:
            row = toy_row(model, data)
        elif model.config.data.name == "stacked-mnist":
            row = stacked_row(model)
        else:
            raise SystemExit(f"{run}: not a 2D toy or Stacked MNIST run ({model.config.data.name})")
        rows.append({"run": str(run), "step": model.step, **row})
        print(json.dumps(rows[-1]))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
