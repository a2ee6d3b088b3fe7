"""Paired (image-to-image) objectives: predict a target image from an input image.

Two games over one `PairedGenerator` G(input, noise):

- `PairedMSEObjective`: regression, minimise E||G(x, 0) - y||^2. No discriminator phase. Its
  noise input is fed zeros: the MSE minimiser is the conditional mean E[y | x], which does not
  depend on noise, so noise could only add variance; zeros make the regressor deterministic
  while keeping exactly the same network as the GAN's.
- `PairedGANObjective`: a conditional GAN as in pix2pix. D judges (input, output) pairs stacked
  as channels; G gets fresh noise and learns to produce outputs D takes for real targets of
  that input. Pure adversarial by default; `reconstruction_weight` adds pix2pix's L1 term.

The latent code. The loop, the picture grids and `sample` hand the generator one tensor, made by
`sample_latent` / `fixed_latent`. For a paired task the condition must travel with the noise, so
the code is [noise (noise_dim), input image flattened (C*H*W)]: `sample_latent` draws the inputs
from the task the objective holds (with the loop's latent RNG, so runs stay reproducible), and
the `generator` module (a `PairedCodeGenerator`) splits the code back into (input, noise). This
is the class-conditional objectives' [z, one_hot(y)] with an image in place of the label.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gankit import losses
from gankit.config import RunConfig
from gankit.errors import GankitError
from gankit.nets.paired import PairedDiscriminator, PairedGenerator
from gankit.objectives.base import Objective, PhaseResult


class PairedCodeGenerator(nn.Module):
    """Wraps a G(input, noise) so it can be called on a latent code [noise, flattened input].

    Args:
        net: a module called as net(images (N, C, H, W), noise (N, noise_dim)).
        noise_dim: the leading entries of a code that are noise.
        image_shape: (C, H, W) of the input image stored in the rest of the code.
    """

    def __init__(self, net: nn.Module, noise_dim: int, image_shape: tuple[int, int, int]):
        super().__init__()
        self.net = net
        self.noise_dim = noise_dim
        self.image_shape = tuple(image_shape)

    def split(self, code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(input images (N, C, H, W), noise (N, noise_dim)) from codes (N, noise_dim + C*H*W)."""
        expected = self.noise_dim + math.prod(self.image_shape)
        if code.dim() != 2 or code.shape[1] != expected:
            raise GankitError(f"a paired latent code has {expected} entries per row "
                              f"(noise + image), got shape {tuple(code.shape)}")
        noise, images = code[:, :self.noise_dim], code[:, self.noise_dim:]
        return images.reshape(-1, *self.image_shape), noise

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        images, noise = self.split(code)
        return self.net(images, noise)


def make_code(images: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The latent code [noise, flattened input] of `images` (N, C, H, W) and `noise` (N, d)."""
    if len(images) != len(noise):
        raise GankitError(f"{len(images)} input images but {len(noise)} noise vectors")
    return torch.cat([noise, images.flatten(1).to(noise)], dim=1)


class PairedObjective(Objective):
    """What both paired games share: the task, the code layout, the real batch of pairs.

    Args:
        net: the generator, called as net(images, noise) (e.g. `PairedGenerator`).
        task: the data, with `sample_inputs(n, generator)`, `sample_pairs(n, generator)`,
            `first_pairs(n)` and `shape` (e.g. `gankit.data.shifted.ShiftedDigits`).
        noise_dim: size of the noise vector (the `latent_dim` of the prior).
    """

    def __init__(self, net: nn.Module, task, noise_dim: int):
        super().__init__(noise_dim, latent="normal")
        self.task = task  # a plain attribute, not a module: it holds data, no weights
        self.generator = PairedCodeGenerator(net, noise_dim, tuple(task.shape))
        self.discriminator = None

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """The noise part of n codes (on the CPU)."""
        return super().sample_latent(n, generator, "cpu")

    def sample_latent(self, n: int, generator: torch.Generator | None = None,
                      device: torch.device | str = "cpu") -> torch.Tensor:
        """n codes [noise, input digit], the inputs drawn from the task with `generator`."""
        noise = self.noise(n, generator)
        return make_code(self.task.sample_inputs(n, generator), noise).to(device)

    def fixed_latent(self, n: int, generator: torch.Generator,
                     device: torch.device | str = "cpu") -> torch.Tensor:
        """Codes for the run's picture grids: the task's first n inputs (those of real.png)."""
        inputs = self.task.first_pairs(n)[0]
        return make_code(inputs, self.noise(n, generator)).to(device)

    def check_data(self, data) -> None:
        if not hasattr(data, "sample_pairs"):
            raise GankitError(f"{getattr(data, 'name', data)!r} is not a paired task: a paired "
                              f"objective needs (input, target) pairs such as ShiftedDigits")

    def real_batch(self, data, n: int, generator: torch.Generator):
        """(input, target, direction) pairs from the task; `data` must be a paired task."""
        self.check_data(data)
        return data.sample_pairs(n, generator)

    @torch.no_grad()
    def predict(self, inputs: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Outputs of the sampling generator for input images, with the given noise (or the
        objective's own default: zeros for the regressor, N(0, I) draws for the GAN)."""
        if noise is None:
            noise = self.noise(len(inputs))
        code = make_code(inputs, noise).to(self.device)
        return self.sample(code)


class PairedMSEObjective(PairedObjective):
    """Regression with the GAN's generator: minimise the mean squared error to the target.

    The noise part of every code is zeros (see the module docstring); the G phase reads its
    inputs and targets from the loop's real batch of pairs.

    Args:
        net, task, noise_dim: as in `PairedObjective`.
    """

    generator_uses_real = True

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.zeros(n, self.latent_dim)

    def describe(self) -> str:
        return "mean squared error to the target, G fed zero noise, no discriminator"

    def discriminator_phase(self, real, latent: torch.Tensor) -> PhaseResult:
        raise GankitError("the MSE objective has no discriminator phase")

    def generator_phase(self, latent: torch.Tensor, real=None) -> PhaseResult:
        inputs, targets = real[0], real[1]
        # The loop's latent carries other inputs; the regression needs the pairs' own.
        outputs = self.generator.net(inputs, torch.zeros_like(latent[:, :self.latent_dim]))
        g_loss = F.mse_loss(outputs, targets)
        return g_loss, {"g_loss": g_loss.detach()}


class PairedGANObjective(PairedObjective):
    """A conditional GAN on pairs: D(input, output) -> logit, G(input, noise) -> output.

    Args:
        net, task, noise_dim: as in `PairedObjective`.
        discriminator: called as discriminator(inputs, outputs) -> logits (N,)
            (e.g. `PairedDiscriminator`).
        loss: the D loss family of `gankit.losses` ("standard" by default).
        generator_loss: with "standard": "non-saturating" (default), "minimax" or
            "maximum-likelihood"; other families use their own G loss.
        reconstruction_weight: weight of pix2pix's L1 term |G(x, z) - y| added to G's loss;
            0 (the default) is the pure adversarial game. A large weight pulls G towards the
            conditional median and brings the blur back.
        mode_seeking_weight: weight of MSGAN's mode-seeking term
            (`gankit.losses.mode_seeking_loss`) added to G's loss; 0 (the default) leaves it
            out. pix2pix's G learns to ignore its noise; this term pays it to use it. With it,
            each G step feeds half its batch's inputs twice, with two noise draws.
    """

    def __init__(self, net: nn.Module, task, noise_dim: int, discriminator: nn.Module,
                 loss: str = "standard", generator_loss: str = "non-saturating",
                 reconstruction_weight: float = 0.0, mode_seeking_weight: float = 0.0):
        super().__init__(net, task, noise_dim)
        for name, value in (("reconstruction_weight", reconstruction_weight),
                            ("mode_seeking_weight", mode_seeking_weight)):
            if not value >= 0:
                raise GankitError(f"{name}={value} must be >= 0")
        self.discriminator = discriminator
        self.d_loss_kind = loss
        self.g_loss_kind = generator_loss if loss == "standard" else loss
        self.reconstruction_weight = reconstruction_weight
        self.mode_seeking_weight = mode_seeking_weight
        # Only the L1 term needs the real target of G's own inputs.
        self.generator_uses_real = reconstruction_weight > 0

    def describe(self) -> str:
        text = (f"conditional GAN, D judges (input, output) stacked as channels; "
                f"D: {self.d_loss_kind}, G: {self.g_loss_kind}")
        if self.reconstruction_weight:
            text += f", plus L1 to the target x {self.reconstruction_weight:g}"
        if self.mode_seeking_weight:
            text += f", plus mode seeking x {self.mode_seeking_weight:g}"
        return text

    def discriminator_phase(self, real, latent: torch.Tensor) -> PhaseResult:
        real_inputs, real_targets = real[0], real[1]
        # Fake pairs use the code's own inputs: a fake pair need not share its input with a
        # real one, only be judged against the same kind of input.
        fake_inputs, _ = self.generator.split(latent)
        fake = self.generate(latent)
        real_logits = self.discriminator(real_inputs, real_targets)
        fake_logits = self.discriminator(fake_inputs, fake)
        d_loss = losses.discriminator_loss(real_logits, fake_logits, self.d_loss_kind)
        return d_loss, {"d_loss": d_loss.detach(),
                        "d_real": losses.d_probability(real_logits.detach()).mean(),
                        "d_fake": losses.d_probability(fake_logits.detach()).mean()}

    def generator_phase(self, latent: torch.Tensor, real=None) -> PhaseResult:
        inputs, noise = self.generator.split(latent)
        targets = None
        if self.reconstruction_weight > 0:
            # The L1 term compares with a real target, so G works on the real pairs' inputs.
            inputs, targets = real[0], real[1]
        if self.mode_seeking_weight > 0:
            # Two noise draws for each input: the batch's first half of inputs, twice.
            half = len(latent) // 2
            if half == 0:
                raise GankitError("mode seeking needs a batch of at least 2")
            pairs = torch.arange(half, device=inputs.device).repeat(2)
            inputs, noise = inputs[pairs], noise[:2 * half]
            targets = None if targets is None else targets[pairs]
        # The net itself: a code would only be built here to be split straight back.
        outputs = self.generator.net(inputs, noise)
        fake_logits = self.discriminator(inputs, outputs)
        g_loss = losses.generator_loss(fake_logits, self.g_loss_kind)
        stats = {"g_loss": g_loss.detach(),
                 "d_fake_g": losses.d_probability(fake_logits.detach()).mean()}
        if targets is not None:
            l1 = (outputs - targets).abs().mean()
            g_loss = g_loss + self.reconstruction_weight * l1
            stats["g_l1"] = l1.detach()
        if self.mode_seeking_weight > 0:
            seeking = losses.mode_seeking_loss(outputs[:half], outputs[half:],
                                               noise[:half], noise[half:])
            g_loss = g_loss + self.mode_seeking_weight * seeking
            stats["g_mode_seeking"] = seeking.detach()
        return g_loss, stats


def build_paired(config: RunConfig, data) -> PairedObjective:
    """The paired objective a run config describes, with fresh players, on the task `data`.

    `model.arch=paired`: a `PairedGenerator` of width `model.g_width` (or `model.width`) with
    `model.latent_dim` noise units and `model.g_batchnorm`; for paired-gan a
    `PairedDiscriminator` of width `model.width` with a `model.d_fc_width`-unit dense layer.

    G draws its initial weights from the global stream as the loop seeded it; D from its own
    stream, seed + 1, so that D's shape never moves G's start and the regressor (no D) starts
    from the GANs' G. The multimodal study's runs have always been seeded this way.
    """
    model, loss = config.model, config.loss
    shape = tuple(data.shape)
    net = PairedGenerator(shape, model.latent_dim, width=model.g_width or model.width,
                          batchnorm=model.g_batchnorm)
    if model.objective == "paired-mse":
        return PairedMSEObjective(net, data, model.latent_dim)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed + 1)
        discriminator = PairedDiscriminator(shape, width=model.width, hidden=model.d_fc_width)
    return PairedGANObjective(net, data, model.latent_dim, discriminator, loss=loss.name,
                              generator_loss=loss.generator,
                              reconstruction_weight=loss.reconstruction_weight,
                              mode_seeking_weight=loss.mode_seeking_weight)
