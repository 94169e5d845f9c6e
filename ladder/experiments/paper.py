"""The paper's own numbers, the only place they are written down: Tables 1-3 of the main text
and SM Tables 1-2, each the mean ± std over the paper's 5 repeats. ``ladder report`` prints them
beside ours; chapter 6 compares the orderings of the priors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ladder.markdown import format_pm


@dataclass(frozen=True)
class Reported:
    """One value of the paper: the mean ± std of its 5 repeats, with the decimals it prints."""

    mean: float
    std: float
    digits: int = 1
    std_digits: int | None = None  # where the std has more decimals (Table 3's pixel error)

    def __str__(self) -> str:
        """As the paper prints it, e.g. ``1528.6 ± 21.3``."""
        return format_pm(self.mean, self.std, self.digits, self.std_digits)


PRIORS = ("normal", "vamp", "gmm", "hierarchical", "ladder")
"""The paper's column order: Normal, VampPrior, GMM, Hierarchical, Ours."""


def _by_prior(*cells: tuple[float, float], std_digits: int | None = None) -> dict[str, Reported]:
    return {prior: Reported(mean, std, std_digits=std_digits)
            for prior, (mean, std) in zip(PRIORS, cells, strict=True)}


def _by_key(cells: dict[Any, tuple[float, float]]) -> dict[Any, Reported]:
    return {key: Reported(mean, std) for key, (mean, std) in cells.items()}


#: The published values by table, quantity and dataset, then prior (:data:`PRIORS`), d_t, or
#: ``"all"`` for a column that does not depend on the prior.
PAPER_VALUES: dict[str, dict[str, dict[str, dict[Any, Reported]]]] = {
    # Table 3 (main text): ELBO and per-pixel reconstruction error x0.01.
    "table3": {
        "elbo": {
            "mnist": _by_prior((1528.6, 21.3), (1476.3, 19.4), (1558.2, 24.4), (1534.9, 19.8),
                               (1562.5, 25.1)),
            "fashion": _by_prior((1078.4, 23.4), (1069.6, 22.1), (1133.3, 23.9), (1152.9, 24.9),
                                 (1174.0, 29.7)),
            "celeba": _by_prior((55564.8, 1751.3), (56463.4, 1683.9), (54162.5, 1716.5),
                                (56176.2, 1763.9), (58596.1, 1815.3)),
        },
        "pixel_error": {
            "mnist": _by_prior((2.3, 0.06), (2.5, 0.06), (2.3, 0.05), (2.4, 0.06), (2.2, 0.06),
                               std_digits=2),
            "fashion": _by_prior((4.3, 0.12), (4.1, 0.11), (4.0, 0.11), (3.7, 0.11), (3.6, 0.11),
                                 std_digits=2),
            "celeba": _by_prior((5.8, 0.21), (5.9, 0.25), (5.9, 0.20), (5.7, 0.17), (5.5, 0.18),
                                std_digits=2),
        },
    },
    # Table 2 (main text): cross-entropy E_q(z)[log p(z)].
    "table2": {
        "cross_entropy": {
            "mnist": _by_prior((-19.0, 0.1), (-16.2, 0.1), (-8.4, 0.9), (-17.5, 0.1),
                               (-12.3, 0.1)),
            "fashion": _by_prior((-52.5, 0.6), (-60.8, 1.0), (-45.2, 0.8), (-63.8, 0.9),
                                 (-32.8, 0.7)),
            "celeba": _by_prior((-351.4, 4.3), (-380.7, 3.4), (-290.6, 54.8), (-358.0, 7.3),
                                (-71.9, 2.1)),
        },
    },
    # Table 1 (main text): CelebA FID of generated and reconstructed samples.
    "table1": {
        "generated": {"celeba": _by_prior((250.3, 1.5), (182.9, 1.2), (140.4, 0.9),
                                          (143.8, 1.0), (132.7, 0.8))},
        "reconstructed": {"celeba": _by_prior((100.3, 0.6), (95.5, 0.7), (102.3, 0.5),
                                              (99.7, 0.6), (95.3, 0.5))},
        "difference": {"celeba": _by_prior((150.0, 2.1), (87.4, 1.9), (38.1, 1.4), (44.1, 1.6),
                                           (37.4, 1.3))},
        "real": {"celeba": _by_key({"all": (5.9, 0.5)})},  # SM Table 2's "Real image" column
    },
    # SM Table 1: FID on MNIST and Fashion-MNIST ("Real image": train against test).
    "sm_table1": {
        "generated": {
            "mnist": _by_prior((401.4, 4.4), (47.2, 3.6), (2.3, 0.5), (52.4, 4.7), (6.4, 1.3)),
            "fashion": _by_prior((266.1, 2.4), (23.6, 1.2), (6.0, 1.0), (243.8, 2.9),
                                 (5.2, 0.9)),
        },
        "reconstructed": {
            "mnist": _by_prior((2.1, 0.8), (1.4, 0.4), (2.5, 0.8), (5.4, 1.4), (2.4, 0.4)),
            "fashion": _by_prior((3.2, 0.4), (3.0, 0.2), (2.9, 0.4), (1.8, 0.2), (1.0, 0.4)),
        },
        "difference": {
            "mnist": _by_prior((399.3, 5.2), (45.8, 4.0), (-0.2, 1.3), (47.0, 3.3), (4.0, 1.7)),
            "fashion": _by_prior((262.9, 2.8), (20.6, 1.4), (3.1, 1.4), (242.0, 3.1),
                                 (4.2, 1.3)),
        },
        "real": {"mnist": _by_key({"all": (2.3, 0.4)}),
                 "fashion": _by_key({"all": (0.4, 0.1)})},
    },
    # SM Table 2: FID of LaDDer's generated samples against the prior VAE's latent size d_t.
    "sm_table2": {
        "generated": {
            "mnist": _by_key({2: (58.7, 1.8), 4: (35.1, 8.1), 8: (6.4, 1.3), 16: (6.9, 0.8)}),
            "fashion": _by_key({2: (25.3, 1.6), 4: (9.9, 1.2), 8: (5.5, 0.7), 16: (5.2, 0.9)}),
            "celeba": _by_key({2: (175.7, 0.5), 4: (148.4, 0.6), 8: (138.4, 0.5),
                               16: (133.5, 0.6), 32: (132.7, 0.5)}),
        },
    },
}


def paper_value(table: str, quantity: str, dataset: str, key: Any) -> Reported | None:
    """The paper's value of ``quantity`` in ``table`` for ``dataset`` and ``key`` (a prior of
    :data:`PRIORS`, a d_t, or ``"all"``); None where the paper has none."""
    return PAPER_VALUES.get(table, {}).get(quantity, {}).get(dataset, {}).get(key)
