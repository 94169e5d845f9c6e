"""A few steps of LaDDer on 512 MNIST images, by tests/test_distributed.py, under torchrun or
alone: ``train_tiny.py RUN_DIR OUT [--stop-after EPOCH]``. Rank 0 saves the weights to OUT.
``--stop-after`` stops the run, as a kill would, once that epoch's checkpoint is written."""

from __future__ import annotations

import argparse

import torch

from ladder.config import preset_config
from ladder.distributed import is_main_process
from ladder.train import Trainer, train

SETTINGS = {"n_train": 512, "n_test": 128, "epochs": 2, "batch_size": 128, "progress": False,
            "prior_finetune_epochs": 1}


class Stop(Exception):
    """The run was stopped on purpose."""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("out")
    parser.add_argument("--stop-after", type=int)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.stop_after is not None:
        fit_epoch = Trainer.run_epoch

        def run_epoch(self: Trainer) -> dict:
            if self.epoch == args.stop_after:
                raise Stop(f"stopped after epoch {self.epoch}")
            return fit_epoch(self)

        Trainer.run_epoch = run_epoch
    cfg = preset_config("quick", "mnist", "ladder", **SETTINGS)
    try:
        trainer = train(cfg, args.run_dir)
    except Stop:
        return
    if is_main_process():
        torch.save(trainer.model.state_dict(), args.out)


if __name__ == "__main__":
    main()
