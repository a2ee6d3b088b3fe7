"""The training loop is Algorithm 1: k D steps then one G step, reproducible and resumable."""

from __future__ import annotations

import json
import os
import shutil
import signal

import numpy as np
import pytest
import torch

from conftest import tiny_config
from gankit.data import build_dataset
from gankit.errors import GankitError
from gankit.train.checkpoint import load_checkpoint
from gankit.train.loop import Trainer


def make_trainer(tmp_path, name="run", preset="digits-mlp", **overrides):
    config = tiny_config(preset, **overrides)
    return Trainer(config, tmp_path / name, build_dataset(config.data))


def optimizer_steps(optimizer: torch.optim.Optimizer) -> set[int]:
    """The update counts Adam keeps per parameter (all equal after a run)."""
    return {int(state["step"]) for state in optimizer.state.values()}


def test_k_discriminator_steps_per_generator_step(tmp_path):
    trainer = make_trainer(tmp_path, **{"train.d_steps": 3, "train.steps": 5})
    trainer.fit()
    assert optimizer_steps(trainer.optimizers["generator"]) == {5}
    assert optimizer_steps(trainer.optimizers["discriminator"]) == {15}


def test_generator_step_computes_no_discriminator_weight_gradients(tmp_path):
    trainer = make_trainer(tmp_path)
    discriminator = trainer.objective.discriminator
    d_optimizer = trainer.optimizers["discriminator"]
    after_d_step = {}
    real_step = d_optimizer.step

    def step_and_remember(*args, **kwargs):
        after_d_step.update({id(p): p.grad.clone() for p in discriminator.parameters()})
        return real_step(*args, **kwargs)

    d_optimizer.step = step_and_remember
    trainer.train_step()
    # The G phase backpropagates through D to G, but must leave D's weight gradients as the
    # D step left them (no work spent on them, nothing leaking into D's next update).
    assert all(torch.equal(p.grad, after_d_step[id(p)]) for p in discriminator.parameters())
    assert all(p.requires_grad for p in discriminator.parameters())
    assert all(p.grad is not None for p in trainer.objective.generator.parameters())


def test_sgd_with_momentum_and_separate_learning_rates(tmp_path):
    trainer = make_trainer(tmp_path, **{"train.optimizer": "sgd", "train.g_lr": 0.01,
                                        "train.d_lr": 0.05, "train.momentum": 0.8})
    g_opt, d_opt = trainer.optimizers["generator"], trainer.optimizers["discriminator"]
    assert isinstance(g_opt, torch.optim.SGD) and isinstance(d_opt, torch.optim.SGD)
    assert g_opt.param_groups[0]["lr"] == 0.01 and d_opt.param_groups[0]["lr"] == 0.05
    assert g_opt.param_groups[0]["momentum"] == 0.8
    before = [p.detach().clone() for p in trainer.objective.generator.parameters()]
    trainer.train_step()
    trainer.train_step()
    after = list(trainer.objective.generator.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))
    assert all("momentum_buffer" in s for s in g_opt.state.values())


def test_fixed_evaluation_noise_is_the_same_for_every_snapshot(tmp_path):
    first = make_trainer(tmp_path, "a")
    noise = first.fixed_latent.clone()
    first.fit()
    assert torch.equal(first.fixed_latent, noise)
    second = make_trainer(tmp_path, "b", **{"train.steps": 3})
    assert torch.equal(second.fixed_latent, noise)
    frames = sorted((tmp_path / "a" / "samples").glob("step_*.png"))
    assert [f.name for f in frames] == ["step_00000000.png", "step_00000006.png",
                                        "step_00000012.png"]


def test_same_seed_same_weights_and_resume_matches_an_uninterrupted_run(tmp_path):
    straight = make_trainer(tmp_path, "straight", **{"train.steps": 12})
    straight.fit()
    again = make_trainer(tmp_path, "again", **{"train.steps": 12})
    again.fit()
    first_half = make_trainer(tmp_path, "halves", **{"train.steps": 6})
    first_half.fit()
    second_half = make_trainer(tmp_path, "halves", **{"train.steps": 12})
    second_half.restore(tmp_path / "halves")
    assert second_half.step == 6
    second_half.fit()
    for name in ("generator", "discriminator"):
        reference = straight.objective.players()[name].state_dict()
        for other in (again, second_half):
            weights = other.objective.players()[name].state_dict()
            assert all(torch.equal(reference[k], weights[k]) for k in reference), name
    assert optimizer_steps(second_half.optimizers["generator"]) == {12}


@pytest.mark.parametrize("preset, settings", [
    ("toy-gaussian", {"model.d_dropout": 0.3}),  # the 1D picture runs D: dropout drew the RNG
    ("digits-mlp", {"model.g_batchnorm": True, "train.ema": 0.0}),  # G's running statistics
    ("toy-ring", {"model.d_dropout": 0.3, "log.eval_every": 2, "log.eval_n": 100}),
])
def test_how_often_a_run_draws_pictures_does_not_change_what_it_trains(tmp_path, preset,
                                                                       settings):
    rare = make_trainer(tmp_path, "rare", preset, **settings)
    rare.fit()
    often = make_trainer(tmp_path, "often", preset, **settings,
                         **{"log.sample_every": 1, "log.n_samples": 4})
    often.fit()
    for name, net in rare.objective.players().items():
        other = often.objective.players()[name].state_dict()
        for key, value in net.state_dict().items():
            assert torch.equal(value, other[key]), f"{name}.{key}"


def test_the_final_picture_leaves_the_players_as_saved(tmp_path):
    # The last picture (step 10, off the sample_every grid) ran G with batch norm in training
    # mode after the final save: the G in memory then differed from the one on disk.
    trainer = make_trainer(tmp_path, **{"model.g_batchnorm": True, "train.ema": 0.0,
                                        "train.steps": 10, "log.sample_every": 4})
    run = trainer.fit()
    assert (run / "samples" / "step_00000010.png").is_file()
    weights, _, _ = load_checkpoint(run)
    in_memory = trainer.objective.generator.state_dict()
    assert in_memory.keys() == weights["generator"].keys()
    assert all(torch.equal(value, weights["generator"][key]) for key, value in in_memory.items())


@pytest.mark.parametrize("preset", ["toy-gaussian", "toy-ring"])
def test_the_toy_pictures_draw_d_without_its_dropout(tmp_path, preset):
    trainer = make_trainer(tmp_path, preset=preset, **{"model.d_dropout": 0.5})
    discriminator = trainer.objective.discriminator
    points = np.linspace(-3, 8, 50, dtype=np.float32)[:, None].repeat(
        trainer.data.shape[0], axis=1)
    drawn = trainer.pictures._discriminator_probability(points)
    # Before, each call was one draw of the dropout masks: two curves of the same D differed.
    assert np.array_equal(drawn, trainer.pictures._discriminator_probability(points))
    with torch.no_grad():
        expected = torch.sigmoid(discriminator.eval()(torch.from_numpy(points))).numpy()
    discriminator.train()
    np.testing.assert_allclose(drawn, expected, rtol=1e-6)
    assert discriminator.training  # handed back in training mode
    with torch.no_grad():
        masked = torch.sigmoid(discriminator(torch.from_numpy(points))).numpy()
    assert not np.allclose(masked, expected)  # dropout does change D: the test can fail


def test_metrics_log_losses_and_discriminator_outputs(tmp_path):
    trainer = make_trainer(tmp_path)
    run = trainer.fit()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [4, 8, 12]
    for record in records:
        assert {"d_loss", "g_loss", "d_real", "d_fake", "g_grad_norm", "time"} <= record.keys()
        assert 0 <= record["d_real"] <= 1 and 0 <= record["d_fake"] <= 1
    assert (run / "report.md").is_file() and (run / "samples.png").is_file()
    assert (run / "config.yaml").is_file() and (run / "curves.png").is_file()


def test_progress_bar_shows_losses_and_discriminator_outputs(tmp_path, capsys):
    config = tiny_config(**{"train.steps": 8})
    Trainer(config, tmp_path / "run", build_dataset(config.data), progress=True).fit()
    shown = capsys.readouterr().err
    for label in ("d_loss=", "g_loss=", "D(x)=", "D(G(z))=", "8/8"):
        assert label in shown


def interrupt_in_step(trainer, monkeypatch, step: int, times: int = 1) -> None:
    """Send Ctrl-C (SIGINT) `times` times from inside G's phase of step `step` + 1, after D's
    update of that step: the middle of an iteration."""
    real_phase = trainer.objective.generator_phase

    def phase_then_interrupt(*args, **kwargs):
        if trainer.step == step:
            for _ in range(times):
                os.kill(os.getpid(), signal.SIGINT)
        return real_phase(*args, **kwargs)

    monkeypatch.setattr(trainer.objective, "generator_phase", phase_then_interrupt)


def test_ctrl_c_finishes_the_step_in_progress_saves_it_and_resumes_exactly(tmp_path,
                                                                          monkeypatch, capsys):
    # The interrupt used to save in the middle of the step: D updated, G not, the random
    # streams moved on, under the last whole step's number; the resume then left the run.
    trainer = make_trainer(tmp_path, **{"train.steps": 12, "log.every": 4})
    interrupt_in_step(trainer, monkeypatch, step=9)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert "saving step 10 when it is done" in capsys.readouterr().err
    _, state, checkpoint = load_checkpoint(tmp_path / "run")
    assert state["step"] == 10 and checkpoint.name == "step_00000010"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handed back
    resumed = make_trainer(tmp_path, **{"train.steps": 12, "log.every": 4})
    resumed.restore(tmp_path / "run")
    resumed.fit()
    straight = make_trainer(tmp_path, "straight", **{"train.steps": 12, "log.every": 4})
    straight.fit()
    for name, net in straight.objective.players().items():
        other = resumed.objective.players()[name].state_dict()
        assert all(torch.equal(value, other[key]) for key, value in net.state_dict().items())
    # The window of the log at step 12 spans steps 9 to 12 across the resume, as straight's.
    records = [read_records(tmp_path / name) for name in ("run", "straight")]
    assert records[0] == records[1]


def test_a_second_ctrl_c_stops_at_once_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    trainer = make_trainer(tmp_path, **{"train.steps": 50})
    interrupt_in_step(trainer, monkeypatch, step=9, times=2)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    _, state, checkpoint = load_checkpoint(tmp_path / "run")
    assert state["step"] == 6 and checkpoint.name == "step_00000006"  # nothing half-done saved


def read_records(run) -> list[dict]:
    """metrics.jsonl without its wall-clock times."""
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "time"} for line in lines]


def test_a_resume_between_logs_logs_the_means_an_uninterrupted_run_does(tmp_path,
                                                                         monkeypatch):
    # A run killed at step 7 resumes from its checkpoint at step 5: its first log after the
    # resume (step 8) averaged steps 6-8 only, not 5-8.
    settings = {"train.steps": 12, "log.checkpoint_every": 5}
    killed = make_trainer(tmp_path, "halves", **settings)
    real_step = killed.train_step

    def step_then_die(*args, **kwargs):
        if killed.step == 7:
            raise RuntimeError("killed")
        return real_step(*args, **kwargs)

    monkeypatch.setattr(killed, "train_step", step_then_die)
    with pytest.raises(RuntimeError, match="killed"):
        killed.fit()
    second = make_trainer(tmp_path, "halves", **settings)
    second.restore(tmp_path / "halves")
    assert second.step == 5
    second.fit()
    make_trainer(tmp_path, "straight", **settings).fit()
    assert read_records(tmp_path / "halves") == read_records(tmp_path / "straight")


@pytest.mark.parametrize("log_every, caught_at", [(4, 8), (1000, 9)])
def test_a_diverged_run_stops_and_keeps_its_good_checkpoints(tmp_path, monkeypatch, log_every,
                                                             caught_at):
    # NaN real images from step 8 on make both players' weights NaN. The run must stop at the
    # next log (step 8) or checkpoint (step 9), not save NaN until steps 3 and 6 rotate out.
    trainer = make_trainer(tmp_path, **{"train.steps": 40, "log.every": log_every,
                                        "log.checkpoint_every": 3, "log.keep_checkpoints": 2})
    real_batch = trainer.objective.real_batch

    def poisoned(*args):
        batch = real_batch(*args)
        return batch * float("nan") if trainer.step >= 7 else batch

    monkeypatch.setattr(trainer.objective, "real_batch", poisoned)
    with pytest.raises(GankitError, match=f"diverged by step {caught_at}: the generator's "
                                          "weights are NaN or inf; its checkpoints up to step 6"):
        trainer.fit()
    kept = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("step_*"))
    assert kept == ["step_00000003", "step_00000006"]
    weights, state, _ = load_checkpoint(tmp_path / "run")
    assert state["step"] == 6
    assert all(t.isfinite().all() for net in weights.values() for t in net.values()
               if t.is_floating_point())


def test_report_of_a_collapsed_1d_generator_says_so(tmp_path):
    # No weight average: samples come from the generator set here.
    trainer = make_trainer(tmp_path, preset="toy-gaussian", **{"train.steps": 2, "train.ema": 0.0})
    with torch.no_grad():  # G(z) = 3 for every z
        for param in trainer.objective.generator.parameters():
            param.zero_()
        trainer.objective.generator.net[-1].bias.fill_(3.0)
    trainer.config.train.g_lr = 0.0
    trainer.optimizers = trainer._build_optimizers()
    run = trainer.fit()
    report = (run / "report.md").read_text()
    assert "p_g has collapsed" in report and "| mean | 5.000 | 3.000 |" in report


def test_weight_average_follows_the_generator_and_is_what_samples_come_from(tmp_path):
    trainer = make_trainer(tmp_path, **{"train.ema": 0.9, "train.steps": 30})
    generator = trainer.objective.generator
    average = trainer.objective.generator_ema
    assert trainer.objective.sampler is average and average is not generator
    before = [p.detach().clone() for p in average.parameters()]
    trainer.train_step()
    # First update: decay = min(0.9, 2/11), so average = 2/11 * old + 9/11 * new.
    decay = 2 / 11
    for old, new, mixed in zip(before, generator.parameters(), average.parameters(), strict=True):
        assert torch.allclose(mixed, decay * old + (1 - decay) * new.detach(), atol=1e-6)
    assert not any(p.requires_grad for p in average.parameters())


def test_weight_average_is_saved_resumed_and_loaded(tmp_path):
    import gankit

    straight = make_trainer(tmp_path, "straight", **{"train.ema": 0.95, "train.steps": 12})
    straight.fit()
    halves = make_trainer(tmp_path, "halves", **{"train.ema": 0.95, "train.steps": 6})
    halves.fit()
    resumed = make_trainer(tmp_path, "halves", **{"train.ema": 0.95, "train.steps": 12})
    resumed.restore(tmp_path / "halves")
    resumed.fit()
    reference = straight.objective.generator_ema.state_dict()
    for key, value in resumed.objective.generator_ema.state_dict().items():
        assert torch.equal(value, reference[key]), key
    loaded = gankit.load(tmp_path / "straight")
    assert loaded.generator is loaded.objective.generator_ema
    for key, value in loaded.generator.state_dict().items():
        assert torch.equal(value, reference[key]), key


def test_tensorboard_events_hold_the_logged_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer = make_trainer(tmp_path, **{"log.tensorboard": True})
    run = trainer.fit()
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    d_loss = events.Scalars("d_loss")
    assert [e.step for e in d_loss] == [4, 8, 12]
    lines = (run / "metrics.jsonl").read_text().splitlines()
    logged = [json.loads(line)["d_loss"] for line in lines]
    assert [e.value for e in d_loss] == pytest.approx(logged, rel=1e-5)


def test_resume_after_a_kill_logs_each_step_once_in_metrics_and_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # A run killed between its step-8 checkpoint and the next one had logged step 12 already.
    straight = make_trainer(tmp_path, "killed", **{"log.tensorboard": True,
                                                   "log.checkpoint_every": 8})
    run = straight.fit()
    checkpoints = run / "checkpoints"
    for folder in checkpoints.glob("step_*"):
        if folder.name != "step_00000008":
            shutil.rmtree(folder)
    (checkpoints / "latest").write_text("step_00000008\n")
    logged_before = (run / "metrics.jsonl").read_text().splitlines()
    with open(run / "metrics.jsonl", "a") as handle:
        handle.write('{"step": 16, "d_lo')  # the kill came in the middle of a write
    resumed = make_trainer(tmp_path, "killed", **{"log.tensorboard": True,
                                                  "log.checkpoint_every": 8})
    resumed.restore(run)
    resumed.fit()
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [4, 8, 12]
    assert lines[:2] == logged_before[:2]  # what came before the checkpoint is kept as it was
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    d_loss = events.Scalars("d_loss")
    assert [e.step for e in d_loss] == [4, 8, 12]
    assert d_loss[-1].value == pytest.approx(json.loads(lines[-1])["d_loss"], rel=1e-5)


def test_bf16_precision_runs_the_phases_under_autocast_with_fp32_weights(tmp_path):
    trainer = make_trainer(tmp_path, **{"train.precision": "bf16"})
    seen = []
    trainer.objective.discriminator.register_forward_hook(
        lambda module, inputs, output: seen.append(output.dtype))
    stats = trainer.train_step()
    assert seen and all(dtype == torch.bfloat16 for dtype in seen)
    assert all(torch.isfinite(value) for value in stats.values())
    assert all(p.dtype == torch.float32 for p in trainer.objective.parameters())
    fp32 = make_trainer(tmp_path, "fp32")
    fp32.objective.discriminator.register_forward_hook(
        lambda module, inputs, output: seen.append(output.dtype))
    seen.clear()
    fp32.train_step()
    assert seen and all(dtype == torch.float32 for dtype in seen)


def test_logged_gradient_norm_is_that_of_the_logged_step_not_divided_by_the_window(tmp_path):
    trainer = make_trainer(tmp_path, **{"log.every": 4, "train.steps": 4})
    measured = []
    original = trainer.train_step

    def remember(want_grad_norm=False):
        stats = original(want_grad_norm)
        if want_grad_norm:
            measured.append(float(stats["g_grad_norm"]))
        return stats

    trainer.train_step = remember
    trainer.fit()
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert logged[0]["g_grad_norm"] == pytest.approx(measured[0], rel=1e-5)


def test_a_refused_config_leaves_no_run_folder(tmp_path):
    config = tiny_config("toy-grid", **{"loss.augment": "translation"})
    with pytest.raises(GankitError, match="needs images"):
        Trainer(config, tmp_path / "run", build_dataset(config.data))
    assert not (tmp_path / "run").exists()



@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message without a GPU")
def test_cuda_without_a_gpu_is_refused_in_one_line(tmp_path):
    # It was CUDA's multi-line driver error from the first tensor moved.
    config = tiny_config("toy-grid", **{"train.device": "cuda"})
    with pytest.raises(GankitError, match="device 'cuda': torch finds no usable CUDA device"):
        Trainer(config, tmp_path / "run", build_dataset(config.data))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("preset, overrides, message", [
    ("toy-grid", {"log.eval_metrics": ["fdi"]}, "unknown metric 'fdi'"),
    ("toy-grid", {"log.eval_metrics": ["fid"]}, r"fid need images, got samples of shape \(2,\)"),
    ("toy-grid", {"log.eval_n": 1}, "n=1 must be at least 2"),
    ("digits-mlp", {}, "no evaluation protocol for 'digits' data"),
])
def test_an_evaluation_that_would_fail_is_refused_before_training(tmp_path, preset, overrides,
                                                                    message):
    # These used to stop the run at its first log.eval_every, after that much training.
    config = tiny_config(preset, **{"log.eval_every": 4, **overrides})
    with pytest.raises(GankitError, match=message):
        Trainer(config, tmp_path / "run", build_dataset(config.data))
    assert not (tmp_path / "run").exists()


def test_an_evaluation_logged_after_a_torn_line_stays_whole(tmp_path):
    from gankit.train.report import append_evaluation, read_metrics

    run = make_trainer(tmp_path).fit()
    with open(run / "metrics.jsonl", "a") as handle:
        handle.write('{"step": 16, "d_lo')  # a kill in the middle of a write
    # `gankit eval` used to append to the torn line, so neither record could be read.
    append_evaluation(run, 12, 1.5, {"fid": 5.0})
    records = read_metrics(run)
    assert [r["step"] for r in records] == [4, 8, 12, 12]
    assert records[-1]["fid"] == 5.0


@pytest.mark.parametrize("objective", ["projection", "acgan", "semi-supervised"])
def test_a_labelled_objective_on_unlabelled_data_is_refused_before_training(tmp_path, objective):
    # The toy sets have no labels: these games stopped with a TypeError from deep inside the
    # first training picture.
    with pytest.raises(GankitError, match="ring of 8 has no labels: .* needs a labelled"):
        make_trainer(tmp_path, preset="toy-ring", **{"model.objective": objective})
    assert not (tmp_path / "run").exists()
