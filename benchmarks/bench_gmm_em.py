"""Fit time of ladder.gmm_em.fit_gmm against scikit-learn's GaussianMixture (issue 15).

The GMM prior's end-of-epoch EM refit: 50 full-covariance components, ``max_iter=1000`` and the
default ``tol``, as :class:`ladder.priors.GMMPrior`. "cold" fits from k-means (scikit-learn's
``KMeans`` in both, so both times include it); "warm" refits the cold solution, warm started, on the
same points moved by a little noise (the next epoch's encodings). Both engines run the same
iterations (the column ``iters``). Usage:

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/bench_gmm_em.py --threads 1

``--threads`` caps torch's and scikit-learn's thread pools alike (BLAS and OpenMP). On a machine
with CUDA, the cuda columns fit on ``cuda`` (synchronised, after a warm-up fit).
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from bench_dpgmm import data  # benchmarks/bench_dpgmm.py: the same blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from ladder.gmm_em import fit_gmm


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds of ``fn()`` (CUDA synchronised) and its result."""
    start = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, out


def sklearn_fit(X: np.ndarray, k: int, init: dict[str, np.ndarray]) -> GaussianMixture:
    return GaussianMixture(k, covariance_type="full", max_iter=1000, random_state=0,
                           **init).fit(X)


def torch_fit(X: torch.Tensor, k: int, init: dict[str, np.ndarray]) -> int:
    warm = {name.removesuffix("_init"): torch.from_numpy(v).to(X.device) for name, v in init.items()}
    return fit_gmm(X, k, max_iter=1000, random_state=0, **warm).n_iter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--sizes", default="2048,10000,60000")
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--components", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", ConvergenceWarning)
    cuda = torch.cuda.is_available()
    k, d = args.components, args.dim
    if cuda:  # warm-up: CUDA context, kernels
        fit_gmm(torch.from_numpy(data(2000, d)).cuda(), k, max_iter=2, random_state=0)
    print(f"threads={args.threads} d={d} K={k} torch={torch.__version__} "
          f"cuda={torch.cuda.get_device_name() if cuda else 'none'}")
    head = "| N | fit | iters | sklearn s | torch cpu s | speed-up cpu |"
    print(head + (" torch cuda s | speed-up cuda |" if cuda else ""))
    print("|---" * (6 + 2 * cuda) + "|")
    for n in map(int, args.sizes.split(",")):
        X = data(n, d)
        moved = X + 0.05 * np.random.RandomState(1).randn(n, d)
        with threadpool_limits(args.threads):
            t_cold, cold = timed(lambda X=X: sklearn_fit(X, k, {}))
            init = {"weights_init": cold.weights_, "means_init": cold.means_,
                    "precisions_init": cold.precisions_}
            t_warm, warm = timed(lambda moved=moved, init=init: sklearn_fit(moved, k, init))
            for name, points, start, t_sk, sk in (("cold", X, {}, t_cold, cold),
                                                  ("warm", moved, init, t_warm, warm)):
                t_cpu, iters = timed(lambda p=points, s=start: torch_fit(torch.from_numpy(p), k, s))
                mark = "" if iters == sk.n_iter_ else f" (torch {iters})"
                row = (f"| {n} | {name} | {sk.n_iter_}{mark} | {t_sk:.2f} | {t_cpu:.2f} | "
                       f"{t_sk / t_cpu:.2f}x |")
                if cuda:
                    t_gpu, _ = timed(lambda p=points, s=start: torch_fit(
                        torch.from_numpy(p).cuda(), k, s))
                    row += f" {t_gpu:.3f} | {t_sk / t_gpu:.1f}x |"
                print(row, flush=True)

if __name__ == "__main__":
    main()
