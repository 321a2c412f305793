"""Spike kernels behind one dispatch: bit packing, Hamming Gram matrices, batched log-dets, distinct patterns.

Each op has a pure-PyTorch ``reference`` (the source of truth) and optional ``cpp`` and ``triton``
implementations with the same signature; :mod:`spikenas.kernels.selection` picks one. The C++ backend is
the extension ``spikenas._native`` built by setup.py from csrc/.
"""

from __future__ import annotations

import torch
from spikenas.kernels import selection, validation
from spikenas.kernels.selection import BACKENDS, BackendUnavailable, diagnostics

__all__ = [
    "BACKENDS",
    "BackendUnavailable",
    "count_distinct",
    "diagnostics",
    "hamming_gram",
    "kernel_from_hamming",
    "pack_bits",
    "resolve_backend",
    "slogdet",
    "spike_gram",
    "spike_gram_dense",
]


def resolve_backend(backend: str | None = None, device: torch.device | str = "cpu") -> str:
    """Name of the backend that ``backend`` (None/"auto"/name) selects for ``device``."""
    return selection.resolve(backend, device)


def pack_bits(spikes: torch.Tensor, *, backend: str | None = None) -> torch.Tensor:
    """Pack ``[..., B, N]`` spikes (nonzero = spike) into int64 words ``[..., B, ceil(N/64)]``.

    Bit ``j % 64`` of word ``j // 64`` holds element ``j``; padding bits are zero.
    """
    validation.check_spikes(spikes)
    name = selection.resolve(backend, spikes.device)
    return selection.module("pack", name).pack_bits(spikes)


def hamming_gram(packed: torch.Tensor, n: int, *, backend: str | None = None) -> torch.Tensor:
    """Pairwise Hamming distances: int64 ``[..., B, W]`` -> int32 ``[..., B, B]``.

    :param n: the unpacked row length (bits past it must be zero, as :func:`pack_bits` leaves them).
    """
    validation.check_packed(packed)
    name = selection.resolve(backend, packed.device)
    return selection.module("gram", name).hamming_gram(packed, n)


def spike_gram(
    packed: torch.Tensor,
    n: int,
    *,
    kind: str = "sahd",
    alpha: float = 0.5,
    eps: float = 1e-3,
    backend: str | None = None,
) -> torch.Tensor:
    """Kernel matrix summed over G layer calls: int64 ``[..., G, B, W]`` -> float64 ``[..., B, B]``.

    ``kind``: ``sahd`` (SNASNet's sparsity-aware Hamming kernel), ``sahd_rate`` (its normaliser
    without the factor N) or ``hamming`` (NASWOT's ``N - H``); see
    :func:`spikenas.kernels.gram.reference.kernel_from_hamming`.
    """
    validation.check_gram_args(packed, n, kind, alpha)
    name = selection.resolve(backend, packed.device)
    return selection.module("gram", name).spike_gram(packed, n, kind=kind, alpha=alpha, eps=eps)


def kernel_from_hamming(
    hamming: torch.Tensor,
    counts: torch.Tensor,
    n: int | torch.Tensor,
    *,
    kind: str = "sahd",
    alpha: float = 0.5,
    eps: float = 1e-3,
) -> torch.Tensor:
    """Per-call kernels from Hamming counts: int ``[..., B, B]`` and spikes per row int ``[..., B]`` ->
    float64 ``[..., B, B]``; ``n`` is an int or an int tensor ``[...]`` (one N per call).

    An elementwise formula on counts every backend already produced, so it has one implementation,
    :func:`spikenas.kernels.gram.reference.kernel_from_hamming` (the formulas are there).
    """
    validation.check_kernel_kind(kind, alpha)
    if hamming.shape[:-1] != counts.shape or hamming.shape[-1] != hamming.shape[-2]:
        raise ValueError(
            f"hamming must be [..., B, B] and counts [..., B]; got {tuple(hamming.shape)} and {tuple(counts.shape)}"
        )
    return selection.module("gram", "torch").kernel_from_hamming(hamming, counts, n, kind=kind, alpha=alpha, eps=eps)


def spike_gram_dense(
    spikes: torch.Tensor,
    *,
    kind: str = "sahd",
    alpha: float = 0.5,
    eps: float = 1e-3,
    backend: str | None = None,
) -> torch.Tensor:
    """As :func:`spike_gram` from unpacked spikes ``[..., G, B, N]``; packs first on packed backends."""
    validation.check_spikes(spikes)
    if spikes.dim() < 3:
        raise ValueError(f"spikes must have shape [..., G, B, N], got {tuple(spikes.shape)}")
    name = selection.resolve(backend, spikes.device)
    impl = selection.module("gram", name)
    if hasattr(impl, "spike_gram_dense"):
        return impl.spike_gram_dense(spikes, kind=kind, alpha=alpha, eps=eps)
    packed = selection.module("pack", name).pack_bits(spikes)
    return impl.spike_gram(packed, spikes.shape[-1], kind=kind, alpha=alpha, eps=eps)


def count_distinct(packed: torch.Tensor, n: int, *, backend: str | None = None) -> torch.Tensor:
    """Distinct rows of each group of packed binary patterns: int64 ``[..., R, W]`` -> int64 ``[...]``.

    Rows come from :func:`pack_bits` (``n`` bits each, padding zero); a group with R = 0 counts 0.
    SWAP-style scores pack each neuron's spikes over the samples of a batch as one row
    (``pack_bits(spikes.transpose(-1, -2))``) and count the distinct rows.
    """
    validation.check_packed(packed)
    validation.check_bits(packed, n)
    name = selection.resolve(backend, packed.device)
    return selection.module("patterns", name).count_distinct(packed, n)


def slogdet(matrices: torch.Tensor, *, backend: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched ``[..., B, B]`` -> (sign, log|det|), float64 ``[...]``; singular: sign 0, -inf."""
    validation.check_square(matrices)
    name = selection.resolve(backend, matrices.device)
    return selection.module("logdet", name).slogdet(matrices)
