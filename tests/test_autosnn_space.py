"""AutoSNN's space, network, memory model and super-network."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from spikingjelly.activation_based import neuron, surrogate

from spikenas.autosnn import (
    BLOCKS,
    AutoSNNConfig,
    AutoSNNSpace,
    arch_from_index,
    arch_index,
    build_network,
    enumerate_params,
    network_params,
    parse_arch,
)
from spikenas.autosnn.supernet import (
    SupernetConfig,
    SuperNetwork,
    evaluate_path,
    sample_path,
    split_indices,
    train_supernet,
)
from spikenas.errors import SpikeNASError
from spikenas.spikes import count_spikes


@pytest.fixture
def tiny() -> AutoSNNConfig:
    return AutoSNNConfig(base_channels=2, timesteps=2, in_channels=1, input_size=8)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_defaults_are_autosnns():
    c = AutoSNNConfig()
    assert (c.base_channels, c.timesteps, c.vote) == (16, 8, 10)
    assert c.channels == (16, "m", 32, 32, "m", 64, 64, "m")
    assert [io[:2] for io in c.block_io] == [(16, 16), (16, 32), (32, 32), (32, 64), (64, 64)]
    assert c.final_size == 4
    assert len(BLOCKS) ** 5 == 3125 == AutoSNNSpace(c).size()


@pytest.mark.parametrize("block", BLOCKS)
def test_memory_model_equals_built_network_every_block_everywhere(tiny, block):
    arch = (block,) * 5
    assert network_params(arch, tiny) == n_params(build_network(arch, tiny))


def test_memory_model_equals_built_network_random_archs_and_full_width():
    rng = np.random.default_rng(3)
    for config in (AutoSNNConfig(base_channels=3, in_channels=3, input_size=16, num_classes=7), AutoSNNConfig()):
        for _ in range(4):
            arch = arch_from_index(int(rng.integers(3125)))
            assert network_params(arch, config) == n_params(build_network(arch, config))


def test_enumerate_params_matches_index_order(tiny):
    table = enumerate_params(tiny)
    assert table.shape == (3125,)
    for index in (0, 1, 5, 624, 1777, 3124):
        assert table[index] == network_params(arch_from_index(index), tiny)


def test_index_round_trip_and_parse():
    for index in range(0, 3125, 97):
        assert arch_index(arch_from_index(index)) == index
    assert arch_from_index(1) == ("scb_k3", "skip", "skip", "skip", "skip")
    assert parse_arch("scb_k3, skip,srb_k5,skip,scb_k5") == ("scb_k3", "skip", "srb_k5", "skip", "scb_k5")
    assert parse_arch("1") == arch_from_index(1)
    with pytest.raises(SpikeNASError, match="blocks"):
        parse_arch("scb_k3,skip")
    with pytest.raises(SpikeNASError, match="conv7"):
        parse_arch("conv7,skip,skip,skip,skip")
    with pytest.raises(SpikeNASError, match="index"):
        arch_from_index(3125)


def test_config_validation():
    with pytest.raises(SpikeNASError, match="input_size"):
        AutoSNNConfig(input_size=7)
    with pytest.raises(SpikeNASError, match="base_channels"):
        AutoSNNConfig(base_channels=0)


def test_plif_neurons_have_autosnns_settings(tiny):
    net = build_network(("srb_k3",) * 5, tiny)
    plifs = [m for m in net.modules() if isinstance(m, neuron.BaseNode)]
    assert plifs and all(isinstance(m, neuron.ParametricLIFNode) for m in plifs)
    for m in plifs:
        assert float(1.0 / m.w.detach().sigmoid()) == pytest.approx(2.0)
        assert (m.v_threshold, m.v_reset, m.detach_reset, m.step_mode) == (1.0, 0.0, True, "m")
        assert isinstance(m.surrogate_function, surrogate.ATan)


def test_forward_shape_rates_and_seeded_build(tiny):
    x = torch.randn(3, 1, 8, 8)
    a = build_network(("scb_k5", "srb_k3", "skip", "srb_k5", "scb_k3"), tiny, seed=1)
    b = build_network(("scb_k5", "srb_k3", "skip", "srb_k5", "scb_k3"), tiny, seed=1)
    out = a(x)
    assert out.shape == (3, 10)
    assert torch.equal(out, b(x))
    assert ((out >= 0) & (out <= 1)).all()


def test_space_interface(tiny):
    space = AutoSNNSpace(tiny)
    arch = ("skip", "scb_k3", "scb_k5", "srb_k3", "srb_k5")
    assert space.is_valid(arch) and space.key(arch) == arch
    assert space.params(arch) == n_params(space.build(arch))
    d = space.describe(arch)
    assert d["blocks"] == list(arch) and d["index"] == arch_index(arch) and len(d["positions"]) == 5
    assert space.from_json(space.to_json(arch)) == arch


def test_supernet_path_equals_inherited_network(tiny):
    torch.manual_seed(0)
    supernet = SuperNetwork(tiny)
    x = torch.randn(4, 1, 8, 8)
    for arch in [("srb_k5",) * 5, ("skip", "scb_k3", "srb_k3", "scb_k5", "skip")]:
        net = supernet.inherit(arch)
        assert n_params(net) == network_params(arch, tiny)
        assert torch.equal(supernet(x, arch), net(x))


def test_a_step_trains_only_the_sampled_path(tiny):
    supernet = SuperNetwork(tiny)
    arch = ("scb_k3", "srb_k5", "skip", "scb_k5", "srb_k3")
    supernet(torch.randn(4, 1, 8, 8), arch).sum().backward()
    for i, position in enumerate((0, 2, 3, 5, 6)):
        for block, module in supernet.layers[position].items():
            grads = [p.grad for p in module.parameters()]
            if block == arch[i]:
                assert all(g is not None for g in grads)
            else:
                assert all(g is None for g in grads)


def test_split_is_seeded_disjoint_80_20():
    train, val = split_indices(100, val_fraction=0.2, seed=3)
    assert len(train) == 80 and len(val) == 20
    assert set(train).isdisjoint(val) and set(train) | set(val) == set(range(100))
    assert np.array_equal(split_indices(100, val_fraction=0.2, seed=3)[1], val)
    assert not np.array_equal(split_indices(100, val_fraction=0.2, seed=4)[1], val)


def test_sample_path_uniform_ish():
    rng = np.random.default_rng(0)
    paths = [sample_path(rng) for _ in range(500)]
    counts = {b: sum(p[0] == b for p in paths) for b in BLOCKS}
    assert all(60 <= c <= 140 for c in counts.values())


def _data(n: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(n, 1, 8, 8, generator=gen), torch.arange(n) % 10


def test_training_checkpoint_and_exact_resume(tiny, tmp_path):
    x, y = _data()
    torch.manual_seed(0)
    straight = SuperNetwork(tiny)
    log = train_supernet(straight, x, y, config=SupernetConfig(epochs=2, batch_size=8, seed=5), progress=False)
    assert log.epochs_done == 2 and len(log.epoch_loss) == 2 and all(np.isfinite(log.epoch_loss))

    ckpt = tmp_path / "s.pt"
    torch.manual_seed(0)
    stopped = SuperNetwork(tiny)  # a run stopped after its first epoch
    train_supernet(stopped, x, y, config=SupernetConfig(epochs=1, batch_size=8, seed=5), checkpoint=ckpt,
                   progress=False)
    assert ckpt.exists()
    resumed = SuperNetwork(tiny)
    log = train_supernet(resumed, x, y, config=SupernetConfig(epochs=2, batch_size=8, seed=5), checkpoint=ckpt,
                         resume=True, progress=False)
    assert log.resumed_from == 1 and log.epochs_done == 2
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    with pytest.raises(SpikeNASError, match="resume"):  # another training configuration is refused
        train_supernet(SuperNetwork(tiny), x, y, config=SupernetConfig(epochs=3, batch_size=4, seed=5),
                       checkpoint=ckpt, resume=True, progress=False)


def test_evaluate_path_counts_spikes_like_count_spikes(tiny):
    torch.manual_seed(0)
    supernet = SuperNetwork(tiny)
    x, y = _data(20)
    arch = ("scb_k3", "srb_k3", "scb_k5", "skip", "srb_k5")
    result = evaluate_path(supernet, arch, x, y, batch_size=8)
    assert 0.0 <= result.accuracy <= 1.0 and result.samples == 20
    expected = count_spikes(supernet.inherit(arch), [x[:8], x[8:16], x[16:]]).total
    assert result.spikes == pytest.approx(expected)
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    calibrated = evaluate_path(supernet, arch, x, y, batch_size=8, calibration=x)
    assert 0.0 <= calibrated.accuracy <= 1.0
    # calibration works on the inherited copy: the super-network is untouched
    assert all(torch.equal(before[k], v) for k, v in supernet.state_dict().items())
