"""Distinct-pattern counts (kernels.count_distinct): the packed implementation and every available backend
against the unpacked reference and a brute-force set of rows, exact, on fresh random inputs of odd shapes."""

from __future__ import annotations

import pytest
import torch
from spikenas.kernels.patterns import packed, reference

from spikenas import kernels

AVAILABLE = [name for name, state in kernels.diagnostics().items() if state == "available"]


def _patterns(generator: torch.Generator, lead: tuple[int, ...], rows: int, n: int, pool: int) -> torch.Tensor:
    """bool ``[*lead, rows, n]`` rows drawn from ``pool`` random patterns, so that rows repeat."""
    base = torch.rand(pool, n, generator=generator) < 0.3
    return base[torch.randint(0, pool, (*lead, rows), generator=generator)]


def _brute(patterns: torch.Tensor) -> torch.Tensor:
    """Distinct rows by a Python set of tuples, per group: int64 ``[...]``."""
    lead = patterns.shape[:-2]
    flat = patterns.reshape(-1, *patterns.shape[-2:])
    counts = [len({tuple(row.tolist()) for row in group}) for group in flat]
    return torch.tensor(counts, dtype=torch.int64).reshape(lead)


@pytest.mark.parametrize("seed", range(4))
def test_packed_equals_reference_and_brute_force(seed: int) -> None:
    g = torch.Generator().manual_seed(1000 + seed)
    n = int(torch.randint(1, 200, (1,), generator=g))  # odd widths, across word boundaries
    rows = int(torch.randint(1, 90, (1,), generator=g))
    lead = tuple(int(d) for d in torch.randint(1, 4, (int(torch.randint(0, 3, (1,), generator=g)),), generator=g))
    x = _patterns(g, lead, rows, n, pool=int(torch.randint(1, 12, (1,), generator=g)))
    words = kernels.pack_bits(x, backend="torch")
    want = _brute(x)
    assert torch.equal(reference.count_distinct(words, n), want)
    assert torch.equal(reference.count_distinct_dense(x), want)
    assert torch.equal(packed.count_distinct(words, n), want)


@pytest.mark.parametrize("backend", AVAILABLE)
def test_every_backend_through_the_dispatch(backend: str) -> None:
    g = torch.Generator().manual_seed(7)
    x = _patterns(g, (3, 2), 77, 131, pool=9)
    words = kernels.pack_bits(x, backend=backend)
    assert torch.equal(kernels.count_distinct(words, 131, backend=backend), _brute(x))


def test_distinct_columns_of_a_spike_matrix() -> None:
    spikes = torch.tensor([[1, 0, 1, 1, 0], [0, 0, 0, 0, 1], [1, 0, 1, 1, 0]], dtype=torch.float32)  # [S=3, N=5]
    words = kernels.pack_bits(spikes.T)  # neuron patterns: (1,0,1) x3, (0,0,0), (0,1,0)
    assert int(kernels.count_distinct(words, 3)) == 3


def test_extremes() -> None:
    ones = torch.ones(2, 50, 70, dtype=torch.bool)
    assert kernels.count_distinct(kernels.pack_bits(ones), 70).tolist() == [1, 1]
    eye = torch.eye(64, dtype=torch.bool)  # all rows differ, bit 63 is the sign bit of the word
    assert int(packed.count_distinct(kernels.pack_bits(eye), 64)) == 64


def test_bad_arguments_name_the_parameter() -> None:
    words = kernels.pack_bits(torch.ones(4, 70))
    with pytest.raises(ValueError, match="n must be"):
        kernels.count_distinct(words, 200)
    with pytest.raises(ValueError, match="packed must be int64"):
        kernels.count_distinct(words.to(torch.int32), 70)
