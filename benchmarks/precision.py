"""Does bf16 cost quality? The same preset at equal steps in fp32 and bf16, over several seeds.

    python benchmarks/precision.py mnist-dcgan --steps 6000 --seeds 0,1,2 --jobs 2

Each (precision, seed) pair trains `--steps` steps of the preset on `--threads` threads (runs
go `--jobs` at a time, each in its own process) and is measured with the data's protocol
extractor (FID, precision and recall of the EMA generator, n = 10,000 against the test split).
The table gives each run and, per precision, the mean and standard deviation over the seeds: bf16
costs nothing measurable when its mean lies within fp32's run-to-run spread. Writes JSON
(default runs/bench/precision.json) and keeps the run folders under --out.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from gankit.config import load_config
from gankit.errors import GankitError
from gankit.eval.evaluate import run_protocol

PRECISIONS = ("fp32", "bf16")


def train_and_measure(preset: str, precision: str, seed: int, steps: int, threads: int,
                      n: int | None, out: Path, data_root: str | None) -> dict:
    """One run: train, then FID/precision/recall of its EMA generator (the data's protocol)."""
    import gankit
    from gankit.eval.evaluate import evaluate

    started = time.perf_counter()
    run = gankit.train(preset, out=out / f"{preset}-{precision}-seed{seed}", data_root=data_root,
                       progress=False, overrides=[
                           f"train.precision={precision}", f"seed={seed}",
                           f"train.steps={steps}", f"train.threads={threads}",
                           "log.sample_every=1000000", "log.tensorboard=false"])
    seconds = time.perf_counter() - started
    model = gankit.load(run)
    _, reference, features, protocol_n = run_protocol(model.config.data.name)
    results = evaluate(run, reference, metrics=["fid", "pr"], features=features,
                       n=n or protocol_n,
                       data_root=data_root)
    short = {key.split("/")[0]: value for key, value in results.items()}
    return {"precision": precision, "seed": seed, "steps": steps,
            "train_seconds": round(seconds, 1),
            "fid": round(short["fid"], 2), "precision_pr": round(short["precision"], 4),
            "recall": round(short["recall"], 4), "metric_keys": sorted(results), "run": str(run)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated run seeds")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once")
    parser.add_argument("-n", type=int, default=None, help="samples (default: the protocol's)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/precision"))
    parser.add_argument("--json", type=Path, default=Path("runs/bench/precision.json"))
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()
    for name in ("steps", "threads", "jobs", "n"):
        value = getattr(args, name)
        if value is not None and value < (2 if name == "n" else 1):
            parser.error(f"argument {'-' if name == 'n' else '--'}{name}: {value} is too small")
    try:
        data_name = load_config(args.preset).data.name
    except GankitError as error:
        parser.error(str(error))
    if "fid" not in run_protocol(data_name)[0]:
        parser.error(f"{args.preset}: gankit measures no FID on {data_name!r} data")
    try:
        seeds = [int(seed) for seed in args.seeds.split(",")]
    except ValueError:
        parser.error(f"argument --seeds: {args.seeds!r} is not a comma-separated list of integers")
    if not _native_bf16():
        print("note: this CPU has no bf16 units; bf16 is emulated and runs many times slower")
    jobs = [(args.preset, precision, seed, args.steps, args.threads, args.n, args.out,
             args.data_root)
            for seed in seeds for precision in PRECISIONS]
    # spawn: each run gets a fresh interpreter (torch's thread pools do not survive a fork).
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        rows = list(pool.map(train_and_measure, *zip(*jobs, strict=True)))

    print(f"{args.preset}, {args.steps} steps, {args.threads} thread(s) per run; "
          f"{rows[0]['metric_keys'][0].split('/', 1)[1]}")
    print("| precision | seed | train s | FID | precision | recall |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['precision']} | {row['seed']} | {row['train_seconds']} | {row['fid']} | "
              f"{row['precision_pr']} | {row['recall']} |")
    summary = {}
    for precision in PRECISIONS:
        fids = [row["fid"] for row in rows if row["precision"] == precision]
        summary[precision] = {"fid_mean": round(statistics.mean(fids), 2),
                              "fid_std": round(statistics.stdev(fids), 2) if len(fids) > 1
                              else None}
        print(f"{precision}: FID mean {summary[precision]['fid_mean']}, "
              f"std {summary[precision]['fid_std']} over {len(fids)} seeds")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "preset": args.preset, "steps": args.steps, "torch": torch.__version__,
        "machine": platform.machine(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "rows": rows, "summary": summary}, indent=2) + "\n")
    print(f"wrote {args.json}")


def _native_bf16() -> bool:
    from gankit.device import native_bf16

    return native_bf16(torch.device("cpu"))


if __name__ == "__main__":
    main()
