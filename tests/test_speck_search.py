"""``python -m spikenas search --target speck``: every network it scores and the one it returns run on Speck, as
sinabs' own Speck backend maps them; infeasible requests get one line naming the limit.

sinabs needs SynSense's samna SDK only to talk to a device; these tests give samna's import a stand-in
(tests/samna_standin.py), and nothing they call reaches it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import samna_standin

from spikenas.data import FASHION_DEFAULT_DIR
from spikenas.hardware.speck_plan import plan
from spikenas.nas.__main__ import main as search_main
from spikenas.network import MacroConfig, build_network
from spikenas.space import Genotype

sinabs = pytest.importorskip("sinabs", reason="sinabs is not installed (pip install --no-deps sinabs==3.1.3)")
samna_standin.install()
from sinabs.backend.dynapcnn import DynapcnnNetwork  # noqa: E402
from sinabs.backend.dynapcnn.chips.dynapcnn import DynapcnnConfigBuilder  # noqa: E402

from spikenas.hardware.speck_export import sinabs_network  # noqa: E402


def sinabs_maps(cells: list[Genotype], macro: MacroConfig) -> dict[int, int]:
    """sinabs' core for each of its layers of the network; fails the test when sinabs refuses it."""
    model = build_network(cells, macro, seed=0).eval()
    d = DynapcnnNetwork(sinabs_network(model), input_shape=(macro.in_channels, macro.input_size,
                                                                          macro.input_size),
                        discretize=True)
    assert all(len(dest) <= 2 for dest in d.layer_destination_map.values())
    return DynapcnnConfigBuilder.map_layers_to_cores(d.dynapcnn_layers)


def run_search(tmp_path: Path, capsys, *args: str) -> tuple[int, str, dict | None]:
    out = tmp_path / "search.json"
    code = search_main(["--ops", "speck", "--target", "speck", "--quiet", "--output", str(out), *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err, json.loads(out.read_text()) if out.exists() else None


def check_search(tmp_path: Path, payload: dict, sample: int) -> None:
    macro = MacroConfig.from_dict(payload["macro"])
    chosen = [Genotype.from_nb201(c["nb201"]) for c in payload["result"]["cells"]]
    target = payload["result"]["target"]
    assert target["fits"] and target["target"] == "speck"
    mapping = sinabs_maps(chosen, macro)
    assert sorted(mapping.values()) == sorted(u["core"] for u in target["units"])
    # Every candidate the search scored is one our plan places, and a seeded sample of them sinabs maps.
    journal = tmp_path / "search.journal.jsonl"
    records = [json.loads(line) for line in journal.read_text().splitlines()[1:]]
    networks = [[Genotype.from_nb201(c) for c in r["cells"]] for r in records]
    assert len(networks) == payload["counters"]["scored"]
    assert all(plan(build_network(cells, macro, seed=0).graph).fits for cells in networks)
    for i in np.random.default_rng(0).choice(len(networks), size=min(sample, len(networks)), replace=False):
        sinabs_maps(networks[i], macro)


@pytest.mark.parametrize("cells", ["1", "2"])
def test_search_on_digits_returns_networks_sinabs_maps(tmp_path, capsys, cells):
    code, text, payload = run_search(tmp_path, capsys, "--dataset", "digits", "--cells", cells, "--width", "8",
                                     "--hidden", "32", "--timesteps", "3", "--batch-size", "16")
    assert code == 0, text
    assert "target speck: fits" in text and "pruned by memory or target speck" in text
    assert payload["counters"]["pruned"] > 0
    check_search(tmp_path, payload, sample=6)


@pytest.mark.skipif(not FASHION_DEFAULT_DIR.exists(), reason=f"Fashion-MNIST is not in {FASHION_DEFAULT_DIR} "
                    "(apt-get install dataset-fashion-mnist)")
def test_search_on_fashion_mnist_returns_networks_sinabs_maps(tmp_path, capsys):
    code, text, payload = run_search(tmp_path, capsys, "--dataset", "fashion-mnist", "--cells", "1", "--width", "8",
                                     "--hidden", "32", "--timesteps", "3", "--batch-size", "16")
    assert code == 0, text
    assert payload["macro"]["input_size"] == 28 and payload["macro"]["family"] == "speck"
    check_search(tmp_path, payload, sample=6)


def test_random_search_draws_only_what_speck_runs(tmp_path, capsys):
    code, text, payload = run_search(tmp_path, capsys, "--algorithm", "random", "--samples", "12", "--cells", "1",
                                     "--width", "8", "--hidden", "32", "--timesteps", "2", "--batch-size", "8")
    assert code == 0, text
    check_search(tmp_path, payload, sample=3)


def test_infeasible_request_names_the_limit_in_one_line(tmp_path, capsys):
    # the defaults (width 16, hidden 256) on 16 x 16 digits: the head's first layer reads 16 x 8 x 8 into 256
    # neurons, 16 * 2**(6 + 8) kernel words, more than any core's 64 Ki
    code, text, _ = run_search(tmp_path, capsys, "--timesteps", "2", "--cells", "1")
    assert code == 2 and len(text.strip().splitlines()) == 1
    assert "runs on target speck" in text and "no Speck core holds that much memory" in text
    assert "layer 'head.1' needs 262144 kernel" in text


def test_wrong_op_set_for_the_target_is_refused(tmp_path, capsys):
    out = tmp_path / "x.json"
    code = search_main(["--ops", "3O", "--target", "speck", "--quiet", "--output", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "op set speck (--ops speck)" in err and not out.exists()
    code = search_main(["--ops", "3O", "--target", "xylo", "--quiet", "--output", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "xylo cannot run layer 'stem.0'" in err


def test_library_request_carries_the_target():
    import spikenas

    result = spikenas.search(op_set="speck", target="speck", num_cells=1, width=8, hidden=32, timesteps=2,
                             batch_size=8, progress=False)
    assert result.payload["config"]["target"] == "speck"
    assert result.payload["result"]["target"]["fits"]
    assert "target" not in spikenas.search(num_cells=1, width=4, hidden=16, timesteps=2, batch_size=8,
                                           progress=False).payload["config"]


def test_spike_scores_run_in_exact_mode_and_fast_mode_is_refused(tmp_path, capsys):
    cell = "|iaf_conv_3x3~0|+|skip_connect~0|iaf_conv_3x3~1|+|none~0|none~1|iaf_conv_3x3~2|"
    code, text, payload = run_search(tmp_path, capsys, "--cells", "1", "--width", "8", "--hidden", "32",
                                     "--timesteps", "3", "--batch-size", "16", "--score", "sahd", "--evaluate", cell)
    assert code == 0, text
    assert payload["result"]["status"] == "ok" and np.isfinite(payload["result"]["score"])
    assert payload["result"]["target"]["fits"]
    code, text, _ = run_search(tmp_path, capsys, "--cells", "1", "--width", "8", "--hidden", "32", "--timesteps",
                               "3", "--batch-size", "16", "--score", "sahd", "--mode", "fast")
    assert code == 2 and "fast mode shares the work of SNASNet-family networks" in text
