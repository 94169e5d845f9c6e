"""A run's health in numbers: is the latent used, is the decoder alive, did it stall?

:func:`diagnose` looks at a model on a sample of images, deterministically (posterior means, no
sampling, so it never touches a random generator):

* the data VAE's latent: active dimensions of z (Burda et al. 2016: Cov_x(E_q(z|x)[z]) > 0.01)
  and, since that fixed threshold counts a shrunk latent as unused, their scale-free counterpart:
  each dimension's ``z_signal_to_noise`` (Var_x(E_q[z]) over E_x[std^2]) and ``informative_z``,
  the dimensions where it exceeds 1; KL(q(z|x) || N(0, I)) per dimension averaged over the images
  (nats a dimension carries), the median posterior std and the share of its entries sitting on
  the ``std_floor`` of SM E's ``ReLU(FC) + floor`` head;
* the decoder at the posterior mean: dead outputs, the pixels whose unclamped output is <= 0 for
  every image although some image has ink there (under a ReLU output and the L1 likelihood such a
  pixel has no gradient; results/stall/README.md), with the share of the images' ink they hold (a
  dark border pixel with a trace of ink is harmless, a dead pixel in the middle is not), and the image
  error (``VAE.images``) against that of the
  all-black image (a model that stalled at black has the same);
* the prior's own diagnostics (``Prior.diagnostics``), prefixed ``prior_``: active dimensions of t
  and its floor share for the prior-VAE levels, active components of the DP-GMM and the GMM prior,
  the VampPrior's pseudo-input range and the width of their posteriors.

:func:`findings` turns them into sentences for the trainer's warnings and ``ladder diagnose``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ladder.markdown import markdown_table
from ladder.priors import active_dimensions, floor_share, signal_to_noise

if TYPE_CHECKING:
    from ladder.model import VAE

STALL_MARGIN = 0.002
"""Stalled: the image error within this of the all-black image's."""

DEAD_INK_LIMIT = 0.05
"""A finding when the dead outputs hold more than this share of the images' ink."""


@torch.no_grad()
def diagnose(model: VAE, images: Tensor, batch_size: int = 500) -> dict[str, Any]:
    """The diagnostics of ``model`` on ``images`` [N, C, H, W] (see the module docstring), as
    plain ints, floats, bools and lists."""
    if images.shape[0] < 2:
        raise ValueError(f"diagnose needs at least 2 images, got {images.shape[0]}")
    was_training = model.training
    model.eval()
    mus, stds, dark, ink = [], [], None, 0.0
    image_error = black_error = 0.0
    for x in images.split(batch_size):
        mu, std = model.encoder(x)
        x_hat = model.decoder(mu)
        mus.append(mu)
        stds.append(std)
        below = (x_hat <= 0).all(0)
        dark = below if dark is None else dark & below
        ink = ink + x.double().sum(0)
        image_error += float((x - model.images(x_hat)).abs().double().sum())
        black_error += float(x.abs().double().sum())
    model.train(was_training)
    mu, std = torch.cat(mus), torch.cat(stds)
    snr = signal_to_noise(mu, std)
    kl = (0.5 * (mu.square() + std.square() - 1) - std.log()).double().mean(0)
    dead = dark & (ink > 0)
    pixels = images[0].numel()
    image_mae, black_mae = image_error / images.numel(), black_error / images.numel()
    result: dict[str, Any] = {
        "n_images": int(images.shape[0]),
        "active_z": int(active_dimensions(mu).sum()),
        "z_activity": mu.double().var(0, correction=0).tolist(),
        "informative_z": int((snr > 1).sum()),
        "z_signal_to_noise": snr.tolist(),
        "kl_per_dim": kl.tolist(),
        "kl": float(kl.sum()),
        "std_median": float(std.median()),
        "floor_share": floor_share(std, model.encoder.head.std_floor),
        "dead_outputs": int(dead.sum()),
        "dead_share": float(dead.sum()) / pixels,
        "dead_ink_share": float(ink[dead].sum() / ink.sum()) if float(ink.sum()) > 0 else 0.0,
        "image_mae": image_mae,
        "black_mae": black_mae,
        "stalled": image_mae > black_mae - STALL_MARGIN,
    }
    result.update({f"prior_{k}": v for k, v in model.prior.diagnostics(mu).items()})
    result["collapsed"] = bool(collapses(result))
    return result


def collapses(diagnostics: dict[str, Any]) -> list[str]:
    """What collapsed: no active dimension of z, or a mixture prior down to one component."""
    found = []
    if diagnostics["active_z"] == 0:
        found.append("no dimension of z is active (the posterior collapsed to the prior)")
    found += [f"{key} is 1 (the mixture collapsed to one component)"
              for key, value in diagnostics.items()
              if key.endswith("active_components") and value == 1]
    return found


def findings(diagnostics: dict[str, Any], output_activation: str,
             settled: bool = True) -> list[str]:
    """One sentence per problem in ``diagnostics``: what went wrong and what to try.
    ``output_activation`` is the run's ``model.output_activation`` (for the advice).
    ``settled=False`` (after the first epoch) reports only dead outputs, which never recover:
    early in training a model may still be black and its latent and mixture unused."""
    out = []
    if settled and diagnostics["stalled"]:
        out.append(
            f"the reconstructions stalled at the all-black image (pixel error "
            f"{diagnostics['image_mae']:.4f} against black's {diagnostics['black_mae']:.4f}); "
            + _advice(output_activation))
    if diagnostics["dead_ink_share"] > DEAD_INK_LIMIT:
        out.append(
            f"{diagnostics['dead_outputs']} output pixels ({diagnostics['dead_share']:.0%}), "
            f"holding {diagnostics['dead_ink_share']:.0%} of the images' ink, are <= 0 for every "
            "image; " + _advice(output_activation))
    if settled:
        out += [f"{what}; try a larger learning rate, warm-up epochs (--set "
                "train.warmup_epochs=1) or another seed" for what in collapses(diagnostics)]
    return out


def _advice(output_activation: str) -> str:
    if output_activation == "relu":
        return ("a ReLU output below 0 has no gradient under the L1 likelihood; train with "
                "--set model.output_activation=relu_leaky_grad")
    return "try another seed, a lower train.lr or a larger model.output_slope"


def diagnosis_table(diagnostics: dict[str, Any]) -> str:
    """A Markdown table of one run's ``diagnostics`` (see :func:`comparison_table`)."""
    return comparison_table({"value": diagnostics})


def comparison_table(by_run: Mapping[str, dict[str, Any]],
                     keys: Sequence[str] | None = None) -> str:
    """A Markdown table with a row per diagnostic (``keys``, default: every key in the order
    first seen) and a column per run of ``by_run``; lists printed with 3 significant digits,
    "-" where a run has no such diagnostic."""
    keys = keys or list(dict.fromkeys(k for d in by_run.values() for k in d))
    rows = ([key, *(_cell(d[key]) if key in d else "-" for d in by_run.values())]
            for key in keys)
    return markdown_table(["diagnostic", *by_run], rows)


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(f"{v:.3g}" for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
