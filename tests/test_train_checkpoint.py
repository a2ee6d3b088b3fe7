"""Checkpoints: safetensors + weights_only state round trip, `latest`, pruning, atomicity under a
simulated crash, and one-line errors for missing or corrupted files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

from gankit.errors import CheckpointFallbackWarning, GankitError
from gankit.train import checkpoint as ckpt
from gankit.train.checkpoint import (
    LATEST_FILE,
    STATE_FILE,
    atomic_write_text,
    load_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
)


class NotPlainData:
    """An arbitrary Python object: weights_only loading must refuse it."""

    def __init__(self):
        self.value = 42


def error_line(excinfo: pytest.ExceptionInfo) -> str:
    message = str(excinfo.value)
    assert message and "\n" not in message, f"message is not one line: {message!r}"
    return message


def make_net(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 1))
    net.train()
    net(torch.randn(8, 3))  # moves the BatchNorm running stats off their initial values
    return net


def make_players(seed: int = 0):
    g, d = make_net(seed), make_net(seed + 100)
    optimizer = torch.optim.Adam(g.parameters(), lr=1e-3, betas=(0.5, 0.999))
    g(torch.randn(8, 3)).pow(2).mean().backward()
    optimizer.step()
    return g, d, optimizer


def make_state(optimizer, step: int) -> dict:
    generator = torch.Generator().manual_seed(step)
    return {
        "step": step,
        "optimizer_g": optimizer.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "data": generator.get_state()},
        "config": {"name": "toy-ring", "train": {"steps": 10, "betas": [0.5, 0.999],
                                                  "device": "cpu"},
                   "log": {"progress": False}, "description": None},
    }


def weights_of(g: nn.Module, d: nn.Module) -> dict:
    return {"generator": g.state_dict(), "discriminator": d.state_dict()}


def save_step(run_dir: Path, step: int, keep: int = 2, seed: int | None = None) -> Path:
    g, d, optimizer = make_players(step if seed is None else seed)
    return save_checkpoint(run_dir, step, weights_of(g, d), make_state(optimizer, step), keep=keep)


def step_folders(run_dir: Path) -> list[str]:
    return sorted(p.name for p in (run_dir / "checkpoints").glob("step_*"))


def latest_name(run_dir: Path) -> str:
    return (run_dir / "checkpoints" / LATEST_FILE).read_text().strip()


# ---------------------------------------------------------------- round trip


def test_round_trip_weights_and_state(tmp_path):
    g, d, optimizer = make_players(0)
    state = make_state(optimizer, 7)
    folder = save_checkpoint(tmp_path, 7, weights_of(g, d), state)
    assert folder == tmp_path / "checkpoints" / "step_00000007"
    assert sorted(p.name for p in folder.iterdir()) == [
        "discriminator.safetensors", "generator.safetensors", STATE_FILE]

    weights, loaded, where = load_checkpoint(tmp_path)
    assert where == folder
    assert set(weights) == {"generator", "discriminator"}
    for name, net in (("generator", g), ("discriminator", d)):
        expected = net.state_dict()
        assert set(weights[name]) == set(expected)
        assert "1.running_mean" in weights[name] and "1.num_batches_tracked" in weights[name]
        for key, tensor in expected.items():
            assert weights[name][key].dtype == tensor.dtype
            assert torch.equal(weights[name][key], tensor), key
    assert weights["generator"]["1.num_batches_tracked"].item() == 2

    assert loaded["step"] == 7 and type(loaded["step"]) is int
    assert loaded["config"] == state["config"]
    assert torch.equal(loaded["rng"]["torch"], state["rng"]["torch"])
    assert loaded["rng"]["torch"].dtype == torch.uint8
    assert torch.equal(loaded["rng"]["data"], state["rng"]["data"])
    adam = loaded["optimizer_g"]
    assert adam["param_groups"] == state["optimizer_g"]["param_groups"]
    assert set(adam["state"]) == set(state["optimizer_g"]["state"])
    for index, slots in state["optimizer_g"]["state"].items():
        for slot, value in slots.items():
            assert torch.equal(adam["state"][index][slot], value), slot


def test_loaded_state_restores_a_model_and_optimizer_exactly(tmp_path):
    g, d, optimizer = make_players(1)
    save_checkpoint(tmp_path, 1, weights_of(g, d), make_state(optimizer, 1))
    weights, state, _ = load_checkpoint(tmp_path)

    g2 = make_net(999)
    g2.load_state_dict(weights["generator"])
    optimizer2 = torch.optim.Adam(g2.parameters(), lr=0.5)
    optimizer2.load_state_dict(state["optimizer_g"])
    # One more identical step from both must give identical parameters.
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    for net, opt in ((g, optimizer), (g2, optimizer2)):
        opt.zero_grad()
        net(x).pow(2).mean().backward()
        opt.step()
    for a, b in zip(g.parameters(), g2.parameters(), strict=True):
        assert torch.equal(a, b)
    restored = torch.Generator()
    restored.set_state(state["rng"]["data"])
    assert torch.equal(torch.rand(5, generator=restored),
                       torch.rand(5, generator=torch.Generator().manual_seed(1)))


def test_weights_are_saved_detached_contiguous_and_on_cpu(tmp_path):
    matrix = torch.arange(6.0).reshape(2, 3).t()  # not contiguous
    matrix.requires_grad_(True)
    save_checkpoint(tmp_path, 1, {"player": {"w": matrix}}, {"step": 1})
    weights, _, _ = load_checkpoint(tmp_path)
    assert weights["player"]["w"].is_contiguous()
    assert not weights["player"]["w"].requires_grad
    assert torch.equal(weights["player"]["w"], matrix.detach())


def test_arbitrary_objects_are_refused(tmp_path):
    folder = save_step(tmp_path, 1)
    torch.save({"step": 1, "evil": NotPlainData()}, folder / STATE_FILE)
    with pytest.raises(GankitError) as excinfo:
        load_checkpoint(tmp_path)
    message = error_line(excinfo)
    assert str(folder / STATE_FILE) in message
    assert "unreadable" in message


def test_a_lost_weight_file_makes_a_checkpoint_unreadable(tmp_path):
    # gankit.load fell back to the raw generator without a word when generator_ema went.
    save_step(tmp_path, 1)
    newest = save_step(tmp_path, 2)
    (newest / "generator.safetensors").unlink()
    with pytest.warns(CheckpointFallbackWarning, match="generator.safetensors: missing from "
                      "the checkpoint; using the newest readable checkpoint, .*step_00000001"):
        _, state, used = load_checkpoint(tmp_path)
    assert used.name == "step_00000001" and state["step"] == 1
    with pytest.raises(GankitError, match="generator.safetensors: missing from the checkpoint"):
        load_checkpoint(newest)


def test_a_state_without_the_keys_a_reader_needs_is_unreadable_to_it(tmp_path):
    save_step(tmp_path, 1)
    newest = save_step(tmp_path, 2)
    torch.save({"step": 2, "config": {}}, newest / STATE_FILE)
    assert load_checkpoint(tmp_path)[2] == newest  # a reader that needs no more
    with pytest.warns(CheckpointFallbackWarning, match="incomplete checkpoint state \\(no rng"):
        assert load_checkpoint(tmp_path, required=("step", "rng"))[2].name == "step_00000001"
    torch.save([1, 2], newest / STATE_FILE)
    with pytest.raises(GankitError, match="not a checkpoint state \\(a list, not a dict\\)"):
        load_checkpoint(newest)


# ---------------------------------------------------------------- latest and pruning


def test_latest_points_to_the_newest_and_keep_prunes(tmp_path):
    for step in (1, 2, 3, 4):
        save_step(tmp_path, step, keep=2)
        assert latest_name(tmp_path) == f"step_{step:08d}"
        _, state, where = load_checkpoint(tmp_path)
        assert state["step"] == step and where.name == f"step_{step:08d}"
    assert step_folders(tmp_path) == ["step_00000003", "step_00000004"]
    leftovers = [p.name for p in (tmp_path / "checkpoints").iterdir()
                 if p.name.startswith(".")]
    assert leftovers == []  # no staging folders or temporary latest files


def test_keep_three_and_keep_one(tmp_path):
    for step in (10, 20, 30, 40, 50):
        save_step(tmp_path / "three", step, keep=3)
        save_step(tmp_path / "one", step, keep=1)
    assert step_folders(tmp_path / "three") == ["step_00000030", "step_00000040",
                                                "step_00000050"]
    assert step_folders(tmp_path / "one") == ["step_00000050"]


def test_steps_sort_numerically_not_by_length(tmp_path):
    for step in (9, 100, 1000):
        save_step(tmp_path, step, keep=2, seed=0)
    assert step_folders(tmp_path) == ["step_00000100", "step_00001000"]


def test_a_step_is_saved_once_and_a_second_save_keeps_the_first(tmp_path):
    # The weights of one step never change, so a second save of it (e.g. the final save after
    # a checkpoint at the same step) must not rewrite, or open a window without, that folder.
    save_step(tmp_path, 5, seed=1)
    first, _, _ = load_checkpoint(tmp_path)
    save_step(tmp_path, 6)
    g, d, _ = make_players(2)
    save_checkpoint(tmp_path, 5, weights_of(g, d), {"step": 5, "again": True})
    weights, state, where = load_checkpoint(tmp_path)
    assert where.name == "step_00000005" and latest_name(tmp_path) == "step_00000005"
    assert state["step"] == 5 and "again" not in state
    assert torch.equal(weights["generator"]["0.weight"], first["generator"]["0.weight"])


def test_atomic_write_text_replaces_content(tmp_path):
    target = tmp_path / "latest"
    atomic_write_text(target, "a\n")
    atomic_write_text(target, "b\n")
    assert target.read_text() == "b\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest"]


# ---------------------------------------------------------------- atomicity


def assert_previous_is_intact(run_dir: Path, step: int):
    assert latest_name(run_dir) == f"step_{step:08d}"
    weights, state, where = load_checkpoint(run_dir)
    assert state["step"] == step
    assert where == run_dir / "checkpoints" / f"step_{step:08d}"
    assert set(weights) == {"generator", "discriminator"}


def test_crash_while_writing_weights_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    save_step(tmp_path, 1)
    real_save_file = ckpt.save_file
    calls = []

    def crash_after_first(*args, **kwargs):
        calls.append(args[1])
        if len(calls) > 1:
            raise KeyboardInterrupt("killed mid-save")
        return real_save_file(*args, **kwargs)

    monkeypatch.setattr(ckpt, "save_file", crash_after_first)
    with pytest.raises(KeyboardInterrupt):
        save_step(tmp_path, 2)
    assert len(calls) == 2
    assert step_folders(tmp_path) == ["step_00000001"]
    assert_previous_is_intact(tmp_path, 1)

    # The next save, after the "restart", works and cleans up after itself.
    monkeypatch.setattr(ckpt, "save_file", real_save_file)
    save_step(tmp_path, 2)
    assert step_folders(tmp_path) == ["step_00000001", "step_00000002"]
    assert latest_name(tmp_path) == "step_00000002"


def test_crash_while_writing_state_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    save_step(tmp_path, 1)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_step(tmp_path, 2)
    monkeypatch.undo()
    assert step_folders(tmp_path) == ["step_00000001"]
    assert_previous_is_intact(tmp_path, 1)


def test_crash_at_the_rename_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    save_step(tmp_path, 1)
    real_replace = os.replace

    def crash_on_rename(src, dst, *args, **kwargs):
        if Path(dst).name.startswith("step_"):
            raise OSError("killed at the rename")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", crash_on_rename)
    with pytest.raises(OSError, match="killed at the rename"):
        save_step(tmp_path, 2)
    monkeypatch.undo()
    assert step_folders(tmp_path) == ["step_00000001"]
    assert_previous_is_intact(tmp_path, 1)


def test_crash_before_latest_is_updated_keeps_latest_on_the_previous(tmp_path, monkeypatch):
    save_step(tmp_path, 1)
    real_replace = os.replace

    def crash_on_latest(src, dst, *args, **kwargs):
        if Path(dst).name == LATEST_FILE:
            raise OSError("killed before latest")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", crash_on_latest)
    with pytest.raises(OSError, match="killed before latest"):
        save_step(tmp_path, 2)
    monkeypatch.undo()
    assert_previous_is_intact(tmp_path, 1)
    # The complete new folder is usable directly, and the old one was not pruned.
    assert load_checkpoint(tmp_path / "checkpoints" / "step_00000002")[1]["step"] == 2
    assert "step_00000001" in step_folders(tmp_path)


def test_resaving_the_same_step_never_renames_over_it(tmp_path, monkeypatch):
    save_step(tmp_path, 3)
    real_replace = os.replace

    def crash_on_rename(src, dst, *args, **kwargs):
        if Path(dst).name.startswith("step_"):
            raise OSError("killed at the rename")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", crash_on_rename)
    save_step(tmp_path, 3, seed=4)  # no rename of a step folder happens at all
    monkeypatch.undo()
    assert_previous_is_intact(tmp_path, 3)


# ---------------------------------------------------------------- resolve and errors


def test_resolve_accepts_run_checkpoints_and_checkpoint_folders(tmp_path):
    save_step(tmp_path, 1)
    newest = save_step(tmp_path, 2)
    assert resolve_checkpoint(tmp_path) == newest
    assert resolve_checkpoint(str(tmp_path)) == newest
    assert resolve_checkpoint(tmp_path / "checkpoints") == newest
    older = tmp_path / "checkpoints" / "step_00000001"
    assert resolve_checkpoint(older) == older
    assert load_checkpoint(older)[1]["step"] == 1


def test_folder_without_checkpoint_names_it(tmp_path):
    empty = tmp_path / "empty-run"
    empty.mkdir()
    with pytest.raises(GankitError) as excinfo:
        resolve_checkpoint(empty)
    message = error_line(excinfo)
    assert str(empty) in message
    assert "no checkpoint" in message
    with pytest.raises(GankitError) as excinfo:
        load_checkpoint(tmp_path / "does-not-exist")
    assert str(tmp_path / "does-not-exist") in error_line(excinfo)


def test_latest_pointing_nowhere_names_it(tmp_path):
    save_step(tmp_path, 1)
    (tmp_path / "checkpoints" / "step_00000001" / STATE_FILE).unlink()
    latest = tmp_path / "checkpoints" / LATEST_FILE
    latest.write_text("step_00000099\n")
    with pytest.raises(GankitError) as excinfo:
        load_checkpoint(tmp_path)
    message = error_line(excinfo)
    assert str(latest) in message
    assert "step_00000099" in message


@pytest.mark.parametrize("damage", ["state", "weights", "missing"])
def test_an_unreadable_latest_falls_back_to_the_newest_readable_with_a_warning(tmp_path, damage):
    save_step(tmp_path, 1)
    save_step(tmp_path, 2, keep=3)
    newest = save_step(tmp_path, 3, keep=3)
    if damage == "state":
        (newest / STATE_FILE).write_bytes(b"truncated")
    elif damage == "weights":
        (newest / "generator.safetensors").write_bytes(b"")
    else:
        (tmp_path / "checkpoints" / LATEST_FILE).write_text("step_00000099\n")
        (newest / STATE_FILE).unlink()
    with pytest.warns(ckpt.CheckpointFallbackWarning) as record:
        weights, state, used = load_checkpoint(tmp_path)
    assert used.name == "step_00000002" and state["step"] == 2
    g, _, _ = make_players(2)
    assert torch.equal(weights["generator"]["0.weight"], g.state_dict()["0.weight"])
    message = str(record[0].message)
    assert "\n" not in message and str(used) in message
    assert ("step_00000099" if damage == "missing" else str(newest)) in message
    # Reading changes nothing on disk.
    assert step_folders(tmp_path) == ["step_00000001", "step_00000002", "step_00000003"]


def test_a_checkpoint_folder_named_directly_is_never_replaced_by_another(tmp_path):
    save_step(tmp_path, 1)
    newest = save_step(tmp_path, 2)
    (newest / STATE_FILE).write_bytes(b"truncated")
    with pytest.raises(GankitError) as excinfo:
        load_checkpoint(newest)
    assert str(newest / STATE_FILE) in error_line(excinfo)


def test_set_aside_after_renames_the_later_checkpoints_and_points_latest_back(tmp_path):
    first = save_step(tmp_path, 1)
    save_step(tmp_path, 2, keep=3)
    save_step(tmp_path, 3, keep=3)
    saved = (tmp_path / "checkpoints" / "step_00000003" / STATE_FILE).read_bytes()
    moved = ckpt.set_aside_after(first)
    assert [p.name for p in moved] == ["set-aside-step_00000002", "set-aside-step_00000003"]
    assert step_folders(tmp_path) == ["step_00000001"]
    assert latest_name(tmp_path) == "step_00000001"
    assert (moved[1] / STATE_FILE).read_bytes() == saved  # kept as it was
    # Those steps can be saved again, and pruning never counts the folders set aside.
    save_step(tmp_path, 2, keep=1)
    assert step_folders(tmp_path) == ["step_00000002"] and all(p.is_dir() for p in moved)
    # Leaving step 2 again keeps both futures.
    again = ckpt.set_aside_after(save_step(tmp_path, 1, keep=2))
    assert [p.name for p in again] == ["set-aside-step_00000002-2"]
    assert moved[0].is_dir()
    # Continuing from a set-aside step leaves the earlier steps (its name sorts before theirs).
    assert ckpt.set_aside_after(moved[1]) == []
    assert step_folders(tmp_path) == ["step_00000001"]


@pytest.mark.parametrize("garbage", [b"\xff" * 100, b"garbage", b"", b"{}" * 50])
def test_corrupted_safetensors_names_the_file(tmp_path, garbage):
    folder = save_step(tmp_path, 1)
    broken = folder / "discriminator.safetensors"
    broken.write_bytes(garbage)
    with pytest.raises(GankitError) as excinfo:
        load_checkpoint(tmp_path)
    message = error_line(excinfo)
    assert str(broken) in message
    assert "unreadable weights" in message


def test_truncated_safetensors_names_the_file(tmp_path):
    folder = save_step(tmp_path, 1)
    broken = folder / "generator.safetensors"
    broken.write_bytes(broken.read_bytes()[:-8])
    with pytest.raises(GankitError) as excinfo:
        load_checkpoint(tmp_path)
    assert str(broken) in error_line(excinfo)


def test_corrupted_state_names_the_file(tmp_path):
    folder = save_step(tmp_path, 1)
    (folder / STATE_FILE).write_bytes(b"not a torch file")
    with pytest.raises(GankitError) as excinfo:
        load_checkpoint(tmp_path)
    assert str(folder / STATE_FILE) in error_line(excinfo)


def test_staging_folders_left_by_a_killed_save_are_cleared(tmp_path):
    stale = tmp_path / "checkpoints" / ".staging-step_00000009-99999"
    stale.mkdir(parents=True)
    (stale / "generator.safetensors").write_bytes(b"half written")
    save_step(tmp_path, 10)
    assert not stale.exists()
    assert_previous_is_intact(tmp_path, 10)
