"""Export a trained Speck-family network as a sinabs network, the form SynSense's toolchain maps onto Speck.

:func:`sinabs_network` writes the live layers of the network's layer graph with sinabs' and torch's modules::

    conv           torch.nn.Conv2d (the trained weights)
    linear         torch.nn.Linear (sinabs runs it as a convolution covering its input map)
    iaf            sinabs.layers.IAFSqueeze(spike_threshold, SingleSpike, MembraneSubtract, min_v_mem = -threshold)
    sumpool        sinabs.layers.SumPool2d
    sum, identity  nothing of their own: a module reading a sum of spike streams gets its own chain of
                   sinabs.layers.Merge over them (sinabs lets a merge feed one module only)
    flatten        torch.nn.Flatten

The sinabs network reads events ``[B * T, C, H, W]`` (sample-major: sample 0's T steps first), which
:func:`events_for_sinabs` makes from images as the network's own encoder does, and returns the class neurons'
spikes ``[B * T, classes]``; :func:`spike_counts` sums them over T into what :class:`~spikenas.network.SNASNetwork`
returns. ``sinabs.backend.dynapcnn.DynapcnnNetwork`` accepts the network, and its core mapping equals the
:mod:`spikenas.hardware.speck_plan` plan's (tested).

sinabs is optional (``pip install sinabs``; sinabs 3.1.3 pins ``nir<=1.0.4`` and needs ``samna`` only to talk to a
device, so install it with ``--no-deps``); :func:`sinabs_network` names it when it is missing.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from spikenas.errors import SpikeNASError
from spikenas.hardware.speck_plan import SpeckPlan, check_graph, plan
from spikenas.network import SNASNetwork, encode_events


def _sinabs():
    try:
        import sinabs.layers as sl
        from sinabs.activation import MembraneSubtract, SingleSpike
    except ImportError as err:
        raise SpikeNASError(f"the sinabs export needs sinabs: pip install --no-deps sinabs==3.1.3 ({err})") from err
    return sl, SingleSpike, MembraneSubtract


def _attr(name: str) -> str:
    return name.replace(".", "_")


class SinabsGraph(nn.Module):
    """A Speck-family network's live layers as sinabs and torch modules, run in data-flow order."""

    def __init__(self, model: SNASNetwork) -> None:
        super().__init__()
        if model.config.family != "speck":
            raise SpikeNASError(f"the sinabs export takes Speck-family networks (op set 'speck'), got family "
                                f"{model.config.family!r}")
        sl, single_spike, subtract = _sinabs()
        graph = check_graph(model.graph)
        live = graph.live()
        if graph.output not in live:
            raise SpikeNASError("nothing flows from the input to the output: nothing to export")
        trained = dict(model.named_modules())
        timesteps = model.config.timesteps
        self.steps: list[tuple[str, str, tuple[str, ...]]] = []  # (value, module attribute, inputs; "": the input)
        order: list[str] = []

        def visit(name: str) -> None:
            if name in order:
                return
            for i in graph[name].inputs:
                if i in live:
                    visit(i)
            order.append(name)

        visit(graph.output)
        leaves: dict[str, list[str]] = {}  # per value: the module outputs (or "" for the input) whose sum it is

        def streams(name: str) -> list[str]:
            spec = graph[name]
            if spec.kind in ("identity", "sum"):
                return [leaf for i in spec.inputs if i in live for leaf in leaves[i]]
            return [name]

        for name in order:
            spec = graph[name]
            ins = tuple(i for i in spec.inputs if i in live)
            leaves[name] = streams(name)
            if spec.kind in ("identity", "sum"):
                continue
            if spec.kind == "conv":
                src = trained[name]
                module = nn.Conv2d(src.in_channels, src.out_channels, src.kernel_size, stride=src.stride,
                                   padding=src.padding, bias=src.bias is not None)
                module.load_state_dict(src.state_dict())
            elif spec.kind == "linear":
                src = trained[name]
                module = nn.Linear(src.in_features, src.out_features, bias=src.bias is not None)
                module.load_state_dict(src.state_dict())
            elif spec.kind == "iaf":
                threshold = float(spec.neuron.v_threshold)
                module = sl.IAFSqueeze(num_timesteps=timesteps, spike_threshold=threshold, spike_fn=single_spike,
                                       reset_fn=subtract(), min_v_mem=-threshold)
            elif spec.kind == "sumpool":
                module = sl.SumPool2d(spec.kernel, spec.stride)
            elif spec.kind == "flatten":
                module = nn.Flatten()
            else:
                raise SpikeNASError(f"layer {name!r} of kind {spec.kind!r} has no sinabs counterpart")
            # The module's input: the sum of the streams its input stands for, merged by Merge modules of its own
            # (sinabs lets a merge feed one module only).
            inputs = [leaf for i in ins for leaf in leaves[i]] if ins else [""]
            for k in range(len(inputs) - 1):  # ((a + b) + c) + ...
                merged = f"{name}.in{k}"
                self.add_module(_attr(merged), sl.Merge())
                self.steps.append((merged, _attr(merged), (inputs[0] if k == 0 else f"{name}.in{k - 1}",
                                                           inputs[k + 1])))
            self.add_module(_attr(name), module)
            self.steps.append((name, _attr(name), (f"{name}.in{len(inputs) - 2}",) if len(inputs) > 1 else
                               (inputs[0],)))
        self.output = graph.output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Events ``[B * T, C, H, W]`` (sample-major) -> class spikes ``[B * T, classes]``."""
        values: dict[str, torch.Tensor] = {"": x}
        for name, attr, ins in self.steps:
            values[name] = getattr(self, attr)(*(values[i] for i in ins))
        return values[self.output]


def sinabs_network(model: SNASNetwork) -> SinabsGraph:
    """The sinabs network of a trained Speck-family ``model`` (its weights copied) for inputs of
    ``model.config.timesteps`` steps per sample and any number of samples; see the module docstring."""
    return SinabsGraph(model).eval()


def events_for_sinabs(images: torch.Tensor, timesteps: int) -> torch.Tensor:
    """float ``[B * T, C, H, W]`` events (sample-major) from images ``[B, C, H, W]`` by the network's encoder."""
    events = encode_events(images, timesteps)  # [T, B, C, H, W]
    return events.transpose(0, 1).reshape(-1, *events.shape[2:])


def spike_counts(spikes: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``[B * T, classes]`` sample-major spikes -> ``[B, classes]`` spike counts over T."""
    return spikes.reshape(batch_size, -1, *spikes.shape[1:]).sum(dim=1)


def check_runs_on_speck(model: SNASNetwork) -> SpeckPlan:
    """The plan of ``model`` on Speck; refuses (one line naming the limit) a network Speck cannot run, so that
    no file is written for it."""
    if model.config.family != "speck":
        raise SpikeNASError(f"target speck runs the Speck space's networks (op set 'speck'); this network's family "
                            f"is {model.config.family!r}: search with --ops speck --target speck")
    chip = plan(model.graph)
    if not chip.fits:
        raise SpikeNASError(f"the network does not run on Speck: {chip.problem}")
    return chip


def save_sinabs(model: SNASNetwork, path: str | Path) -> SpeckPlan:
    """Write the sinabs network of ``model`` to ``path`` (``torch.save`` of the module; read it back with
    ``torch.load(path, weights_only=False)``, which runs code from the file: load only files you made), after
    checking that it runs on Speck. The file needs spikenas and sinabs to load.

    :returns: the network's plan on Speck (its cores and their memory).
    :raises SpikeNASError: the network does not run on Speck (one line naming the limit), or sinabs is missing.
    """
    chip = check_runs_on_speck(model)
    torch.save(sinabs_network(model), path)
    return chip


def sinabs_versions() -> dict[str, str]:
    """The sinabs version a file was written with (for result files)."""
    _sinabs()
    import sinabs

    return {"sinabs": getattr(sinabs, "__version__", "unknown")}
