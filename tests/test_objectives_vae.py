"""The VAE baseline: the ELBO's terms, its decoder is the GAN's generator, and it trains,
resumes and loads through the same loop and run folder as a GAN."""

from __future__ import annotations

import json
import math

import pytest
import torch

import gankit
from conftest import TINY, tiny_config
from gankit.data import build_dataset
from gankit.errors import GankitError
from gankit.nets.mlp import MLPGenerator
from gankit.nets.vae import VAEEncoder, VariationalAutoencoder
from gankit.objectives import build_objective
from gankit.objectives.vae import VAEObjective, bernoulli_reconstruction, gaussian_kl
from gankit.train.loop import Trainer

VAE = {"model.objective": "vae", "train.g_lr": 1e-3, "train.betas": [0.9, 0.999]}


def make_trainer(tmp_path, name="run", **overrides):
    config = tiny_config("digits-mlp", **{**VAE, **overrides})
    return Trainer(config, tmp_path / name, build_dataset(config.data))


def test_kl_term_is_the_closed_form():
    mu = torch.tensor([[1.0, 0.0], [0.0, -2.0]])
    logvar = torch.tensor([[0.0, math.log(4.0)], [0.0, 0.0]])
    # 0.5 * sum(mu^2 + sigma^2 - 1 - log sigma^2), row by row.
    expected = torch.tensor([0.5 * (1 + (4 - 1 - math.log(4))), 0.5 * 4])
    assert torch.allclose(gaussian_kl(mu, logvar), expected)
    normal = torch.distributions.Normal
    reference = torch.distributions.kl_divergence(normal(mu, (0.5 * logvar).exp()),
                                                  normal(0.0, 1.0)).sum(dim=1)
    assert torch.allclose(gaussian_kl(mu, logvar), reference)


def test_reconstruction_term_is_the_bernoulli_negative_log_likelihood():
    # Probabilities 0.5 and 0.75; pixels -1 (target 0), 1 (target 1), 0 (soft target 0.5).
    logits = torch.tensor([[0.0, math.log(3.0)], [math.log(3.0), 0.0]])
    images = torch.tensor([[-1.0, 1.0], [0.0, 1.0]])
    expected = torch.tensor([math.log(2) - math.log(0.75),
                             -(0.5 * math.log(0.75) + 0.5 * math.log(0.25)) + math.log(2)])
    assert torch.allclose(bernoulli_reconstruction(logits, images), expected)


def test_decoder_logits_are_its_pre_tanh_output_and_stay_finite_when_saturated():
    decoder = MLPGenerator(4, (1, 2, 2), [8])
    autoencoder = VariationalAutoencoder(VAEEncoder((1, 2, 2), [8], 4), decoder)
    latent = torch.randn(3, 4)
    images, logits = autoencoder.decode_with_logits(latent)
    assert torch.equal(images, decoder(latent)) and logits.shape == images.shape
    assert torch.allclose(torch.sigmoid(logits), (images + 1) / 2, atol=1e-6)
    assert not decoder.net[-1]._forward_hooks  # the capture hook is gone after the call
    with torch.no_grad():
        decoder.net[-2].bias.fill_(50.0)  # tanh rounds to exactly 1: p = 1 for every pixel
    images, logits = autoencoder.decode_with_logits(latent)
    assert torch.all(images == 1)
    loss = bernoulli_reconstruction(logits, -torch.ones_like(images)).sum()
    loss.backward()
    assert torch.isfinite(loss) and decoder.net[-2].bias.grad.abs().min() > 0


def test_decoder_is_the_gan_generator_and_one_optimizer_trains_encoder_and_decoder(tmp_path):
    config = tiny_config("mnist-mlp", **VAE)
    vae = build_objective(config, (1, 28, 28))
    gan = build_objective(tiny_config("mnist-mlp"), (1, 28, 28))
    assert isinstance(vae, VAEObjective) and vae.discriminator is None
    assert type(vae.generator) is type(gan.generator)
    assert {k: v.shape for k, v in vae.generator.state_dict().items()} == \
        {k: v.shape for k, v in gan.generator.state_dict().items()}
    assert vae.autoencoder.decoder is vae.generator
    assert [m.out_features for m in vae.autoencoder.encoder.modules()
            if isinstance(m, torch.nn.Linear)] == [16, 2 * 8]  # 784 -> 16 -> (mu, logvar) of 8

    trainer = make_trainer(tmp_path)
    assert set(trainer.optimizers) == {"generator"}
    optimized = {id(p) for group in trainer.optimizers["generator"].param_groups
                 for p in group["params"]}
    assert optimized == {id(p) for p in trainer.objective.autoencoder.parameters()}
    assert trainer.optimizers["generator"].param_groups[0]["lr"] == 1e-3


def test_a_tiny_vae_trains_through_the_api_and_its_loss_goes_down(tmp_path):
    run = gankit.train("digits-mlp", out=tmp_path / "vae",
                       **{**TINY, **VAE, "train.steps": 80, "log.every": 10,
                          "log.sample_every": 40, "log.checkpoint_every": 40})
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(10, 81, 10))
    for record in records:
        assert {"g_loss", "reconstruction", "kl", "g_grad_norm"} <= record.keys()
        assert record["g_loss"] == pytest.approx(record["reconstruction"] + record["kl"],
                                                 rel=1e-4)
        assert "d_loss" not in record
    assert records[-1]["g_loss"] < 0.9 * records[0]["g_loss"]
    report = (run / "report.md").read_text()
    assert "| objective | VAE: negative ELBO" in report and "Bernoulli likelihood" in report
    assert "| schedule | 80 steps, batch 16" in report  # no D steps in a game without D
    assert (run / "samples.png").is_file() and (run / "curves.png").is_file()

    model = gankit.load(run)
    samples = model.sample(10, seed=0)
    assert samples.shape == (10, 1, 8, 8)
    assert samples.min() >= -1 and samples.max() <= 1
    assert isinstance(model.generator, MLPGenerator)  # samples are decoder means of z ~ N(0, I)
    latent = torch.randn(10, 8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(samples, model.generator(latent))


def test_resume_matches_an_uninterrupted_run_and_the_average_is_of_the_decoder(tmp_path):
    values = {"train.steps": 12, "train.ema": 0.9}
    straight = make_trainer(tmp_path, "straight", **values)
    decoder_keys = set(straight.objective.generator.state_dict())
    assert set(straight.objective.generator_ema.state_dict()) == decoder_keys
    straight.fit()
    first_half = make_trainer(tmp_path, "halves", **{**values, "train.steps": 6})
    first_half.fit()
    second_half = make_trainer(tmp_path, "halves", **values)
    second_half.restore(tmp_path / "halves")
    second_half.fit()
    for net in ("autoencoder", "generator_ema"):
        reference = getattr(straight.objective, net).state_dict()
        weights = getattr(second_half.objective, net).state_dict()
        assert reference.keys() == weights.keys()
        assert all(torch.equal(reference[k], weights[k]) for k in reference), net
    loaded = gankit.load(tmp_path / "halves")
    assert loaded.generator is loaded.objective.generator_ema
    reference = straight.objective.generator_ema.state_dict()
    assert all(torch.equal(v, reference[k]) for k, v in loaded.generator.state_dict().items())
    encoder = straight.objective.autoencoder.encoder.state_dict()
    assert all(torch.equal(v, encoder[k])
               for k, v in loaded.objective.autoencoder.encoder.state_dict().items())


def test_vae_refuses_point_data_and_uniform_noise():
    config = tiny_config("toy-ring", **{"model.objective": "vae"})
    with pytest.raises(GankitError, match="needs image data; ring"):
        build_objective(config, (2,))
    config = tiny_config("digits-mlp", **{"model.objective": "vae", "model.latent": "uniform"})
    with pytest.raises(GankitError, match="model.latent=normal"):
        build_objective(config, (1, 8, 8))
