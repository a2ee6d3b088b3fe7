"""The one training loop: Algorithm 1 of Goodfellow et al. 2014.

for each training iteration:
    k times: sample a minibatch of noise and of real data, step the discriminator;
    then:    sample a minibatch of noise, step the generator.

What the players are and what each phase computes comes from an `Objective`; this loop owns
the optimizers, the schedule, the logs, the pictures and the checkpoints of one run folder.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import _SpectralNorm  # to recognise it, not to build it
from tqdm.auto import tqdm

from gankit.config import RunConfig, to_yaml
from gankit.data.images import crop_padding
from gankit.device import resolve_device, resolve_precision
from gankit.errors import GankitError
from gankit.nets.batchnorm import mixes_batch_statistics
from gankit.objectives import Objective, build_objective
from gankit.train import distributed
from gankit.train.allocator import keep_freed_memory
from gankit.train.checkpoint import (
    atomic_write_text,
    load_checkpoint,
    save_checkpoint,
    set_aside_after,
)
from gankit.train.ema import WeightAverage
from gankit.train.optimizers import make_optimizer
from gankit.train.pictures import RunPictures
from gankit.train.report import append_metrics, drop_metrics_after, write_report

CONFIG_FILE = "config.yaml"
# What `Trainer.restore` reads from a checkpoint's state (`gankit.load` needs the first three).
LOAD_STATE_KEYS = ("step", "config", "sample_shape")
RESUME_STATE_KEYS = (*LOAD_STATE_KEYS, "elapsed", "optimizers", "rng", "ema_updates")
# The names shown in the progress bar, in order, for the stats an objective reports.
PROGRESS_NAMES = {"d_loss": "d_loss", "g_loss": "g_loss", "d_real": "D(x)", "d_fake": "D(G(z))"}


@contextlib.contextmanager
def frozen(net: nn.Module | None):
    """Stop gradients into `net`'s weights: the G step needs gradients through D, not for D."""
    if net is None:
        yield
        return
    flags = [p.requires_grad for p in net.parameters()]
    net.requires_grad_(False)
    try:
        yield
    finally:
        for param, flag in zip(net.parameters(), flags, strict=True):
            param.requires_grad_(flag)


class Trainer:
    """Runs Algorithm 1 for one run config and writes the run folder.

    Args:
        config: the resolved run config.
        run_dir: the run folder to write (created if needed).
        data: an object with `.sample(n, generator)`, `.shape` and `.kind`.
        objective: the game; by default built from `config` with fresh players.
        progress: show a progress bar (defaults to `config.log.progress`).
        data_root: where reference datasets for in-training metrics live.
    """

    def __init__(self, config: RunConfig, run_dir: str | Path, data: Any,
                 objective: Objective | None = None, progress: bool | None = None,
                 data_root: str | Path | None = None):
        self.config = config
        self.run_dir = Path(run_dir)
        self.data = data
        self.data_root = data_root
        self.device = resolve_device(config.train.device)
        # Under torchrun: this process's rank; rank 0 alone writes the run folder.
        self.ranks = distributed.setup(self.device.type)
        if self.ranks.world > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", self.ranks.local_rank)
            torch.cuda.set_device(self.device)
        if config.train.threads > 0:
            torch.set_num_threads(config.train.threads)
        keep_freed_memory()  # each step reuses its buffers instead of page-faulting them in
        seed = config.seed
        # One generator per stream of randomness, so a resumed run draws exactly what an
        # uninterrupted one would; the global RNG covers weight init and dropout.
        torch.manual_seed(seed)
        self.data_rng = torch.Generator()
        self.latent_rng = torch.Generator()
        self.penalty_rng = torch.Generator(self.device)
        self._seed_streams(seed)
        if objective is None:
            objective = build_objective(config, tuple(data.shape), self.penalty_rng, data)
        objective.check_data(data)  # before the first picture, which draws a real batch too
        self.objective = objective.to(self.device)
        for net in self.objective.players().values():
            distributed.broadcast_state(net, self.ranks.world)  # every rank starts from rank 0
        self.memory_format = torch.contiguous_format
        if config.train.channels_last:
            self.memory_format = torch.channels_last
            self.objective.to(memory_format=torch.channels_last)  # 4D weights only
        self.optimizers = self._build_optimizers()
        # fp16's narrow range needs loss scaling (bf16 has fp32's exponent and does not).
        self.precision = resolve_precision(config.train.precision, self.device)
        self.scalers = {}
        if self.precision == "fp16":
            if self.device.type != "cuda":
                raise GankitError("train.precision=fp16 needs a CUDA device (for its grad "
                                  "scaler); use fp32, or bf16 on a CPU with bf16 units")
            self.scalers = {name: torch.amp.GradScaler("cuda") for name in self.optimizers}
        self.weight_average = None
        if config.train.ema > 0:
            self.weight_average = WeightAverage(self.objective.generator, config.train.ema)
            self.objective.generator_ema = self.weight_average.average
        share = config.train.share_fake and config.train.d_steps == 1
        if share and hasattr(self.objective, "share_fake"):
            self.objective.share_fake = True
        if (config.train.joint_d_batch and hasattr(self.objective, "joint_batch")
                and not mixes_batch_statistics(self.objective.discriminator)):
            self.objective.joint_batch = True
        if config.train.compile:
            # In place: state_dict keys, checkpoints and the EMA copy stay those of plain nets.
            # Nets with spectral norm stay eager: its power iteration updates buffers inside
            # forward, and torch 2.14.1's compiled SN-ResNet discriminator then failed in backward
            # ("modified by an inplace operation") on the second step. R1 and the gradient
            # penalty differentiate D's gradient, and aot_autograd cannot do double backward.
            # Static shapes: a run's batch shapes are few and fixed, and torch 2.14.1's inductor
            # failed on a packed D's reshape once an earlier compiled run in the same process
            # had made its sizes symbolic.
            penalised = config.loss.r1_weight > 0 or config.loss.gp_weight > 0
            for name, net in self.objective.players().items():
                if not (_has_spectral_norm(net) or (penalised and name == "discriminator")):
                    net.compile(dynamic=False)
        n_fixed = config.log.toy_points if data.kind == "points" else config.log.n_samples
        self.fixed_latent = objective.fixed_latent(
            n_fixed, torch.Generator().manual_seed(seed + 3), self.device)
        self.progress = (config.log.progress if progress is None else progress) and self.ranks.main
        self.step = 0
        self.elapsed = 0.0  # training seconds, summed over resumes
        self.saved_step: int | None = None  # the step of the newest checkpoint on disk
        # The sums and counts of each logged number since the last log (a logged number is the
        # mean over its window; g_grad_norm is measured on the logged step only). Checkpoints
        # keep them, so a resume logs what an uninterrupted run would.
        self.log_window: tuple[dict[str, Any], dict[str, int]] = ({}, {})
        self.interrupted = False  # set by a Ctrl-C during fit: stop after the step in progress
        if config.log.eval_every > 0:
            self._check_evaluation(tuple(data.shape))
        # Only now: a config refused above leaves no empty run folder behind.
        if self.ranks.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.pictures = RunPictures(self.run_dir, data, self.objective, self.fixed_latent)
        self.events = None  # TensorBoard's writer, opened by fit

    def _seed_streams(self, seed: int) -> None:
        """Seed the data, noise and penalty streams; rank r > 0 of a distributed run draws
        its own batches and dropout masks (rank 0's streams are those of a single process, and
        its weights are broadcast, so the ranks still start alike)."""
        if self.ranks.rank:
            seed += 1_000_003 * self.ranks.rank
            torch.manual_seed(seed + 3)
        self.data_rng.manual_seed(seed)
        self.latent_rng.manual_seed(seed + 1)
        self.penalty_rng.manual_seed(seed + 2)

    def _check_evaluation(self, sample_shape: tuple[int, ...]) -> None:
        """Refuse now what `evaluate` would refuse at the first log.eval_every, maybe hours in."""
        from gankit.eval.evaluate import PROTOCOLS, check_request

        log, data_name = self.config.log, self.config.data.name
        metrics, _, _, n = self._evaluation_protocol()
        # A semi-supervised D measures its own test error; sample metrics only when named.
        measures_itself = type(self.objective).evaluate_extra is not Objective.evaluate_extra
        if not measures_itself or log.eval_metrics:
            if data_name not in PROTOCOLS:  # no reference or feature extractor for this data
                raise GankitError(f"log.eval_every={log.eval_every}: gankit has no evaluation "
                                  f"protocol for {data_name!r} data; set log.eval_every=0 and "
                                  "measure with `gankit eval RUN --metrics --features --reference`")
            check_request(metrics, n, sample_shape)
            if "multimodal" in metrics:  # it feeds held-out inputs to a saved run's model
                raise GankitError(f"log.eval_every={log.eval_every}: multimodal is measured on "
                                  "the finished run (gankit eval RUN); set log.eval_every=0")

    def _evaluation_protocol(self) -> tuple[tuple[str, ...], str | None, str | None, int]:
        """(metrics, reference, features, n) of `evaluate`: the data's protocol, with
        log.eval_metrics and log.eval_n in place of its metrics and count where set."""
        from gankit.eval.evaluate import run_protocol

        log = self.config.log
        metrics, reference, features, n = run_protocol(self.config.data.name,
                                                       self.config.model.objective)
        return tuple(log.eval_metrics) or metrics, reference, features, log.eval_n or n

    def _build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        train = self.config.train
        learning_rates = {"generator": train.g_lr, "discriminator": train.d_lr}
        optimizers = {}
        for name, net in self.objective.players().items():
            params = [p for p in net.parameters() if p.requires_grad]
            if params:  # a fixed player (no trainable weights) has no phase
                optimizers[name] = make_optimizer(params, train.optimizer, learning_rates[name],
                                                  train.momentum, train.betas,
                                                  train.fused_optimizer)
        return optimizers

    # ----------------------------------------------------------------- one iteration

    def train_step(self, want_grad_norm: bool = False) -> dict[str, torch.Tensor]:
        """One iteration of Algorithm 1: k discriminator steps, then one generator step."""
        batch, device = self.config.train.batch_size, self.device
        stats: dict[str, torch.Tensor] = {}
        self._decay_learning_rates()
        self.objective.iteration = self.step
        d_optimizer = self.optimizers.get("discriminator")
        if d_optimizer is not None:
            for _ in range(self.config.train.d_steps):
                real = to_device(self.objective.real_batch(self.data, batch, self.data_rng),
                                 device, self.memory_format)
                latent = self.objective.sample_latent(batch, self.latent_rng, device)
                with self._autocast():
                    d_loss, d_stats = self.objective.discriminator_phase(real, latent)
                self._update("discriminator", d_loss)
            stats.update(d_stats)  # the last of the k steps speaks for them
        g_optimizer = self.optimizers.get("generator")
        if g_optimizer is not None:
            if not getattr(self.objective, "share_fake", False) or d_optimizer is None:
                latent = self.objective.sample_latent(batch, self.latent_rng, device)
            real = None
            if self.objective.generator_uses_real:
                real = to_device(self.objective.real_batch(self.data, batch, self.data_rng),
                                 device, self.memory_format)
            with frozen(self.objective.discriminator), self._autocast():
                g_loss, g_stats = self.objective.generator_phase(latent, real)
            grad_norm = self._update("generator", g_loss, want_grad_norm)
            if grad_norm is not None:
                stats["g_grad_norm"] = grad_norm
            # Batch-norm statistics and spectral norm's vectors follow each rank's own batches:
            # rank 0's are kept, as DDP's broadcast_buffers does.
            for net in self.objective.players().values():
                distributed.broadcast_state(net, self.ranks.world, buffers_only=True)
            if self.weight_average is not None:
                self.weight_average.update(self.objective.generator)
            stats.update(g_stats)
        return stats

    def _update(self, player: str, loss: torch.Tensor,
                want_grad_norm: bool = False) -> torch.Tensor | None:
        """One optimizer step of `player` on `loss`; returns its gradient norm when asked."""
        net = self.objective.players()[player]
        optimizer, scaler = self.optimizers[player], self.scalers.get(player)
        optimizer.zero_grad(set_to_none=True)
        (loss if scaler is None else scaler.scale(loss)).backward()
        # Averaged before unscaling, so every rank finds the same inf/NaN and skips together.
        distributed.average_gradients(net, self.ranks.world)
        if scaler is not None:
            scaler.unscale_(optimizer)  # true gradients for the norm; step() skips inf/NaN
        grad_norm = _grad_norm(net) if want_grad_norm else None
        if scaler is None:
            optimizer.step()
        else:
            scaler.step(optimizer)
            scaler.update()
        return grad_norm

    def _decay_learning_rates(self) -> None:
        """Both learning rates times `learning_rate_factor` once the decay has begun."""
        train = self.config.train
        factor = learning_rate_factor(train, self.step)
        if factor is None:
            return
        base = {"generator": train.g_lr, "discriminator": train.d_lr}
        for name, optimizer in self.optimizers.items():
            for group in optimizer.param_groups:
                group["lr"] = base[name] * factor

    def _autocast(self):
        """Mixed precision for the forward passes (backward follows the recorded dtypes)."""
        return torch.autocast(self.device.type, enabled=self.precision != "fp32",
                              dtype=torch.float16 if self.precision == "fp16" else torch.bfloat16)

    # ----------------------------------------------------------------- the run

    def fit(self) -> Path:
        """Train until `config.train.steps`, writing the run folder; returns its path."""
        config, log = self.config, self.config.log
        main = self.ranks.main
        if main:
            atomic_write_text(self.run_dir / CONFIG_FILE, to_yaml(config))
            # The steps after self.step are about to be run again: drop what a killed run
            # logged past its last checkpoint, so the curves do not double back (purge_step
            # does the same for TensorBoard's events).
            drop_metrics_after(self.run_dir, self.step)
        if config.log.tensorboard and main:
            from torch.utils.tensorboard import SummaryWriter  # imported only when asked for

            self.events = SummaryWriter(str(self.run_dir / "tensorboard"),
                                        purge_step=self.step + 1)
        bar = tqdm(total=config.train.steps, initial=self.step, disable=not self.progress,
                   desc=config.name, dynamic_ncols=True, unit="it")
        started = time.perf_counter() - self.elapsed
        if self.step == 0 and main:
            with self._untouched():
                self.pictures.snapshot(0)
        try:
            with self._stop_after_step_on_interrupt():
                self._run_steps(bar, started)
        finally:
            bar.close()
        self.elapsed = time.perf_counter() - started
        self.save()
        if not main:
            return self.run_dir
        if self.step % log.sample_every != 0:
            with self._untouched():  # the saved players stay the ones in memory
                self.pictures.snapshot(self.step)
        figures = self.pictures.finish(self.step)
        if self.events is not None:
            self.events.close()
        write_report(self.run_dir, config, self.objective, self.data, self.elapsed,
                     self.step, figures, processes=self.ranks.world, precision=self.precision)
        return self.run_dir

    def _run_steps(self, bar, started: float) -> None:
        """The steps from self.step to train.steps, with their logs, pictures, evaluations and
        checkpoints; after a Ctrl-C, the step in progress is finished and saved, then
        KeyboardInterrupt is raised."""
        config, log, main = self.config, self.config.log, self.ranks.main
        sums, counts = self.log_window
        while self.step < config.train.steps:
            log_now = (self.step + 1) % log.every == 0 or self.step + 1 == config.train.steps
            stats = self.train_step(want_grad_norm=log_now)
            self.step += 1
            for name, value in stats.items():
                sums[name] = sums.get(name, 0.0) + value.float()
                counts[name] = counts.get(name, 0) + 1
            bar.update(1)
            if log_now:
                self.elapsed = time.perf_counter() - started
                means = distributed.mean_over_ranks(
                    {k: float(v) / counts[k] for k, v in sums.items()}, self.ranks.world)
                record = {"step": self.step, "time": round(self.elapsed, 3)}
                record.update({k: round(float(v), 6) for k, v in means.items()})
                if main:
                    self._append_metrics(record)
                self.check_finite()
                bar.set_postfix({label: f"{record[key]:.3f}"
                                 for key, label in PROGRESS_NAMES.items() if key in record})
                sums.clear()
                counts.clear()
            if self.step % log.sample_every == 0 and main:
                with self._untouched():
                    self.pictures.snapshot(self.step)
            if log.eval_every and self.step % log.eval_every == 0:
                self.elapsed = time.perf_counter() - started
                with self._untouched():
                    self.evaluate()
            if self.step % log.checkpoint_every == 0 or self.interrupted:
                self.elapsed = time.perf_counter() - started
                self.save()
            if self.interrupted:
                raise KeyboardInterrupt

    @contextlib.contextmanager
    def _stop_after_step_on_interrupt(self):
        """Within the block, a first Ctrl-C sets `interrupted`, so that the loop finishes the
        step in progress and saves it; a second one stops at once, with no save.

        A KeyboardInterrupt raised in the middle of a step would leave some of its updates
        made and its random streams moved on: saved as the last whole step, that checkpoint
        would resume into another run. Python sees signals in the main thread only; elsewhere
        a Ctrl-C cannot reach the loop. Distributed ranks could see the Ctrl-C in different
        steps and wait for each other's collectives: there it stops at once, with no save."""
        self.interrupted = False
        if (threading.current_thread() is not threading.main_thread()
                or self.ranks.world > 1):
            yield
            return

        def finish_the_step(signum, frame):
            if self.interrupted:
                raise KeyboardInterrupt
            self.interrupted = True
            tqdm.write(f"gankit: interrupted; saving step {self.step + 1} when it is done "
                       "(Ctrl-C again stops at once, keeping the last checkpoint)",
                       file=sys.stderr)

        previous = signal.signal(signal.SIGINT, finish_the_step)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    @contextlib.contextmanager
    def _untouched(self):
        """Put the players' buffers and the global RNG back as they were after the block.

        Pictures and evaluations run the nets between steps, in training mode: batch norm folds
        the picture's batch into its running statistics, spectral norm takes a power-iteration
        step, and dropout draws from the global RNG, shifting the masks of every later step. How
        often a run draws or measures must not change what it trains."""
        nets = [*self.objective.players().values()]
        if self.weight_average is not None:
            nets.append(self.weight_average.average)
        buffers = [buffer for net in nets for buffer in net.buffers()]
        saved = [buffer.clone() for buffer in buffers]
        rng = torch.get_rng_state()
        cuda_rng = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        try:
            yield
        finally:
            torch.set_rng_state(rng)
            if cuda_rng is not None:
                torch.cuda.set_rng_state(cuda_rng, self.device)
            with torch.no_grad():
                for buffer, value in zip(buffers, saved, strict=True):
                    buffer.copy_(value)

    def evaluate(self) -> dict[str, float]:
        """Measure the sampling generator now (log.eval_metrics) and log it with step and time."""
        from gankit.eval.evaluate import evaluate

        self.check_finite()
        if not self.ranks.main:
            return {}
        log = self.config.log
        # An objective may measure itself (a semi-supervised D's test error); then the sample
        # metrics run only when log.eval_metrics names them.
        own = self.objective.evaluate_extra(self.data_root)
        if own and not log.eval_metrics:
            self._append_metrics({"step": self.step, "time": round(self.elapsed, 3), **own})
            return own
        metrics, reference, features, n = self._evaluation_protocol()
        # fixed_latent: a conditional game is asked for every label equally often.
        latent = self.objective.fixed_latent(n, torch.Generator().manual_seed(self.config.seed),
                                             self.device)
        with torch.inference_mode():
            samples = torch.cat([self.objective.sample(chunk).float().cpu()
                                 for chunk in latent.split(1000)])
        # Padded training data (data.pad): crop samples back to the size the metrics take.
        samples = crop_padding(samples, self.config.data.pad)
        labels = (self.objective.labels_of(latent).cpu()
                  if hasattr(self.objective, "labels_of") else None)
        toy = getattr(self.data, "distribution", None)
        results = own | evaluate(samples, reference, metrics, features=features or "mnist", n=n,
                           seed=self.config.seed, data_root=self.data_root, toy_distribution=toy,
                           labels=labels)
        self._append_metrics({"step": self.step, "time": round(self.elapsed, 3), **results})
        return results

    def _append_metrics(self, record: dict[str, Any]) -> None:
        append_metrics(self.run_dir, record)
        if self.events is not None:
            for key, value in record.items():
                if key not in ("step", "time"):
                    self.events.add_scalar(key, value, record["step"])
            self.events.flush()

    # ----------------------------------------------------------------- checkpoints

    def check_finite(self) -> None:
        """Raise `GankitError` once a player's weights hold NaN or inf.

        A diverged run would otherwise train on for hours and save NaN checkpoints until the
        good ones rotate out (log.keep_checkpoints). Weights, not losses, are checked: under
        fp16 an inf loss is routine, and the grad scaler skips that step."""
        nets = dict(self.objective.players())
        if self.weight_average is not None:
            nets["generator_ema"] = self.weight_average.average
        for name, net in nets.items():
            tensors = [t for t in net.state_dict().values() if t.is_floating_point()]
            if tensors and not torch.stack([t.isfinite().all() for t in tensors]).all():
                advice = ("nothing was saved; lower train.g_lr and train.d_lr"
                          if self.saved_step is None else
                          f"its checkpoints up to step {self.saved_step} are kept; resume with "
                          "lower train.g_lr and train.d_lr")
                raise GankitError(f"{self.run_dir}: training diverged by step {self.step}: the "
                                  f"{name}'s weights are NaN or inf; {advice}")

    def save(self) -> Path | None:
        """Write a checkpoint of the players, optimizers, step and RNG streams (refused once
        training has diverged, so that NaN weights never replace good ones). Rank 0 writes it;
        the other ranks return None."""
        self.check_finite()
        if not self.ranks.main:
            return None
        weights = {name: net.state_dict() for name, net in self.objective.players().items()}
        if self.weight_average is not None:
            weights["generator_ema"] = self.weight_average.average.state_dict()
        state = {
            "step": self.step,
            "elapsed": self.elapsed,
            "config": self.config.to_dict(),
            "sample_shape": list(self.data.shape),
            "ema_updates": self.weight_average.updates if self.weight_average else 0,
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "scalers": {name: scaler.state_dict() for name, scaler in self.scalers.items()},
            "rng": {"data": self.data_rng.get_state(), "latent": self.latent_rng.get_state(),
                    "penalty": self.penalty_rng.get_state(), "torch": torch.get_rng_state()},
            "log_window": {"sums": {k: float(v) for k, v in self.log_window[0].items()},
                           "counts": dict(self.log_window[1])},
        }
        if self.device.type == "cuda":  # dropout and noise layers on a GPU draw from it
            state["rng"]["cuda"] = torch.cuda.get_rng_state(self.device)
        path = save_checkpoint(self.run_dir, self.step, weights, state,
                               keep=self.config.log.keep_checkpoints)
        self.saved_step = self.step
        return path

    def restore(self, checkpoint: str | Path) -> None:
        """Continue from a checkpoint: weights, optimizers, step, elapsed time and RNG streams.

        Checkpoints of this run later than the one read are set aside (`set_aside_after`): the
        run will save those steps again."""
        weights, state, used = load_checkpoint(checkpoint, map_location=self.device,
                                               required=RESUME_STATE_KEYS)
        for name, net in self.objective.players().items():
            load_weights(net, weights, name, used)
        for name, optimizer in self.optimizers.items():
            # load_state_dict also restores the saved learning rates, betas and momentum; the
            # config's win, so that a resume with a lower train.g_lr trains with it.
            settings = [{k: v for k, v in group.items() if k != "params"}
                        for group in optimizer.param_groups]
            optimizer.load_state_dict(state["optimizers"][name])
            for group, setting in zip(optimizer.param_groups, settings, strict=True):
                group.update(setting)
            _match_state_layout(optimizer)
        for name, scaler in self.scalers.items():
            if name in state.get("scalers", {}):
                scaler.load_state_dict(state["scalers"][name])
        if self.weight_average is not None:
            if "generator_ema" in weights:
                load_weights(self.weight_average.average, weights, "generator_ema", used)
                self.weight_average.updates = int(state["ema_updates"])
            else:  # train.ema switched on at this resume: the average starts from G now
                self.weight_average.average.load_state_dict(
                    self.objective.generator.state_dict())
                self.weight_average.updates = 0
        self.step = self.saved_step = int(state["step"])
        self.elapsed = float(state["elapsed"])
        rng = state["rng"]
        self.data_rng.set_state(rng["data"].cpu())
        self.latent_rng.set_state(rng["latent"].cpu())
        self.penalty_rng.set_state(rng["penalty"].cpu())
        torch.set_rng_state(rng["torch"].cpu())
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"].cpu(), self.device)
        window = state.get("log_window", {"sums": {}, "counts": {}})
        self.log_window = (dict(window["sums"]), dict(window["counts"]))
        if not self.ranks.main:
            # A checkpoint holds rank 0's streams; the others start fresh ones of their own,
            # so a resumed distributed run matches an uninterrupted one in law, not bit for bit.
            self._seed_streams(self.config.seed + 7919 * self.step)
        elif used.parent.resolve() == (self.run_dir / "checkpoints").resolve():
            set_aside_after(used)


def learning_rate_factor(train, step: int) -> float | None:
    """train.lr_decay_from < 1: from that fraction of the steps on, the factor on both learning
    rates for the step after `step` done, falling linearly to 0 at the last step (a function of
    the step, so resumes agree); None before the decay begins (the rates stay as set)."""
    start = train.lr_decay_from * train.steps
    if train.lr_decay_from >= 1 or step < start:
        return None
    return max(0.0, (train.steps - step) / max(train.steps - start, 1.0))


def load_weights(net: nn.Module, weights: dict, name: str, checkpoint: Path) -> None:
    """Load a player's saved weights, or one line naming the file that does not fit it."""
    file = checkpoint / f"{name}.safetensors"
    if name not in weights:
        raise GankitError(f"{file}: missing from the checkpoint")
    try:
        net.load_state_dict(weights[name])
    except RuntimeError:
        raise GankitError(f"{file}: weights do not fit the {name} of the run's config") from None


def to_device(batch: Any, device: torch.device,
              memory_format: torch.memory_format = torch.contiguous_format) -> Any:
    """A tensor or a tuple of tensors (images with labels, input-target pairs) on `device`,
    image batches in `memory_format`."""
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(part, device, memory_format) for part in batch)
    batch = batch.to(device, non_blocking=True)
    if batch.dim() == 4 and memory_format != torch.contiguous_format:
        batch = batch.contiguous(memory_format=memory_format)
    return batch


def _has_spectral_norm(net: nn.Module) -> bool:
    """Whether any layer of `net` carries torch's spectral-norm parametrization."""
    for module in net.modules():
        if parametrize.is_parametrized(module):
            for parametrizations in module.parametrizations.values():
                if any(isinstance(p, _SpectralNorm) for p in parametrizations):
                    return True
    return False


def _match_state_layout(optimizer: torch.optim.Optimizer) -> None:
    """Give each per-parameter state tensor (Adam's moments) its parameter's strides.

    A run may resume with another train.channels_last than it saved with, and torch 2.14.1's
    fused CPU Adam pairs a parameter's entries with its moments' by memory order: moments in
    the other layout got the wrong entries' updates.
    """
    for param, state in optimizer.state.items():
        for key, value in state.items():
            if (torch.is_tensor(value) and value.shape == param.shape
                    and value.stride() != param.stride()):
                state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def _grad_norm(net: nn.Module) -> torch.Tensor:
    grads = [p.grad.detach().flatten() for p in net.parameters() if p.grad is not None]
    return torch.cat(grads).norm() if grads else torch.zeros(())
