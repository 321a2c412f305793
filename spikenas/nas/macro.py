"""The network configuration that a search request implies for a dataset."""

from __future__ import annotations

from typing import TYPE_CHECKING

from spikenas.data import default_input_size, default_stem_stride
from spikenas.network import MacroConfig

if TYPE_CHECKING:
    from spikenas.nas import SearchConfig


def macro_for(config: SearchConfig, *, in_channels: int, num_classes: int, native_size: int) -> MacroConfig:
    """The network configuration a search request implies for a dataset."""
    size = config.input_size or default_input_size(config.dataset, native_size)
    return MacroConfig(
        num_cells=config.num_cells,
        width=config.width,
        timesteps=config.timesteps,
        in_channels=in_channels,
        input_size=size,
        num_classes=num_classes,
        hidden=config.hidden,
        stem_stride=default_stem_stride(config.dataset),
    )
