"""Fit time of ladder.dpgmm.DPGMM against scikit-learn's BayesianGaussianMixture (issue 3).

Both fit the same data with the same settings (50 components, full covariances, the Dirichlet
process, k-means initialisation, ``tol=0`` so that both run exactly ``--iters`` CAVI iterations);
the times include the k-means initialisation. Usage:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_dpgmm.py --threads 1 --iters 20

``--threads`` caps torch's and scikit-learn's thread pools alike (BLAS and OpenMP). On a machine
with CUDA, the GPU column fits on ``cuda`` (synchronised, after a warm-up fit).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture
from threadpoolctl import threadpool_limits

from ladder.dpgmm import DPGMM


def data(n: int, d: int, seed: int = 0) -> np.ndarray:
    """n points from 10 Gaussian blobs with random covariances in R^d."""
    rng = np.random.RandomState(seed)
    centres = rng.randn(10, d) * 3.0
    mix = rng.randn(10, d, d) / np.sqrt(d)
    labels = rng.randint(10, size=n)
    return centres[labels] + np.einsum("nij,nj->ni", mix[labels], rng.randn(n, d))


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=20, help="CAVI iterations for both")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--sizes", default="20000,60000")
    parser.add_argument("--dims", default="2,32")
    parser.add_argument("--components", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", ConvergenceWarning)
    cuda = torch.cuda.is_available()
    kw = dict(n_components=args.components, max_iter=args.iters, tol=0.0, random_state=0)
    if cuda:  # warm-up: CUDA context, kernels
        DPGMM(device="cuda", **{**kw, "max_iter": 2}).fit(data(2000, 2))
    print(f"threads={args.threads} iters={args.iters} K={args.components} "
          f"torch={torch.__version__} cuda={torch.cuda.get_device_name() if cuda else 'none'}")
    head = "| N | d | sklearn s | ours cpu s | speed-up cpu |"
    print(head + (" ours cuda s | speed-up cuda |" if cuda else ""))
    print("|---" * (5 + 2 * cuda) + "|")
    for n in map(int, args.sizes.split(",")):
        for d in map(int, args.dims.split(",")):
            X = data(n, d)
            with threadpool_limits(args.threads):
                t_sk = timed(lambda X=X: BayesianGaussianMixture(**kw).fit(X))
            t_cpu = timed(lambda X=X: DPGMM(device="cpu", **kw).fit(X))
            row = f"| {n} | {d} | {t_sk:.2f} | {t_cpu:.2f} | {t_sk / t_cpu:.1f}x |"
            if cuda:
                Xc = torch.from_numpy(X).cuda()
                t_gpu = timed(lambda Xc=Xc: DPGMM(device="cuda", **kw).fit(Xc))
                row += f" {t_gpu:.3f} | {t_sk / t_gpu:.0f}x |"
            print(row, flush=True)


if __name__ == "__main__":
    main()
