"""Safe, atomic checkpoints: weights as safetensors, loop state as plain tensors.

A checkpoint is a folder `checkpoints/step_00001000/` holding one `<player>.safetensors` per
net and `state.pt` (optimizer state, step, RNG states, config) that is loaded with
`weights_only=True`, so loading never runs code from the file. The folder is written under a
temporary name, fsynced and renamed, and `checkpoints/latest` is replaced atomically after it:
a kill at any moment leaves the last good checkpoint readable.
"""

from __future__ import annotations

import os
import re
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from gankit.errors import CheckpointFallbackWarning, GankitError

STATE_FILE = "state.pt"
LATEST_FILE = "latest"
WEIGHT_FILES_KEY = "weight_files"  # the players saved, so that a lost file is noticed


def save_checkpoint(run_dir: Path, step: int, weights: dict[str, dict[str, torch.Tensor]],
                    state: dict[str, Any], keep: int = 2) -> Path:
    """Write one checkpoint atomically and prune old ones.

    Args:
        run_dir: the run folder.
        step: the training step, which names the folder.
        weights: {player name: state_dict} written as `<player>.safetensors`.
        state: plain data (tensors, numbers, strings, lists, dicts) for `state.pt`.
        keep: how many of the newest checkpoints to keep.

    Returns:
        The checkpoint folder.
    """
    folder = Path(run_dir) / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step_{step:08d}"
    if not (final / STATE_FILE).is_file():
        # A step is saved once: the weights of a step never change, and replacing a good
        # folder would open a window in which `latest` points at nothing.
        for stale in folder.glob(".staging-*"):  # left by a save that was killed
            shutil.rmtree(stale, ignore_errors=True)
        staging = folder / f".staging-{final.name}-{os.getpid()}"
        staging.mkdir()
        state = {**state, WEIGHT_FILES_KEY: sorted(weights)}
        for name, state_dict in weights.items():
            tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
            save_file(tensors, str(staging / f"{name}.safetensors"))
        torch.save(state, staging / STATE_FILE)
        for path in staging.iterdir():
            _fsync_file(path)
        os.replace(staging, final)
        _fsync_dir(folder)
    atomic_write_text(folder / LATEST_FILE, final.name + "\n")
    _prune(folder, keep, protect=final)
    return final


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint folder for a run folder, its `checkpoints/` folder, or a checkpoint folder.

    Raises:
        GankitError: if there is no readable checkpoint there.
    """
    path = Path(path)
    if (path / STATE_FILE).is_file():
        return path
    if not path.is_dir():
        problem = "is a file, not a" if path.exists() else "no such"
        raise GankitError(f"{path}: {problem} run or checkpoint folder")
    folder = _checkpoints_folder(path)
    latest = folder / LATEST_FILE
    if not latest.is_file():
        if folder == path and path.name != "checkpoints":
            # A run folder without checkpoints/ (a run stopped before its first save): name
            # where its checkpoints would be.
            latest = path / "checkpoints" / LATEST_FILE
        raise GankitError(f"no checkpoint found in {path} (looked for {latest})")
    checkpoint = folder / latest.read_text().strip()
    if not (checkpoint / STATE_FILE).is_file():
        raise GankitError(f"{latest} points to {checkpoint}, which has no {STATE_FILE}")
    return checkpoint


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu",
                    required: Sequence[str] = ()
                    ) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any], Path]:
    """Read a checkpoint without executing anything from it.

    A checkpoint is unreadable when a file does not load, when one of the weight files it was
    saved with is missing, or when its state lacks a key of `required`.

    Given a run (or `checkpoints/`) folder whose latest checkpoint is unreadable or missing (a
    disk error, a file truncated by a copy), it reads the newest readable older one instead and
    warns with a `CheckpointFallbackWarning` that names both. A checkpoint folder named
    directly is read or refused, never replaced.

    Returns:
        (weights by player name, the state dict, the checkpoint folder).

    Raises:
        GankitError: if no checkpoint there can be read (naming the latest one's problem).
    """
    path = Path(path)
    if (path / STATE_FILE).is_file():
        return _read_checkpoint(path, map_location, required)
    try:
        return _read_checkpoint(resolve_checkpoint(path), map_location, required)
    except GankitError as latest_error:
        for older in reversed(_step_folders(_checkpoints_folder(path))):
            try:
                loaded = _read_checkpoint(older, map_location, required)
            except GankitError:
                continue
            warnings.warn(f"{latest_error}; using the newest readable checkpoint, {older}",
                          CheckpointFallbackWarning, stacklevel=2)
            return loaded
        raise


def set_aside_after(checkpoint: Path) -> list[Path]:
    """Before a run continues from `checkpoint`, rename the run's later checkpoints (unreadable
    ones it fell back past, or a future the user chose to leave) to `set-aside-step_...`.

    They are kept, but no longer counted: the run will save those steps again, and a step that
    is already saved is never rewritten. `latest` then names `checkpoint`.

    Returns:
        The new paths of the folders set aside.
    """
    folder = checkpoint.parent
    moved = []
    for later in _step_folders(folder):
        # By step, not by name: a set-aside folder chosen to resume from sorts before step_*.
        if _step_number(later) > _step_number(checkpoint):
            target, copy = folder / f"set-aside-{later.name}", 2
            while target.exists():  # set aside before, by an earlier resume
                target, copy = folder / f"set-aside-{later.name}-{copy}", copy + 1
            os.replace(later, target)
            moved.append(target)
    if moved:
        _fsync_dir(folder)
        atomic_write_text(folder / LATEST_FILE, checkpoint.name + "\n")
    return moved


def _read_checkpoint(checkpoint: Path, map_location: str | torch.device, required: Sequence[str]
                     ) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any], Path]:
    try:
        state = torch.load(checkpoint / STATE_FILE, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling errors have many types
        raise GankitError(f"{checkpoint / STATE_FILE}: unreadable checkpoint state "
                          f"({exc.__class__.__name__})") from None
    if not isinstance(state, dict):
        raise GankitError(f"{checkpoint / STATE_FILE}: not a checkpoint state (a "
                          f"{type(state).__name__}, not a dict)")
    missing = [key for key in required if key not in state]
    if missing:
        raise GankitError(f"{checkpoint / STATE_FILE}: incomplete checkpoint state (no "
                          f"{', '.join(missing)})")
    for name in state.get(WEIGHT_FILES_KEY, ()):
        if not (checkpoint / f"{name}.safetensors").is_file():
            raise GankitError(f"{checkpoint / name}.safetensors: missing from the checkpoint")
    weights = {}
    for file in sorted(checkpoint.glob("*.safetensors")):
        try:
            weights[file.stem] = load_file(str(file), device=str(map_location))
        except (SafetensorError, OSError) as exc:
            raise GankitError(f"{file}: unreadable weights ({exc})") from None
    return weights, state, checkpoint


def _step_number(checkpoint: Path) -> int:
    """The step in a checkpoint folder's name (step_00000040, set-aside-step_00000040-2);
    -1 for a name without one."""
    found = re.search(r"step_(\d+)", checkpoint.name)
    return int(found.group(1)) if found else -1


def _checkpoints_folder(path: Path) -> Path:
    return path / "checkpoints" if (path / "checkpoints").is_dir() else path


def _step_folders(folder: Path) -> list[Path]:
    """The checkpoint folders in `folder`, oldest first (the zero-padded names sort by step)."""
    return sorted(p for p in folder.glob("step_*") if p.is_dir())


def atomic_write_text(path: Path, text: str) -> None:
    """Write a small text file so readers see the old or the new content, never a mix."""
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(staging, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(staging, path)
    _fsync_dir(path.parent)


def _prune(folder: Path, keep: int, protect: Path) -> None:
    checkpoints = _step_folders(folder)
    for old in checkpoints[:-keep]:
        if old != protect:
            shutil.rmtree(old, ignore_errors=True)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    # Directory fsync makes the rename durable; not every platform allows opening a directory.
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
