"""The VAE baseline (Kingma & Welling 2014) as a game with no discriminator phase.

The decoder is the GAN's generator for the same model config, so a VAE and a GAN trained from
one model section have the same sample-making net. Its encoder is trained with it, by the
generator's optimizer: `players()` returns one "generator" player holding both nets, while
`generator` (what EMA averages and samples come from) is the decoder alone.

Likelihood: Bernoulli. A pixel x in [-1, 1] is mapped to (x + 1) / 2 in [0, 1] and read as the
probability target of a Bernoulli whose mean is the decoder's output mapped the same way,
p = (t + 1) / 2 with t = tanh(a), i.e. logits 2a. MNIST's grey levels serve as soft targets, as
in Kingma & Welling's MNIST experiments, so the reconstruction term is a binary cross-entropy
in nats per image rather than a normalised density of continuous pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gankit.config import RunConfig
from gankit.errors import GankitError
from gankit.nets import build_generator
from gankit.nets.vae import VAEEncoder, VariationalAutoencoder
from gankit.objectives.base import Objective, PhaseResult

LIKELIHOOD = ("Bernoulli likelihood of pixels mapped to [0, 1] (decoder mean (t + 1) / 2, "
              "logits from its pre-tanh output)")


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) ‖ N(0, I)) per row, in closed form.

    Args:
        mu, logvar: N x d means and log-variances of q(z | x).

    Returns:
        N values: 0.5 * sum(mu^2 + exp(logvar) - 1 - logvar).
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(dim=1)


def bernoulli_reconstruction(logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """-log p(x | z) per image under independent Bernoulli pixels, computed from logits.

    Args:
        logits: N x ... logits of the pixel probabilities (the decoder's 2a, see the module).
        images: N x ... real images in [-1, 1]; (x + 1) / 2 are the targets.

    Returns:
        N values: the binary cross-entropy summed over each image's pixels, in nats.
    """
    targets = (images + 1) / 2
    # The logits form (softplus inside) never takes log(0), unlike log(p) on saturated p.
    per_pixel = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    return per_pixel.flatten(1).sum(dim=1)


class VAEObjective(Objective):
    """Minimise the negative ELBO: E_q[-log p(x | z)] + KL(q(z | x) ‖ N(0, I)).

    One phase only (`discriminator` is None, so the loop builds no D optimizer). The loop's
    noise for the G phase is the reparameterisation's epsilon, z = mu + exp(logvar / 2) * eps,
    so a VAE run draws its randomness from the run's latent stream and resumes bit-identically.

    Args:
        encoder: x -> (mu, logvar).
        decoder: z -> the mean of p(x | z) in [-1, 1], ending with an nn.Tanh (the generator).
        latent_dim: size of z; the prior is N(0, I).
    """

    generator_uses_real = True

    def __init__(self, encoder: nn.Module, decoder: nn.Module, latent_dim: int):
        super().__init__(latent_dim, latent="normal")
        self.autoencoder = VariationalAutoencoder(encoder, decoder)
        self.generator = decoder  # the same module: samples, pictures and EMA use the decoder
        self.discriminator = None

    def players(self) -> dict[str, nn.Module]:
        """One player, "generator": encoder and decoder share the generator's optimizer."""
        return {"generator": self.autoencoder}

    def generator_phase(self, latent: torch.Tensor, real: torch.Tensor = None) -> PhaseResult:
        mu, logvar = self.autoencoder.encoder(real)
        mu, logvar = mu.float(), logvar.float()  # the loss in fp32 under bf16 autocast
        latent_sample = mu + (0.5 * logvar).exp() * latent
        _, logits = self.autoencoder.decode_with_logits(latent_sample)
        reconstruction = bernoulli_reconstruction(logits.float(), real.float())
        kl = gaussian_kl(mu, logvar)
        g_loss = (reconstruction + kl).mean()
        return g_loss, {"g_loss": g_loss.detach(), "reconstruction": reconstruction.detach().mean(),
                        "kl": kl.detach().mean()}

    def describe(self) -> str:
        """One line for the run's report: the loss, the likelihood and the nets."""
        def size(net: nn.Module) -> str:
            return f"{type(net).__name__}, {sum(p.numel() for p in net.parameters()):,} parameters"

        return (f"VAE: negative ELBO = reconstruction + KL(q(z|x) ‖ N(0, I)) per image, with a "
                f"{LIKELIHOOD}; samples are decoder means. Decoder = the GAN generator "
                f"({size(self.autoencoder.decoder)}); encoder {size(self.autoencoder.encoder)}")


def build_vae(config: RunConfig, sample_shape: tuple[int, ...],
              penalty_generator: torch.Generator | None = None) -> VAEObjective:
    """The VAE of a run config: decoder = `build_generator(config.model)`, an MLP encoder
    mirroring `model.g_hidden` (reversed), latent prior N(0, I). `penalty_generator` is unused.

    Raises:
        GankitError: for point data, uniform noise or a decoder without a tanh output.
    """
    model = config.model
    if len(sample_shape) != 3:
        raise GankitError(f"model.objective=vae needs image data; {config.data.name} gives "
                          f"samples of shape {tuple(sample_shape)}")
    if model.latent != "normal":
        raise GankitError("model.objective=vae needs model.latent=normal (the prior N(0, I))")
    if model.g_output != "tanh":
        raise GankitError("model.objective=vae needs model.g_output=tanh (its Bernoulli "
                          "likelihood reads the decoder's pre-tanh logits)")
    decoder = build_generator(model, sample_shape)
    encoder = VAEEncoder(sample_shape, list(reversed(model.g_hidden)), model.latent_dim,
                         model.g_activation)
    return VAEObjective(encoder, decoder, model.latent_dim)
