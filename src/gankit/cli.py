"""The `gankit` command line (train, presets, sample, eval, study): a thin layer over the API."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from gankit.errors import GankitError, GankitWarning

USAGE_EXAMPLES = """examples:
  gankit train                                  # the default preset (8x8 digits, no download)
  gankit train toy-gaussian train.d_steps=2     # a preset with a dotted override
  gankit train --resume runs/toy-gaussian train.steps=6000
  gankit sample runs/toy-gaussian -n 1000 --npy
  gankit sample runs/mnist-cgan --labels 0,1,2 -n 30
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gankit", description="Train, sample and inspect GANs.", epilog=USAGE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a preset or YAML config into a run folder")
    train.add_argument("items", nargs="*", metavar="PRESET_OR_YAML | key=value",
                       help="a preset name or YAML file (default: the default preset), then "
                            "dotted overrides such as train.d_steps=2")
    train.add_argument("--out", type=Path, help="run folder (default: runs/<preset>)")
    train.add_argument("--data-root", type=Path, help="folder holding the datasets")
    train.add_argument("--resume", type=Path, metavar="RUN", help="continue this run folder")
    train.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    commands.add_parser("presets", help="list the presets shipped with gankit")

    sample = commands.add_parser("sample", help="draw samples from a trained run")
    sample.add_argument("run", type=Path, help="run folder or checkpoint folder")
    sample.add_argument("-n", type=int, default=64, help="number of samples (default 64)")
    sample.add_argument("--seed", type=int, default=None, help="noise seed (default: random)")
    sample.add_argument("--out", type=Path, help="PNG path (default: RUN/sample.png)")
    sample.add_argument("--npy", action="store_true",
                        help="also save the raw samples as .npy beside the PNG")
    sample.add_argument("--labels", help="conditional runs: classes to draw in turn, e.g. "
                                         "0,1,2 (one column of the grid each)")
    sample.add_argument("--data-root", type=Path,
                        help="folder holding the datasets (paired runs draw their inputs there)")
    evaluation = commands.add_parser(
        "eval", help="measure a run (FID, KID, precision/recall, modes, ...) and record it")
    evaluation.add_argument("run", type=Path, help="run folder")
    evaluation.add_argument("--metrics", help="comma-separated, e.g. fid,kid,pr,dc,cs "
                                              "(default: the protocol of the run's data)")
    evaluation.add_argument("-n", type=int, help="samples to draw (default: per protocol)")
    evaluation.add_argument("--reference", help="e.g. mnist:test, an image folder or stats.npz")
    evaluation.add_argument("--features", help="feature extractor, e.g. mnist")
    evaluation.add_argument("--seed", type=int, default=0)
    evaluation.add_argument("--data-root", type=Path, help="folder holding the datasets")
    evaluation.add_argument("--json", type=Path, help="also write the results to this file")

    comparison = commands.add_parser(
        "compare", help="real images beside the samples of several runs, with FID/precision/recall")
    comparison.add_argument("runs", nargs="+", type=Path, metavar="RUN",
                            help="run folders trained on the same data")
    comparison.add_argument("--out", type=Path, default=Path("runs/compare"),
                            help="folder for compare.png, report.md, results.json "
                                 "(default runs/compare)")
    comparison.add_argument("-n", type=int, default=10000,
                            help="samples per run for the metrics (default 10000)")
    comparison.add_argument("--real", help="real images: e.g. mnist:test or an image folder "
                                           "(default: the data's protocol, else its test split)")
    comparison.add_argument("--data-root", type=Path, help="folder holding the datasets")

    study = commands.add_parser("study", help="reproduce one of the seeds' comparisons")
    study.add_argument("name", nargs="?", help="the study (omit to list them)")
    study.add_argument("--out", type=Path, help="folder to write (default: runs/study-NAME)")
    study.add_argument("--data-root", type=Path, help="folder holding the datasets")
    study.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # Overrides may come after options (`train --out DIR key=value`): argparse leaves those
    # as unknown arguments, which belong to `train` only.
    args, extra = parser.parse_known_args(argv)
    if extra and (args.command != "train" or any(item.startswith("-") for item in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.items += extra
    # gankit's warnings (a checkpoint fallback) print as one line while the command runs.
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from gankit.config import MAX_SEED

    try:
        seed = getattr(args, "seed", None)
        if seed is not None and not 0 <= seed <= MAX_SEED:
            raise GankitError(f"--seed {seed} must be between 0 and {MAX_SEED}")
        if args.command == "train":
            return _train(args)
        if args.command == "presets":
            return _presets()
        if args.command == "eval":
            return _eval(args)
        if args.command == "compare":
            return _compare(args)
        if args.command == "study":
            return _study(args)
        return _sample(args)
    except GankitError as error:
        print(f"gankit: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        # A path the file system refuses (--out naming a file, no permission, a full disk):
        # one line naming the path. Errors without a path are not the user's input: re-raise.
        if error.filename is None:
            raise
        reason = ("exists and is not a folder" if isinstance(error, FileExistsError)
                  else error.strerror)
        print(f"gankit: error: {error.filename}: {reason}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gankit: interrupted; the last checkpoint is kept", file=sys.stderr)
        return 130


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """gankit's own warnings as one line, like its errors; others as Python shows them."""
    if issubclass(category, GankitWarning):
        print(f"gankit: warning: {message}", file=sys.stderr)
    else:
        text = warnings.formatwarning(message, category, filename, lineno, line)
        (file or sys.stderr).write(text)


def _train(args: argparse.Namespace) -> int:
    from gankit.api import train

    preset = None
    overrides = []
    for item in args.items:
        if "=" in item:
            overrides.append(item)
        elif preset is None and not overrides:
            preset = item
        else:
            raise GankitError(f"unexpected argument {item!r}: give one preset, then key=value "
                              "overrides")
    from gankit.train.distributed import teardown

    try:
        run_dir = train(preset, out=args.out, data_root=args.data_root, resume=args.resume,
                        progress=False if args.no_progress else None, overrides=overrides)
    finally:
        rank = teardown()  # under torchrun
    if rank == 0:
        print(run_dir)
    return 0


def _presets() -> int:
    from gankit.config import DEFAULT_PRESET, preset_description, preset_names

    names = preset_names()
    width = max(len(n) for n in names)
    for name in names:
        marker = " (default)" if name == DEFAULT_PRESET else ""
        print(f"{name:<{width}}  {preset_description(name)}{marker}")
    return 0


# Formats that both the image grid (PIL) and the toy plots (matplotlib) can write.
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _sample(args: argparse.Namespace) -> int:
    import math

    import numpy as np
    import torch

    from gankit.api import load
    from gankit.config import PAIRED_OBJECTIVES
    from gankit.viz.grid import save_image_grid
    from gankit.viz.toy import plot_samples

    labels = _parse_labels(args.labels) if args.labels is not None else None
    if args.out is not None and args.out.suffix.lower() not in PICTURE_SUFFIXES:
        raise GankitError(f"--out {args.out}: the picture needs a {'/'.join(PICTURE_SUFFIXES)} "
                          "path (--npy writes the raw samples beside it)")
    model = load(args.run, data_root=args.data_root)
    run_dir = model.checkpoint.parent.parent
    out = args.out if args.out is not None else run_dir / "sample.png"
    if model.config.model.objective in PAIRED_OBJECTIVES and labels is None:
        # Each output beside its input: an output alone does not show what it was asked.
        inputs, samples = model.sample_with_inputs(args.n, seed=args.seed)
        pairs = torch.stack([inputs, samples], dim=1).flatten(0, 1)
        save_image_grid(pairs, out, nrow=2 * math.ceil(math.sqrt(args.n / 2)))
    else:
        samples = model.sample(args.n, seed=args.seed, labels=labels)
        if samples.dim() == 4:
            save_image_grid(samples, out, nrow=len(labels) if labels else None)
        else:
            plot_samples(samples.numpy(), out, title=f"{args.n} samples of {model.config.name}")
    print(out)
    if args.npy:
        array_path = out.with_suffix(".npy")
        np.save(array_path, samples.numpy())
        print(array_path)
    return 0


def _parse_labels(text: str) -> list[int]:
    try:
        return [int(item) for item in text.split(",")]
    except ValueError:
        raise GankitError(f"--labels {text!r} must be comma-separated integers, e.g. 0,1,2"
                          ) from None


def _eval(args: argparse.Namespace) -> int:
    import json

    from gankit.api import saved_config
    from gankit.eval.evaluate import default_protocol, describe, evaluate, run_protocol
    from gankit.train.checkpoint import load_checkpoint
    from gankit.train.loop import LOAD_STATE_KEYS
    from gankit.train.report import append_evaluation

    _, state, checkpoint = load_checkpoint(args.run, required=LOAD_STATE_KEYS)
    config = saved_config(state, checkpoint)
    # The numbers go to the run's metrics and report, also when a checkpoint folder is named.
    run_dir = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint
    defaults = run_protocol(config.data.name, config.model.objective)
    metrics = tuple(args.metrics.split(",")) if args.metrics else defaults[0]
    if not metrics:
        default_protocol(config.data.name)  # raises the one-line explanation
    if args.json is not None:
        _check_output_file(args.json, "--json")  # before the minutes of evaluation, not after
    n = args.n if args.n is not None else defaults[3] or 10000
    results = evaluate(checkpoint, args.reference or defaults[1], metrics,
                       features=args.features or defaults[2] or "mnist",
                       n=n, seed=args.seed, data_root=args.data_root)
    print(describe(results))
    append_evaluation(run_dir, int(state["step"]), float(state.get("elapsed", 0.0)), results)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def _check_output_file(path: Path, flag: str) -> None:
    """Refuse a file path that cannot be written (a folder, one under a file, a place that
    takes no new files), by making its folder and opening it for appending."""
    if path.is_dir():
        raise GankitError(f"{flag} {path}: is a folder; name a file")
    parent = next(p for p in path.parents if p.exists())
    if not parent.is_dir():
        raise GankitError(f"{flag} {path}: {parent} is a file, not a folder")
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a"):
            pass
    except OSError as error:
        raise GankitError(f"{flag} {path}: cannot be written ({error.strerror})") from None
    if not existed:
        path.unlink()


def _compare(args: argparse.Namespace) -> int:
    from gankit.compare import compare

    print(compare(args.runs, args.out, n=args.n, reference=args.real, data_root=args.data_root))
    return 0


def _study(args: argparse.Namespace) -> int:
    from gankit.studies import run_study, study_descriptions

    if args.name is None:
        for name, description in study_descriptions().items():
            print(f"{name:<14}  {description}")
        return 0
    print(run_study(args.name, args.out, args.data_root, progress=not args.no_progress))
    return 0


if __name__ == "__main__":
    sys.exit(main())
