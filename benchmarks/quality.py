"""Train a preset and measure it at fixed wall-clock points: quality against time.

    python benchmarks/quality.py mnist-mlp --minutes 10
    python benchmarks/quality.py mnist-dcgan --minutes 20 --every 2 train.threads=1

Evaluation time is not counted as training time. `--steps N` sets train.steps, so that a
learning-rate decay (train.lr_decay_from) falls over N steps; training stops at N steps if the
time is not up first. Metrics, reference, extractor and n are the data's default protocol
(`gankit.eval.evaluate.PROTOCOLS`) unless given. Prints a table and writes JSON (default
runs/quality/<preset>.json); the run folder is runs/quality/<preset>/.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from gankit.config import apply_overrides, load_config, validate
from gankit.data import build_dataset
from gankit.errors import GankitError
from gankit.eval.evaluate import PROTOCOLS
from gankit.train.loop import Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset")
    parser.add_argument("overrides", nargs="*", help="dotted overrides such as train.threads=1")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--every", type=float, default=1.0, help="minutes between evaluations")
    parser.add_argument("--steps", type=int, default=None,
                        help="train.steps for a learning-rate schedule (train.lr_decay_from) "
                             "to fall over; training still stops at --minutes, or at these steps")
    parser.add_argument("--metrics", default=None, help="comma-separated (default: protocol)")
    parser.add_argument("-n", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path("runs/quality"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--data-root", default=None)
    args = parser.parse_intermixed_args()
    for name in ("minutes", "every", "steps", "n"):
        value = getattr(args, name)
        if value is not None and not value > 0:
            parser.error(f"argument --{name}: {value} must be > 0")

    # Without --steps, train for as long as the budget allows: the preset's own step count is
    # not the limit.
    # log.eval_every > 0 makes the Trainer check the evaluation request when it is built, not
    # at the first wall-clock point; the evaluations themselves are run from here.
    overrides = {"train.steps": args.steps or 10**9, "log.progress": False,
                 "log.sample_every": 10**9, "log.checkpoint_every": 10**9,
                 "log.eval_every": 10**9}
    if args.metrics:
        overrides["log.eval_metrics"] = args.metrics.split(",")
    if args.n:
        overrides["log.eval_n"] = args.n
    try:
        config = validate(apply_overrides(load_config(args.preset, args.overrides), overrides))
        if config.data.name not in PROTOCOLS:
            raise GankitError(f"{args.preset}: gankit has no evaluation protocol for "
                              f"{config.data.name!r} data, so nothing to measure over time")
        data = build_dataset(config.data, args.data_root)
        trainer = Trainer(config, args.out / args.preset, data, data_root=args.data_root)
    except GankitError as error:
        parser.error(str(error))
    _, reference, features, n = PROTOCOLS[config.data.name]
    n = args.n or n
    rows, trained = [], 0.0
    next_point = min(args.every, args.minutes) * 60
    while trained < args.minutes * 60 - 1e-9:
        started = time.perf_counter()
        while (time.perf_counter() - started < next_point - trained
               and trainer.step < config.train.steps):
            trainer.train_step()
            trainer.step += 1
        trained += time.perf_counter() - started
        trainer.elapsed = trained  # evaluation time is not training time
        results = trainer.evaluate()  # also logged to the run's metrics.jsonl
        rows.append({"minutes": round(trained / 60, 2), "step": trainer.step, **results})
        print(json.dumps(rows[-1]), flush=True)
        if trainer.step >= config.train.steps:
            break
        next_point = min(next_point + args.every * 60, args.minutes * 60)
    trainer.save()

    keys = [k for k in rows[0] if k not in ("minutes", "step")]
    print(f"\n{args.preset}: extractor {features or '-'}, n = {n}, reference {reference or '-'}")
    print("| minutes | step | " + " | ".join(keys) + " |")
    print("|---|---|" + "---|" * len(keys))
    for row in rows:
        print(f"| {row['minutes']} | {row['step']} | "
              + " | ".join(f"{row[k]:.4g}" for k in keys) + " |")
    target = args.json or args.out / f"{args.preset}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"preset": args.preset, "features": features, "n": n,
                                  "reference": reference, "torch": torch.__version__,
                                  "machine": platform.machine(), "rows": rows}, indent=2))
    print(f"wrote {target}")
    print(f"wrote {plot_folder(target.parent)}")


def plot_folder(folder: Path) -> Path:
    """quality.png: each metric against training minutes, one line per <preset>.json in folder
    (so presets measured one after another, or side by side, land in one figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]
    results = [r for r in results if r.get("rows")]
    metrics = sorted({k for r in results for k in r["rows"][0] if k not in ("minutes", "step")})
    # Images: FID, precision and recall; other data (the toys): whatever the protocol measured.
    keys = [k for k in metrics if k.split("/")[0] in ("fid", "precision", "recall")] or metrics
    figure, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.6), squeeze=False)
    for axis, key in zip(axes[0], keys, strict=True):
        for result in results:
            rows = [row for row in result["rows"] if key in row]
            axis.plot([row["minutes"] for row in rows], [row[key] for row in rows], "o-",
                      label=result["preset"])
        axis.set(xlabel="training minutes", title=key)
        axis.grid(alpha=0.3)
        if key.startswith("fid"):
            axis.set_yscale("log")
    axes[0][0].legend()
    figure.tight_layout()
    target = folder / "quality.png"
    figure.savefig(target, dpi=100)
    plt.close(figure)
    return target


if __name__ == "__main__":
    main()
