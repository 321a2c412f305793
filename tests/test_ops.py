"""Every registered op: shape-preserving, and its analytical parameter count is exact."""

from __future__ import annotations

import pytest
import torch

from spikenas.neuron import NeuronConfig
from spikenas.ops import get_op, list_ops


@pytest.mark.parametrize("name", list_ops())
@pytest.mark.parametrize("channels", [1, 3, 8])
def test_op_params_and_shape(name, channels):
    op = get_op(name)
    module = op.build(channels, NeuronConfig())
    assert sum(p.numel() for p in module.parameters()) == op.params(channels)
    x = torch.randn(2, 3, channels, 5, 5)
    with torch.no_grad():
        y = module(x)
    assert y.shape == x.shape
    if op.is_zero:
        assert not y.any()
