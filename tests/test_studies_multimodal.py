"""The multimodal study: its metric on hand-made cases, its players and objectives through the
training loop for a few steps, and the study's outputs from a tiny run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import gankit
from gankit.cli import main
from gankit.compare import compare
from gankit.config import load_config
from gankit.data.images import ImageData, load_idx_dataset
from gankit.data.shifted import ShiftedDigits, shift_images
from gankit.errors import GankitError
from gankit.eval.evaluate import evaluate
from gankit.eval.multimodal import (
    BLUR_SIGMA,
    DRAWS,
    both_modes_fraction,
    classify_outputs,
    gaussian_blur,
    mode_distances,
    model_summary,
    multimodal_summary,
)
from gankit.losses import mode_seeking_loss
from gankit.nets.paired import PairedDiscriminator, PairedGenerator
from gankit.objectives import build_objective
from gankit.objectives.paired import PairedGANObjective, PairedMSEObjective, make_code
from gankit.studies import STUDIES, multimodal
from gankit.train.loop import Trainer
from gankit.train.report import read_metrics

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
HAVE_MNIST = (SHARED_DATA / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz").is_file()


def blocky_task(n: int = 40, seed: int = 0) -> ShiftedDigits:
    """A stand-in for MNIST: a bright 8 x 6 block somewhere in the middle of a 28 x 28 frame."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.zeros(n, 1, 28, 28, dtype=torch.uint8)
    for i in range(n):
        top, left = torch.randint(0, 20, (2,), generator=generator).tolist()
        images[i, 0, top:top + 8, 6 + left // 2:12 + left // 2] = 255
    return ShiftedDigits(ImageData(images, torch.arange(n) % 10, name="blocks"))


# ----------------------------------------------------------------------------- the metric


def test_an_output_equal_to_a_target_is_near_that_mode():
    task = blocky_task()
    inputs = task.first_pairs(8)[0]
    left, right = task.both_targets(inputs)
    for sigma in (BLUR_SIGMA, 0.0):
        side, near, ratio = classify_outputs(left, left, right, blur_sigma=sigma)
        assert side.eq(-1).all() and near.all() and ratio.eq(0).all()
        side, near, ratio = classify_outputs(right, left, right, blur_sigma=sigma)
        assert side.eq(1).all() and near.all() and ratio.eq(0).all()
    summary = multimodal_summary(torch.cat([left, right]), torch.cat([left, left]),
                                 torch.cat([right, right]), torch.cat([inputs, inputs]))
    assert summary["near_mode"] == summary["pixel_near_mode"] == 1.0
    assert summary["left_share"] == 0.5
    assert summary["near_left"] == summary["near_right"] == 0.5
    assert summary["nearer_rmse"] == 0.0 and summary["saturation"] == 1.0
    assert summary["centroid_at_mode"] == 1.0
    assert summary["abs_shift_px"] == pytest.approx(6.0, abs=1e-4)  # blocks are never cropped


def test_the_average_of_both_targets_is_far_from_both():
    task = blocky_task()
    inputs = task.first_pairs(8)[0]
    left, right = task.both_targets(inputs)
    average = (left + right) / 2
    for sigma in (BLUR_SIGMA, 0.0):
        side, near, ratio = classify_outputs(average, left, right, blur_sigma=sigma)
        assert not near.any() and side.eq(0).all()  # a tie: it picks no side
        # Exactly halfway, by definition, with or without the (linear) blur.
        assert torch.allclose(ratio, torch.full_like(ratio, 0.5), atol=1e-5)
    distances = mode_distances(average, left, right, blur_sigma=0.0)
    assert torch.allclose(distances["left"], distances["between"] / 2)
    summary = multimodal_summary(average, left, right, inputs)
    assert summary["near_mode"] == summary["pixel_near_mode"] == 0.0
    assert math.isnan(summary["left_share"])
    assert summary["centroid_at_mode"] == 0.0 and summary["abs_shift_px"] < 1e-4


def test_the_blur_forgives_a_one_pixel_error_that_per_pixel_rmse_does_not():
    task = blocky_task()
    inputs = task.first_pairs(8)[0]
    left, right = task.both_targets(inputs)
    off_by_one = shift_images(left, torch.ones(8, dtype=torch.int64))
    _, near, blurred = classify_outputs(off_by_one, left, right)
    _, _, per_pixel = classify_outputs(off_by_one, left, right, blur_sigma=0.0)
    assert near.all() and (blurred < per_pixel).all()
    blank = -torch.ones(1, 1, 9, 9)
    assert torch.equal(gaussian_blur(blank), blank)  # the border is background


def test_equal_targets_are_never_near_and_shapes_are_checked():
    blank = -torch.ones(2, 1, 4, 4)
    side, near, ratio = classify_outputs(blank, blank, blank)
    assert not near.any() and torch.isinf(ratio).all() and side.eq(0).all()
    with pytest.raises(GankitError):
        mode_distances(blank, blank, blank[:1])
    with pytest.raises(GankitError):
        multimodal_summary(blank[:0], blank[:0], blank[:0])


def test_both_modes_counts_inputs_whose_draws_reach_each_side():
    side = torch.tensor([[-1, -1, 1], [1, -1, 1]])   # 2 draws x 3 inputs
    near = torch.tensor([[True, True, True], [True, True, False]])
    assert both_modes_fraction(side, near) == pytest.approx(1 / 3)
    with pytest.raises(GankitError):
        both_modes_fraction(side[0], near[0])


class OneSided:
    """A stand-in paired model: the left target always, or left and right in turn by draw."""

    def __init__(self, task: ShiftedDigits, alternate: bool):
        self.task, self.alternate, self.calls = task, alternate, 0

    def noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(n, 2, generator=generator)

    def predict(self, inputs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        left, right = self.task.both_targets(inputs)
        return right if self.alternate and self.calls % 2 == 0 else left


@pytest.mark.parametrize("alternate", [False, True])
def test_model_summary_counts_draws_that_reach_each_mode(alternate):
    task = blocky_task()
    summary = model_summary(OneSided(task, alternate), task, n_inputs=10, draws=4)
    assert summary["n"] == 40 and summary["near_mode"] == 1.0
    assert summary["near_left"] == (0.5 if alternate else 1.0)
    assert summary["both_modes"] == (1.0 if alternate else 0.0)


# ----------------------------------------------------------------------------- players, objectives


def test_paired_players_shapes():
    generator = PairedGenerator((1, 28, 28), noise_dim=4, width=8, bottleneck=16,
                                batchnorm=True)
    discriminator = PairedDiscriminator((1, 28, 28), width=8, hidden=16)
    images, noise = torch.rand(5, 1, 28, 28) * 2 - 1, torch.randn(5, 4)
    outputs = generator(images, noise)
    assert outputs.shape == (5, 1, 28, 28) and outputs.abs().max() <= 1
    assert discriminator(images, outputs).shape == (5,)
    with pytest.raises(ValueError):
        PairedGenerator((1, 30, 30))


def test_a_discriminator_without_its_dense_layer_reads_the_convs_straight():
    discriminator = PairedDiscriminator((1, 28, 28), width=8, hidden=0)
    assert [type(layer).__name__ for layer in discriminator.net][-2:] == ["Flatten", "Linear"]
    assert discriminator.net[-1].in_features == 2 * 8 * 7 * 7
    assert discriminator(torch.zeros(3, 1, 28, 28), torch.zeros(3, 1, 28, 28)).shape == (3,)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(),
                                                 b.state_dict().values(), strict=True))


def test_the_config_builds_the_study_players_from_their_seeds(tmp_path):
    task = blocky_task()
    seed = 5
    gan = Trainer(multimodal.model_config("paired-gan", "gan", 1, seed, mode_seeking_weight=0.1),
                  tmp_path / "gan", task).objective
    mse = Trainer(multimodal.model_config("paired-mse", "mse", 1, seed), tmp_path / "mse",
                  task).objective
    assert isinstance(gan, PairedGANObjective) and isinstance(mse, PairedMSEObjective)
    assert gan.mode_seeking_weight == 0.1 and gan.task is task and mse.discriminator is None
    torch.manual_seed(seed)  # G from the run's seed, D from seed + 1, as the study always did
    expected_g = PairedGenerator(task.shape, multimodal.NOISE_DIM, width=multimodal.G_WIDTH,
                                 batchnorm=True)
    torch.manual_seed(seed + 1)
    expected_d = PairedDiscriminator(task.shape, width=multimodal.D_WIDTH,
                                     hidden=multimodal.D_HIDDEN)
    assert _same_weights(gan.generator.net, expected_g)
    assert _same_weights(mse.generator.net, expected_g)  # the regressor starts from the GANs' G
    assert _same_weights(gan.discriminator, expected_d)
    with pytest.raises(GankitError, match="is built from its dataset"):
        build_objective(multimodal.model_config("paired-gan", "gan", 1), task.shape)


@pytest.mark.skipif(not HAVE_MNIST, reason="needs MNIST under ../shared/data")
def test_a_study_run_trains_again_from_its_config_and_samples(tmp_path):
    task = ShiftedDigits(load_idx_dataset("mnist", SHARED_DATA, "train"))
    config = multimodal.model_config("paired-gan", "gan", 3, mode_seeking_weight=0.1)
    config.log.progress = False
    run = tmp_path / "study"
    multimodal.train(config, task, run)
    again = gankit.train(run / "config.yaml", out=tmp_path / "again", data_root=SHARED_DATA,
                         progress=False)
    for player in ("generator", "discriminator"):
        first = load_file(run / "checkpoints" / "step_00000003" / f"{player}.safetensors")
        second = load_file(again / "checkpoints" / "step_00000003" / f"{player}.safetensors")
        assert first.keys() == second.keys()
        assert all(torch.equal(first[key], second[key]) for key in first)
    model = gankit.load(again, data_root=SHARED_DATA)
    samples = model.sample(5, seed=0)
    assert samples.shape == (5, 1, 28, 28) and torch.equal(samples, model.sample(5, seed=0))
    with pytest.raises(GankitError, match="MNIST"):
        gankit.load(again, data_root=tmp_path / "nowhere")
    inputs, outputs = model.sample_with_inputs(5, seed=0)
    assert torch.equal(outputs, samples)
    for image in ((inputs + 1) * 127.5).round().to(torch.uint8):  # training digits, as stored
        assert (task.digits.images == image).flatten(1).all(1).any()
    picture = tmp_path / "pairs.png"
    assert main(["sample", str(again), "-n", "5", "--seed", "0", "--data-root", str(SHARED_DATA),
                 "--out", str(picture)]) == 0
    with Image.open(picture) as grid:  # 5 pairs, two to a row: 4 columns, 3 rows
        assert grid.width > grid.height
    # gankit eval's multimodal measure: the saved model on the first test digits.
    results = evaluate(again, metrics="multimodal", n=20, data_root=SHARED_DATA)
    test = ShiftedDigits(load_idx_dataset("mnist", SHARED_DATA, "test"))
    expected = model_summary(model.objective, test, 20)
    assert results == {f"{key}/n20x{DRAWS}": value for key, value in expected.items()
                       if key != "n"}
    assert 0 <= results[f"both_modes/n20x{DRAWS}"] <= 1
    compared = compare([again], tmp_path / "compare", n=20, data_root=SHARED_DATA)
    assert json.loads((compared / "results.json").read_text())["runs"][0]["metrics"] == results
    # The command line's default for a paired run is the same measure, recorded in the run.
    assert main(["eval", str(again), "-n", "20", "--data-root", str(SHARED_DATA), "--json",
                 str(tmp_path / "eval.json")]) == 0
    assert json.loads((tmp_path / "eval.json").read_text()) == pytest.approx(results, nan_ok=True)
    assert f"near_mode/n20x{DRAWS}" in read_metrics(again)[-1]


def test_multimodal_is_refused_where_it_cannot_be_measured(tmp_path):
    with pytest.raises(GankitError, match="needs a paired run folder"):
        evaluate(torch.zeros(4, 1, 28, 28), metrics=["multimodal"], n=4)
    config = multimodal.model_config("paired-gan", "gan", 4)
    config.log.eval_every = 2
    with pytest.raises(GankitError, match="multimodal is measured on the finished run"):
        Trainer(config, tmp_path / "run", blocky_task())
    assert not (tmp_path / "run").exists()


def test_latent_codes_carry_the_input_digit():
    task = blocky_task()
    objective = PairedGANObjective(PairedGenerator(task.shape, 4, width=8, bottleneck=16),
                                   task, 4, PairedDiscriminator(task.shape, width=8))
    code = objective.sample_latent(6, torch.Generator().manual_seed(0))
    assert code.shape == (6, 4 + 28 * 28)
    images, noise = objective.generator.split(code)
    assert torch.equal(make_code(images, noise), code)
    fixed = objective.fixed_latent(6, torch.Generator().manual_seed(0))
    assert torch.equal(objective.generator.split(fixed)[0], task.first_pairs(6)[0])
    mse = PairedMSEObjective(PairedGenerator(task.shape, 4, width=8, bottleneck=16), task, 4)
    assert mse.sample_latent(3, torch.Generator())[:, :4].eq(0).all()  # the regressor's noise
    with pytest.raises(GankitError):
        objective.generator.split(code[:, :-1])


@pytest.mark.parametrize("kind", ["mse", "gan", "gan-l1", "gan-l1-seeking"])
def test_each_objective_trains_a_few_steps_through_the_loop(tmp_path, kind):
    task = blocky_task()
    net = PairedGenerator(task.shape, 4, width=8, bottleneck=16, batchnorm=True)
    if kind == "mse":
        objective = PairedMSEObjective(net, task, 4)
    else:
        objective = PairedGANObjective(net, task, 4, PairedDiscriminator(task.shape, width=8),
                                       reconstruction_weight=1.0 if "l1" in kind else 0.0,
                                       mode_seeking_weight=1.0 if "seeking" in kind else 0.0)
    config = load_config("mnist-dcgan", {
        "train.steps": 4, "train.batch_size": 8, "train.threads": 1, "log.every": 2,
        "log.sample_every": 4, "log.checkpoint_every": 4, "log.n_samples": 8,
        "log.progress": False, "log.tensorboard": False})
    run_dir = Trainer(config, tmp_path / kind, task, objective=objective).fit()
    records = read_metrics(run_dir)
    assert [r["step"] for r in records] == [2, 4]
    assert all(math.isfinite(r["g_loss"]) for r in records)
    if kind == "mse":
        assert "d_loss" not in records[-1]
    else:
        assert math.isfinite(records[-1]["d_loss"]) and 0 <= records[-1]["d_real"] <= 1
        assert ("g_l1" in records[-1]) == ("l1" in kind)
        assert ("g_mode_seeking" in records[-1]) == ("seeking" in kind)
    assert (run_dir / "samples.png").is_file() and (run_dir / "report.md").is_file()
    outputs = objective.predict(task.first_pairs(3)[0])
    assert outputs.shape == (3, 1, 28, 28) and torch.isfinite(outputs).all()


def test_mode_seeking_feeds_each_input_twice_and_adds_its_term_to_g_loss():
    task = blocky_task()
    torch.manual_seed(0)
    discriminator = PairedDiscriminator(task.shape, width=8)
    objective = PairedGANObjective(PairedGenerator(task.shape, 4, width=8, bottleneck=16), task,
                                   4, discriminator, mode_seeking_weight=0.5)
    latent = objective.sample_latent(7, torch.Generator().manual_seed(0))
    judged = []
    hook = discriminator.register_forward_hook(lambda module, args, out: judged.append(args))
    loss, stats = objective.generator_phase(latent)
    hook.remove()
    inputs, outputs = judged[0]
    images, noise = objective.generator.split(latent)
    # An odd batch drops its last code: inputs 0-2 twice, with noise 0-2, then noise 3-5.
    assert len(inputs) == 6 and torch.equal(inputs, images[[0, 1, 2, 0, 1, 2]])
    assert torch.equal(outputs, objective.generator(make_code(inputs, noise[:6])))
    seeking = mode_seeking_loss(outputs[:3], outputs[3:], noise[:3], noise[3:6])
    assert stats["g_mode_seeking"].item() == pytest.approx(seeking.item())
    assert loss.item() == pytest.approx(stats["g_loss"].item() + 0.5 * seeking.item())
    assert "mode seeking x 0.5" in objective.describe()
    with pytest.raises(GankitError, match="batch of at least 2"):
        objective.generator_phase(latent[:1])
    for bad in (-1.0, float("nan")):
        with pytest.raises(GankitError, match="mode_seeking_weight"):
            PairedGANObjective(PairedGenerator(task.shape, 4), task, 4, discriminator,
                               mode_seeking_weight=bad)


def test_paired_objective_refuses_unpaired_data():
    task = blocky_task()
    objective = PairedMSEObjective(PairedGenerator(task.shape, 4, width=8), task, 4)
    with pytest.raises(GankitError, match="not a paired task"):
        objective.real_batch(task.digits, 4, torch.Generator())


# ----------------------------------------------------------------------------- the study


def test_study_is_registered():
    assert STUDIES["multimodal"] == "multimodal" and multimodal.DESCRIPTION


def test_tiny_study_writes_figure_report_and_results(tmp_path):
    if HAVE_MNIST:  # the real test digits when present, a few of them
        mnist = load_idx_dataset("mnist", SHARED_DATA, "test")
        small = ImageData(mnist.images[:200], mnist.labels[:200], name="mnist-test-200")
        task = test = ShiftedDigits(small)
    else:
        task = test = blocky_task()
    results = multimodal.compare(tmp_path, task, test, mse_steps=3, gan_steps=3, n_eval=20,
                                 draws=2)
    assert (tmp_path / "multimodal.png").is_file()
    report = (tmp_path / "report.md").read_text()
    assert all(f"| {row} |" in report for row in ("MSE", "GAN", "GAN + mode seeking"))
    assert "multimodal.png" in report
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["setup"]["gan_steps"] == 3
    rows = results["rows"]
    assert rows["real target"]["near_mode"] == 1.0  # the references behave by construction
    assert rows["average of targets"]["near_mode"] == 0.0
    assert 0.0 <= rows["GAN"]["both_modes"] <= 1.0
    assert 0.0 <= rows["GAN + mode seeking"]["both_modes"] <= 1.0
    assert saved["setup"]["mode_seeking_weight"] == multimodal.MODE_SEEKING_WEIGHT > 0
    assert saved["rows"]["MSE"]["both_modes"] is None  # NaN is written as null
    assert (tmp_path / "runs" / "mse" / "metrics.jsonl").is_file()
    assert (tmp_path / "runs" / "gan" / "metrics.jsonl").is_file()
    seeking = read_metrics(tmp_path / "runs" / "gan-mode-seeking")
    assert "g_mode_seeking" in seeking[-1] and "g_mode_seeking" not in read_metrics(
        tmp_path / "runs" / "gan")[-1]
