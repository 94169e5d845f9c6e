"""Throughput and peak memory of the importance-sampled evaluation (issue 4).

For a Normal-prior and a LaDDer-prior MNIST model (fresh SM E.1 networks, the DP-GMM fitted to the
encodings of 1000 training images; or trained runs with ``--runs``): test images per second of

* ``cross_entropy_statistics`` (one z ~ q(z|x) per image, log p(z) with K importance samples), and
* ``log_likelihood`` (K samples z ~ q(z|x) per image, nested with ``n_inner`` t-samples per z for
  LaDDer),

with the wall and CPU seconds (on a shared machine the CPU time is the steadier figure), the
estimate, its Monte Carlo standard error (for log p(x)) and the peak memory: CUDA's
``max_memory_allocated`` on a GPU; on the CPU the rise of the process's peak resident set size
during the measurement, each configuration in a fresh process (tracemalloc does not see torch's
allocator).

    OMP_NUM_THREADS=1 LADDER_DATA=../shared/data .venv/bin/python benchmarks/bench_evaluate.py
    .venv/bin/python benchmarks/bench_evaluate.py --runs runs/quick-mnist-normal \
        runs/quick-mnist-ladder --n-is 1000 --n-inner 1 10 100
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import platform
import resource
import time

import torch

from ladder.config import preset_config
from ladder.data import load_dataset
from ladder.device import select_device
from ladder.metrics import cross_entropy_statistics, fixed_laplace_scale, log_likelihood
from ladder.model import build_model
from ladder.priors import reparameterise
from ladder.runs import load_run


def _model(source: str, device: torch.device):
    """A trained run folder, or ``normal`` / ``ladder`` for fresh networks."""
    if source in ("normal", "ladder"):
        torch.manual_seed(0)
        cfg = preset_config("paper", "mnist", source)
        model = build_model(cfg.model, "mnist", (1, 28, 28)).to(device).eval()
        if source == "ladder":
            train = load_dataset("mnist", "train", n=1000, device=device)
            with torch.no_grad():
                z = reparameterise(*model.encoder(train.take(1000)))
            model.prior.refit(z)
        return source, model
    cfg, model = load_run(source, str(device))
    return f"{cfg.model.prior} ({source})", model


def _measure(job: tuple) -> dict:
    source, what, n_images, n_is, n_inner, device_name = job
    torch.manual_seed(0)
    device = torch.device(device_name)
    name, model = _model(source, device)
    test = load_dataset("mnist", "test", n=n_images, device=device, seed=0)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start, cpu_start = time.perf_counter(), time.process_time()
    with fixed_laplace_scale(model, test):
        if what == "cross-entropy":
            stats = cross_entropy_statistics(model, test, n_is=n_is, batch_size=100)
            value, mc = stats["importance_sampled"], float("nan")
        else:
            stats = log_likelihood(model, test.take(n_images), n_samples=n_is, n_inner=n_inner)
            value, mc = stats["log_px"], stats["mc_stderr"]
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {"model": name, "what": what, "K": n_is,
            "inner": n_inner if what == "log p(x)" and "ladder" in name else "-",
            "images/s": n_images / seconds, "seconds": seconds, "cpu_s": cpu, "estimate": value,
            "mc_se": mc, "peak_MiB": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=["normal", "ladder"],
                        help="run folders, or normal / ladder for fresh networks")
    parser.add_argument("--n-images", type=int, default=100)
    parser.add_argument("--n-is", type=int, nargs="+", default=[100])
    parser.add_argument("--n-inner", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = str(select_device(args.device))

    jobs = []
    for source in args.runs:
        for k in args.n_is:
            jobs.append((source, "cross-entropy", args.n_images, k, 1, device))
            inners = args.n_inner if "normal" not in source else [1]
            jobs += [(source, "log p(x)", args.n_images, k, inner, device) for inner in inners]
    print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} thread(s), "
          f"{platform.processor() or platform.machine()}; {args.n_images} MNIST test images")
    memory = "peak MiB (CUDA)" if device.startswith("cuda") else "peak RSS rise MiB"
    header = f"{'model':<34} {'quantity':<14} {'K':>5} {'inner':>5} {'images/s':>9} " \
             f"{'s':>7} {'CPU s':>7} {'estimate':>10} {'MC s.e.':>8} {memory:>18}"
    print(header)
    print("-" * len(header))
    context = mp.get_context("spawn")
    for job in jobs:
        with context.Pool(1) as pool:  # a fresh process: its peak RSS is this job's
            r = pool.apply(_measure, (job,))
        print(f"{r['model']:<34} {r['what']:<14} {r['K']:>5} {r['inner']:>5} "
              f"{r['images/s']:>9.2f} {r['seconds']:>7.1f} {r['cpu_s']:>7.1f} {r['estimate']:>10.2f} "
              f"{r['mc_se']:>8.3f} {r['peak_MiB']:>18.0f}")


if __name__ == "__main__":
    main()
