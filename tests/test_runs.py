"""ladder.runs: a run folder's files, its lock, and finding evaluated runs."""

import json
import subprocess
import sys

import pytest
import yaml

from ladder.config import ConfigError, preset_config
from ladder.runs import RunDir, RunInUseError, find_runs, run_lock

_HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0)
os.write(fd, str(os.getpid()).encode())
print("locked", flush=True)
time.sleep(120)
"""


def _fake_run(folder, prior="normal", seed=0, evaluated=True):
    cfg = preset_config("quick", "mnist", prior)
    cfg.train.seed = seed
    folder.mkdir(parents=True)
    (folder / RunDir.CONFIG).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    (folder / RunDir.METRICS).write_text(json.dumps({"epoch": 1}) + "\n")
    if evaluated:
        (folder / RunDir.EVALUATION).write_text(json.dumps({"metrics": {"elbo": {"elbo": 1.0}}}))
    return RunDir(folder)


def test_a_run_dir_names_and_reads_its_files(tmp_path):
    run = _fake_run(tmp_path / "a", prior="gmm", seed=3)
    assert run.checkpoint == tmp_path / "a" / "checkpoint.pt"
    assert run.read_config().model.prior == "gmm" and run.read_config().train.seed == 3
    assert run.read_records() == [{"epoch": 1}]
    assert run.read_evaluation()["metrics"]["elbo"]["elbo"] == 1.0
    assert RunDir(tmp_path / "empty").read_records() == []
    assert RunDir(tmp_path / "empty").read_evaluation() is None
    (tmp_path / "a" / RunDir.CONFIG).write_text("model: [1, 2]\n")
    with pytest.raises(ConfigError, match=r"a/config.yaml is not a valid run config"):
        run.read_config()


def test_find_runs_returns_the_evaluated_folders_in_path_order(tmp_path):
    _fake_run(tmp_path / "b" / "seed1", seed=1)
    _fake_run(tmp_path / "a", seed=0)
    _fake_run(tmp_path / "c", evaluated=False)
    assert [r.path.relative_to(tmp_path).as_posix() for r in find_runs(tmp_path)] == [
        "a", "b/seed1"]
    with pytest.raises(FileNotFoundError, match="not a folder of runs"):
        find_runs(tmp_path / "missing")


def test_the_lock_refuses_a_second_holder_and_a_dead_one_does_not_block(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(tmp_path / RunDir.LOCK)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunInUseError, match=rf"in use .*pid {holder.pid}\b.*--resume"):
            with run_lock(tmp_path):
                pass
    finally:
        holder.kill()
        holder.wait()
    with RunDir(tmp_path).lock() as folder, run_lock(tmp_path):  # re-entrant in one process
        assert folder == tmp_path
