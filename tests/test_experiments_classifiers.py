"""The batch's evaluation classifiers: a landed one is installed and used on any machine, a cached
or newly trained one is landed, and a cache that would score with another one is refused."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ladder.classifier import LeNetClassifier
from ladder.classifier_cache import load_classifier, save_classifier
from ladder.experiments import classifiers as batch
from ladder.experiments.classifiers import (
    ClassifierMismatchError,
    ensure_classifiers,
    landed_classifier,
    prepare_classifiers,
)


def _classifier(seed: int, dataset: str = "mnist", cache=None):
    torch.manual_seed(seed)
    return save_classifier(LeNetClassifier(), dataset, 0.5, cache_dir=cache)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LADDER_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def fake_training(monkeypatch):
    """train_and_cache without the training: caches a random classifier, records the dataset."""
    trained: list[str] = []

    def fake_train(dataset, root=None, progress=True):
        trained.append(dataset)
        return _classifier(len(trained), dataset), 0.9

    monkeypatch.setattr(batch, "train_and_cache", fake_train)
    return trained


def test_only_the_missing_classifiers_are_trained_and_each_is_landed(cache, tmp_path,
                                                                     fake_training):
    cached = _classifier(0)
    lines: list[str] = []
    ensure_classifiers({"mnist", "fashion", "celeba"}, lines.append, results_root=tmp_path)
    assert fake_training == ["fashion"]  # mnist is cached; CelebA has no classifier
    assert landed_classifier("mnist", tmp_path).name == cached.name
    assert landed_classifier("fashion", tmp_path).with_suffix(".json").is_file()
    assert "landed the cached" in lines[0] and "no evaluation classifier cached" in lines[1]
    assert "test accuracy 0.9000" in lines[2]


def test_a_fresh_machine_installs_the_landed_classifier_instead_of_training(cache, tmp_path,
                                                                          fake_training):
    landed = _classifier(3, cache=tmp_path / "results")  # results/classifiers/mnist-<hash>.pt
    ensure_classifiers({"mnist"}, results_root=tmp_path / "results")
    assert fake_training == []
    _, meta = load_classifier("mnist")
    assert meta["weights_hash"] == load_classifier("mnist", path=landed)[1]["weights_hash"]


def test_a_cache_that_would_score_with_another_classifier_is_refused(cache, tmp_path):
    landed = _classifier(1, cache=tmp_path / "results")
    _classifier(2)  # this machine's own, newer than the landed one
    with pytest.raises(ClassifierMismatchError, match="remove .*mnist-"):
        prepare_classifiers({"mnist"}, tmp_path / "results")
    assert landed.is_file()  # nothing is deleted for the user


def test_two_landed_classifiers_of_one_dataset_are_an_error(tmp_path):
    _classifier(1, cache=tmp_path)
    _classifier(2, cache=tmp_path)
    with pytest.raises(ClassifierMismatchError, match="2 classifiers for mnist"):
        landed_classifier("mnist", tmp_path)


def _evaluation(digest: str | None) -> dict:
    return {"provenance": {"classifier": {"weights_hash": digest} if digest else None}}


def test_a_tables_classifier_note_names_each_datasets_classifier():
    note = batch.classifier_note([("mnist", _evaluation("aaa")), ("mnist", _evaluation("aaa")),
                                  ("fashion", _evaluation("bbb")), ("celeba", _evaluation(None))])
    assert note == ("Evaluation classifier (weights hash): mnist aaa (2 runs); "
                    "fashion bbb (1 run).")
    assert batch.classifier_note([("celeba", _evaluation(None))]) == ""


@given(st.lists(st.tuples(st.sampled_from(["mnist", "fashion"]),
                          st.sampled_from(["aaa", "bbb", None])), max_size=12))
def test_the_note_warns_exactly_for_the_datasets_scored_with_two_classifiers(runs):
    note = batch.classifier_note([(d, _evaluation(h)) for d, h in runs])
    for dataset in ("mnist", "fashion"):
        hashes = {h for d, h in runs if d == dataset and h}
        assert (f"{dataset}'s runs were scored with 2 classifiers" in note) == (len(hashes) == 2)
    assert (note == "") == all(h is None for _, h in runs)
