"""Conditional GANs: projection and AC-GAN discriminators, label codes, sampling by label."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils import parametrize

import gankit
from conftest import tiny_config
from gankit.data import build_dataset
from gankit.errors import GankitError
from gankit.nets.conditional import AuxiliaryClassifierDiscriminator, ProjectionDiscriminator
from gankit.nets.dcgan import DCGANDiscriminator
from gankit.nets.mlp import MLPDiscriminator
from gankit.objectives import build_objective
from gankit.train.loop import Trainer


def test_projection_logit_is_head_plus_inner_product_with_the_label_embedding():
    torch.manual_seed(0)
    discriminator = ProjectionDiscriminator(MLPDiscriminator((6,), [5], "tanh"), num_classes=3)
    x, y = torch.randn(4, 6), torch.tensor([0, 1, 2, 1])
    body, head, embed = discriminator.body, discriminator.head, discriminator.embed.weight
    features = body(x)
    expected = head(features)[:, 0] + (embed[y] * features).sum(dim=1)
    assert torch.allclose(discriminator(x, y), expected, atol=1e-6)
    # Changing the label changes the logit by exactly the difference of the projections.
    other = torch.tensor([2, 2, 2, 2])
    delta = discriminator(x, other) - discriminator(x, y)
    assert torch.allclose(delta, ((embed[other] - embed[y]) * features).sum(dim=1), atol=1e-6)


def test_projection_on_dcgan_projects_the_flattened_last_feature_map():
    torch.manual_seed(0)
    base = DCGANDiscriminator((1, 28, 28), width=8, spectral_norm=True)
    discriminator = ProjectionDiscriminator(base, num_classes=10)
    assert discriminator.embed.weight.shape == (10, 16 * 7 * 7)
    assert parametrize.is_parametrized(discriminator.embed, "weight")  # as the body's layers
    logits = discriminator(torch.randn(5, 1, 28, 28), torch.arange(5))
    assert logits.shape == (5,) and torch.isfinite(logits).all()


def test_auxiliary_classifier_shares_the_body_and_returns_class_logits():
    torch.manual_seed(0)
    base = DCGANDiscriminator((1, 28, 28), width=8)
    discriminator = AuxiliaryClassifierDiscriminator(base, num_classes=10)
    logits, classes = discriminator(torch.randn(5, 1, 28, 28))
    assert logits.shape == (5,) and classes.shape == (5, 10)
    # With a fully connected read-out both heads read its hidden layer.
    read_out = AuxiliaryClassifierDiscriminator(DCGANDiscriminator((1, 28, 28), width=8, hidden=6),
                                                num_classes=10)
    assert read_out.classifier.in_features == 6
    assert read_out(torch.randn(5, 1, 28, 28))[1].shape == (5, 10)
    mlp = AuxiliaryClassifierDiscriminator(MLPDiscriminator((6,), [5]), num_classes=4)
    assert mlp.classifier.in_features == 5 and mlp(torch.randn(2, 6))[1].shape == (2, 4)


@pytest.mark.parametrize("kind", ["projection", "acgan"])
def test_latent_codes_carry_the_requested_labels(kind):
    config = tiny_config(**{"model.objective": kind})
    objective = build_objective(config, (1, 8, 8))
    code = objective.sample_latent(6, torch.Generator().manual_seed(0), labels=[3, 1, 4, 1, 5, 9])
    assert code.shape == (6, 8 + 10)
    assert objective.labels_of(code).tolist() == [3, 1, 4, 1, 5, 9]
    assert torch.equal(code[:, 8:], F.one_hot(torch.tensor([3, 1, 4, 1, 5, 9]), 10).float())
    grid = objective.fixed_latent(25, torch.Generator().manual_seed(0))
    assert objective.labels_of(grid).tolist() == [i % 10 for i in range(25)]
    with pytest.raises(GankitError, match="0..9"):
        objective.sample_latent(2, labels=[0, 10])


class TwoLabelledPoints:
    """Label 0 -> N(-2, 0.1^2), label 1 -> N(+2, 0.1^2): one answer per label, none without."""

    kind = "vectors"
    name = "two-labelled-points"
    shape = (1,)

    def sample_labeled(self, n, generator=None):
        labels = torch.randint(2, (n,), generator=generator)
        points = (4 * labels - 2).float()[:, None] + 0.1 * torch.randn(n, 1, generator=generator)
        return points, labels


@pytest.mark.parametrize("kind", ["projection", "acgan"])
def test_conditional_game_learns_a_different_answer_per_label(tmp_path, kind):
    config = tiny_config("toy-gaussian", **{
        "model.objective": kind, "model.num_classes": 2, "model.latent_dim": 2,
        "model.g_hidden": [32], "model.d_hidden": [32], "model.latent": "normal",
        "train.batch_size": 64, "train.optimizer": "adam", "train.g_lr": 2e-3,
        "train.d_lr": 2e-3, "train.d_steps": 1})
    trainer = Trainer(config, tmp_path / kind, TwoLabelledPoints())
    for _ in range(600):
        trainer.train_step()
    for label, target in [(0, -2.0), (1, 2.0)]:
        code = trainer.objective.sample_latent(2000, torch.Generator().manual_seed(1),
                                               labels=torch.full((2000,), label))
        points = trainer.objective.sample(code)[:, 0]
        assert points.mean().item() == pytest.approx(target, abs=0.3), (label, points.mean())


def test_conditional_objective_refuses_unlabelled_data(tmp_path):
    config = tiny_config("toy-gaussian", **{"model.objective": "projection"})
    with pytest.raises(GankitError, match="has no labels"):
        Trainer(config, tmp_path / "run", build_dataset(config.data))


def test_trained_conditional_run_samples_by_label_from_the_api_and_cli(tmp_path, capsys):
    run = gankit.train(tiny_config(**{"model.objective": "acgan"}), out=tmp_path / "run")
    model = gankit.load(run)
    assert model.num_classes == 10
    samples = model.sample(7, seed=0, labels=[2, 5])
    assert samples.shape == (7, 1, 8, 8)
    # The same noise and labels give the same images; another label gives other images.
    assert torch.equal(samples, model.sample(7, seed=0, labels=[2, 5]))
    assert not torch.equal(samples, model.sample(7, seed=0, labels=[3]))
    with pytest.raises(GankitError, match="label 12 is not in 0..9"):
        model.sample(3, labels=[1, 12])
    # 0.5 was cast to class 0, a nested list flattened and a string a TypeError.
    for labels, message in (([0.5], "labels must be integers"),
                            ([[0, 1]], r"one sequence, got shape \(1, 2\)"),
                            ("abc", "must be a sequence of class indices"),
                            ([], r"labels=\[\] names no class")):
        with pytest.raises(GankitError, match=message):
            model.sample(3, labels=labels)
    assert torch.equal(model.sample(4, seed=0, labels=np.array([2, 5])),
                       model.sample(4, seed=0, labels=torch.tensor([2, 5])))
    from gankit.cli import main

    assert main(["sample", str(run), "-n", "6", "--labels", "0,1,2",
                 "--out", str(tmp_path / "by-label.png")]) == 0
    assert (tmp_path / "by-label.png").is_file()
    assert main(["sample", str(run), "--labels", "one,two"]) == 2
    assert "--labels 'one,two' must be comma-separated integers" in capsys.readouterr().err
    assert main(["sample", str(run), "--labels", ""]) == 2  # was ignored: an unlabelled grid
    assert "--labels '' must be comma-separated integers" in capsys.readouterr().err


def test_unconditional_runs_take_no_labels(tmp_path):
    model = gankit.load(gankit.train(tiny_config(), out=tmp_path / "run"))
    assert model.num_classes == 0
    with pytest.raises(GankitError, match="not a conditional model"):
        model.sample(4, labels=[1])
