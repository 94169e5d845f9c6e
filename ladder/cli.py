"""The ``ladder`` command line: ``train``, ``evaluate``, ``diagnose``, ``sample``, ``slp``,
``train-classifier``, ``config``, ``reproduce``, ``report``.

Run ``ladder COMMAND --help`` for each; ``python -m ladder`` is the same program. An error is one
line on stderr, ``ladder CMD: error: ...``, saying what is wrong and what to do; the exit status is 2
for bad input (options, config, files, a diverged training run) and 1 for a fault of the program.
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
import typing
from collections.abc import Sequence
from pathlib import Path

import ladder.cli_commands as commands
from ladder.config import EVALUATION
from ladder.config_checks import PRESETS, PRIORS
from ladder.experiments.manifest import SLURM_RESOURCES

MAX_SEED = 2**64 - 1  # torch's generators take seeds in [0, 2**64)
MAX_GRID = 10_000  # `ladder sample --n`: the smallest test split (MNIST, Fashion)
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, PermissionError,
               NotADirectoryError, IsADirectoryError)
"""Bad input: ConfigError, CheckpointError, DatasetNotFoundError ... and unusable user paths.
With TrainingDivergedError they exit with status 2."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (exit status 2)."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _int_between(low: int, high: int) -> typing.Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not between {low} and {high}")
        return value

    return parse


def _config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="a YAML file under configs/ (or your own)")
    parser.add_argument("--preset", choices=PRESETS, help="paper (SM E), reference or quick")
    parser.add_argument("--dataset", help="mnist, fashion or celeba")
    parser.add_argument("--prior", choices=PRIORS)
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override one setting, e.g. --set train.epochs=3 (repeatable)",
    )
    parser.add_argument("--device", help="auto, cpu, cuda or mps (same as --set train.device=...)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``ladder`` command."""
    parser = _Parser(
        prog="ladder", description="LaDDer: a VAE with a generative prior (Lin & Clark, BMVC 2020)."
    )
    parser.add_argument("--debug", action="store_true",
                        help="on an error, show the traceback instead of one line")
    debug = argparse.ArgumentParser(add_help=False)  # --debug after the command, too
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="on an error, show the traceback instead of one line")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, **kwargs: typing.Any) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[debug], **kwargs)

    p = command("train", help="train one VAE with one prior (Algorithm 1)")
    _config_arguments(p)
    p.add_argument("--run-dir", type=Path, help="run folder (default runs/DATASET-PRIOR-PRESET-seedN)")
    p.add_argument(
        "--resume", type=Path, metavar="RUN_DIR",
        help="continue a run from its checkpoint; --set (and --device) may change train.epochs and "
             "the optimiser's settings (e.g. a lower train.lr after a divergence), which the run "
             "records; changes to the model or data are refused (see ladder.resume.RESUMABLE_KEYS)",
    )
    p.set_defaults(func=commands.cmd_train)

    p = command(
        "evaluate",
        help="Tables 1-3 and more for trained runs; writes RUN_DIR/evaluation.json",
        description=(
            "Evaluate runs on the test split: ELBO and per-pixel error (Table 3), E_q(z)[log p(z)]"
            " two ways (Table 2), -log p(x) by importance sampling, the Fréchet classifier"
            " distance (FCD) of generated and reconstructed images with the real-vs-real floor"
            " (Table 1, SM Table 1), precision/recall/density/coverage, and NMI/ARI of the"
            " prior's components against the classes (Fig 4). Writes one JSON per run with its"
            " provenance and prints a Markdown table. The defaults are the paper protocol"
            " (ladder.config.EVALUATION); on a CPU lower them, as the quick and medium scales of"
            " experiments/manifest.yaml do."
        ),
    )
    p.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR",
                   help="run folder(s); several give a table with one column per run")
    p.add_argument("--n-samples", type=int, metavar="N",
                   help="images per side for FCD and PRDC: generated, reconstructed, test and "
                        f"train (default {EVALUATION.n_samples}; compare FCDs only at equal N)")
    p.add_argument("--n-is", type=int, metavar="K",
                   help=f"importance samples for log p(z) and log p(x) (default {EVALUATION.n_is})")
    p.add_argument("--n-nll", type=int, metavar="N",
                   help="test images for -log p(x), a seeded class-balanced subset (default "
                        f"{EVALUATION.n_nll}; 0 skips it)")
    p.add_argument("--n-inner", type=int, metavar="K",
                   help="inner samples t ~ q(t|z) of the nested log p(x) for the generative "
                        f"priors (default {EVALUATION.n_inner})")
    p.add_argument("--n-test", type=int, metavar="N",
                   help="a seeded class-balanced subset of the test split (default: all of it)")
    p.add_argument("--classifier", type=Path, metavar="FILE",
                   help="evaluation classifier weights (default: the newest cached one for the "
                        "dataset; train one with `ladder train-classifier`)")
    p.add_argument("--inception-weights", type=Path, metavar="FILE",
                   help="CelebA only: local Inception weights for standard FID")
    p.add_argument("--seed", type=_int_between(0, MAX_SEED),
                   help="evaluation seed (default: the run's seed)")
    p.add_argument("--out", type=Path, help="JSON file (default RUN_DIR/evaluation.json)")
    p.add_argument("--device", help="auto, cpu, cuda or mps (default: the run's device)")
    p.add_argument("--no-grid", action="store_true",
                   help="do not save RUN_DIR/evaluation-samples.png")
    p.add_argument("--sample-noise", action=argparse.BooleanOptionalAction, default=None,
                   help="hierarchical and LaDDer priors: generate with (--sample-noise) or "
                        "without (--no-sample-noise, the reference code) the noise of p(z|t) "
                        "(default: the run's model.prior_vae.sample_noise)")
    p.add_argument("--frozen-latent", action="store_true",
                   help="instead of the evaluation: fit every prior family to the run's frozen "
                        "training codes and score log p(z) on its test codes (Fig 2's protocol "
                        "at any d_z; --n-is importance samples, default 256); writes "
                        "RUN_DIR/frozen_latent.json")
    p.add_argument("--prior-epochs", type=_int_between(1, 10_000), default=10, metavar="N",
                   help="with --frozen-latent: epochs fitting each prior (default 10; paper's "
                        "Fig 2: 50)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=commands.cmd_evaluate)

    p = command(
        "diagnose",
        help="is a run healthy? active latent dimensions, dead outputs, stall and collapse",
        description=(
            "Diagnose a run folder on its test images (ladder.diagnose): active dimensions of z"
            " and t, KL per dimension of z, the share of posterior stds on their floor, dead"
            " output pixels, the pixel error against the all-black image's, and the prior's"
            " components; then what stalled or collapsed and what to try."
        ),
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    p.add_argument("--n", type=_int_between(2, MAX_GRID), default=1000,
                   help=f"test images, a seeded class-balanced subset, 2 to {MAX_GRID} "
                        "(default 1000)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--device", help="auto, cpu, cuda or mps (default: the run's device)")
    p.set_defaults(func=commands.cmd_diagnose)

    p = command("sample", help="PNG grid: test images, reconstructions, prior samples")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--n", type=_int_between(1, MAX_GRID), default=100,
                   help=f"images of each kind, 1 to {MAX_GRID} (default 100)")
    p.add_argument("--seed", type=_int_between(0, MAX_SEED), default=0)
    p.add_argument("--out", type=Path, help="PNG file (default RUN_DIR/samples.png)")
    p.add_argument("--device")
    p.set_defaults(func=commands.cmd_sample)

    p = command(
        "slp",
        help="shortest likely path against the straight line (Fig 5) for trained runs",
        description=(
            "For random pairs of test images, the shortest likely path of Eq (9) against linear"
            " interpolation, in latent space and on the decoded frames (book chapter 5), as one"
            " Markdown table over the runs, with the cached evaluation classifier."
        ),
    )
    p.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR")
    p.add_argument("--pairs", type=_int_between(1, MAX_GRID), default=100,
                   help="random test pairs per run (default 100)")
    p.add_argument("--preset", default="reference",
                   help="the SLP optimiser's settings, ladder.slp_config.PRESETS: reference "
                        "(default) or paper")
    p.add_argument("--seed", type=_int_between(0, MAX_SEED), default=0,
                   help="picks the pairs and the bootstrap resamples")
    p.add_argument("--n-boot", type=_int_between(1, 100_000), default=100,
                   help="bootstrap resamples of the FCD difference (default 100)")
    p.add_argument("--figure", type=Path, help="save the distribution over pairs to this file")
    p.add_argument("--device", help="auto, cpu, cuda or mps (default: the run's device)")
    p.set_defaults(func=commands.cmd_slp)

    p = command("train-classifier", help="train the evaluation classifier of a dataset")
    p.add_argument("--dataset", required=True, help="mnist or fashion (or an alias: fmnist ...)")
    p.add_argument("--epochs", type=_int_between(1, 10_000),
                   help="training epochs (default: train_classifier's)")
    p.add_argument("--seed", type=_int_between(0, MAX_SEED), default=0)
    p.add_argument("--root", help="data root (default $LADDER_DATA)")
    p.add_argument("--device")
    p.set_defaults(func=commands.cmd_train_classifier)

    p = command("config", help="print the composed config as YAML")
    _config_arguments(p)
    p.set_defaults(func=commands.cmd_config)

    p = command(
        "reproduce",
        help="run the paper's experiments (experiments/manifest.yaml) that are not finished",
        description=(
            "Execute every run of experiments/manifest.yaml at one scale that has not finished,"
            " one papermill execution of an experiments/ notebook per run, into"
            " runs/SCALE/RUN_ID/ (executed notebook, log.txt, run folder, done.json last)."
            " Finished runs are never redone; an interrupted one is executed again and resumes"
            " from its checkpoint. CelebA runs need a CUDA GPU and are skipped, with the reason,"
            " without one. Scales: quick (the quick preset, 10k images for 3 epochs; at most 3 min"
            " per run on a 2-core CPU), medium (the paper's model on 20k images for 6 epochs; at"
            " most 15 min per run there), paper (SM E exactly; meant for a GPU)."
        ),
    )
    p.add_argument("--scale", choices=("quick", "medium", "paper"), default="quick")
    p.add_argument("--only", metavar="PATTERN",
                   help="comma-separated shell patterns on run ids or experiment names, e.g. "
                        "'mnist-*-seed0' or 'fig2,fig4' (the runs they need come along)")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="runs in parallel, each with cores/N torch threads, at most "
                        "$OMP_NUM_THREADS where that is set (default 1)")
    p.add_argument("--runs", type=Path, default=Path("runs"), help="runs root (default runs/)")
    p.add_argument("--results", type=Path, default=Path("results"),
                   help="results root (default results/): a run landed under "
                        "results/SCALE/runs/ is done")
    p.add_argument("--manifest", type=Path, help="default: experiments/manifest.yaml")
    p.add_argument("--list", action="store_true", help="list the runs and their status; run nothing")
    p.add_argument("--launcher", choices=("local", "slurm"), default="local",
                   help="local (default): run here, --jobs at a time, until done; slurm: submit "
                        "one SLURM job per missing run (submitit) and return")
    p.add_argument("--slurm", action="append", default=[], metavar="KEY=VALUE",
                   help="a job's SLURM resource, over the scale's `slurm` section of the "
                        f"manifest: {', '.join(SLURM_RESOURCES)} (repeatable)")
    p.add_argument("--status", action="store_true",
                   help="how many runs are done, queued, running, failed or new (the SLURM "
                        "queue and the run folders), and each unfinished run; run nothing")
    p.set_defaults(func=commands.cmd_reproduce)

    p = command(
        "report",
        help="tables (Markdown and CSV) of finished runs: any run folders, or a scale's batch",
        description=(
            "With --runs DIR alone: one Markdown table of every evaluated run folder under DIR "
            "(`ladder train` then `ladder evaluate`), one row per config with its seeds pooled "
            "(mean ± std). With --scale: aggregate the manifest's finished runs of that scale into "
            "one table per paper table (mean ± std over seeds, the paper's values beside ours, "
            "each row citing its runs; each table states its scale, seeds, device, commit and "
            "total run time), copy the figures, and land each finished run's small text files, "
            "under results/SCALE/."
        ),
    )
    p.add_argument("--scale", choices=("quick", "medium", "paper"),
                   help="the batch scale to tabulate into results/SCALE/")
    p.add_argument("--runs", type=Path,
                   help="the run folders (default: . without --scale, runs/ with it)")
    p.add_argument("--results", type=Path, default=Path("results"),
                   help="with --scale: output root (default results/)")
    p.add_argument("--manifest", type=Path, help="with --scale: default experiments/manifest.yaml")
    p.set_defaults(func=commands.cmd_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ladder`` and ``python -m ladder``: the exit status (module docstring)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help (0) or a usage error, already printed on one line (2)
        return stop.code if isinstance(stop.code, int) else 0
    if args.debug:
        return args.func(args)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"ladder {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        state = sys.modules.get("ladder.trainer_state")  # imported wherever training could diverge
        diverged = state is not None and isinstance(err, state.TrainingDivergedError)
        if isinstance(err, USER_ERRORS) or diverged:
            print(f"ladder {args.command}: error: {commands.one_line(err)}", file=sys.stderr)
            return 2
        print(f"ladder {args.command}: internal error: {type(err).__name__}: {commands.one_line(err)} "
              f"(rerun with `ladder --debug {args.command} ...` for the traceback, and please "
              "report it)", file=sys.stderr)
        return 1
