"""Where training and evaluation run: the device (CUDA, Apple's MPS or the CPU) and the precision
of a training step (``train.device``, ``train.precision``)."""

from __future__ import annotations

import warnings

import torch


def select_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA, then Apple's MPS, then the CPU; otherwise the named device."""
    if name != "auto":
        try:
            device = torch.device(name)
        except RuntimeError as err:
            raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from err
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {name!r} was asked for but CUDA is not available here; use "
                             "--device cpu (or auto)")
        if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
            raise ValueError(f"device {name!r} was asked for but this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s); use cuda:0")
        if device.type == "mps" and not _mps_available():
            raise ValueError(f"device {name!r} was asked for but MPS is not available here; use "
                             "--device cpu (or auto)")
        if device.type not in ("cpu", "cuda", "mps"):
            raise ValueError(f"device {name!r} is not supported; use auto, cpu, cuda or mps")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def has_native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 matrix products in hardware: a CUDA GPU with bf16, or a
    CPU with AMX or AVX512-BF16. Elsewhere bf16 is emulated, and on an AVX2 CPU it is ~20x slower
    than fp32 (benchmarks/README.md)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        capabilities = torch.cpu.get_capabilities()
        return bool(capabilities.get("amx_bf16") or capabilities.get("avx512_bf16"))
    return False


def select_precision(name: str, device: torch.device) -> str:
    """``train.precision``: ``auto`` is bf16 where :func:`has_native_bf16`, else fp32; ``bf16``
    on hardware without it is honoured with a warning, since it is much slower there."""
    native = has_native_bf16(device)
    if name == "auto":
        return "bf16" if native else "fp32"
    if name == "bf16" and not native:
        warnings.warn(
            f"train.precision = bf16 on {device.type} without native bf16 (AMX, AVX512-BF16 or a "
            "CUDA GPU with bf16): it is emulated and much slower than fp32; use fp32 or auto",
            stacklevel=2,
        )
    return name
