"""VampPrior [36]: a uniform mixture of the encoder's posteriors at learned pseudo-inputs."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.distributions import Categorical, Independent, MixtureSameFamily
from torch.distributions import Normal as TorchNormal

from ladder.numerics import gaussian_mixture_log_prob
from ladder.priors import (
    MixturePrior,
    PriorContext,
    reparameterise,
)

if TYPE_CHECKING:
    from ladder.config import ModelConfig
    from ladder.image_sets import ImageSet

# model.vamp.constrain = sigmoid starts data-initialised pseudo-inputs at logit(image), the image
# clamped to [PIXEL_CLAMP, 1 - PIXEL_CLAMP] so that black and white pixels get finite logits (+-4.6)
PIXEL_CLAMP = 0.01


class VampPrior(MixturePrior):
    """VampPrior [36]: p(z) = (1/K) sum_k q(z | u_k) with K learned pseudo-inputs u_k.

    The pseudo-inputs are encoded by the data VAE's own encoder (shared, not copied, as in the
    reference code), with uniform weights. ``init="random"`` draws them from N(0, 1) (reference
    code); ``init="data"`` starts them at random training images (:meth:`init_from_data`).
    ``constrain="none"`` leaves them unconstrained (reference code); ``"sigmoid"`` keeps them in the
    image range: the pseudo-inputs are sigmoid(a) of the parameters a, and data initialisation
    sets a = logit(image) (:data:`PIXEL_CLAMP`). The parameters are the prior block's in
    Algorithm 1.
    """

    @classmethod
    def from_config(cls, cfg: ModelConfig, context: PriorContext) -> VampPrior:
        vamp = cfg.vamp
        return cls(context.encoder, cfg.d_z, context.image_shape, vamp.n_pseudo_inputs, cfg.n_mc,
                   context.seed, vamp.init, vamp.constrain)

    def __init__(
        self,
        encoder: nn.Module,
        dim: int,
        image_shape: tuple[int, int, int],
        n_components: int = 50,
        n_mc: int = 100,
        seed: int = 0,
        init: str = "random",
        constrain: str = "none",
    ) -> None:
        super().__init__(dim, n_mc)
        if init not in ("random", "data") or constrain not in ("none", "sigmoid"):
            raise ValueError(f"VampPrior init must be 'random' or 'data' and constrain 'none' or "
                             f"'sigmoid', got {init!r} and {constrain!r}")
        # Held outside the module tree: the encoder belongs to the data VAE, and registering it
        # here too would put its weights in this prior's parameters and state twice.
        self.__dict__["encoder"] = encoder
        self.init, self.constrain = init, constrain
        generator = torch.Generator().manual_seed(seed)
        self.pseudo_inputs = nn.Parameter(
            torch.randn(n_components, *image_shape, generator=generator)
        )

    def pseudo_images(self) -> Tensor:
        """The pseudo-inputs u_k as the encoder sees them (sigmoid of the parameters if
        ``constrain="sigmoid"``)."""
        return self.pseudo_inputs.sigmoid() if self.constrain == "sigmoid" else self.pseudo_inputs

    def init_from_data(self, images: ImageSet, seed: int = 0) -> None:
        """``init="data"``: start at ``n_components`` images of the training set drawn with
        ``seed``; ``init="random"`` keeps the N(0, 1) draw."""
        if self.init == "data":
            k = self.pseudo_inputs.shape[0]
            pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
            self.init_from_images(images.gather(pick[:k]), seed)

    @torch.no_grad()
    def init_from_images(self, images: Tensor, seed: int = 0) -> None:
        """Start the pseudo-inputs at K distinct random images of ``images`` (at their logits,
        clamped, if ``constrain="sigmoid"``)."""
        k = self.pseudo_inputs.shape[0]
        if images.shape[0] < k:
            raise ValueError(f"VampPrior needs at least {k} images to initialise from")
        generator = torch.Generator().manual_seed(seed)
        pick = torch.randperm(images.shape[0], generator=generator)[:k]
        chosen = images[pick.to(images.device)].to(self.pseudo_inputs.device)
        if self.constrain == "sigmoid":
            chosen = torch.logit(chosen.clamp(PIXEL_CLAMP, 1 - PIXEL_CLAMP))
        self.pseudo_inputs.copy_(chosen)

    def encoded_pseudo_inputs(self) -> tuple[Tensor, Tensor]:
        """(mu_k, std_k) of q(z | u_k) for every pseudo-input: the mixture's components."""
        return self.encoder(self.pseudo_images())

    def torch_mixture(self) -> MixtureSameFamily:
        """The mixture of the encoded pseudo-inputs' posteriors."""
        mu, std = self.encoded_pseudo_inputs()
        logits = torch.zeros(mu.shape[0], device=mu.device, dtype=mu.dtype)
        return MixtureSameFamily(Categorical(logits=logits, validate_args=False),
                                 Independent(TorchNormal(mu, std, validate_args=False), 1,
                                             validate_args=False),
                                 validate_args=False)

    def _log_prob_encoded(self, z: Tensor, mu: Tensor, std: Tensor) -> Tensor:
        """log (1/K) sum_k N(z; mu_k, diag std_k^2) given the encoded pseudo-inputs."""
        log_weights = torch.full((mu.shape[0],), -math.log(mu.shape[0]), device=mu.device)
        return gaussian_mixture_log_prob(z, log_weights, mu, std)

    def log_prob(self, z: Tensor) -> Tensor:
        return self._log_prob_encoded(z, *self.encoded_pseudo_inputs())

    def cross_entropy(self, mu: Tensor, std: Tensor, z: Tensor) -> Tensor:
        """The Monte Carlo estimate of :class:`MonteCarloPrior`, with the pseudo-inputs encoded
        once for all ``n_mc`` samples."""
        encoded = self.encoded_pseudo_inputs()
        return self._log_prob_encoded(reparameterise(mu, std, self.n_mc), *encoded).mean(0)

    @torch.no_grad()
    def diagnostics(self, z: Tensor) -> dict[str, Any]:
        """The pseudo-inputs' pixel range (images lie in [0, 1]; ``model.vamp.init = random`` starts
        them as N(0, 1) noise, which collapsed the VampPrior: results/stall/README.md), and the
        width of their posteriors, the mixture's components: their median std, to set beside the
        images' own (``std_median`` of :func:`ladder.diagnose.diagnose`)."""
        pseudo = self.pseudo_images().detach()
        _, std = self.encoded_pseudo_inputs()
        return {"pseudo_input_min": float(pseudo.min()), "pseudo_input_max": float(pseudo.max()),
                "pseudo_std_median": float(std.median())}
