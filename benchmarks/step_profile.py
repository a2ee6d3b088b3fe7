"""Where gankit's training step spends its time, and what some of its reformulations save.

    python benchmarks/step_profile.py mnist-dcgan                      # the profile
    python benchmarks/step_profile.py mnist-dcgan faces-dcgan --fold-pairs 100
    python benchmarks/step_profile.py fashion-resnet --pool-pairs 100
    python benchmarks/step_profile.py dcgan-64 stacked-mnist --fold-pairs 20
    python benchmarks/step_profile.py mnist-dcgan --wgrad-domain-pairs 100
    python benchmarks/step_profile.py mnist-dcgan --levers train.precision=fp32 --bf16-only-pairs 60
    python benchmarks/step_profile.py mnist-dcgan --adam-pairs 100 --bias-pairs 100
    python benchmarks/step_profile.py mnist-dcgan --adam-direct-pairs 300

The step is benchmarks/throughput.py's (its default levers, no EMA, on the CPU). For each preset
(or throughput.py case: dcgan-64 is the 64-px DCGAN on random images) it prints what a step costs
with and without torch.profiler running, as median ms and minor page faults per step (a fault is a
fresh page's first touch: gankit keeps freed memory, see gankit.train.allocator, but under the
profiler some buffers come fresh each step), then the operations with the most time of their own
over --steps profiled steps, by input shape, in ms and calls per step. With --fold-pairs N the step
then runs N pairs of two steps, the thin layers' plans of gankit.nets.strided (the scatter into a
map of one channel as a product and a fold, into 2-8 channels as a sub-pixel conv) on in one and
off in the other, alternating which goes first, and prints each side's median and 10th percentile
ms per step and the median of the pairs' differences: a shared machine's slow spells then hit both
sides alike, where blocks timed one after the other differed by more than the fold saves. The other
pairings do the same for:
- --pool-pairs: the SN-ResNet D's avgpool folded into its conv's kernel
  (gankit.nets.resnet.PooledConv2d), on, or a conv and then the pool;
- --wgrad-domain-pairs: without AMX, the weight gradient's products from 2,048 in x out channels
  (strided.MIN_CHANNEL_PRODUCT_WEIGHT_GRADIENT), on, or from 8,192 as all three products start
  with AMX (a CPU with AMX never reads the constant, so both sides are the same there);
- --bf16-only-pairs: the products in bf16 only (strided.PRODUCT_DTYPES), on, or in any dtype;
  it matters with --levers train.precision=fp32;
- --adam-pairs: gankit's FusedAdam (flat views of channels_last weights), on, or torch's fused
  Adam, which copies each such gradient (gankit.train.optimizers);
- --adam-direct-pairs: FusedAdam's step calling the fused kernel directly once its state exists,
  on, or always through torch's step (its Python around the same kernel call);
- --bias-pairs: the strided layers' bias added in torch's conv kernel where that computes their
  forward (D's first conv on greyscale images), on, or in a separate pass after it.
--levers adds overrides to the benchmark's levers (throughput.DEFAULT_LEVERS), e.g.
train.precision=fp32. Writes JSON (default runs/bench/step_profile.json).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from pathlib import Path

import torch
from throughput import CASES, DEFAULT_LEVERS, build_case, build_trainer, positive_int
from torch.profiler import ProfilerActivity, profile

from gankit.config import load_config
from gankit.errors import GankitError
from gankit.nets import strided
from gankit.nets.resnet import PooledConv2d
from gankit.train.optimizers import FusedAdam


def step_costs(step, steps: int) -> dict:
    """Median ms and mean minor page faults per step over `steps` steps."""
    times, faults = [], []
    for _ in range(steps):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        started = time.perf_counter()
        step()
        times.append((time.perf_counter() - started) * 1000)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return {"median_ms": round(statistics.median(times), 2),
            "faults_per_step": round(statistics.mean(faults), 1)}


def top_operations(step, steps: int, rows: int) -> tuple[list[dict], dict]:
    """The `rows` operations with the most self CPU time over `steps` steps, per step, and
    those profiled steps' step_costs."""
    step()  # warm-up: oneDNN builds its kernels on the first call
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as profiler:
        costs = step_costs(step, steps)
    events = sorted(profiler.key_averages(group_by_input_shape=True),
                    key=lambda event: event.self_cpu_time_total, reverse=True)
    return [{"op": event.key, "shapes": str([shape for shape in event.input_shapes if shape]),
             "self_ms": round(event.self_cpu_time_total / 1000 / steps, 3),
             "calls": round(event.count / steps, 2)} for event in events[:rows]], costs


def fold_switch():
    """A function that turns the thin layers' plans (a fold for one channel on the large map, a
    sub-pixel conv for up to strided.MAX_THIN_CHANNELS) on or off. It wraps strided.plan_for,
    which the strided layers look up at each call, so the same trainer runs both ways."""
    original = strided.plan_for
    state = {"on": True}

    def plan_for(x, small_side, small_channels, large_channels, transposed):
        if large_channels <= strided.MAX_THIN_CHANNELS and not state["on"]:
            return None  # torch's layer throughout, as before the fold
        return original(x, small_side, small_channels, large_channels, transposed)

    strided.plan_for = plan_for
    return lambda on: state.update(on=on)


def bias_switch():
    """A function that has the strided layers add their bias in torch's conv kernel where that
    computes the forward (on, as strided._conv does), or in a separate pass after it (off). It
    wraps strided._conv, which the layers look up at each call."""
    original = strided._conv
    state = {"on": True}

    def conv(x, weight, product, windows=None, bias=None):
        if state["on"] or product or bias is None:
            return original(x, weight, product, windows, bias)
        return original(x, weight, product, windows) + bias.view(1, -1, 1, 1)

    strided._conv = conv
    return lambda on: state.update(on=on)


def pool_switch(trainer):
    """A function that turns the avgpool folded into the conv kernel (PooledConv2d, the SN-ResNet
    D's) on or off in `trainer`'s nets; off, they convolve and then pool."""
    pooled = [module for module in trainer.objective.modules() if isinstance(module, PooledConv2d)]

    def switch(on: bool) -> None:
        for module in pooled:
            module.pool_in_kernel = on
    return switch


class FusedAdamThroughTorch(FusedAdam):
    """FusedAdam whose every step is torch's (the flat views included): --adam-direct-pairs'
    off side."""

    def _direct_groups(self):
        return None


def adam_switch(trainer, off_class):
    """A function that runs `trainer`'s FusedAdam optimizers as FusedAdam (on) or as
    `off_class` (off): torch's fused Adam for --adam-pairs, FusedAdamThroughTorch for
    --adam-direct-pairs. Neither changes the optimizer's state, only how a step gathers its
    tensors and calls the kernel, so switching the optimizer's class is enough."""
    optimizers = [opt for opt in trainer.optimizers.values() if isinstance(opt, FusedAdam)]

    def switch(on: bool) -> None:
        for optimizer in optimizers:
            optimizer.__class__ = FusedAdam if on else off_class
    return switch


# What --NAME-pairs compares, on against off (module docstring).
PAIRINGS = {
    "fold": "the thin layers' scatter (a fold or a sub-pixel conv) against torch's layer",
    "pool": "the SN-ResNet D's avgpool in its conv's kernel against a conv and then the pool",
    "wgrad-domain": "the weight gradient's products from 2,048 channels against from 8,192",
    "bf16-only": "the products in bf16 only against in any dtype",
    "adam": "gankit's FusedAdam against torch's fused Adam",
    "adam-direct": "FusedAdam's direct kernel call against torch's step around it",
    "bias": "the bias in torch's conv kernel against a separate add",
}


def constant_switch(name: str, off_value):
    """A function that sets gankit.nets.strided's constant `name` to its own value (on) or to
    `off_value` (off). plan_for reads the constants at each call, so the same trainer runs both
    ways."""
    on_value = getattr(strided, name)
    return lambda on: setattr(strided, name, on_value if on else off_value)


def pairings(trainer, fold, bias) -> dict[str, object]:
    """The switches --NAME-pairs times, by NAME (module docstring); `fold` and `bias` are
    fold_switch()'s and bias_switch()'s (None when not timed), made once, since they wrap
    strided's functions."""
    return {
        "fold": fold,
        "pool": pool_switch(trainer),
        "wgrad-domain": constant_switch("MIN_CHANNEL_PRODUCT_WEIGHT_GRADIENT",
                                        strided.MIN_CHANNEL_PRODUCT),
        "bf16-only": constant_switch("PRODUCT_DTYPES", frozenset(
            {torch.bfloat16, torch.float16, torch.float32, torch.float64})),
        "adam": adam_switch(trainer, torch.optim.Adam),
        "adam-direct": adam_switch(trainer, FusedAdamThroughTorch),
        "bias": bias,
    }


def paired_ms(step, switch, pairs: int) -> dict[bool, list[float]]:
    """ms per step with a switch on (True) and off (False), one pair of two steps each at a
    time."""
    for on in (True, False):
        switch(on)
        step()  # warm-up of each way
    times = {True: [], False: []}
    for index in range(pairs):
        for on in (True, False) if index % 2 == 0 else (False, True):
            switch(on)
            started = time.perf_counter()
            step()
            step()
            times[on].append((time.perf_counter() - started) / 2 * 1000)
    switch(True)
    return times


def summary(times: list[float]) -> dict:
    tenth = statistics.quantiles(times, n=10)[0] if len(times) > 1 else times[0]
    return {"median_ms": round(statistics.median(times), 2), "p10_ms": round(tenth, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("presets", nargs="+")
    parser.add_argument("--steps", type=positive_int, default=10, help="profiled steps")
    parser.add_argument("--rows", type=positive_int, default=25)
    for name, compared in PAIRINGS.items():
        parser.add_argument(f"--{name}-pairs", type=int, default=0,
                            help=f"pairs of steps, {compared} (0: none)")
    parser.add_argument("--levers", nargs="*", default=[],
                        help="overrides added to the benchmark's levers")
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--threads", type=positive_int, default=2)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--json", type=Path, default=Path("runs/bench/step_profile.json"))
    args = parser.parse_args()
    pairs = {name: getattr(args, name.replace("-", "_") + "_pairs") for name in PAIRINGS}
    for name, count in pairs.items():
        if count < 0:
            parser.error(f"argument --{name}-pairs: {count} must be >= 0")
    levers = [*DEFAULT_LEVERS, *args.levers]
    try:
        for preset in args.presets:
            if preset not in CASES:
                load_config(preset, levers)
    except GankitError as error:
        parser.error(str(error))
    torch.set_num_threads(args.threads)
    # Wrapped only when asked for, so that a plain profile times strided's own functions.
    fold = fold_switch() if pairs["fold"] else None
    bias = bias_switch() if pairs["bias"] else None
    results = []
    for preset in args.presets:
        try:
            if preset in CASES:  # throughput.py's cases, such as dcgan-64
                trainer, _ = build_case(preset, levers, args.data_root, args.batch_size,
                                        args.threads)
            else:
                trainer, _ = build_trainer(preset, preset, levers, args.data_root,
                                           args.batch_size, args.threads)
        except GankitError as error:  # a missing dataset, a bad lever
            parser.error(str(error))
        result = {"preset": preset, "precision": trainer.precision}
        for _ in range(5):  # warm-up: oneDNN's kernels, the allocator's pools
            trainer.train_step()
        result["unprofiled"] = step_costs(trainer.train_step, args.steps)
        result["operations"], result["profiled"] = top_operations(trainer.train_step, args.steps,
                                                                  args.rows)
        print(f"{preset}: {trainer.precision}, batch {args.batch_size}, {args.threads} threads; "
              f"a step {result['unprofiled']['median_ms']} ms with "
              f"{result['unprofiled']['faults_per_step']} page faults, under the profiler "
              f"{result['profiled']['median_ms']} ms with {result['profiled']['faults_per_step']}; "
              f"self time per step over {args.steps} profiled steps")
        print("| op | input shapes | self ms | calls |")
        print("|---|---|---|---|")
        for row in result["operations"]:
            print(f"| {row['op']} | {row['shapes']} | {row['self_ms']} | {row['calls']} |")
        for name, switch in pairings(trainer, fold, bias).items():
            if pairs[name]:
                times = paired_ms(trainer.train_step, switch, pairs[name])
                result[f"{name}_on"] = summary(times[True])
                result[f"{name}_off"] = summary(times[False])
                differences = [on - off for on, off in zip(times[True], times[False], strict=True)]
                result[f"{name}_paired_difference_ms"] = round(statistics.median(differences), 2)
                print(f"{preset}, ms per step over {pairs[name]} pairs: {name} on "
                      f"{result[f'{name}_on']}, off {result[f'{name}_off']}, median paired "
                      f"difference (on - off) {result[f'{name}_paired_difference_ms']}")
        results.append(result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"torch": torch.__version__, "threads": args.threads,
                                     "batch": args.batch_size, "levers": levers,
                                     "results": results},
                                    indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
