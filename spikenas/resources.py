"""Whether a network fits the machine's memory, checked before any work starts.

:func:`check_memory` compares a lower bound on the memory that scoring or training a network of a
:class:`~spikenas.network.MacroConfig` needs with the memory of the machine (or of the GPU it trains
on), and refuses with both figures when the bound alone exceeds it, so that a search with
``--width 100000`` stops at once instead of after scoring every candidate.

The bound (:func:`estimate_memory`) counts float32 numbers (4 bytes each) that must exist at the same
time whatever the cells are:

* parameters: :func:`spikenas.memory.fixed_params` (stem, downconvs, head; cells may hold no
  parameters), times :data:`TRAINING_COPIES` when training (weights, gradients, optimizer state);
* activations: :data:`LIVE_ACTIVATIONS` tensors of the first cell's feature maps
  ``[T, B, C, H, W]`` (a cell's input node and the output being computed from it; the first cell has
  the most elements per sample, as every later one halves H and W and only doubles C);
* inputs: the scoring or training images ``[num_batches, B, C, S, S]``.

A network the check passes may still run out of memory (the true peak is several times the bound);
one it refuses cannot run here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from spikenas.errors import SpikeNASError
from spikenas.memory import fixed_params
from spikenas.network import MacroConfig

if TYPE_CHECKING:
    from spikenas.autosnn.network import AutoSNNConfig

FLOAT_BYTES = 4
#: feature-map tensors of the first cell alive together in any forward pass (input node and one output)
LIVE_ACTIVATIONS = 2
#: copies of every parameter while training: weights, gradients and one optimizer state (SGD momentum)
TRAINING_COPIES = 3
GIB = 2**30
#: the fields of a search request that size its network, all that :func:`check_memory_before_data` reads of it
SIZE_FIELDS = ("num_cells", "width", "hidden", "timesteps", "input_size")


@dataclass(frozen=True)
class MemoryEstimate:
    """Lower bounds, in bytes, on what scoring or training one network holds at once."""

    parameter_bytes: int  # fixed parameters (x TRAINING_COPIES when training)
    activation_bytes: int  # LIVE_ACTIVATIONS first-cell feature maps of one batch over T
    input_bytes: int  # the image batches

    @property
    def total_bytes(self) -> int:
        return self.parameter_bytes + self.activation_bytes + self.input_bytes

    def describe(self) -> str:
        return (
            f"about {self.total_bytes / GIB:,.1f} GiB (parameters {self.parameter_bytes / GIB:,.1f} GiB, "
            f"activations {self.activation_bytes / GIB:,.1f} GiB, images {self.input_bytes / GIB:,.1f} GiB)"
        )


def estimate_memory(
    macro: MacroConfig, *, batch_size: int, num_batches: int = 1, training: bool = False
) -> MemoryEstimate:
    """A lower bound on the bytes that scoring (``training=False``) or training a network of ``macro`` holds
    at once, for any cells: see the module docstring for what it counts.

    :param batch_size: samples per forward pass (B).
    :param num_batches: image batches held in memory together (scoring keeps all of them).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise SpikeNASError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if isinstance(num_batches, bool) or not isinstance(num_batches, int) or num_batches < 1:
        raise SpikeNASError(f"num_batches must be an integer >= 1, got {num_batches!r}")
    params = fixed_params(macro) * (TRAINING_COPIES if training else 1)
    size = macro.cell_sizes[0]
    feature_map = macro.timesteps * batch_size * macro.cell_widths[0] * size * size
    images = num_batches * batch_size * macro.in_channels * macro.input_size**2
    return MemoryEstimate(
        parameter_bytes=params * FLOAT_BYTES,
        activation_bytes=LIVE_ACTIVATIONS * feature_map * FLOAT_BYTES,
        input_bytes=images * FLOAT_BYTES,
    )


def machine_memory(device: str = "cpu") -> int:
    """Bytes of memory on ``device``: the machine's physical memory for the CPU, the GPU's total memory for
    a CUDA device."""
    import torch

    target = torch.device(device)
    if target.type == "cuda":
        return int(torch.cuda.get_device_properties(target).total_memory)
    return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def check_memory(
    macro: MacroConfig,
    *,
    batch_size: int,
    num_batches: int = 1,
    training: bool = False,
    device: str = "cpu",
    available: int | None = None,
) -> MemoryEstimate:
    """Raise :class:`SpikeNASError` when the lower bound of :func:`estimate_memory` exceeds the memory of
    ``device`` (or ``available`` bytes, when given); return the estimate otherwise.

    :raises SpikeNASError: one line with the estimate, the machine's memory and what to reduce.
    """
    estimate = estimate_memory(macro, batch_size=batch_size, num_batches=num_batches, training=training)
    _refuse_beyond(estimate, device=device, available=available, what=(
        f"{'training' if training else 'scoring'} this network (width {macro.width}, hidden {macro.hidden}, "
        f"T {macro.timesteps}, input {macro.input_size}, batch {batch_size})"),
        reduce="the width, hidden units, timesteps, input size or batch size")
    return estimate


def check_autosnn_memory(
    config: AutoSNNConfig, *, batch_size: int, num_batches: int = 1, device: str = "cpu", available: int | None = None
) -> MemoryEstimate:
    """:func:`check_memory` for an AutoSNN network: the bound counts the stem's feature maps
    (:data:`LIVE_ACTIVATIONS` tensors ``[T, B, base_channels, S, S]``) and the images; parameters are left out
    (the blocks are searched), so it stays a lower bound.

    :raises SpikeNASError: one line with the estimate, the machine's memory and what to reduce.
    """
    feature_map = config.timesteps * batch_size * config.base_channels * config.input_size**2
    estimate = MemoryEstimate(
        parameter_bytes=0,
        activation_bytes=LIVE_ACTIVATIONS * feature_map * FLOAT_BYTES,
        input_bytes=num_batches * batch_size * config.in_channels * config.input_size**2 * FLOAT_BYTES,
    )
    _refuse_beyond(estimate, device=device, available=available, what=(
        f"scoring this AutoSNN network (base channels {config.base_channels}, T {config.timesteps}, "
        f"input {config.input_size}, batch {batch_size})"), reduce="the width, timesteps, input size or batch size")
    return estimate


def _refuse_beyond(estimate: MemoryEstimate, *, device: str, available: int | None, what: str, reduce: str) -> None:
    """Raise :class:`SpikeNASError` when ``estimate`` exceeds ``available`` bytes (default: ``device``'s memory)."""
    limit = machine_memory(device) if available is None else available
    if estimate.total_bytes > limit:
        where = "this machine" if str(device).startswith("cpu") else f"device {device}"
        raise SpikeNASError(f"{what} needs {estimate.describe()}, {where} has {limit / GIB:,.1f} GiB: reduce {reduce}")


def check_memory_before_data(
    fields: Mapping[str, object],
    *,
    batch_size: int,
    num_batches: int = 1,
    training: bool = False,
    device: str = "cpu",
) -> MemoryEstimate | None:
    """:func:`check_memory` before the dataset is read, so that loading a large dataset is not wasted.

    :param fields: the network's :class:`~spikenas.network.MacroConfig` fields known so far (``num_cells``,
        ``width``, ``hidden``, ``timesteps``, ``input_size``, ...; a missing or None one takes MacroConfig's
        default, except the input size). What the data decides is taken at its smallest: 1 image channel,
        1 class, stem stride 2, and the smallest input size the network takes when ``input_size`` is unknown,
        so the bound stays below the one checked once the data is known.
    :returns: the estimate, or None when the provisional network is not a valid one (the data will decide, and
        :func:`check_memory` checks it then).
    """
    known = {k: v for k, v in fields.items() if v is not None and k in ("num_cells", "width", "hidden", "timesteps")}
    num_cells = known.get("num_cells", MacroConfig.num_cells)
    size = fields.get("input_size")
    try:
        macro = MacroConfig(**known, in_channels=1, num_classes=1, vote=1, stem_stride=2,
                            input_size=size if size is not None else 2 ** (num_cells + 1))
    except (SpikeNASError, TypeError):
        return None
    return check_memory(macro, batch_size=batch_size, num_batches=num_batches, training=training, device=device)
