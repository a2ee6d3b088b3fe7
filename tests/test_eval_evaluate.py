"""gankit.eval.evaluate: one entry point, keys that say how a number was measured."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

import gankit
from conftest import TINY
from gankit.cli import main
from gankit.data.toy import gaussian_1d, ring
from gankit.errors import GankitError
from gankit.eval.evaluate import classifier_score, evaluate, read_image_folder


def tiny_ring_run(tmp_path, **values):
    settings = {**TINY, **values}
    return gankit.train("toy-ring", out=tmp_path / "ring", **settings)


def test_real_ring_points_capture_every_mode():
    distribution = ring()
    points = distribution.sample(2500, torch.Generator().manual_seed(0))
    results = evaluate(points, metrics=["modes"], n=2500, toy_distribution=distribution)
    assert results["modes/n2500"] == 8
    assert results["high_quality/n2500"] > 0.98
    assert results["reverse_kl/n2500"] < 0.01


def test_exact_1d_divergences_of_data_against_itself_are_small():
    distribution = gaussian_1d()
    points = distribution.sample(20000, torch.Generator().manual_seed(0))
    results = evaluate(points, metrics=["divergences"], n=20000, toy_distribution=distribution)
    assert set(results) == {"kl_data_g/n20000", "kl_g_data/n20000", "jsd/n20000"}
    assert 0 <= results["jsd/n20000"] < 0.005
    shifted = points + 1.0  # KL between N(5,1) and N(6,1) is 1/2
    results = evaluate(shifted, metrics=["divergences"], n=20000, toy_distribution=distribution)
    assert results["kl_g_data/n20000"] == pytest.approx(0.5, abs=0.05)


def test_run_folder_source_uses_its_own_data_distribution(tmp_path):
    run = tiny_ring_run(tmp_path)
    results = evaluate(run, metrics=["modes"], n=300)
    assert set(results) == {"modes/n300", "high_quality/n300", "reverse_kl/n300"}
    assert 0 <= results["modes/n300"] <= 8
    # The model gankit.load makes of the run is the same source, loaded once by the caller.
    assert evaluate(gankit.load(run), metrics=["modes"], n=300) == results


def test_classifier_score_hand_computed_cases():
    certain_and_balanced = torch.eye(10).repeat(5, 1) * 50.0
    assert classifier_score(certain_and_balanced) == pytest.approx(10.0, rel=1e-6)
    all_the_same = torch.zeros(20, 10)
    assert classifier_score(all_the_same) == pytest.approx(1.0, abs=1e-9)
    # Two classes, each sample certain, used 3:1 -> exp(H(p_y)) with p_y = (3/4, 1/4).
    logits = torch.tensor([[50.0, 0.0]] * 3 + [[0.0, 50.0]])
    entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert classifier_score(logits) == pytest.approx(math.exp(entropy), rel=1e-6)


def test_image_folder_is_read_exactly_and_bad_files_are_named(tmp_path):
    pixels = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    for i in range(3):
        Image.fromarray(pixels + i).save(tmp_path / f"{i}.png")
    images = read_image_folder(tmp_path)
    assert images.shape == (3, 1, 8, 8)
    assert torch.equal(((images[1, 0] + 1) * 127.5).round().to(torch.uint8),
                       torch.from_numpy(pixels + 1))
    with pytest.raises(GankitError, match="n=5 is larger"):
        read_image_folder(tmp_path, 5)
    (tmp_path / "3.png").write_bytes(b"not a png")
    with pytest.raises(GankitError, match="3.png"):
        read_image_folder(tmp_path)
    (tmp_path / "classes" / "cats").mkdir(parents=True)
    Image.fromarray(pixels).save(tmp_path / "classes" / "cats" / "0.png")
    with pytest.raises(GankitError, match="holds no images .*; its subfolders do: name one"):
        read_image_folder(tmp_path / "classes")


def test_bad_requests_are_one_line(tmp_path):
    points = ring().sample(100, torch.Generator().manual_seed(0))
    with pytest.raises(GankitError, match="unknown metric 'fdi'"):
        evaluate(points, metrics=["fdi"], toy_distribution=ring())
    # The general minimum names no metric ("for modes" read as if modes needed it).
    with pytest.raises(GankitError, match="^n=1 must be at least 2$"):
        evaluate(points, metrics=["modes"], n=1, toy_distribution=ring())
    with pytest.raises(GankitError, match="n=200 is larger than the source tensor"):
        evaluate(points, metrics=["modes"], n=200, toy_distribution=ring())
    with pytest.raises(GankitError, match="need images"):
        evaluate(points, "mnist:test", metrics=["fid"], n=100)
    with pytest.raises(GankitError, match="toy run"):
        evaluate(points, metrics=["modes"], n=100)
    # NaN samples (a diverged generator) stopped modes and parzen with a bare ValueError.
    points[7] = float("nan")
    with pytest.raises(GankitError, match="the source: samples contain NaN or inf"):
        evaluate(points, metrics=["modes"], n=100, toy_distribution=ring())
    with pytest.raises(GankitError, match="samples contain NaN or inf"):
        evaluate(torch.full((10, 1, 8, 8), float("inf")), torch.zeros(10, 1, 8, 8),
                 metrics=["parzen"], n=10)


def test_bad_fid_statistics_files_are_one_line(tmp_path):
    images = torch.rand(8, 1, 28, 28) * 2 - 1
    cases = {"text.npz": "not FID statistics", "no-mu.npz": "not FID statistics",
             "five.npz": r"shape \(5,\) and \(5, 5\), but the extractor gives 128 features",
             "nan.npz": "mu or sigma contains NaN or inf"}
    (tmp_path / "text.npz").write_text("not numpy")
    np.savez(tmp_path / "no-mu.npz", sigma=np.eye(128))
    np.savez(tmp_path / "five.npz", mu=np.zeros(5), sigma=np.eye(5))
    np.savez(tmp_path / "nan.npz", mu=np.full(128, np.nan), sigma=np.eye(128))
    for name, message in cases.items():
        with pytest.raises(GankitError, match=f"^{tmp_path / name}: .*{message}"):
            evaluate(images, tmp_path / name, metrics=["fid"], n=8)


def test_stacked_modes_of_one_channel_images_is_refused(tmp_path):
    with pytest.raises(GankitError, match=r"stacked-modes needs Stacked MNIST's 3 x 28 x 28 "
                                          r"images, got samples of shape \(1, 28, 28\)"):
        evaluate(torch.zeros(8, 1, 28, 28), metrics=["stacked-modes"], n=8)


def test_cli_eval_of_a_checkpoint_folder_records_in_its_run(tmp_path, capsys):
    run = tiny_ring_run(tmp_path)
    checkpoint = run / "checkpoints" / "step_00000006"
    assert main(["eval", str(checkpoint), "-n", "100"]) == 0
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["step"] == 6 and "modes/n100" in last
    assert "## Evaluation at step 6" in (run / "report.md").read_text()
    assert sorted(p.name for p in checkpoint.iterdir()) == [
        "discriminator.safetensors", "generator.safetensors", "generator_ema.safetensors",
        "state.pt"]


def test_loop_measures_metrics_during_training_and_reports_them(tmp_path):
    run = tiny_ring_run(tmp_path, **{"log.eval_every": 6, "log.eval_metrics": ["modes"],
                                     "log.eval_n": 200})
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    measured = [r for r in records if "modes/n200" in r]
    assert [r["step"] for r in measured] == [6, 12]
    assert all(r["time"] > 0 for r in measured)
    report = (run / "report.md").read_text()
    assert "## Metrics during training" in report and (run / "metrics.png").is_file()


def test_cli_eval_prints_and_records(tmp_path, capsys):
    run = tiny_ring_run(tmp_path)
    target = tmp_path / "eval.json"
    assert main(["eval", str(run), "-n", "250", "--json", str(target)]) == 0
    shown = capsys.readouterr().out
    assert "| modes/n250 |" in shown
    saved = json.loads(target.read_text())
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["step"] == 12 and last["modes/n250"] == saved["modes/n250"]
    assert "## Evaluation at step 12" in (run / "report.md").read_text()
    assert main(["eval", str(run), "--metrics", "fid"]) == 2
    assert "need images" in capsys.readouterr().err


def test_cli_eval_refuses_bad_n_and_json_before_measuring(tmp_path, capsys):
    run = tiny_ring_run(tmp_path)
    before = (run / "metrics.jsonl").read_text()
    (tmp_path / "a-file").write_text("")
    cases = [(["-n", "0"], "n=0 must be at least 2"),  # was read as "the protocol's n"
             (["--json", str(tmp_path)], "is a folder; name a file"),
             (["--json", str(tmp_path / "a-file" / "x.json")], "is a file, not a folder"),
             # /proc takes no new files: this was found out after the evaluation, recorded.
             (["--json", "/proc/gankit-x.json"], "/proc/gankit-x.json: cannot be written"),
             (["--metrics", "pr", "-n", "3"], "n=3 must be at least 4 for pr"),
             (["--metrics", "modes,dc", "-n", "5"], "n=5 must be at least 6 for dc"),
             (["--seed", "-1"], "--seed -1 must be between 0 and 4294967295")]
    for extra, message in cases:
        assert main(["eval", str(run), *extra]) == 2
        assert message in capsys.readouterr().err
    assert (run / "metrics.jsonl").read_text() == before  # nothing measured, nothing recorded
    target = tmp_path / "new" / "folder" / "eval.json"
    assert main(["eval", str(run), "-n", "100", "--json", str(target)]) == 0
    assert "modes/n100" in json.loads(target.read_text())
