"""The cost of Fig 2's log-density panels: importance-sampled log p(z) of the two prior VAEs on a
2-D latent, per point, scaled to the paper-scale grid and test set.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_grid.py

Untrained priors of the paper's size (d_t = 2): the cost of an estimate does not depend on the
weights. Prints, for K importance samples, the seconds for ``--points`` points and what a 241 x 241
grid (resolution 0.05 on [-6, 6]^2) and 10k test encodings would take at that rate.
"""

from __future__ import annotations

import argparse
import time

import torch

from ladder.latent2d import grid_points, log_density, prior_config
from ladder.markdown import markdown_table
from ladder.prior_registry import build_prior


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--points", type=int, default=1024)
    parser.add_argument("--samples", type=int, nargs="+", default=[100, 1000])
    args = parser.parse_args()
    torch.manual_seed(0)
    grid = len(grid_points(resolution=0.05)[2])
    z = torch.randn(args.points, 2)
    rows = []
    for name in ("hierarchical", "ladder"):
        prior = build_prior(prior_config(name, 2, 2), None, (1, 28, 28), 0).eval()
        for k in args.samples:
            start = time.perf_counter()
            log_density(prior, z, k)
            seconds = time.perf_counter() - start
            rows.append((name, str(k), f"{seconds:.1f}",
                         f"{seconds * grid / args.points / 60:.1f}",
                         f"{seconds * 10_000 / args.points / 60:.1f}"))
    print(f"{torch.get_num_threads()} thread(s), {args.points} points")
    print(markdown_table(("prior", "K", "s for the points", f"min for the {grid}-point grid",
                          "min for 10k test z"), rows))


if __name__ == "__main__":
    main()
