"""The ``ladder`` command line: ``train``, ``evaluate``, ``sample``, ``train-classifier``, ``config``.

Run ``ladder COMMAND --help`` for each; ``python -m ladder`` is the same program.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ladder.config import PRESETS, PRIORS, ConfigError, load_config


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


def _compose(args: argparse.Namespace):
    overrides = list(args.overrides)
    if args.device:
        overrides.append(f"train.device={args.device}")
    return load_config(
        args.config, preset=args.preset, dataset=args.dataset, prior=args.prior,
        overrides=overrides,
    )


def _cmd_train(args: argparse.Namespace) -> int:
    from ladder.train import Trainer, train

    if args.resume:
        trainer = Trainer.resume(args.resume)
        print(f"resuming {args.resume} after epoch {trainer.epoch}", file=sys.stderr)
        trainer.fit()
    else:
        cfg = _compose(args)
        run_dir = args.run_dir or Path("runs") / (
            f"{cfg.data.dataset}-{cfg.model.prior}-{cfg.preset}-seed{cfg.train.seed}"
        )
        trainer = train(cfg, run_dir)
    last = trainer.history[-1]
    print(json.dumps({"run_dir": str(trainer.run_dir), "epoch": last["epoch"],
                      "test_elbo": last["test_elbo"], "test_mae": last["test_mae"]}))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from ladder.data import load_dataset
    from ladder.metrics import elbo_statistics
    from ladder.train import load_run

    started = time.perf_counter()
    cfg, model = load_run(args.run_dir, args.device or "auto")
    device = next(model.parameters()).device
    test = load_dataset(cfg.data.dataset, "test", root=cfg.data.root, n=cfg.data.n_test,
                        device=device, seed=cfg.train.seed)
    result = elbo_statistics(model, test, cfg.train.eval_batch_size, progress=True)
    result["seconds"] = time.perf_counter() - started
    out = args.out or Path(args.run_dir) / "evaluation.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    from torchvision.utils import save_image

    from ladder.data import load_dataset
    from ladder.plots.grids import samples_and_reconstructions
    from ladder.train import load_run

    cfg, model = load_run(args.run_dir, args.device or "auto")
    device = next(model.parameters()).device
    test = load_dataset(cfg.data.dataset, "test", root=cfg.data.root, n=args.n, device=device,
                        seed=cfg.train.seed)
    picture = samples_and_reconstructions(model, test.take(args.n), args.n, seed=args.seed)
    out = args.out or Path(args.run_dir) / "samples.png"
    save_image(picture, out)
    print(f"wrote {out}: test images | reconstructions | prior samples")
    return 0


def _cmd_train_classifier(args: argparse.Namespace) -> int:
    from ladder.classifier import save_classifier, train_classifier
    from ladder.data import load_dataset

    train_set = load_dataset(args.dataset, "train", root=args.root)
    test_set = load_dataset(args.dataset, "test", root=args.root)
    model, acc = train_classifier(
        train_set.take(len(train_set)), train_set.labels, test_set.take(len(test_set)),
        test_set.labels, epochs=args.epochs, seed=args.seed, device=args.device or "cpu",
    )
    path = save_classifier(model, train_set.name, acc)
    print(json.dumps({"dataset": train_set.name, "test_accuracy": acc, "path": str(path)}))
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    import yaml

    print(yaml.safe_dump(_compose(args).to_dict(), sort_keys=False), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``ladder`` command."""
    parser = argparse.ArgumentParser(
        prog="ladder", description="LaDDer: a VAE with a generative prior (Lin & Clark, BMVC 2020)."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train one VAE with one prior (Algorithm 1)")
    _config_arguments(p)
    p.add_argument("--run-dir", type=Path, help="run folder (default runs/DATASET-PRIOR-PRESET-seedN)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue an interrupted run")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="test ELBO and per-pixel error of a run (Table 3)")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--out", type=Path, help="JSON file (default RUN_DIR/evaluation.json)")
    p.add_argument("--device")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("sample", help="PNG grid: test images, reconstructions, prior samples")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="PNG file (default RUN_DIR/samples.png)")
    p.add_argument("--device")
    p.set_defaults(func=_cmd_sample)

    p = sub.add_parser("train-classifier", help="train the evaluation classifier of a dataset")
    p.add_argument("--dataset", required=True, help="mnist or fashion")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--root", help="data root (default $LADDER_DATA)")
    p.add_argument("--device")
    p.set_defaults(func=_cmd_train_classifier)

    p = sub.add_parser("config", help="print the composed config as YAML")
    _config_arguments(p)
    p.set_defaults(func=_cmd_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ladder`` and ``python -m ladder``; user errors print one line, exit 2."""
    from ladder.checkpoint import CheckpointError
    from ladder.data import DatasetNotFoundError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, CheckpointError, DatasetNotFoundError, FileExistsError) as err:
        print(f"ladder {args.command}: error: {err}", file=sys.stderr)
        return 2
