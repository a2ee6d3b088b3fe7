"""Run configuration: presets, typed dotted overrides, YAML files, validation and diff_keys."""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch
import yaml
from torch import nn

from gankit.config import (
    DEFAULT_PRESET,
    FIXED_ON_RESUME,
    RunConfig,
    diff_keys,
    flatten,
    from_dict,
    ignored_settings,
    load_config,
    preset_description,
    preset_names,
    to_yaml,
    validate,
)
from gankit.data.root import resolve_data_root
from gankit.errors import GankitError
from gankit.objectives import build_objective

EXPECTED_PRESETS = {"toy-gaussian", "toy-ring", "toy-grid", "mnist-mlp", "digits-mlp",
                    "mnist-dcgan", "fashion-dcgan", "mnist-cgan", "fashion-resnet",
                    "stacked-mnist", "faces-dcgan", "mnist-vae", "mnist-semisupervised"}


def error_line(excinfo: pytest.ExceptionInfo) -> str:
    """The GankitError message, checked to be a single line."""
    message = str(excinfo.value)
    assert message, "a GankitError must carry a message"
    assert "\n" not in message, f"message is not one line: {message!r}"
    return message


# ---------------------------------------------------------------- presets


def test_expected_presets_ship_and_default_is_digits():
    names = preset_names()
    assert EXPECTED_PRESETS <= set(names)
    assert names == sorted(names)
    assert DEFAULT_PRESET == "digits-mlp"
    assert DEFAULT_PRESET in names


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_loads_validates_and_is_named_after_itself(name):
    config = load_config(name)
    assert isinstance(config, RunConfig)
    assert config.name == name
    assert validate(config) is config
    assert preset_description(name) == config.description
    assert config.description  # every shipped preset says what it is


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_trains_one_step_on_its_own_data(tmp_path, name):
    from gankit.data import build_dataset
    from gankit.train.loop import Trainer

    config = load_config(name, {"train.batch_size": 4, "log.tensorboard": False,
                                "log.progress": False, "train.threads": 1})
    try:
        data = build_dataset(config.data)
    except GankitError as error:  # a dataset that is not under the data root
        pytest.skip(str(error))
    stats = Trainer(config, tmp_path / name, data).train_step()
    assert stats and all(torch.isfinite(value).all() for value in stats.values())


def test_default_preset_is_loaded_for_none():
    config = load_config(None)
    assert config.name == "digits-mlp"
    assert config.data.name == "digits"  # ships with scikit-learn: no download
    assert config == load_config("digits-mlp")


def test_preset_values_are_read_with_their_types():
    toy = load_config("toy-gaussian")
    assert toy.data.name == "gaussian-1d"
    assert toy.model.latent == "uniform"
    assert toy.model.latent_range == 8.0 and isinstance(toy.model.latent_range, float)
    assert toy.model.d_hidden == [32, 32, 32, 32]
    assert toy.train.optimizer == "sgd"
    assert toy.train.d_lr == pytest.approx(0.05)
    ring = load_config("toy-ring")
    assert ring.data.name == "ring" and ring.model.g_output == "identity"
    grid = load_config("toy-grid")
    assert grid.data.name == "grid"
    mnist = load_config("mnist-mlp")
    assert mnist.data.name == "mnist"
    assert mnist.model.latent_dim == 100
    assert mnist.model.g_hidden == [256, 512, 1024]
    assert mnist.train.betas == [0.5, 0.999]


def test_unknown_preset_suggests_near_miss():
    with pytest.raises(GankitError) as excinfo:
        load_config("toy-gausian")
    message = error_line(excinfo)
    assert "'toy-gausian'" in message
    assert "did you mean 'toy-gaussian'" in message


def test_unknown_preset_without_near_miss_names_it():
    with pytest.raises(GankitError) as excinfo:
        load_config("zzzzqqq")
    message = error_line(excinfo)
    assert "'zzzzqqq'" in message
    assert "did you mean" not in message


# ---------------------------------------------------------------- typed overrides


def test_int_override_is_an_int():
    config = load_config("toy-ring", ["train.d_steps=2"])
    assert config.train.d_steps == 2
    assert type(config.train.d_steps) is int


def test_float_override_is_a_float():
    config = load_config("toy-ring", ["train.g_lr=1e-3"])
    assert config.train.g_lr == 1e-3
    assert type(config.train.g_lr) is float
    assert load_config("toy-ring", ["model.latent_range=3"]).model.latent_range == 3.0
    assert type(load_config("toy-ring", ["model.latent_range=3"]).model.latent_range) is float


def test_list_override_is_a_list_of_ints():
    config = load_config("toy-ring", ["model.g_hidden=[8,16]"])
    assert config.model.g_hidden == [8, 16]
    assert all(type(v) is int for v in config.model.g_hidden)
    assert load_config("toy-ring", ["model.g_hidden=64"]).model.g_hidden == [64]


@pytest.mark.parametrize("text, expected", [("false", False), ("False", False), ("no", False),
                                            ("0", False), ("true", True), ("yes", True)])
def test_bool_override(text, expected):
    assert load_config("toy-ring", [f"log.progress={text}"]).log.progress is expected


def test_string_and_spaces_override():
    config = load_config("toy-ring", [" data.name = grid ", "name=my-run"])
    assert config.data.name == "grid"
    assert config.name == "my-run"


def test_mapping_override():
    config = load_config("toy-ring", {"train.steps": 10, "train.g_lr": 1, "log.progress": False})
    assert config.train.steps == 10
    assert config.train.g_lr == 1.0 and type(config.train.g_lr) is float
    assert config.log.progress is False


def test_later_override_wins_and_others_stay():
    base = load_config("toy-ring")
    config = load_config("toy-ring", ["train.steps=5", "train.steps=7"])
    assert config.train.steps == 7
    assert dataclasses.replace(config.train, steps=base.train.steps) == base.train
    assert config.model == base.model


def test_overrides_do_not_leak_into_the_next_load():
    load_config("toy-ring", ["model.g_hidden=[1]", "train.betas=[0.1,0.2]"])
    fresh = load_config("toy-ring")
    assert fresh.model.g_hidden == [128, 128, 128]
    assert fresh.train.betas == [0.5, 0.999]
    assert RunConfig().model.g_hidden == [256, 512]


# ---------------------------------------------------------------- bad overrides


def test_misspelled_key_suggests_the_right_one():
    with pytest.raises(GankitError) as excinfo:
        load_config("toy-ring", ["train.d_stepz=2"])
    message = error_line(excinfo)
    assert "train.d_stepz" in message
    assert "train.d_steps" in message.split("train.d_stepz", 1)[1]


def test_wrong_type_names_key_and_int():
    with pytest.raises(GankitError) as excinfo:
        load_config("toy-ring", ["train.d_steps=two"])
    message = error_line(excinfo)
    assert "train.d_steps" in message
    assert "int" in message
    assert "two" in message


@pytest.mark.parametrize("override, words", [
    ("train.g_lr=fast", ("train.g_lr", "float", "fast")),
    ("log.progress=maybe", ("log.progress", "bool", "maybe")),
    ("model.g_hidden=[8,x]", ("model.g_hidden[1]", "int")),
    ("model.g_hidden=abc", ("model.g_hidden[0]", "int", "abc")),
    ("model.g_hidden=[1,", ("model.g_hidden", "list of int", "'[1,'")),  # said "got None"
    ("train.d_steps=1.5", ("train.d_steps", "int", "1.5")),
])
def test_other_wrong_types_name_key_and_type(override, words):
    with pytest.raises(GankitError) as excinfo:
        load_config("toy-ring", [override])
    message = error_line(excinfo)
    for word in words:
        assert word in message


def test_section_cannot_be_set():
    with pytest.raises(GankitError) as excinfo:
        load_config("toy-ring", ["train=3"])
    message = error_line(excinfo)
    assert "'train'" in message
    assert "section" in message


def test_key_below_a_value_is_unknown():
    with pytest.raises(GankitError) as excinfo:
        load_config("toy-ring", ["train.d_steps.x=3"])
    message = error_line(excinfo)
    assert "train.d_steps.x" in message


def test_override_without_equals_sign():
    with pytest.raises(GankitError) as excinfo:
        load_config("toy-ring", ["train.d_steps"])
    message = error_line(excinfo)
    assert "'train.d_steps'" in message
    assert "key=value" in message


@pytest.mark.parametrize("override, key", [
    ("train.d_steps=0", "train.d_steps"),
    ("train.steps=-5", "train.steps"),
    ("train.batch_size=0", "train.batch_size"),
    ("log.keep_checkpoints=0", "log.keep_checkpoints"),
])
def test_non_positive_is_out_of_range(override, key):
    with pytest.raises(GankitError) as excinfo:
        load_config("toy-ring", [override])
    message = error_line(excinfo)
    assert key in message
    assert "> 0" in message


@pytest.mark.parametrize("override", ["model.g_hidden=[-3]", "model.d_hidden=[16,0]"])
def test_layer_widths_must_be_positive(override):
    # A negative width was a RuntimeError from torch when the net was built.
    with pytest.raises(GankitError, match=override.split("=")[0] + ".*every layer width"):
        load_config("toy-ring", [override])


@pytest.mark.parametrize("override, key, bound", [
    ("train.g_lr=-1e-3", "train.g_lr", ">= 0"),
    ("loss.gp_weight=-1", "loss.gp_weight", ">= 0"),
    ("model.d_dropout=1.0", "model.d_dropout", "< 1"),
    ("model.d_fc_width=-256", "model.d_fc_width", ">= 0"),
    ("model.g_width=-64", "model.g_width", ">= 0"),
])
def test_other_ranges(override, key, bound):
    with pytest.raises(GankitError) as excinfo:
        load_config("toy-ring", [override])
    message = error_line(excinfo)
    assert key in message
    assert bound in message


@pytest.mark.parametrize("preset, override", [
    ("toy-ring", "model.d_fc_width=256"),          # an MLP
    ("fashion-resnet", "model.d_spectral_norm=true"),
    ("fashion-resnet", "model.g_width=64"),
])
def test_dcgan_only_keys_are_refused_for_other_architectures(preset, override):
    with pytest.raises(GankitError) as excinfo:
        load_config(preset, [override])
    message = error_line(excinfo)
    assert override.split("=")[0] in message and "arch=dcgan" in message
    assert load_config("mnist-dcgan", [override]).model.arch == "dcgan"


PAIRED = ["data.name=shifted-mnist", "model.arch=paired", "model.objective=paired-gan"]


def test_a_paired_game_is_one_config():
    config = load_config("mnist-dcgan", PAIRED + ["loss.mode_seeking_weight=0.1"])
    assert (config.model.objective, config.model.arch, config.data.name) == (
        "paired-gan", "paired", "shifted-mnist")
    assert config.loss.mode_seeking_weight == 0.1


@pytest.mark.parametrize("override, words", [
    ("model.arch=dcgan", "model.objective=paired-gan needs model.arch=paired"),
    ("model.objective=gan", "model.arch=paired needs model.objective=paired-mse or paired-gan"),
    ("data.name=mnist", "needs paired data (data.name=shifted-mnist), not 'mnist'"),
    ("model.d_spectral_norm=true", "model.d_spectral_norm applies to model.arch=dcgan only"),
    ("loss.r1_weight=1", "loss.r1_weight does not apply to model.objective=paired-gan"),
    ("loss.augment=translation", "loss.augment does not apply to model.objective=paired-gan"),
    ("loss.mode_seeking_weight=-1", "loss.mode_seeking_weight=-1.0 must be >= 0"),
])
def test_paired_settings_that_do_not_fit_are_refused(override, words):
    with pytest.raises(GankitError) as excinfo:
        load_config("mnist-dcgan", PAIRED + [override])
    assert words in error_line(excinfo)


def test_paired_data_needs_a_paired_game():
    with pytest.raises(GankitError) as excinfo:
        load_config("mnist-dcgan", ["data.name=shifted-mnist"])
    assert ("data.name=shifted-mnist gives (input, target) pairs for model.objective=paired-mse "
            "or paired-gan, not 'gan'") in error_line(excinfo)


@pytest.mark.parametrize("objective, override", [
    ("gan", "loss.mode_seeking_weight=0.1"),        # an unpaired GAN has one noise per input
    ("paired-mse", "loss.reconstruction_weight=1"),  # regression is all reconstruction
])
def test_the_paired_gan_terms_need_the_paired_gan(objective, override):
    overrides = [override] if objective == "gan" else PAIRED + ["model.objective=paired-mse",
                                                                override]
    with pytest.raises(GankitError) as excinfo:
        load_config("mnist-dcgan", overrides)
    assert (f"{override.split('=')[0]} applies to model.objective=paired-gan only, not "
            f"'{objective}'") in error_line(excinfo)


def test_bad_choice_lists_the_choices():
    with pytest.raises(GankitError) as excinfo:
        load_config("toy-ring", ["loss.generator=bogus"])
    message = error_line(excinfo)
    assert "loss.generator" in message
    assert "bogus" in message
    for choice in ("minimax", "non-saturating", "maximum-likelihood"):
        assert choice in message


@pytest.mark.parametrize("betas", ["[0.5]", "[0.5,0.9,0.99]", "[0.5,1.0]", "[-0.1,0.9]"])
def test_bad_betas(betas):
    with pytest.raises(GankitError) as excinfo:
        load_config("toy-ring", [f"train.betas={betas}"])
    message = error_line(excinfo)
    assert "train.betas" in message


@pytest.mark.parametrize("preset", ["mnist-vae", "mnist-semisupervised"])
@pytest.mark.parametrize("override", ["loss.r1_weight=1", "loss.gp_weight=10",
                                      "loss.augment=translation", "loss.name=hinge",
                                      "loss.generator=minimax"])
def test_gan_switches_are_refused_for_games_with_fixed_losses(preset, override):
    # They were silently ignored: the run trained without what was asked for.
    key = override.split("=")[0]
    with pytest.raises(GankitError, match=f"{key} does not apply to model.objective="):
        load_config(preset, [override])


@pytest.mark.parametrize("preset", ["mnist-dcgan", "mnist-cgan"])
@pytest.mark.parametrize("penalty", ["loss.r1_weight=1", "loss.gp_weight=10"])
def test_gradient_penalties_are_refused_on_a_batch_normed_discriminator(preset, penalty):
    # Each sample's gradient came off the summed logits, which batch norm mixes across the batch.
    key = penalty.split("=")[0]
    with pytest.raises(GankitError, match=f"^{key} needs a discriminator without batch norm"):
        load_config(preset, [penalty])
    config = load_config(preset, [penalty, "model.d_spectral_norm=true"])  # no batch norm then
    discriminator = build_objective(config, (1, 28, 28)).discriminator
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in discriminator.modules())


def test_list_overrides_need_no_brackets():
    # `log.eval_metrics=fid` was refused as "expects a list of str"; only "[fid]" worked.
    assert load_config("toy-ring", ["log.eval_metrics=modes"]).log.eval_metrics == ["modes"]
    config = load_config("toy-ring", ["log.eval_metrics=modes,divergences",
                                      "model.g_hidden=64, 32", "train.betas=0.5,0.9"])
    assert config.log.eval_metrics == ["modes", "divergences"]
    assert config.model.g_hidden == [64, 32] and type(config.model.g_hidden[0]) is int
    assert config.train.betas == [0.5, 0.9]
    with pytest.raises(GankitError, match=r"model.g_hidden\[1\] expects an int, got 'x'"):
        load_config("toy-ring", ["model.g_hidden=64,x"])


@pytest.mark.parametrize("override, message", [
    # A run folder is runs/NAME: "../../x" wrote a run outside runs/, "" made ./runs-2.
    ("name=../../escape", "name='../../escape' must be a plain folder name"),
    ("name=/tmp/elsewhere", "name='/tmp/elsewhere' must be a plain folder name"),
    ("name=", "name='' must be a plain folder name"),
    # These failed inside numpy/torch (an overflow, a MemoryError) after the folder was made.
    ("seed=99999999999999999999", "seed=99999999999999999999 must be between 0 and 4294967295"),
    ("seed=-1", "seed=-1 must be between 0 and 4294967295"),
    ("train.threads=100000", "train.threads=100000 must be at most 1024"),
])
def test_names_seeds_and_threads_out_of_range(override, message):
    with pytest.raises(GankitError, match=f"^{re.escape(message)}"):
        load_config("toy-ring", [override])


def test_a_config_file_that_is_not_text_is_one_line(tmp_path):
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"seed: \xff\xfe\x00")
    with pytest.raises(GankitError, match=f"^{re.escape(str(path))}: cannot be read as a YAML"):
        load_config(str(path))


@pytest.mark.parametrize("loss_name", ["hinge", "least-squares", "wasserstein"])
def test_a_generator_loss_for_a_game_with_its_own_is_refused(loss_name):
    # It was ignored: "hinge + minimax" trained hinge's own G loss, bit for bit.
    with pytest.raises(GankitError, match=f"^loss.generator=minimax applies to loss.name="
                                          f"standard only; loss.name={loss_name} has its own"):
        load_config("toy-ring", [f"loss.name={loss_name}", "loss.generator=minimax"])
    assert load_config("toy-ring", [f"loss.name={loss_name}"]).loss.name == loss_name


def test_good_betas_are_floats():
    betas = load_config("toy-ring", ["train.betas=[0, 0.9]"]).train.betas
    assert betas == [0.0, 0.9]
    assert all(type(b) is float for b in betas)


# ---------------------------------------------------------------- YAML files


def test_yaml_round_trip(tmp_path):
    original = load_config("toy-gaussian", ["train.steps=123", "model.g_hidden=[3,4]",
                                            "train.g_lr=1e-5", "log.progress=false"])
    path = tmp_path / "run.yaml"
    path.write_text(to_yaml(original))
    again = load_config(path)
    assert again == original
    assert again.name == "toy-gaussian"  # the YAML carries its name, which wins over the stem
    assert again.train.g_lr == 1e-5
    assert load_config(str(path)) == original


def test_yaml_without_name_takes_the_file_stem(tmp_path):
    tree = load_config("toy-ring").to_dict()
    del tree["name"]
    path = tmp_path / "my-experiment.yaml"
    path.write_text(yaml.safe_dump(tree))
    config = load_config(path)
    assert config.name == "my-experiment"
    assert dataclasses.replace(config, name="toy-ring") == load_config("toy-ring")


def test_partial_yaml_fills_defaults_and_takes_overrides(tmp_path):
    path = tmp_path / "small.yml"
    path.write_text("seed: 7\ntrain:\n  steps: 12\n")
    config = load_config(path, ["train.d_steps=3"])
    assert config.seed == 7
    assert config.train.steps == 12
    assert config.train.d_steps == 3
    assert config.model == RunConfig().model
    assert config.name == "small"


def test_yaml_scientific_notation_without_dot_is_a_float(tmp_path):
    path = tmp_path / "lr.yaml"
    path.write_text("train:\n  g_lr: 1e-3\n  betas: [0.5, 1e-3]\n")
    config = load_config(path)
    assert config.train.g_lr == 1e-3
    assert config.train.betas == [0.5, 1e-3]


def test_missing_yaml_names_the_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(GankitError) as excinfo:
        load_config(path)
    message = error_line(excinfo)
    assert str(path) in message
    assert "not found" in message


def test_invalid_yaml_names_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("train: [1, 2\n  steps: : :\n")
    with pytest.raises(GankitError) as excinfo:
        load_config(path)
    message = error_line(excinfo)
    assert str(path) in message
    assert "YAML" in message


def test_yaml_that_is_not_a_mapping_names_the_file(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(GankitError) as excinfo:
        load_config(path)
    message = error_line(excinfo)
    assert str(path) in message
    assert "mapping" in message


def test_yaml_with_unknown_key_names_it(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("train:\n  batchsize: 3\n")
    with pytest.raises(GankitError) as excinfo:
        load_config(path)
    message = error_line(excinfo)
    assert "train.batchsize" in message
    assert "train.batch_size" in message


def test_yaml_with_wrong_type_names_key(tmp_path):
    path = tmp_path / "types.yaml"
    path.write_text("train:\n  steps: lots\n")
    with pytest.raises(GankitError) as excinfo:
        load_config(path)
    message = error_line(excinfo)
    assert "train.steps" in message and "int" in message


def test_from_dict_rejects_bool_for_int():
    with pytest.raises(GankitError) as excinfo:
        from_dict({"train": {"steps": True}})
    assert "train.steps" in error_line(excinfo)


# ---------------------------------------------------------------- flatten and diff_keys


def test_flatten():
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": "x"}) == {
        "a.b": 1, "a.c.d": [1, 2], "e": "x"}


def test_diff_keys_reports_exactly_the_model_loss_data_changes():
    saved = load_config("toy-ring").to_dict()
    current = load_config("toy-ring", [
        "model.g_hidden=[64]", "loss.name=hinge", "data.name=grid",
        "train.steps=1", "train.g_lr=0.1", "log.every=3", "seed=9", "name=other",
        "train.optimizer=sgd",
    ]).to_dict()
    assert FIXED_ON_RESUME == ("model", "loss", "data", "train.optimizer")
    assert diff_keys(saved, current) == ["data.name", "loss.name", "model.g_hidden",
                                         "train.optimizer"]


def test_diff_keys_ignores_train_and_log_only_changes():
    saved = load_config("toy-ring").to_dict()
    current = load_config("toy-ring", ["train.steps=1", "train.betas=[0.1,0.2]",
                                       "log.progress=false", "log.every=1"]).to_dict()
    assert diff_keys(saved, current) == []
    assert diff_keys(saved, saved) == []


def test_diff_keys_sees_added_and_removed_keys_and_other_sections():
    saved = {"model": {"a": 1, "b": 2}, "train": {"x": 1}}
    current = {"model": {"a": 1, "c": 3}, "train": {"x": 2}}
    assert diff_keys(saved, current) == ["model.b", "model.c"]
    assert diff_keys(saved, current, sections=("train",)) == ["train.x"]


def test_a_run_saved_before_a_setting_existed_matches_that_settings_default():
    # A checkpoint written before loss.augment existed resumes under the new code ...
    saved = load_config("toy-ring").to_dict()
    del saved["loss"]["augment"]
    assert diff_keys(saved, load_config("toy-ring").to_dict()) == []
    # ... unless the new setting is turned on.
    current = load_config("toy-ring", ["loss.augment=cutout"]).to_dict()
    assert diff_keys(saved, current) == ["loss.augment"]


# ---------------------------------------------------------------- values a run never reads


def test_no_preset_sets_a_value_it_never_reads():
    assert {name: ignored_settings(load_config(name)) for name in preset_names()} == {
        name: [] for name in preset_names()}


@pytest.mark.parametrize("base, key, value", [
    ({"model.objective": "vae"}, "model.d_dropout", 0.5),
    ({"model.objective": "vae"}, "train.d_lr", 0.1),
    ({}, "model.width", 7),
    ({}, "model.num_classes", 3),
    ({}, "model.latent_range", 5.0),
    ({}, "loss.r1_every", 4),
    ({}, "train.momentum", 0.1),
    ({"train.optimizer": "sgd"}, "train.betas", [0.1, 0.2]),
])
def test_each_value_named_ignored_leaves_the_trained_weights_as_they_were(tmp_path, base, key,
                                                                           value):
    from conftest import tiny_config
    from gankit.data import build_dataset
    from gankit.train.loop import Trainer

    settings = {**base, "model.d_dropout": 0.0, "train.steps": 4}
    plain = tiny_config("digits-mlp", **settings)
    changed = tiny_config("digits-mlp", **{**settings, key: value})
    named = set(ignored_settings(changed)) - set(ignored_settings(plain))
    assert [line.split("=")[0] for line in named] == [key]
    weights = []
    for name, config in (("plain", plain), ("changed", changed)):
        trainer = Trainer(config, tmp_path / name, build_dataset(config.data))
        trainer.fit()
        weights.append(trainer.objective.generator.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_no_study_run_sets_a_value_it_never_reads():
    from gankit.studies import mixture, multimodal

    configs = {"mixture-gan": mixture.gan_config(),
               **{objective: multimodal.model_config(objective, objective, 1)
                  for objective in ("paired-mse", "paired-gan")}}
    assert {name: ignored_settings(config) for name, config in configs.items()} == {
        name: [] for name in configs}


# Tiny players of the games outside the MLP/DCGAN/ResNet GANs, all on 8x8 digits (the paired
# games' pairs are those digits moved 2 px; the Gaussian G needs latent_dim = 8 x 8).
PAIRED_GAN = {"data.name": "shifted-mnist", "model.objective": "paired-gan",
              "model.arch": "paired", "model.latent_dim": 4, "model.width": 4,
              "model.d_fc_width": 8, "train.batch_size": 8}
PAIRED_MSE = {**PAIRED_GAN, "model.objective": "paired-mse", "model.d_fc_width": 0}
SEMI_SUPERVISED = {"model.objective": "semi-supervised", "model.d_hidden": [32, 16],
                   "train.batch_size": 20}
GAUSSIAN = {"model.arch": "gaussian", "model.latent_dim": 64}


def _trained_players(config, run_dir) -> dict[str, torch.Tensor]:
    """Every player's weights and buffers after `config`'s run, by player.key."""
    from gankit.data import build_dataset
    from gankit.data.shifted import ShiftedDigits
    from gankit.train.loop import Trainer

    if config.data.name == "shifted-mnist":
        data = ShiftedDigits(build_dataset(dataclasses.replace(config.data, name="digits")),
                             shift=2)
    else:
        data = build_dataset(config.data)
    trainer = Trainer(config, run_dir, data)
    trainer.fit()
    return {f"{player}.{key}": value for player, net in trainer.objective.players().items()
            for key, value in net.state_dict().items()}


def _case(base: dict, key: str, value) -> pytest.param:
    """A parameter set named by its game, e.g. "paired-gan/paired:model.g_hidden"."""
    game = f"{base.get('model.objective', 'gan')}/{base.get('model.arch', 'mlp')}"
    return pytest.param(base, key, value, id=f"{game}:{key}")


@pytest.mark.parametrize("base, key, value", [_case(*case) for case in [
    *((PAIRED_GAN, key, value) for key, value in (
        ("model.g_hidden", [40]), ("model.d_hidden", [40]), ("model.g_activation", "tanh"),
        ("model.d_activation", "tanh"), ("model.g_output", "identity"),
        ("model.d_dropout", 0.5), ("model.num_classes", 3), ("model.latent", "uniform"),
        ("train.share_fake", True), ("train.joint_d_batch", True))),
    ({**PAIRED_GAN, "model.latent": "uniform"}, "model.latent_range", 3.0),
    (PAIRED_MSE, "model.d_fc_width", 16),
    (PAIRED_MSE, "train.d_steps", 2),
    (PAIRED_MSE, "train.d_lr", 0.1),
    ({**PAIRED_MSE, "model.g_width": 4}, "model.width", 8),
    (PAIRED_MSE, "model.latent_range", 3.0),
    *((SEMI_SUPERVISED, key, value) for key, value in (
        ("model.arch", "resnet"), ("model.width", 8), ("model.g_activation", "tanh"),
        ("model.d_activation", "tanh"), ("model.g_output", "identity"),
        ("model.g_batchnorm", True), ("model.d_dropout", 0.5), ("train.share_fake", True),
        ("train.joint_d_batch", True))),
    ({**SEMI_SUPERVISED, "model.arch": "dcgan"}, "model.g_width", 8),
    ({**SEMI_SUPERVISED, "model.arch": "dcgan"}, "model.d_fc_width", 8),
    ({**SEMI_SUPERVISED, "model.arch": "dcgan"}, "model.d_spectral_norm", True),
    ({**SEMI_SUPERVISED, "model.arch": "gaussian"}, "model.g_start", [1.0, 2.0]),
    *((GAUSSIAN, key, value) for key, value in (
        ("model.g_hidden", [40]), ("model.g_activation", "relu"),
        ("model.g_output", "identity"), ("model.g_batchnorm", True), ("model.width", 8))),
    # A conditional G reads [z, one_hot(y)]: 54 + 10 inputs for the 64 pixels.
    ({**GAUSSIAN, "model.objective": "projection", "model.latent_dim": 54}, "model.g_hidden",
     [40]),
    ({"model.objective": "vae"}, "train.share_fake", True),
    ({"model.objective": "vae"}, "train.joint_d_batch", True),
    ({"train.d_steps": 2}, "train.share_fake", True),
]])
def test_each_value_another_game_is_warned_to_ignore_leaves_its_players_as_they_were(
        tmp_path, base, key, value):
    from conftest import tiny_config

    settings = {"model.d_dropout": 0.0, "train.steps": 3, **base}
    plain = tiny_config("digits-mlp", **settings)
    changed = tiny_config("digits-mlp", **{**settings, key: value})
    named = set(ignored_settings(changed)) - set(ignored_settings(plain))
    assert [line.split("=")[0] for line in named] == [key]
    before = _trained_players(plain, tmp_path / "plain")
    after = _trained_players(changed, tmp_path / "changed")
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.skipif(not (resolve_data_root() / "MNIST" / "raw").is_dir(),
                    reason="MNIST not found under the data root")
def test_a_conditional_dcgan_ignores_the_mlp_widths_it_is_warned_about(tmp_path):
    from conftest import tiny_config
    from gankit.data import build_dataset
    from gankit.train.loop import Trainer

    settings = {"model.width": 4, "model.g_width": 4, "model.d_fc_width": 8, "train.steps": 2,
                "train.batch_size": 8, "train.precision": "fp32"}
    weights = []
    for name, hidden in (("plain", [16]), ("changed", [40, 40])):
        config = tiny_config("mnist-cgan", **settings, **{"model.g_hidden": hidden,
                                                          "model.d_hidden": hidden})
        assert any(line.startswith("model.g_hidden=") for line in ignored_settings(config))
        trainer = Trainer(config, tmp_path / name, build_dataset(config.data))
        trainer.fit()
        players = trainer.objective.players()
        weights.append({f"{player}.{key}": value for player, net in players.items()
                        for key, value in net.state_dict().items()})
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_the_command_line_names_a_value_the_run_ignores_in_one_line(tmp_path, capsys):
    from gankit.cli import main

    assert main(["train", "digits-mlp", "model.objective=vae", "train.steps=2",
                 "train.g_lr=0.001", "log.progress=false", "--out", str(tmp_path / "vae")]) == 0
    assert ("gankit: warning: model.d_dropout=0.3 is ignored: model.objective=vae has no "
            "discriminator\n") in capsys.readouterr().err
