"""ladder.data_celeba: CelebA on small synthetic images in its layout (tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import CELEBA_BAND, CELEBA_N, celeba_colour

from ladder.data import DATASETS, load_dataset
from ladder.data_celeba import StreamingImageSet, celeba_split
from ladder.data_root import DatasetNotFoundError
from ladder.image_sets import TensorImageSet


def _colours(x: torch.Tensor) -> torch.Tensor:
    """Mean RGB (0-255) of the lower half of each image [B, 3, H, W] (below the black band)."""
    return x[:, :, x.shape[2] // 2 :].mean(dim=(2, 3)) * 255


def _file_index(s: StreamingImageSet) -> list[int]:
    return [int(f.stem) - 1 for f in s.files.files]


def test_celeba_split_sizes_and_disjoint(celeba_root):
    opts = dict(test_size=4, split_seed=7, num_workers=0)
    train = load_dataset("celeba", "train", root=celeba_root, **opts)
    test = load_dataset("celeba", "test", root=celeba_root, **opts)
    assert isinstance(train, StreamingImageSet) and train.labels is None
    assert (len(train), len(test)) == (CELEBA_N - 4, 4)
    assert train.image_shape == DATASETS["celeba"]
    assert set(_file_index(train)).isdisjoint(_file_index(test))
    assert sorted(_file_index(train) + _file_index(test)) == list(range(CELEBA_N))
    again = load_dataset("celeba", "test", root=celeba_root, **opts)
    assert _file_index(again) == _file_index(test)  # seeded
    assert torch.equal(celeba_split(CELEBA_N, "test", 4, 7), torch.tensor(_file_index(test)))
    assert not torch.equal(celeba_split(CELEBA_N, "test", 4, 8), torch.tensor(_file_index(test)))
    with pytest.raises(ValueError, match="test_size"):
        load_dataset("celeba", root=celeba_root, test_size=CELEBA_N)


def test_celeba_batches_are_the_right_images(celeba_root):
    s = load_dataset("celeba", root=celeba_root, test_size=4, num_workers=1)
    batches = list(s.iter_batches(3, generator=torch.Generator().manual_seed(0), drop_last=False))
    files = _file_index(s)
    assert sorted(torch.cat([i for _, i in batches]).tolist()) == list(range(len(s)))
    for x, idx in batches:
        assert x.shape[1:] == (3, 128, 128) and x.dtype == torch.float32
        assert x.min() >= 0 and x.max() <= 1
        want = torch.tensor([celeba_colour(files[i]) for i in idx.tolist()], dtype=torch.float32)
        assert torch.allclose(_colours(x), want, atol=3)  # JPEG error only
    top = s.take(2)
    assert top.shape == (2, 3, 128, 128)
    rows = CELEBA_BAND * 128 // 218  # the band's height after a plain resize (SM D.2) ...
    assert rows == 11 and top[:, :, : rows - 2].max() < 0.05
    cropped = load_dataset("celeba", root=celeba_root, test_size=4, center_crop=178, num_workers=0)
    # ... and the centred 178x178 crop cuts it away: it drops (218 - 178) / 2 = 20 rows at the top
    assert torch.allclose(_colours(cropped.take(2)), _colours(cropped.take(2)[:, :, :64]), atol=3)


def test_celeba_subset_and_uint8_cache(celeba_root, tmp_path):
    sub = load_dataset("celeba", root=celeba_root, test_size=4, n=5, seed=3, num_workers=0)
    assert len(sub) == 5
    assert _file_index(sub) == _file_index(
        load_dataset("celeba", root=celeba_root, test_size=4, n=5, seed=3, num_workers=0)
    )
    cached = load_dataset(
        "celeba", root=celeba_root, test_size=4, n=5, seed=3, num_workers=0, cache_dir=tmp_path
    )
    assert isinstance(cached, TensorImageSet) and cached.data.dtype == torch.uint8
    assert len(list(tmp_path.glob("*.npy"))) == 1
    assert np.load(next(tmp_path.glob("*.npy")), mmap_mode="r").shape == (CELEBA_N - 4, 3, 128, 128)
    assert torch.equal(cached.take(5), sub.take(5))  # same images, same order as streaming
    again = load_dataset("celeba", root=celeba_root, test_size=4, num_workers=0, cache_dir=tmp_path)
    assert len(again) == CELEBA_N - 4 and len(list(tmp_path.iterdir())) == 1  # cache reused


def test_celeba_missing_image(celeba_root, tmp_path):
    (tmp_path / "celeba" / "img_align_celeba").mkdir(parents=True)
    listing = (celeba_root / "celeba" / "list_eval_partition.txt").read_text()
    (tmp_path / "celeba" / "list_eval_partition.txt").write_text(listing)
    with pytest.raises(DatasetNotFoundError, match="12 of the 12 listed images are missing"):
        load_dataset("celeba", root=tmp_path)
