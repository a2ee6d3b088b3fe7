"""One entry point for every metric, in the shape of clean-fid / torch-fidelity.

    evaluate("runs/mnist-mlp", "mnist:test", metrics=["fid", "pr"], features="mnist", n=10000)
    -> {"fid/mnist-cnn/n10000": 12.3, "precision/mnist-cnn/n10000": 0.71, ...}

Every key names its metric, its feature extractor and its sample count, so a number can always
be compared with another one measured the same way. Features of dataset references are cached
on disk, keyed by extractor, dataset, split, n and seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gankit.data.folder import IMAGE_SUFFIXES, decode_images
from gankit.data.images import crop_padding, to_float
from gankit.data.root import cache_root
from gankit.device import resolve_device
from gankit.errors import GankitError
from gankit.eval import divergences
from gankit.eval.fid import feature_statistics, frechet_distance, kid_from_features
from gankit.eval.modes import mode_metrics, stacked_mnist_modes
from gankit.eval.parzen import parzen_log_likelihood, select_sigma
from gankit.eval.prdc import density_coverage, precision_recall

# metric -> what it needs: "features" (an extractor on both sides), "logits" (the extractor's
# classifier on the source), "points" (a toy run with a known density), "pixels" (raw images),
# "pairs" (a paired run, fed held-out inputs).
METRICS = {
    "fid": "features", "kid": "features", "pr": "features", "dc": "features",
    "cs": "logits", "label-acc": "logits", "stacked-modes": "logits", "modes": "points",
    "divergences": "points", "parzen": "pixels", "multimodal": "pairs",
}
# Neighbours per point: precision/recall with k = 3 (Kynkäänniemi et al.), density/coverage
# with k = 5 (Naeem et al.); each needs more than k samples.
K_PR, K_DC = 3, 5
MIN_N = {"pr": K_PR + 1, "dc": K_DC + 1}


def evaluate(source: Any, reference: Any = None, metrics: Sequence[str] = ("fid",),
             features: str = "mnist", n: int = 10000, seed: int = 0, *,
             latent_dim: int | None = None, data_root: str | Path | None = None,
             cache_dir: str | Path | None = None, device: str = "cpu",
             toy_distribution=None, labels: torch.Tensor | None = None) -> dict[str, float]:
    """Measure samples against a reference.

    Args:
        source: a run folder or the model `gankit.load` made of one, a folder of images, a
            tensor (or numpy array) of images in [-1, 1] or uint8 [0, 255] (N x C x H x W) or
            points (N x d), or a callable `z -> images` (then give `latent_dim`).
        reference: a dataset name with its split ("mnist:test", "fashion-mnist:train"), a folder
            of images, a tensor, or a `.npz` of cached FID statistics (mu, sigma). Toy runs need
            none: their data distribution is known.
        metrics: names from `METRICS` (a sequence, or one comma-separated string): fid,
            kid, pr (precision/recall, k=3), dc (density/coverage, k=5), cs (classifier
            score), label-acc (the share of a conditional model's samples the classifier
            assigns to their requested label; a conditional run is sampled with every label
            equally often), stacked-modes (Stacked MNIST's 1,000 modes, each channel
            classified), modes (2D toy), divergences (1D toy; exact, keyed "/exact", for a run
            whose G knows its density), parzen (Parzen-window
            log-likelihood), multimodal (a paired run on the first n pairs of its dataset's
            test split: how its outputs, `DRAWS` noise draws each, spread over the two
            targets; `gankit.eval.multimodal`).
        features: the feature extractor's name (see `gankit.eval.features`).
        n: how many samples to draw from the source (and from a dataset reference).
        seed: seed of the noise and of the reference subset.
        latent_dim: noise size for a callable source.
        data_root: where datasets live.
        cache_dir: where reference features are cached (default ~/.cache/gankit/features).
        device: where the extractor and the generator run.
        toy_distribution: the known data distribution, for toy metrics on a tensor source.
        labels: the requested label of each sample of a tensor source, for label-acc.

    Returns:
        A flat dict of floats, keyed "metric/extractor/nN" (or "metric/nN" without extractor).
    """
    if isinstance(metrics, str):
        metrics = tuple(metrics.split(","))  # "fid,pr", as on the command line
    check_request(metrics, n)
    device = str(resolve_device(device))
    results: dict[str, float] = {}
    if "multimodal" in metrics:  # measured on the model itself, not on samples
        results.update(_paired_metrics(source, n, seed, data_root, device))
        metrics = tuple(m for m in metrics if m != "multimodal")
        if not metrics:
            return results
    samples, distribution, run_labels, density = _source_samples(source, n, seed, latent_dim,
                                                                 device, data_root)
    if samples.is_floating_point() and not samples.isfinite().all():
        # Named here once: the metric functions below raise a bare ValueError for it.
        origin = source if isinstance(source, (str, Path)) else "the source"
        raise GankitError(f"{origin}: samples contain NaN or inf (a diverged generator?)")
    distribution = distribution if distribution is not None else toy_distribution
    labels = run_labels if labels is None else _first(torch.as_tensor(labels), n, "labels")
    if "label-acc" in metrics and labels is None:
        raise GankitError("label-acc needs a conditional run, or labels for the source samples")
    check_sample_shape(metrics, tuple(samples.shape[1:]))
    needs = {METRICS[m] for m in metrics}
    if "points" in needs:
        results.update(_toy_metrics(samples, distribution, metrics, n, density))
    if needs & {"features", "logits", "pixels"}:
        results.update(_image_metrics(samples, reference, metrics, features, n, seed,
                                      data_root, cache_dir, device, labels))
    return results


def check_request(metrics: Sequence[str], n: int,
                  sample_shape: tuple[int, ...] | None = None) -> None:
    """Raise `GankitError` for unknown metric names, n < 2, or (given the shape of one sample)
    image metrics asked of points: what `evaluate` would refuse, checked before any sampling."""
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise GankitError(f"unknown metric {unknown[0]!r}; choose from {', '.join(METRICS)}")
    least = max([2, *(MIN_N.get(m, 2) for m in metrics)])
    if n < least:
        # Name the metrics only where they, not the general minimum of 2, set the bound.
        needing = [m for m in metrics if m in MIN_N and MIN_N[m] == least]
        raise GankitError(f"n={n} must be at least {least}"
                          + (f" for {', '.join(needing)}" if needing else ""))
    if sample_shape is not None:
        check_sample_shape(metrics, sample_shape)


def check_sample_shape(metrics: Sequence[str], sample_shape: tuple[int, ...]) -> None:
    """Raise `GankitError` when metrics that need images are asked of samples of another shape
    (`sample_shape` is one sample's, e.g. (2,) for 2D points)."""
    image_metrics = [m for m in metrics if METRICS[m] != "points"]
    if image_metrics and len(sample_shape) != 3:
        raise GankitError(f"metrics {', '.join(image_metrics)} need images, got samples of "
                          f"shape {tuple(sample_shape)}")
    if "stacked-modes" in metrics and tuple(sample_shape) != (3, 28, 28):
        raise GankitError(f"stacked-modes needs Stacked MNIST's 3 x 28 x 28 images, got samples "
                          f"of shape {tuple(sample_shape)}")


def _cached_statistics(path: str | Path, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """The (mu, sigma) of a `.npz` of FID statistics, or one line naming the file's problem."""
    try:
        with np.load(path) as stats:
            mu, sigma = stats["mu"], stats["sigma"]
    except (OSError, ValueError, KeyError) as error:
        raise GankitError(f"{path}: not FID statistics, an .npz with arrays mu and sigma "
                          f"({error.__class__.__name__})") from None
    if mu.shape != (dims,) or sigma.shape != (dims, dims):
        raise GankitError(f"{path}: statistics of shape {mu.shape} and {sigma.shape}, but the "
                          f"extractor gives {dims} features")
    return mu, sigma


# ----------------------------------------------------------------------------- sources


def _source_samples(source: Any, n: int, seed: int, latent_dim: int | None, device: str,
                    data_root: str | Path | None = None):
    """(samples, toy distribution or None, requested labels or None, the generator's own
    density or None) for any kind of source."""
    if isinstance(source, np.ndarray):
        source = torch.from_numpy(source)
    if isinstance(source, torch.Tensor):
        if source.dtype == torch.uint8:  # images as stored, [0, 255]
            source = to_float(source)
        return _first(source, n, "the source tensor"), None, None, None
    if callable(source) and not isinstance(source, (str, Path)):
        if latent_dim is None:
            raise GankitError("a callable source needs latent_dim, the size of its noise z")
        rng = torch.Generator().manual_seed(seed)
        chunks = []
        with torch.inference_mode():
            for start in range(0, n, 1000):
                latent = torch.randn(min(1000, n - start), latent_dim, generator=rng)
                chunks.append(source(latent.to(device)).float().cpu())
        return torch.cat(chunks), None, None, None
    model = _trained_model(source, device, data_root)
    if model is not None:
        from gankit.data.toy import TOY_DATASETS

        # A conditional model is asked for every label equally often (0, 1, ..., K-1, 0, ...).
        labels = torch.arange(n) % model.num_classes if model.num_classes else None
        samples = model.sample(n, seed=seed, labels=labels)
        # A run trained on padded data (data.pad) makes padded samples: crop them back to the
        # dataset's own size, which the reference images and the feature extractor have.
        samples = crop_padding(samples, model.config.data.pad)
        name = model.config.data.name
        distribution = TOY_DATASETS[name]() if name in TOY_DATASETS else None
        return samples, distribution, labels, divergences.known_density(model.generator)
    path = Path(source)
    if path.is_dir():
        return read_image_folder(path, n), None, None, None
    raise GankitError(f"source {source!r} is not a run folder, an image folder, a tensor or a "
                      "callable")


def _trained_model(source: Any, device: str, data_root):
    """The model a source names: a `gankit.load` model as it is, a run folder's rebuilt (its
    checkpoint loaded), or None for a source that is not a model."""
    from gankit.api import TrainedGAN, load

    if isinstance(source, TrainedGAN):
        return source
    if not isinstance(source, (str, Path)):
        return None
    path = Path(source)
    if (path / "checkpoints").is_dir() or (path / "state.pt").is_file():
        return load(path, device=device, data_root=data_root)
    return None


def _first(samples: torch.Tensor, n: int, what: str) -> torch.Tensor:
    if len(samples) < n:
        raise GankitError(f"n={n} is larger than {what}, which holds {len(samples)} samples")
    return samples[:n].float()


def image_files(folder: Path) -> list[Path]:
    """The image files directly in a folder, sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def read_image_folder(folder: Path, n: int | None = None) -> torch.Tensor:
    """Images of a folder (sorted by name) as float [-1, 1] N x C x H x W.

    Raises:
        GankitError: naming the folder when it holds fewer than n images or images of mixed
            sizes, or naming a file that cannot be decoded.
    """
    files = image_files(folder)
    if n is not None and len(files) < n:
        raise GankitError(f"n={n} is larger than {folder}, which holds {len(files)} images")
    if not files:
        # Only the folder's own images: the first n of class subfolders would all be class 0.
        nested = any(p.suffix.lower() in IMAGE_SUFFIXES for p in Path(folder).rglob("*"))
        hint = "; its subfolders do: name one of them" if nested else ""
        raise GankitError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)}){hint}")
    return to_float(torch.from_numpy(decode_images(files[:n])))


# ----------------------------------------------------------------------------- toy metrics


def _toy_metrics(samples: torch.Tensor, distribution, metrics: Sequence[str], n: int,
                 density=None):
    if distribution is None:
        raise GankitError("modes and divergences need a toy run (toy-gaussian, toy-ring, "
                          "toy-grid), whose data density is known")
    results = {}
    if "modes" in metrics:
        if samples.shape[1] != 2:
            raise GankitError(f"modes needs 2D points, got samples of shape {tuple(samples.shape)}")
        found = mode_metrics(samples, distribution.means, distribution.std)
        results.update({f"{key}/n{n}": float(found[key])
                        for key in ("modes", "high_quality", "reverse_kl")})
    if "divergences" in metrics:
        if samples.shape[1] != 1:
            raise GankitError(f"divergences needs 1D points, got shape {tuple(samples.shape)}")
        found = divergences.toy_divergences(samples[:, 0].numpy(), distribution, density)
        # A generator that knows its density is measured exactly, whatever n: the key says so.
        tag = f"n{n}" if density is None else "exact"
        results.update({f"{key}/{tag}": value for key, value in found.items()})
    return results


# ----------------------------------------------------------------------------- image metrics


def _image_metrics(samples, reference, metrics, features, n, seed, data_root, cache_dir, device,
                   labels):
    from gankit.eval.features import load_extractor

    extractor = load_extractor(features, device=device)
    tag = f"{extractor_label(extractor)}/n{n}"
    results: dict[str, float] = {}
    if "cs" in metrics or "label-acc" in metrics:
        logits = extractor.logits(samples)
        if "cs" in metrics:
            results[f"classifier_score/{tag}"] = classifier_score(logits)
        if "label-acc" in metrics:
            results[f"label_accuracy/{tag}"] = label_accuracy(logits, labels)
    if "stacked-modes" in metrics:
        found = stacked_mnist_modes(samples, extractor.logits)
        results[f"stacked_modes/{tag}"] = float(found["modes"])
        results[f"stacked_reverse_kl/{tag}"] = found["reverse_kl"]
    feature_metrics = [m for m in metrics if METRICS[m] == "features"]
    if feature_metrics or "parzen" in metrics:
        if reference is None:
            raise GankitError(f"metrics {', '.join(metrics)} need a reference, e.g. mnist:test")
    if feature_metrics:
        fake = extractor.features(samples).double().numpy()
        if isinstance(reference, (str, Path)) and str(reference).endswith(".npz"):
            if feature_metrics != ["fid"]:
                raise GankitError(f"{reference}: cached statistics serve fid only")
            mu, sigma = _cached_statistics(reference, fake.shape[1])
            try:
                results[f"fid/{tag}"] = frechet_distance(*feature_statistics(fake), mu, sigma)
            except ValueError as error:  # NaN or inf in the file's statistics
                raise GankitError(f"{reference}: {error}") from None
            return results
        real = _reference_features(reference, extractor, n, seed, data_root, cache_dir)
        if "fid" in feature_metrics:
            results[f"fid/{tag}"] = frechet_distance(*feature_statistics(fake),
                                                     *feature_statistics(real))
        if "kid" in feature_metrics:
            mean, std = kid_from_features(fake, real, seed=seed)
            results[f"kid/{tag}"], results[f"kid_std/{tag}"] = mean, std
        if "pr" in feature_metrics:
            found = precision_recall(real, fake, k=K_PR)
            results[f"precision/{tag}"], results[f"recall/{tag}"] = (found["precision"],
                                                                     found["recall"])
        if "dc" in feature_metrics:
            found = density_coverage(real, fake, k=K_DC)
            results[f"density/{tag}"], results[f"coverage/{tag}"] = (found["density"],
                                                                     found["coverage"])
    if "parzen" in metrics:
        results.update(parzen_metrics(samples, reference, n, seed, data_root))
    return results


def classifier_score(logits: torch.Tensor) -> float:
    """The Inception Score computed with a domain classifier: exp(E_x KL(p(y|x) ‖ p(y))).

    It is 1 when every sample gets the same class distribution and the number of classes when
    each sample is classified with certainty and the classes are used equally.
    """
    log_probs = torch.log_softmax(logits.double(), dim=1)
    marginal = torch.logsumexp(log_probs, dim=0) - np.log(len(log_probs))
    kl = (log_probs.exp() * (log_probs - marginal)).sum(dim=1)
    return float(kl.mean().exp())


def label_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The share of samples whose classifier label is the label they were generated for."""
    if len(logits) != len(labels):
        raise GankitError(f"{len(labels)} labels for {len(logits)} samples")
    return float((logits.argmax(dim=1).cpu() == labels.cpu()).double().mean())


def parzen_metrics(samples: torch.Tensor, reference: Any, n: int, seed: int,
                   data_root) -> dict[str, float]:
    """Goodfellow et al. 2014's Parzen-window estimate: σ chosen on a validation split.

    Pixels are scaled to [0, 1] as in the paper. σ is picked on 1,000 training images and the
    log-likelihood is reported on the reference (e.g. the 10,000 MNIST test images).
    """
    if not isinstance(reference, str):
        raise GankitError("parzen needs a dataset reference such as mnist:test")
    name = reference.split(":")[0]
    validation = _dataset_images(f"{name}:train", 1000, seed + 1, data_root)
    test = _dataset_images(reference, None, seed, data_root)
    pixels = (samples.flatten(1) + 1) / 2
    sigma = select_sigma(pixels, (validation.flatten(1) + 1) / 2)
    mean, stderr = parzen_log_likelihood(pixels, (test.flatten(1) + 1) / 2, sigma)
    tag = f"n{n}"
    return {f"parzen_ll/{tag}": mean, f"parzen_se/{tag}": stderr, f"parzen_sigma/{tag}": sigma}


def _paired_metrics(source, n, seed, data_root, device) -> dict[str, float]:
    """The multimodal summary of a paired run folder on the first n inputs of its task's test
    split."""
    from gankit.config import PAIRED_OBJECTIVES, DataConfig
    from gankit.data import build_dataset
    from gankit.eval.multimodal import DRAWS, model_summary

    model = _trained_model(source, device, data_root)
    if model is None:
        raise GankitError("multimodal needs a paired run folder (or its gankit.load model) as "
                          "the source")
    objective = model.config.model.objective
    if objective not in PAIRED_OBJECTIVES:
        origin = source if isinstance(source, (str, Path)) else model.checkpoint
        raise GankitError(f"{origin}: multimodal needs a paired run (model.objective="
                          f"{' or '.join(PAIRED_OBJECTIVES)}), not {objective!r}")
    # Always the run's own task, held out: no other data has its pairs (a reference serves
    # the sample metrics asked for beside it).
    name = model.config.data.name
    task = build_dataset(DataConfig(name=name, split="test"), data_root)
    if n > len(task):
        raise GankitError(f"n={n} is larger than {name}:test, which holds {len(task)} inputs")
    summary = model_summary(model.objective, task, n, DRAWS, seed)
    return {f"{key}/n{n}x{DRAWS}": value for key, value in summary.items() if key != "n"}


# ----------------------------------------------------------------------------- references


def _dataset_images(spec: str, n: int | None, seed: int, data_root) -> torch.Tensor:
    """n images of "name:split" (all of them for n=None), a seeded random subset."""
    from gankit.config import DataConfig
    from gankit.data import build_dataset

    name, _, split = spec.partition(":")
    split = split or "test"
    try:
        data = build_dataset(DataConfig(name=name, split=split), data_root)
    except ValueError:
        raise GankitError(f"unknown reference dataset {name!r} (as in mnist:test)") from None
    if data.kind != "images":
        raise GankitError(f"reference {spec!r} is not an image dataset")
    if n is None:
        return data.first(len(data))
    if n > len(data):
        raise GankitError(f"n={n} is larger than {spec}, which holds {len(data)} images")
    index = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]
    return to_float(data.images[index])


def _reference_features(reference, extractor, n, seed, data_root, cache_dir) -> np.ndarray:
    if isinstance(reference, torch.Tensor):
        return extractor.features(_first(reference, n, "the reference tensor")).double().numpy()
    if isinstance(reference, Path) or (isinstance(reference, str) and ":" not in reference
                                       and Path(reference).is_dir()):
        return extractor.features(read_image_folder(Path(reference), n)).double().numpy()
    if not isinstance(reference, str):
        raise GankitError(f"reference {reference!r} is not a dataset name, folder or tensor")
    spec = reference if ":" in reference else f"{reference}:test"
    folder = Path(cache_dir) if cache_dir else cache_root().parent / "features"
    digest = extractor.weights_sha256[:12]  # retrained weights must not reuse cached features
    path = (folder / extractor_label(extractor)
            / f"{spec.replace(':', '-')}-n{n}-seed{seed}-{digest}.npy")
    if path.is_file():
        return np.load(path)
    real = extractor.features(_dataset_images(spec, n, seed, data_root)).double().numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(".tmp.npy")
    np.save(staging, real)
    staging.replace(path)
    return real


def extractor_label(extractor) -> str:
    """The name a metric key carries: the exact weights, e.g. "mnist-cnn"."""
    from gankit.eval.features import CLASSIFIERS

    spec = CLASSIFIERS.get(extractor.name)
    # torchvision's Inception-v3, not the TF-ported FID network: say so in every key.
    return spec.weights if spec is not None else "inception-v3-torchvision"


# The measurement protocol gankit uses for a run when the user names none: per dataset, the
# metrics, the reference, the extractor and the sample count.
PROTOCOLS = {
    "gaussian-1d": (("divergences",), None, None, 20000),
    "mixture-1d": (("divergences",), None, None, 20000),
    "ring": (("modes",), None, None, 2500),
    "grid": (("modes",), None, None, 2500),
    "mnist": (("fid", "kid", "pr", "dc", "cs"), "mnist:test", "mnist", 10000),
    "fashion-mnist": (("fid", "kid", "pr", "dc", "cs"), "fashion-mnist:test", "fashion-mnist",
                      10000),
    # PacGAN's protocol: 26,000 samples, each channel classified by the MNIST classifier.
    "stacked-mnist": (("stacked-modes",), None, "mnist", 26000),
    # The multimodal study's measure: its first 1,000 test digits, DRAWS outputs each.
    "shifted-mnist": (("multimodal",), None, None, 1000),
}


# Objectives whose samples answer a requested label: their protocol adds label-acc.
CONDITIONAL_OBJECTIVES = ("projection", "acgan")


def run_protocol(data_name: str, objective: str = "gan"
                 ) -> tuple[tuple[str, ...], str | None, str | None, int]:
    """(metrics, reference, features, n) for a run, or empty metrics where gankit has none."""
    metrics, reference, features, n = PROTOCOLS.get(data_name, ((), None, None, 0))
    if metrics and objective in CONDITIONAL_OBJECTIVES:
        metrics = (*metrics, "label-acc")
    return metrics, reference, features, n


def default_protocol(data_name: str) -> tuple[tuple[str, ...], str | None, str | None, int]:
    """(metrics, reference, features, n) for runs on `data_name`.

    Raises:
        GankitError: when gankit has no protocol (no feature extractor) for that data.
    """
    if data_name not in PROTOCOLS:
        raise GankitError(f"no default metrics for {data_name!r} data (no feature extractor); "
                          "pass --metrics, --features and --reference")
    return PROTOCOLS[data_name]


def describe(results: dict[str, float]) -> str:
    """The results as a two-column markdown table."""
    lines = ["| metric | value |", "|---|---|"]
    lines += [f"| {key} | {value:.6g} |" for key, value in results.items()]
    return "\n".join(lines)

