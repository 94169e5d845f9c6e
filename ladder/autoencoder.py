"""The data VAE's encoder and decoder for a data set (SM E.1 for MNIST and Fashion-MNIST, SM E.2
for CelebA), with the paper's activations where none is given."""

from __future__ import annotations

from torch import nn

from ladder.config_checks import ACTIVATIONS, OUTPUT_ACTIVATIONS
from ladder.nets import OUTPUT_SLOPE, PAPER_ACTIVATIONS, MnistDecoder, MnistEncoder
from ladder.nets_celeba import CelebAEncoder, StyleDecoder


def build_autoencoder(
    dataset: str,
    d_z: int,
    activation: str | None = None,
    output_activation: str | None = None,
    std_floor: float = 1e-3,
    output_slope: float = OUTPUT_SLOPE,
    std_activation: str = "relu",
) -> tuple[nn.Module, nn.Module]:
    """(encoder, decoder) of the data VAE for ``dataset`` ("mnist", "fashion": SM E.1; "celeba":
    SM E.2). ``None`` activations take the paper's choice (:data:`ladder.nets.PAPER_ACTIVATIONS`);
    ``output_slope`` is the slope of a "leaky_relu" output unit, and of the encoder's std head
    below 0 where ``std_activation`` is "relu_leaky_grad" (:class:`ladder.nets.GaussianHead`)."""
    if dataset not in PAPER_ACTIVATIONS:
        raise ValueError(
            f"unknown dataset {dataset!r}; use a canonical name ({', '.join(PAPER_ACTIVATIONS)}), "
            "e.g. via ladder.config.canonical_dataset"
        )
    if d_z < 1:
        raise ValueError(f"d_z must be positive, got {d_z}")
    paper_act, paper_out = PAPER_ACTIVATIONS[dataset]
    activation = activation or paper_act
    output_activation = output_activation or paper_out
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    if output_activation not in OUTPUT_ACTIVATIONS:
        raise ValueError(
            f"output_activation must be one of {OUTPUT_ACTIVATIONS}, got {output_activation!r}"
        )
    head = {"std_floor": std_floor, "std_activation": std_activation, "slope": output_slope}
    if dataset == "celeba":
        return (
            CelebAEncoder(d_z, activation, **head),
            StyleDecoder(d_z, activation, output_activation, output_slope=output_slope),
        )
    return (
        MnistEncoder(d_z, activation, **head),
        MnistDecoder(d_z, activation, output_activation, output_slope),
    )
