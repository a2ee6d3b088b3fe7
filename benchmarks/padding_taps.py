"""How much of a DCGAN step's counted FLOPs fall on zero padding, and what that does to the
throughput ceiling.

    python benchmarks/padding_taps.py
    python benchmarks/padding_taps.py --throughput runs/bench/throughput-amd-wg-*.json

A 4x4 stride-2 conv with padding 1 puts some of its taps on the padding: 23% of them onto a 4x4
map, 12% onto 8x8, 14% onto 7x7. `torch.utils.flop_counter` counts them all, but oneDNN skips
them. This script shows both:
- for each stride-2 layer of mnist-dcgan and the 64-px DCGAN (benchmarks/strided_layers.py's
  list), the forward with padding=1 against the same result computed with every tap (a Conv on
  the map padded beforehand, a ConvT uncropped), timed in alternating pairs, next to the share
  of taps inside the map;
- for benchmarks/throughput.py's DCGAN cases, the FLOPs of gankit's step and of the plain step,
  counted and counting only the taps inside the maps (flop_counter's count per layer times that
  layer's share);
- with --throughput, for each of those runs' DCGAN rows, the speed-up gankit's step would reach
  at the run's full bf16 matmul peak (counting every tap, and only the inside ones), the share of
  that peak the target needs and the share it ran at.
Writes JSON (default runs/bench/padding_taps.json).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from strided_layers import DTYPES, LAYERS, layer_inputs, layer_name
from throughput import DEFAULT_LEVERS, PlainStep, build_case, positive_int
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from gankit.errors import GankitError
from gankit.train.allocator import keep_freed_memory

CASES = {"mnist-dcgan": 2.0, "dcgan-64": 2.5}  # the throughput cases with stride-2 layers: target


def inside_share(large_side: int) -> float:
    """The share of a 4x4 stride-2 padding-1 conv's taps that land inside a square map of
    `large_side` (counted, not derived, so odd sides come out right too)."""
    ones = torch.ones(1, 1, large_side, large_side)
    inside = F.conv2d(ones, torch.ones(1, 1, 4, 4), stride=2, padding=1).sum().item()
    return inside / ((large_side // 2) ** 2 * 16)


def paired_ms(first, second, pairs: int) -> tuple[float, float]:
    """Median ms of two computations timed in alternating pairs (a busy spell hits both)."""
    for run in (first, second):
        run()  # oneDNN builds its kernel on the first call
    times = ([], [])
    for index in range(pairs):
        order = (0, 1) if index % 2 == 0 else (1, 0)
        for which in order:
            started = time.perf_counter()
            (first, second)[which]()
            times[which].append((time.perf_counter() - started) * 1000)
    return statistics.median(times[0]), statistics.median(times[1])


def time_layer(transposed: bool, c_in: int, c_out: int, side: int, batch: int,
               dtype: torch.dtype, pairs: int) -> dict:
    x, weight = layer_inputs(transposed, c_in, c_out, side, batch, dtype)
    if transposed:
        def padded():
            return F.conv_transpose2d(x, weight, stride=2, padding=1)

        def every_tap():  # padding=0 gives the full (2 side + 2)^2 map; padding=1 its middle
            return F.conv_transpose2d(x, weight, stride=2)[:, :, 1:-1, 1:-1]
    else:
        x_padded = F.pad(x, (1, 1, 1, 1)).contiguous(memory_format=torch.channels_last)

        def padded():
            return F.conv2d(x, weight, stride=2, padding=1)

        def every_tap():
            return F.conv2d(x_padded, weight, stride=2)
    expected = padded()
    torch.testing.assert_close(every_tap(), expected, rtol=0.05,
                               atol=0.05 * expected.abs().max().item())
    padded_ms, every_tap_ms = paired_ms(padded, every_tap, pairs)
    return {"layer": layer_name(transposed, c_in, c_out, side), "padding_ms": round(padded_ms, 3),
            "every_tap_ms": round(every_tap_ms, 3),
            "time_ratio": round(padded_ms / every_tap_ms, 3),
            "inside_share": round(inside_share(2 * side if transposed else side), 3)}


def layer_shares(net: nn.Module, prefix: str, shares: dict[str, float]):
    """Hooks that record, for each stride-2 padding-1 conv of `net`, its taps' inside share
    under flop_counter's module name (`prefix`.name)."""
    handles = []
    for name, module in net.named_modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            def record(module, inputs, output, key=f"{prefix}.{name}"):
                strided = module.stride == (2, 2) and module.padding == (1, 1)
                large = max(inputs[0].shape[-1], output.shape[-1])
                shares[key] = inside_share(large) if strided else 1.0
            handles.append(module.register_forward_hook(record))
    return handles


def count_flops(step, shares: dict[str, float]) -> dict:
    """GFLOP of one call of `step`: as flop_counter counts them, and only the taps inside."""
    with FlopCounterMode(display=False) as counter:
        step()
    total = counter.get_total_flops()
    off_map = sum(sum(ops.values()) * (1 - shares[module])
                  for module, ops in counter.get_flop_counts().items() if module in shares)
    return {"counted_gflop": round(total / 1e9, 2),
            "inside_gflop": round((total - off_map) / 1e9, 2)}


def case_flops(name: str, batch: int, threads: int, data_root) -> dict:
    """Both steps' FLOPs for a throughput case. gankit's nets compute some layers as products
    (same module names), so the plain step's reference nets give each layer's share."""
    trainer, _ = build_case(name, DEFAULT_LEVERS, data_root, batch, threads)
    plain = PlainStep(trainer)
    shares: dict[str, float] = {}
    handles = [handle for net in (plain.netG, plain.netD)
               for handle in layer_shares(net, type(net).__name__, shares)]
    plain()
    for handle in handles:
        handle.remove()
    trainer.train_step()  # warm-up outside the count
    return {"case": name, "plain": count_flops(plain, shares),
            "gankit": count_flops(trainer.train_step, shares)}


def ceilings(run: dict, flops: dict[str, dict]) -> list[dict]:
    """For a throughput.py JSON, each DCGAN row's ceiling at the run's bf16 peak, counted and
    inside, the peak share the target needs and the share measured (both inside)."""
    peak = run["matmul_peak_gflop_s"]["bf16"]
    rows = []
    for row in run["rows"]:
        if row["case"] not in flops or row["precision"] != "bf16":
            continue
        batch, gankit = row["batch"], flops[row["case"]]["gankit"]
        plain_s, gankit_s = batch / row["plain_img_s"], batch / row["gankit_img_s"]
        target = CASES[row["case"]]
        rows.append({
            "case": row["case"], "speedup": row["speedup"], "bf16_peak": peak,
            "ceiling_counted": round(plain_s * peak / gankit["counted_gflop"], 2),
            "ceiling_inside": round(plain_s * peak / gankit["inside_gflop"], 2),
            "share_needed_inside": round(gankit["inside_gflop"] * target / plain_s / peak, 2),
            "share_measured_inside": round(gankit["inside_gflop"] / gankit_s / peak, 2)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--threads", type=positive_int, default=2)
    parser.add_argument("--pairs", type=positive_int, default=20)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--throughput", type=Path, nargs="*", default=[],
                        help="benchmarks/throughput.py JSON files to compute ceilings for")
    parser.add_argument("--json", type=Path, default=Path("runs/bench/padding_taps.json"))
    args = parser.parse_args()
    runs = []
    for path in args.throughput:
        try:
            runs.append((path, json.loads(path.read_text())))
        except (OSError, ValueError) as error:
            parser.error(f"--throughput {path}: {error}")
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as in training (gankit.train.allocator)
    layers = [time_layer(*layer, args.batch_size, DTYPES[args.dtype], args.pairs)
              for layer in LAYERS]
    print(f"{args.dtype}, batch {args.batch_size}, {args.threads} threads; median ms of the "
          f"forward over {args.pairs} pairs")
    print("| layer | padding=1 | every tap | time ratio | taps inside |")
    print("|---|---|---|---|---|")
    for row in layers:
        print(f"| {row['layer']} | {row['padding_ms']:.2f} | {row['every_tap_ms']:.2f} | "
              f"{row['time_ratio']:.3f} | {row['inside_share']:.3f} |")
    try:
        flops = {name: case_flops(name, args.batch_size, args.threads, args.data_root)
                 for name in CASES}
    except GankitError as error:  # a missing dataset
        parser.error(str(error))
    print("\n| case | step | counted GFLOP | inside GFLOP |")
    print("|---|---|---|---|")
    for name, row in flops.items():
        for step in ("plain", "gankit"):
            print(f"| {name} | {step} | {row[step]['counted_gflop']} | "
                  f"{row[step]['inside_gflop']} |")
    ceiling_rows = []
    for path, run in runs:
        for row in ceilings(run, flops):
            ceiling_rows.append({"file": str(path), **row})
    if ceiling_rows:
        print("\n| file | case | speed-up | bf16 peak | ceiling counted | ceiling inside | "
              "peak share needed (inside) | measured (inside) |")
        print("|---|---|---|---|---|---|---|---|")
        for row in ceiling_rows:
            print(f"| {row['file']} | {row['case']} | {row['speedup']} | {row['bf16_peak']} | "
                  f"{row['ceiling_counted']} | {row['ceiling_inside']} | "
                  f"{row['share_needed_inside']} | {row['share_measured_inside']} |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"dtype": args.dtype, "batch": args.batch_size,
                                     "threads": args.threads, "layers": layers, "flops": flops,
                                     "ceilings": ceiling_rows}, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
