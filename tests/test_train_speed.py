"""The speed levers change how the step runs, never what it computes."""

from __future__ import annotations

import pytest
import torch

from conftest import tiny_config
from gankit.data import build_dataset
from gankit.train.loop import Trainer

DCGAN = {"model.arch": "dcgan", "model.width": 8, "data.name": "mnist", "train.batch_size": 8}


def digits_trainer(tmp_path, name, **overrides):
    config = tiny_config(**overrides)
    return Trainer(config, tmp_path / name, build_dataset(config.data))


def test_share_fake_runs_the_generator_once_per_iteration_on_the_same_noise(tmp_path):
    calls = {}
    for share in (False, True):
        trainer = digits_trainer(tmp_path, f"share-{share}", **{"train.share_fake": share})
        calls[share] = []
        trainer.objective.generator.register_forward_pre_hook(
            lambda _, args, seen=calls[share]: seen.append(args[0]))
        for _ in range(3):
            trainer.train_step()
    assert len(calls[False]) == 6 and len(calls[True]) == 3
    # Without sharing, the G step draws fresh noise; with it, D's G(z) is the G step's too.
    assert not torch.equal(calls[False][0], calls[False][1])


def test_shared_fake_gives_the_generator_the_same_gradient_as_recomputing_it(tmp_path):
    # Same weights, same noise: G's gradient through the kept G(z) equals a fresh G(z)'s.
    trainer = digits_trainer(tmp_path, "run", **{"train.share_fake": True, "model.d_dropout": 0})
    objective = trainer.objective
    real = trainer.data.sample(16, torch.Generator().manual_seed(0))
    latent = objective.sample_latent(16, torch.Generator().manual_seed(1))
    objective.discriminator_phase(real, latent)
    kept_loss = objective.generator_phase(latent)[0]
    kept = torch.autograd.grad(kept_loss, list(objective.generator.parameters()))
    objective.share_fake = False
    fresh_loss = objective.generator_phase(latent)[0]
    fresh = torch.autograd.grad(fresh_loss, list(objective.generator.parameters()))
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(kept, fresh, strict=True))


@pytest.mark.parametrize("lever", [{"train.channels_last": True},
                                   {"train.fused_optimizer": True}])
def test_channels_last_and_fused_optimizer_match_the_plain_step(tmp_path, lever):
    from gankit.data.root import resolve_data_root

    if not (resolve_data_root() / "MNIST" / "raw").is_dir():
        pytest.skip("MNIST is not under the data root")
    plain = digits_trainer(tmp_path, "plain", **DCGAN)
    other = digits_trainer(tmp_path, "other", **DCGAN, **lever)
    for _ in range(3):
        a, b = plain.train_step(), other.train_step()
    for key in ("d_loss", "g_loss"):
        assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-4, abs=1e-5)
    weights = zip(plain.objective.generator.parameters(),
                  other.objective.generator.parameters(), strict=True)
    assert all(torch.allclose(p, q, atol=1e-5) for p, q in weights)
    if lever.get("train.channels_last"):
        conv = other.objective.discriminator.net[0].weight
        assert conv.is_contiguous(memory_format=torch.channels_last)


def test_compiled_players_train_and_checkpoint_like_plain_ones(tmp_path):
    plain = digits_trainer(tmp_path, "plain", **{"model.d_dropout": 0})
    compiled = digits_trainer(tmp_path, "compiled", **{"train.compile": True, "model.d_dropout": 0})
    for _ in range(2):
        a, b = plain.train_step(), compiled.train_step()
    assert float(a["g_loss"]) == pytest.approx(float(b["g_loss"]), rel=1e-4)
    # Compiling in place keeps the state_dict keys, so checkpoints stay interchangeable.
    assert (compiled.objective.generator.state_dict().keys()
            == plain.objective.generator.state_dict().keys())


def test_compile_leaves_spectrally_normed_players_eager(tmp_path):
    # torch 2.14.1's compiled SN-ResNet discriminator fails in backward on its second step.
    trainer = digits_trainer(tmp_path, "sn", **DCGAN, **{"model.d_spectral_norm": True,
                                                         "train.compile": True})
    assert trainer.objective.discriminator._compiled_call_impl is None
    assert trainer.objective.generator._compiled_call_impl is not None


def test_a_compiled_packed_discriminator_trains_through_a_whole_run(tmp_path):
    from gankit.data.root import resolve_data_root

    if not (resolve_data_root() / "MNIST" / "raw").is_dir():
        pytest.skip("MNIST is not under the data root")
    # Compiled nets share dynamo's cache (every module's compiled call is Module._call_impl), so
    # after a compiled run of other shapes in the same process (here a packed toy D) the next
    # run's sizes became symbolic, and torch 2.14.1's inductor raised on the packed D's reshape.
    torch._dynamo.reset()
    first = tiny_config("toy-grid", **{"loss.pack": 2, "loss.r1_weight": 0, "train.compile": True})
    Trainer(first, tmp_path / "first", build_dataset(first.data)).fit()
    trainer = digits_trainer(tmp_path, "packed", **DCGAN, **{"loss.pack": 2, "train.compile": True})
    run = trainer.fit()
    assert trainer.step == trainer.config.train.steps
    assert (run / "checkpoints" / "latest").exists()


@pytest.mark.parametrize("penalty", ["loss.r1_weight", "loss.gp_weight"])
def test_compile_leaves_a_gradient_penalised_discriminator_eager(tmp_path, penalty):
    # The penalties need double backward, which compiled (aot_autograd) graphs do not support:
    # compiling D made the first train_step raise.
    trainer = digits_trainer(tmp_path, "pen", **{penalty: 1.0, "train.compile": True,
                                                "model.d_dropout": 0})
    for _ in range(2):
        stats = trainer.train_step()
    assert trainer.objective.discriminator._compiled_call_impl is None
    assert trainer.objective.generator._compiled_call_impl is not None
    assert torch.isfinite(stats["d_loss"]) and torch.isfinite(stats["g_loss"])


def test_fp16_needs_cuda_and_says_so_in_one_line(tmp_path):
    from gankit.errors import GankitError

    with pytest.raises(GankitError, match="train.precision=fp16 needs a CUDA device"):
        digits_trainer(tmp_path, "fp16", **{"train.precision": "fp16", "train.device": "cpu"})
