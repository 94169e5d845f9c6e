"""ladder.device: the device and the precision of a training step."""

import warnings

import pytest
import torch

from ladder.device import select_device, select_precision


def test_unavailable_devices_are_refused_with_the_fix(monkeypatch):
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        select_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available here; use --device cpu"):
        select_device("cuda")


@pytest.mark.parametrize("capabilities, expected", [
    ({"avx2": True, "amx_bf16": True}, "bf16"),
    ({"avx2": True, "avx512_bf16": True}, "bf16"),
    ({"avx2": True, "amx_bf16": False, "avx512_bf16": False}, "fp32"),
    ({}, "fp32"),
])
def test_auto_precision_is_bf16_only_on_a_cpu_that_computes_it(capabilities, expected,
                                                                monkeypatch):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities)
    assert select_precision("auto", torch.device("cpu")) == expected
    assert select_precision("fp32", torch.device("cpu")) == "fp32"


def test_bf16_on_a_cpu_without_it_warns_and_is_kept(monkeypatch):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx2": True})
    with pytest.warns(UserWarning, match="without native bf16"):
        assert select_precision("bf16", torch.device("cpu")) == "bf16"
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"amx_bf16": True})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert select_precision("bf16", torch.device("cpu")) == "bf16"
