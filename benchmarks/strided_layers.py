"""DCGAN's stride-2 layers, one computation at a time: torch's kernels against matrix products.

    python benchmarks/strided_layers.py                 # bf16, batch 64, 2 threads
    python benchmarks/strided_layers.py --dtype fp32 --threads 1

For each layer of mnist-dcgan and of the 64-px DCGAN, the median milliseconds of its forward, its
input gradient and its weight gradient, computed by torch (oneDNN on a CPU) and as the products of
gankit.nets.strided (im2col windows and one matmul; for the scatter into one channel a product and
a fold, into 2-8 channels a sub-pixel conv). This is the measurement behind the products' domains
and behind their Plans on CPUs with and without AMX. Writes the table as JSON (default
runs/bench/strided_layers.json).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from gankit.nets import strided
from gankit.train.allocator import keep_freed_memory

# (transposed, in, out, side of the input map): mnist-dcgan's, then the 64-px DCGAN's.
LAYERS = [(True, 192, 96, 7), (True, 96, 1, 14), (False, 1, 32, 28), (False, 32, 64, 14),
          (True, 512, 256, 4), (True, 256, 128, 8), (True, 128, 64, 16), (True, 64, 3, 32),
          (False, 3, 64, 64), (False, 64, 128, 32), (False, 128, 256, 16), (False, 256, 512, 8)]
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


def median_ms(run, repeats: int) -> float:
    run()  # warm-up: oneDNN builds its kernel on the first call
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def layer_inputs(transposed: bool, c_in: int, c_out: int, side: int, batch: int,
                 dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """A random channels_last input of `side` x `side` and weight for one of LAYERS."""
    channels_last = torch.channels_last
    x = torch.randn(batch, c_in, side, side, dtype=dtype).contiguous(memory_format=channels_last)
    shape = (c_in, c_out, 4, 4) if transposed else (c_out, c_in, 4, 4)
    return x, torch.randn(*shape, dtype=dtype).contiguous(memory_format=channels_last)


def layer_name(transposed: bool, c_in: int, c_out: int, side: int) -> str:
    """ConvT(in -> out) from its input's side, Conv(in -> out) onto its output's."""
    return f"{'ConvT' if transposed else 'Conv'}({c_in} -> {c_out}) " + (
        f"from {side}x{side}" if transposed else f"onto {side // 2}x{side // 2}")


def time_layer(transposed: bool, c_in: int, c_out: int, side: int, batch: int, dtype,
               repeats: int) -> dict:
    channels_last = torch.channels_last
    x, weight = layer_inputs(transposed, c_in, c_out, side, batch, dtype)
    layer = F.conv_transpose2d if transposed else F.conv2d
    out = layer(x, weight, stride=2, padding=1)
    grad = torch.randn_like(out).contiguous(memory_format=channels_last)

    def torch_backward(mask):
        return lambda: torch.ops.aten.convolution_backward(
            grad, x, weight, None, [2, 2], [1, 1], [1, 1], transposed, [0, 0], 1, mask)

    torch_ms = [median_ms(lambda: layer(x, weight, stride=2, padding=1), repeats),
                median_ms(torch_backward([True, False, False]), repeats),
                median_ms(torch_backward([False, True, False]), repeats)]
    # The products, each with the windows it needs (their copy is part of the cost).
    if transposed:
        product_ms = [
            median_ms(lambda: strided._conv_transpose(x, weight, product=True), repeats),
            median_ms(lambda: strided.conv_product(grad, weight), repeats),
            median_ms(lambda: strided._weight_gradient(
                strided._rows(x), strided.patches(grad, side, side)), repeats)]
    else:
        half = side // 2
        product_ms = [
            median_ms(lambda: strided.conv_product(x, weight), repeats),
            median_ms(lambda: strided._conv_transpose(grad, weight, product=True), repeats),
            median_ms(lambda: strided._weight_gradient(
                strided._rows(grad), strided.patches(x, half, half)), repeats)]
    return {"layer": layer_name(transposed, c_in, c_out, side), "torch_ms": torch_ms,
            "product_ms": product_ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", type=Path, default=Path("runs/bench/strided_layers.json"))
    args = parser.parse_args()
    for name in ("batch_size", "threads", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"argument --{name.replace('_', '-')}: {getattr(args, name)} must be "
                         ">= 1")
    torch.set_num_threads(args.threads)
    # As in training (gankit.train.allocator): without it a buffer near glibc's 32 MiB mmap limit,
    # such as the windows of Conv(128 -> 256) onto 8x8 at batch 128, pays a page fault per 4 KiB
    # page on every call (12 ms against 2 ms for that copy).
    keep_freed_memory()
    rows = [time_layer(*layer, args.batch_size, DTYPES[args.dtype], args.repeats)
            for layer in LAYERS]
    print(f"{args.dtype}, batch {args.batch_size}, {args.threads} threads, AMX: "
          f"{strided.CPU_HAS_AMX}; median ms of forward / input gradient / weight gradient")
    print("| layer | torch | products |")
    print("|---|---|---|")
    for row in rows:
        print(f"| {row['layer']} | " + ", ".join(f"{v:.2f}" for v in row["torch_ms"]) + " | "
              + ", ".join(f"{v:.2f}" for v in row["product_ms"]) + " |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"dtype": args.dtype, "batch": args.batch_size,
                                     "threads": args.threads, "amx": strided.CPU_HAS_AMX,
                                     "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
