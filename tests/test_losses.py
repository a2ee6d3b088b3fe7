"""Adversarial losses and penalties checked against closed forms written from D = 1/(1+e^-a)."""

from __future__ import annotations

import math

import pytest
import torch

from gankit.losses import (
    DISCRIMINATOR_LOSSES,
    GENERATOR_LOSSES,
    ML_LOGIT_CAP,
    SATURATING_FAMILY,
    d_probability,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    mode_seeking_loss,
    r1_penalty,
)

# Offsets keep the hinge kinks (real = 1, fake = -1) off the grid, where relu' is a convention.
REAL_LOGITS = torch.linspace(-5.0, 5.0, 11, dtype=torch.float64) + 0.25
FAKE_LOGITS = torch.linspace(-5.0, 5.0, 11, dtype=torch.float64) - 0.4
EXTREME_LOGITS = [-1e4, -100.0, 100.0, 1e4]


def sigmoid(a: torch.Tensor) -> torch.Tensor:
    return 1.0 / (1.0 + torch.exp(-a))


# kind -> (per-sample value, per-sample gradient wrt the logit), both as functions of (a, D).
GENERATOR_CLOSED_FORMS = {
    "minimax": (lambda a, d: 0.5 * torch.log(1.0 - d), lambda a, d: -d / 2),
    "non-saturating": (lambda a, d: -0.5 * torch.log(d), lambda a, d: -(1.0 - d) / 2),
    "maximum-likelihood": (
        lambda a, d: -0.5 * d / (1.0 - d),  # exp(sigmoid^-1(D)) = D / (1 - D)
        lambda a, d: -0.5 * d / (1.0 - d),
    ),
    "least-squares": (lambda a, d: 0.5 * (a - 1.0) ** 2, lambda a, d: a - 1.0),
    "hinge": (lambda a, d: -a, lambda a, d: -torch.ones_like(a)),
    "wasserstein": (lambda a, d: -a, lambda a, d: -torch.ones_like(a)),
}

# kind -> (real value, fake value, real gradient, fake gradient), per sample, as functions of
# (logit, D).
DISCRIMINATOR_CLOSED_FORMS = {
    "standard": (
        lambda r, d: -0.5 * torch.log(d),
        lambda f, d: -0.5 * torch.log(1.0 - d),
        lambda r, d: 0.5 * (d - 1.0),
        lambda f, d: 0.5 * d,
    ),
    "least-squares": (
        lambda r, d: 0.5 * (r - 1.0) ** 2,
        lambda f, d: 0.5 * f**2,
        lambda r, d: r - 1.0,
        lambda f, d: f,
    ),
    "hinge": (
        lambda r, d: torch.where(r < 1.0, 1.0 - r, 0.0),
        lambda f, d: torch.where(f > -1.0, 1.0 + f, 0.0),
        lambda r, d: -(r < 1.0).to(r.dtype),
        lambda f, d: (f > -1.0).to(f.dtype),
    ),
    "wasserstein": (
        lambda r, d: -r,
        lambda f, d: f,
        lambda r, d: -torch.ones_like(r),
        lambda f, d: torch.ones_like(f),
    ),
}


def test_registries_cover_the_documented_kinds():
    assert set(DISCRIMINATOR_LOSSES) == set(DISCRIMINATOR_CLOSED_FORMS)
    assert set(GENERATOR_LOSSES) == set(GENERATOR_CLOSED_FORMS)
    assert set(SATURATING_FAMILY) <= set(GENERATOR_LOSSES)


@pytest.mark.parametrize("kind", sorted(GENERATOR_CLOSED_FORMS))
def test_generator_loss_value_and_gradient_match_closed_form(kind):
    value_form, grad_form = GENERATOR_CLOSED_FORMS[kind]
    logits = FAKE_LOGITS.clone().requires_grad_(True)
    d = sigmoid(FAKE_LOGITS)
    n = len(FAKE_LOGITS)

    loss = generator_loss(logits, kind)
    loss.backward()

    torch.testing.assert_close(loss.detach(), value_form(FAKE_LOGITS, d).mean())
    torch.testing.assert_close(logits.grad, grad_form(FAKE_LOGITS, d) / n)


@pytest.mark.parametrize("kind", sorted(DISCRIMINATOR_CLOSED_FORMS))
def test_discriminator_loss_value_and_gradients_match_closed_form(kind):
    real_value, fake_value, real_grad, fake_grad = DISCRIMINATOR_CLOSED_FORMS[kind]
    real = REAL_LOGITS.clone().requires_grad_(True)
    fake = FAKE_LOGITS.clone().requires_grad_(True)
    d_real, d_fake = sigmoid(REAL_LOGITS), sigmoid(FAKE_LOGITS)
    n = len(REAL_LOGITS)

    loss = discriminator_loss(real, fake, kind)
    loss.backward()

    expected = real_value(REAL_LOGITS, d_real).mean() + fake_value(FAKE_LOGITS, d_fake).mean()
    torch.testing.assert_close(loss.detach(), expected)
    torch.testing.assert_close(real.grad, real_grad(REAL_LOGITS, d_real) / n)
    torch.testing.assert_close(fake.grad, fake_grad(FAKE_LOGITS, d_fake) / n)


def test_multi_dim_logits_are_averaged_over_all_elements():
    grid = FAKE_LOGITS[:10].reshape(2, 5)
    flat = grid.flatten()
    torch.testing.assert_close(generator_loss(grid, "minimax"), generator_loss(flat, "minimax"))
    torch.testing.assert_close(
        discriminator_loss(grid, grid.flip(0), "standard"),
        discriminator_loss(flat, grid.flip(0).flatten(), "standard"),
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("kind", sorted(GENERATOR_LOSSES))
def test_generator_loss_is_finite_at_extreme_logits(kind, dtype):
    logits = torch.tensor(EXTREME_LOGITS, dtype=dtype, requires_grad=True)
    loss = generator_loss(logits, kind)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("kind", sorted(DISCRIMINATOR_LOSSES))
def test_discriminator_loss_is_finite_at_extreme_logits(kind, dtype):
    real = torch.tensor(EXTREME_LOGITS, dtype=dtype, requires_grad=True)
    fake = torch.tensor(EXTREME_LOGITS[::-1], dtype=dtype, requires_grad=True)
    loss = discriminator_loss(real, fake, kind)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(real.grad).all()
    assert torch.isfinite(fake.grad).all()


def test_maximum_likelihood_loss_is_capped_beyond_ml_logit_cap():
    logits = torch.tensor([ML_LOGIT_CAP - 1.0, ML_LOGIT_CAP + 10.0], requires_grad=True)
    loss = generator_loss(logits, "maximum-likelihood")
    loss.backward()
    expected = -0.25 * (math.exp(ML_LOGIT_CAP - 1.0) + math.exp(ML_LOGIT_CAP))
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert logits.grad[0].item() == pytest.approx(-0.25 * math.exp(ML_LOGIT_CAP - 1.0), rel=1e-5)
    assert logits.grad[1].item() == 0.0


def test_minimax_saturates_where_non_saturating_does_not():
    n = 4
    rejected = torch.full((n,), -20.0, dtype=torch.float64)
    minimax_logits = rejected.clone().requires_grad_(True)
    generator_loss(minimax_logits, "minimax").backward()
    non_saturating_logits = rejected.clone().requires_grad_(True)
    generator_loss(non_saturating_logits, "non-saturating").backward()

    assert minimax_logits.grad.abs().max() < 1e-6
    torch.testing.assert_close(
        non_saturating_logits.grad.abs(), torch.full_like(rejected, 0.5 / n), rtol=1e-6, atol=0
    )


def test_unknown_generator_kind_raises_naming_the_kind():
    with pytest.raises(ValueError, match=r"generator loss kind 'bogus'.*valid kinds: .*hinge"):
        generator_loss(torch.zeros(3), "bogus")


def test_unknown_discriminator_kind_raises_naming_the_kind():
    with pytest.raises(ValueError, match=r"discriminator loss kind 'bogus'.*valid kinds: .*hinge"):
        discriminator_loss(torch.zeros(3), torch.zeros(3), "bogus")


@pytest.mark.parametrize("sample_shape", [(2,), (1, 4, 4)])
def test_gradient_penalty_of_linear_critic_is_exact_and_reaches_the_weights(sample_shape):
    torch.manual_seed(0)
    batch = 8
    real = torch.randn(batch, *sample_shape, dtype=torch.float64)
    fake = torch.randn(batch, *sample_shape, dtype=torch.float64)
    weight = torch.randn(math.prod(sample_shape), dtype=torch.float64, requires_grad=True)

    def linear_critic(x):
        return x.flatten(1) @ weight

    penalty = gradient_penalty(linear_critic, real, fake, torch.Generator().manual_seed(1))
    penalty.backward()

    # grad_x (w . x) = w at every point, whatever the interpolation weights are.
    norm = weight.detach().norm()
    torch.testing.assert_close(penalty.detach(), (norm - 1.0) ** 2)
    torch.testing.assert_close(weight.grad, 2.0 * (norm - 1.0) * weight.detach() / norm)
    assert weight.grad.norm() > 0


def test_gradient_penalty_interpolates_per_sample_with_the_given_generator():
    torch.manual_seed(0)
    real = torch.randn(6, 3, dtype=torch.float64)
    fake = torch.randn(6, 3, dtype=torch.float64)

    def half_squared_norm(x):
        return 0.5 * x.square().sum(dim=1)

    penalty = gradient_penalty(half_squared_norm, real, fake, torch.Generator().manual_seed(7))
    repeat = gradient_penalty(half_squared_norm, real, fake, torch.Generator().manual_seed(7))
    other_seed = gradient_penalty(half_squared_norm, real, fake, torch.Generator().manual_seed(8))

    # grad of 1/2 ||x||^2 is x, so the penalty is E[(||x_hat|| - 1)^2] with the same alpha draw.
    alpha = torch.rand(6, 1, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    interpolates = alpha * real + (1.0 - alpha) * fake
    expected = (interpolates.norm(dim=1) - 1.0).square().mean()
    torch.testing.assert_close(penalty, expected)
    assert penalty.item() == repeat.item()
    assert penalty.item() != other_seed.item()


def test_gradient_penalty_respects_target_norm():
    weight = torch.tensor([3.0, 4.0], dtype=torch.float64)
    real = torch.randn(5, 2, dtype=torch.float64)
    penalty = gradient_penalty(lambda x: x @ weight, real, -real, target_norm=2.0)
    assert penalty.item() == pytest.approx((5.0 - 2.0) ** 2, rel=1e-12)


def test_r1_penalty_of_quadratic_critic_is_exact_and_reaches_the_weight():
    torch.manual_seed(0)
    real = torch.randn(8, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    scale = torch.tensor(1.7, dtype=torch.float64, requires_grad=True)

    real_logits = 0.5 * scale * real.square().flatten(1).sum(dim=1)
    penalty = r1_penalty(real_logits, real)
    penalty.backward()

    # grad_x (c/2 ||x||^2) = c x, so R1 = c^2 E||x||^2 and dR1/dc = 2 c E||x||^2.
    mean_squared_norm = real.detach().square().flatten(1).sum(dim=1).mean()
    torch.testing.assert_close(penalty.detach(), scale.detach() ** 2 * mean_squared_norm)
    torch.testing.assert_close(scale.grad, 2.0 * scale.detach() * mean_squared_norm)


def test_r1_penalty_requires_inputs_with_grad():
    real = torch.randn(4, 2)
    with pytest.raises(ValueError, match="requires_grad=True"):
        r1_penalty(real.sum(dim=1), real)


def test_mode_seeking_loss_value_and_gradient_match_closed_form():
    # mean |outputs_a - outputs_b| = 0.5, mean |noise_a - noise_b| = 2: ratio 0.25.
    outputs_a = torch.zeros(2, 3)
    outputs_b = torch.tensor([[0.5, -0.5, 0.5], [-0.5, 0.5, 0.5]], requires_grad=True)
    noise_a, noise_b = torch.zeros(2, 2), torch.tensor([[2.0, -2.0], [2.0, 2.0]])
    loss = mode_seeking_loss(outputs_a, outputs_b, noise_a, noise_b, eps=1e-5)
    assert loss.item() == pytest.approx(1 / (0.25 + 1e-5))
    (grad,) = torch.autograd.grad(loss, outputs_b)
    # d/dx 1/(r + eps) = -1/(r + eps)^2 * dr/dx, and dr/dx_i = sign(x_i) / (6 * 2).
    expected = -outputs_b.detach().sign() / (0.25 + 1e-5) ** 2 / 12
    assert torch.allclose(grad, expected)
    # Outputs that ignore the noise are the worst case: the loss is 1 / eps.
    assert mode_seeking_loss(outputs_a, outputs_a, noise_a, noise_b).item() == \
        pytest.approx(1e5)


def test_d_probability_is_the_sigmoid():
    torch.testing.assert_close(d_probability(REAL_LOGITS), sigmoid(REAL_LOGITS))
