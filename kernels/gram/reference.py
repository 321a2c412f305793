"""Pure-PyTorch Hamming Gram and spike kernels: SNASNet's float matrix-product route.

Every count is computed in a float dtype wide enough to be exact (float32 below 2**24 bits per row,
float64 above), so the integer results equal any popcount backend bit for bit.
"""

from __future__ import annotations

import torch
from spikenas.kernels.pack.reference import unpack_bits


def _exact_float(n: int) -> torch.dtype:
    return torch.float32 if n < 2**24 else torch.float64


def hamming_from_spikes(spikes: torch.Tensor) -> torch.Tensor:
    """Hamming distances between rows: ``[..., B, N]`` spikes -> int32 ``[..., B, B]``."""
    x = (spikes != 0).to(_exact_float(spikes.shape[-1]))
    counts = x.sum(dim=-1)
    both = x @ x.transpose(-1, -2)
    return (counts.unsqueeze(-1) + counts.unsqueeze(-2) - 2 * both).round().to(torch.int32)


def hamming_gram(packed: torch.Tensor, n: int) -> torch.Tensor:
    """Hamming distances between packed rows: int64 ``[..., B, W]`` -> int32 ``[..., B, B]``."""
    return hamming_from_spikes(unpack_bits(packed, n))


def kernel_from_hamming(
    hamming: torch.Tensor, counts: torch.Tensor, n: int | torch.Tensor, *, kind: str, alpha: float, eps: float
) -> torch.Tensor:
    """One layer-call kernel from its Hamming matrix.

    :param hamming: int ``[..., B, B]`` Hamming distances.
    :param counts: int ``[..., B]`` spikes per row.
    :param n: bits per row: an int, or an int tensor of the leading shape ``[...]`` (one N per call).
    :returns: float64 ``[..., B, B]``:
        ``hamming``: ``N - H``;
        ``sahd``: ``N - alpha * H / (N * (r_i (1 - r_j) + (1 - r_i) r_j) + eps)`` (SNASNet);
        ``sahd_rate``: the same without the factor N in the expected distance.
    """
    h = hamming.to(torch.float64)
    n_rows = torch.as_tensor(n, dtype=torch.float64, device=h.device)
    n_rows = n_rows.unsqueeze(-1)  # [..., 1]: broadcasts over the B rows
    n_mat = n_rows.unsqueeze(-1)  # [..., 1, 1]: broadcasts over the B x B entries
    if kind == "hamming":
        return n_mat - h
    rate = counts.to(torch.float64) / n_rows
    ri, rj = rate.unsqueeze(-1), rate.unsqueeze(-2)
    expected = ri * (1 - rj) + (1 - ri) * rj
    if kind == "sahd":
        expected = expected * n_mat
    return n_mat - alpha * h / (expected + eps)


def spike_gram(
    packed: torch.Tensor, n: int, *, kind: str = "sahd", alpha: float = 0.5, eps: float = 1e-3
) -> torch.Tensor:
    """Sum over G layer calls of their kernels: int64 ``[..., G, B, W]`` -> float64 ``[..., B, B]``."""
    spikes = unpack_bits(packed, n)
    return spike_gram_dense(spikes, kind=kind, alpha=alpha, eps=eps)


def spike_gram_dense(
    spikes: torch.Tensor, *, kind: str = "sahd", alpha: float = 0.5, eps: float = 1e-3
) -> torch.Tensor:
    """As :func:`spike_gram` from unpacked spikes ``[..., G, B, N]`` (bool or float)."""
    n = spikes.shape[-1]
    counts = (spikes != 0).sum(dim=-1)
    hamming = hamming_from_spikes(spikes)
    return kernel_from_hamming(hamming, counts, n, kind=kind, alpha=alpha, eps=eps).sum(dim=-3)
