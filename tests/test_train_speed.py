"""The speed levers change how the step runs, never what it computes."""

from __future__ import annotations

import warnings

import pytest
import torch

from conftest import tiny_config
from gankit.data import build_dataset
from gankit.errors import GankitWarning
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


@pytest.mark.parametrize("saved_channels_last", [False, True])
def test_a_resume_may_switch_channels_last_under_the_fused_optimizer(tmp_path,
                                                                     saved_channels_last):
    from gankit.data.root import resolve_data_root

    if not (resolve_data_root() / "MNIST" / "raw").is_dir():
        pytest.skip("MNIST is not under the data root")
    # torch 2.14.1's fused CPU Adam pairs the entries of a parameter and its moments by memory
    # order: moments saved in one layout and a parameter in the other made wrong updates.
    fused = {**DCGAN, "train.fused_optimizer": True}
    first = digits_trainer(tmp_path, "first", **fused,
                           **{"train.channels_last": saved_channels_last})
    first.train_step()
    checkpoint = first.save()
    updates = {}
    for channels_last in (False, True):
        trainer = digits_trainer(tmp_path, f"resumed-{channels_last}", **fused,
                                 **{"train.channels_last": channels_last})
        trainer.restore(checkpoint)
        before = [p.detach().clone() for p in trainer.objective.generator.parameters()]
        trainer.train_step()
        updates[channels_last] = [p.detach() - b for p, b in
                                  zip(trainer.objective.generator.parameters(), before,
                                      strict=True)]
    for a, b in zip(updates[False], updates[True], strict=True):
        assert (a - b).norm() <= 1e-3 * a.norm() + 1e-9


def test_strided_products_train_like_torch_convs(tmp_path, monkeypatch):
    # Width 64 at 28 px puts G's ConvT(128 -> 64) from 7x7 and D's Conv(64 -> 128) onto 7x7 in
    # the products' domain (gankit.nets.strided); the same run with torch's kernels must agree.
    from gankit.data.root import resolve_data_root
    from gankit.nets import strided

    if not (resolve_data_root() / "MNIST" / "raw").is_dir():
        pytest.skip("MNIST is not under the data root")
    wide = {**DCGAN, "model.width": 64, "train.channels_last": True,
            "train.fused_optimizer": True}
    runs = {}
    for products in (True, False):
        calls = []
        monkeypatch.setattr(strided, "plan_for", lambda *args, on=products, seen=calls, **kw:
                            seen.append(on) or (strided.ALL_PRODUCTS if on else None))
        trainer = digits_trainer(tmp_path, f"products-{products}", **wide)
        first = trainer.train_step()
        # The gradients of the first step, taken at the same initial weights.
        grads = [p.grad.clone() for p in trainer.objective.parameters() if p.grad is not None]
        for _ in range(2):
            last = trainer.train_step()
        runs[products] = (first, grads, last)
        assert calls and all(on == products for on in calls)
    (first, grads, last), (torch_first, torch_grads, torch_last) = runs[True], runs[False]
    assert len(grads) == len(torch_grads) > 0
    for ours, theirs in zip(grads, torch_grads, strict=True):
        assert (ours - theirs).norm() <= 1e-4 * theirs.norm() + 1e-8
    # Later steps agree too (not the weights entry by entry: Adam moves a weight by about its
    # learning rate whatever the size of its gradient, so a near-zero gradient's rounding shows).
    # That rounding grows over the steps: the third step's losses differed by 1.1e-4 relative on
    # an AMD EPYC, whose oneDNN rounds differently from an Intel Xeon's.
    for stats, reference, rel in ((first, torch_first, 1e-4), (last, torch_last, 1e-3)):
        for key in ("d_loss", "g_loss"):
            assert float(stats[key]) == pytest.approx(float(reference[key]), rel=rel, abs=1e-5)


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


def judge(trainer, real, latent):
    """One D phase of `trainer`: its loss, stats, D's gradients and D's buffers after it."""
    discriminator = trainer.objective.discriminator
    loss, stats = trainer.objective.discriminator_phase(real, latent)
    grads = torch.autograd.grad(loss, list(discriminator.parameters()))
    return loss, stats, grads, [b.clone() for b in discriminator.buffers()]


def test_a_joint_discriminator_batch_computes_what_two_passes_do(tmp_path):
    # An MLP D without dropout or batch norm: one pass over [real; fake] is the two passes.
    separate = digits_trainer(tmp_path, "two", **{"model.d_dropout": 0})
    joint = digits_trainer(tmp_path, "one", **{"model.d_dropout": 0, "train.joint_d_batch": True,
                                               "loss.r1_weight": 0.5})
    joint.objective.load_state_dict(separate.objective.state_dict())
    separate.objective.r1_weight = 0.5
    assert joint.objective.joint_batch and not separate.objective.joint_batch
    calls = []
    joint.objective.discriminator.register_forward_pre_hook(lambda _, a: calls.append(len(a[0])))
    real = separate.data.sample(16, torch.Generator().manual_seed(0))
    latent = separate.objective.sample_latent(16, torch.Generator().manual_seed(1))
    loss_a, stats_a, grads_a, _ = judge(separate, real, latent)
    loss_b, stats_b, grads_b, _ = judge(joint, real, latent)
    assert calls == [32]  # one forward of both batches
    assert float(loss_b.detach()) == pytest.approx(float(loss_a.detach()), rel=1e-6)
    for key in ("d_real", "d_fake", "r1_penalty"):
        assert float(stats_b[key]) == pytest.approx(float(stats_a[key]), rel=1e-5)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grads_a, grads_b, strict=True))


def test_a_joint_batch_through_dcgan_batch_norm_computes_what_two_passes_do(tmp_path):
    from gankit.data.root import resolve_data_root

    if not (resolve_data_root() / "MNIST" / "raw").is_dir():
        pytest.skip("MNIST is not under the data root")
    # DCGAN's D normalises real and fake each by their own statistics in the joint pass too.
    separate = digits_trainer(tmp_path, "two", **DCGAN)
    joint = digits_trainer(tmp_path, "one", **DCGAN, **{"train.joint_d_batch": True})
    joint.objective.load_state_dict(separate.objective.state_dict())
    assert joint.objective.joint_batch and not separate.objective.joint_batch
    real = separate.data.sample(8, torch.Generator().manual_seed(0))
    latent = separate.objective.sample_latent(8, torch.Generator().manual_seed(1))
    loss_a, stats_a, grads_a, running_a = judge(separate, real, latent)
    loss_b, stats_b, grads_b, running_b = judge(joint, real, latent)
    assert float(loss_b.detach()) == pytest.approx(float(loss_a.detach()), rel=1e-5)
    for key in ("d_real", "d_fake"):
        assert float(stats_b[key]) == pytest.approx(float(stats_a[key]), rel=1e-5)
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-6)
               for a, b in zip(grads_a, grads_b, strict=True))
    # The running statistics took the real batch's, then the fake batch's, as two passes do.
    assert len(running_a) > 0
    assert all(torch.allclose(a.float(), b.float(), rtol=1e-5, atol=1e-7)
               for a, b in zip(running_a, running_b, strict=True))
    sn = digits_trainer(tmp_path, "sn", **DCGAN, **{"train.joint_d_batch": True,
                                                    "model.d_spectral_norm": True})
    assert sn.objective.joint_batch
    assert torch.isfinite(sn.train_step()["d_loss"])


def test_a_joint_batch_judges_a_conditional_pair_like_two_passes(tmp_path):
    from gankit.data.root import resolve_data_root

    if not (resolve_data_root() / "MNIST" / "raw").is_dir():
        pytest.skip("MNIST is not under the data root")
    overrides = {"model.objective": "acgan", "data.name": "mnist", "model.num_classes": 10,
                 "model.d_dropout": 0}
    separate = digits_trainer(tmp_path, "two", **overrides)
    joint = digits_trainer(tmp_path, "one", **overrides, **{"train.joint_d_batch": True})
    joint.objective.load_state_dict(separate.objective.state_dict())
    assert joint.objective.joint_batch
    real = separate.objective.real_batch(separate.data, 16, torch.Generator().manual_seed(0))
    latent = separate.objective.sample_latent(16, torch.Generator().manual_seed(1))
    loss_a, stats_a = separate.objective.discriminator_phase(real, latent)
    loss_b, stats_b = joint.objective.discriminator_phase(real, latent)
    assert float(loss_b.detach()) == pytest.approx(float(loss_a.detach()), rel=1e-6)
    assert float(stats_b["d_class_loss"]) == pytest.approx(float(stats_a["d_class_loss"]), rel=1e-6)


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16"), (False, "fp32")])
def test_auto_precision_is_bf16_only_where_the_cpu_computes_it(tmp_path, monkeypatch, native,
                                                                expected):
    # Emulated bf16 ran 12-20x slower than fp32 on an AVX2 CPU: auto must not choose it there.
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    trainer = digits_trainer(tmp_path, expected, **{"train.precision": "auto",
                                                    "train.device": "cpu", "train.steps": 4})
    assert trainer.precision == expected
    with trainer._autocast():
        out = trainer.objective.discriminator(trainer.data.sample(4, torch.Generator()))
    assert out.dtype == (torch.bfloat16 if native else torch.float32)
    run = trainer.fit()
    assert f"| precision | {expected} (train.precision=auto) |" in (run / "report.md").read_text()


@pytest.mark.parametrize("native", [True, False])
def test_bf16_asked_for_on_a_cpu_that_emulates_it_is_warned(monkeypatch, native):
    from gankit.device import resolve_precision

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert resolve_precision("bf16", torch.device("cpu")) == "bf16"  # still what was asked
        assert resolve_precision("fp32", torch.device("cpu")) == "fp32"
    messages = [str(w.message) for w in caught if issubclass(w.category, GankitWarning)]
    assert messages == ([] if native else [
        "train.precision=bf16 on a CPU without bf16 units (AVX-512 BF16 or AMX): oneDNN "
        "emulates it, 12-20x slower than fp32; train.precision=auto picks fp32 here"])


def test_freed_memory_stays_in_the_process(tmp_path):
    import subprocess
    import sys

    # In a fresh process: a step's pattern of buffers, allocated and freed over and over, pages
    # nothing in once gankit's allocator settings hold (glibc returned them to the OS before:
    # 1,024 page faults over these 20 rounds on the project's machine).
    script = """
import resource, torch
from gankit.train.allocator import keep_freed_memory
assert keep_freed_memory()
sizes = [(1 << 20) * k for k in (1, 2, 4, 8, 3, 6)]
def rounds(n):
    for _ in range(n):
        for size in sizes:
            torch.empty(size, dtype=torch.uint8).fill_(1)
rounds(2)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
rounds(20)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
    if not sys.platform.startswith("linux"):
        pytest.skip("glibc's mallopt is Linux-only")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout
    assert int(out) < 16
