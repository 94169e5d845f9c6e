"""Time shortest likely path (SLP, Eq (9)) on a batch of pairs against a one-by-one loop.

A 2-D, 50-component full-covariance Gaussian mixture (``torch.distributions``, the shape of
LaDDer's DP-GMM hyper prior in t-space) and 100 random pairs, ``reference`` preset (J = 8,
500 Adam iterations). Prints one table: wall time for the whole batch in one vectorised
problem, the same per pair, and the loop that runs the pairs one at a time.

Command (CPU, 1 thread):
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_slp.py
Options: ``--pairs N``, ``--loop-pairs N`` (time the loop on the first N pairs only and
scale to all), ``--device cuda``, ``--seed S``.

Result on the project machine (Intel Xeon x86_64, 2 shared cores, OMP_NUM_THREADS=1,
torch 2.14.1, CPU), with the command above:

    mode                       seconds   ms / pair
    batch (one problem)           1.44        14.4
    one by one                   50.33       503.3
    # speed-up 34.9x
    # min log p along the path, mean over pairs: SLP -7.28, SP -8.42; SLP above SP for 94/100 pairs
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
from torch import distributions as D

from ladder.slp import path_stats, shortest_likely_path, shortest_path
from ladder.slp_config import PRESETS


def mixture(k: int, device: torch.device, g: torch.Generator) -> D.MixtureSameFamily:
    means = torch.rand(k, 2, generator=g) * 10 - 5
    a = torch.randn(k, 2, 2, generator=g) * 0.4
    cov = a @ a.transpose(-1, -2) + 0.05 * torch.eye(2)
    logits = torch.randn(k, generator=g)
    return D.MixtureSameFamily(
        D.Categorical(logits=logits.to(device)),
        D.MultivariateNormal(means.to(device), covariance_matrix=cov.to(device)),
    )


def timed(fn, device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--loop-pairs", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(args.seed)
    gmm = mixture(50, device, g)
    starts = (torch.rand(args.pairs, 2, generator=g) * 10 - 5).to(device)
    ends = (torch.rand(args.pairs, 2, generator=g) * 10 - 5).to(device)
    n_loop = args.pairs if args.loop_pairs is None else min(args.loop_pairs, args.pairs)
    cfg = PRESETS["reference"]

    shortest_likely_path(gmm.log_prob, starts[:2], ends[:2], iters=5)  # warm-up
    t_batch, res = timed(lambda: shortest_likely_path(gmm.log_prob, starts, ends), device)
    t_loop, _ = timed(
        lambda: [shortest_likely_path(gmm.log_prob, starts[i], ends[i]) for i in range(n_loop)],
        device,
    )
    t_loop *= args.pairs / n_loop

    slp = path_stats(gmm.log_prob, res.path)
    sp = path_stats(gmm.log_prob, shortest_path(starts, ends, cfg.n_steps))
    print(f"# SLP benchmark: {args.pairs} pairs, 2-D GMM with 50 components, reference preset")
    machine = platform.processor() or platform.machine()
    print(
        f"# J={cfg.n_steps}, iters={cfg.iters}; device {device}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s), {machine}"
    )
    print(f"{'mode':<24}{'seconds':>10}{'ms / pair':>12}")
    print(f"{'batch (one problem)':<24}{t_batch:>10.2f}{1e3 * t_batch / args.pairs:>12.1f}")
    label = "one by one" + ("" if n_loop == args.pairs else f" (x{args.pairs}/{n_loop})")
    print(f"{label:<24}{t_loop:>10.2f}{1e3 * t_loop / args.pairs:>12.1f}")
    print(f"# speed-up {t_loop / t_batch:.1f}x")
    print(
        f"# min log p along the path, mean over pairs: SLP {slp['log_p_min'].mean():.2f}, "
        f"SP {sp['log_p_min'].mean():.2f}; SLP above SP for "
        f"{int((slp['log_p_min'] > sp['log_p_min']).sum())}/{args.pairs} pairs"
    )


if __name__ == "__main__":
    main()
