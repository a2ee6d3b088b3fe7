"""Feature extractors: the shipped classifiers on real test sets, their records, input checks,
missing or altered weights, and Inception read only from the local hub cache, never downloaded."""

from __future__ import annotations

import hashlib
import shutil
import urllib.request
from pathlib import Path

import pytest
import torch
import torchvision
from torchvision.models import inception_v3

from gankit.data.images import load_idx_dataset, to_float
from gankit.data.usps import load_usps, resize_images, usps_path
from gankit.errors import GankitError
from gankit.eval import features
from gankit.eval.features import (
    FeatureExtractor,
    available_extractors,
    inception_weights_path,
    load_extractor,
    weights_folder,
    weights_record,
)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
# The targets the shipped weights were trained to meet on the full test sets.
TARGETS = {"mnist": ("mnist-cnn", 0.993), "fashion-mnist": ("fashion-cnn", 0.925)}


def error_line(excinfo: pytest.ExceptionInfo) -> str:
    message = str(excinfo.value)
    assert message and "\n" not in message, f"message is not one line: {message!r}"
    return message


def first_test_images(dataset: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    folder = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}[dataset]
    if not (SHARED_DATA / folder / "raw").is_dir():
        pytest.skip(f"no {folder} data in {SHARED_DATA}")
    data = load_idx_dataset(dataset, SHARED_DATA, "test")
    return to_float(data.images[:n]), data.labels[:n]


@pytest.fixture(scope="module")
def mnist_extractor() -> FeatureExtractor:
    return load_extractor("mnist")


def test_registry_names():
    assert available_extractors() == ["fashion-mnist", "inception", "mnist", "usps"]


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(GankitError) as excinfo:
        load_extractor("mnsit")
    message = error_line(excinfo)
    assert "'mnsit'" in message
    assert all(name in message for name in available_extractors())


@pytest.mark.parametrize("dataset", sorted(TARGETS))
def test_shipped_weights_match_their_record(dataset):
    weights, target = TARGETS[dataset]
    record = weights_record(weights)
    raw = weights_folder().joinpath(f"{weights}.safetensors").read_bytes()
    assert record["test_accuracy"] >= target
    assert record["sha256"] == hashlib.sha256(raw).hexdigest()
    assert len(raw) < 1_000_000
    assert record["test_images"] == 10_000
    assert record["command"].startswith(f"python tools/train_classifier.py {dataset}")


@pytest.mark.parametrize(("dataset", "minimum"), [("mnist", 0.99), ("fashion-mnist", 0.91)])
def test_classifier_labels_the_real_test_set(dataset, minimum):
    images, labels = first_test_images(dataset, 2000)
    extractor = load_extractor(dataset)
    predicted = extractor.logits(images).argmax(1)
    assert (predicted == labels).float().mean().item() >= minimum


def test_usps_extractor_reads_native_16px_digits():
    if not usps_path(SHARED_DATA).is_file():
        pytest.skip(f"no {usps_path(SHARED_DATA)}")
    pytest.importorskip("h5py")
    test = load_usps(SHARED_DATA, "test")
    extractor = load_extractor("usps")
    images = to_float(test.images)
    accuracy = (extractor.logits(images).argmax(1) == test.labels).float().mean().item()
    # The same images and resize as the recorded full-test-set number: equal up to rounding.
    assert accuracy == pytest.approx(weights_record("usps-cnn")["test_accuracy"], abs=0.002)
    assert accuracy > 0.9
    # 16x16 input is resized with the loader's function, so it equals resizing beforehand.
    torch.testing.assert_close(
        extractor.features(images[:50]), extractor.features(resize_images(images[:50], 28))
    )


def test_features_have_the_recorded_width_and_ignore_batching(mnist_extractor):
    images, labels = first_test_images("mnist", 300)
    whole = mnist_extractor.features(images, batch_size=300)
    assert whole.shape == (300, weights_record("mnist-cnn")["feature_dim"])
    assert mnist_extractor.feature_dim == whole.shape[1]
    assert mnist_extractor.input_shape == (1, 28, 28)
    assert whole.dtype == torch.float32 and not whole.requires_grad
    torch.testing.assert_close(mnist_extractor.features(images, batch_size=7), whole)
    # The features carry the class: nearly every image lies nearest its own class's mean.
    means = torch.stack([whole[labels == digit].mean(0) for digit in range(10)])
    nearest = torch.cdist(whole, means).argmin(1)
    assert (nearest == labels).float().mean().item() >= 0.95


def test_uint8_images_give_the_same_features_as_their_float_form(mnist_extractor):
    pixels = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    torch.testing.assert_close(
        mnist_extractor.features(pixels), mnist_extractor.features(to_float(pixels))
    )


def test_stays_in_eval_mode(mnist_extractor):
    images = torch.rand(8, 1, 28, 28) * 2 - 1
    before = mnist_extractor.features(images)
    mnist_extractor.train()
    assert not mnist_extractor.training
    assert not any(module.training for module in mnist_extractor.modules())
    torch.testing.assert_close(mnist_extractor.features(images[:3]), before[:3])


@pytest.mark.parametrize(
    "shape",
    [(2, 1, 32, 32), (2, 3, 28, 28), (2, 1, 16, 16), (2, 1, 28, 20), (1, 28, 28)],
    ids=["size", "channels", "usps-size", "not-square", "no-batch-dim"],
)
def test_wrong_shape_names_it_and_the_expected_one(mnist_extractor, shape):
    with pytest.raises(GankitError) as excinfo:
        mnist_extractor.features(torch.zeros(shape))
    message = error_line(excinfo)
    assert str(shape) in message and "(N, 1, 28, 28)" in message


def test_usps_extractor_names_both_sizes_it_accepts():
    with pytest.raises(GankitError) as excinfo:
        load_extractor("usps").features(torch.zeros(2, 1, 20, 20))
    message = error_line(excinfo)
    assert "(2, 1, 20, 20)" in message
    assert "(N, 1, 28, 28)" in message and "(N, 1, 16, 16)" in message


def test_values_outside_the_signed_range_are_refused(mnist_extractor):
    with pytest.raises(GankitError, match=r"\[-1, 1\].*255"):
        mnist_extractor.features(torch.full((2, 1, 28, 28), 255.0))


def test_missing_weights_name_the_command_that_makes_them(tmp_path, monkeypatch):
    monkeypatch.setattr(features, "weights_folder", lambda: tmp_path)
    with pytest.raises(GankitError) as excinfo:
        load_extractor("fashion-mnist")
    message = error_line(excinfo)
    assert "fashion-cnn.safetensors" in message
    assert "python tools/train_classifier.py fashion-mnist" in message


def test_altered_weights_are_refused(tmp_path, monkeypatch):
    for suffix in (".safetensors", ".json"):
        shutil.copy(weights_folder().joinpath(f"mnist-cnn{suffix}"), tmp_path)
    weights_file = tmp_path / "mnist-cnn.safetensors"
    raw = bytearray(weights_file.read_bytes())
    raw[-1] ^= 0xFF
    weights_file.write_bytes(bytes(raw))
    monkeypatch.setattr(features, "weights_folder", lambda: tmp_path)
    with pytest.raises(GankitError) as excinfo:
        load_extractor("mnist")
    assert "sha256" in error_line(excinfo) and str(weights_file) in str(excinfo.value)


@pytest.fixture
def no_downloads(monkeypatch):
    """Fail the test if anything tries to fetch weights over the network."""

    def refuse(*args, **kwargs):
        pytest.fail(f"attempted a download: {args} {kwargs}")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture
def empty_hub(tmp_path, monkeypatch) -> Path:
    """An empty torch hub cache: $TORCH_HOME points into tmp_path."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    hub = Path(torch.hub.get_dir())
    assert hub == tmp_path / "torch" / "hub", "torch.hub.set_dir was called elsewhere"
    return hub


def test_inception_path_is_torchvisions_cache_file(empty_hub):
    path = inception_weights_path()
    url = torchvision.models.Inception_V3_Weights.IMAGENET1K_V1.url
    assert path == empty_hub / "checkpoints" / url.rsplit("/", 1)[1]
    assert path.name.startswith("inception_v3") and path.suffix == ".pth"


def test_inception_without_weights_says_where_to_put_them(empty_hub, no_downloads):
    with pytest.raises(GankitError) as excinfo:
        load_extractor("inception")
    message = error_line(excinfo)
    assert str(inception_weights_path()) in message
    assert not inception_weights_path().exists()


def test_corrupt_inception_weights_are_one_line_naming_the_file(empty_hub, no_downloads):
    path = inception_weights_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(GankitError) as excinfo:
        load_extractor("inception")
    assert str(path) in error_line(excinfo)


def test_inception_loads_a_cached_checkpoint_and_preprocesses_grey_images(empty_hub, no_downloads):
    """A randomly initialised Inception-v3 saved where torchvision caches the real one stands
    in for it: the loading code and the preprocessing are the same."""
    torch.manual_seed(0)
    reference = inception_v3(
        weights=None, aux_logits=True, transform_input=True, init_weights=False
    )
    path = inception_weights_path()
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)

    extractor = load_extractor("inception")
    assert (extractor.input_shape, extractor.feature_dim) == ((3, 299, 299), 2048)
    grey = torch.rand(2, 1, 28, 28) * 2 - 1
    pool_features = extractor.features(grey)
    logits = extractor.logits(grey)
    assert pool_features.shape == (2, 2048) and logits.shape == (2, 1000)

    # By hand: 3 channels, bilinear 299, [0, 1], ImageNet normalisation, torchvision's forward.
    rgb = torch.nn.functional.interpolate(
        grey.expand(-1, 3, -1, -1), size=(299, 299), mode="bilinear", align_corners=False
    )
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected_logits = reference.eval()(((rgb + 1) / 2 - mean) / std)
    torch.testing.assert_close(logits, expected_logits, atol=1e-4, rtol=1e-4)

    with pytest.raises(GankitError, match=r"\(2, 2, 28, 28\)"):
        extractor.features(torch.zeros(2, 2, 28, 28))
