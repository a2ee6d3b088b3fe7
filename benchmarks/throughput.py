"""gankit's training step against a plain eager fp32 step of the same architecture.

    python benchmarks/throughput.py                      # mnist-dcgan, dcgan-64, fashion-resnet
    python benchmarks/throughput.py --cases dcgan-64 --levers train.compile=true

Both steps run in this process, interleaved (a block of gankit steps and a block of plain
steps, in turn first, repeated), so that a busy machine slows both alike. The plain step is
written the way pytorch/examples' dcgan writes it (torch's nn.Conv2d and nn.ConvTranspose2d
layers): a D update on real then on G(z).detach(), a G update on the same G(z), Adam with
torch's default (per-tensor) implementation, contiguous NCHW tensors, fp32 eager. It gets the
same in-memory batches as gankit, so the comparison is of the step, not of data loading. The
plain step also does what that code does and gankit does not: G's update computes D's weight
gradients too and discards them (gankit freezes D there), 4-7% of the plain step here. Building
gankit's trainer sets glibc to keep freed memory (gankit.train.allocator) for the whole
process, so the plain step has that setting too. The table gives img/s, the speed-up, the FLOPs
of one step of each (torch.utils.flop_counter) and the share of the fp32 and bf16 matmul peaks,
measured here, that each step's own FLOPs reach: a plain step near the fp32 peak leaves gankit
at most the ratio of the two peaks (without AMX, bf16's is about twice fp32's) and what it
saves in FLOPs.
Writes the table as JSON (default runs/bench/throughput.json).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from gankit.config import load_config
from gankit.data import build_dataset
from gankit.data.images import ImageData
from gankit.errors import GankitError
from gankit.nets.dcgan import LatentProjection
from gankit.nets.resnet import PooledConv2d
from gankit.nets.strided import StridedConv2d, StridedConvTranspose2d
from gankit.objectives import build_objective
from gankit.train.loop import Trainer

# The levers gankit turns on by default in this benchmark (what its presets may use).
# precision=auto is bf16 only on a CPU with bf16 units; elsewhere the row is fp32 against fp32.
DEFAULT_LEVERS = ["train.precision=auto", "train.channels_last=true",
                  "train.fused_optimizer=true", "train.share_fake=true",
                  "train.joint_d_batch=true"]
CASES = {
    "mnist-dcgan": ("mnist-dcgan", []),
    # The reference DCGAN of pytorch/examples: 64 px RGB, nz = 100, ngf = ndf = 64.
    "dcgan-64": ("mnist-dcgan", ["model.width=64", "model.g_width=0", "model.latent_dim=100",
                                 "model.d_fc_width=0"]),
    "fashion-resnet": ("fashion-resnet", []),
}


def matmul_peak(dtype: torch.dtype, repeats: int = 5) -> float:
    """GFLOP/s of a square matmul in `dtype` (the best of `repeats`).

    The size doubles from 256 up to 2048 while one product takes under 0.05 s: a CPU without
    bf16 units emulates bf16 at well under 1 GFLOP/s, where a 2048 product would take minutes.
    """
    size = 256
    while True:
        a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
        started = time.perf_counter()
        a @ b
        if size >= 2048 or time.perf_counter() - started > 0.05:
            break
        size *= 2
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


def build_trainer(name: str, preset: str, overrides: list[str], data_root, batch_size: int,
                  threads: int, data: ImageData | None = None):
    """The preset's trainer on the CPU as this benchmark times it: no EMA, no logging, the
    preset's data unless `data` is given. Returns (trainer, config)."""
    common = [f"train.batch_size={batch_size}", f"train.threads={threads}", "train.ema=0",
              "log.progress=false", "log.tensorboard=false", "train.device=cpu"]
    config = load_config(preset, [*common, *overrides])
    if data is None:
        data = build_dataset(config.data, data_root)
    trainer = Trainer(config, Path("/tmp/gankit-throughput") / name, data, progress=False)
    return trainer, config


def build_case(name: str, levers: list[str], data_root, batch_size: int, threads: int):
    preset, overrides = CASES[name]
    data = None
    if name == "dcgan-64":
        # Random 64-px RGB images in memory: the step's cost does not depend on their content.
        images = torch.randint(0, 256, (1024, 3, 64, 64), dtype=torch.uint8,
                               generator=torch.Generator().manual_seed(0))
        data = ImageData(images, torch.zeros(1024, dtype=torch.int64), name="random-64px")
    return build_trainer(name, preset, [*overrides, *levers], data_root, batch_size, threads,
                         data)


def as_reference(net: nn.Module) -> nn.Module:
    """`net` with its convs as the reference code has them: DCGAN's as torch's
    nn.ConvTranspose2d and nn.Conv2d (gankit computes some as matrix products: LatentProjection,
    gankit.nets.strided), and the SN-ResNet D's conv then avgpool where gankit folds the pool
    into the conv's kernel (PooledConv2d)."""
    for name, child in list(net.named_children()):
        if isinstance(child, PooledConv2d):
            child.pool_in_kernel = False
        elif isinstance(child, (LatentProjection, StridedConvTranspose2d, StridedConv2d)):
            kind = nn.Conv2d if isinstance(child, StridedConv2d) else nn.ConvTranspose2d
            conv = kind(child.in_channels, child.out_channels, child.kernel_size, child.stride,
                        child.padding, bias=child.bias is not None)
            conv.load_state_dict(child.state_dict())
            setattr(net, name, conv)
        else:
            as_reference(child)
    return net


class PlainStep:
    """pytorch/examples' DCGAN step on the same nets, freshly built: plain modules, NCHW.

    Built from the config rather than copied from the trainer's players: `train.compile`
    compiles those in place, and a deep copy would keep calling the original's compiled code.
    """

    def __init__(self, trainer: Trainer):
        objective = build_objective(trainer.config, tuple(trainer.data.shape))
        self.netG = as_reference(objective.generator)
        self.netD = as_reference(objective.discriminator)
        train = trainer.config.train
        betas = tuple(train.betas)
        self.optG = torch.optim.Adam(self.netG.parameters(), lr=train.g_lr, betas=betas)
        self.optD = torch.optim.Adam(self.netD.parameters(), lr=train.d_lr, betas=betas)
        self.data, self.latent_dim = trainer.data, objective.latent_dim
        self.batch = trainer.config.train.batch_size
        self.rng = torch.Generator().manual_seed(1)

    def __call__(self) -> None:
        real = self.data.sample(self.batch, self.rng)
        ones, zeros = torch.ones(self.batch), torch.zeros(self.batch)
        self.netD.zero_grad()
        errD_real = F.binary_cross_entropy_with_logits(self.netD(real), ones)
        errD_real.backward()
        noise = torch.randn(self.batch, self.latent_dim, generator=self.rng)
        fake = self.netG(noise)
        errD_fake = F.binary_cross_entropy_with_logits(self.netD(fake.detach()), zeros)
        errD_fake.backward()
        self.optD.step()
        self.netG.zero_grad()
        errG = F.binary_cross_entropy_with_logits(self.netD(fake), ones)
        errG.backward()
        self.optG.step()


def timed(step, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - started) / n


def measure(name: str, levers: list[str], data_root, batch_size: int, threads: int,
            rounds: int, steps: int, peaks: dict[str, float]) -> dict:
    torch.set_num_threads(threads)
    # With train.compile, each case compiles its own nets from scratch: its compile time stays
    # in its own warm-up, not shared with the previous case's cached graphs.
    torch._dynamo.reset()
    trainer, config = build_case(name, levers, data_root, batch_size, threads)
    plain = PlainStep(trainer)
    ours = trainer.train_step
    timed(ours, 3)  # warm-up (and torch.compile's compile, when turned on)
    timed(plain, 3)
    # Each step's own FLOPs: gankit's does less (no D weight gradients in G's update, no
    # products on a 1x1 input's padding), so the plain step's count would flatter its rates.
    flops = {}
    for side, step in (("plain", plain), ("gankit", ours)):
        with FlopCounterMode(display=False) as counter:
            step()
        flops[side] = counter.get_total_flops()
    ours_times, plain_times = [], []
    for index in range(rounds):
        # Alternate which step a round times first, so that neither always runs warm.
        pair = [(ours_times, ours), (plain_times, plain)]
        for times, step in pair if index % 2 == 0 else pair[::-1]:
            times.append(timed(step, steps))
    ours_s, plain_s = statistics.median(ours_times), statistics.median(plain_times)
    return {
        "case": name, "image": list(trainer.data.shape), "batch": batch_size,
        "width": config.model.width, "levers": levers, "precision": trainer.precision,
        "plain_img_s": round(batch_size / plain_s, 1),
        "gankit_img_s": round(batch_size / ours_s, 1),
        "speedup": round(plain_s / ours_s, 2),
        "gflop_per_step": round(flops["plain"] / 1e9, 2),
        "gankit_gflop_per_step": round(flops["gankit"] / 1e9, 2),
        "gankit_gflop_s": round(flops["gankit"] / ours_s / 1e9, 1),
        "plain_fp32_peak_share": round(flops["plain"] / plain_s / 1e9 / peaks["fp32"], 3),
        "fp32_peak_share": round(flops["gankit"] / ours_s / 1e9 / peaks["fp32"], 3),
        # A share of the bf16 peak says something only of a step that computed in bf16.
        "bf16_peak_share": (round(flops["gankit"] / ours_s / 1e9 / peaks["bf16"], 3)
                            if trainer.precision == "bf16" else None),
    }


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated: "
                        + ", ".join(CASES))
    parser.add_argument("--levers", nargs="*", default=DEFAULT_LEVERS,
                        help="gankit config overrides for its step")
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--threads", type=positive_int, default=2)
    parser.add_argument("--rounds", type=positive_int, default=5)
    parser.add_argument("--steps", type=positive_int, default=10, help="steps per timed block")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--json", type=Path, default=Path("runs/bench/throughput.json"))
    args = parser.parse_args()
    unknown = [name for name in args.cases.split(",") if name not in CASES]
    if unknown:
        parser.error(f"unknown case {unknown[0]!r}; choose from {', '.join(CASES)}")
    torch.set_num_threads(args.threads)
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    try:
        rows = [measure(name, args.levers, args.data_root, args.batch_size, args.threads,
                        args.rounds, args.steps, peaks) for name in args.cases.split(",")]
    except GankitError as error:  # a missing dataset, a bad lever
        parser.error(str(error))
    keys = ["case", "width", "precision", "plain_img_s", "gankit_img_s", "speedup",
            "gflop_per_step", "gankit_gflop_per_step", "gankit_gflop_s", "plain_fp32_peak_share",
            "fp32_peak_share", "bf16_peak_share"]
    print(f"CPU capability {torch.backends.cpu.get_cpu_capability()}, {args.threads} threads, "
          f"batch {args.batch_size}; matmul peak fp32 {peaks['fp32']:.1f} GFLOP/s, "
          f"bf16 {peaks['bf16']:.2f} GFLOP/s; gankit levers: {' '.join(args.levers)}")
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join("-" if row[key] is None else str(row[key]) for key in keys)
              + " |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "machine": platform.machine(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__, "threads": args.threads,
        "matmul_peak_gflop_s": {k: round(v, 1) for k, v in peaks.items()}, "rows": rows},
        indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
