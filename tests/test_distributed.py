"""ladder.distributed: one process is the identity, the shares of a batch partition it, and two
processes under torchrun (gloo, on the CPU) train LaDDer as one process does on the same global
batch, and resume to the same weights."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ladder import distributed
from ladder.distributed import SINGLE, Shard

SCRIPT = Path(__file__).parent / "distributed" / "train_tiny.py"
#: DDP against one process after 9 Adam steps: every weight within one Adam step's size (lr
#: 5e-4). Measured 4.9e-5; with each process training alone (no gradient average) 8e-3.
TOLERANCE = 5e-4


@given(st.integers(1, 8), st.integers(1, 64))
def test_the_shares_of_a_batch_partition_it_in_order(world_size, per_process):
    n = world_size * per_process
    rows = [list(range(n))[Shard(rank, world_size).rows(n)] for rank in range(world_size)]
    assert sum(rows, []) == list(range(n)) and {len(r) for r in rows} == {per_process}


def test_one_process_is_the_identity():
    torch.manual_seed(3)
    expected = torch.randn(4, 5, 2)
    torch.manual_seed(3)
    assert torch.equal(distributed.batch_noise((4, 5, 2), torch.float32, torch.device("cpu")),
                       expected)
    values = torch.tensor([[1.0, float("nan")]])
    assert distributed.gather_rows(values, SINGLE) is values
    assert distributed.average(values, SINGLE) is values
    assert distributed.batch_mean(values) is values
    block = torch.nn.Linear(2, 2)
    assert distributed.data_parallel(block, SINGLE) is block


@pytest.mark.parametrize("settings, message", [
    ((100, "sequential", "mae"), "does not divide into 3 processes"),
    ((99, "joint", "mae"), "takes train.bca=sequential"),
    ((99, "sequential", "batch_mae"), "use mae"),
])
def test_unsupported_settings_are_refused_with_the_reason(settings, message):
    with pytest.raises(ValueError, match=message):
        distributed.check_settings(*settings, Shard(1, 3))
    distributed.check_settings(*settings, SINGLE)  # one process takes them all


def _run(*args: str, processes: int = 1) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    launch = ([sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={processes}"] if processes > 1 else [sys.executable])
    result = subprocess.run([*launch, str(SCRIPT), *args], env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, weights_only=True)
    return {k: v for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point()}


def test_two_processes_train_as_one_and_resume_to_the_same_weights(tmp_path, data_root):
    _run(str(tmp_path / "one"), str(tmp_path / "one.pt"))
    _run(str(tmp_path / "two"), str(tmp_path / "two.pt"), processes=2)
    one, two = _weights(tmp_path / "one.pt"), _weights(tmp_path / "two.pt")
    assert one.keys() == two.keys() and len(one) > 20
    gap = max((one[k] - two[k]).abs().max().item() for k in one)
    assert gap < TOLERANCE, f"DDP and one process differ by {gap:.2e}"

    _run(str(tmp_path / "resumed"), str(tmp_path / "resumed.pt"), "--stop-after", "1",
         processes=2)
    assert not (tmp_path / "resumed.pt").exists()  # stopped after epoch 1, before the end
    _run(str(tmp_path / "resumed"), str(tmp_path / "resumed.pt"), processes=2)
    resumed = _weights(tmp_path / "resumed.pt")
    assert all(torch.equal(resumed[k], two[k]) for k in two)
