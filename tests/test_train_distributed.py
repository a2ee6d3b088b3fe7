"""Data-parallel training on CPU: two gloo processes, as torchrun would start them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import gankit
from conftest import tiny_config
from gankit.data import build_dataset
from gankit.train import distributed
from gankit.train.loop import Trainer


def _join(rank: int, folder: str) -> None:
    # A file rendezvous: no port to collide with other jobs on the machine.
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank,
                            world_size=2)
    torch.set_num_threads(1)


def _collectives(rank: int, folder: str) -> None:
    _join(rank, folder)
    net = nn.Linear(3, 2)
    for i, p in enumerate(net.parameters()):
        p.grad = torch.full_like(p, float(rank + 1) * (i + 1))  # rank 0: 1, 2; rank 1: 2, 4
    distributed.average_gradients(net, 2)
    means = distributed.mean_over_ranks({"d_loss": float(rank), "g_loss": 10.0 * rank}, 2)
    torch.manual_seed(rank)  # different weights on each rank...
    other = nn.BatchNorm1d(4)
    other.running_mean.fill_(rank + 5.0)
    other.weight.data.normal_()
    distributed.broadcast_state(other, 2)  # ...until rank 0's are sent
    torch.save({"grads": [p.grad for p in net.parameters()],
                "means": {k: float(v) for k, v in means.items()},
                "bn": other.state_dict(),
                "name": distributed.broadcast_object(f"runs/x-{rank}", 2)},
               f"{folder}/rank{rank}.pt")
    dist.destroy_process_group()


def test_gradients_are_averaged_and_rank_0_state_is_broadcast(tmp_path):
    mp.spawn(_collectives, args=(str(tmp_path),), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for found in ranks:
        assert [float(g.unique()) for g in found["grads"]] == [1.5, 3.0]
        assert found["means"] == {"d_loss": 0.5, "g_loss": 5.0}
        assert found["name"] == "runs/x-0"
        assert float(found["bn"]["running_mean"].unique()) == 5.0
    assert all(torch.equal(ranks[0]["bn"][k], ranks[1]["bn"][k]) for k in ranks[0]["bn"])


def _train(rank: int, folder: str, preset: str, overrides: dict, resume_steps: int) -> None:
    _join(rank, folder)
    config = tiny_config(preset, **overrides)
    run_dir = f"{folder}/run"
    trainer = Trainer(config, run_dir, build_dataset(config.data))
    trainer.fit()
    if resume_steps:
        config = tiny_config(preset, **{**overrides, "train.steps": resume_steps})
        trainer = Trainer(config, run_dir, build_dataset(config.data))
        trainer.restore(f"{run_dir}/checkpoints/step_{overrides['train.steps']:08d}")
        trainer.fit()
    players = {name: net.state_dict() for name, net in trainer.objective.players().items()}
    torch.save({"players": players, "data": trainer.data_rng.get_state(),
                "samples": trainer.objective.sample(trainer.fixed_latent)},
               f"{folder}/rank{rank}.pt")
    dist.destroy_process_group()


def test_two_ranks_stay_identical_write_one_run_folder_and_resume(tmp_path):
    # digits-mlp's D has dropout, and G's batch norm statistics follow each rank's batches.
    overrides = {"train.steps": 8, "log.every": 2, "log.checkpoint_every": 4,
                 "model.g_batchnorm": True}
    mp.spawn(_train, args=(str(tmp_path), "digits-mlp", overrides, 12), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for name, state in ranks[0]["players"].items():
        for key, value in state.items():
            assert torch.equal(value, ranks[1]["players"][name][key]), (name, key)
    assert not torch.equal(ranks[0]["data"], ranks[1]["data"])  # each rank drew its own batches
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert steps == [2, 4, 6, 8, 10, 12]  # rank 0 alone logs, each step once
    kept = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("step_*"))
    assert kept == ["step_00000008", "step_00000012"]


def test_two_ranks_learn_the_1d_gaussian(tmp_path):
    # The seed's example with an effective batch of 2 x 64: G's samples must reach N(5, 1).
    overrides = {"train.steps": 1600, "train.batch_size": 64, "log.every": 400,
                 "log.sample_every": 1600, "log.checkpoint_every": 1600,
                 "model.g_hidden": [], "model.d_hidden": [32, 32, 32]}
    mp.spawn(_train, args=(str(tmp_path), "toy-gaussian", overrides, 0), nprocs=2)
    samples = torch.load(tmp_path / "rank0.pt")["samples"]
    assert abs(float(samples.mean()) - 5.0) < 0.3 and 0.6 < float(samples.std()) < 1.5


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun is not on PATH")
def test_torchrun_cli_trains_one_run_and_prints_it_once(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        ["torchrun", "--standalone", "--nproc_per_node=2", "-m", "gankit.cli", "train",
         "digits-mlp", "train.steps=6", "train.batch_size=16", "log.every=3",
         "log.checkpoint_every=6", "log.tensorboard=false", "--out", str(out),
         "--no-progress"], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines() == [str(out)]
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").open()] == [3, 6]
    assert "batch 16 per process x 2 processes" in (out / "report.md").read_text()
    assert gankit.load(out).sample(4, seed=0).shape == (4, 1, 8, 8)
