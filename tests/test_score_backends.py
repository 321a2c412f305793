"""The score is the same with every kernel backend, on real CIFAR-10 images."""

from __future__ import annotations

import pytest
import torch

from spikenas import kernels
from spikenas.data import load_dataset
from spikenas.network import MacroConfig, build_network
from spikenas.scoring import ScoreConfig, score_network
from spikenas.space import Genotype

GENOTYPES = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|nor_conv_1x1~0|+|avg_pool_3x3~0|nor_conv_3x3~1|+|none~0|skip_connect~1|nor_conv_1x1~2|",
    "|skip_connect~0|+|nor_conv_3x3~0|none~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|",
    "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|nor_conv_3x3~1|none~2|",
]


def backends() -> list:
    params = []
    for name in kernels.BACKENDS:
        if name == "torch":
            continue
        reason = kernels.diagnostics()[name]
        if name == "triton" and not torch.cuda.is_available():
            reason = "triton scores full networks only on CUDA here (interpreter tests live in test_kernels_triton)"
        marks = [] if reason == "available" else [pytest.mark.skip(reason=reason)]
        params.append(pytest.param(name, marks=marks))
    return params


@pytest.fixture(scope="module")
def images(cifar_sample_path):
    ds = load_dataset("cifar10-sample", data_dir=cifar_sample_path.parent)
    return ds.batches(24, 2, seed=0)


@pytest.mark.parametrize("backend", backends())
@pytest.mark.parametrize("kernel", ["sahd", "hamming_mean"])
def test_score_equal_across_backends(images, backend, kernel):
    cfg = MacroConfig(width=6, hidden=64, timesteps=3)
    device = "cuda" if backend == "triton" else "cpu"
    for text in GENOTYPES:
        net = build_network(Genotype.from_nb201(text), cfg, seed=1).to(device)
        batches = [x.to(device) for x in images]
        ref = score_network(net, batches, config=ScoreConfig(name=kernel, backend="torch"))
        got = score_network(net, batches, config=ScoreConfig(name=kernel, backend=backend))
        assert got.status == ref.status
        assert got.signs == ref.signs
        assert got.num_calls == ref.num_calls
        assert got.score == pytest.approx(ref.score, rel=1e-9, abs=1e-9), text
