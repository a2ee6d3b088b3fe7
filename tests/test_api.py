"""gankit.train / gankit.load: run folders in, samples out; resume is safe."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from torch import nn

import gankit
from conftest import TINY
from gankit.config import RunConfig
from gankit.errors import CheckpointFallbackWarning, GankitError


def train_tiny(preset, out, **values):
    settings = dict(TINY)
    if preset == "toy-gaussian":
        settings["model.latent_dim"] = 1
    settings.update(values)
    return gankit.train(preset, out=out, **settings)


def test_train_returns_the_run_folder_with_everything_in_it(tmp_path):
    run = train_tiny("digits-mlp", tmp_path / "digits")
    assert run == tmp_path / "digits"
    for name in ("config.yaml", "metrics.jsonl", "report.md", "samples.png", "real.png",
                 "curves.png"):
        assert (run / name).is_file(), name
    checkpoint = run / "checkpoints" / "step_00000012"
    assert (checkpoint / "generator.safetensors").is_file()
    assert (checkpoint / "discriminator.safetensors").is_file()
    assert (checkpoint / "state.pt").is_file()
    assert (run / "checkpoints" / "latest").read_text().strip() == "step_00000012"


def test_load_samples_images_in_range_and_points(tmp_path):
    images_run = train_tiny("digits-mlp", tmp_path / "digits")
    model = gankit.load(images_run)
    images = model.sample(10, seed=3)
    assert images.shape == (10, 1, 8, 8)
    assert images.min() >= -1 and images.max() <= 1
    assert torch.equal(images, model.sample(10, seed=3))
    assert not torch.equal(images, model.sample(10, seed=4))
    assert isinstance(model.generator, nn.Module) and isinstance(model.config, RunConfig)
    assert model.config.name == "digits-mlp" and model.step == 12

    with pytest.raises(GankitError, match="is not a paired model: it takes no inputs"):
        model.sample_with_inputs(4)

    points_run = train_tiny("toy-ring", tmp_path / "ring")
    points = gankit.load(points_run).sample(2500, seed=0)
    assert points.shape == (2500, 2)
    assert (points_run / "scatter.png").is_file() and (points_run / "scatter.gif").is_file()


def test_loaded_generator_reproduces_the_trained_one(tmp_path):
    run = train_tiny("toy-gaussian", tmp_path / "toy")
    model = gankit.load(run / "checkpoints" / "step_00000012")
    again = gankit.load(run)
    for key, value in model.generator.state_dict().items():
        assert torch.equal(value, again.generator.state_dict()[key])
    assert model.sample(5, seed=0).shape == (5, 1)


def test_overrides_as_sections_and_dotted_keys(tmp_path):
    run = gankit.train("digits-mlp", out=tmp_path / "a", train={"steps": 4, "batch_size": 8},
                       log={"progress": False, "every": 2, "sample_every": 4},
                       **{"model.g_hidden": [8], "model.d_hidden": [8]})
    config = gankit.load(run).config
    assert config.train.steps == 4 and config.train.batch_size == 8
    assert config.model.g_hidden == [8]
    # One string is one override (it was read letter by letter: "override 't' is not ...").
    run = gankit.train("digits-mlp", out=tmp_path / "b", overrides="train.steps=3",
                       log={"progress": False}, **{"model.g_hidden": [8], "model.d_hidden": [8]})
    assert gankit.load(run).step == 3


def test_resume_continues_from_the_step_and_extends_training(tmp_path):
    run = train_tiny("digits-mlp", tmp_path / "run")
    gankit.train(resume=run, **{"train.steps": 20})
    model = gankit.load(run)
    assert model.step == 20 and model.config.train.steps == 20
    steps = [line for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert '"step": 20' in steps[-1] and '"step": 16' in steps[-2]


def test_resume_with_a_changed_model_or_loss_is_refused_naming_the_keys(tmp_path):
    run = train_tiny("digits-mlp", tmp_path / "run")
    with pytest.raises(GankitError) as caught:
        gankit.train(resume=run, **{"model.g_hidden": [32], "loss.generator": "minimax"})
    message = str(caught.value)
    assert "model.g_hidden" in message and "loss.generator" in message and "\n" not in message
    # Nothing saved was touched.
    assert gankit.load(run).step == 12


def test_resume_trains_with_the_new_learning_rates_and_betas(tmp_path):
    # The optimizers' saved settings used to win: a resume with train.g_lr=0 went on moving G,
    # and config.yaml said 0 where state.pt held the old rates.
    run = train_tiny("digits-mlp", tmp_path / "run")
    before = gankit.load(run).objective.generator.state_dict()
    gankit.train(resume=run, **{"train.steps": 18, "train.g_lr": 0.0, "train.betas": [0.0, 0.9]})
    after = gankit.load(run).objective.generator.state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)
    state = torch.load(run / "checkpoints" / "step_00000018" / "state.pt", weights_only=True)
    group = state["optimizers"]["generator"]["param_groups"][0]
    assert group["lr"] == 0.0 and tuple(group["betas"]) == (0.0, 0.9)
    assert state["optimizers"]["discriminator"]["param_groups"][0]["lr"] == 0.0002


def test_resume_with_another_optimizer_is_refused_naming_the_key(tmp_path):
    # Adam's state loaded into SGD failed on its first step with KeyError: 'momentum'.
    run = train_tiny("digits-mlp", tmp_path / "run")
    with pytest.raises(GankitError, match="different config for train.optimizer$"):
        gankit.train(resume=run, **{"train.steps": 18, "train.optimizer": "sgd"})
    assert gankit.load(run).step == 12


def test_resume_may_switch_the_weight_average_on(tmp_path):
    # It failed with KeyError: 'generator_ema'; the average now starts from G at the resume.
    run = train_tiny("digits-mlp", tmp_path / "run", **{"train.ema": 0.0})
    assert not (run / "checkpoints" / "step_00000012" / "generator_ema.safetensors").exists()
    at_12 = gankit.load(run).objective.generator.state_dict()
    gankit.train(resume=run, **{"train.steps": 13, "train.ema": 0.9})
    model = gankit.load(run)
    assert model.generator is model.objective.generator_ema
    # One update from G's step-12 weights, with the warm-up decay 2/11.
    at_13 = model.objective.generator.state_dict()
    for key, value in model.generator.state_dict().items():
        assert torch.allclose(value, 2 / 11 * at_12[key] + 9 / 11 * at_13[key], atol=1e-6), key


def test_resume_with_weights_that_do_not_fit_names_the_file(tmp_path):
    run = train_tiny("digits-mlp", tmp_path / "run")
    other = train_tiny("digits-mlp", tmp_path / "other", **{"model.g_hidden": [32]})
    target = run / "checkpoints" / "step_00000012" / "generator.safetensors"
    shutil.copy(other / "checkpoints" / "step_00000012" / "generator.safetensors", target)
    with pytest.raises(GankitError, match=f"^{target}: weights do not fit the generator"):
        gankit.train(resume=run / "checkpoints" / "step_00000012", **{"train.steps": 18})


def test_resume_with_an_out_folder_is_refused_rather_than_ignored(tmp_path):
    run = train_tiny("digits-mlp", tmp_path / "run")
    with pytest.raises(GankitError, match="does not apply with --resume"):
        gankit.train(resume=run, out=tmp_path / "elsewhere", **{"train.steps": 20})
    assert gankit.load(run).step == 12 and not (tmp_path / "elsewhere").exists()


def test_resume_with_fewer_steps_than_the_checkpoint_is_refused(tmp_path):
    # It used to rewrite config.yaml with train.steps=4 beside a step-12 checkpoint.
    run = train_tiny("digits-mlp", tmp_path / "run")
    saved = (run / "config.yaml").read_text()
    with pytest.raises(GankitError, match="train.steps=4: its checkpoint is at step 12"):
        gankit.train(resume=run, **{"train.steps": 4})
    assert (run / "config.yaml").read_text() == saved
    assert gankit.load(run).config.train.steps == 12


def test_resume_past_an_unreadable_latest_checkpoint_continues_from_the_one_before(tmp_path):
    run = train_tiny("digits-mlp", tmp_path / "run")  # checkpoints at steps 6 and 12
    broken = run / "checkpoints" / "step_00000012" / "state.pt"
    broken.write_bytes(broken.read_bytes()[:100])  # truncated by a failing disk or copy
    with pytest.warns(CheckpointFallbackWarning, match="step_00000006"):
        gankit.train(resume=run, **{"train.steps": 18})
    assert gankit.load(run).step == 18
    # The run saved step 12 afresh; the unreadable folder is kept, set aside.
    assert (run / "checkpoints" / "step_00000012" / "state.pt").stat().st_size > 100
    assert (run / "checkpoints" / "set-aside-step_00000012" / "state.pt").stat().st_size == 100
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [4, 8, 12, 16, 18]


def test_resume_from_an_earlier_checkpoint_folder_continues_that_run_from_there(tmp_path):
    # It used to start a new run inside the checkpoint folder.
    run = train_tiny("digits-mlp", tmp_path / "run")
    gankit.train(resume=run / "checkpoints" / "step_00000006")
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "latest", "set-aside-step_00000012", "step_00000006", "step_00000012"]
    assert not (run / "checkpoints" / "step_00000006" / "config.yaml").exists()
    straight = train_tiny("digits-mlp", tmp_path / "straight")
    resumed, reference = gankit.load(run), gankit.load(straight)
    assert resumed.step == 12
    for key, value in reference.generator.state_dict().items():
        assert torch.equal(value, resumed.generator.state_dict()[key]), key
    # A checkpoint folder copied out of its run has no run to continue.
    loose = tmp_path / "loose"
    shutil.copytree(run / "checkpoints" / "step_00000006", loose)
    with pytest.raises(GankitError, match="not in a run's checkpoints/ folder"):
        gankit.train(resume=loose)
    assert sorted(p.name for p in loose.iterdir()) == sorted(
        p.name for p in (run / "checkpoints" / "step_00000006").iterdir())


def test_training_into_an_existing_run_without_resume_is_refused(tmp_path):
    run = train_tiny("digits-mlp", tmp_path / "run")
    with pytest.raises(GankitError, match="already holds a run"):
        train_tiny("digits-mlp", run)


def test_load_rejects_weights_from_another_config(tmp_path):
    run = train_tiny("digits-mlp", tmp_path / "a")
    other = train_tiny("digits-mlp", tmp_path / "b", **{"model.g_hidden": [32]})
    (run / "checkpoints" / "step_00000012" / "generator.safetensors").write_bytes(
        (other / "checkpoints" / "step_00000012" / "generator.safetensors").read_bytes())
    with pytest.raises(GankitError, match="generator.safetensors"):
        gankit.load(run)


def test_sample_count_batch_size_and_seed_must_be_integers_in_range(tmp_path):
    model = gankit.load(train_tiny("digits-mlp", tmp_path / "a"))
    with pytest.raises(GankitError, match="n=0"):
        model.sample(0)
    with pytest.raises(GankitError, match="batch_size=0 must be >= 1"):  # was range()'s error
        model.sample(5, batch_size=0)
    # These were a TypeError from range() and a RuntimeError from manual_seed.
    with pytest.raises(GankitError, match="n=2.5 must be an integer"):
        model.sample(2.5)
    with pytest.raises(GankitError, match="seed='a' must be an integer"):
        model.sample(2, seed="a")
    with pytest.raises(GankitError, match="n=True must be an integer"):
        model.sample(True)
    # numpy and torch integers are integers.
    assert torch.equal(model.sample(np.int64(3), seed=torch.tensor(1)), model.sample(3, seed=1))


def test_a_dcgan_config_trains_saves_and_loads(tmp_path):
    run = gankit.train("mnist-mlp", out=tmp_path / "dcgan", **{
        **TINY, "model.arch": "dcgan", "model.width": 8, "train.steps": 3,
        "train.precision": "bf16"})
    model = gankit.load(run)
    assert type(model.generator).__name__ == "DCGANGenerator"
    images = model.sample(5, seed=0)
    assert images.shape == (5, 1, 28, 28) and images.abs().max() <= 1
