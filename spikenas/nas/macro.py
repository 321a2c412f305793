"""The network part of a search request (:class:`MacroOptions`) and the network configuration it implies for a
dataset (:func:`macro_for`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from spikenas.data import default_input_size, default_stem_stride
from spikenas.errors import SpikeNASError
from spikenas.network import MacroConfig
from spikenas.ops import get_op_set, op_set_family
from spikenas.resources import SIZE_FIELDS
from spikenas.typecheck import check_fields

DEFAULT_TIMESTEPS = 5  # T of the cell space's searches
AUTOSNN_TIMESTEPS = 8  # AutoSNN's T: the default of an evolution over AutoSNN's block space


@dataclass(frozen=True, kw_only=True)
class MacroOptions:
    """The networks a search scores: the op set of its cells and their sizes. The dataset fills in the rest
    (channels, classes, stem stride and, unless given, the input size: see :func:`macro_for`)."""

    op_set: str = "3O"  # registered op set (spikenas.ops.list_op_sets())
    num_cells: int = 2  # cells in the network, 1..3
    width: int = 16  # channels of the first cell
    hidden: int = 256  # units of the head's first Linear
    timesteps: int | None = None  # T; None: the algorithm's (DEFAULT_TIMESTEPS; AUTOSNN_TIMESTEPS on its space)
    input_size: int | None = None  # images resized to this; None: 16 for digits, else the dataset's own

    def __post_init__(self) -> None:
        check_fields(self)
        get_op_set(self.op_set)
        for name in SIZE_FIELDS:  # at least 1: MacroConfig checks them only once the data is loaded (0: never)
            value = getattr(self, name)
            if value is not None and value < 1:
                raise SpikeNASError(f"{name} must be an integer >= 1, got {value!r}")

    def sizes(self) -> dict[str, int | None]:
        """The fields that size the network (:data:`spikenas.resources.SIZE_FIELDS`), as
        :func:`spikenas.resources.check_memory_before_data` reads them."""
        return {name: getattr(self, name) for name in SIZE_FIELDS}

    def to_dict(self) -> dict:
        return asdict(self)


def macro_for(macro: MacroOptions, dataset: str, *, in_channels: int, num_classes: int,
              native_size: int) -> MacroConfig:
    """The network configuration that ``macro`` implies for ``dataset`` (its name; ``in_channels``,
    ``num_classes`` and ``native_size``, the side of its images, come from the loaded data).

    :raises SpikeNASError: if ``macro.timesteps`` is unresolved (None; a search request resolves it).
    """
    if macro.timesteps is None:
        raise SpikeNASError("timesteps is None: give T, or let a search request choose the algorithm's default")
    return MacroConfig(
        num_cells=macro.num_cells,
        width=macro.width,
        timesteps=macro.timesteps,
        in_channels=in_channels,
        input_size=macro.input_size or default_input_size(dataset, native_size),
        num_classes=num_classes,
        hidden=macro.hidden,
        stem_stride=default_stem_stride(dataset),
        **({"family": "speck", "vote": 1} if op_set_family(macro.op_set) == "speck" else {}),
    )
