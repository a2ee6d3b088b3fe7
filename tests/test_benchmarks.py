"""The benchmark scripts: bad arguments stop in one line before any training or timing."""

from __future__ import annotations

import importlib.util
import json
import mmap
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import gankit

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCHMARKS / name), *args], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("args, message", [
    (["presets.py", "toy-gaussian", "nope"], "unknown preset 'nope'"),
    (["quality.py", "nope"], "unknown preset 'nope'"),
    (["throughput.py", "--rounds", "0"], "argument --rounds: 0 must be >= 1"),
    (["throughput.py", "--cases", "nope"], "unknown case 'nope'"),
    (["precision.py", "nope"], "unknown preset 'nope'"),
    (["precision.py", "toy-grid"], "gankit measures no FID on 'grid' data"),
    (["precision.py", "mnist-dcgan", "--seeds", "0,x"], "argument --seeds: '0,x' is not"),
    (["precision.py", "mnist-dcgan", "--jobs", "0"], "argument --jobs: 0 is too small"),
    (["strided_layers.py", "--repeats", "0"], "argument --repeats: 0 must be >= 1"),
    (["padding_taps.py", "--pairs", "0"], "argument --pairs: 0 must be >= 1"),
    (["padding_taps.py", "--throughput", "/nonexistent.json"],
     "--throughput /nonexistent.json: [Errno 2]"),
    (["step_profile.py", "nope"], "unknown preset 'nope'"),
    (["step_profile.py", "mnist-dcgan", "--fold-pairs", "-1"], "--fold-pairs: -1 must be >= 0"),
    (["step_profile.py", "mnist-dcgan", "--pool-pairs", "-2"], "--pool-pairs: -2 must be >= 0"),
    (["step_profile.py", "mnist-dcgan", "--wgrad-domain-pairs", "-3"],
     "--wgrad-domain-pairs: -3 must be >= 0"),
    (["step_profile.py", "mnist-dcgan", "--levers", "train.precision=fp8"], "train.precision"),
    (["step_profile.py", "mnist-dcgan", "--data-root", "/nonexistent"],
     "mnist train split not found"),
    (["throughput.py", "--cases", "mnist-dcgan", "--data-root", "/nonexistent"],
     "mnist train split not found"),
])
def test_bad_arguments_are_one_line(args, message, tmp_path, monkeypatch, capsys):
    # presets.py used to train toy-gaussian first, then raise a traceback at 'nope'. In this
    # process (a subprocess each spent 7-9 s importing torch); any exception but argparse's
    # exit fails the test, as a traceback would.
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # some import the scripts beside them
    script = load_benchmark(args[0])
    monkeypatch.setattr(sys, "argv", [*args, "--json", str(tmp_path / "out.json")])
    with pytest.raises(SystemExit) as exited:
        script.main()
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out.json").exists()


def test_a_script_refuses_bad_arguments_in_one_line_as_a_process(tmp_path):
    result = run_script("throughput.py", "--rounds", "0", "--json", str(tmp_path / "out.json"))
    assert result.returncode == 2
    assert "argument --rounds: 0 must be >= 1" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out.json").exists()


def test_quality_plot_shows_a_toy_runs_own_metrics(tmp_path):
    # Toy runs have no FID: the figure plots what their protocol measured (it used to fail).
    quality = load_benchmark("quality.py")
    rows = [{"minutes": m, "step": 100 * m, "modes/n2500": 20 + m, "high_quality/n2500": 0.5}
            for m in (1, 2)]
    (tmp_path / "toy-grid.json").write_text(json.dumps({"preset": "toy-grid", "rows": rows}))
    figure = quality.plot_folder(tmp_path)
    assert figure == tmp_path / "quality.png" and figure.stat().st_size > 1000


def load_benchmark(name: str):
    """A benchmark script as a module, to run its main() in this process (a subprocess spends
    about 8 s importing torch)."""
    spec = importlib.util.spec_from_file_location(name.removesuffix(".py"), BENCHMARKS / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("args, message", [
    # These trained for minutes first, then failed at the first evaluation (or never ended).
    (["toy-ring", "--minutes", "-1"], "argument --minutes: -1.0 must be > 0"),
    (["toy-ring", "--every", "0"], "argument --every: 0.0 must be > 0"),
    (["toy-ring", "-n", "0"], "argument --n: 0 must be > 0"),
    (["toy-ring", "--metrics", "fid"], "metrics fid need images"),
    (["mnist-dcgan", "--metrics", "nope"], "unknown metric 'nope'"),
    (["faces-dcgan"], "no evaluation protocol for 'olivetti' data, so nothing"),
])
def test_quality_refuses_bad_arguments_before_training(args, message, tmp_path, monkeypatch,
                                                       capsys):
    quality = load_benchmark("quality.py")
    monkeypatch.setattr(sys, "argv", ["quality.py", *args, "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit) as exited:
        quality.main()
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing was trained or written


def test_quality_with_steps_stops_there_and_decays_the_rates_over_them(tmp_path):
    # Without --steps, train.steps was 10**9, so a learning-rate decay never began.
    result = run_script("quality.py", "toy-gaussian", "--minutes", "5", "--every", "5",
                        "--steps", "40", "train.lr_decay_from=0.5", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    rows = json.loads((tmp_path / "toy-gaussian.json").read_text())["rows"]
    assert [row["step"] for row in rows] == [40]
    model = gankit.load(tmp_path / "toy-gaussian")
    assert model.step == 40 and model.config.train.steps == 40
    # The last step (index 39) ran at (40 - 39) / (40 - 20) of each base rate.
    state = torch.load(tmp_path / "toy-gaussian" / "checkpoints" / "step_00000040" / "state.pt",
                       weights_only=True)
    train = model.config.train
    for name, base in (("generator", train.g_lr), ("discriminator", train.d_lr)):
        assert state["optimizers"][name]["param_groups"][0]["lr"] == pytest.approx(base / 20)



def test_quality_stops_at_minutes_when_every_is_longer(tmp_path, monkeypatch):
    # With --every above --minutes the first point came at --every, past the budget.
    monkeypatch.setattr(sys, "argv", ["quality.py", "toy-gaussian", "--minutes", "0.05",
                                      "--every", "1", "--out", str(tmp_path)])
    load_benchmark("quality.py").main()
    rows = json.loads((tmp_path / "toy-gaussian.json").read_text())["rows"]
    assert len(rows) == 1 and 0.05 <= rows[0]["minutes"] < 0.1


def test_precision_trains_both_precisions_and_measures_each(tmp_path):
    from gankit.data.root import resolve_data_root

    if not (resolve_data_root() / "MNIST" / "raw").is_dir():
        pytest.skip("MNIST is not under the data root")
    result = run_script("precision.py", "mnist-dcgan", "--steps", "2", "--seeds", "0",
                        "--jobs", "1", "-n", "100", "--out", str(tmp_path / "runs"),
                        "--json", str(tmp_path / "precision.json"))
    assert result.returncode == 0, result.stderr
    table = json.loads((tmp_path / "precision.json").read_text())
    rows = {row["precision"]: row for row in table["rows"]}
    assert set(rows) == {"fp32", "bf16"}
    for precision, row in rows.items():
        assert row["steps"] == 2 and row["fid"] > 0 and 0 <= row["recall"] <= 1
        assert row["metric_keys"][0].endswith("/mnist-cnn/n100")
        # Each run computed in the precision its row names.
        report = (Path(row["run"]) / "report.md").read_text()
        assert f"| precision | {precision} |" in report


def test_strided_layers_times_both_ways_of_a_layer():
    # One small layer, one repeat: both ways give three positive timings under the layer's name.
    layers = load_benchmark("strided_layers.py")
    row = layers.time_layer(True, 16, 8, 4, batch=2, dtype=torch.float32, repeats=1)
    assert row["layer"] == "ConvT(16 -> 8) from 4x4"
    assert len(row["torch_ms"]) == len(row["product_ms"]) == 3
    assert all(v > 0 for v in row["torch_ms"] + row["product_ms"])


def test_padding_taps_counts_the_taps_inside_the_map(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # it imports throughput.py beside it
    taps = load_benchmark("padding_taps.py")
    # Onto 4x4 from 8x8: per axis the first output's first tap and the last one's last fall on
    # the padding, 14 of 16 inside; from 14x14 26 of 28, from 28x28 54 of 56.
    assert taps.inside_share(8) == pytest.approx((14 / 16) ** 2)
    assert taps.inside_share(14) == pytest.approx((26 / 28) ** 2)
    assert taps.inside_share(28) == pytest.approx((54 / 56) ** 2)
    # One Conv2d(2 -> 3) onto 4x4 and a Linear: only the conv's FLOPs shrink.
    net = nn.Sequential(nn.Conv2d(2, 3, 4, 2, 1), nn.Flatten(), nn.Linear(48, 1))
    shares = {}
    handles = taps.layer_shares(net, "Sequential", shares)
    x = torch.randn(5, 2, 8, 8)
    net(x)
    for handle in handles:
        handle.remove()
    assert shares == {"Sequential.0": pytest.approx((14 / 16) ** 2)}
    flops = taps.count_flops(lambda: net(x), shares)
    conv, linear = 2 * 5 * 16 * 3 * 2 * 16, 2 * 5 * 48
    assert flops["counted_gflop"] == round((conv + linear) / 1e9, 2)
    shares["Sequential.0"] = 0.5  # big enough numbers to see the share in rounded GFLOP
    big = torch.randn(4000, 2, 8, 8)
    flops = taps.count_flops(lambda: net(big), shares)
    conv, linear = 2 * 4000 * 16 * 3 * 2 * 16, 2 * 4000 * 48
    assert flops == {"counted_gflop": round((conv + linear) / 1e9, 2),
                     "inside_gflop": round((conv / 2 + linear) / 1e9, 2)}


def test_padding_taps_ceilings_from_a_throughput_run(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    taps = load_benchmark("padding_taps.py")
    run = {"matmul_peak_gflop_s": {"fp32": 200.0, "bf16": 400.0}, "rows": [
        {"case": "dcgan-64", "precision": "bf16", "batch": 64, "speedup": 2.0,
         "plain_img_s": 64.0, "gankit_img_s": 128.0},  # 1 s and 0.5 s a step
        {"case": "fashion-resnet", "precision": "bf16", "batch": 64, "speedup": 2.2,
         "plain_img_s": 600.0, "gankit_img_s": 1320.0}]}
    flops = {"dcgan-64": {"gankit": {"counted_gflop": 200.0, "inside_gflop": 160.0}}}
    (row,) = taps.ceilings(run, flops)
    # At 400 GFLOP/s: 0.5 s counted, 0.4 s inside, against the plain step's 1 s. 2.5x needs
    # 0.4 s: 160 / 0.4 = 400 GFLOP/s inside, all of the peak; it ran at 160 / 0.5 = 320.
    assert row == {"case": "dcgan-64", "speedup": 2.0, "bf16_peak": 400.0,
                   "ceiling_counted": 2.0, "ceiling_inside": 2.5, "share_needed_inside": 1.0,
                   "share_measured_inside": 0.8}


def test_padding_taps_times_both_ways_of_a_layer(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    taps = load_benchmark("padding_taps.py")
    for transposed, name in ((True, "ConvT(4 -> 2) from 4x4"), (False, "Conv(4 -> 2) onto 2x2")):
        row = taps.time_layer(transposed, 4, 2, 4, batch=2, dtype=torch.float32, pairs=1)
        assert row["layer"] == name and row["padding_ms"] > 0 and row["every_tap_ms"] > 0
        assert row["inside_share"] == round(taps.inside_share(8 if transposed else 4), 3)


def test_step_profile_switches_the_one_channel_fold_and_profiles_a_step(monkeypatch):
    from gankit.nets import strided
    from gankit.nets.strided import StridedConvTranspose2d

    monkeypatch.syspath_prepend(str(BENCHMARKS))  # it imports throughput.py beside it
    step_profile = load_benchmark("step_profile.py")
    monkeypatch.setattr(strided, "plan_for", strided.plan_for)  # put back after the test
    folds = []
    fold = strided.conv_transpose_fold
    monkeypatch.setattr(strided, "conv_transpose_fold", lambda *a: folds.append(1) or fold(*a))
    switch = step_profile.fold_switch()
    layer, x = StridedConvTranspose2d(8, 1), torch.randn(2, 8, 7, 7)  # a one-channel layer
    switch(False)
    layer(x)
    assert folds == []  # off: torch's layer
    switch(True)
    layer(x)
    assert folds == [1]
    times = step_profile.paired_ms(lambda: layer(x), switch, pairs=3)
    assert len(times[True]) == len(times[False]) == 3
    assert len(folds) == 1 + 1 + 3 * 2  # warm-up and two steps of each pair with it on
    rows, _ = step_profile.top_operations(lambda: layer(x), steps=2, rows=4)
    assert len(rows) == 4 and any(row["op"] == "aten::mm" for row in rows)
    assert all(row["self_ms"] >= 0 and row["calls"] > 0 for row in rows)


def test_step_profile_switches_the_avgpool_in_the_kernel(monkeypatch):
    from types import SimpleNamespace

    from gankit.nets.resnet import PooledConv2d, ResNetDiscriminator

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    step_profile = load_benchmark("step_profile.py")
    trainer = SimpleNamespace(objective=nn.ModuleList([ResNetDiscriminator((1, 32, 32), 4)]))
    pooled = [m for m in trainer.objective.modules() if isinstance(m, PooledConv2d)]
    switch = step_profile.pool_switch(trainer)
    switch(False)
    assert len(pooled) == 2 and not any(m.pool_in_kernel for m in pooled)
    switch(True)
    assert all(m.pool_in_kernel for m in pooled)


def test_step_profile_switches_the_products_domain_and_dtypes(monkeypatch):
    from types import SimpleNamespace

    from gankit.nets import strided

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    step_profile = load_benchmark("step_profile.py")
    monkeypatch.setattr(strided, "CPU_HAS_AMX", False)  # the weight gradient's own domain
    for name in ("MIN_CHANNEL_PRODUCT_WEIGHT_GRADIENT", "PRODUCT_DTYPES"):
        monkeypatch.setattr(strided, name, getattr(strided, name))  # put back after the test
    switches = step_profile.pairings(SimpleNamespace(objective=nn.ModuleList(), optimizers={}),
                                     fold=None, bias=None)
    # D's Conv(32 -> 64) onto 7x7 (2,048 in x out channels): a product from 2,048, not 8,192.
    x = torch.randn(2, 32, 14, 14, dtype=torch.bfloat16)
    plan = lambda: strided.plan_for(x, (7, 7), 64, 32, transposed=False)  # noqa: E731
    switches["wgrad-domain"](False)
    assert plan() is None
    switches["wgrad-domain"](True)
    assert plan() == strided.WEIGHT_GRADIENT_ONLY
    # In fp32 a product only with the switch off.
    x32 = torch.randn(2, 32, 14, 14)
    assert strided.plan_for(x32, (7, 7), 64, 32, transposed=False) is None
    switches["bf16-only"](False)
    assert strided.plan_for(x32, (7, 7), 64, 32, transposed=False) == strided.WEIGHT_GRADIENT_ONLY
    switches["bf16-only"](True)
    assert strided.PRODUCT_DTYPES == frozenset({torch.bfloat16})


def conv_trained_by_fused_adam(switch_for, way: bool):
    """A channels_last conv trained for 3 steps by gankit's fused Adam, with the switch that
    `switch_for(trainer)` makes set to `way`; returns the optimizer and the conv's weight."""
    from types import SimpleNamespace

    from gankit.train import optimizers

    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3).to(memory_format=torch.channels_last)
    optimizer = optimizers.make_optimizer(list(conv.parameters()), "adam", lr=0.1,
                                          momentum=0.0, betas=[0.5, 0.999], fused=True)
    switch_for(SimpleNamespace(optimizers={"d": optimizer}))(way)
    for _ in range(3):
        optimizer.zero_grad()
        x = torch.randn(2, 3, 6, 6).to(memory_format=torch.channels_last)
        conv(x).square().sum().backward()
        optimizer.step()
    return optimizer, conv.weight.detach().clone()


def test_step_profile_switches_fused_adam_and_keeps_its_updates(monkeypatch):
    from gankit.train import optimizers

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    step_profile = load_benchmark("step_profile.py")
    flat_views = []
    flat_view = optimizers._flat_view
    monkeypatch.setattr(optimizers, "_flat_view", lambda t: flat_views.append(1) or flat_view(t))
    weights = {}
    for way in (True, False):
        flat_views.clear()
        optimizer, weights[way] = conv_trained_by_fused_adam(
            lambda trainer: step_profile.adam_switch(trainer, torch.optim.Adam), way)
        # On: the weight, its gradient and both moments as flat views at each step; off: none.
        assert len(flat_views) == (3 * 4 if way else 0)
        assert type(optimizer) is (optimizers.FusedAdam if way else torch.optim.Adam)
    assert torch.equal(weights[True], weights[False])  # the same updates, bit for bit


def test_step_profile_switches_fused_adams_direct_step_and_keeps_its_updates(monkeypatch):
    from gankit.train import optimizers

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    step_profile = load_benchmark("step_profile.py")
    groupings = []
    init_group = torch.optim.Adam._init_group
    monkeypatch.setattr(torch.optim.Adam, "_init_group",
                        lambda *args: groupings.append(1) or init_group(*args))
    weights = {}
    for way in (True, False):
        groupings.clear()
        optimizer, weights[way] = conv_trained_by_fused_adam(
            lambda trainer: step_profile.adam_switch(trainer, step_profile.FusedAdamThroughTorch),
            way)
        # On: torch's step only for the first (the lazy state); off: at every step.
        assert len(groupings) == (1 if way else 3)
        assert isinstance(optimizer, optimizers.FusedAdam)
    assert torch.equal(weights[True], weights[False])  # the same updates, bit for bit


def test_step_profile_switches_where_the_bias_is_added(monkeypatch):
    from gankit.nets import strided
    from gankit.nets.strided import StridedConv2d

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    step_profile = load_benchmark("step_profile.py")
    monkeypatch.setattr(strided, "_conv", strided._conv)  # put back after the test
    kernel_biases = []
    conv2d = F.conv2d
    monkeypatch.setattr(F, "conv2d", lambda x, w, b=None, *a, **k:
                        kernel_biases.append(b is not None) or conv2d(x, w, b, *a, **k))
    switch = step_profile.bias_switch()
    layer = StridedConv2d(1, 4)  # D's first conv on greyscale images: torch's forward kernel
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    layer = layer.double()
    outputs = {}
    for on in (True, False):
        switch(on)
        kernel_biases.clear()
        outputs[on] = layer(x)
        assert kernel_biases == [on]  # the bias goes into the kernel only when on
    assert torch.allclose(outputs[True], outputs[False])
    assert torch.allclose(outputs[True], conv2d(x, layer.weight, layer.bias, 2, 1))


def test_step_profile_counts_a_steps_page_faults_with_and_without_the_profiler(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    step_profile = load_benchmark("step_profile.py")

    def fresh():  # maps 16 MiB of fresh pages and touches them all, whatever malloc keeps
        with mmap.mmap(-1, 16 << 20) as pages:
            pages.write(b"\1" * (16 << 20))

    # 4,096 pages of 4 KiB (8 if huge pages are always on), without and with the profiler.
    for costs in (step_profile.step_costs(fresh, steps=3),
                  step_profile.top_operations(fresh, steps=3, rows=1)[1]):
        assert costs["faults_per_step"] >= 8
        assert costs["median_ms"] > 0
    quiet = step_profile.step_costs(lambda: None, steps=3)
    assert quiet["faults_per_step"] < 8


def test_the_plain_step_computes_the_reference_layers():
    from gankit.nets.dcgan import DCGANGenerator
    from gankit.nets.resnet import PooledConv2d, ResNetDiscriminator
    from gankit.nets.strided import StridedConvTranspose2d

    throughput = load_benchmark("throughput.py")
    discriminator = throughput.as_reference(ResNetDiscriminator((1, 32, 32), width=4))
    pooled = [m for m in discriminator.modules() if isinstance(m, PooledConv2d)]
    assert len(pooled) == 2 and not any(m.pool_in_kernel for m in pooled)  # conv, then avgpool
    generator = throughput.as_reference(DCGANGenerator(latent_dim=8, image_shape=(1, 28, 28),
                                                       width=8))
    assert not any(isinstance(m, StridedConvTranspose2d) for m in generator.modules())
    assert all(type(m) is nn.ConvTranspose2d for m in generator.modules()
               if isinstance(m, nn.ConvTranspose2d))


@pytest.mark.skipif(not (gankit.data.resolve_data_root() / "MNIST" / "raw").is_dir(),
                    reason="MNIST not found under the data root")
def test_throughput_rates_use_each_steps_own_flops(monkeypatch):
    # gankit's GFLOP/s and peak shares were its time over the plain step's FLOPs, which count
    # the D weight gradients gankit's G update does not compute.
    throughput = load_benchmark("throughput.py")
    peaks = {"fp32": 100.0, "bf16": 200.0}
    levers = [*throughput.DEFAULT_LEVERS, "train.precision=fp32"]  # the same on every CPU
    row = throughput.measure("mnist-dcgan", levers, None, 8, 1, 2, 1, peaks)
    assert row["case"] == "mnist-dcgan" and row["precision"] == "fp32"
    assert 0 < row["gankit_gflop_per_step"] < row["gflop_per_step"]
    ours_s = row["batch"] / row["gankit_img_s"]
    assert row["fp32_peak_share"] == pytest.approx(
        row["gankit_gflop_per_step"] / ours_s / peaks["fp32"], rel=0.02)
    # An fp32 step has no share of the bf16 peak (on a CPU without bf16 units it was 67x it).
    assert row["bf16_peak_share"] is None
    trainer, _ = throughput.build_case("mnist-dcgan", [], None, 8, 1)
    plain = throughput.PlainStep(trainer)  # the reference's Adam takes each player's own rate
    assert plain.optD.param_groups[0]["lr"] == trainer.config.train.d_lr
    assert plain.optG.param_groups[0]["lr"] == trainer.config.train.g_lr
