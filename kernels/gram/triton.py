"""Hamming Gram and spike kernels in Triton: popcounts of XORed packed words.

The int64 words are read as pairs of int32 words (the same bits; popcount is additive). One
program owns a BLOCK_B x BLOCK_B tile on or above the block diagonal (a table lists the tiles),
loops over BLOCK_K-word chunks, XORs its two row blocks in a [BLOCK_B, BLOCK_B, BLOCK_K] broadcast
and sums the popcounts; it writes the tile and its mirror image. ``spike_gram`` keeps looping
over the G layer calls inside the program and accumulates the kernel formula in float64, so the
Hamming matrices are never stored; when tiles are too few to fill the GPU, G is split over
programs into a few partial sums that torch adds. ``hamming_gram`` splits the word axis with
integer atomics in that case. The popcount is the hardware ``popc`` on a GPU and SWAR under the
interpreter (``USE_SWAR``).
Results: Hamming counts equal the reference exactly; kernel matrices agree to ~1e-15 relative.
"""

from __future__ import annotations

import functools
import math

import torch
from spikenas.kernels import _triton
from spikenas.kernels._triton import tl, triton

if triton is not None:
    from spikenas.kernels._triton import popcount32

unavailable_reason = _triton.unavailable_reason

_KINDS = {"hamming": 0, "sahd": 1, "sahd_rate": 2}


def _config(b: int, *, spike: bool = False) -> dict[str, int]:
    """Tile edge, int32 words per step and warps per program for B rows.

    Under the interpreter: few, large programs (each runs serially in NumPy). On a GPU: narrow
    tiles and long word chunks, the fastest of a sweep on an H100 (B = 4 to 256, N = 131072):
    8 x 8 tiles, 256 words per step (128 for spike_gram), 2 warps.
    """
    if _triton.interpreting():
        return {"BLOCK_B": 64, "BLOCK_K": 16, "num_warps": 1}
    block_b = min(8, max(2, triton.next_power_of_2(b)))
    return {"BLOCK_B": block_b, "BLOCK_K": 128 if spike else 256, "num_warps": 2}


@functools.cache
def _tiles(tiles_per_side: int, device: torch.device) -> torch.Tensor:
    """int32 ``[T(T+1)/2, 2]`` (ti, tj) with ti <= tj."""
    pairs = [(i, j) for i in range(tiles_per_side) for j in range(i, tiles_per_side)]
    return torch.tensor(pairs, dtype=torch.int32, device=device).reshape(-1, 2)


if triton is not None:

    @triton.jit
    def _tile_rows(tiles_ptr, t, BLOCK_B: tl.constexpr):
        ti = tl.load(tiles_ptr + 2 * t)
        tj = tl.load(tiles_ptr + 2 * t + 1)
        return ti * BLOCK_B + tl.arange(0, BLOCK_B), tj * BLOCK_B + tl.arange(0, BLOCK_B)

    @triton.jit
    def _hamming_chunk(base, i, j, b, words, k0, BLOCK_K: tl.constexpr, USE_SWAR: tl.constexpr):
        """Popcounts of rows i XOR rows j over words [k0, k0 + BLOCK_K), and of each row alone."""
        k = k0 + tl.arange(0, BLOCK_K)
        a = tl.load(base + i[:, None] * words + k[None, :], mask=(i[:, None] < b) & (k[None, :] < words), other=0)
        c = tl.load(base + j[:, None] * words + k[None, :], mask=(j[:, None] < b) & (k[None, :] < words), other=0)
        h = tl.sum(popcount32(a[:, None, :] ^ c[None, :, :], USE_SWAR), axis=2)
        return h, tl.sum(popcount32(a, USE_SWAR), axis=1), tl.sum(popcount32(c, USE_SWAR), axis=1)

    @triton.jit
    def _hamming_kernel(
        x_ptr,
        out_ptr,
        tiles_ptr,
        ntiles,
        b,
        words,
        words_per_split,
        BLOCK_B: tl.constexpr,
        BLOCK_K: tl.constexpr,
        ATOMIC: tl.constexpr,
        USE_SWAR: tl.constexpr,
    ):
        # Axis 0 enumerates (slice, tile): the other grid axes are limited to 65535.
        pid = tl.program_id(0).to(tl.int64)
        s = pid // ntiles
        i, j = _tile_rows(tiles_ptr, pid % ntiles, BLOCK_B)
        k_begin = tl.program_id(1) * words_per_split
        base = x_ptr + s * b * words
        acc = tl.zeros([BLOCK_B, BLOCK_B], dtype=tl.int32)
        for k0 in range(k_begin, k_begin + words_per_split, BLOCK_K):
            h, _, _ = _hamming_chunk(base, i, j, b, words, k0, BLOCK_K, USE_SWAR)
            acc += h
        # Only i <= j is written, to (i, j) and (j, i): exactly symmetric, each entry once.
        keep = (i[:, None] <= j[None, :]) & (j[None, :] < b)
        out = out_ptr + s * b * b
        if ATOMIC:
            tl.atomic_add(out + i[:, None] * b + j[None, :], acc, mask=keep & (i[:, None] < j[None, :]))
            tl.atomic_add(out + j[None, :] * b + i[:, None], acc, mask=keep & (i[:, None] < j[None, :]))
        else:
            tl.store(out + i[:, None] * b + j[None, :], acc, mask=keep)
            tl.store(out + j[None, :] * b + i[:, None], acc, mask=keep)

    @triton.jit
    def _spike_kernel(
        x_ptr,
        out_ptr,
        tiles_ptr,
        ntiles,
        params_ptr,
        groups,
        parts,
        b,
        words,
        KIND: tl.constexpr,
        BLOCK_B: tl.constexpr,
        BLOCK_K: tl.constexpr,
        USE_SWAR: tl.constexpr,
    ):
        # float64 (n, alpha, eps) from memory: scalar float arguments would arrive as float32.
        nf = tl.load(params_ptr)
        alpha = tl.load(params_ptr + 1)
        eps = tl.load(params_ptr + 2)
        pid = tl.program_id(0).to(tl.int64)
        item_part = pid // ntiles
        item = item_part // parts
        part = item_part % parts
        i, j = _tile_rows(tiles_ptr, pid % ntiles, BLOCK_B)
        g_begin = groups * part // parts
        g_end = groups * (part + 1) // parts
        acc = tl.zeros([BLOCK_B, BLOCK_B], dtype=tl.float64)
        for g in range(g_begin, g_end):
            base = x_ptr + (item * groups + g) * b * words
            h = tl.zeros([BLOCK_B, BLOCK_B], dtype=tl.int32)
            ci = tl.zeros([BLOCK_B], dtype=tl.int32)
            cj = tl.zeros([BLOCK_B], dtype=tl.int32)
            for k0 in range(0, words, BLOCK_K):
                dh, di, dj = _hamming_chunk(base, i, j, b, words, k0, BLOCK_K, USE_SWAR)
                h += dh
                ci += di
                cj += dj
            hf = h.to(tl.float64)
            if KIND == 0:
                acc += nf - hf
            else:
                ri = (ci.to(tl.float64) / nf)[:, None]
                rj = (cj.to(tl.float64) / nf)[None, :]
                expected = ri * (1 - rj) + (1 - ri) * rj
                if KIND == 1:
                    expected = expected * nf
                acc += nf - alpha * hf / (expected + eps)
        keep = (i[:, None] <= j[None, :]) & (j[None, :] < b)
        out = out_ptr + item_part * b * b
        tl.store(out + i[:, None] * b + j[None, :], acc, mask=keep)
        tl.store(out + j[None, :] * b + i[:, None], acc, mask=keep)


def _words32(packed: torch.Tensor) -> torch.Tensor:
    """Contiguous int32 view ``[..., 2W]`` of int64 words (low half first, as the bits go)."""
    return packed.detach().contiguous().view(torch.int32)


def hamming_gram(packed: torch.Tensor, n: int, *, use_swar: bool | None = None) -> torch.Tensor:
    """Hamming distances between packed rows: int64 ``[..., B, W]`` -> int32 ``[..., B, B]``.

    :param n: the unpacked row length; bits past it must be zero (they are counted).
    :param use_swar: force the SWAR (True) or hardware (False) popcount; default by device.
    """
    _triton.check_device(packed, "packed")
    b, words = packed.shape[-2:]
    slices = math.prod(packed.shape[:-2])
    out = torch.zeros(*packed.shape[:-1], b, dtype=torch.int32, device=packed.device)
    if slices == 0 or words == 0:
        return out
    cfg = _config(b)
    x = _words32(packed)
    w32 = 2 * words
    tiles = _tiles(triton.cdiv(b, cfg["BLOCK_B"]), packed.device)
    # Split the word axis (integer atomics) until the grid covers the GPU twice.
    target = 2 * _triton.multiprocessors(_triton.device_index(packed))
    split = min(max(1, target // (slices * len(tiles))), triton.cdiv(w32, cfg["BLOCK_K"]))
    per_split = triton.cdiv(triton.cdiv(w32, split), cfg["BLOCK_K"]) * cfg["BLOCK_K"]
    split = triton.cdiv(w32, per_split)
    _hamming_kernel[(slices * len(tiles), split)](
        x,
        out,
        tiles,
        len(tiles),
        b,
        w32,
        per_split,
        BLOCK_B=cfg["BLOCK_B"],
        BLOCK_K=cfg["BLOCK_K"],
        ATOMIC=split > 1,
        USE_SWAR=_triton.use_swar() if use_swar is None else use_swar,
        num_warps=cfg["num_warps"],
    )
    return out


def spike_gram(
    packed: torch.Tensor,
    n: int,
    *,
    kind: str = "sahd",
    alpha: float = 0.5,
    eps: float = 1e-3,
    use_swar: bool | None = None,
) -> torch.Tensor:
    """Sum over G layer calls of their kernels: int64 ``[..., G, B, W]`` -> float64 ``[..., B, B]``.

    :param use_swar: force the SWAR (True) or hardware (False) popcount; default by device.
    """
    _triton.check_device(packed, "packed")
    groups, b, words = packed.shape[-3:]
    lead = packed.shape[:-3]
    items = math.prod(lead)
    if items == 0 or groups == 0:
        return torch.zeros(*lead, b, b, dtype=torch.float64, device=packed.device)
    cfg = _config(b, spike=True)
    x = _words32(packed)
    tiles = _tiles(triton.cdiv(b, cfg["BLOCK_B"]), packed.device)
    # Split G into parts (summed by torch afterwards) until the grid covers the GPU twice.
    target = 2 * _triton.multiprocessors(_triton.device_index(packed))
    parts = min(groups, max(1, target // (items * len(tiles))))
    partial = torch.empty(items * parts, b, b, dtype=torch.float64, device=packed.device)
    params = torch.tensor([n, alpha, eps], dtype=torch.float64, device=packed.device)
    _spike_kernel[(items * parts * len(tiles),)](
        x,
        partial,
        tiles,
        len(tiles),
        params,
        groups,
        parts,
        b,
        2 * words,
        KIND=_KINDS[kind],
        BLOCK_B=cfg["BLOCK_B"],
        BLOCK_K=cfg["BLOCK_K"],
        USE_SWAR=_triton.use_swar() if use_swar is None else use_swar,
        num_warps=cfg["num_warps"],
    )
    out = partial.view(items, parts, b, b).sum(dim=1) if parts > 1 else partial
    return out.view(*lead, b, b)


def spike_gram_dense(
    spikes: torch.Tensor, *, kind: str = "sahd", alpha: float = 0.5, eps: float = 1e-3
) -> torch.Tensor:
    """As :func:`spike_gram` from unpacked spikes ``[..., G, B, N]``: packs with the Triton packer
    (the packed copy is 8x to 64x smaller than the spikes), then accumulates."""
    from spikenas.kernels.pack.triton import pack_bits

    return spike_gram(pack_bits(spikes), spikes.shape[-1], kind=kind, alpha=alpha, eps=eps)
