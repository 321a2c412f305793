"""Test accuracy of a trained Speck network three ways: ours, the exported sinabs network simulated in float, and
sinabs' discretised DynapcnnNetwork (8-bit weights, 16-bit thresholds: what is written to the chip); and how often
the discretised network's prediction agrees with ours.

Usage: python docs/results/speck/chip_agreement.py RUN_DIR, where RUN_DIR/train holds the train command's
checkpoint.pt (``--target speck``); writes RUN_DIR/chip_agreement.json. sinabs needs SynSense's samna SDK only to
talk to a device: this script gives samna's import the tests' stand-in (tests/samna_standin.py).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests"))

import samna_standin  # noqa: E402

samna_standin.install()

import sinabs.layers as sl  # noqa: E402
import torch  # noqa: E402
from sinabs.backend.dynapcnn import DynapcnnNetwork  # noqa: E402
from sinabs.backend.dynapcnn.chips.dynapcnn import DynapcnnConfigBuilder  # noqa: E402

from spikenas.data import load_dataset  # noqa: E402
from spikenas.export import load_trained  # noqa: E402
from spikenas.hardware.speck_export import events_for_sinabs, sinabs_network, spike_counts  # noqa: E402


def measure(run_dir: Path, batch: int = 500) -> dict:
    model, fingerprint = load_trained(run_dir / "train" / "checkpoint.pt")
    cfg = model.config
    x, y = load_dataset(fingerprint["data"].split(":")[0], split="test").tensors(input_size=cfg.input_size)
    net = sinabs_network(model)
    chip = DynapcnnNetwork(sinabs_network(model), input_shape=(cfg.in_channels, cfg.input_size, cfg.input_size),
                           discretize=True)
    cores = DynapcnnConfigBuilder.map_layers_to_cores(chip.dynapcnn_layers)
    ours, simulated, discretised = [], [], []
    t0 = time.time()
    with torch.no_grad():
        for i in range(0, len(x), batch):
            images = x[i : i + batch]
            ours.append(model(images))
            for m in [*net.modules(), *chip.modules()]:
                if isinstance(m, sl.StatefulLayer):
                    m.reset_states()
            events = events_for_sinabs(images, cfg.timesteps)
            simulated.append(spike_counts(net(events), len(images)))
            out = chip(events)
            discretised.append(spike_counts(out.reshape(out.shape[0], -1), len(images)))
    ours, simulated, discretised = (torch.cat(v) for v in (ours, simulated, discretised))
    return {
        "test_images": len(y),
        "accuracy_ours": (ours.argmax(1) == y).float().mean().item(),
        "accuracy_sinabs_float": (simulated.argmax(1) == y).float().mean().item(),
        "outputs_equal_sinabs_float": bool(torch.equal(ours, simulated)),
        "accuracy_sinabs_discretized": (discretised.argmax(1) == y).float().mean().item(),
        "prediction_agreement_discretized": (discretised.argmax(1) == ours.argmax(1)).float().mean().item(),
        "sinabs_cores": {str(k): v for k, v in cores.items()},
        "versions": {"torch": torch.__version__, "sinabs": __import__("sinabs").__version__},
        "seconds": time.time() - t0,
    }


if __name__ == "__main__":
    torch.set_num_threads(2)
    run = Path(sys.argv[1])
    result = measure(run)
    (run / "chip_agreement.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
