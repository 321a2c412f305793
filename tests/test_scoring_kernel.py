"""Spike-kernel scores against explicit loops, their invariants, statuses and input forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from spikingjelly.activation_based import layer, neuron
from torch import nn

from spikenas.errors import SpikeNASError
from spikenas.network import build_network
from spikenas.neuron import NeuronConfig, make_lif
from spikenas.scoring import ScoreConfig, kernel_matrix, score_network
from spikenas.space import Genotype


class TwoLayerProbe(nn.Module):
    """Two multi-step LIFs fed disjoint slices of the input; an input of 0 or 2 fires exactly when 2
    (V = 2 / tau = 1.5 >= 1, then a hard reset to 0), so the spikes equal the input pattern."""

    def __init__(self, split: int) -> None:
        super().__init__()
        self.split = split
        self.a, self.b = make_lif(NeuronConfig()), make_lif(NeuronConfig())

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [T, B, N]
        return torch.cat([self.a(x[..., : self.split]), self.b(x[..., self.split :])], dim=-1)


def brute_force_kernel(patterns: list[np.ndarray], kind: str, alpha: float = 0.5) -> np.ndarray:
    """Explicit loops over pairs and bits; ``patterns``: one 0/1 array [B, N] per neuron call."""
    b = patterns[0].shape[0]
    total = np.zeros((b, b))
    for x in patterns:
        n = x.shape[1]
        for i in range(b):
            for j in range(b):
                h = sum(int(x[i, k] != x[j, k]) for k in range(n))
                if kind == "hamming":
                    total[i, j] += n - h
                else:
                    ri, rj = x[i].sum() / n, x[j].sum() / n
                    expected = ri * (1 - rj) + (1 - ri) * rj
                    if kind == "sahd":
                        expected *= n
                    total[i, j] += n - alpha * h / (expected + 1e-3)
    return total


@pytest.mark.parametrize("kind", ["sahd", "sahd_rate", "hamming"])
@pytest.mark.parametrize("reduce", ["mean", "sum"])
def test_reference_equals_brute_force(kind, reduce):
    gen = torch.Generator().manual_seed(hash((kind, reduce)) % 2**31)
    t, b, n1, n2 = 3, 6, 13, 37
    rates = torch.tensor([0.1, 0.5, 0.9, 0.3, 0.0, 1.0]).view(1, b, 1)
    x = (torch.rand(t, b, n1 + n2, generator=gen) < rates).float() * 2.0
    model = TwoLayerProbe(n1)
    name = {"sahd": "sahd", "sahd_rate": "sahd_rate", "hamming": "hamming_mean"}[kind]
    cfg = ScoreConfig(name=name, reduce=reduce, backend="torch")
    matrix, calls = kernel_matrix(model, x, config=cfg)
    assert calls == 2 * t
    spikes = (x > 0).numpy().astype(np.int64)
    patterns = [spikes[s, :, :n1] for s in range(t)] + [spikes[s, :, n1:] for s in range(t)]
    expected = brute_force_kernel(patterns, kind)
    if reduce == "mean":
        expected /= len(patterns)
    np.testing.assert_allclose(matrix.numpy(), expected, rtol=1e-12, atol=1e-9)
    result = score_network(model, x, config=cfg)
    assert result.score == pytest.approx(np.linalg.slogdet(expected)[1], rel=1e-9, abs=1e-9)


def test_single_step_neurons_count_one_call_each():
    class Stepper(nn.Module):
        def __init__(self):
            super().__init__()
            self.lif = neuron.LIFNode(tau=4 / 3, step_mode="s")

        def forward(self, x):  # x: [T, B, N], one call per timestep
            return torch.stack([self.lif(x[s]) for s in range(x.shape[0])])

    x = (torch.rand(4, 5, 50, generator=torch.Generator().manual_seed(1)) < 0.4).float() * 2
    single, calls = kernel_matrix(Stepper(), x, config=ScoreConfig(name="sahd", backend="torch"))
    multi, multi_calls = kernel_matrix(make_lif(NeuronConfig()), x, config=ScoreConfig(name="sahd", backend="torch"))
    assert calls == multi_calls == 4
    torch.testing.assert_close(single, multi, rtol=0, atol=0)


@pytest.fixture
def scored_net():
    g = Genotype(("conv3x3", "conv3x3", "skip", "conv3x3", "avgpool3x3", "conv3x3"))
    from spikenas.network import MacroConfig

    cfg = MacroConfig(width=6, in_channels=3, input_size=8, hidden=32, timesteps=3)
    return build_network(g, cfg, seed=3)


def test_permuting_samples_leaves_score_unchanged(scored_net):
    x = torch.randn(12, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(1))
    a = score_network(scored_net, x, config=ScoreConfig(name="sahd", backend="torch"))
    b = score_network(scored_net, x[perm], config=ScoreConfig(name="sahd", backend="torch"))
    assert a.status == b.status == "ok" and math.isfinite(a.score)
    assert a.score == pytest.approx(b.score, rel=1e-9, abs=1e-9)


def test_duplicate_samples_are_singular(scored_net):
    x = torch.randn(10, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    x[7] = x[2]
    result = score_network(scored_net, x, config=ScoreConfig(name="sahd", backend="torch"))
    assert result.status == "singular" and result.score == float("-inf") and result.signs == [0.0]


def test_sum_and_mean_differ_by_call_count(scored_net):
    x = torch.randn(9, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    mean = score_network(scored_net, x, config=ScoreConfig(name="sahd", reduce="mean", backend="torch"))
    total = score_network(scored_net, x, config=ScoreConfig(name="sahd", reduce="sum", backend="torch"))
    assert total.score == pytest.approx(mean.score + 9 * math.log(mean.num_calls), rel=1e-9)


def test_scoring_leaves_batchnorm_statistics_and_mode(scored_net):
    scored_net.train()
    before = {k: v.clone() for k, v in scored_net.state_dict().items()}
    batches = [torch.randn(8, 3, 8, 8), torch.randn(8, 3, 8, 8)]
    score_network(scored_net, batches, config=ScoreConfig(name="sahd", backend="torch"))
    assert scored_net.training
    for k, v in scored_net.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_multiple_batches_average(scored_net):
    xs = [torch.randn(8, 3, 8, 8, generator=torch.Generator().manual_seed(s)) for s in range(2)]
    cfg = ScoreConfig(name="sahd", backend="torch")
    both = score_network(scored_net, xs, config=cfg)
    singles = [score_network(scored_net, x, config=cfg).score for x in xs]
    assert both.score == pytest.approx(sum(singles) / 2, rel=1e-12)


def test_model_without_neurons_has_status_no_neurons():
    result = score_network(nn.Linear(3, 3), torch.randn(4, 3))
    assert result.status == "no_neurons" and result.score == float("-inf")


def test_negative_determinant_is_reported_indefinite():
    """Hand-made spikes whose SAHD kernel has a negative determinant: the score is log|det K| (as SNASNet
    ranks) and the status says the kernel is indefinite."""

    class Fixed(nn.Module):
        def __init__(self, patterns: torch.Tensor) -> None:
            super().__init__()
            self.patterns = patterns
            self.lif = make_lif(NeuronConfig())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lif(self.patterns * 2.0)  # input 2 fires, 0 does not: spikes equal the patterns

    gen = torch.Generator().manual_seed(5)
    for _ in range(200):
        patterns = (torch.rand(1, 5, 6, generator=gen) < 0.5).float()
        matrix, _ = kernel_matrix(Fixed(patterns), torch.zeros(1, 5, 1), config=ScoreConfig(name="sahd", alpha=40.0))
        sign, _ = torch.linalg.slogdet(matrix)
        if sign < 0:
            break
    else:
        pytest.fail("no indefinite kernel found in 200 draws")
    result = score_network(Fixed(patterns), torch.zeros(1, 5, 1), config=ScoreConfig(name="sahd", alpha=40.0))
    assert result.status == "indefinite" and result.signs == [-1.0]
    assert result.score == pytest.approx(float(torch.linalg.slogdet(matrix)[1]), rel=1e-9)


def test_errors():
    with pytest.raises(SpikeNASError, match="unknown score 'cosine'"):
        ScoreConfig(name="cosine")
    with pytest.raises(SpikeNASError, match="bn_mode"):
        ScoreConfig(name="sahd", bn_mode="frozen")
    with pytest.raises(SpikeNASError, match="backend"):
        ScoreConfig(name="sahd", backend="cuda")
    with pytest.raises(SpikeNASError, match="alpha"):
        ScoreConfig(name="sahd", alpha=0.0)
    with pytest.raises(SpikeNASError, match="not a spike-kernel score|is not one"):
        score_network(make_lif(NeuronConfig()), torch.rand(2, 4, 3), config=ScoreConfig(name="conv_depth"))


def test_options_a_score_does_not_read_are_refused():
    """A structural score with a kernel option, or with run options and no tie-break that runs the network."""
    with pytest.raises(SpikeNASError, match="alpha.*spike-kernel scores only"):
        ScoreConfig(name="conv_depth", alpha=0.3)
    with pytest.raises(SpikeNASError, match="reduce.*spike-kernel scores only"):
        ScoreConfig(name="synflow", reduce="sum")
    with pytest.raises(SpikeNASError, match="bn_mode.*run the network"):
        ScoreConfig(name="conv_depth", tie_break=("depth_skip",), bn_mode="eval")
    ScoreConfig(name="conv_depth", tie_break=("hamming",), backend="torch")  # the tie-break runs the network
    assert ScoreConfig(name="sahd").option("reduce") == "mean"
    assert ScoreConfig(name="hamming").option("reduce") == "sum"
    assert ScoreConfig(name="sahd", reduce="sum").kernel_formula()["reduce"] == "sum"


def _sj_model(step_mode: str, *, bn: bool = True) -> nn.Module:
    """Conv-BN-LIF-Linear-LIF from spikingjelly's layers. Multi-step BatchNorm normalises over T x B, single-step
    over B per frame: equal for static inputs, different for event frames (so those tests drop it)."""
    torch.manual_seed(0)
    return nn.Sequential(
        layer.Conv2d(1, 4, 3, padding=1, step_mode=step_mode),
        layer.BatchNorm2d(4, step_mode=step_mode) if bn else nn.Identity(),
        neuron.LIFNode(tau=2.0, step_mode=step_mode),
        layer.Flatten(step_mode=step_mode),
        layer.Linear(4 * 25, 10, step_mode=step_mode),
        neuron.LIFNode(tau=2.0, step_mode=step_mode),
    )


def test_static_images_are_repeated_over_timesteps_for_multi_and_single_step_models():
    images = torch.randn(16, 1, 5, 5, generator=torch.Generator().manual_seed(0)) * 3
    multi = score_network(_sj_model("m"), images, timesteps=4)
    single = score_network(_sj_model("s"), images, timesteps=4)
    assert multi.num_calls == single.num_calls == 8 and multi.status == "ok"
    assert single.score == pytest.approx(multi.score, rel=1e-9)
    sequence = score_network(_sj_model("m"), images.unsqueeze(0).repeat(4, 1, 1, 1, 1), sequence=True)
    assert sequence.score == pytest.approx(multi.score, rel=1e-9)


def test_event_sequences_feed_one_frame_per_step():
    frames = (torch.rand(3, 8, 1, 5, 5, generator=torch.Generator().manual_seed(1)) < 0.3).float() * 4
    multi = score_network(_sj_model("m", bn=False), frames, sequence=True)
    single = score_network(_sj_model("s", bn=False), frames, sequence=True)
    assert multi.num_calls == single.num_calls == 6
    assert single.score == pytest.approx(multi.score, rel=1e-9)


def test_static_images_without_timesteps_get_a_clear_error():
    with pytest.raises(SpikeNASError, match="timesteps=T"):
        score_network(_sj_model("m"), torch.randn(8, 1, 5, 5))
    with pytest.raises(SpikeNASError, match="timesteps must be"):
        score_network(_sj_model("m"), torch.randn(8, 1, 5, 5), timesteps=0)
    with pytest.raises(SpikeNASError, match="not both"):
        score_network(_sj_model("m"), torch.randn(3, 8, 1, 5, 5), timesteps=3, sequence=True)
    with pytest.raises(SpikeNASError, match=">= 2 samples"):
        score_network(_sj_model("m"), torch.randn(1, 1, 5, 5), timesteps=2)


def test_user_module_from_spikingjelly_layers():
    """The public API scores any spikingjelly network, not only ours."""
    net = nn.Sequential(
        layer.Conv2d(1, 4, 3, padding=1, step_mode="m"),
        neuron.LIFNode(tau=2.0, step_mode="m"),
        layer.Flatten(step_mode="m"),
        layer.Linear(4 * 25, 10, step_mode="m"),
        neuron.LIFNode(tau=2.0, step_mode="m"),
    )
    x = torch.randn(4, 16, 1, 5, 5, generator=torch.Generator().manual_seed(0)) * 3
    result = score_network(net, x, config=ScoreConfig(name="sahd", backend="torch"))
    assert result.num_calls == 8 and result.status == "ok"
