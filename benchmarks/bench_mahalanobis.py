"""The two forms of the DP-GMM's Mahalanobis distances, and the training term built on them.

:class:`ladder.dpgmm_density.MahalanobisForm` computes (t - m_k)^T P_k (t - m_k) either as one
float64 product with the quadratic features of t (up to ``MAX_QUADRATIC_D`` dimensions) or with
the Cholesky factors (above). This times both forms on the training step's shape (a batch of 256
images, 100 samples of t each, 50 components) for each hyper-latent size d_t, and the training
kind's log density with its gradient (``DPGMM.log_prob(t, "bound")`` forward and backward) as
the package computes it. Usage:

    PYTHONPATH=. .venv/bin/python benchmarks/bench_mahalanobis.py --threads 2

``max rel diff`` is the largest relative difference between the two forms' float32 distances.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable

import torch

from ladder.dpgmm import DPGMM
from ladder.dpgmm_log_prob import density_tables


def milliseconds(fn: Callable[[], object], repeats: int) -> float:
    """Mean wall time of ``fn()`` in ms over ``repeats`` calls, after one warm-up call."""
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1000


def table_row(d: int, n_points: int, n_components: int, repeats: int) -> str:
    """One row of the table for hyper-latent size ``d``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a 5-iteration fit does not converge; timing only
        g = DPGMM.paper_prior(d, n_components=n_components, random_state=0,
                              max_iter=5).fit(torch.randn(4000, d, dtype=torch.float64))
    form = density_tables(g.posterior, torch.float32, torch.device("cpu")).distances
    t = torch.randn(n_points, d)
    quadratic, cholesky = form(t, max_quadratic_d=d), form(t, max_quadratic_d=0)
    diff = ((quadratic - cholesky).abs() / quadratic.abs().clamp_min(1.0)).max().item()
    t_grad = t.clone().requires_grad_(True)
    times = [milliseconds(lambda: form(t, max_quadratic_d=d), repeats),
             milliseconds(lambda: form(t, max_quadratic_d=0), repeats),
             milliseconds(lambda: g.log_prob(t_grad, "bound").sum().backward(), repeats)]
    return f"| {d} | {times[0]:.1f} | {times[1]:.1f} | {diff:.1e} | {times[2]:.1f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dims", default="8,12,16,24,32,48")
    parser.add_argument("--points", type=int, default=25600, help="256 images x 100 samples")
    parser.add_argument("--components", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print("| d_t | quadratic features ms | Cholesky ms | max rel diff | log_prob fwd+bwd ms |")
    print("|---|---|---|---|---|")
    for d in (int(x) for x in args.dims.split(",")):
        print(table_row(d, args.points, args.components, args.repeats))


if __name__ == "__main__":
    main()
