"""What ``ladder report`` tabulates: one :class:`TableSpec` per results file (Tables 1-3, SM
Tables 1-2, Figs 2 and 4, and five tables beyond the paper), the columns of a table of any run
folders (``ladder report --runs``), and the figures it copies."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any


@dataclass
class Column:
    """One aggregated quantity: where it is in a run's result file (the number at ``path``, less
    the one at ``minus`` where given), how to print it, and which paper value goes beside it
    (``paper = (table, quantity)``, looked up by dataset and the row's last label)."""

    header: str
    path: tuple[str, ...]
    digits: int = 1
    paper: tuple[str, str] | None = None
    minus: tuple[str, ...] | None = None

    def read(self, result: Mapping[str, Any]) -> float | None:
        """This quantity in one run's result file; None where a number it needs is missing."""
        value = _number(result, self.path)
        if self.minus is None or value is None:
            return value
        other = _number(result, self.minus)
        return None if other is None else value - other


@dataclass
class TableSpec:
    """One file pair ``results/<scale>/<name>.{md,csv}``: rows grouped by ``rows`` labels over the
    runs of ``experiments``, mean ± std over seeds per :class:`Column`."""

    name: str
    title: str
    experiments: tuple[str, ...]
    rows: tuple[str, ...]
    columns: tuple[Column, ...]
    note: str = ""

    @property
    def scores_images(self) -> bool:
        """Whether a column is a Fréchet distance, scored with the evaluation classifier."""
        return any(col.path[:2] == ("metrics", "generation") for col in self.columns)


def _number(data: Mapping[str, Any], path: tuple[str, ...]) -> float | None:
    """The number at ``path`` in nested mappings, None where it is missing or not a number."""
    for key in path:
        if not isinstance(data, Mapping) or key not in data:
            return None
        data = data[key]
    return float(data) if isinstance(data, (int, float)) and not isinstance(data, bool) else None


_FCD_NOTE = ("Ours: Fréchet distance on the project's LeNet classifier features (FCD; "
             "`ladder.features`), not the Inception FID of the paper, whose feature network the "
             "paper does not name for MNIST; compare the ordering of the priors, not the values.")
_SCALE_NOTE = ("The paper's ELBO is on its own scale (the book's appendix on the authors' code, "
               "book/reference_code.md, section 6); compare the ordering of the priors, and our "
               "numbers across scales.")


def _frechet_columns(paper_table: str, block: str, prefix: str, digits: int,
                     headers: tuple[str, str, str, str]) -> tuple[Column, ...]:
    """The Fréchet distances of generated and reconstructed samples, their difference and the
    real-image floor (Table 1, SM Table 1), from ``metrics.<block>.<prefix>_*``."""
    return tuple(Column(header, ("metrics", block, f"{prefix}_{key}"), digits,
                        (paper_table, quantity))
                 for header, key, quantity in zip(
                     headers, ("generated", "reconstructed", "difference", "real_floor"),
                     ("generated", "reconstructed", "difference", "real"), strict=True))


_ELBO = Column("ELBO", ("metrics", "elbo", "elbo"), 1)
_FCD_GENERATED = Column("FCD generated", ("metrics", "generation", "fcd_generated"), 2)
_KL = Column("KL(q(z)||p(z))", ("metrics", "cross_entropy", "kl"), 2)
_LOG_PZ = Column("E[log p(z)]", ("metrics", "cross_entropy", "bound"), 2)
_NLL = Column("-log p(x) IS", ("metrics", "log_likelihood", "nll"), 1)
_PIXEL_ERROR = Column("pixel error x0.01", ("metrics", "elbo", "pixel_error_x100"), 2)
_PRECISION_RECALL = (Column("precision", ("metrics", "generation", "precision"), 3),
                     Column("recall", ("metrics", "generation", "recall"), 3))
_DENSITY_COVERAGE = (Column("density", ("metrics", "generation", "density"), 3),
                     Column("coverage", ("metrics", "generation", "coverage"), 3))
#: The tables beyond the paper compare runs on the same quantities.
_BEYOND_COLUMNS = (
    _ELBO,
    _PIXEL_ERROR,
    _LOG_PZ,
    Column("E[log p(z)] IS", ("metrics", "cross_entropy", "importance_sampled"), 2),
    _FCD_GENERATED,
)
#: ``ladder report --runs DIR``: what any evaluated run folder is tabulated by.
FOLDER_COLUMNS = (_ELBO, _PIXEL_ERROR, _NLL, _LOG_PZ, _KL, _FCD_GENERATED)

TABLES: tuple[TableSpec, ...] = (
    TableSpec(
        "table3_elbo", "Table 3: test ELBO (higher is better) and per-pixel reconstruction "
        "error x0.01 (lower is better)", ("tables", "celeba"), ("dataset", "prior"),
        (replace(_ELBO, paper=("table3", "elbo")),
         replace(_PIXEL_ERROR, paper=("table3", "pixel_error")), _NLL),
        _SCALE_NOTE + " Beyond the paper: -log p(x) by importance sampling (lower is better; "
        "at most -ELBO up to Monte Carlo error), on the evaluation's n_nll test images."),
    TableSpec(
        "table2_cross_entropy", "Table 2: cross-entropy E_q(z)[log p(z)] between the aggregate "
        "posterior and the prior (higher is better)", ("tables", "celeba"), ("dataset", "prior"),
        (Column("E[log p(z)] prior's estimate", ("metrics", "cross_entropy", "bound"), 2,
                ("table2", "cross_entropy")),
         Column("E[log p(z)] importance sampled",
                ("metrics", "cross_entropy", "importance_sampled"), 2),
         _KL),
        "The prior's own estimate is what the paper reports (for the hierarchical and LaDDer "
        "priors the bound L(z) of Eq (7), as the reference code logs it); the importance-sampled "
        "log p(z) is the tighter estimate. Both move with the latent's scale (z -> c z adds "
        "-d log c), so a prior that shrinks its latent gains nats; KL(q(z)||p(z)) (lower is "
        "better) does not. q(z) is the aggregate posterior of the test images, each code's own "
        "posterior included: an upper bound in expectation on the population's KL, loose where "
        "posteriors are narrow (`ladder.aggregate`; evaluation.json also holds the leave-one-out "
        "lower bound, `kl_loo`, which in 16 dimensions is too loose to tabulate). Blank: an "
        "evaluation written before KL was reported."),
    TableSpec(
        "table1_celeba_fid", "Table 1: CelebA FID of generated and reconstructed samples (lower "
        "is better)", ("celeba",), ("dataset", "prior"),
        _frechet_columns("table1", "inception_fid", "fid", 1,
                         ("FID generated", "FID reconstructed", "FID difference",
                          "FID real (floor)")),
        "CelebA runs need a CUDA GPU and local Inception weights (LADDER_INCEPTION_WEIGHTS)."),
    TableSpec(
        "sm_table1_frechet", "SM Table 1: Fréchet distance of generated and reconstructed samples "
        "(lower is better)", ("tables",), ("dataset", "prior"),
        _frechet_columns("sm_table1", "generation", "fcd", 2,
                         ("generated", "reconstructed", "difference", "real train vs test")),
        _FCD_NOTE),
    TableSpec(
        "sm_table2_dt_ablation", "SM Table 2: Fréchet distance of LaDDer's generated samples "
        "against the prior VAE's latent size d_t (lower is better)", ("dt-ablation",),
        ("dataset", "d_t"),
        (replace(_FCD_GENERATED, header="generated", paper=("sm_table2", "generated")),
         _ELBO, _LOG_PZ),
        _FCD_NOTE + " The paper's SM Table 1 LaDDer FIDs (MNIST 6.4, Fashion 5.2) equal its "
        "d_t = 8 and d_t = 16 entries here, not d_t = 2 of SM E."),
    TableSpec(
        "fig2_cross_entropy", "Fig 2: priors fitted to a frozen 2-D latent, cross-entropy "
        "E_q(z)[log p(z)] on the test encodings (higher is better)", ("fig2",), ("dataset",),
        tuple(Column(name, ("cross_entropy", name), 3) for name in
              ("aggregate", "normal", "hierarchical", "vamp", "gmm", "ladder")),
        "`aggregate` scores q(z) of the training encodings itself, the optimum of Eq (3) up to "
        "the train/test gap. Figure: figures/fig2_frozen_latent.png."),
    TableSpec(
        "fig4_clusters", "Fig 4: agreement of the prior's mixture components with the class "
        "labels on a 2-D latent (higher is better)", ("fig4",), ("dataset", "prior"),
        (Column("NMI", ("clusters", "nmi"), 3), Column("ARI", ("clusters", "ari"), 3),
         Column("components used", ("clusters", "n_components_used"), 1)),
        "The paper shows the scatter plots only. Figures: figures/fig4_clusters_*.png."),
    TableSpec(
        "beyond_elbo_parts", "Beyond the paper: Table 3's ELBO in its two parts, the "
        "reconstruction E_q[log p(x|z)] (higher is better) less the rate, the mean "
        "KL(q(z|x)||p(z)) (lower is better)", ("tables", "celeba"), ("dataset", "prior"),
        (_ELBO, Column("reconstruction", ("metrics", "elbo", "reconstruction"), 1),
         Column("rate", ("metrics", "elbo", "reconstruction"), 1,
                minus=("metrics", "elbo", "elbo")),
         _PIXEL_ERROR),
        "The prior enters the ELBO through the rate alone: for a given encoder and decoder, a "
        "prior closer to their posteriors lowers it. The reconstruction is the Laplace "
        "log-likelihood of SM C, Eq (14), with its -D log 2 sigma term (Eq (15)) and sigma a "
        "pixel error (the paper preset's: the training images'), so over D = 784 pixels a 1% "
        "change in pixel error moves it by about 8 nats."),
    TableSpec(
        "beyond_precision_recall", "Beyond the paper: precision, recall, density and coverage "
        "of the generated samples (higher is better)", ("tables", "celeba"), ("dataset", "prior"),
        (*_PRECISION_RECALL, *_DENSITY_COVERAGE, _FCD_GENERATED),
        "On the evaluation classifier's features, k = 5 nearest neighbours, as many generated "
        "images as test images (`ladder.features.prdc_metrics`, Naeem et al. 2020): precision "
        "is the share of samples inside the test images' k-NN manifold (how realistic), recall "
        "the share of test images inside the samples' (how much of the data is covered); "
        "density and coverage are their outlier-robust forms. The paper reports none of them."),
    TableSpec(
        "beyond_ladder_levels", "Beyond the paper: a ladder of two prior VAEs against one",
        ("ladder-levels",), ("dataset", "n_levels"),
        _BEYOND_COLUMNS,
        "n_levels = 1 is the paper's LaDDer (Table 3's runs)."),
    TableSpec(
        "beyond_presets", "Beyond the paper: LaDDer with the paper's settings (SM E) against "
        "the reference code's", ("presets",), ("dataset", "preset"),
        _BEYOND_COLUMNS,
        "Below the paper scale both presets get the scale's data and epochs (the reference's "
        "warm-up scaled with them); at the paper scale each its own (50 and 30 epochs)."),
    TableSpec(
        "beyond_vamp_std_head", "Beyond the paper: the VampPrior with SM E's ReLU std head "
        "against one whose entries on the floor keep a gradient", ("vamp-std-head",),
        ("dataset", "std_activation"),
        (_ELBO, Column("entropy of q(z|x)", ("metrics", "elbo", "entropy"), 1),
         _KL, _FCD_GENERATED, *_PRECISION_RECALL),
        "std_activation = relu is SM E's head and Table 3's VampPrior run; relu_leaky_grad keeps "
        "its values and gives an entry on the 1e-3 floor the gradient 0.05 (`ladder.nets."
        "GaussianHead`). At the medium and paper scales the VampPrior under the ReLU head ends "
        "training with about half or more of its MNIST posteriors' std entries on the floor "
        "(`diag_floor_share` in metrics.jsonl; all of them in one paper-scale seed), no other "
        "prior a quarter; the quick scale's short training leaves every prior an eighth to a "
        "half there."),
    TableSpec(
        "beyond_hierarchical_dt", "Beyond the paper: the hierarchical prior with SM E's d_t = 2 "
        "against the package's d_t = 8", ("hierarchical-dt",), ("dataset", "d_t"),
        (_ELBO, _KL, _FCD_GENERATED, *_PRECISION_RECALL),
        "d_t = 8 is Table 3's hierarchical run. SM Table 1 has the hierarchical prior's samples "
        "near the Normal prior's on Fashion-MNIST (FID 243.8 against 266.1), with SM E's d_t = 2."),
)

#: Figures the report copies into ``results/<scale>/figures/``: (experiment, file pattern in the
#: run folder, destination name from the run's grid labels and the file's ``stem``), from the
#: lowest seed that finished.
FIGURES: tuple[tuple[str, str, str], ...] = (
    ("fig2", "fig2.png", "fig2_frozen_latent_{dataset}.png"),
    ("fig4", "fig4.png", "fig4_clusters_{dataset}_{prior}.png"),
    ("fig5", "fig5*.png", "{stem}_{dataset}_{prior}.png"),
    ("tables", "evaluation-samples.png", "samples_{dataset}_{prior}.png"),
    ("celeba", "evaluation-samples.png", "samples_{dataset}_{prior}.png"),
)
