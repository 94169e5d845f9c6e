"""ladder.image_sets: epochs of batches from an image set held on its device."""

from __future__ import annotations

import pytest
import torch

from ladder.image_sets import TensorImageSet


def _toy_set(n: int = 10, dtype=torch.float32) -> TensorImageSet:
    data = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 2, 2)
    if dtype == torch.uint8:
        data = data.to(torch.uint8)
    return TensorImageSet("toy", data.contiguous(), labels=torch.arange(n) % 3)


def test_epoch_covers_each_index_once():
    s = _toy_set(10)
    batches = list(s.iter_batches(3, generator=torch.Generator().manual_seed(0), drop_last=False))
    assert [len(i) for _, i in batches] == [3, 3, 3, 1]
    idx = torch.cat([i for _, i in batches])
    assert sorted(idx.tolist()) == list(range(10))
    for x, i in batches:
        assert x.dtype == torch.float32 and x.shape[1:] == (1, 2, 2)
        assert torch.equal(x[:, 0, 0, 0], i.float())  # x is the images at idx
    dropped = list(s.iter_batches(3, generator=torch.Generator().manual_seed(0)))
    assert [len(i) for _, i in dropped] == [3, 3, 3]
    assert torch.cat([i for _, i in dropped]).unique().numel() == 9


def test_epoch_order_is_reproducible():
    s = _toy_set(50)

    def order(seed):
        g = torch.Generator().manual_seed(seed)
        return torch.cat([i for _, i in s.iter_batches(10, generator=g)]).tolist()

    assert order(3) == order(3)
    assert order(3) != order(4)
    assert sorted(order(3)) == list(range(50))
    plain = torch.cat([i for _, i in s.iter_batches(10, shuffle=False)])
    assert plain.tolist() == list(range(50))


def test_uint8_set_take_and_errors():
    s = _toy_set(6, torch.uint8)
    x, idx = next(s.iter_batches(6, shuffle=False))
    assert x.dtype == torch.float32 and torch.allclose(x[:, 0, 0, 0], idx.float() / 255)
    assert torch.equal(s.take(2), x[:2])
    with pytest.raises(ValueError, match="drop_last"):
        next(s.iter_batches(7))
    with pytest.raises(ValueError, match="take"):
        s.take(7)
