from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ladder.classifier import LeNetClassifier, prepare_images, train_classifier
from ladder.classifier_cache import (
    ClassifierCacheError,
    ClassifierNotFoundError,
    classifier_cache_dir,
    load_classifier,
    save_classifier,
    weights_hash,
)
from ladder.data import load_dataset


@pytest.fixture(scope="module")
def mnist_small(data_root):
    """Class-balanced 2k training and 1k test images of MNIST (float [N, 1, 28, 28] in [0, 1])."""
    train = load_dataset("mnist", "train", root=data_root, n=2000)
    test = load_dataset("mnist", "test", root=data_root, n=1000)
    return train.data, train.labels, test.data, test.labels


@pytest.fixture(scope="module")
def trained(mnist_small):
    return train_classifier(*mnist_small, epochs=1, batch_size=32, progress=False)


def _tiny_model(seed: int = 0) -> LeNetClassifier:
    torch.manual_seed(seed)
    return LeNetClassifier()


def test_shapes():
    model = LeNetClassifier(n_classes=7, in_channels=1, feature_dim=96)
    x = torch.rand(5, 1, 28, 28)
    assert model.features(x).shape == (5, 96)
    assert model(x).shape == (5, 7)
    assert (model.features(x) >= 0).all()  # post-ReLU
    with pytest.raises(ValueError, match="prepare_images"):
        model.features(torch.rand(5, 28, 28))


def test_prepare_images_converts_uint8_and_adds_channel():
    x = torch.tensor([[[0, 255], [51, 102]]], dtype=torch.uint8)
    out = prepare_images(x)
    assert out.shape == (1, 1, 2, 2) and out.dtype == torch.float32
    torch.testing.assert_close(out.flatten(), torch.tensor([0.0, 1.0, 0.2, 0.4]))
    with pytest.raises(ValueError, match="uint8 or floating"):
        prepare_images(torch.zeros(2, 1, 4, 4, dtype=torch.int64))


def test_one_epoch_on_2k_mnist_images_is_sane(trained):
    model, acc = trained
    assert not model.training
    assert acc > 0.8


def test_training_is_deterministic_and_leaves_global_rng_alone(mnist_small):
    x, y, xt, yt = (t[:256] for t in mnist_small)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    m1, a1 = train_classifier(x, y, xt, yt, epochs=1, batch_size=64, seed=7, progress=False)
    assert torch.equal(torch.get_rng_state(), before)
    m2, a2 = train_classifier(x, y, xt, yt, epochs=1, batch_size=64, seed=7, progress=False)
    m3, _ = train_classifier(x, y, xt, yt, epochs=1, batch_size=64, seed=8, progress=False)
    assert a1 == a2 and weights_hash(m1) == weights_hash(m2) != weights_hash(m3)


def test_train_rejects_mismatched_labels(mnist_small):
    x, y, xt, yt = mnist_small
    with pytest.raises(ValueError, match="one label per image"):
        train_classifier(x, y[:10], xt, yt, epochs=1, progress=False)


def test_save_load_round_trip(tmp_path, trained):
    model, acc = trained
    path = save_classifier(model, "mnist", acc, cache_dir=tmp_path, info={"epochs": 1})
    digest = weights_hash(model)
    assert path == tmp_path / "classifiers" / f"mnist-{digest}.pt"
    assert len(digest) == 12 and int(digest, 16) >= 0
    state = torch.load(path, weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["weights_hash"] == digest and meta["test_accuracy"] == acc
    assert meta["dataset"] == "mnist" and meta["torch_version"] == torch.__version__
    assert meta["info"] == {"epochs": 1} and meta["created"]

    loaded, loaded_meta = load_classifier("mnist", cache_dir=tmp_path)
    assert loaded_meta["weights_hash"] == digest and loaded_meta["path"] == str(path)
    assert not loaded.training
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(loaded.features(x), model.features(x))
    loaded_by_path, _ = load_classifier("mnist", path=path)
    assert weights_hash(loaded_by_path) == digest


def test_train_and_cache_records_how_it_trained(tmp_path, monkeypatch, data_root):
    import ladder.classifier_cache as cl

    def small(name, split, root=None):
        return load_dataset(name, split, root=data_root, n=256)

    monkeypatch.setattr(cl, "load_dataset", small)
    monkeypatch.setenv("LADDER_CACHE", str(tmp_path))
    path, acc = cl.train_and_cache("mnist", seed=3, progress=False, epochs=1, batch_size=64)
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["test_accuracy"] == acc and path.parent == tmp_path / "classifiers"
    assert meta["info"] == {"epochs": 1, "batch_size": 64, "lr": 2e-3, "seed": 3, "n_train": 256,
                            "device": "cpu", "threads": torch.get_num_threads()}


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LADDER_CACHE", str(tmp_path / "env"))
    assert classifier_cache_dir() == tmp_path / "env" / "classifiers"
    assert classifier_cache_dir(tmp_path / "arg") == tmp_path / "arg" / "classifiers"
    monkeypatch.delenv("LADDER_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert classifier_cache_dir() == tmp_path / "xdg" / "ladder" / "classifiers"


def test_load_picks_newest_of_its_dataset_only(tmp_path):
    old = save_classifier(_tiny_model(0), "mnist", 0.5, cache_dir=tmp_path)
    new = save_classifier(_tiny_model(1), "mnist", 0.6, cache_dir=tmp_path)
    save_classifier(_tiny_model(2), "fashion-mnist", 0.7, cache_dir=tmp_path)
    assert old != new
    _, meta = load_classifier("mnist", cache_dir=tmp_path)
    assert meta["path"] == str(new) and meta["test_accuracy"] == 0.6
    _, meta = load_classifier("fashion", cache_dir=tmp_path)  # the canonical name of the alias
    assert meta["test_accuracy"] == 0.7 and Path(meta["path"]).name.startswith("fashion-")


def test_missing_classifier_says_how_to_train_one(tmp_path):
    with pytest.raises(ClassifierNotFoundError, match="ladder train-classifier --dataset mnist"):
        load_classifier("mnist", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown dataset"):
        load_classifier("../mnist", cache_dir=tmp_path)


def test_corrupt_file_is_rejected(tmp_path):
    path = save_classifier(_tiny_model(), "mnist", 0.5, cache_dir=tmp_path)
    path.write_bytes(path.read_bytes()[:200])  # truncated
    with pytest.raises(ClassifierCacheError, match="cannot read"):
        load_classifier("mnist", cache_dir=tmp_path)


def test_modified_weights_fail_the_hash_check(tmp_path):
    model = _tiny_model()
    path = save_classifier(model, "mnist", 0.5, cache_dir=tmp_path)
    state = torch.load(path, weights_only=True)
    state["fc2.bias"] += 1.0
    torch.save(state, path)
    with pytest.raises(ClassifierCacheError, match="corrupt or was modified"):
        load_classifier("mnist", cache_dir=tmp_path)
