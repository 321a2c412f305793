"""Post-training symmetric uniform weight quantization to k bits, and memory in bytes (SpikeNAS Eq. 8).

Every parameter tensor is quantized (conv and linear weights, BatchNorm's affine weight and bias, the
head's bias): ``q(w) = clamp(round(w / s), -Q, Q) * s`` with ``Q = 2**(k-1) - 1`` and
``s = max|w| / Q`` over the whole tensor (``per_tensor``) or over each output channel, i.e. each
slice along dim 0 (``per_channel``). One-dimensional tensors (BN parameters, biases) always use one
scale per tensor: a scale per element would store every value exactly in its own float scale, which
is no quantization at all. BatchNorm's running statistics are buffers, not parameters; the memory
model does not count them and they are left in float32 (at inference they fold into the affine).

Memory is ``params x bits`` (Eq. 8) through :func:`spikenas.memory.params_to_bytes`, the same figure a
search's byte budget uses. The float32 scales (one per tensor or per output channel) are reported
separately as ``scale_bytes``; Eq. 8 leaves them out.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import nn

from spikenas.errors import SpikeNASError
from spikenas.memory import params_to_bytes

GRANULARITIES = ("per_tensor", "per_channel")
MIN_BITS, MAX_BITS = 2, 16


def _check(bits: int, granularity: str) -> None:
    if not (isinstance(bits, int) and MIN_BITS <= bits <= MAX_BITS):
        raise SpikeNASError(f"bits must be an integer in {MIN_BITS}..{MAX_BITS}, got {bits!r}")
    if granularity not in GRANULARITIES:
        raise SpikeNASError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")


def quant_scale(weight: torch.Tensor, *, bits: int, granularity: str = "per_channel") -> torch.Tensor:
    """Scale ``s`` of ``weight``: float32 ``[]`` per tensor, ``[C_out, 1, ...]`` per channel (broadcastable).

    An all-zero tensor or channel gets scale 1 (its values quantize to 0 exactly).
    """
    _check(bits, granularity)
    levels = 2 ** (bits - 1) - 1
    w = weight.detach().float()
    if granularity == "per_channel" and w.ndim >= 2:
        amax = w.abs().flatten(1).amax(dim=1).view(-1, *([1] * (w.ndim - 1)))
    else:
        amax = w.abs().amax()
    return torch.where(amax > 0, amax / levels, torch.ones_like(amax))


def quantize_tensor(weight: torch.Tensor, *, bits: int, granularity: str = "per_channel") -> torch.Tensor:
    """Symmetric uniform quantization of ``weight`` (any shape, float) to ``bits`` bits, returned dequantized.

    :returns: same shape and dtype; every entry is an integer in ``[-Q, Q]`` times its scale, and
        ``|w - q(w)| <= s / 2``.
    """
    scale = quant_scale(weight, bits=bits, granularity=granularity)
    levels = 2 ** (bits - 1) - 1
    q = torch.clamp(torch.round(weight.detach().float() / scale), -levels, levels) * scale
    return q.to(weight.dtype)


def quantize_model(model: nn.Module, *, bits: int, granularity: str = "per_channel") -> nn.Module:
    """A deep copy of ``model`` with every parameter tensor quantized; ``model`` is left unchanged."""
    _check(bits, granularity)
    out = copy.deepcopy(model)
    with torch.no_grad():
        for param in out.parameters():
            param.copy_(quantize_tensor(param, bits=bits, granularity=granularity))
    return out


def count_params(model: nn.Module) -> int:
    """Parameters of ``model`` (what SpikeNAS's N_param counts: weights, biases, BN affine)."""
    return sum(p.numel() for p in model.parameters())


def scale_count(model: nn.Module, *, granularity: str) -> int:
    """Number of float32 scales quantization stores for ``model``."""
    total = 0
    for p in model.parameters():
        total += p.shape[0] if granularity == "per_channel" and p.ndim >= 2 else 1
    return total


def model_bytes(model: nn.Module, *, bits: int) -> int:
    """Memory in bytes of ``model``'s parameters at ``bits`` each (Eq. 8, rounded up to whole bytes)."""
    return int(params_to_bytes(count_params(model), bits))


def quantization_table(
    model: nn.Module,
    accuracy_fn: Callable[[nn.Module], float],
    *,
    bits: Sequence[int],
    granularity: str = "per_channel",
) -> list[dict]:
    """Accuracy and memory of ``model`` at float32 and at each of ``bits``.

    :param accuracy_fn: maps a model to its accuracy in [0, 1] (for example test-set accuracy).
    :returns: one row per precision: bits, granularity, params, bytes, scale_bytes, accuracy and
        max_abs_error (the largest weight change quantization made); the float32 row comes first.
    """
    params = count_params(model)
    rows = [
        {
            "bits": 32, "granularity": "float32", "params": params, "bytes": model_bytes(model, bits=32),
            "scale_bytes": 0, "accuracy": accuracy_fn(model), "max_abs_error": 0.0,
        }
    ]
    for k in bits:
        quantized = quantize_model(model, bits=k, granularity=granularity)
        error = max(
            float((p.detach() - q.detach()).abs().max())
            for p, q in zip(model.parameters(), quantized.parameters(), strict=True)
        )
        rows.append(
            {
                "bits": k,
                "granularity": granularity,
                "params": params,
                "bytes": model_bytes(model, bits=k),
                "scale_bytes": 4 * scale_count(model, granularity=granularity),
                "accuracy": accuracy_fn(quantized),
                "max_abs_error": error,
            }
        )
    return rows
