"""Input checks shared by every kernel backend; errors name the parameter."""

from __future__ import annotations

import torch

SPIKE_KINDS = ("sahd", "sahd_rate", "hamming")


def check_spikes(spikes: torch.Tensor) -> None:
    """``spikes``: ``[..., B, N]`` bool, uint8 or floating tensor, B >= 1, N >= 1."""
    if not isinstance(spikes, torch.Tensor):
        raise TypeError(f"spikes must be a torch.Tensor, got {type(spikes).__name__}")
    if spikes.dim() < 2:
        raise ValueError(f"spikes must have shape [..., B, N], got {tuple(spikes.shape)}")
    if spikes.shape[-1] < 1 or spikes.shape[-2] < 1:
        raise ValueError(f"spikes needs B >= 1 and N >= 1, got shape {tuple(spikes.shape)}")


def check_packed(packed: torch.Tensor) -> None:
    """``packed``: ``[..., B, W]`` int64 words from :func:`spikenas.kernels.pack_bits`."""
    if not isinstance(packed, torch.Tensor):
        raise TypeError(f"packed must be a torch.Tensor, got {type(packed).__name__}")
    if packed.dtype != torch.int64:
        raise ValueError(f"packed must be int64 words, got dtype {packed.dtype}")
    if packed.dim() < 2 or packed.shape[-2] < 1:
        raise ValueError(f"packed must have shape [..., B, W] with B >= 1, got {tuple(packed.shape)}")


def check_gram_args(packed: torch.Tensor, n: int, kind: str, alpha: float) -> None:
    """Checks for :func:`spikenas.kernels.spike_gram`; ``packed`` is ``[..., G, B, W]``."""
    check_packed(packed)
    if packed.dim() < 3:
        raise ValueError(f"packed must have shape [..., G, B, W], got {tuple(packed.shape)}")
    check_kernel_kind(kind, alpha)
    words = packed.shape[-1]
    if not (isinstance(n, int) and 1 <= n <= 64 * words and n > 64 * (words - 1)):
        raise ValueError(f"n must be the unpacked length (64*(W-1) < n <= 64*W, W={words}), got {n!r}")


def check_bits(packed: torch.Tensor, n: int) -> None:
    """``n``: the unpacked row length of ``packed`` ``[..., R, W]``: ``64 (W - 1) < n <= 64 W``."""
    words = packed.shape[-1]
    if isinstance(n, bool) or not (isinstance(n, int) and 1 <= n <= 64 * words and n > 64 * (words - 1)):
        raise ValueError(f"n must be the unpacked length (64*(W-1) < n <= 64*W, W={words}), got {n!r}")


def check_kernel_kind(kind: str, alpha: float) -> None:
    """``kind`` one of SPIKE_KINDS, ``alpha`` > 0."""
    if kind not in SPIKE_KINDS:
        raise ValueError(f"kind must be one of {SPIKE_KINDS}, got {kind!r}")
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha!r}")


def check_square(matrices: torch.Tensor) -> None:
    """``matrices``: ``[..., B, B]`` floating tensor."""
    if not isinstance(matrices, torch.Tensor):
        raise TypeError(f"matrices must be a torch.Tensor, got {type(matrices).__name__}")
    if matrices.dim() < 2 or matrices.shape[-1] != matrices.shape[-2]:
        raise ValueError(f"matrices must have shape [..., B, B], got {tuple(matrices.shape)}")
    if not matrices.is_floating_point():
        raise ValueError(f"matrices must be floating point, got dtype {matrices.dtype}")
