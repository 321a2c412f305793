"""``python -m spikenas.export --target speck``: a trained Speck network becomes a sinabs network that sinabs'
Speck backend accepts and maps onto its cores, and whose simulation equals the trained network's output.

sinabs needs SynSense's samna SDK only to talk to a device; the test gives samna's import a stand-in
(tests/samna_standin.py), and nothing it calls reaches it.
"""

from __future__ import annotations

import json

import pytest
import samna_standin
import torch

from spikenas.export import load_trained
from spikenas.export import main as export_main
from spikenas.nas.__main__ import main as search_main
from spikenas.train.__main__ import main as train_main

sinabs = pytest.importorskip("sinabs", reason="sinabs is not installed (pip install --no-deps sinabs==3.1.3)")
samna_standin.install()
from sinabs.backend.dynapcnn import DynapcnnNetwork  # noqa: E402
from sinabs.backend.dynapcnn.chips.dynapcnn import DynapcnnConfigBuilder  # noqa: E402

from spikenas.hardware.speck_export import events_for_sinabs, spike_counts  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A Speck network searched and trained briefly on digits through the command line."""
    root = tmp_path_factory.mktemp("speck")
    search = root / "search.json"
    assert search_main(["--ops", "speck", "--target", "speck", "--cells", "1", "--width", "8", "--hidden", "32",
                        "--timesteps", "3", "--batch-size", "16", "--quiet", "--output", str(search)]) == 0
    assert train_main(["--from-results", str(search), "--target", "speck", "--epochs", "1", "--max-train-samples",
                       "256", "--max-test-samples", "64", "--quiet", "--output-dir", str(root / "train")]) == 0
    return root


def test_export_writes_a_sinabs_network_speck_maps_and_that_computes_ours(trained, capsys):
    out = trained / "net.pt"
    assert export_main(["--from-results", str(trained / "train" / "results.json"), "--target", "speck",
                        "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "a sinabs network of" in printed and "target speck: fits" in printed
    report = json.loads((trained / "net.pt.json").read_text())
    assert report["config"]["format"] == "sinabs" and report["target"]["fits"]
    net = torch.load(out, weights_only=False)
    model, _ = load_trained(trained / "train" / "checkpoint.pt")
    macro = model.config
    images = torch.rand(5, 1, macro.input_size, macro.input_size, generator=torch.Generator().manual_seed(0)) * 2
    assert torch.equal(model(images), spike_counts(net(events_for_sinabs(images, macro.timesteps)), 5))
    for m in net.modules():
        if hasattr(m, "reset_states"):
            m.reset_states()
    d = DynapcnnNetwork(net, input_shape=(1, macro.input_size, macro.input_size), discretize=True)
    assert all(len(dest) <= 2 for dest in d.layer_destination_map.values())
    cores = DynapcnnConfigBuilder.map_layers_to_cores(d.dynapcnn_layers)
    assert sorted(cores.values()) == sorted(u["core"] for u in report["target"]["units"])


def test_wrong_format_or_reader_for_the_target_is_refused(trained, capsys):
    results = str(trained / "train" / "results.json")
    for extra, words in ((["--format", "nir"], "target speck is exported as --format sinabs"),
                         (["--for", "norse"], "--for and --dt apply to NIR files")):
        out = trained / "x.pt"
        assert export_main(["--from-results", results, "--target", "speck", "--output", str(out), *extra]) == 2
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1 and not out.exists()
    out = trained / "x.nir"
    assert export_main(["--from-results", results, "--output", str(out)]) == 2
    assert "export it for its chip with --target speck" in capsys.readouterr().err and not out.exists()


def test_train_refuses_a_network_its_target_cannot_hold(tmp_path, capsys):
    out = tmp_path / "train"
    assert train_main(["--genotype", "0", "--ops", "3O", "--cells", "1", "--target", "xylo", "--epochs", "1",
                       "--quiet", "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "the network does not fit target xylo: xylo cannot run layer 'stem.0' (Conv2d)" in err
    assert len(err.strip().splitlines()) == 1 and not (out / "checkpoint.pt").exists()
