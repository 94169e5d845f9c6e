import os
import stat

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ladder.checkpoint import (
    CheckpointError,
    OutputPathError,
    atomic_write,
    check_writable,
    ensure_folder,
    file_sha256,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)


def _payload():
    return {"epoch": 1, "config": {"a": [1, 2]}, "model": {"w": torch.arange(3.0)}}


def _trainer_like_payload():
    """The structure of Trainer.state() (model, Adam state, random state, history) at a few kB."""
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    optimiser = torch.optim.Adam(net.parameters())
    net(torch.randn(4, 3)).sum().backward()
    optimiser.step()
    return {"epoch": 1, "config": {"train": {"lr": 1e-3, "betas": [0.9, 0.999]}},
            "model": net.state_dict(), "optimizers": {"vae": optimiser.state_dict(), "prior": None},
            "rng": {"torch": torch.get_rng_state()}, "history": [{"epoch": 1, "test_elbo": 1.5}],
            "resumes": []}


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    return save_checkpoint(_trainer_like_payload(), tmp_path_factory.mktemp("c") / "c.pt")


def test_round_trip_is_weights_only(tmp_path):
    path = save_checkpoint(_payload(), tmp_path / "c.pt")
    data = load_checkpoint(path)
    assert data["epoch"] == 1 and torch.equal(data["model"]["w"], torch.arange(3.0))
    assert os.listdir(tmp_path) == ["c.pt"]  # the temporary file was renamed away


@given(st.integers(1, 1000))
@settings(max_examples=10, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_digest_is_of_the_bytes_the_checkpoint_was_loaded_from(tmp_path, epoch):
    path = save_checkpoint({**_payload(), "epoch": epoch}, tmp_path / "c.pt")
    data, digest = read_checkpoint(path)
    save_checkpoint({**_payload(), "epoch": epoch + 1}, path)  # replaced after the read
    assert data["epoch"] == epoch and digest != file_sha256(path)
    again, digest_again = read_checkpoint(path)
    assert again["epoch"] == epoch + 1 and digest_again == file_sha256(path)


def test_truncated_file_gives_a_clear_error(tmp_path):
    path = save_checkpoint(_payload(), tmp_path / "c.pt")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_a_pickled_object_is_refused_not_run(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"format": "ladder-checkpoint", "payload": _Evil()}, path)
    with pytest.raises(CheckpointError, match="weights-only"):
        load_checkpoint(path)
    assert "must never run" not in capsys.readouterr().out


def test_foreign_and_missing_files(tmp_path):
    torch.save({"hello": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a LaDDer checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "absent.pt")


def _loads_or_refuses(path):
    """load_checkpoint either returns a checkpoint or raises CheckpointError, nothing else."""
    try:
        data = load_checkpoint(path)
    except CheckpointError:
        return None
    assert data["format"] == "ladder-checkpoint"
    return data


def test_every_truncation_of_a_real_checkpoint_loads_or_is_refused(small_checkpoint, tmp_path):
    raw = small_checkpoint.read_bytes()
    path = tmp_path / "cut.pt"
    loaded = []
    for n in range(len(raw) + 1):
        path.write_bytes(raw[:n])
        loaded.append(_loads_or_refuses(path) is not None)
        path.unlink()  # a new file each time: truncating one in place is slow on some file systems
    assert loaded == [False] * len(raw) + [True]  # only the whole file is a checkpoint


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=4096))
def test_random_bytes_are_refused(data, tmp_path):
    path = tmp_path / "random.pt"
    path.write_bytes(data)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(st.integers(0, 10**9), st.integers(1, 255)), min_size=1,
                      max_size=8))
def test_corrupted_bytes_load_or_are_refused(flips, small_checkpoint, tmp_path):
    raw = bytearray(small_checkpoint.read_bytes())
    for where, mask in flips:
        raw[where % len(raw)] ^= mask
    path = tmp_path / "flipped.pt"
    path.write_bytes(bytes(raw))
    _loads_or_refuses(path)


def test_atomic_write_never_follows_a_planted_link(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    run = tmp_path / "run"
    run.mkdir()
    for name in ("checkpoint.pt.tmp", "metrics.jsonl.tmp"):  # the old fixed temporary names
        (run / name).symlink_to(victim)
    save_checkpoint(_payload(), run / "checkpoint.pt")
    atomic_write(run / "metrics.jsonl", "{}\n")
    (run / "config.yaml").symlink_to(victim)  # a link at the target is replaced, not followed
    atomic_write(run / "config.yaml", b"a: 1\n")
    assert victim.read_text() == "precious"
    assert not (run / "config.yaml").is_symlink() and (run / "config.yaml").read_text() == "a: 1\n"
    assert sorted(os.listdir(run)) == ["checkpoint.pt", "checkpoint.pt.tmp", "config.yaml",
                                       "metrics.jsonl", "metrics.jsonl.tmp"]
    mode = stat.S_IMODE((run / "metrics.jsonl").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "victim").stat().st_mode)  # as a plain open gives


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = atomic_write(tmp_path / "out.json", "old")

    def fail(handle):
        handle.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, fail)
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["out.json"]


def test_output_paths_are_checked_before_the_work(tmp_path):
    with pytest.raises(OutputPathError, match=r"folder .*no-such does not exist"):
        check_writable(tmp_path / "no-such" / "e.json", "--out")
    with pytest.raises(OutputPathError, match="is a folder"):
        check_writable(tmp_path, "--out")
    assert check_writable(tmp_path / "e.json") == tmp_path / "e.json"
    assert not (tmp_path / "e.json").exists() and os.listdir(tmp_path) == []
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputPathError, match="cannot create run folder"):
        ensure_folder(tmp_path / "file" / "run", "run folder")
    assert ensure_folder(tmp_path / "a" / "b").is_dir()
