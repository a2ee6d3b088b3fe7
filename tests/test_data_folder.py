"""Training on a folder of images: exact decoding, crop and resize, class subfolders as labels, a
cache that is reused until a file changes, and one-line errors naming the folder or the file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

import gankit
from conftest import TINY
from gankit.config import load_config
from gankit.data import build_dataset
from gankit.data import folder as folder_module
from gankit.data.folder import load_image_folder
from gankit.errors import GankitError


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def grey(value: int, side: int = 8) -> np.ndarray:
    return (np.arange(side * side, dtype=np.uint8).reshape(side, side) + value)


def write_pngs(folder, arrays) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, array in enumerate(arrays):
        paths.append(folder / f"{i:03d}.png")
        Image.fromarray(array).save(paths[-1])
    return paths


def cached_files(tmp_path) -> list:
    return sorted((tmp_path / "cache" / "gankit" / "folders").glob("*.npz"))


def test_png_pixels_come_back_exactly_in_file_order(tmp_path):
    write_pngs(tmp_path / "faces", [grey(i) for i in range(3)])
    data = load_image_folder(tmp_path / "faces", progress=False)
    assert data.images.dtype == torch.uint8 and data.images.shape == (3, 1, 8, 8)
    for i in range(3):
        assert torch.equal(data.images[i, 0], torch.from_numpy(grey(i)))
    assert data.labels.tolist() == [0, 0, 0] and data.name == "folder:faces"


def test_sixteen_bit_grey_keeps_its_high_byte(tmp_path):
    # PIL's convert("L") clips 16-bit values above 255, which turned such scans white.
    deep = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)
    (tmp_path / "deep").mkdir()
    Image.fromarray(deep).save(tmp_path / "deep" / "scan.png")
    data = load_image_folder(tmp_path / "deep", progress=False)
    assert torch.equal(data.images[0, 0], torch.from_numpy((deep >> 8).astype(np.uint8)))


def test_class_subfolders_give_sorted_labels_and_colour_gives_three_channels(tmp_path):
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 200
    write_pngs(tmp_path / "set" / "zebra", [grey(5)])
    write_pngs(tmp_path / "set" / "apple", [red, red])
    data = load_image_folder(tmp_path / "set", progress=False)
    assert data.labels.tolist() == [0, 0, 1]  # apple before zebra
    assert data.images.shape == (3, 3, 8, 8)
    assert torch.equal(data.images[0, :, 0, 0], torch.tensor([200, 0, 0], dtype=torch.uint8))
    # A grey image joins a colour set as equal R, G and B.
    assert all(torch.equal(data.images[2, c], torch.from_numpy(grey(5))) for c in range(3))
    assert load_image_folder(tmp_path / "set", channels=1, progress=False).shape == (1, 8, 8)


def test_size_centre_crops_and_resizes_like_pil_fit(tmp_path):
    wide = np.zeros((20, 40), np.uint8)
    wide[:, 10:30] = 255  # a white centre square between black side bands
    write_pngs(tmp_path / "wide", [wide])
    data = load_image_folder(tmp_path / "wide", size=10, progress=False)
    assert data.shape == (1, 10, 10)
    # The crop kept the centre and dropped the bands (Lanczos rings a little at the edges).
    assert int(data.images.min()) > 200 and float(data.images.float().mean()) > 250
    expected = ImageOps.fit(Image.fromarray(wide), (10, 10), Image.Resampling.LANCZOS)
    assert torch.equal(data.images[0, 0], torch.from_numpy(np.array(expected)))


def test_the_cache_is_reused_and_rebuilt_when_a_file_changes(tmp_path, monkeypatch):
    paths = write_pngs(tmp_path / "set", [grey(i) for i in range(4)])
    first = load_image_folder(tmp_path / "set", progress=False)
    assert len(cached_files(tmp_path)) == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again although the cache holds the folder")

    monkeypatch.setattr(folder_module, "decode_images", no_decoding)
    assert torch.equal(load_image_folder(tmp_path / "set", progress=False).images, first.images)
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    Image.fromarray(grey(100)).save(paths[2])
    changed = load_image_folder(tmp_path / "set", progress=False)
    assert torch.equal(changed.images[2, 0], torch.from_numpy(grey(100)))
    # Other settings are cached apart.
    load_image_folder(tmp_path / "set", size=4, progress=False)
    assert len(cached_files(tmp_path)) == 3


def test_a_damaged_cache_is_decoded_again(tmp_path):
    write_pngs(tmp_path / "set", [grey(i) for i in range(2)])
    first = load_image_folder(tmp_path / "set", progress=False)
    cache = cached_files(tmp_path)[0]
    cache.write_bytes(b"truncated")
    assert torch.equal(load_image_folder(tmp_path / "set", progress=False).images, first.images)
    np.savez(cache, images=first.images[:1].numpy())  # readable, but one image short
    assert torch.equal(load_image_folder(tmp_path / "set", progress=False).images, first.images)


def test_bad_folders_and_files_are_one_line_naming_them(tmp_path):
    def error(path, **kwargs) -> str:
        with pytest.raises(GankitError) as caught:
            load_image_folder(path, progress=False, data_root=tmp_path / "root", **kwargs)
        message = str(caught.value)
        assert "\n" not in message
        return message

    assert "no folder at" in error(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    assert "holds no images" in error(tmp_path / "empty")
    write_pngs(tmp_path / "mixed", [grey(0), grey(1, side=6)])
    assert "001.png: 6x6 px, unlike 000.png (8x8); set data.size" in error(tmp_path / "mixed")
    paths = write_pngs(tmp_path / "broken", [grey(0), grey(1)])
    paths[1].write_bytes(b"not a png")
    assert f"{paths[1]}: cannot decode image" in error(tmp_path / "broken")
    assert not cached_files(tmp_path)  # nothing half-decoded was cached
    write_pngs(tmp_path / "both", [grey(0)])
    write_pngs(tmp_path / "both" / "cats", [grey(1)])
    assert "beside class subfolders (cats)" in error(tmp_path / "both")


def test_a_relative_path_is_also_looked_for_under_the_data_root(tmp_path, monkeypatch):
    write_pngs(tmp_path / "root" / "photos", [grey(0)])
    monkeypatch.chdir(tmp_path)
    data = load_image_folder("photos", data_root=tmp_path / "root", progress=False)
    assert len(data) == 1


def test_config_refuses_folder_keys_elsewhere_and_a_folder_without_a_path():
    with pytest.raises(GankitError, match="data.size applies to data.name=folder only"):
        load_config("mnist-dcgan", {"data.size": 32})
    with pytest.raises(GankitError, match="needs data.path"):
        load_config("mnist-dcgan", {"data.name": "folder"})
    with pytest.raises(GankitError, match="data.channels=2"):
        load_config("mnist-dcgan", {"data.name": "folder", "data.path": "x",
                                    "data.channels": 2})


def test_a_dcgan_trains_on_a_folder_of_photos_of_any_shape(tmp_path):
    generator = np.random.default_rng(0)
    photos = [generator.integers(0, 256, (40 + 3 * i, 50, 3), dtype=np.uint8) for i in range(6)]
    write_pngs(tmp_path / "photos", photos)
    write_pngs(tmp_path / "one", photos[:1])
    with pytest.raises(GankitError, match=r"40, 50\)\W.*\(data.size=S resizes a folder's images"):
        gankit.train("mnist-dcgan", out=tmp_path / "unsized", **{
            **TINY, "data.name": "folder", "data.path": str(tmp_path / "one")})
    folder = {"data.name": "folder", "data.path": tmp_path / "photos", "data.size": 32}
    assert build_dataset(load_config("mnist-dcgan", folder).data).shape == (3, 32, 32)
    run = gankit.train("mnist-dcgan", out=tmp_path / "run", **{
        **TINY, **folder, "model.width": 8, "train.steps": 4, "log.every": 2,
        "log.sample_every": 4})
    samples = gankit.load(run).sample(5, seed=0)
    assert samples.shape == (5, 3, 32, 32) and torch.isfinite(samples).all()


def test_a_conditional_gan_with_fewer_classes_than_the_folder_is_refused_before_training(tmp_path):
    # It used to stop with torch's "index out of range in self" at the first step.
    for name in ("a", "b", "c"):
        write_pngs(tmp_path / "set" / name, [grey(0, side=28)])
    with pytest.raises(GankitError, match="model.num_classes=2, but folder:set has labels up to "
                                          "2; set model.num_classes=3"):
        gankit.train("mnist-cgan", out=tmp_path / "run", **{
            **TINY, "data.name": "folder", "data.path": str(tmp_path / "set"),
            "model.num_classes": 2})
    assert not (tmp_path / "run").exists()


def test_compare_shows_a_folder_runs_own_training_images(tmp_path):
    # compare took the reference to be "folder:test" and stopped asking for data.path.
    from gankit.compare import compare

    images = [np.full((12, 12), 40 * i, np.uint8) for i in range(5)]
    write_pngs(tmp_path / "set", images)
    folder = {"data.name": "folder", "data.path": str(tmp_path / "set"), "data.size": 28}
    run = gankit.train("mnist-dcgan", out=tmp_path / "run", **{
        **TINY, **folder, "model.width": 8, "train.steps": 2, "log.every": 2})
    report = (compare([run], tmp_path / "cmp") / "report.md").read_text()
    assert f"the first 64 images of folder {tmp_path / 'set'} (5 images)" in report
    other = tmp_path / "other"
    write_pngs(other, images)
    elsewhere = gankit.train("mnist-dcgan", out=tmp_path / "run2", **{
        **TINY, **folder, "data.path": str(other), "model.width": 8, "train.steps": 2,
        "log.every": 2})
    with pytest.raises(GankitError, match=f"trained on folder {other}, but"):
        compare([run, elsewhere], tmp_path / "cmp2")


def test_no_progress_hides_the_decoding_bar_too(tmp_path, capsys):
    write_pngs(tmp_path / "set", [grey(i, side=28) for i in range(3)])
    folder = {"data.name": "folder", "data.path": str(tmp_path / "set")}
    gankit.train("mnist-dcgan", out=tmp_path / "quiet", **{
        **TINY, **folder, "model.width": 8, "train.steps": 2, "log.every": 2})
    assert "decoding" not in capsys.readouterr().err  # TINY has log.progress=False
    load_image_folder(tmp_path / "set", size=14)  # another setting: decoded again, with a bar
    assert "decoding set" in capsys.readouterr().err
