"""The frozen SNASNet reference of bench/snasnet_reference.py: independent of spikenas, exact Hamming counts
from its float route, a seeded search, and the same score as the project on a network whose weights it copies."""

from __future__ import annotations

import ast
import importlib.util
import math
import sys
from pathlib import Path

import pytest
import torch

REFERENCE = Path(__file__).resolve().parents[1] / "bench" / "snasnet_reference.py"


@pytest.fixture(scope="module")
def ref():
    spec = importlib.util.spec_from_file_location("snasnet_reference", REFERENCE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_imports_nothing_from_spikenas():
    tree = ast.parse(REFERENCE.read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"relative import in {REFERENCE.name}"
            roots.add(node.module.split(".")[0])
    assert "spikenas" not in roots
    allowed = {"torch", "spikingjelly", "numpy", "__future__", *sys.stdlib_module_names}
    assert roots <= allowed, f"{REFERENCE.name} imports {sorted(roots - allowed)}"


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (17, 1), (33, 65), (5, 513), (64, 129)])
@pytest.mark.parametrize("density", [0.05, 0.5, 0.97])
def test_float_hamming_equals_integer_hamming(ref, shape, density):
    g = torch.Generator().manual_seed(shape[0] * 1000 + shape[1])
    bits = (torch.rand(shape, generator=g) < density).to(torch.int64)
    direct = (bits[:, None, :] != bits[None, :, :]).sum(dim=-1)
    got = ref.hamming_float(bits.float())
    assert torch.equal(got, got.round())
    assert torch.equal(got.to(torch.int64), direct)


def test_sahd_call_kernel_formula(ref):
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(6, 40, generator=g) < 0.3).double()
    n = x.shape[1]
    r = x.sum(1) / n
    expected = n * (r[:, None] * (1 - r[None, :]) + (1 - r[:, None]) * r[None, :])
    hamming = (x[:, None, :] != x[None, :, :]).sum(-1).double()
    torch.testing.assert_close(ref.sahd_call_kernel(x), n - 0.5 * hamming / (expected + 1e-3))


def test_live_edges_prune_dead_nodes(ref):
    # conv on (0,1) feeds node 1, which has no way out: pruned; (0,3) skip stays.
    assert ref.live_edges((3, 0, 1, 0, 0, 0)) == (False, False, True, False, False, False)
    assert ref.live_edges((3, 2, 1, 4, 3, 3)) == (True,) * 6
    cell = ref.ReferenceCell((3, 0, 1, 0, 0, 0), 4)
    assert list(cell.edges) == ["03"]


def test_nb201_string(ref):
    assert ref.nb201((3, 3, 1, 4, 3, 1)) == (
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    )


def test_small_random_search_is_seeded_and_finite(ref):
    batches = [torch.randn(8, 3, 8, 8, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    kwargs = dict(samples=3, width=2, hidden=8, timesteps=2)
    state = torch.random.get_rng_state()
    a = ref.run_random_search(batches, seed=5, **kwargs)
    b = ref.run_random_search(batches, seed=5, **kwargs)
    c = ref.run_random_search(batches, seed=6, **kwargs)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert a["scored"] == 3 and len(a["draws"]) == 3
    assert all(d[2] != 0 for d in a["draws"])  # edge (0,3) never zero
    assert math.isfinite(a["best_score"])
    assert (a["draws"], a["scores"], a["best_ops"]) == (b["draws"], b["scores"], b["best_ops"])
    assert a["best_score"] == max(a["scores"])
    assert a["draws"] != c["draws"]


def test_bad_ops_are_refused(ref):
    with pytest.raises(ValueError, match="ops"):
        ref.ReferenceNet((3, 3, 5, 1, 1, 1), width=2, hidden=4, input_size=8)


@pytest.mark.parametrize("ops", [(3, 2, 1, 4, 3, 1), (2, 1, 3, 3, 4, 2)])
def test_same_score_as_project_on_copied_weights(ref, ops):
    """At T = 1 with dropout off, the reference is the project's network step for step; copying the
    project's weights into it must give the project's sahd score (float32 kernels here, float64 there)."""
    from spikenas.nas.engine import Evaluator
    from spikenas.network import MacroConfig, build_network
    from spikenas.scoring import ScoreConfig
    from spikenas.space import Genotype

    genotype = Genotype.from_index(sum(o * 5**k for k, o in enumerate(ops)), "5O")
    assert all(genotype.live_edges())  # the project keeps dead edges' LIFs; these cells have none
    macro = MacroConfig(num_cells=2, width=4, hidden=16, timesteps=1, input_size=8, in_channels=3)
    batches = [torch.randn(12, 3, 8, 8, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    project = Evaluator(macro, batches, ScoreConfig(name="sahd"), seed=3).evaluate((genotype, genotype))
    assert project.status == "ok"

    source = build_network(genotype, macro, seed=3)  # the Evaluator's network: same seed, same weights
    target = ref.ReferenceNet(ops, width=4, hidden=16, input_size=8, timesteps=1, dropout=0.0)
    src, dst = source.state_dict(), target.state_dict()
    assert [v.shape for v in src.values()] == [v.shape for v in dst.values()]
    target.load_state_dict(dict(zip(dst, src.values(), strict=True)))
    got = ref.score_network(target.train(), batches)
    assert got == pytest.approx(project.score, rel=1e-5, abs=1e-4)


def test_cli_runs_and_refuses_a_missing_file(ref, capsys, tmp_path):
    tiny = ["--samples", "1", "--batch-size", "4", "--num-batches", "1", "--width", "2", "--hidden", "4",
            "--timesteps", "1"]
    if ref.DEFAULT_DATA.exists():
        assert ref.main(tiny) == 0
        assert "1 scored" in capsys.readouterr().out
    assert ref.main([*tiny, "--data", str(tmp_path / "missing.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.npz" in err[0]
