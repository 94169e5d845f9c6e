from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from ladder.config import canonical_dataset
from ladder.config_checks import DATASETS as CONFIG_DATASETS
from ladder.data import DATASETS, balanced_subset, load_dataset, read_idx
from ladder.data_root import DatasetCorruptError, DatasetNotFoundError, resolve_data_root
from ladder.image_sets import TensorImageSet

# ------------------------------------------------------------------------------ root and errors


def test_data_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("LADDER_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("LADDER_CACHE", raising=False)
    assert resolve_data_root(tmp_path / "arg") == tmp_path / "arg"  # argument first
    assert resolve_data_root() == tmp_path / "env"  # then the variable
    monkeypatch.delenv("LADDER_DATA")
    assert resolve_data_root() == tmp_path / "cache" / "ladder" / "data"  # then the cache
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_data_root() == tmp_path / "home" / ".cache" / "ladder" / "data"
    assert not (tmp_path / "home").exists()  # resolving creates nothing
    monkeypatch.setenv("LADDER_CACHE", str(tmp_path / "shared"))  # the package's one cache rule
    assert resolve_data_root() == tmp_path / "shared" / "data"


def test_missing_data_error_names_variable_and_layout(monkeypatch, tmp_path):
    monkeypatch.setenv("LADDER_DATA", str(tmp_path))
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("mnist")
    msg = str(err.value)
    assert isinstance(err.value, FileNotFoundError)
    assert "$LADDER_DATA" in msg and str(tmp_path) in msg
    assert str(Path("MNIST/raw/train-images-idx3-ubyte")) in msg
    assert "from Python, call load_dataset(..., download=True)" in msg  # the CLI has no such flag
    with pytest.raises(DatasetNotFoundError, match=r"FashionMNIST/raw/t10k-images-idx3-ubyte"):
        load_dataset("fashion", "test", root=tmp_path / "elsewhere")
    with pytest.raises(DatasetNotFoundError, match=r"list_eval_partition\.txt"):
        load_dataset("celeba", root=tmp_path)
    assert not list(tmp_path.iterdir())  # nothing was downloaded or created


def test_bad_arguments():
    with pytest.raises(ValueError, match="choose one of"):
        load_dataset("cifar10")
    with pytest.raises(ValueError, match="split"):
        load_dataset("mnist", split="valid")
    with pytest.raises(ValueError, match="CelebA only"):
        load_dataset("mnist", center_crop=178)


def test_names_and_shapes():
    assert DATASETS == {"mnist": (1, 28, 28), "fashion": (1, 28, 28), "celeba": (3, 128, 128)}
    assert DATASETS.keys() == set(CONFIG_DATASETS)  # the config's names are the loader's
    for alias in ("Fashion-MNIST", "fashionmnist", "fmnist"):
        assert canonical_dataset(alias) == "fashion"
    with pytest.raises(ValueError, match="data.dataset"):
        load_dataset("cifar")


# ------------------------------------------------------------------------------ MNIST / Fashion


def test_mnist_test_split(data_root):
    s = load_dataset("mnist", "test", root=data_root)
    assert isinstance(s, TensorImageSet) and s.name == "mnist" and len(s) == 10_000
    assert s.data.shape == (10_000, 1, 28, 28) and s.data.dtype == torch.float32
    assert s.image_shape == DATASETS["mnist"]
    assert s.data.min() == 0 and s.data.max() == 1
    assert s.data.mean().item() == pytest.approx(0.1325, abs=1e-3)  # scaled by 1/255 (SM D.1)
    assert s.labels.dtype == torch.long and s.labels[:5].tolist() == [7, 2, 1, 0, 4]
    assert torch.bincount(s.labels).numel() == 10


def _sha256(s: TensorImageSet) -> str:
    h = hashlib.sha256(s.data.numpy().tobytes())
    h.update(s.labels.numpy().tobytes())
    return h.hexdigest()


def test_real_loading_is_bitwise_unchanged(data_root):
    # sha256 of (float32 images, int64 labels) as loaded through torchvision's MNIST classes before
    # ladder.data read the idx files itself
    assert _sha256(load_dataset("mnist", "test", root=data_root)) == (
        "8c26786d4955bfbe4b1bc0048b3bedb22913ad773005ea62cd29f5c431131685"
    )
    assert _sha256(load_dataset("fashion", "test", root=data_root, n=300, seed=0)) == (
        "8ac3dafae8e4bdba47bc98e35c0412e943b341e543812a3027964e4a4c0fe72d"
    )


def test_subset_is_seeded_balanced_and_consistent(monkeypatch, data_root):
    monkeypatch.setenv("LADDER_DATA", str(data_root))
    full = load_dataset("fashion-mnist", "test")
    a = load_dataset("fashion", "test", n=200, seed=1)
    b = load_dataset("fashion", "test", n=200, seed=1)
    c = load_dataset("fashion", "test", n=200, seed=2)
    assert full.name == a.name == "fashion" and len(a) == 200
    assert torch.equal(a.data, b.data) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.data, c.data)
    assert torch.bincount(a.labels).tolist() == [20] * 10
    pick = balanced_subset(full.labels, 200, seed=1)
    assert torch.equal(a.data, full.data[pick]) and torch.equal(a.labels, full.labels[pick])
    assert sorted(a.labels[:10].tolist()) == list(range(10))  # class-interleaved order


def test_balanced_subset_with_unequal_classes():
    labels = torch.tensor([0] * 50 + [1] * 3 + [2] * 20)
    pick = balanced_subset(labels, 30, seed=0)
    assert pick.unique().numel() == 30
    assert sorted(torch.bincount(labels[pick]).tolist()) == [3, 13, 14]
    with pytest.raises(ValueError, match="subset size"):
        balanced_subset(labels, 74)


# ------------------------------------------------------------------------------ idx files


def _idx(dims: tuple[int, ...], payload: bytes) -> bytes:
    """An idx file of unsigned bytes: magic 0x0000080<ndim>, big-endian uint32 sizes, payload."""
    head = (0x800 + len(dims)).to_bytes(4, "big")
    return head + b"".join(d.to_bytes(4, "big") for d in dims) + payload


_files = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
_size = st.integers(0, 8) | st.integers(0, 2**32 - 1)  # an idx header's uint32 sizes
_small = arrays(np.uint8, array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=6))


def _corrupt_message(path: Path, ndim: int, pattern: str) -> str:
    with pytest.raises(DatasetCorruptError, match=pattern) as err:
        read_idx(path, ndim)
    msg = str(err.value)
    assert isinstance(err.value, ValueError) and "\n" not in msg
    assert msg.startswith(f"{path} is corrupt: ") and msg.endswith("fresh copy of the data set")
    return msg


@_files
@given(a=_small)
def test_idx_round_trip(tmp_path, a):
    (tmp_path / "f").write_bytes(_idx(a.shape, a.tobytes()))
    x = read_idx(tmp_path / "f", a.ndim)
    assert x.dtype == torch.uint8 and torch.equal(x, torch.from_numpy(a))


@_files
@given(a=_small, data=st.data())
def test_idx_truncated_or_extended(tmp_path, a, data):
    good = _idx(a.shape, a.tobytes())
    cut = data.draw(st.integers(0, len(good) - 1))
    (tmp_path / "f").write_bytes(good[:cut])
    msg = _corrupt_message(tmp_path / "f", a.ndim, f"truncated: {cut} bytes")
    if cut >= 4 * (a.ndim + 1):
        assert f"implies {len(good)}" in msg  # the size the header implies
    (tmp_path / "f").write_bytes(good + data.draw(st.binary(min_size=1, max_size=9)))
    _corrupt_message(tmp_path / "f", a.ndim, f"too long: .* implies {len(good)}")


@_files
@given(a=_small, magic=st.binary(min_size=4, max_size=4))
def test_idx_wrong_magic(tmp_path, a, magic):
    good = _idx(a.shape, a.tobytes())
    (tmp_path / "f").write_bytes(magic + good[4:])
    if magic == good[:4]:
        assert torch.equal(read_idx(tmp_path / "f", a.ndim), torch.from_numpy(a))
    else:
        _corrupt_message(tmp_path / "f", a.ndim, f"wrong magic number 0x{magic.hex()}")
    wrong_ndim = a.ndim % 3 + 1  # an idx1 file read as idx2, idx2 as idx3, idx3 as idx1
    (tmp_path / "f").write_bytes(good)
    _corrupt_message(tmp_path / "f", wrong_ndim, f"wrong magic number 0x0000080{a.ndim}")


@_files
@given(a=_small, dims=st.lists(_size, min_size=1, max_size=3))
def test_idx_header_against_payload(tmp_path, a, dims):
    dims = (dims + list(a.shape))[: a.ndim]
    (tmp_path / "f").write_bytes(_idx(tuple(dims), a.tobytes()))
    if math.prod(dims) == a.size:  # the same bytes in another shape: loaded as the header says
        assert torch.equal(read_idx(tmp_path / "f", a.ndim), torch.from_numpy(a).reshape(dims))
    elif math.prod(dims) == 0:
        _corrupt_message(tmp_path / "f", a.ndim, "empty: its header")
    else:
        header = 4 * (a.ndim + 1)
        state = "truncated" if a.size < math.prod(dims) else "too long"
        said = f"{state}: {header + a.size} bytes where its header ({' x '.join(map(str, dims))})"
        said += f" implies {header + math.prod(dims)};"
        _corrupt_message(tmp_path / "f", a.ndim, re.escape(said))


@_files
@given(raw=st.binary(max_size=40), ndim=st.integers(1, 3))
def test_idx_random_bytes(tmp_path, raw, ndim):
    (tmp_path / "f").write_bytes(raw)
    try:
        x = read_idx(tmp_path / "f", ndim)
    except DatasetCorruptError as err:
        assert "\n" not in str(err)
        return
    header = 4 * (ndim + 1)  # loaded: then the bytes are a valid idx file of exactly this array
    assert raw == _idx(tuple(x.shape), x.numpy().tobytes()) and x.numel() == len(raw) - header


def test_idx_known_file_sizes(tmp_path):
    empty = tmp_path / "t10k-images-idx3-ubyte"
    empty.write_bytes(b"")
    msg = _corrupt_message(empty, 3, "truncated: 0 bytes, less than the 16-byte header")
    assert "t10k-images-idx3-ubyte is 7840016 bytes" in msg and "download" not in msg
    cut = tmp_path / "train-labels-idx1-ubyte"
    cut.write_bytes(_idx((60_000,), bytes(100)))
    _corrupt_message(cut, 1, r"truncated: 108 bytes where its header \(60000\) implies 60008 ")


# ------------------------------------------------------------------------------ synthetic trees


def _tree(root: Path, folder: str = "MNIST", split: str = "test", n: int = 20, labels=None):
    """``<root>/<folder>/raw/`` with n random 28x28 images and labels (default i % 10) of a split;
    returns (images, labels) as numpy arrays."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    prefix = "train" if split == "train" else "t10k"
    images = np.random.default_rng(n).integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = np.arange(n, dtype=np.uint8) % 10 if labels is None else labels
    (raw / f"{prefix}-images-idx3-ubyte").write_bytes(_idx(images.shape, images.tobytes()))
    (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(_idx(labels.shape, labels.tobytes()))
    return images, labels


def test_synthetic_tree_loads_exactly(tmp_path):
    images, labels = _tree(tmp_path, "FashionMNIST", "train")  # no test files needed
    s = load_dataset("fashion", "train", root=tmp_path)
    assert torch.equal(s.data, torch.from_numpy(images).unsqueeze(1).float() / 255)
    assert s.labels.dtype == torch.long and s.labels.tolist() == labels.tolist()


def test_corrupt_file_is_not_reported_missing(tmp_path):
    _tree(tmp_path)
    images = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    for data, why in [(b"", "truncated: 0 bytes"), (b"\x1f\x8b\x08\x00" + bytes(20), "magic")]:
        images.write_bytes(data)  # empty; a gzip file under the uncompressed name
        with pytest.raises(DatasetCorruptError, match=why) as err:
            load_dataset("mnist", "test", root=tmp_path)
        assert not isinstance(err.value, FileNotFoundError)
        assert str(images) in str(err.value) and "download" not in str(err.value)
    _tree(tmp_path, n=3)
    images.write_bytes(_idx((3, 28, 27), bytes(3 * 28 * 27)))
    with pytest.raises(DatasetCorruptError, match="images are 28x27 pixels, not 28x28"):
        load_dataset("mnist", "test", root=tmp_path)


@pytest.mark.parametrize("n_labels", [19, 21])
@pytest.mark.parametrize("n", [None, 10])
def test_label_count_must_match_image_count(tmp_path, n_labels, n):
    _tree(tmp_path, labels=np.arange(n_labels, dtype=np.uint8) % 10)
    raw = tmp_path / "MNIST" / "raw"
    with pytest.raises(DatasetCorruptError) as err:
        load_dataset("mnist", "test", root=tmp_path, n=n)
    msg = str(err.value)
    assert f"{raw / 't10k-images-idx3-ubyte'} holds 20 images" in msg
    assert f"{raw / 't10k-labels-idx1-ubyte'} holds {n_labels} labels" in msg


def test_labels_out_of_range(tmp_path):
    _tree(tmp_path, labels=np.full(20, 200, np.uint8))
    with pytest.raises(DatasetCorruptError, match="t10k-labels-idx1-ubyte is corrupt: label 200"):
        load_dataset("mnist", "test", root=tmp_path)


def test_processed_cache_is_never_read(tmp_path):
    """torchvision's legacy MNIST/processed/{training,test}.pt (which its MNIST class prefers to
    raw/) is ignored: raw/ is read, and processed/ alone is not found."""
    processed = tmp_path / "MNIST" / "processed"
    processed.mkdir(parents=True)
    stale = (torch.zeros(5, 28, 28, dtype=torch.uint8), torch.zeros(5, dtype=torch.long))
    for name in ("training.pt", "test.pt"):
        torch.save(stale, processed / name)
    with pytest.raises(DatasetNotFoundError, match="processed/ cache is there, but only raw/"):
        load_dataset("mnist", "test", root=tmp_path)
    images, labels = _tree(tmp_path)
    s = load_dataset("mnist", "test", root=tmp_path)
    assert len(s) == 20 and torch.equal(s.data, torch.from_numpy(images).unsqueeze(1).float() / 255)
    assert s.labels.tolist() == labels.tolist()
