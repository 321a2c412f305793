"""The memory check of spikenas.resources: what its lower bound counts, and that it stays a lower bound."""

from __future__ import annotations

import pytest

from spikenas.errors import SpikeNASError
from spikenas.memory import fixed_params
from spikenas.network import MacroConfig, build_network
from spikenas.resources import (
    FLOAT_BYTES,
    LIVE_ACTIVATIONS,
    TRAINING_COPIES,
    check_memory,
    check_memory_before_data,
    estimate_memory,
    machine_memory,
)
from spikenas.space import Genotype

MACRO = MacroConfig(num_cells=2, width=4, timesteps=3, in_channels=1, input_size=16, hidden=32)


def test_estimate_counts_fixed_parameters_first_cell_maps_and_images() -> None:
    scoring = estimate_memory(MACRO, batch_size=8, num_batches=2)
    assert scoring.parameter_bytes == FLOAT_BYTES * fixed_params(MACRO)
    assert scoring.activation_bytes == FLOAT_BYTES * LIVE_ACTIVATIONS * 3 * 8 * 4 * 16 * 16
    assert scoring.input_bytes == FLOAT_BYTES * 2 * 8 * 1 * 16 * 16
    training = estimate_memory(MACRO, batch_size=8, num_batches=2, training=True)
    assert training.parameter_bytes == TRAINING_COPIES * scoring.parameter_bytes
    assert training.total_bytes > scoring.total_bytes


@pytest.mark.parametrize("index", [0, 7, 728])
def test_parameter_bound_is_below_every_network(index: int) -> None:
    network = build_network(Genotype.from_index(index, "3O"), MACRO, seed=0)
    real = FLOAT_BYTES * sum(p.numel() for p in network.parameters())
    assert estimate_memory(MACRO, batch_size=2).parameter_bytes <= real


def test_bound_before_data_is_below_the_bound_after() -> None:
    fields = {"num_cells": 2, "width": 4, "hidden": 32, "timesteps": 3, "input_size": None}
    before = check_memory_before_data(fields, batch_size=8)
    after = check_memory(MACRO, batch_size=8)
    assert before is not None and before.total_bytes <= after.total_bytes


def test_refusal_names_both_figures() -> None:
    with pytest.raises(SpikeNASError, match=r"needs about .* GiB .* has 0\.0 GiB"):
        check_memory(MACRO, batch_size=8, available=1024)
    assert check_memory(MACRO, batch_size=8).total_bytes < machine_memory()
