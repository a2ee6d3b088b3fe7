"""Semi-supervised learning with a GAN (Salimans et al. 2016, "Improved Techniques for Training
GANs", section 5).

The discriminator is a K-class classifier with logits l_1..l_K; an implicit (K+1)-th class,
"generated", has its logit fixed at 0, so that

    D(x) = Z(x) / (Z(x) + 1),  Z(x) = sum_k exp(l_k(x)),  i.e.  D(x) = sigmoid(logsumexp_k l_k).

D minimises the cross-entropy of a few labelled images plus the GAN loss on unlabelled and
generated ones, and G is trained by feature matching on an intermediate layer of D. The labels
of most of the training set are never read: D learns the classes from 10 labels per class and
the shape of the data from the rest.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from gankit.config import DataConfig
from gankit.data.images import to_float
from gankit.errors import GankitError
from gankit.nets import eval_mode
from gankit.objectives.base import Objective, PhaseResult, check_label_range

EVAL_BATCH = 1000  # test images per forward pass when measuring the test error


def unsupervised_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The GAN loss of a K-logit discriminator: 1/2 E[-log D(x)] + 1/2 E[-log(1 - D(G(z)))].

    With D = sigmoid(lse), lse = logsumexp_k l_k: -log D = softplus(-lse) and
    -log(1 - D) = softplus(lse), finite for any logits. The 1/2 factors are gankit's (and the
    paper code's) scaling of the standard discriminator loss.

    Args:
        real_logits: K logits of unlabelled real images, N x K.
        fake_logits: K logits of generated images, M x K.

    Returns:
        Scalar loss.
    """
    real_lse = torch.logsumexp(real_logits, dim=1)
    fake_lse = torch.logsumexp(fake_logits, dim=1)
    return 0.5 * F.softplus(-real_lse).mean() + 0.5 * F.softplus(fake_lse).mean()


def real_probability(logits: torch.Tensor) -> torch.Tensor:
    """D(x) = Z / (Z + 1) from K logits, for logs only (the losses never take probabilities).

    Args:
        logits: N x K.

    Returns:
        N probabilities that each input is real.
    """
    return torch.sigmoid(torch.logsumexp(logits, dim=1))


def feature_matching_loss(real_features: torch.Tensor,
                          fake_features: torch.Tensor) -> torch.Tensor:
    """||E f(x) - E f(G(z))||^2 / d: the squared distance of the batch means of D's features.

    Divided by the feature count d (a mean over features, as in the paper's code), so the scale
    does not depend on the layer's width.

    Args:
        real_features: N x d features of real images (no gradient needed).
        fake_features: M x d features of generated images.

    Returns:
        Scalar loss, 0 when the two batch means agree.
    """
    return (real_features.mean(0) - fake_features.mean(0)).square().mean()


def labelled_indices(labels: torch.Tensor, per_class: int, num_classes: int,
                     seed: int) -> torch.Tensor:
    """Which training images keep their label: `per_class` of each class, chosen at random.

    Args:
        labels: int64 labels of the whole training set.
        per_class: labelled images per class (10 in the paper).
        num_classes: K; every class 0..K-1 gets `per_class` images.
        seed: seed of the choice; the same seed gives the same subset.

    Returns:
        int64 indices into the training set, class 0's first.

    Raises:
        GankitError: a class has fewer than `per_class` images.
    """
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    chosen = []
    for label in range(num_classes):
        of_class = order[labels[order] == label]
        if len(of_class) < per_class:
            raise GankitError(f"data.labelled_per_class={per_class} but class {label} has only "
                              f"{len(of_class)} training images")
        chosen.append(of_class[:per_class])
    return torch.cat(chosen)


@torch.no_grad()
def classification_error(classifier: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                         batch_size: int = EVAL_BATCH) -> float:
    """The share of `images` whose arg-max logit is not their label, with noise layers off.

    Args:
        classifier: images in [-1, 1] -> N x K logits.
        images: uint8 images N x C x H x W (converted batch by batch).
        labels: int64 labels (N,).
        batch_size: images per forward pass.

    Returns:
        The error rate in [0, 1].
    """
    device = next(classifier.parameters()).device
    wrong = 0
    with eval_mode(classifier):
        for start in range(0, len(images), batch_size):
            batch = to_float(images[start:start + batch_size]).to(device)
            predicted = classifier(batch).argmax(1).cpu()
            wrong += int((predicted != labels[start:start + batch_size]).sum())
    return wrong / len(images)


class SemiSupervisedObjective(Objective):
    """D is a K-class classifier trained on a few labels and, as a GAN's D, on all the images.

    Each D step sees three batches of the same size: labelled real images (drawn from the
    labelled subset), unlabelled real images (drawn from the whole training set) and G(z).
    Its loss is  CE(labelled) + unlabelled_weight * unsupervised_loss(unlabelled, generated).
    G's loss is feature matching on D's last hidden layer, against another unlabelled batch.

    Args:
        generator: z -> images in [-1, 1].
        discriminator: a `NoisyClassifier` (images -> K logits, with `features_and_logits`).
        data_config: the run's data section: its dataset gives the test split for
            `evaluate_extra`, and `labelled_per_class` the size of the labelled subset.
        num_classes: K.
        seed: seed of the labelled subset's choice (the run seed).
        unlabelled_weight: weight of the unsupervised GAN loss in D's loss (1 in the paper).
        latent_dim, latent, latent_range: the noise prior (see `Objective`).
    """

    generator_uses_real = True  # feature matching compares G(z) with a real batch

    def __init__(self, generator: nn.Module, discriminator: nn.Module, data_config: DataConfig,
                 num_classes: int = 10, seed: int = 0, unlabelled_weight: float = 1.0,
                 latent_dim: int = 100, latent: str = "uniform", latent_range: float = 1.0):
        super().__init__(latent_dim, latent, latent_range)
        self.generator = generator
        self.discriminator = discriminator
        self.data_config = data_config
        self.num_classes = num_classes
        self.seed = seed
        self.unlabelled_weight = unlabelled_weight
        self._labelled: tuple[object, torch.Tensor] | None = None  # (dataset, indices)
        self._test_set = None

    def describe(self) -> str:
        """The game in one line, for the run's report."""
        labelled = self.data_config.labelled_per_class * self.num_classes
        return (f"semi-supervised GAN: D a {self.num_classes}-class classifier, cross-entropy "
                f"on {labelled} labelled images + GAN loss on unlabelled and generated ones "
                f"(weight {self.unlabelled_weight:g}); G by feature matching")

    # ----------------------------------------------------------------- data

    def check_data(self, data) -> None:
        if getattr(data, "labels", None) is None or getattr(data, "images", None) is None:
            raise GankitError(f"{data.name} has no labels: the semi-supervised objective "
                              "needs a labelled image set such as mnist")
        check_label_range(data, self.num_classes)

    def labelled_subset(self, data) -> torch.Tensor:
        """Indices of `data`'s labelled subset (chosen once per dataset, from the run seed)."""
        if self._labelled is None or self._labelled[0] is not data:
            self.check_data(data)
            indices = labelled_indices(data.labels, self.data_config.labelled_per_class,
                                       self.num_classes, self.seed)
            self._labelled = (data, indices)
        return self._labelled[1]

    def real_batch(self, data, n: int, generator: torch.Generator):
        """(labelled images, their labels, unlabelled images), n of each, drawn with replacement.

        The unlabelled batch comes from the whole training set, labelled images included, as
        in the paper's code.
        """
        subset = self.labelled_subset(data)
        chosen = subset[torch.randint(len(subset), (n,), generator=generator)]
        return to_float(data.images[chosen]), data.labels[chosen], data.sample(n, generator)

    # ----------------------------------------------------------------- the phases

    def discriminator_phase(self, real, latent: torch.Tensor) -> PhaseResult:
        labelled, labels, unlabelled = real
        if not self.discriminator.initialized:
            with torch.autocast(unlabelled.device.type, enabled=False):
                self.discriminator.initialize(unlabelled)
        # The weights the previous D update left (one step late, so every update counts).
        self.discriminator.update_average()
        fake = self.generate(latent)
        # One pass over the three batches: D has no batch statistics, so this equals three
        # passes, and the weight-normalised weights are computed once.
        logits = self.discriminator(torch.cat([labelled, unlabelled, fake.to(labelled.dtype)]))
        labelled_logits, real_logits, fake_logits = logits.float().split(
            [len(labelled), len(unlabelled), len(fake)])
        supervised = F.cross_entropy(labelled_logits, labels)
        unsupervised = unsupervised_loss(real_logits, fake_logits)
        d_loss = supervised + self.unlabelled_weight * unsupervised
        stats = {
            "d_loss": d_loss.detach(), "supervised": supervised.detach(),
            "unsupervised": unsupervised.detach(),
            "train_acc": (labelled_logits.detach().argmax(1) == labels).float().mean(),
            "d_real": real_probability(real_logits.detach()).mean(),
            "d_fake": real_probability(fake_logits.detach()).mean(),
        }
        return d_loss, stats

    def generator_phase(self, latent: torch.Tensor, real=None) -> PhaseResult:
        if real is None:
            raise GankitError("the semi-supervised generator phase needs a real batch")
        unlabelled = real[2]
        with torch.no_grad():  # the real side is a target, not a path to G
            real_features, _ = self.discriminator.features_and_logits(unlabelled)
        fake_features, fake_logits = self.discriminator.features_and_logits(
            self.generator(latent))
        g_loss = feature_matching_loss(real_features.float(), fake_features.float())
        return g_loss, {"g_loss": g_loss.detach(),
                        "d_fake_g": real_probability(fake_logits.detach().float()).mean()}

    # ----------------------------------------------------------------- evaluation

    def test_set(self, data_root=None):
        """The test split of the run's dataset (loaded once)."""
        if self._test_set is None:
            from gankit.data import build_dataset  # data -> objective: imported only when used

            self._test_set = build_dataset(dataclasses.replace(self.data_config, split="test"),
                                           data_root)
        return self._test_set

    def evaluate_extra(self, data_root=None) -> dict[str, float]:
        """D's classification error on the whole test split, with its averaged weights
        ("test_error/nN", the paper code's measure) and with its current ones ("test_error_raw").

        Args:
            data_root: where the dataset lives (see `gankit.data.resolve_data_root`).

        Returns:
            {"test_error/n10000": ..., "test_error_raw/n10000": ...}, errors in [0, 1], for MNIST.
        """
        test = self.test_set(data_root)
        raw = classification_error(self.discriminator, test.images, test.labels)
        with self.discriminator.averaged() as averaged:
            error = classification_error(averaged, test.images, test.labels)
        return {f"test_error/n{len(test)}": error, f"test_error_raw/n{len(test)}": raw}


def build_semi_supervised(config, sample_shape: tuple[int, ...],
                          penalty_generator: torch.Generator | None = None
                          ) -> SemiSupervisedObjective:
    """The objective of a `model.objective=semi-supervised` run config, with fresh players.

    Reads model.d_hidden (D's hidden widths), model.g_hidden (G's), model.num_classes,
    model.latent_dim / latent / latent_range and data.labelled_per_class; the other model keys
    (activations, batch norm, dropout) describe other games and are not used, and the config
    refuses loss keys other than the defaults. `penalty_generator` is unused (no gradient
    penalty here).
    """
    from gankit.nets.semisupervised import NoisyClassifier, SemiSupervisedGenerator

    model = config.model
    if not model.d_hidden:
        raise GankitError("model.d_hidden is empty: the semi-supervised D needs a hidden layer "
                          "for feature matching")
    return SemiSupervisedObjective(
        SemiSupervisedGenerator(model.latent_dim, sample_shape, model.g_hidden),
        NoisyClassifier(sample_shape, model.d_hidden, model.num_classes),
        config.data, num_classes=model.num_classes, seed=config.seed,
        latent_dim=model.latent_dim, latent=model.latent, latent_range=model.latent_range)
