"""Typed run configuration: dataclasses <- preset YAML <- dotted command-line overrides.

A run is fully described by one `RunConfig`. Presets are YAML files shipped in
`gankit/presets/`; a user may also pass a YAML path. Overrides such as `train.d_steps=2` are
parsed with the type of the field they name, so a typo or a wrong type fails with one clear line.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from gankit.augment import parse_policy
from gankit.errors import GankitError

DEFAULT_PRESET = "digits-mlp"


@dataclass
class DataConfig:
    """Where the real samples come from."""

    # gaussian-1d | mixture-1d | ring | grid | digits | mnist | fashion-mnist | stacked-mnist | usps
    # | olivetti | folder (your own images: data.path) | shifted-mnist (pairs: an MNIST digit and
    # the same digit moved 6 px left or right, a coin flip each; the paired objectives' task)
    name: str = "digits"
    split: str = "train"
    # data.name=folder: the folder of images (class subfolders give labels), as given or under
    # the data root; every image cropped and resized to size x size (0: as they are, all equal
    # in size); channels 1 or 3 (0: grey when every image is grey).
    path: str = ""
    size: int = 0
    channels: int = 0
    # Pixels of background (uint8 0) added on each side of every image when the dataset is
    # built, e.g. 2 to take 28-px Fashion-MNIST to the 32 px of model.arch=resnet. Metrics crop
    # samples back to the data's own size, which the feature extractors take.
    pad: int = 0
    # model.objective=semi-supervised: training images per class that keep their label (the
    # rest are used unlabelled), chosen with the run seed.
    labelled_per_class: int = 10


@dataclass
class ModelConfig:
    """The players. Changing any of these makes a checkpoint incompatible."""

    # The game (gankit.objectives): gan | projection (conditional, projection D) | acgan
    # | vae (the VAE baseline: the generator is its decoder; no discriminator)
    # | semi-supervised (D a K-class classifier, G by feature matching; Salimans et al. 2016)
    # | paired-mse | paired-gan (image to image on paired data: G(input, noise) trained by MSE
    # regression, or against a D that judges (input, output) pairs as in pix2pix)
    objective: str = "gan"
    num_classes: int = 10  # conditional objectives: how many labels
    # mlp | dcgan | resnet (SNGAN, 32 px only; D always spectrally normed)
    # | gaussian (G(z) = mu + sigma z, one Gaussian per coordinate; an MLP D)
    # | paired (the paired objectives' encoder-decoder G, fed the input and latent_dim noise,
    # and a D of (input, output) pairs)
    arch: str = "mlp"
    # dcgan, paired: channels of the widest-resolution conv layer (ndf, and ngf unless g_width
    # is set);
    # resnet: channels of every residual block (SNGAN's ch)
    width: int = 64
    d_spectral_norm: bool = False  # dcgan: spectral norm on D's convs in place of batch norm
    # dcgan, paired: a fully connected hidden layer of this many units before D's logit
    d_fc_width: int = 0
    g_width: int = 0  # dcgan, paired: G's width where it differs from D's (0: model.width for both)
    # gaussian: where G starts, [mu, sigma] (sigma > 0)
    g_start: list[float] = field(default_factory=lambda: [0.0, 1.0])
    latent_dim: int = 100
    latent: str = "normal"  # normal | uniform
    latent_range: float = 1.0  # uniform noise is U[-latent_range, latent_range]
    g_hidden: list[int] = field(default_factory=lambda: [256, 512])
    d_hidden: list[int] = field(default_factory=lambda: [512, 256])
    g_activation: str = "leaky_relu"  # relu | leaky_relu | tanh | softplus
    d_activation: str = "leaky_relu"
    g_output: str = "tanh"  # tanh (images in [-1, 1]) | identity (toy data)
    g_batchnorm: bool = False  # mlp, paired: batch norm in G's hidden layers
    d_dropout: float = 0.0


@dataclass
class LossConfig:
    """The game. Changing any of these makes a checkpoint incompatible."""

    name: str = "standard"  # standard | least-squares | hinge | wasserstein
    generator: str = "non-saturating"  # minimax | non-saturating | maximum-likelihood (standard)
    gp_weight: float = 0.0  # WGAN-GP weight (lambda)
    r1_weight: float = 0.0  # R1 weight (gamma); the penalty added is gamma/2 * E|grad D(x)|^2
    # Lazy R1 (Karras et al. 2020, StyleGAN2): the penalty on every Nth iteration only, weighted
    # N times, so its mean pull is the same at 1/N of its cost (a double backward through D).
    r1_every: int = 1
    # PacGAN (Lin et al. 2018): D judges this many samples at once, concatenated along channels,
    # which penalises mode collapse; 1 is the ordinary one-sample D. Unconditional GANs only.
    pack: int = 1
    # DiffAugment ops on every image D sees, comma-separated: color, translation, cutout.
    augment: str = ""
    # model.objective=paired-gan: pix2pix's L1 term |G(x, z) - y| in G's loss (0: a purely
    # adversarial game), and MSGAN's mode-seeking term (Mao et al. 2019), which pays G for
    # outputs that differ when its noise does.
    reconstruction_weight: float = 0.0
    mode_seeking_weight: float = 0.0


@dataclass
class TrainConfig:
    """Algorithm 1 and its optimizers."""

    steps: int = 5000  # generator steps (training iterations of Algorithm 1)
    batch_size: int = 64
    d_steps: int = 1  # k: discriminator steps per generator step
    optimizer: str = "adam"  # adam | sgd
    g_lr: float = 2e-4
    d_lr: float = 2e-4
    momentum: float = 0.9  # SGD only
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])  # Adam only
    ema: float = 0.0  # decay of the moving average of G's weights used for samples; 0 = off
    device: str = "auto"  # auto | cpu | cuda
    # bf16 runs the phases under autocast (weights and optimizer stay fp32): the largest single
    # speed-up for conv GANs on CPUs with bf16 units (DESIGN.md's measurements). auto is bf16
    # where the device computes it natively (AVX-512 BF16 or AMX on a CPU; a CUDA GPU that
    # supports it) and fp32 elsewhere, where emulated bf16 runs many times slower than fp32.
    precision: str = "fp32"  # fp32 | bf16 | fp16 (CUDA only, with a grad scaler) | auto
    threads: int = 0  # torch intra-op threads; 0 leaves torch's default
    # Speed levers that leave the maths unchanged: image batches and conv weights in NHWC
    # (oneDNN's native layout on CPUs), one fused kernel per optimizer step, and torch.compile
    # of both players (a one-off compile of a minute or so; nets with spectral norm, and D under R1
    # or a gradient penalty, stay eager). Compiled dropout draws its masks from another random
    # stream than eager's, so with model.d_dropout a compiled run is another draw, not the same.
    channels_last: bool = False
    # With k = 1, reuse the D step's G(z) (and z) for the G step, as pytorch/examples does:
    # one generator forward per iteration instead of two. Off: fresh noise, as in Algorithm 1.
    share_fake: bool = False
    # D's step judges the real and the fake batch in one forward pass of 2N: fewer, larger
    # kernels, and spectral norm's power iteration once per D step instead of once per batch.
    # DCGAN's D normalises each batch by its own statistics (gankit.nets.batchnorm); a D with
    # other batch norm layers, whose statistics would mix the two batches, keeps its two passes.
    joint_d_batch: bool = False
    fused_optimizer: bool = False
    compile: bool = False
    # Both learning rates stay constant until this fraction of train.steps, then fall linearly
    # to 0 at the last step (the schedule of Salimans et al.'s code); 1 keeps them constant.
    lr_decay_from: float = 1.0


@dataclass
class LogConfig:
    """What the run folder gets and how often."""

    every: int = 50  # steps between metrics.jsonl lines
    sample_every: int = 500  # steps between sample grids / toy frames
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    n_samples: int = 64  # images in a grid, or points in a toy frame are toy_points
    toy_points: int = 2000
    progress: bool = True
    tensorboard: bool = True  # also write TensorBoard events into the run folder
    # Metrics measured during training on the sampling generator (gankit.eval.evaluate);
    # 0 turns them off. Empty metrics / 0 samples use the data's default protocol.
    eval_every: int = 0
    eval_metrics: list[str] = field(default_factory=list)
    eval_n: int = 0


@dataclass
class RunConfig:
    name: str = DEFAULT_PRESET
    description: str = ""
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Sections (and single keys) whose change makes a checkpoint unusable: resume refuses when
# they differ. The optimizer's saved state is SGD's momentum or Adam's moments, not both.
FIXED_ON_RESUME = ("model", "loss", "data", "train.optimizer")

_CHOICES = {
    "data.name": ("gaussian-1d", "mixture-1d", "ring", "grid", "digits", "mnist", "fashion-mnist",
                  "stacked-mnist", "usps", "olivetti", "folder", "shifted-mnist"),
    "data.split": ("train", "test"),
    "model.objective": ("gan", "projection", "acgan", "vae", "semi-supervised", "paired-mse",
                        "paired-gan"),
    "model.arch": ("mlp", "dcgan", "resnet", "gaussian", "paired"),
    "model.latent": ("normal", "uniform"),
    "model.g_activation": ("relu", "leaky_relu", "tanh", "softplus"),
    "model.d_activation": ("relu", "leaky_relu", "tanh", "softplus"),
    "model.g_output": ("tanh", "identity"),
    "loss.name": ("standard", "least-squares", "hinge", "wasserstein"),
    "loss.generator": ("minimax", "non-saturating", "maximum-likelihood"),
    "train.optimizer": ("adam", "sgd"),
    "train.device": ("auto", "cpu", "cuda"),
    "train.precision": ("fp32", "bf16", "fp16", "auto"),
}
# Seeds reach numpy and torch generators, and a run adds small offsets to its seed: numpy's
# legacy generators take seeds below 2**32.
MAX_SEED = 2**32 - 1
MAX_THREADS = 1024
_POSITIVE = (
    "model.latent_dim", "model.latent_range", "model.num_classes", "model.width", "train.steps",
    "train.batch_size", "train.d_steps", "loss.pack", "loss.r1_every", "data.labelled_per_class",
    "log.every", "log.sample_every", "log.checkpoint_every", "log.keep_checkpoints",
    "log.n_samples", "log.toy_points",
)
_NON_NEGATIVE = (
    "loss.gp_weight", "loss.r1_weight", "loss.reconstruction_weight",
    "loss.mode_seeking_weight", "train.g_lr", "train.d_lr", "train.momentum",
    "train.threads", "model.d_dropout", "model.d_fc_width", "model.g_width", "log.eval_every",
    "log.eval_n", "data.pad", "data.size",
)


# The loss keys a game has no use for. The VAE's, the semi-supervised game's and the
# regression's losses are fixed (ELBO; K+1 classes and feature matching; MSE); the pair GAN's D
# judges (input, output) pairs, which the penalties and DiffAugment do not handle.
_FIXED_LOSS = ("name", "generator", "r1_weight", "gp_weight", "augment")
_LOSS_KEYS_UNUSED = {"vae": _FIXED_LOSS, "semi-supervised": _FIXED_LOSS,
                     "paired-mse": _FIXED_LOSS, "paired-gan": ("r1_weight", "gp_weight", "augment")}


def validate(config: RunConfig) -> RunConfig:
    """Check value ranges and choices; raise `GankitError` naming the first bad key."""
    flat = flatten(config.to_dict())
    for key, choices in _CHOICES.items():
        if flat[key] not in choices:
            raise GankitError(f"{key}={flat[key]!r} is not one of {', '.join(choices)}")
    for key in _POSITIVE:
        if not flat[key] > 0:
            raise GankitError(f"{key}={flat[key]!r} must be > 0")
    for key in _NON_NEGATIVE:
        if not flat[key] >= 0:
            raise GankitError(f"{key}={flat[key]!r} must be >= 0")
    if config.name in ("", ".", "..") or any(sep in config.name for sep in ("/", "\\")):
        # It names the folder runs/NAME; a path here would put the run elsewhere.
        raise GankitError(f"name={config.name!r} must be a plain folder name; choose where the "
                          "run goes with --out")
    if not 0 <= config.seed <= MAX_SEED:
        raise GankitError(f"seed={config.seed} must be between 0 and {MAX_SEED}")
    if config.train.threads > MAX_THREADS:
        raise GankitError(f"train.threads={config.train.threads} must be at most {MAX_THREADS}")
    for key in ("model.g_hidden", "model.d_hidden"):
        if not all(width > 0 for width in flat[key]):
            raise GankitError(f"{key}={flat[key]!r}: every layer width must be > 0")
    # Say so rather than build a net without the layer the user asked for.
    for key, archs in (("d_fc_width", ("dcgan", "paired")), ("g_width", ("dcgan", "paired")),
                       ("d_spectral_norm", ("dcgan",))):
        if getattr(config.model, key) and config.model.arch not in archs:
            raise GankitError(f"model.{key} applies to model.arch={' or '.join(archs)} only, "
                              f"not {config.model.arch!r}")
    _check_paired(config)
    if config.loss.name != "standard" and config.loss.generator != LossConfig().generator:
        # Hinge, least squares and Wasserstein each come with their own G loss.
        raise GankitError(f"loss.generator={config.loss.generator} applies to loss.name=standard "
                          f"only; loss.name={config.loss.name} has its own generator loss")
    if config.model.g_start != ModelConfig().g_start:
        if config.model.arch != "gaussian":
            raise GankitError(f"model.g_start applies to model.arch=gaussian only, not "
                              f"{config.model.arch!r}")
        if len(config.model.g_start) != 2 or not config.model.g_start[1] > 0:
            raise GankitError(f"model.g_start={config.model.g_start!r} must be two numbers, "
                              f"mu and sigma > 0")
    if config.model.arch == "gaussian" and config.model.latent != "normal":
        # mu + sigma z is N(mu, sigma^2) only for normal z: with uniform z its samples are
        # uniform, and the density it states (exact divergences, the 1D picture) would be wrong.
        raise GankitError(f"model.arch=gaussian needs model.latent=normal, not "
                          f"{config.model.latent!r}: its G is mu + sigma z with z ~ N(0, 1)")
    folder_keys = {"path": "", "size": 0, "channels": 0}
    for key, default in folder_keys.items():
        if config.data.name != "folder" and getattr(config.data, key) != default:
            raise GankitError(f"data.{key} applies to data.name=folder only, not "
                              f"{config.data.name!r}")
    if config.data.name == "folder":
        if not config.data.path:
            raise GankitError("data.name=folder needs data.path=DIR, the folder of images")
        if config.data.channels not in (0, 1, 3):
            raise GankitError(f"data.channels={config.data.channels!r} is not one of 0, 1, 3")
        if config.data.split != "train":
            raise GankitError("data.split applies to datasets with splits; a folder is one set "
                              "(point data.path at the split's folder)")
    if config.model.d_dropout >= 1:
        raise GankitError(f"model.d_dropout={config.model.d_dropout!r} must be < 1")
    try:
        parse_policy(config.loss.augment)
    except ValueError as error:
        raise GankitError(f"loss.augment={config.loss.augment!r}: {error}") from None
    # Say so rather than train without the loss, penalty or augmentation asked for.
    for key in _LOSS_KEYS_UNUSED.get(config.model.objective, ()):
        if getattr(config.loss, key) != getattr(LossConfig, key):
            raise GankitError(f"loss.{key} does not apply to model.objective="
                              f"{config.model.objective}")
    if config.model.arch == "dcgan" and not config.model.d_spectral_norm:
        # The penalties read each sample's gradient off the gradient of the summed logits,
        # which batch norm mixes across the batch (Gulrajani et al. drop it from the critic).
        for key in ("gp_weight", "r1_weight"):
            if getattr(config.loss, key):
                raise GankitError(f"loss.{key} needs a discriminator without batch norm, and "
                                  "model.arch=dcgan's has it; set model.d_spectral_norm=true, "
                                  "which replaces it")
    if config.loss.pack > 1:
        if config.model.objective != "gan":
            raise GankitError(f"loss.pack={config.loss.pack} needs model.objective=gan, not "
                              f"{config.model.objective!r}")
        if config.train.batch_size % config.loss.pack:
            raise GankitError(f"train.batch_size={config.train.batch_size} must be a multiple "
                              f"of loss.pack={config.loss.pack}")
    if not 0 <= config.train.ema < 1:
        raise GankitError(f"train.ema={config.train.ema!r} must be in [0, 1)")
    if len(config.train.betas) != 2 or not all(0 <= b < 1 for b in config.train.betas):
        raise GankitError(f"train.betas={config.train.betas!r} must be two numbers in [0, 1)")
    if not 0 <= config.train.lr_decay_from <= 1:
        raise GankitError(f"train.lr_decay_from={config.train.lr_decay_from!r} must be in [0, 1]")
    return config


def ignored_settings(config: RunConfig) -> list[str]:
    """One line for each value set away from its default that this run never reads.

    Warned about, not refused: a run started from a preset inherits its values (digits-mlp
    trained as a VAE keeps its D's dropout), and refusing them would refuse the natural way to
    switch games. Each entry was checked to leave the trained weights bit for bit as they were
    (tests/test_config.py, on tiny runs of 8x8 digits, which the paired games see moved 2 px; the
    ResNet's by its builders, which read only width and latent_dim).
    """
    from gankit.data.toy import TOY_DATASETS  # here: the data modules import this one

    model, objective = config.model, config.model.objective
    gans = ("gan", "acgan", "projection")
    mlp_keys = ("model.g_hidden", "model.d_hidden", "model.g_activation", "model.d_activation",
                "model.g_output", "model.g_batchnorm", "model.d_dropout")
    reasons = {}
    if objective == "vae":
        for key in ("train.d_steps", "train.d_lr", "model.d_hidden", "model.d_activation",
                    "model.d_dropout"):
            reasons[key] = "model.objective=vae has no discriminator"
    if objective in gans and model.arch in ("dcgan", "resnet"):
        for key in mlp_keys:
            reasons[key] = f"the MLP's setting; model.arch={model.arch} does not read it"
    if model.arch == "paired":
        for key in mlp_keys:
            if key != "model.g_batchnorm":  # the paired G's decoder has batch norm on demand
                reasons[key] = "the MLP's setting; model.arch=paired does not read it"
    if objective == "paired-mse":
        for key in ("train.d_steps", "train.d_lr", "model.d_fc_width"):
            reasons[key] = "model.objective=paired-mse has no discriminator"
        if model.g_width:
            reasons["model.width"] = ("model.g_width sets G's width and model.objective="
                                      "paired-mse has no discriminator")
    if model.arch == "gaussian" and objective in gans:
        for key in ("model.g_hidden", "model.g_activation", "model.g_output",
                    "model.g_batchnorm"):
            reasons[key] = "the MLP G's setting; model.arch=gaussian's G is mu + sigma z"
        reasons["model.width"] = "model.arch=gaussian's D takes its widths from d_hidden"
    if objective == "semi-supervised":
        # Salimans et al.'s players whatever model.arch says: only the hidden widths, the
        # class count and the noise settings reach them.
        for key in ("model.arch", "model.width", "model.g_width", "model.d_fc_width",
                    "model.d_spectral_norm", "model.g_start", "model.g_activation",
                    "model.d_activation", "model.g_output", "model.g_batchnorm",
                    "model.d_dropout"):
            reasons[key] = ("model.objective=semi-supervised builds its own players from "
                            "g_hidden and d_hidden")
    if model.arch == "mlp" and objective in ("gan", "vae", "acgan", "projection"):
        reasons["model.width"] = "model.arch=mlp takes its widths from g_hidden and d_hidden"
    if objective in ("gan", "vae", *PAIRED_OBJECTIVES):
        reasons["model.num_classes"] = f"model.objective={objective} takes no labels"
    if objective in PAIRED_OBJECTIVES:
        # PairedObjective draws its noise from N(0, I) whatever model.latent says.
        for key in ("model.latent", "model.latent_range"):
            reasons[key] = f"model.objective={objective} feeds G normal noise"
    elif model.latent != "uniform":
        reasons["model.latent_range"] = "it bounds uniform noise (model.latent=uniform)"
    if objective not in gans:
        # Only the plain and conditional GANs' phases (GANObjective) take these levers.
        for key in ("train.share_fake", "train.joint_d_batch"):
            reasons[key] = (f"a lever of the gan, projection and acgan objectives; "
                            f"model.objective={objective} does not read it")
    elif config.train.d_steps > 1:
        # The loop keeps D's fake for G's phase only when there is one D phase to keep it from.
        reasons["train.share_fake"] = (f"train.d_steps={config.train.d_steps} draws a new fake "
                                       "for each D step; G's phase makes its own")
    if config.loss.r1_weight == 0:
        reasons["loss.r1_every"] = "loss.r1_weight is 0"
    if config.data.name in TOY_DATASETS:
        reasons["data.split"] = f"{config.data.name} points have no splits"
    if objective != "semi-supervised":
        reasons["data.labelled_per_class"] = "model.objective=semi-supervised only"
    if config.train.optimizer == "adam":
        reasons["train.momentum"] = "SGD's setting; Adam's are train.betas"
    else:
        reasons["train.betas"] = "Adam's setting; SGD's is train.momentum"
    defaults, values = flatten(RunConfig().to_dict()), flatten(config.to_dict())
    return [f"{key}={values[key]} is ignored: {reason}" for key, reason in reasons.items()
            if values[key] != defaults[key]]


# The objectives that map an input image to an output image, and the data that gives them
# (input, target) pairs.
PAIRED_OBJECTIVES = ("paired-mse", "paired-gan")
PAIRED_DATA = ("shifted-mnist",)


def _check_paired(config: RunConfig) -> None:
    """The paired games go together: their objective, their nets, their data and loss terms."""
    model, loss = config.model, config.loss
    paired = model.objective in PAIRED_OBJECTIVES
    if paired and model.arch != "paired":
        raise GankitError(f"model.objective={model.objective} needs model.arch=paired (a G fed "
                          f"the input image), not {model.arch!r}")
    if model.arch == "paired" and not paired:
        raise GankitError(f"model.arch=paired needs model.objective="
                          f"{' or '.join(PAIRED_OBJECTIVES)}, not {model.objective!r}")
    if paired and config.data.name not in PAIRED_DATA:
        raise GankitError(f"model.objective={model.objective} needs paired data "
                          f"(data.name={' or '.join(PAIRED_DATA)}), not {config.data.name!r}")
    if config.data.name in PAIRED_DATA and not paired:
        raise GankitError(f"data.name={config.data.name} gives (input, target) pairs for "
                          f"model.objective={' or '.join(PAIRED_OBJECTIVES)}, not "
                          f"{model.objective!r}")
    for key in ("reconstruction_weight", "mode_seeking_weight"):
        if getattr(loss, key) and model.objective != "paired-gan":
            raise GankitError(f"loss.{key} applies to model.objective=paired-gan only, not "
                              f"{model.objective!r}")


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'train': {'d_steps': 1}} -> {'train.d_steps': 1}."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def preset_names() -> list[str]:
    """Names of the presets shipped inside the package."""
    folder = resources.files("gankit") / "presets"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def preset_description(name: str) -> str:
    return _read_yaml_text(_preset_text(name), name).get("description", "")


def load_config(preset_or_path: str | Path | None = None, overrides: Any = ()) -> RunConfig:
    """Build a validated `RunConfig`.

    Args:
        preset_or_path: a preset name (see `gankit presets`), a path to a YAML file, or None for
            the default preset.
        overrides: dotted `key=value` strings, or a mapping of dotted keys to values.

    Returns:
        The resolved, validated config.
    """
    source = str(preset_or_path) if preset_or_path is not None else DEFAULT_PRESET
    path = Path(source)
    if source.endswith((".yaml", ".yml")) or path.is_file():
        if not path.is_file():
            raise GankitError(f"config file not found: {path}")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise GankitError(f"{path}: cannot be read as a YAML text file "
                              f"({exc.__class__.__name__})") from None
        tree = _read_yaml_text(text, str(path))
        default_name = path.stem
    else:
        tree = _read_yaml_text(_preset_text(source), source)
        default_name = source
    config = from_dict(tree)
    if "name" not in tree:
        config.name = default_name
    apply_overrides(config, overrides)
    return validate(config)


def from_dict(tree: dict[str, Any]) -> RunConfig:
    """A `RunConfig` from a nested dict (a preset or a run's config.yaml), checking every key."""
    config = RunConfig()
    for dotted, value in flatten(tree).items():
        _set(config, dotted, value, from_text=False)
    return config


def apply_overrides(config: RunConfig, overrides: Any) -> RunConfig:
    """Apply `key=value` strings or a {dotted_key: value} mapping in place."""
    items = overrides.items() if isinstance(overrides, dict) else overrides
    for item in items:
        if isinstance(item, str):
            if "=" not in item:
                raise GankitError(f"override {item!r} is not of the form key=value")
            dotted, text = item.split("=", 1)
            _set(config, dotted.strip(), text.strip(), from_text=True)
        else:
            dotted, value = item
            _set(config, dotted, value, from_text=False)
    return config


def _preset_text(name: str) -> str:
    path = resources.files("gankit") / "presets" / f"{name}.yaml"
    if not path.is_file():
        hint = difflib.get_close_matches(name, preset_names(), n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise GankitError(f"unknown preset {name!r}{extra}; run `gankit presets` to list them")
    return path.read_text()


def _read_yaml_text(text: str, origin: str) -> dict[str, Any]:
    try:
        tree = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise GankitError(f"{origin}: not valid YAML ({exc.__class__.__name__})") from None
    if not isinstance(tree, dict):
        raise GankitError(f"{origin}: expected a mapping of config sections at the top level")
    return tree


def _set(config: RunConfig, dotted: str, value: Any, from_text: bool) -> None:
    parts = dotted.split(".")
    target: Any = config
    for depth, part in enumerate(parts):
        names = [f.name for f in dataclasses.fields(target)]
        if part not in names:
            prefix = ".".join(parts[:depth])
            known = [f"{prefix}.{n}" if prefix else n for n in names]
            hint = difflib.get_close_matches(dotted, known, n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise GankitError(f"unknown config key {dotted!r}{extra}")
        field_type = _field_types(type(target))[part]
        if depth == len(parts) - 1:
            if dataclasses.is_dataclass(field_type):
                raise GankitError(f"config key {dotted!r} is a section; set one of its keys")
            setattr(target, part, _coerce(dotted, value, field_type, from_text))
        else:
            target = getattr(target, part)
            if not dataclasses.is_dataclass(target):
                raise GankitError(f"unknown config key {dotted!r}: {'.'.join(parts[:depth + 1])} "
                                  "is not a section")


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(dotted: str, value: Any, field_type: Any, from_text: bool) -> Any:
    """Convert `value` to `field_type`, or raise one line naming the key and the expected type."""
    origin = typing.get_origin(field_type)
    args = typing.get_args(field_type)
    if origin in (typing.Union, types.UnionType):
        if value is None or (from_text and str(value).lower() in ("none", "null", "")):
            return None
        inner = [a for a in args if a is not type(None)][0]
        return _coerce(dotted, value, inner, from_text)
    if origin is list:
        item_type = args[0]
        if from_text:
            try:
                value = yaml.safe_load(value)
            except yaml.YAMLError:  # "[1," : say what was typed
                raise GankitError(f"{dotted} expects a list of {item_type.__name__}, got "
                                  f"{value!r}") from None
            if isinstance(value, (int, float)):
                value = [value]
            elif isinstance(value, str):  # without brackets: log.eval_metrics=fid,pr
                value = [item.strip() for item in value.split(",")]
        if not isinstance(value, list):
            raise GankitError(f"{dotted} expects a list of {item_type.__name__}, got {value!r}")
        return [_coerce(f"{dotted}[{i}]", v, item_type, from_text) for i, v in enumerate(value)]
    expected = field_type.__name__
    if field_type is bool:
        if isinstance(value, bool):
            return value
        if from_text and str(value).lower() in ("true", "yes", "1", "on"):
            return True
        if from_text and str(value).lower() in ("false", "no", "0", "off"):
            return False
        raise GankitError(f"{dotted} expects a bool, got {value!r}")
    if field_type is int:
        if isinstance(value, bool):
            raise GankitError(f"{dotted} expects an int, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if from_text:
            try:
                return int(str(value).replace("_", ""))
            except ValueError:
                pass
        raise GankitError(f"{dotted} expects an int, got {value!r}")
    if field_type is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        # Also for YAML files: YAML 1.1 reads `1e-3` (no dot) as a string.
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise GankitError(f"{dotted} expects a float, got {value!r}")
    if field_type is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, os.PathLike):  # data.path=Path(...) from Python
            return os.fspath(value)
        raise GankitError(f"{dotted} expects a string, got {value!r}")
    raise GankitError(f"{dotted}: unsupported type {expected}")  # pragma: no cover


def to_yaml(config: RunConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


def diff_keys(saved: dict[str, Any], current: dict[str, Any], sections=FIXED_ON_RESUME
              ) -> list[str]:
    """Dotted keys under `sections` (section names or dotted keys) whose values differ between
    two config dicts.

    A key one side lacks (a config saved before that setting existed) counts as its default.
    """
    def chosen(key: str) -> bool:
        return key in sections or key.split(".")[0] in sections

    defaults = flatten(RunConfig().to_dict())
    old = {k: v for k, v in flatten(saved).items() if chosen(k)}
    new = {k: v for k, v in flatten(current).items() if chosen(k)}
    return sorted(k for k in old.keys() | new.keys()
                  if old.get(k, defaults.get(k)) != new.get(k, defaults.get(k)))
