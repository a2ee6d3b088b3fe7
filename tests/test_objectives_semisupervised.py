"""Semi-supervised GAN (Salimans et al. 2016): the K+1-class loss, feature matching, the
labelled subset, the noisy classifier and short runs through the Trainer and the study."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import gankit
from conftest import tiny_config
from gankit.config import load_config
from gankit.data import build_dataset
from gankit.data.images import load_idx_dataset
from gankit.errors import GankitError
from gankit.nets.semisupervised import NoisyClassifier, SemiSupervisedGenerator
from gankit.objectives import SemiSupervisedObjective, build_objective
from gankit.objectives.semisupervised import (
    classification_error,
    feature_matching_loss,
    labelled_indices,
    real_probability,
    unsupervised_loss,
)
from gankit.train.loop import Trainer

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# Tiny players on scikit-learn's 8x8 digits (labelled, no download): the whole game in seconds.
TINY_SEMI = {"data.name": "digits", "model.d_hidden": [32, 16], "model.g_hidden": [16],
             "train.batch_size": 20, "log.eval_every": 6}


# ----------------------------------------------------------------- the K+1-class loss

def test_all_zero_logits_give_d_of_k_over_k_plus_one():
    k = 10
    logits = torch.zeros(4, k)
    assert torch.allclose(real_probability(logits), torch.full((4,), k / (k + 1)))
    # -1/2 log D(x) - 1/2 log(1 - D(G(z))) with D = 10/11 on both sides.
    expected = 0.5 * math.log((k + 1) / k) + 0.5 * math.log(k + 1)
    assert unsupervised_loss(logits, logits).item() == pytest.approx(expected, rel=1e-6)


def test_real_probability_is_z_over_z_plus_one():
    logits = torch.tensor([[0.5, -1.0, 2.0], [-3.0, 0.0, 1.0]])
    z = logits.exp().sum(1)
    assert torch.allclose(real_probability(logits), z / (z + 1))


def test_unsupervised_loss_gradient_matches_the_closed_form():
    torch.manual_seed(0)
    real = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    fake = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    unsupervised_loss(real, fake).backward()
    # d/dl_k of -1/2 log D = -1/2 (1 - D) softmax_k; of -1/2 log(1 - D) = 1/2 D softmax_k.
    with torch.no_grad():
        d_real, d_fake = real_probability(real), real_probability(fake)
        real_grad = -0.5 * (1 - d_real)[:, None] * real.softmax(1) / len(real)
        fake_grad = 0.5 * d_fake[:, None] * fake.softmax(1) / len(fake)
    assert torch.allclose(real.grad, real_grad)
    assert torch.allclose(fake.grad, fake_grad)


def test_unsupervised_loss_is_finite_for_huge_logits():
    real = torch.tensor([[-1000.0, -2000.0], [1000.0, 0.0]], requires_grad=True)
    fake = torch.tensor([[1000.0, 900.0], [-1000.0, -1000.0]], requires_grad=True)
    loss = unsupervised_loss(real, fake)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(real.grad).all()
    assert torch.isfinite(fake.grad).all()


# ----------------------------------------------------------------- feature matching

def test_feature_matching_is_zero_for_identical_batches_and_the_mean_gap_otherwise():
    features = torch.randn(8, 5, generator=torch.Generator().manual_seed(0))
    assert feature_matching_loss(features, features).item() == 0.0
    # Only the batch means matter: a shuffled batch matches too.
    assert feature_matching_loss(features, features.flip(0)).item() == pytest.approx(0, abs=1e-12)
    shifted = features + torch.tensor([1.0, 0.0, 0.0, 0.0, 2.0])
    assert feature_matching_loss(features, shifted).item() == pytest.approx((1 + 4) / 5)


# ----------------------------------------------------------------- the labelled subset

def test_labelled_subset_has_per_class_labels_and_is_reproducible():
    labels = torch.arange(1000) % 10
    chosen = labelled_indices(labels, 10, 10, seed=3)
    assert len(chosen) == 100 and len(set(chosen.tolist())) == 100
    assert torch.bincount(labels[chosen], minlength=10).tolist() == [10] * 10
    assert torch.equal(chosen, labelled_indices(labels, 10, 10, seed=3))
    assert not torch.equal(chosen, labelled_indices(labels, 10, 10, seed=4))


def test_labelled_subset_refuses_a_class_with_too_few_images():
    labels = torch.tensor([0] * 20 + [1] * 3)
    with pytest.raises(GankitError, match="class 1 has only 3"):
        labelled_indices(labels, 5, 2, seed=0)


@pytest.mark.skipif(not (SHARED_DATA / "MNIST" / "raw").is_dir(), reason="MNIST not available")
def test_mnist_labelled_subset_has_ten_of_each_digit():
    data = load_idx_dataset("mnist", SHARED_DATA, "train")
    chosen = labelled_indices(data.labels, 10, 10, seed=0)
    assert torch.bincount(data.labels[chosen], minlength=10).tolist() == [10] * 10
    assert torch.equal(chosen, labelled_indices(data.labels, 10, 10, seed=0))


def test_config_rejects_zero_labels_per_class():
    with pytest.raises(GankitError, match="data.labelled_per_class"):
        load_config("mnist-semisupervised", ["data.labelled_per_class=0"])


# ----------------------------------------------------------------- the players

def test_classifier_noise_is_on_in_training_and_off_in_eval():
    torch.manual_seed(0)
    net = NoisyClassifier((1, 8, 8), [32, 16], num_classes=10)
    images = torch.rand(6, 1, 8, 8) * 2 - 1
    assert not torch.equal(net(images), net(images))
    net.eval()
    assert torch.equal(net(images), net(images))
    features, logits = net.features_and_logits(images)
    assert features.shape == (6, 16) and logits.shape == (6, 10)
    # Hidden scales are fixed (the paper's weight norm); the output layer's scale trains.
    assert not net.hidden[0].parametrizations.weight.original0.requires_grad
    assert net.output.parametrizations.weight.original0.requires_grad


def test_data_dependent_init_standardises_pre_activations():
    torch.manual_seed(0)
    net = NoisyClassifier((1, 8, 8), [32], num_classes=10).eval()  # no noise: exact check
    images = torch.rand(200, 1, 8, 8) * 2 - 1
    net.initialize(images)
    pre = net.hidden[0]((images.flatten(1) + 1) / 2)
    assert torch.allclose(pre.mean(0), torch.zeros(32), atol=1e-4)
    assert torch.allclose(pre.std(0, unbiased=False), torch.ones(32), atol=1e-3)
    assert net.initialized.item() == 1


def test_weight_average_is_swapped_in_and_back_out():
    torch.manual_seed(0)
    net = NoisyClassifier((1, 8, 8), [16], num_classes=3, average_decay=0.5).eval()
    images = torch.rand(5, 1, 8, 8) * 2 - 1
    net.initialize(images)
    start = net(images)
    with torch.no_grad():
        net.output.bias.add_(1.0)
    net.update_average()  # first update: warm-up decay 2/11, far from 0.5
    moved = net(images)
    with net.averaged() as averaged:
        between = averaged(images)
    # Logits are linear in the output bias: the average sits 9/11 of the way to the new one.
    assert torch.allclose(between, start + (moved - start) * 9 / 11, atol=1e-5)
    assert torch.equal(net(images), moved)  # the current weights are back
    assert "average.updates" in net.state_dict()
    assert all(not name.startswith("average") for name, _ in net.named_parameters())


def test_learning_rates_decay_linearly_to_zero(tmp_path):
    config = tiny_config("mnist-semisupervised", **{**TINY_SEMI, "train.lr_decay_from": 0.5,
                                                     "log.eval_every": 0})
    trainer = Trainer(config, tmp_path / "run", build_dataset(config.data))
    rates = []
    for _ in range(config.train.steps):
        trainer.train_step()
        trainer.step += 1
        rates.append(trainer.optimizers["discriminator"].param_groups[0]["lr"])
    base = config.train.d_lr
    # 12 steps, decay from step 6: 6 steps at the base rate, then 6/6, 5/6, ..., 1/6 of it.
    assert rates[:6] == [base] * 6
    assert rates[6:] == pytest.approx([base * k / 6 for k in range(6, 0, -1)])
    with pytest.raises(GankitError, match="train.lr_decay_from"):
        load_config("mnist-semisupervised", ["train.lr_decay_from=1.5"])


def test_generator_images_are_in_range():
    generator = SemiSupervisedGenerator(8, (1, 8, 8), [16])
    images = generator(torch.rand(5, 8))
    assert images.shape == (5, 1, 8, 8)
    assert images.min() >= -1 and images.max() <= 1


def test_classification_error_counts_wrong_arg_max():
    class Fixed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(()))

        def forward(self, images):  # predicts class 1 for every image
            return F.one_hot(torch.ones(len(images), dtype=torch.int64), 3).float()

    images = torch.zeros(4, 1, 2, 2, dtype=torch.uint8)
    assert classification_error(Fixed(), images, torch.tensor([1, 1, 0, 2]), 3) == 0.5


# ----------------------------------------------------------------- runs

def test_phases_report_their_statistics():
    config = tiny_config("mnist-semisupervised", **TINY_SEMI)
    data = build_dataset(config.data)
    objective = build_objective(config, tuple(data.shape))
    assert isinstance(objective, SemiSupervisedObjective) and objective.generator_uses_real
    rng = torch.Generator().manual_seed(0)
    real = objective.real_batch(data, 20, rng)
    labelled, labels, unlabelled = real
    assert labelled.shape == unlabelled.shape == (20, 1, 8, 8) and labels.shape == (20,)
    assert set(labels.tolist()) <= set(range(10))
    latent = objective.sample_latent(20, rng)
    d_loss, d_stats = objective.discriminator_phase(real, latent)
    assert {"d_loss", "supervised", "unsupervised", "train_acc", "d_real",
            "d_fake"} <= d_stats.keys()
    assert d_loss.item() == pytest.approx((d_stats["supervised"]
                                           + d_stats["unsupervised"]).item(), rel=1e-5)
    g_loss, g_stats = objective.generator_phase(latent, real)
    g_loss.backward()
    assert "g_loss" in g_stats
    assert all(p.grad is not None for p in objective.generator.parameters() if p.requires_grad)


def test_tiny_run_logs_test_error_and_reports_it(tmp_path):
    config = tiny_config("mnist-semisupervised", **TINY_SEMI)
    run = Trainer(config, tmp_path / "run", build_dataset(config.data)).fit()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    errors = [r for r in records if "test_error/n360" in r]
    assert [r["step"] for r in errors] == [6, 12]
    assert all(0 <= r["test_error/n360"] <= 1 and 0 <= r["test_error_raw/n360"] <= 1
               and "time" in r for r in errors)
    assert any("train_acc" in r for r in records)
    report = (run / "report.md").read_text()
    assert "test_error/n360" in report and "feature matching" in report
    # The data-dependent init happened once and is in the checkpoint: a reload keeps it.
    model = gankit.load(run)
    assert model.discriminator.initialized.item() == 1
    assert model.sample(4, seed=0).shape == (4, 1, 8, 8)
    # D classifies 10 digits, but G takes no labels: sampling and evaluation draw no labels
    # (they used to, and failed with a TypeError in sample_latent).
    assert model.num_classes == 0
    with pytest.raises(GankitError, match="is not a conditional model"):
        model.sample(4, labels=[0, 1])


def test_resume_matches_an_uninterrupted_run(tmp_path):
    def trainer(name, steps):
        # Constant learning rates: the decay's schedule depends on train.steps, which the
        # two halves set differently.
        config = tiny_config("mnist-semisupervised", **{**TINY_SEMI, "train.steps": steps,
                                                         "train.lr_decay_from": 1.0})
        return Trainer(config, tmp_path / name, build_dataset(config.data))

    straight = trainer("straight", 12)
    straight.fit()
    trainer("halves", 6).fit()
    second_half = trainer("halves", 12)
    second_half.restore(tmp_path / "halves")
    second_half.fit()
    # Weights, the data-dependent init flag and D's weight average all carry over.
    for name in ("generator", "discriminator"):
        reference = straight.objective.players()[name].state_dict()
        weights = second_half.objective.players()[name].state_dict()
        assert all(torch.equal(reference[k], weights[k]) for k in reference), name


def test_semi_supervised_needs_labelled_images(tmp_path):
    config = tiny_config("mnist-semisupervised", **{**TINY_SEMI, "data.name": "ring"})
    data = build_dataset(config.data)
    objective = build_objective(config, tuple(data.shape))
    with pytest.raises(GankitError, match="no labels"):
        objective.real_batch(data, 4, torch.Generator())


@pytest.mark.skipif(not (SHARED_DATA / "MNIST" / "raw").is_dir(), reason="MNIST not available")
def test_tiny_mnist_run_measures_the_10k_test_set(tmp_path):
    config = tiny_config("mnist-semisupervised", **{
        **TINY_SEMI, "data.name": "mnist", "train.steps": 3, "log.eval_every": 3,
        "log.sample_every": 3, "log.checkpoint_every": 3})
    run = Trainer(config, tmp_path / "run", build_dataset(config.data, SHARED_DATA),
                  data_root=SHARED_DATA).fit()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("test_error/n10000" in r for r in records)


def test_study_compares_the_gan_with_the_labels_only_baseline(tmp_path):
    from gankit.studies import STUDIES
    from gankit.studies.semisupervised import run

    assert STUDIES["semisupervised"] == "semisupervised"
    overrides = {**TINY_SEMI, "train.steps": 6, "log.eval_every": 3, "log.sample_every": 6,
                 "log.checkpoint_every": 6, "log.progress": False, "log.tensorboard": False,
                 "model.latent_dim": 8}
    out = run(tmp_path / "study", progress=False, overrides=overrides)
    results = json.loads((out / "results.json").read_text())
    assert results["labelled_images"] == 100
    for name in ("gan", "baseline"):
        assert [point["step"] for point in results[name]["curve"]] == [3, 6]
        assert 0 <= results[name]["test_error"] <= 1
    assert (out / "test_error.png").is_file() and (out / "gan" / "report.md").is_file()
    assert "labels only" in (out / "report.md").read_text()


def test_the_baseline_starts_from_the_gans_d_and_follows_its_learning_rates(tmp_path,
                                                                             monkeypatch):
    # It kept Adam's rate constant while the GAN's fell to 0 over the last third, and
    # initialised its weight norm on another batch than the GAN's D did.
    from gankit.nets.semisupervised import NoisyClassifier
    from gankit.studies.semisupervised import train_supervised_baseline

    config = tiny_config("mnist-semisupervised", **{**TINY_SEMI, "train.lr_decay_from": 0.5,
                                                     "log.eval_every": 0})
    initialised, rates = [], []
    real_initialize = NoisyClassifier.initialize

    def initialize(self, images):
        real_initialize(self, images)
        initialised.append({k: v.clone() for k, v in self.state_dict().items()})

    monkeypatch.setattr(NoisyClassifier, "initialize", initialize)
    trainer = Trainer(config, tmp_path / "run", build_dataset(config.data))
    for _ in range(config.train.steps):
        trainer.train_step()
        trainer.step += 1
        rates.append(trainer.optimizers["discriminator"].param_groups[0]["lr"])
    baseline_rates = []
    real_zero_grad = torch.optim.Optimizer.zero_grad  # called once a step, after the rate is set
    monkeypatch.setattr(torch.optim.Optimizer, "zero_grad", lambda self, *a, **k: (
        baseline_rates.append(self.param_groups[0]["lr"]), real_zero_grad(self, *a, **k))[1])
    train_supervised_baseline(config, progress=False)
    gan, baseline = initialised
    assert gan.keys() == baseline.keys()
    assert all(torch.equal(gan[key], baseline[key]) for key in gan)
    assert baseline_rates == rates and rates[-1] < rates[0]
