"""Where a LaDDer train step spends its time: one batch-256 step of Algorithm 1 (``Trainer._step``)
for a ladder of variants that each add one piece of LaDDer's machinery to the Normal prior, then
the operators of the full LaDDer step from ``torch.profiler``.

The differences between consecutive rows attribute LaDDer's extra cost:

* Normal -> hierarchical (sequential): the prior VAE's MLPs in both blocks and, in the sequential
  mode, the extra encoder pass that gives the prior block z from the updated encoder;
* hierarchical -> LaDDer n_mc=1: the DP-GMM term of Eq (7) with one t per z;
* LaDDer n_mc=1 -> n_mc=100: the Monte Carlo samples of t (the reference code's 100);
* LaDDer sequential -> joint: one backward pass for both gradient blocks (``train.bca=joint``).

Last, the Normal-prior trainer's step against ``bench_train``'s eager reference, operator by
operator, on the same network and memory format: what the trainer adds to the arithmetic.

    .venv/bin/python benchmarks/profile_step.py --threads 2            # about 2 minutes

``--prior gmm`` (or any prior) times and profiles one step of that prior alone instead (paper
preset, ``train.bca = sequential``, n_mc = 100, after one untimed epoch so the GMM is fitted).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from bench_train import EagerReference, make_trainer, time_trainer_epoch  # on sys.path
from torch.profiler import ProfilerActivity, profile

from ladder.data import load_dataset
from ladder.train import Trainer

VARIANTS = {  # name: (prior, train.bca, model.n_mc)
    "Normal": ("normal", "sequential", 100),
    "hierarchical, sequential": ("hierarchical", "sequential", 100),
    "LaDDer, sequential, n_mc=1": ("ladder", "sequential", 1),
    "LaDDer, sequential, n_mc=100": ("ladder", "sequential", 100),
    "LaDDer, joint, n_mc=100": ("ladder", "joint", 100),
}


def fitted_trainer(prior: str, bca: str, n_mc: int, train_set, test_set, device) -> Trainer:
    """``bench_train.make_trainer`` after one untimed epoch (so LaDDer's DP-GMM is fitted)."""
    trainer = make_trainer(train_set, test_set, device, prior, bca, n_mc)
    time_trainer_epoch(trainer)
    return trainer


def step_ms(trainer: Trainer, x: torch.Tensor, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        trainer._step(x, warmup=False)
        if x.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--top", type=int, default=15, help="operators listed")
    parser.add_argument("--prior", default=None, help="profile this prior's step alone")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    train_set = load_dataset("mnist", "train", n=1024, device=device)
    test_set = load_dataset("mnist", "test", n=256, device=device)
    x = train_set.take(256)
    if args.prior is not None:
        profile_prior(args.prior, train_set, test_set, device, x, args.repeats, args.top)
        return
    trainers = {name: fitted_trainer(*spec, train_set, test_set, device)
                for name, spec in VARIANTS.items()}
    for trainer in trainers.values():  # warm-up steps, not timed
        step_ms(trainer, x, 2)
    print(f"# profile_step: device {device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, batch 256, median of {args.repeats} steps")
    print("| variant | ms per step | vs Normal | added by this row |")
    print("|---|---|---|---|")
    base = previous = None
    for name, trainer in trainers.items():
        ms = step_ms(trainer, x, args.repeats)
        base = base or ms
        added = "" if previous is None else f"{ms - previous:+.0f} ms"
        print(f"| {name} | {ms:.0f} | {ms / base:.2f}x | {added} |")
        previous = ms
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step_ms(trainers["LaDDer, sequential, n_mc=100"], x, 3)
    print("\n# operators of 3 steps of LaDDer, sequential, n_mc=100 (self time)")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))
    compare_with_eager(train_set, test_set, device, x, args.repeats, args.top)


def profile_prior(prior: str, train_set, test_set, device, x: torch.Tensor, repeats: int,
                  top: int) -> None:
    """ms per step of ``prior``'s trainer and the operators of 3 of its steps (self time)."""
    trainer = fitted_trainer(prior, "sequential", 100, train_set, test_set, device)
    step_ms(trainer, x, 2)
    print(f"# profile_step: {prior}, device {device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, batch 256, n_mc 100: "
          f"{step_ms(trainer, x, repeats):.0f} ms per step (median of {repeats})")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step_ms(trainer, x, 3)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top))


def operator_ms(step: Callable[[], object], repeats: int) -> dict[str, float]:
    """Self CPU milliseconds per call of ``step``, per operator, from ``torch.profiler``."""
    for _ in range(2):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(repeats):
            step()
    return {e.key: e.self_cpu_time_total / repeats / 1000 for e in prof.key_averages()}


def compare_with_eager(train_set, test_set, device, x: torch.Tensor, repeats: int,
                       top: int) -> None:
    """The Normal-prior trainer's step against bench_train's eager reference, operator by
    operator, on the same network (SM E.1's ReLU and sigmoid) and memory format (channels_last)."""
    trainer = make_trainer(train_set, test_set, device, "normal", "sequential",
                           activations=("relu", "sigmoid"))
    reference = EagerReference(device, channels_last=True)
    x = x.contiguous(memory_format=torch.channels_last)
    ops = {"eager": operator_ms(lambda: reference.step(x), repeats),
           "trainer": operator_ms(lambda: trainer._step(x, warmup=False), repeats)}
    print(f"\n# Normal trainer against the eager reference, SM E.1 network, channels_last: "
          f"operators' self time per step, mean of {repeats}")
    print(f"total: eager {sum(ops['eager'].values()):.1f} ms, trainer "
          f"{sum(ops['trainer'].values()):.1f} ms")
    conv = ("aten::convolution_backward", "aten::mkldnn_convolution")
    print(f"convolutions: eager {sum(ops['eager'].get(k, 0) for k in conv):.1f} ms, trainer "
          f"{sum(ops['trainer'].get(k, 0) for k in conv):.1f} ms")
    print("| operator | eager ms | trainer ms | difference |\n|---|---|---|---|")
    names = set(ops["eager"]) | set(ops["trainer"])
    gap = {k: ops["trainer"].get(k, 0.0) - ops["eager"].get(k, 0.0) for k in names}
    for name in sorted(names, key=lambda k: -abs(gap[k]))[:top]:
        print(f"| {name} | {ops['eager'].get(name, 0.0):.2f} | {ops['trainer'].get(name, 0.0):.2f} "
              f"| {gap[name]:+.2f} |")


if __name__ == "__main__":
    main()
