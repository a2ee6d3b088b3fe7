"""Adversarial losses on discriminator logits, with the gradient penalties that regularise them.

Every loss takes the discriminator's raw output ``a`` (a logit, D = sigmoid(a)), never a
probability: the softplus / logsigmoid forms below stay finite for any logit, whereas
``log(sigmoid(a))`` underflows to ``-inf`` once ``a`` is a few dozen below zero.

The scaling follows Goodfellow's NIPS 2016 tutorial (and the HSE 2017 lecture deck), with the
1/2 factors: the standard discriminator loss is

    L_D = 1/2 E[-log D(x)] + 1/2 E[-log(1 - D(G(z)))],

and the minimax generator loss is the G-dependent part of -L_D. All losses return a scalar:
the mean over every element of the logits.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

# exp(logit) for the maximum-likelihood generator loss overflows float32 beyond a logit of ~88.
# exp(50) ~ 5.2e21 is finite in float32 and bfloat16, so logits are capped here first;
# beyond the cap the loss is flat and its gradient is exactly 0 (finite, never inf or NaN).
# float16 (max ~6.5e4) would still overflow; use float32 or bfloat16 for this loss.
ML_LOGIT_CAP = 50.0


def _standard_discriminator_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor
) -> torch.Tensor:
    """1/2 E[-log D(x)] + 1/2 E[-log(1 - D(G(z)))]; -log sigmoid(a) = softplus(-a)."""
    return 0.5 * F.softplus(-real_logits).mean() + 0.5 * F.softplus(fake_logits).mean()


def _least_squares_discriminator_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor
) -> torch.Tensor:
    """LSGAN with targets a=0 (fake), b=1 (real) on the raw output."""
    return 0.5 * (real_logits - 1.0).square().mean() + 0.5 * fake_logits.square().mean()


def _hinge_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]."""
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def _wasserstein_discriminator_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor
) -> torch.Tensor:
    """Critic loss E[D(G(z))] - E[D(x)]; pair it with a gradient penalty."""
    return fake_logits.mean() - real_logits.mean()


def _minimax_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """1/2 E[log(1 - D(G(z)))]; log(1 - sigmoid(a)) = -softplus(a). Saturates when D rejects."""
    return -0.5 * F.softplus(fake_logits).mean()


def _non_saturating_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """-1/2 E[log D(G(z))]; -log sigmoid(a) = softplus(-a)."""
    return 0.5 * F.softplus(-fake_logits).mean()


def _maximum_likelihood_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """-1/2 E[exp(sigmoid^-1(D(G(z))))] = -1/2 E[exp(a)], with a capped at ML_LOGIT_CAP."""
    return -0.5 * fake_logits.clamp(max=ML_LOGIT_CAP).exp().mean()


def _least_squares_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """1/2 E[(D(G(z)) - 1)^2]: pull fakes to the real target b=1."""
    return 0.5 * (fake_logits - 1.0).square().mean()


def _negated_mean_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """-E[D(G(z))]: the generator side of both the hinge and the Wasserstein game."""
    return -fake_logits.mean()


DISCRIMINATOR_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "standard": _standard_discriminator_loss,
    "least-squares": _least_squares_discriminator_loss,
    "hinge": _hinge_discriminator_loss,
    "wasserstein": _wasserstein_discriminator_loss,
}

GENERATOR_LOSSES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "minimax": _minimax_generator_loss,
    "non-saturating": _non_saturating_generator_loss,
    "maximum-likelihood": _maximum_likelihood_generator_loss,
    "least-squares": _least_squares_generator_loss,
    "hinge": _negated_mean_generator_loss,
    "wasserstein": _negated_mean_generator_loss,
}

# The three generator losses of Goodfellow (2016) that pair with the "standard" discriminator loss.
SATURATING_FAMILY = ("minimax", "non-saturating", "maximum-likelihood")


def _lookup(registry: dict[str, Callable], kind: str, role: str) -> Callable:
    if kind not in registry:
        valid = ", ".join(registry)
        raise ValueError(f"unknown {role} loss kind {kind!r}; valid kinds: {valid}")
    return registry[kind]


def discriminator_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str = "standard"
) -> torch.Tensor:
    """Discriminator (critic) loss to minimise.

    Args:
        real_logits: discriminator logits on real samples, any shape.
        fake_logits: discriminator logits on generated samples, any shape.
        kind: one of ``DISCRIMINATOR_LOSSES``: "standard", "least-squares", "hinge",
            "wasserstein".

    Returns:
        Scalar loss (each term is a mean over all elements of its logits).

    Raises:
        ValueError: ``kind`` is not a known discriminator loss.
    """
    return _lookup(DISCRIMINATOR_LOSSES, kind, "discriminator")(real_logits, fake_logits)


def generator_loss(fake_logits: torch.Tensor, kind: str = "non-saturating") -> torch.Tensor:
    """Generator loss to minimise.

    Per-sample gradients with respect to the logit ``a`` (D = sigmoid(a)), before the 1/n of
    the mean: minimax ``-D/2``, non-saturating ``-(1-D)/2``, maximum-likelihood
    ``-D/(2(1-D)) = -exp(a)/2`` (0 beyond ``ML_LOGIT_CAP``), least-squares ``a - 1``, hinge and
    wasserstein ``-1``.

    Args:
        fake_logits: discriminator logits on generated samples, any shape.
        kind: one of ``GENERATOR_LOSSES``: "minimax", "non-saturating", "maximum-likelihood"
            (these three pair with the "standard" discriminator loss), "least-squares",
            "hinge", "wasserstein".

    Returns:
        Scalar loss (mean over all elements of ``fake_logits``).

    Raises:
        ValueError: ``kind`` is not a known generator loss.
    """
    return _lookup(GENERATOR_LOSSES, kind, "generator")(fake_logits)


def gradient_penalty(
    discriminator: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    generator: torch.Generator | None = None,
    target_norm: float = 1.0,
) -> torch.Tensor:
    """WGAN-GP penalty (Gulrajani et al. 2017) on random interpolates of real and fake samples.

    With x_hat = alpha * real + (1 - alpha) * fake and alpha ~ U[0, 1] drawn once per sample,
    returns E[(||grad_x_hat D(x_hat)||_2 - target_norm)^2]. The graph is kept
    (``create_graph=True``) so the penalty backpropagates into the discriminator's parameters.

    Args:
        discriminator: callable mapping a batch of inputs to logits (one per sample). It must
            treat samples independently (no batch norm), as the per-sample gradient is taken
            from the gradient of the summed logits.
        real: batch of real samples, shape (N, ...).
        fake: batch of generated samples, same shape as ``real``.
        generator: random generator for alpha, on ``real``'s device; a fixed seed gives a
            reproducible penalty.
        target_norm: the gradient norm the penalty pulls towards.

    Returns:
        Scalar penalty; the caller multiplies it by the weight (lambda).
    """
    # Only the interpolates are differentiated; detaching both ends keeps the penalty out of G.
    real, fake = real.detach(), fake.detach()
    alpha_shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    alpha = torch.rand(alpha_shape, generator=generator, device=real.device, dtype=real.dtype)
    interpolates = (alpha * real + (1.0 - alpha) * fake).requires_grad_(True)
    logits = discriminator(interpolates)
    (input_grads,) = torch.autograd.grad(logits.sum(), interpolates, create_graph=True)
    # One norm per logit: a packed D (PacGAN) sees several samples as one input.
    grad_norms = torch.linalg.vector_norm(input_grads.reshape(len(logits), -1), dim=1)
    return (grad_norms - target_norm).square().mean()


def r1_penalty(real_logits: torch.Tensor, real_inputs: torch.Tensor) -> torch.Tensor:
    """R1 penalty (Mescheder et al. 2018): E[||grad_x D(x)||^2] on real samples.

    Args:
        real_logits: discriminator logits computed from ``real_inputs``.
        real_inputs: the real batch, shape (N, ...), with ``requires_grad=True`` set before the
            discriminator call.

    Returns:
        Scalar penalty (squared gradient summed over non-batch dims, mean over the batch), with
        the graph kept so it backpropagates into the discriminator. The caller multiplies it
        by gamma / 2.

    Raises:
        ValueError: ``real_inputs`` does not require grad.
    """
    if not real_inputs.requires_grad:
        raise ValueError(
            "r1_penalty needs real_inputs.requires_grad=True, set before computing real_logits"
        )
    (input_grads,) = torch.autograd.grad(real_logits.sum(), real_inputs, create_graph=True)
    # Per logit, like the gradient penalty: a packed D's input is the whole pack.
    return input_grads.square().reshape(len(real_logits), -1).sum(dim=1).mean()


def mode_seeking_loss(outputs_a: torch.Tensor, outputs_b: torch.Tensor,
                      noise_a: torch.Tensor, noise_b: torch.Tensor,
                      eps: float = 1e-5) -> torch.Tensor:
    """Mode seeking (Mao et al. 2019, MSGAN): 1 / (d(outputs) / d(noise) + eps), to minimise.

    The outputs are G's for the same conditions with two noise draws; d is the mean absolute
    difference over the batch, as in the paper's code. A conditional G that ignores its noise
    has ratio 0 and a large loss, so minimising it pushes G to map distinct noise to distinct
    outputs.

    Args:
        outputs_a, outputs_b: G's outputs for the same conditions, shape (N, ...).
        noise_a, noise_b: the noise vectors that made them, shape (N, d).
        eps: keeps the loss finite at ratio 0.

    Returns:
        Scalar loss.
    """
    ratio = (outputs_a - outputs_b).abs().mean() / (noise_a - noise_b).abs().mean()
    return 1 / (ratio + eps)


def d_probability(logits: torch.Tensor) -> torch.Tensor:
    """D = sigmoid(logits), for logs and pictures only; the losses never take probabilities.

    Args:
        logits: discriminator logits, any shape.

    Returns:
        Probabilities that each input is real, same shape as ``logits``.
    """
    return torch.sigmoid(logits)
