"""Train shipped presets end to end and print what each one reached, with its wall time.

    python benchmarks/presets.py toy-gaussian toy-ring toy-grid digits-mlp mnist-mlp

Writes one run folder per preset under --out (default runs/bench/) and a JSON file with the
table (default runs/bench/presets.json). Numbers per data kind:
- 1D toy: mean and std of 20,000 samples (the data is N(5, 1)), and the exact KL/JSD of the
  report (KDE of the samples against the known density);
- 2D toy: PacGAN's mode metrics on 2,500 samples (modes captured, % high quality, reverse KL);
- images: the run's wall time and steps/s (image quality metrics are `gankit eval`'s job).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

import gankit
from gankit.config import load_config
from gankit.data import build_dataset
from gankit.errors import GankitError
from gankit.eval.modes import mode_metrics
from gankit.train.checkpoint import load_checkpoint
from gankit.train.report import toy_summary


def measure(preset: str, out: Path, data_root: str | None) -> dict:
    started = time.perf_counter()
    run = gankit.train(preset, out=out / preset, data_root=data_root, progress=False)
    total = time.perf_counter() - started
    model = gankit.load(run)
    _, state, _ = load_checkpoint(run)
    row = {"preset": preset, "run": str(run), "steps": state["step"],
           "train_seconds": round(state["elapsed"], 1), "total_seconds": round(total, 1),
           "steps_per_second": round(state["step"] / state["elapsed"], 1)}
    data = build_dataset(model.config.data, data_root)
    if data.kind == "points" and data.shape[0] == 1:
        summary = toy_summary(model.objective, data)
        row.update({k: round(v, 4) for k, v in summary.items()})
    elif data.kind == "points":
        samples = model.sample(2500, seed=0)
        distribution = data.distribution
        metrics = mode_metrics(samples, distribution.means, distribution.std)
        row.update(modes=f"{metrics['modes']}/{metrics['n_modes']}",
                   high_quality=round(100 * metrics["high_quality"], 1),
                   reverse_kl=round(metrics["reverse_kl"], 4))
    row["picture"] = str(run / f"{'samples' if data.kind == 'images' else _toy_name(data)}.png")
    return row


def _toy_name(data) -> str:
    return "density" if data.shape[0] == 1 else "scatter"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("presets", nargs="+")
    parser.add_argument("--out", type=Path, default=Path("runs/bench"))
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    for preset in args.presets:  # all names checked before the first one trains
        try:
            load_config(preset)
        except GankitError as error:
            parser.error(str(error))
    rows = [measure(preset, args.out, args.data_root) for preset in args.presets]
    keys = ["preset", "steps", "train_seconds", "steps_per_second", "sample_mean",
            "sample_std", "jsd", "modes", "high_quality", "reverse_kl"]
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(row.get(key, "")) for key in keys) + " |")
    target = args.json or args.out / "presets.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"machine": platform.machine(), "torch": torch.__version__,
                                  "threads": torch.get_num_threads(), "rows": rows}, indent=2))
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
