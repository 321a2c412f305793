"""The fast path's LIF (spikenas.nas.stacked.lif_spikes) against spikingjelly's LIFNode, exactly."""

from __future__ import annotations

import itertools

import pytest
import torch
from spikingjelly.activation_based import neuron, surrogate

from spikenas.nas.stacked import lif_spikes, stacked_gram


@pytest.mark.parametrize(("tau", "threshold", "v_reset", "decay_input"),
                         list(itertools.product([2.0, 1.5], [1.0, 0.3], [0.0, None, -0.2], [True, False])))
def test_lif_spikes_equal_spikingjelly(tau, threshold, v_reset, decay_input):
    m = neuron.LIFNode(tau=tau, v_threshold=threshold, v_reset=v_reset, decay_input=decay_input,
                       surrogate_function=surrogate.ATan(), step_mode="m")
    gen = torch.Generator().manual_seed(0)
    for shape in [(5, 16, 4, 3, 3), (3, 7, 11), (1, 2, 5)]:
        x = torch.randn(shape, generator=gen) * 2
        with torch.no_grad():
            m.reset()
            expected = m(x)
            m.reset()
            got = lif_spikes(m, x)
        assert got.dtype == expected.dtype and torch.equal(got, expected)
        assert isinstance(m.v, float)  # left reset


def test_lif_spikes_falls_back_outside_its_conditions():
    m = neuron.LIFNode(tau=2.0, step_mode="m")
    x = (torch.randn(4, 3, 5, generator=torch.Generator().manual_seed(1)) * 2).requires_grad_()
    m.reset()
    expected = m(x).detach()  # gradients on: lif_spikes must run the module itself
    m.reset()
    got = lif_spikes(m, x)
    assert got.requires_grad and torch.equal(got.detach(), expected)
    with torch.no_grad():
        m.reset()
        expected64 = m(x.double())
        m.reset()
        assert torch.equal(lif_spikes(m, x.double()), expected64)  # float64: spikingjelly's path


def test_stacked_gram_bool_layout_equals_float_spikes():
    from spikenas import kernels

    gen = torch.Generator().manual_seed(2)
    t, b, n, c = 3, 6, 4, 10
    spikes = (torch.rand(t, b * n, c, generator=gen) < 0.3).float()
    got = stacked_gram(spikes, n, lambda s: kernels.spike_gram_dense(s, backend="torch"))
    per = spikes.view(t, b, n, c).permute(2, 0, 1, 3).contiguous()
    assert torch.equal(got, kernels.spike_gram_dense(per, backend="torch"))
