import pytest
import torch

from ladder.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


def _payload():
    return {"epoch": 1, "config": {"a": [1, 2]}, "model": {"w": torch.arange(3.0)}}


def test_round_trip_is_weights_only(tmp_path):
    path = save_checkpoint(_payload(), tmp_path / "c.pt")
    data = load_checkpoint(path)
    assert data["epoch"] == 1 and torch.equal(data["model"]["w"], torch.arange(3.0))
    assert not list(tmp_path.glob("*.tmp"))  # the temporary file was renamed away


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
