"""The Python API, mirroring the CLI: `gankit.train(...)` and `gankit.load(...)`."""

from __future__ import annotations

import copy
import operator
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gankit.config import (
    PAIRED_OBJECTIVES,
    RunConfig,
    apply_overrides,
    diff_keys,
    flatten,
    from_dict,
    ignored_settings,
    load_config,
    validate,
)
from gankit.data import build_dataset
from gankit.device import resolve_device
from gankit.errors import GankitError, IgnoredSettingWarning
from gankit.objectives import ConditionalGANObjective, build_objective
from gankit.train import distributed
from gankit.train.checkpoint import STATE_FILE, load_checkpoint
from gankit.train.loop import (
    LOAD_STATE_KEYS,
    RESUME_STATE_KEYS,
    Trainer,
    load_weights,
)


def train(preset_or_config: str | Path | RunConfig | None = None, out: str | Path | None = None,
          *, data_root: str | Path | None = None, resume: str | Path | None = None,
          progress: bool | None = None, overrides: Sequence[str] = (),
          **config_values: Any) -> Path:
    """Train a preset, a YAML file or a `RunConfig`, and return the run folder.

    Args:
        preset_or_config: a preset name, a YAML path, a `RunConfig`, or None for the default
            preset (or, with `resume`, the run's own config).
        out: the run folder; default `runs/<name>` (made unique with a suffix).
        data_root: where datasets live (else $GANKIT_DATA_ROOT, else ../shared/data).
        resume: a run folder to continue from its latest checkpoint, or one of its checkpoint
            folders to continue from that step (its later checkpoints are set aside).
        progress: show the progress bar (default: the config's `log.progress`).
        overrides: `key=value` strings as typed on the command line (`["train.d_steps=2"]`);
            one string is one override.
        **config_values: config values, as sections (`train={"steps": 100}`), dotted keys
            (`**{"train.steps": 100}`) or top-level keys (`seed=1`).

    Returns:
        The run folder.
    """
    if isinstance(overrides, str):  # not a sequence of one-letter overrides
        overrides = [overrides]
    flat_overrides = [*overrides, *flatten(config_values).items()]
    checkpoint = None
    if resume is not None:
        if out is not None:
            raise GankitError(f"--out {out} does not apply with --resume: a run continues in "
                              "its own folder")
        _, state, checkpoint = load_checkpoint(resume, required=RESUME_STATE_KEYS)
        if checkpoint.parent.name != "checkpoints":
            raise GankitError(f"cannot resume {checkpoint}: it is not in a run's checkpoints/ "
                              "folder, so there is no run to continue")
        # The run that holds the checkpoint, also when `resume` names one of its checkpoints.
        run_dir = checkpoint.parent.parent
        if preset_or_config is None:
            config = validate(apply_overrides(saved_config(state, checkpoint), flat_overrides))
        else:
            config = _config_from(preset_or_config, flat_overrides)
        changed = diff_keys(state["config"], config.to_dict())
        if changed:
            raise GankitError(f"cannot resume {run_dir}: its checkpoint was trained with a "
                              f"different config for {', '.join(changed)}")
        if config.train.steps < int(state["step"]):
            # Refused before the run's config.yaml is rewritten with fewer steps than it has.
            raise GankitError(f"cannot resume {run_dir} with train.steps={config.train.steps}: "
                              f"its checkpoint is at step {int(state['step'])}")
    else:
        config = _config_from(preset_or_config, flat_overrides)
    # Under torchrun: this process's rank (the Trainer joins the same group).
    ranks = distributed.setup(resolve_device(config.train.device).type)
    if ranks.main:
        for line in ignored_settings(config):
            warnings.warn(line, IgnoredSettingWarning, stacklevel=2)
    if resume is None:
        run_dir = Path(out) if out is not None else _fresh_run_dir(config.name)
        # All ranks take rank 0's choice of a fresh folder.
        run_dir = distributed.broadcast_object(run_dir, ranks.world)
        if (run_dir / "checkpoints").is_dir():
            raise GankitError(f"{run_dir} already holds a run; pass --resume {run_dir} to "
                              "continue it, or choose another --out")
    shown = config.log.progress if progress is None else progress
    data = build_dataset(config.data, data_root, progress=shown and ranks.main)
    trainer = Trainer(config, run_dir, data, progress=progress, data_root=data_root)
    if checkpoint is not None:
        trainer.restore(checkpoint)
    return trainer.fit()


def saved_config(state: dict, checkpoint: Path) -> RunConfig:
    """The validated config a checkpoint was saved with, or one line naming its file."""
    try:
        return validate(from_dict(state["config"]))
    except GankitError as error:
        raise GankitError(f"{checkpoint / STATE_FILE}: {error}") from None


def _config_from(source: str | Path | RunConfig | None, overrides: list) -> RunConfig:
    if isinstance(source, RunConfig):
        return validate(apply_overrides(from_dict(source.to_dict()), overrides))
    return load_config(source, overrides)


def _fresh_run_dir(name: str) -> Path:
    base = Path("runs") / name
    candidate, suffix = base, 2
    while candidate.exists():
        candidate, suffix = Path(f"{base}-{suffix}"), suffix + 1
    return candidate


def _integer(name: str, value: Any, minimum: int | None = None) -> int:
    """`value` as an int (ints and numpy/torch integers, not floats or bools), at least
    `minimum`; a GankitError naming `name` otherwise."""
    try:
        if isinstance(value, bool):
            raise TypeError
        number = operator.index(value)
    except TypeError:
        raise GankitError(f"{name}={value!r} must be an integer") from None
    if minimum is not None and number < minimum:
        raise GankitError(f"{name}={number} must be >= {minimum}")
    return number


class TrainedGAN:
    """A trained generator rebuilt from a run folder, with nothing else needed.

    Attributes:
        config: the run's `RunConfig`.
        generator: the generator nn.Module (the EMA copy where one exists), in eval mode.
        discriminator: the discriminator nn.Module (None for games without one).
        step: the training step of the checkpoint.
        checkpoint: the checkpoint folder it came from.
    """

    def __init__(self, config: RunConfig, objective, step: int, checkpoint: Path):
        self.config = config
        self.objective = objective.eval()
        self.step = step
        self.checkpoint = checkpoint

    @property
    def generator(self) -> nn.Module:
        """The generator samples come from: the weight average (EMA) where the run kept one."""
        return self.objective.sampler

    @property
    def discriminator(self) -> nn.Module | None:
        return self.objective.discriminator

    @property
    def num_classes(self) -> int:
        """How many labels a conditional model takes (0 for an unconditional one)."""
        # Not any objective's num_classes: a semi-supervised D classifies, but its G takes none.
        conditional = isinstance(self.objective, ConditionalGANObjective)
        return self.objective.num_classes if conditional else 0

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = None, batch_size: int = 1024,
               labels: Sequence[int] | torch.Tensor | None = None) -> torch.Tensor:
        """n samples on the CPU: images in [-1, 1] as N x C x H x W, or points as N x d.

        Args:
            n: how many samples.
            seed: seed of the noise; None draws fresh noise.
            batch_size: how many to generate at once (bounds memory).
            labels: conditional models only: the classes to draw, repeated in turn to fill n
                (labels=[3] gives n threes; labels=[0, 1] alternates); None draws them uniformly.
        """
        return torch.cat([self.objective.sample(latent).float().cpu()
                          for latent in self._latents(n, seed, batch_size, labels)])

    @torch.no_grad()
    def sample_with_inputs(self, n: int, seed: int | None = None, batch_size: int = 1024
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        """Paired runs only: (inputs, outputs), each N x C x H x W in [-1, 1] on the CPU, for n
        inputs drawn from the run's dataset; the outputs are `sample(n, seed)`'s."""
        if self.config.model.objective not in PAIRED_OBJECTIVES:
            raise GankitError(f"{self.config.name} is not a paired model: it takes no inputs")
        inputs, outputs = [], []
        for latent in self._latents(n, seed, batch_size):
            inputs.append(self.objective.generator.split(latent)[0].float().cpu())
            outputs.append(self.objective.sample(latent).float().cpu())
        return torch.cat(inputs), torch.cat(outputs)

    def _latents(self, n, seed, batch_size, labels=None):
        """The latent codes of n samples, in chunks of batch_size (labels: see `sample`)."""
        n, batch_size = _integer("n", n, 1), _integer("batch_size", batch_size, 1)
        seed = None if seed is None else _integer("seed", seed)
        if labels is not None:
            labels = self._label_sequence(labels, n)
        rng = torch.Generator()
        rng.manual_seed(seed) if seed is not None else rng.seed()
        device = self.objective.device
        for start in range(0, n, batch_size):
            size = min(batch_size, n - start)
            if labels is None:
                yield self.objective.sample_latent(size, rng, device)
            else:
                yield self.objective.sample_latent(size, rng, device, labels[start:start + size])

    def _label_sequence(self, labels, n: int) -> torch.Tensor:
        if not self.num_classes:
            raise GankitError(f"{self.config.name} is not a conditional model: it takes no labels")
        try:
            given = torch.as_tensor(labels)
        except (TypeError, ValueError, RuntimeError):
            raise GankitError(f"labels={labels!r} must be a sequence of class indices") from None
        if given.numel() == 0:
            raise GankitError("labels=[] names no class; give at least one, or labels=None")
        # Casting would turn 0.5 into class 0: only whole numbers name a class.
        if given.is_floating_point() or given.is_complex() or given.dtype == torch.bool:
            raise GankitError(f"labels must be integers, got {given.dtype} values")
        if given.dim() > 1:
            raise GankitError(f"labels must be one sequence, got shape {tuple(given.shape)}")
        labels = given.to(torch.int64).flatten()
        if len(labels) == 0:
            raise GankitError("labels is empty: give at least one class")
        outside = labels[(labels < 0) | (labels >= self.num_classes)]
        if len(outside):
            raise GankitError(f"label {int(outside[0])} is not in 0..{self.num_classes - 1}")
        return labels.repeat((n + len(labels) - 1) // len(labels))[:n]


def load(run_or_checkpoint: str | Path, device: str = "cpu",
         data_root: str | Path | None = None) -> TrainedGAN:
    """Rebuild the players of a run from a run folder or a checkpoint folder.

    Args:
        run_or_checkpoint: a run folder, its `checkpoints/` folder or one checkpoint folder.
        device: where to put the nets.
        data_root: where the run's dataset lives; read only for a paired run, whose samples
            are outputs for input images drawn from it.
    """
    weights, state, checkpoint = load_checkpoint(run_or_checkpoint, map_location="cpu",
                                                 required=LOAD_STATE_KEYS)
    config = saved_config(state, checkpoint)
    data = None
    if config.model.objective in PAIRED_OBJECTIVES:
        data = build_dataset(config.data, data_root, progress=False)
    objective = build_objective(config, tuple(state["sample_shape"]), data=data)
    if "generator_ema" in weights:
        objective.generator_ema = copy.deepcopy(objective.generator)
    for name, net in [*objective.players().items(), ("generator_ema", objective.generator_ema)]:
        if net is None:
            continue
        load_weights(net, weights, name, checkpoint)
    return TrainedGAN(config, objective.to(resolve_device(device)), int(state["step"]),
                      checkpoint)
