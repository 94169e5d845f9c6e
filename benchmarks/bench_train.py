"""Training throughput (images/s) of the SM E.1 MNIST network, batch 256: the project's trainer
with the Normal prior and with the LaDDer prior, against a plain eager reference written here.

The reference is the simplest correct train step: the same network written out in plain
``nn.Sequential``, the Laplace loss with a learned scale, the analytic N(0, I) cross-entropy and one
Adam optimiser, in the default memory format. The variants run interleaved (each repeat times every
variant once, in turn) in one process, so a busy machine slows them alike; medians are printed.

Each trainer variant is timed over whole epochs of ``--n-train`` images, refit of the prior
included, evaluation excluded: that is what a user waits for. The machine's fp32 matrix-multiply rate
and the network's FLOPs per image give the fraction of the hardware limit reached.

Then the peak memory of one epoch of each variant, each in a fresh process: CUDA's
``max_memory_allocated`` on a GPU; on the CPU the rise of the process's peak resident set size
during the epoch (tracemalloc does not see torch's allocator).

    .venv/bin/python benchmarks/bench_train.py                 # about 5 minutes on 2 CPU cores
    .venv/bin/python benchmarks/bench_train.py --repeats 5 --n-train 10240 --device cuda

``--priors normal,gmm,vamp,hierarchical,ladder`` times the trainer with each named prior instead
(fp32, ``train.bca = sequential``, the paper preset's ``n_mc`` unless ``--n-mc`` is given), the
eager reference beside them, and splits each epoch into its steps and its end-of-epoch refit;
``--no-memory`` skips the peak-memory table.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import platform
import resource
import statistics
import threading
import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ladder.config import preset_config
from ladder.data import load_dataset
from ladder.train import Trainer


class _Encoder(nn.Module):
    def __init__(self, d_z: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 64, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(64, 256, 3, 2, 1), nn.ReLU(), nn.Flatten(), nn.Linear(4096, 64), nn.ReLU(),
        )
        self.mu, self.sigma = nn.Linear(64, d_z), nn.Linear(64, d_z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([x[..., :2].flip(-1), x, x[..., -2:].flip(-1)], -1)  # symmetric pad 2 (W)
        x = torch.cat([x[..., :2, :].flip(-2), x, x[..., -2:, :].flip(-2)], -2)  # and (H)
        h = self.body(x)
        return self.mu(h), torch.relu(self.sigma(h)) + 1e-3


def _decoder(d_z: int = 16) -> nn.Module:
    return nn.Sequential(
        nn.Linear(d_z, 4096), nn.ReLU(), nn.Unflatten(1, (4096, 1, 1)), nn.PixelShuffle(4),
        nn.Conv2d(256, 256, 3, 1, 1), nn.ReLU(), nn.PixelShuffle(2),
        nn.Conv2d(64, 64, 3, 1, 1), nn.ReLU(), nn.PixelShuffle(2),
        nn.Conv2d(16, 16, 3, 1, 1), nn.ReLU(), nn.PixelShuffle(2),
        nn.Conv2d(4, 1, 5), nn.Sigmoid(),
    )


class EagerReference:
    """A plain VAE train step: Laplace likelihood, N(0, I) prior, one Adam."""

    def __init__(self, device: torch.device, channels_last: bool = False) -> None:
        self.encoder, self.decoder = _Encoder().to(device), _decoder().to(device)
        if channels_last:
            self.encoder.to(memory_format=torch.channels_last)
            self.decoder.to(memory_format=torch.channels_last)
        self.log_sigma = nn.Parameter(torch.tensor(math.log(0.5), device=device))
        params = [*self.encoder.parameters(), *self.decoder.parameters(), self.log_sigma]
        self.optimiser = torch.optim.Adam(params, lr=5e-4)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        mu, std = self.encoder(x)
        z = mu + std * torch.randn_like(std)
        x_hat = self.decoder(z)
        sigma = self.log_sigma.exp()
        rec = -(x - x_hat).abs().flatten(1).sum(1) / sigma - 784 * torch.log(2 * sigma)
        entropy = std.log().sum(1)
        cross_entropy = -0.5 * (mu.square() + std.square()).sum(1)
        return -(rec + entropy + cross_entropy).mean()

    def step(self, x: torch.Tensor) -> None:
        loss = self.loss(x)
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        self.optimiser.step()


def matmul_gflops(device: torch.device, n: int = 2048, repeats: int = 5) -> float:
    """The best fp32 GFLOP/s of an n x n matrix product on ``device``."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    best = 0.0
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        a @ b
        _sync(device)
        best = max(best, 2 * n**3 / (time.perf_counter() - start) / 1e9)
    return best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_step_flops(reference: EagerReference, batch: torch.Tensor) -> float:
    """FLOPs of one forward and backward pass of the network per image."""
    with FlopCounterMode(display=False) as counter:
        reference.loss(batch).backward()
    reference.optimiser.zero_grad(set_to_none=True)
    return counter.get_total_flops() / batch.shape[0]


def make_trainer(train_set, test_set, device: torch.device, prior: str, bca: str,
                 n_mc: int | None = None, precision: str = "fp32",
                 activations: tuple[str, str] | None = None) -> Trainer:
    """A trainer of the paper's MNIST model (``n_mc``: the prior term's Monte Carlo samples,
    default the preset's; ``precision``: ``train.precision``; ``activations``: the data nets'
    hidden and output activations, default the preset's)."""
    cfg = preset_config("paper", "mnist", prior)
    if activations is not None:
        cfg.model.activation, cfg.model.output_activation = activations
    cfg.train.progress = False
    cfg.train.bca = bca
    cfg.train.precision = precision
    cfg.train.device = str(device)
    cfg.train.epochs = 10_000
    if n_mc is not None:
        cfg.model.n_mc = n_mc
    return Trainer(cfg, "/tmp/ladder-bench-train", train_set, test_set)


def time_trainer_epoch(trainer: Trainer) -> float:
    """Seconds of one epoch: the batches and the end-of-epoch refit (no evaluation)."""
    return sum(time_trainer_epoch_parts(trainer))


def time_trainer_epoch_parts(trainer: Trainer) -> tuple[float, float]:
    """Seconds of one epoch's batches and of its end-of-epoch refit (no evaluation)."""
    _sync(trainer.device)
    start = time.perf_counter()
    train = trainer._train_batches(trainer.epoch, warmup=False)
    _sync(trainer.device)
    batches = time.perf_counter() - start
    trainer.model.prior.refit(trainer._refit_encodings(train["z_epoch"], trainer.epoch))
    _sync(trainer.device)
    trainer.epoch += 1
    return batches, time.perf_counter() - start - batches


def time_reference_epoch(reference: EagerReference, images: torch.Tensor, batch: int) -> float:
    device = images.device
    order = torch.randperm(len(images), device=device)
    _sync(device)
    start = time.perf_counter()
    for idx in order[: len(images) - len(images) % batch].split(batch):
        reference.step(images[idx])
    _sync(device)
    return time.perf_counter() - start


VARIANTS = {  # name: (prior, train.bca, n_mc, train.precision); None is the eager reference
    "eager reference (Normal)": None,
    "trainer, Normal prior": ("normal", "sequential", None, "fp32"),
    "trainer, LaDDer, sequential": ("ladder", "sequential", None, "fp32"),
    "trainer, LaDDer, joint": ("ladder", "joint", None, "fp32"),
    "trainer, Normal prior, bf16": ("normal", "sequential", None, "bf16"),
    "trainer, LaDDer, sequential, bf16": ("ladder", "sequential", None, "bf16"),
    "trainer, LaDDer, joint, bf16": ("ladder", "joint", None, "bf16"),
}


PRIOR_LABELS = {"normal": "Normal", "gmm": "GMM", "vamp": "Vamp",
                "hierarchical": "hierarchical", "ladder": "LaDDer"}


def prior_variants(priors: list[str], n_mc: int | None = None
                   ) -> dict[str, tuple[str, str, int | None, str] | None]:
    """``--priors``: the eager reference and the fp32 sequential trainer of each prior (Normal's
    always included, as every ratio's base), with ``n_mc`` Monte Carlo samples of the prior term
    (default the preset's)."""
    unknown = sorted(set(priors) - set(PRIOR_LABELS))
    if unknown:
        raise SystemExit(f"--priors: unknown prior(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(PRIOR_LABELS)}")
    chosen = ["normal", *(p for p in priors if p != "normal")]
    return {"eager reference (Normal)": None,
            **{f"trainer, {PRIOR_LABELS[p]} prior": (p, "sequential", n_mc, "fp32")
               for p in chosen}}


def normal_of(name: str) -> str:
    """The Normal-prior trainer of the same precision as variant ``name``."""
    return "trainer, Normal prior" + (", bf16" if name.endswith("bf16") else "")


def peak_memory(job: tuple[tuple | None, int, str, int | None]) -> float:
    """MiB: the peak memory of one epoch of the variant ``spec`` (run in a fresh process)."""
    spec, n_train, device_name, threads = job
    if threads:
        torch.set_num_threads(threads)
    device = torch.device(device_name)
    torch.manual_seed(0)
    train_set = load_dataset("mnist", "train", n=n_train, device=device)
    test_set = load_dataset("mnist", "test", n=256, device=device)
    if spec is None:
        reference, images = EagerReference(device), train_set.take(len(train_set))
    else:
        trainer = make_trainer(train_set, test_set, device, *spec)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    with ResidentPeak() as rss:
        if spec is None:
            time_reference_epoch(reference, images, 256)
        else:
            time_trainer_epoch(trainer)
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return rss.rise_mib


class ResidentPeak:
    """The rise of the resident set size above its value on entry, sampled every millisecond
    from /proc/self/statm (Linux) in a thread: an earlier, higher peak of the process (loading
    the data) does not hide the epoch's own, as it would with ``ru_maxrss``."""

    def __enter__(self) -> ResidentPeak:
        self._page = resource.getpagesize()
        self._start = self._peak = self._resident()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.rise_mib = (self._peak - self._start) / 2**20

    def _resident(self) -> int:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * self._page

    def _sample(self) -> None:
        while not self._stop.wait(0.001):
            self._peak = max(self._peak, self._resident())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=5120, help="images per timed epoch")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--priors", default=None,
                        help="comma-separated priors to time instead of the default variants")
    parser.add_argument("--n-mc", type=int, default=None,
                        help="with --priors: the prior term's Monte Carlo samples (default: the "
                             "paper preset's 100)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory table")
    args = parser.parse_args()
    if args.n_mc is not None and (args.priors is None or args.n_mc < 1):
        raise SystemExit("--n-mc: give a positive number of samples, with --priors")
    specs = (VARIANTS if args.priors is None
             else prior_variants(args.priors.split(","), args.n_mc))
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    train_set = load_dataset("mnist", "train", n=args.n_train, device=device)
    test_set = load_dataset("mnist", "test", n=256, device=device)
    images = train_set.take(len(train_set))
    reference = EagerReference(device)
    variants = {name: None if spec is None else make_trainer(train_set, test_set, device, *spec)
                for name, spec in specs.items()}
    # Warm-up epoch each (allocator, first DP-GMM fit from k-means), not timed.
    for trainer in variants.values():
        (time_reference_epoch(reference, images, 256) if trainer is None
         else time_trainer_epoch(trainer))
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    refit_seconds: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, trainer in variants.items():
            batches, refit = ((time_reference_epoch(reference, images, 256), 0.0)
                              if trainer is None else time_trainer_epoch_parts(trainer))
            seconds[name].append(batches + refit)
            refit_seconds[name].append(refit)
    n_images = args.n_train - args.n_train % 256
    rate = {name: n_images / statistics.median(s) for name, s in seconds.items()}
    flops = train_step_flops(reference, images[:256])
    peak = matmul_gflops(device)
    base = rate["eager reference (Normal)"]
    print(f"# bench_train: {platform.processor() or platform.machine()}, device {device}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.repeats} repeats of {n_images} images, batch 256")
    print(f"# network: {flops / 1e6:.1f} MFLOP per image (forward + backward); "
          f"fp32 matmul peak {peak:.1f} GFLOP/s")
    print("| variant | images/s (median) | vs eager reference | vs Normal trainer (same precision) "
          "| GFLOP/s | of fp32 matmul peak |")
    print("|---|---|---|---|---|---|")
    for name, r in rate.items():
        print(f"| {name} | {r:.0f} | {r / base:.2f}x | {r / rate[normal_of(name)]:.2f}x | "
              f"{r * flops / 1e9:.1f} | {r * flops / 1e9 / peak:.0%} |")
    if args.priors is not None:
        steps = n_images // 256
        print("\n| variant | ms per step, refit included | ms per step, steps only | refit s "
              "| epoch vs Normal |\n|---|---|---|---|---|")
        for name in variants:
            total, refit = (statistics.median(seconds[name]),
                            statistics.median(refit_seconds[name]))
            print(f"| {name} | {1000 * total / steps:.0f} | {1000 * (total - refit) / steps:.0f} "
                  f"| {refit:.2f} | {rate[normal_of(name)] / rate[name]:.2f}x |")
    if args.no_memory:
        return
    memory = "peak MiB (CUDA)" if device.type == "cuda" else "peak RSS rise over one epoch, MiB"
    print(f"\n| variant | {memory} |\n|---|---|")
    context = mp.get_context("spawn")
    for name, spec in specs.items():
        with context.Pool(1) as pool:  # a fresh process: its peak RSS is this variant's
            mib = pool.apply(peak_memory, ((spec, args.n_train, str(device), args.threads),))
        print(f"| {name} | {mib:.0f} |")


if __name__ == "__main__":
    main()
