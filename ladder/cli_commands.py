"""The commands of ``ladder`` (:mod:`ladder.cli` parses the arguments): each takes the parsed
arguments and returns the exit status, importing what it needs when it runs so that ``ladder
--help`` stays fast."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ladder.config import ConfigError, load_config


def one_line(err: BaseException) -> str:
    """An exception's message on one line (a multi-line message is joined)."""
    return " ".join(line.strip() for line in str(err).splitlines() if line.strip()) or repr(err)


def _overrides(args: argparse.Namespace) -> list[str]:
    return [*args.overrides, *([f"train.device={args.device}"] if args.device else [])]


def _compose(args: argparse.Namespace):
    return load_config(
        args.config, preset=args.preset, dataset=args.dataset, prior=args.prior,
        overrides=_overrides(args),
    )


def cmd_train(args: argparse.Namespace) -> int:
    from ladder.train import Trainer, train

    if args.resume:
        given = [flag for flag, value in (("--config", args.config), ("--preset", args.preset),
                                          ("--dataset", args.dataset), ("--prior", args.prior),
                                          ("--run-dir", args.run_dir)) if value is not None]
        if given:
            raise ConfigError(
                f"{', '.join(given)} cannot be combined with --resume: a resumed run keeps the "
                f"model and data of {args.resume / 'config.yaml'}; change training settings with "
                "--set train.KEY=VALUE, or start a new run without --resume"
            )
        trainer = Trainer.resume(args.resume, _overrides(args))
        done, epochs = trainer.epoch, trainer.cfg.train.epochs
        if trainer.is_complete:
            print(f"{args.resume} has completed its {epochs} epochs; nothing to train (raise "
                  "train.epochs with --set to train more)", file=sys.stderr)
        else:
            changes = "; ".join(f"{key}: {old!r} -> {new!r}"
                                for key, (old, new) in trainer.pending_changes.items())
            print(f"resuming {args.resume} after epoch {done} of {epochs}"
                  + (f", changing {changes}" if changes else ""), file=sys.stderr)
        trainer.fit()
    else:
        cfg = _compose(args)
        run_dir = args.run_dir or Path("runs") / (
            f"{cfg.data.dataset}-{cfg.model.prior}-{cfg.preset}-seed{cfg.train.seed}"
        )
        trainer = train(cfg, run_dir)
    if not trainer.shard.is_main:  # under torchrun: rank 0 reports
        return 0
    last = trainer.records[-1]
    print(json.dumps({"run_dir": str(trainer.run_dir), "epoch": last["epoch"],
                      "test_elbo": last["test_elbo"], "test_mae": last["test_mae"]}))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import warnings

    from ladder.evaluate import EvaluationSkipped, evaluate_run
    from ladder.evaluation_file import summary_table
    from ladder.runs import RunDir

    if args.out is not None and len(args.run_dirs) > 1:
        print("ladder evaluate: error: --out needs a single RUN_DIR", file=sys.stderr)
        return 2
    if args.frozen_latent:
        return frozen_latent(args)
    warnings.simplefilter("ignore", EvaluationSkipped)  # printed below, once per run
    counts = {key: getattr(args, key) for key in ("n_samples", "n_is", "n_nll", "n_inner")
              if getattr(args, key) is not None}  # None: evaluate_run's defaults
    results = []
    for run_dir in args.run_dirs:
        started = time.perf_counter()
        try:
            data = evaluate_run(
                run_dir, device=args.device or "auto", n_test=args.n_test,
                classifier=args.classifier, inception_weights=args.inception_weights,
                seed=args.seed, out=args.out, grid=not args.no_grid,
                progress=not args.no_progress, sample_noise=args.sample_noise, **counts,
            )
        except ValueError as err:  # bad counts, a corrupt checkpoint or classifier file
            print(f"ladder evaluate: error: {run_dir}: {one_line(err)}", file=sys.stderr)
            return 2
        for note in data["notes"]:
            print(f"ladder evaluate: {run_dir}: skipped {note}", file=sys.stderr)
        out = args.out or RunDir(run_dir).evaluation
        print(f"wrote {out} ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
        results.append(data)
    names = [Path(r).name for r in args.run_dirs] if len(args.run_dirs) > 1 else None
    print(summary_table(results, names))
    return 0


def frozen_latent(args: argparse.Namespace) -> int:
    """``ladder evaluate --frozen-latent``: every prior fitted to each run's frozen codes."""
    from ladder.frozen_latent import frozen_latent_table, write_frozen_latent_comparison

    options = {"n_test": args.n_test, "epochs": args.prior_epochs, "seed": args.seed,
               "device": args.device or "auto", "progress": not args.no_progress}
    if args.n_is is not None:
        options["n_samples"] = args.n_is
    for run_dir in args.run_dirs:
        try:
            path, result = write_frozen_latent_comparison(run_dir, args.out, **options)
        except ValueError as err:
            print(f"ladder evaluate: error: {run_dir}: {one_line(err)}", file=sys.stderr)
            return 2
        print(f"wrote {path}", file=sys.stderr)
        print(frozen_latent_table(result))
    return 0


def cmd_diagnose(args: argparse.Namespace) -> int:
    from ladder.data import load_dataset
    from ladder.diagnose import diagnose, diagnosis_table, findings
    from ladder.runs import load_run

    cfg, model = load_run(args.run_dir, args.device or "auto")  # refuses non-finite weights
    device = next(model.parameters()).device
    test = load_dataset(cfg.data.dataset, "test", root=cfg.data.root, n=args.n, device=device,
                        seed=cfg.train.seed)
    result = diagnose(model, test.take(args.n), cfg.train.eval_batch_size)
    problems = findings(result, cfg.model.output_activation)
    if args.json:
        print(json.dumps({**result, "findings": problems}))
    else:
        print(diagnosis_table(result))
        print("\n".join(f"- {p}" for p in problems) or "no stall or collapse found")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from ladder.checkpoint import check_writable
    from ladder.data import load_dataset
    from ladder.evaluate import save_sample_grid
    from ladder.runs import load_run

    cfg, model = load_run(args.run_dir, args.device or "auto")  # refuses non-finite weights
    out = check_writable(args.out or Path(args.run_dir) / "samples.png",
                         "--out" if args.out else "sample grid")
    device = next(model.parameters()).device
    test = load_dataset(cfg.data.dataset, "test", root=cfg.data.root, n=args.n, device=device,
                        seed=cfg.train.seed)
    save_sample_grid(model, test.take(args.n), out, args.seed)
    print(f"wrote {out}: test images | reconstructions | prior samples")
    return 0


def cmd_slp(args: argparse.Namespace) -> int:
    from ladder.classifier_cache import load_classifier
    from ladder.data import load_dataset
    from ladder.runs import load_run
    from ladder.slp_config import resolve_preset
    from ladder.slp_eval import compare_slp_sp, comparison_table

    resolve_preset(args.preset)  # an unknown preset fails before any run is loaded
    results, loaded = {}, {}
    for run in args.run_dirs:
        started = time.perf_counter()
        cfg, model = load_run(run, args.device or "auto")
        device = next(model.parameters()).device
        key = (cfg.data.dataset, cfg.data.root, str(device))
        if key not in loaded:  # runs of one dataset share its test split and classifier
            loaded[key] = (load_dataset(cfg.data.dataset, "test", root=cfg.data.root,
                                        device=device), *load_classifier(cfg.data.dataset))
        test, clf, meta = loaded[key]
        name = f"{cfg.data.dataset}-{cfg.model.prior}"
        name = name if name not in results else Path(run).name
        results[name] = compare_slp_sp(
            model, test.take(len(test)), clf.to(device), n_pairs=args.pairs, preset=args.preset,
            seed=args.seed, n_boot=args.n_boot,
        )  # fmt: skip
        print(f"{run}: {name}, {args.pairs} pairs, classifier {meta['weights_hash']}, "
              f"{time.perf_counter() - started:.0f} s", flush=True)
    print(comparison_table(results))
    if args.figure:
        from ladder.plots.slp import plot_slp_vs_sp

        plot_slp_vs_sp(results).savefig(args.figure, dpi=120)
        print(f"wrote {args.figure}")
    return 0


def cmd_train_classifier(args: argparse.Namespace) -> int:
    from ladder.checkpoint import ensure_folder
    from ladder.classifier import classifier_dataset
    from ladder.classifier_cache import classifier_cache_dir, train_and_cache
    from ladder.device import select_device

    dataset = classifier_dataset(args.dataset)
    device = select_device(args.device or "cpu")
    ensure_folder(classifier_cache_dir(), "classifier cache folder")  # before the training
    options = {"epochs": args.epochs} if args.epochs else {}
    path, acc = train_and_cache(dataset, root=args.root, seed=args.seed, device=device, **options)
    print(json.dumps({"dataset": dataset, "test_accuracy": acc, "path": str(path)}))
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    import yaml

    print(yaml.safe_dump(_compose(args).to_dict(), sort_keys=False), end="")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from ladder.experiments.manifest import ManifestError, load_manifest
    from ladder.experiments.runner import list_runs, reproduce
    from ladder.experiments.slurm import SlurmUnavailableError, status_report, submit

    try:
        if args.list or args.status:
            show = status_report if args.status else list_runs
            print(show(args.scale, args.only, args.runs, load_manifest(args.manifest),
                       args.results))
            return 0
        if args.launcher == "slurm":
            submit(args.scale, args.only, args.runs, args.manifest, args.results, args.slurm)
            return 0
        if args.slurm:
            raise ManifestError("--slurm sets SLURM resources; add --launcher slurm")
        summary = reproduce(args.scale, args.only, args.jobs, args.runs, args.manifest,
                            results_root=args.results)
    except (ManifestError, SlurmUnavailableError) as err:
        print(f"ladder reproduce: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0 if summary.ok else 1


def cmd_report(args: argparse.Namespace) -> int:
    from ladder.experiments.manifest import ManifestError
    from ladder.experiments.report import report, report_folders

    try:
        if args.scale is None:
            print(report_folders(args.runs or Path(".")), end="")
            return 0
        report(args.scale, args.runs or Path("runs"), args.results, args.manifest)
    except (ManifestError, FileNotFoundError) as err:
        print(f"ladder report: error: {err}", file=sys.stderr)
        return 2
    return 0
