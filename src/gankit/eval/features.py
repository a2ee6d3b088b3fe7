"""Feature extractors for evaluation (FID, KID, precision/recall), looked up by name.

As in clean-fid and torch-fidelity, a metric names its extractor and gets a frozen module that
turns images into feature vectors, batch by batch. The names:

- "mnist", "fashion-mnist", "usps": `DigitClassifier`s trained by `tools/train_classifier.py`
  (weights `mnist-cnn`, `fashion-cnn`, `usps-cnn`, shipped in `gankit/eval/weights/`); the
  features are the classifier's penultimate activations. They take (N, 1, 28, 28) images; the
  "usps" extractor also takes USPS's native (N, 1, 16, 16) and resizes them to 28x28 exactly as
  its training data loader did.
- "inception": torchvision's Inception-v3 2048-d pool features, from weights the user has put
  in the torch hub cache. gankit never downloads them.

Every number computed with these features should be reported with the extractor's name (and
its `weights_sha256`) and the sample counts: FIDs from different extractors are not comparable.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import urlparse

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from torch import nn

from gankit.data.images import to_float
from gankit.data.usps import resize_images
from gankit.errors import GankitError
from gankit.nets.classifier import DigitClassifier

DEFAULT_BATCH_SIZE = 256
# Images a little outside [-1, 1] are rounding; far outside means a wrong scale (e.g. [0, 255]).
RANGE_TOLERANCE = 1e-3


@dataclass(frozen=True)
class _ClassifierSpec:
    """A shipped DigitClassifier: its weights' name, the dataset it was trained on, and the
    input sizes it accepts besides its native 28x28 (resized to 28x28)."""

    weights: str
    dataset: str
    resized_from: tuple[int, ...] = ()


CLASSIFIERS = {
    "mnist": _ClassifierSpec("mnist-cnn", "mnist"),
    "fashion-mnist": _ClassifierSpec("fashion-cnn", "fashion-mnist"),
    "usps": _ClassifierSpec("usps-cnn", "usps", resized_from=(16,)),
}
INCEPTION = "inception"
INCEPTION_SIZE = 299
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def available_extractors() -> list[str]:
    """The names `load_extractor` accepts, sorted."""
    return sorted([*CLASSIFIERS, INCEPTION])


class FeatureExtractor(nn.Module):
    """A frozen network that maps images in [-1, 1] to feature vectors (and class logits).

    It stays in eval mode (batch norm uses its running statistics, dropout is off) whatever
    `train()` is called with, and never records gradients, so features do not depend on the
    batch they are computed in.

    Args:
        name: the registry name, e.g. "mnist".
        net: a module with `features(x) -> (N, feature_dim)` and `forward(x) -> logits`, taking
            images already checked by this wrapper.
        input_shape: the (C, H, W) the net is made for.
        feature_dim: width of the feature vectors.
        num_classes: width of the logits.
        accepted_channels: channel counts accepted at the input.
        accepted_sizes: heights (= widths) accepted at the input; None accepts any size
            (the net resizes).
        description: one line for reports: the architecture and where its weights come from.
        weights_sha256: sha256 of the weights file, so a reported number names exact weights.
    """

    def __init__(
        self,
        name: str,
        net: nn.Module,
        input_shape: tuple[int, int, int],
        feature_dim: int,
        num_classes: int,
        accepted_channels: tuple[int, ...],
        accepted_sizes: tuple[int, ...] | None,
        description: str,
        weights_sha256: str,
    ):
        super().__init__()
        self.name = name
        self.net = net
        self.input_shape = tuple(input_shape)
        self.feature_dim = feature_dim
        self.num_classes = num_classes
        self.accepted_channels = tuple(accepted_channels)
        self.accepted_sizes = None if accepted_sizes is None else tuple(accepted_sizes)
        self.description = description
        self.weights_sha256 = weights_sha256
        self.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> FeatureExtractor:
        # Frozen: batch statistics or dropout would make features depend on the batch.
        return super().train(False)

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def features(self, images: torch.Tensor, batch_size: int = DEFAULT_BATCH_SIZE) -> torch.Tensor:
        """Feature vectors of images, computed batch by batch.

        Args:
            images: float (N, C, H, W) in [-1, 1], or uint8 (N, C, H, W) in [0, 255], on any
                device; C and H x W must be ones this extractor accepts.
            batch_size: images per forward pass.

        Returns:
            float32 (N, feature_dim) on the CPU.

        Raises:
            GankitError: the images' shape, dtype or range is not accepted.
        """
        return self._batched(self.net.features, images, batch_size, self.feature_dim)

    def logits(self, images: torch.Tensor, batch_size: int = DEFAULT_BATCH_SIZE) -> torch.Tensor:
        """Class logits of images (10 digit or clothing classes; ImageNet's 1000 for inception).

        Args:
            images: as for `features`.
            batch_size: images per forward pass.

        Returns:
            float32 (N, num_classes) on the CPU.

        Raises:
            GankitError: the images' shape, dtype or range is not accepted.
        """
        return self._batched(self.net, images, batch_size, self.num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The features of one batch (see `features`)."""
        return self.features(images)

    def _batched(self, compute, images: torch.Tensor, batch_size: int, width: int) -> torch.Tensor:
        if batch_size < 1:
            raise GankitError(f"batch_size must be >= 1, got {batch_size}")
        self._check_shape(images)
        outputs = []
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                batch = self._to_float(images[start : start + batch_size].to(self.device))
                outputs.append(compute(batch).float().cpu())
        return torch.cat(outputs) if outputs else torch.empty(0, width)

    def _check_shape(self, images: torch.Tensor) -> None:
        expected = self._expected_shapes()
        if not isinstance(images, torch.Tensor):
            raise GankitError(
                f"{self.name} extractor: expected a tensor of images {expected}, got "
                f"{type(images).__name__}"
            )
        shape = tuple(images.shape)
        if images.dim() != 4:
            raise GankitError(
                f"{self.name} extractor: images of shape {shape}, expected {expected}"
            )
        channels, height, width = shape[1:]
        size_ok = height == width and (self.accepted_sizes is None or height in self.accepted_sizes)
        if channels not in self.accepted_channels or not size_ok:
            raise GankitError(
                f"{self.name} extractor: images of shape {shape}, expected {expected}"
            )
        if images.dtype != torch.uint8 and not images.is_floating_point():
            raise GankitError(
                f"{self.name} extractor: images of dtype {images.dtype}, expected float in "
                f"[-1, 1] or uint8"
            )

    def _expected_shapes(self) -> str:
        channels = "|".join(str(c) for c in self.accepted_channels)
        if self.accepted_sizes is None:
            return f"(N, {channels}, H, W) with H = W"
        return " or ".join(f"(N, {channels}, {s}, {s})" for s in self.accepted_sizes)

    def _to_float(self, batch: torch.Tensor) -> torch.Tensor:
        if batch.dtype == torch.uint8:
            return to_float(batch)
        batch = batch.float()
        if not torch.isfinite(batch).all():
            raise GankitError(f"{self.name} extractor: images contain NaN or inf (a diverged "
                              "generator?)")
        low, high = batch.min().item(), batch.max().item()
        if low < -1.0 - RANGE_TOLERANCE or high > 1.0 + RANGE_TOLERANCE:
            raise GankitError(
                f"{self.name} extractor: images must lie in [-1, 1], got values in "
                f"[{low:.4g}, {high:.4g}]"
            )
        return batch


def load_extractor(name: str, device: str | torch.device = "cpu") -> FeatureExtractor:
    """The frozen feature extractor registered under `name`.

    Args:
        name: one of `available_extractors()`.
        device: where the network runs; inputs are moved there batch by batch.

    Returns:
        A `FeatureExtractor` in eval mode on `device`.

    Raises:
        GankitError: the name is unknown, or its weights are missing or do not match.
    """
    if name in CLASSIFIERS:
        extractor = _load_classifier(name, CLASSIFIERS[name])
    elif name == INCEPTION:
        extractor = _load_inception()
    else:
        raise GankitError(
            f"unknown feature extractor {name!r} (available: {', '.join(available_extractors())})"
        )
    return extractor.to(device)


def weights_folder():
    """The folder of shipped classifier weights, `gankit/eval/weights/`, as a Traversable."""
    return resources.files("gankit.eval").joinpath("weights")


def weights_record(weights: str) -> dict:
    """The training record written beside `<weights>.safetensors` by tools/train_classifier.py.

    Args:
        weights: the weights' name, e.g. "mnist-cnn".

    Returns:
        The parsed `<weights>.json`: test accuracy, command, epochs, seed, sha256, feature_dim...

    Raises:
        GankitError: the file is missing or is not JSON.
    """
    dataset = next((s.dataset for s in CLASSIFIERS.values() if s.weights == weights), weights)
    record_file = weights_folder().joinpath(f"{weights}.json")
    if not record_file.is_file():
        raise GankitError(
            f"{record_file} not found: it is written with the weights by "
            f"`python tools/train_classifier.py {dataset}`"
        )
    try:
        return json.loads(record_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GankitError(f"{record_file}: not valid JSON ({exc})") from None


def _load_classifier(name: str, spec: _ClassifierSpec) -> FeatureExtractor:
    weights_file = weights_folder().joinpath(f"{spec.weights}.safetensors")
    if not weights_file.is_file():
        raise GankitError(
            f"{spec.weights} weights not found at {weights_file}: create them with "
            f"`python tools/train_classifier.py {spec.dataset}`"
        )
    raw = weights_file.read_bytes()
    record = weights_record(spec.weights)
    sha256 = hashlib.sha256(raw).hexdigest()
    if sha256 != record.get("sha256"):
        raise GankitError(
            f"{weights_file}: sha256 {sha256[:12]}... does not match {record.get('sha256')!r} "
            f"recorded in {spec.weights}.json; retrain with "
            f"`python tools/train_classifier.py {spec.dataset}`"
        )
    try:
        state = load_safetensors(raw)
        # The widths are read from the tensors, so the file alone says which net it holds.
        net = DigitClassifier(
            in_channels=state["body.0.weight"].shape[1],
            num_classes=state["classify.weight"].shape[0],
            feature_dim=state["classify.weight"].shape[1],
        )
        net.load_state_dict(state)
    except (SafetensorError, KeyError, RuntimeError) as exc:
        message = str(exc).splitlines()[0]
        raise GankitError(f"{weights_file}: not DigitClassifier weights ({message})") from None
    sizes = (DigitClassifier.image_size, *spec.resized_from)
    accuracy = record.get("test_accuracy")
    trained = f", {accuracy:.2%} {spec.dataset} test accuracy" if accuracy is not None else ""
    return FeatureExtractor(
        name=name,
        net=_ResizedInput(net, DigitClassifier.image_size) if spec.resized_from else net,
        input_shape=(net.in_channels, DigitClassifier.image_size, DigitClassifier.image_size),
        feature_dim=net.feature_dim,
        num_classes=net.num_classes,
        accepted_channels=(net.in_channels,),
        accepted_sizes=sizes,
        description=f"{spec.weights}: DigitClassifier, {net.feature_dim}-d penultimate "
        f"features{trained}",
        weights_sha256=sha256,
    )


class _ResizedInput(nn.Module):
    """Resizes images to `size` before the net, with the same function as the USPS loader."""

    def __init__(self, net: nn.Module, size: int):
        super().__init__()
        self.net = net
        self.size = size

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.features(resize_images(images, self.size))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(resize_images(images, self.size))


def inception_weights_path() -> Path:
    """Where torchvision would cache Inception_V3_Weights.IMAGENET1K_V1, and where gankit reads it.

    The file name is the last part of the weights' URL, as `torch.hub.load_state_dict_from_url`
    names it, under `torch.hub.get_dir()/checkpoints/` (which follows $TORCH_HOME).
    """
    from torchvision.models import Inception_V3_Weights

    file_name = os.path.basename(urlparse(Inception_V3_Weights.IMAGENET1K_V1.url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / file_name


def _load_inception() -> FeatureExtractor:
    from torchvision.models import Inception_V3_Weights, inception_v3

    path = inception_weights_path()
    if not path.is_file():
        raise GankitError(
            f"inception weights not found: put {path.name} "
            f"({Inception_V3_Weights.IMAGENET1K_V1.url}) at {path}; gankit never downloads"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        # The arguments torchvision's inception_v3(weights=IMAGENET1K_V1) builds with, but with
        # no weights argument, so nothing is downloaded.
        model = inception_v3(
            weights=None, aux_logits=True, transform_input=True, init_weights=False
        )
        model.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001 - any failure to read the file means the same here
        message = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise GankitError(f"{path}: not torchvision's Inception-v3 weights ({message})") from None
    net = _InceptionV3Features(model)
    return FeatureExtractor(
        name=INCEPTION,
        net=net,
        input_shape=(3, INCEPTION_SIZE, INCEPTION_SIZE),
        feature_dim=net.feature_dim,
        num_classes=net.num_classes,
        accepted_channels=(1, 3),
        accepted_sizes=None,
        description="torchvision Inception-v3 (IMAGENET1K_V1) 2048-d pool features, bilinear "
        "resize to 299; not the TF FID Inception, so FIDs are not comparable with published ones",
        weights_sha256=_file_sha256(path),
    )


class _InceptionV3Features(nn.Module):
    """torchvision's Inception-v3 as a feature extractor: 2048-d pool features and 1000 logits.

    This is torchvision's ImageNet model, NOT the TensorFlow-ported Inception of the original
    FID code (pytorch-fid's FIDInceptionA..E blocks, TF's resize): its FIDs are not comparable
    with published TF numbers, only with each other.

    Preprocessing: greyscale images are repeated to 3 channels, resized to 299x299 bilinearly,
    mapped from [-1, 1] to [0, 1] and normalised with ImageNet's mean and std, which is the
    input torchvision's transforms for these weights produce (the model's `transform_input`
    then maps it to the scaling the Google weights expect).
    """

    feature_dim = 2048

    def __init__(self, model: nn.Module):
        super().__init__()
        self.num_classes = model.fc.out_features
        self.classify = model.fc
        # With fc removed the forward pass ends at the flattened 2048-d average pool (dropout
        # is off in eval mode), so the features come from torchvision's own forward.
        model.fc = nn.Identity()
        self.model = model
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        images = resize_images(images, INCEPTION_SIZE)
        return ((images + 1.0) / 2.0 - self.mean) / self.std

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(self._prepare(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(images))


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
